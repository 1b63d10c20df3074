"""Quantised collections, cross-method rescoring, fusion and recommend, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from fmsearch.errors import InvalidArgumentError, UnknownMethodError
from models import get_embedder
from search.indexer import ingest
from search.query import Searcher
from search.store import QuantizationParams


@pytest.fixture
def two_methods(store, prefix, fmnist):
    for method in ("pixels", "autoencoder"):
        ingest(store, get_embedder(method), limit=300, batch_size=150, prefix=prefix)
    return Searcher(store, prefix=prefix)


def test_rescore_orders_by_the_second_method(two_methods, fmnist):
    image = fmnist["test"].images[0]
    hits = two_methods.search("pixels", image=image, k=20, shortlist=40, rescore_with="autoencoder")
    first = two_methods.search("pixels", image=image, k=40)
    assert {h.id for h in hits} <= {h.id for h in first}
    ae = get_embedder("autoencoder")
    q = ae.embed(image)[0]
    gallery = ae.embed(fmnist["train"].images[:300])
    expected = sorted((h.id for h in first), key=lambda i: (-float(gallery[i] @ q), i))[:20]
    assert [h.id for h in hits] == expected
    assert all(h.first_score is not None for h in hits)


def test_fusion_of_two_methods(two_methods, fmnist):
    hits = two_methods.search("pixels+autoencoder", image=fmnist["test"].images[1], k=10, shortlist=50)
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
        (dict(methods="pixels", rescore_with="pixels"), "the --method itself"),
        (dict(methods="pixels+nope"), "unknown method"),
        (dict(methods="pixels+pixels"), "twice"),
        (dict(methods="pixels+autoencoder", rescore_with="autoencoder"), "single --method"),
    ],
)
def test_bad_combinations(two_methods, kwargs, message):
    with pytest.raises((InvalidArgumentError, UnknownMethodError), match=message):
        args = dict(kwargs)
        two_methods.search(args.pop("methods"), pid=1, **args)


def test_oversampling_below_one_rejected():
    with pytest.raises(InvalidArgumentError, match="oversampling"):
        QuantizationParams(oversampling=0.5)


def test_int8_collection_keeps_recall(store, prefix, fmnist):
    ingest(store, get_embedder("pixels"), limit=300, prefix=prefix, quantization="int8")
    info = store.info(prefix + "pixels_int8")
    assert info.metadata["quantization"] == "int8" and info.points == 300
    s = Searcher(store, prefix=prefix, quantization="int8", quantization_params=QuantizationParams(oversampling=2))
    v = get_embedder("pixels").embed(fmnist["train"].images[:300])
    hits = s.query_image("pixels", fmnist["test"].images[0], k=10)
    exact = np.argsort(-(v @ get_embedder("pixels").embed(fmnist["test"].images[0])[0]), kind="stable")[:10]
    assert len({h.id for h in hits} & set(exact.tolist())) >= 9
