"""Quantised collections, cross-method rescoring, fusion and recommend, on every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmsearch.errors import InvalidArgumentError, UnknownMethodError
from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.search import Searcher, SearchMode
from fmsearch.store import QuantizationParams, schema


@pytest.fixture
def two_methods(store, prefix, fmnist):
    for method in ("pixels", "autoencoder"):
        ingest(store, get_embedder(method), limit=300, batch_size=150, prefix=prefix)
    return Searcher(store, prefix=prefix)


def test_rescore_orders_by_the_second_method(two_methods, fmnist):
    image = fmnist["test"].images[0]
    hits = two_methods.search(SearchMode("pixels", shortlist=40, rescore_with="autoencoder"), image=image, k=20)
    first = two_methods.search("pixels", image=image, k=40)
    assert {h.id for h in hits} <= {h.id for h in first}
    ae = get_embedder("autoencoder")
    q = ae.embed(image)[0]
    gallery = ae.embed(fmnist["train"].images[:300])
    expected = sorted((h.id for h in first), key=lambda i: (-float(gallery[i] @ q), i))[:20]
    assert [h.id for h in hits] == expected
    assert all(h.first_score is not None for h in hits)


def test_fusion_of_two_methods(two_methods, fmnist):
    hits = two_methods.search(SearchMode("pixels+autoencoder", shortlist=50), image=fmnist["test"].images[1], k=10)
    assert len(hits) == 10 and [h.rank for h in hits] == list(range(1, 11))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 2 / 61 + 1e-12


def test_recommend_positive_and_negative_ids(two_methods):
    hits = two_methods.recommend("pixels", [3, 5], [7], k=10)
    ids = [h.id for h in hits]
    assert len(ids) == 10 and not {3, 5, 7} & set(ids)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(methods="pixels", rescore_with="pixels"), "is the method itself"),
        (dict(methods="pixels+nope"), "unknown method"),
        (dict(methods="pixels+pixels"), "twice"),
        (dict(methods="pixels+autoencoder", rescore_with="autoencoder"), "single method"),
    ],
)
def test_bad_combinations(two_methods, kwargs, message):
    with pytest.raises((InvalidArgumentError, UnknownMethodError), match=message):
        args = dict(kwargs)
        two_methods.search(SearchMode(args.pop("methods"), **args), id=1)


def test_oversampling_below_one_rejected():
    with pytest.raises(InvalidArgumentError, match="oversampling"):
        QuantizationParams(oversampling=0.5)


def vectors_on_disk(store, name: str) -> bool:
    """Whether the engine itself keeps the collection's vectors on disk (its
    own configuration, not fmsearch's metadata)."""
    from fmsearch.store.edge import EdgeStore

    if isinstance(store, EdgeStore):
        config = json.loads((store._dir(name) / "shard" / "edge_config.json").read_text())
        return bool(config["vectors"][""].get("on_disk"))
    return bool(store.client.get_collection(name).config.params.vectors.on_disk)


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "on-disk"])
def test_int8_collection_keeps_recall(quantizing_store, prefix, fmnist, on_disk):
    """ingest --quantization int8 (and --on-disk: the float32 vectors
    memory-mapped, as the engine records) keeps the rescored top 10."""
    store = quantizing_store
    ingest(store, get_embedder("pixels"), limit=300, prefix=prefix, quantization="int8", on_disk=on_disk)
    info = store.info(prefix + "pixels_int8")
    assert info.metadata["quantization"] == "int8" and info.points == 300
    assert info.metadata[schema.META_ON_DISK] is on_disk and vectors_on_disk(store, info.name) is on_disk
    s = Searcher(store, prefix=prefix)
    v = get_embedder("pixels").embed(fmnist["train"].images[:300])
    hits = s.search(SearchMode("pixels", quantization="int8", oversampling=2), image=fmnist["test"].images[0], k=10)
    exact = np.argsort(-(v @ get_embedder("pixels").embed(fmnist["test"].images[0])[0]), kind="stable")[:10]
    assert len({h.id for h in hits} & set(exact.tolist())) >= 9


def test_evaluate_rescored_and_fused_modes(two_methods, store, prefix, fmnist):
    """evaluate's combined modes report the same lists a user's query gets,
    and the bytes per gallery point they read."""
    from fmsearch.evaluation.category import EvalConfig, evaluate

    config = EvalConfig(SearchMode("pixels", rescore_with="autoencoder"), queries=8, ks=(1, 10), latency_queries=2)
    result = evaluate(store, config, prefix=prefix)
    q = int(result.query_indices[0])
    expected = two_methods.search(
        SearchMode("pixels", shortlist=100, rescore_with="autoencoder"), image=fmnist["test"].images[q], k=100
    )
    assert result.hit_ids[0][: len(expected)].tolist() == [h.id for h in expected]
    assert result.summary["vector_bytes"] == {
        "float32": 4 * 784 + 4 * 256,
        "searched": 4 * 784 + 4 * 256,
        "quantization": "none",
    }
    assert result.summary["ann_recall_at_10"]["value"] is None

    fused = evaluate(store, EvalConfig("pixels+autoencoder", queries=8, ks=(1, 10), latency_queries=2), prefix=prefix)
    assert fused.summary["collections"] == [prefix + "pixels", prefix + "autoencoder"]
    assert 0 <= fused.summary["metrics"]["10"]["precision"] <= 1


def test_evaluate_quantised_collection(quantizing_store, prefix, fmnist):
    """A quantised run reports recall against exact float32 search and the
    bytes its search reads; --no-rescore is carried to every search it makes."""
    from fmsearch.evaluation.category import EvalConfig, evaluate

    store = quantizing_store
    ingest(store, get_embedder("autoencoder"), limit=300, prefix=prefix, quantization="binary")
    recall = {}
    for rescore in (True, False):
        config = EvalConfig(
            SearchMode("autoencoder", quantization="binary", rescore=rescore),
            queries=20,
            ks=(1, 10),
            latency_queries=2,
            rprecision_queries=5,
        )
        result = evaluate(store, config, prefix=prefix)
        assert result.collection == prefix + "autoencoder_binary"
        # the default oversampling is recorded, not left as None
        assert result.config.mode.oversampling == (schema.DEFAULT_OVERSAMPLING["binary"] if rescore else None)
        assert result.summary["vector_bytes"] == {"float32": 1024, "searched": 32, "quantization": "binary"}
        recall[rescore] = result.summary["ann_recall_at_10"]["value"]
        assert 0 < recall[rescore] <= 1
        assert 0 < result.summary["r_precision"]["value"] <= 1
    # the rescore is really carried: 256 sign bits alone lose part of the order
    assert recall[True] > recall[False]


@pytest.mark.parametrize(
    "method, quantization, why",
    [
        ("siamese", "int8", "lie so close within a class"),
        ("siamese", "binary", "64 bits per image"),
        ("pixels", "binary", "never negative"),
        ("resnet101", "int8", "not been measured"),
        ("ensemble", "int8", "under the 0.99 an offer needs"),
        ("ensemble", "binary", "192 bits per image"),
        ("distilled", "int8", "under the 0.99 an offer needs"),
    ],
)
def test_quantisations_not_offered_are_refused(store, prefix, method, quantization, why):
    """ingest and search both refuse a quantisation the benchmark showed to
    lose the neighbour order, saying why; nothing is created."""
    with pytest.raises(InvalidArgumentError, match=f"{quantization} quantisation is not offered for {method}: .*{why}"):
        ingest(store, get_embedder(method), limit=10, prefix=prefix, quantization=quantization)
    assert not store.exists(f"{prefix}{method}_{quantization}")
    with pytest.raises(InvalidArgumentError, match="not offered"):
        Searcher(store, prefix=prefix).collection(method, quantization)


def test_query_by_id_reads_the_quantised_collection(store, prefix, fmnist):
    """A quantised search by id takes the point's vector from the quantised
    collection it searches: the plain one need not exist."""
    ingest(store, get_embedder("pixels"), limit=200, prefix=prefix, quantization="int8")
    assert not store.exists(prefix + "pixels")
    hits = Searcher(store, prefix=prefix).search(SearchMode("pixels", quantization="int8"), id=5, k=5)
    assert len(hits) == 5 and 5 not in {h.id for h in hits}


def test_a_rerank_cannot_see_more_than_the_first_stage_proposes():
    from fmsearch.search.rerank import RerankConfig

    with pytest.raises(
        InvalidArgumentError, match=r"rerank's shortlist \(300\) cannot exceed the mode's shortlist \(100\)"
    ):
        SearchMode("pixels", rerank=RerankConfig(shortlist=300))
    assert SearchMode("pixels", shortlist=300, rerank=RerankConfig(shortlist=300)).rerank.shortlist == 300


def test_default_oversampling_applies_only_to_rescored_searches():
    mode = SearchMode("pixels", quantization="int8")
    assert mode.quantization_params == QuantizationParams(True, schema.DEFAULT_OVERSAMPLING["int8"])
    assert SearchMode("pixels", quantization="int8", rescore=False).quantization_params == QuantizationParams(
        rescore=False
    )
    assert SearchMode("pixels", quantization="int8", oversampling=1).quantization_params.oversampling == 1
    assert SearchMode("pixels").quantization_params is None


def test_one_searcher_shares_its_models_across_modes(two_methods, fmnist, monkeypatch):
    """Every mode a Searcher answers uses the models it has loaded: the
    autoencoder is built once for a plain, a quantised and a fused search."""
    import fmsearch.search.searcher as searcher_module

    built = []
    real = searcher_module.get_embedder
    monkeypatch.setattr(searcher_module, "get_embedder", lambda name, **kw: built.append(name) or real(name, **kw))
    image = fmnist["test"].images[0]
    for mode in (
        SearchMode("autoencoder"),
        SearchMode("pixels+autoencoder"),
        SearchMode("pixels", rescore_with="autoencoder"),
    ):
        assert len(two_methods.search(mode, image=image, k=5)) == 5
    assert built.count("autoencoder") == 1 and built.count("pixels") == 1


def _numpy_expanded(gallery: np.ndarray, query: np.ndarray, n: int, k: int, allowed: np.ndarray | None = None):
    """Average query expansion by hand: the query plus its n nearest gallery
    vectors, normalised, and that vector's k nearest (ids, scores)."""
    ids = np.arange(len(gallery)) if allowed is None else np.flatnonzero(allowed)

    def nearest(q, m):
        s = gallery[ids] @ q
        order = np.lexsort((ids, -s))[:m]
        return ids[order], s[order]

    top, _ = nearest(query, n)
    expanded = query + gallery[top].sum(axis=0)
    return nearest(expanded / np.linalg.norm(expanded), k)


@pytest.mark.parametrize("n", [1, 5])
def test_query_expansion_matches_numpy(two_methods, fmnist, n):
    """--expand N on every backend: the query plus its N nearest hits'
    stored vectors, searched again, gives numpy's ranking and scores."""
    gallery = get_embedder("pixels").embed(fmnist["train"].images[:300])
    image = fmnist["test"].images[4]
    q = get_embedder("pixels").embed(image)[0]
    hits = two_methods.search(SearchMode("pixels", expand=n), image=image, k=10, exact=True)
    ids, scores = _numpy_expanded(gallery, q, n, 10)
    assert [h.id for h in hits] == ids.tolist()
    np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-5)
    plain = two_methods.search("pixels", image=image, k=10, exact=True)
    assert [h.id for h in plain] != [h.id for h in hits] or n == 1  # the expansion is not a no-op here
    # a class filter applies to the hits that expand the query too
    sneaker = fmnist["train"].labels[:300] == 7
    hits = two_methods.search(SearchMode("pixels", expand=n), image=image, k=5, classes=["Sneaker"], exact=True)
    ids, scores = _numpy_expanded(gallery, q, n, 5, allowed=sneaker)
    assert [h.id for h in hits] == ids.tolist() and all(h.class_name == "Sneaker" for h in hits)
    # by id: the item itself is neither a hit nor an expansion vector
    hits = two_methods.search(SearchMode("pixels", expand=n), id=3, k=10, exact=True)
    ids, _ = _numpy_expanded(gallery, gallery[3], n, 10, allowed=np.arange(300) != 3)
    assert [h.id for h in hits] == ids.tolist()


def test_query_expansion_in_a_batch_and_a_fusion(two_methods, fmnist):
    """The batch path expands every row as a single query does; in a fusion
    each method's list comes from its own expanded query."""
    images = fmnist["test"].images[10:14]
    mode = SearchMode("autoencoder", expand=3)
    vectors = get_embedder("autoencoder").embed(images)
    batch = two_methods.search_vectors(mode, vectors, 10, exact=True)
    single = [two_methods.search(mode, image=img, k=10, exact=True) for img in images]
    assert [[h.id for h in row] for row in batch] == [[h.id for h in row] for row in single]
    fused = two_methods.search(
        SearchMode("pixels+autoencoder", expand=3, shortlist=30), image=images[0], k=10, exact=True
    )
    ae_ranks = {h.id: h.rank for h in two_methods.search(mode, image=images[0], k=30, exact=True)}
    assert all(h.method_ranks["autoencoder"] == ae_ranks.get(h.id) for h in fused)


def test_expand_mode_settings():
    mode = SearchMode("pixels", expand=3)
    assert mode.label == "pixels, expanded by 3" and mode.output_name() == "pixels-qe3"
    assert SearchMode.from_settings(mode.settings()) == mode and mode.key != SearchMode("pixels").key
    assert SearchMode.from_settings({"method": "pixels"}).expand == 0  # a run recorded before expansion existed
    for bad in (-1, 101):
        with pytest.raises(InvalidArgumentError, match="expand must be between 0 \\(off\\) and 100"):
            SearchMode("pixels", expand=bad)


def test_a_mode_is_spelled_once():
    """The CLI's mode options and the service's request fields are the flat
    options SearchMode.from_options takes, with its defaults."""
    import click

    from fmsearch.cli.common import mode_options
    from fmsearch.search.mode import OPTIONS
    from fmsearch.serve.schemas import SearchRequest

    command = mode_options(click.command()(lambda **kw: None))
    cli = {p.name: p.default for p in command.params}
    cli["fusion_weights"] = None  # text on the command line ("1,2"), parsed into the mode's tuple
    assert cli == OPTIONS
    fields = SearchRequest.model_fields
    assert {name: fields[name].default for name in OPTIONS} == OPTIONS
    assert SearchMode.from_options("pixels", **OPTIONS) == SearchMode("pixels")
    with pytest.raises(InvalidArgumentError, match="unknown search mode options: colour"):
        SearchMode.from_options("pixels", colour="red")
    for unused, needs in (
        ({"fusion": "dbsf"}, "methods joined by +"),
        ({"shortlist": 50}, "a second stage"),
        ({"ratio": 0.8}, "a rerank"),
    ):  # an option the mode would not use: refused, not dropped
        with pytest.raises(InvalidArgumentError, match=f"applies to {needs}"):
            SearchMode.from_options("pixels", **unused)
    assert SearchMode.from_options("pixels+siamese", fusion="dbsf").fusion == "dbsf"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": 1, "classes": "Shirt"}, "classes must be a list, got 'Shirt'"),
        ({"positive": 5}, "positive must be a list"),
        ({"positive": ["a"]}, "positive examples must be gallery ids or images"),
        ({"id": 1, "k": "5"}, "k must be an integer, got '5'"),
        ({"id": 1, "k": True}, "k must be an integer, got True"),
        ({"id": 1, "offset": 1.5}, "offset must be an integer, got 1.5"),
        ({"id": 1, "min_score": "x"}, "min score must be a finite number"),
        ({"id": 1, "split": "trian"}, "split must be train or test"),
    ],
)
def test_a_query_of_the_wrong_types_is_refused_in_one_line(fields, message):
    from fmsearch.search import Query

    with pytest.raises(InvalidArgumentError, match=message):
        Query(**fields)


def test_a_query_image_is_read_once_decoded():
    """An image source (an upload's bytes, read when searched) is an array only after decoded()."""
    from fmsearch.search import Query

    image = np.zeros((28, 28), np.uint8)
    lazy = Query(image=lambda: image)
    with pytest.raises(TypeError, match="not decoded yet"):
        _ = lazy.decoded_image
    assert lazy.decoded().decoded_image is image and Query(id=3).decoded_image is None
