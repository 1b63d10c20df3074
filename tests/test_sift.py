"""SIFT: descriptors, Lowe's ratio test, MaxSim, the multivector collection
on every backend, the rerank stage, near-duplicate transforms and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.errors import CollectionNotFoundError, InvalidArgumentError
from fmsearch.images.transforms import TRANSFORMS, apply
from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.models.sift import (
    EMPTY,
    SiftExtractor,
    from_storage,
    lowe_score,
    maxsim_score,
    ratio_test,
)
from fmsearch.search import Searcher, SearchMode
from fmsearch.search.rerank import RerankConfig, fuse, zscore

TINY = 300


def _shapes() -> np.ndarray:
    """A hand-made 28x28 image: a bright rectangle, a disc and a bar."""
    import cv2

    img = np.zeros((28, 28), np.uint8)
    cv2.rectangle(img, (3, 4), (11, 20), 220, -1)
    cv2.circle(img, (19, 9), 4, 160, -1)
    cv2.line(img, (14, 23), (25, 17), 255, 2)
    return img


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# Scores on hand-made inputs.


def test_ratio_test_on_hand_made_descriptors():
    e = np.eye(128, dtype=np.float32)
    a = _unit([e[0], e[1] + e[2], e[9]])
    # b0: a near copy of a0; b1, b2: equally near a1 (ambiguous); b3: far from all
    b = _unit([e[0] + 0.1 * e[5], e[1], e[2], e[3]])
    good = ratio_test(a, b, 0.75)
    assert [(m.queryIdx, m.trainIdx) for m in good] == [(0, 0)]
    assert lowe_score(a, b) == pytest.approx(1 / 3)
    # a looser ratio lets nothing ambiguous through either: d(a1,b1) == d(a1,b2)
    assert len(ratio_test(a, b, 1.0)) == 1
    # MaxSim: a0 best cosine ~0.995, a1 0.707, a2 0
    assert maxsim_score(a, b) == pytest.approx((1 / np.sqrt(1.01) + np.sqrt(0.5) + 0) / 3, rel=1e-5)


def test_identical_images_score_one_and_blank_scores_zero():
    sift = SiftExtractor()
    img = _shapes()
    f = sift.features(img)
    assert len(f) >= 5 and f.descriptors.dtype == np.uint8 and f.descriptors.shape[1] == 128
    assert lowe_score(f.descriptors, f.descriptors) == 1.0
    assert maxsim_score(f.descriptors, f.descriptors) == pytest.approx(1.0)
    blank = sift.features(np.zeros((28, 28), np.uint8))
    assert len(blank) == 0
    assert lowe_score(blank.descriptors, f.descriptors) == 0.0
    assert lowe_score(f.descriptors, blank.descriptors) == 0.0
    assert maxsim_score(blank.descriptors, f.descriptors) == 0.0
    # stored as the all-zero placeholder, read back as no descriptors
    stored = sift.embed(np.stack([img, np.zeros((28, 28), np.uint8)]))
    assert np.array_equal(stored[1], EMPTY) and len(from_storage(stored[1])) == 0


def test_shifted_copy_matches_better_than_another_image(fmnist):
    sift = SiftExtractor()
    img = _shapes()
    moved = np.roll(img, (2, 1), axis=(0, 1))
    other = fmnist["train"].images[1]  # an FMNIST garment
    a, b, c = (sift.descriptors(x) for x in (img, moved, other))
    assert lowe_score(a, b) > 0.5 > lowe_score(a, c)
    assert maxsim_score(a, b) > maxsim_score(a, c)


def test_rootsift_and_validation():
    img = _shapes()
    root, plain = SiftExtractor(root=True), SiftExtractor(root=False)
    r, p = root.descriptors(img), plain.descriptors(img)
    assert len(r) == len(p)
    # RootSIFT rows have unit L2 norm before the x255 quantisation
    assert np.allclose(np.linalg.norm(r.astype(np.float32) / 255, axis=1), 1, atol=0.02)
    assert root.fingerprint != plain.fingerprint
    with pytest.raises(InvalidArgumentError, match="upscale"):
        SiftExtractor(upscale=0)
    with pytest.raises(InvalidArgumentError, match="ratio"):
        ratio_test(r, r, 1.5)
    with pytest.raises(InvalidArgumentError, match="28, 28"):
        root.features(np.zeros((10, 10), np.uint8))


# Fusion.


def test_zscore_and_fuse():
    assert np.array_equal(zscore(np.array([3.0, 3.0])), [0.0, 0.0])
    assert zscore(np.array([])).size == 0
    first, sift = np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.9])
    assert np.argsort(-fuse(first, sift, 0.0)).tolist() == [0, 1, 2]  # weight 0: first stage
    assert np.argsort(-fuse(first, sift, 1e6)).tolist() == [2, 1, 0]  # huge weight: SIFT alone
    z = zscore(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)


def test_rerank_config_validation():
    """Settings are checked where the config is made, the arguments named."""
    with pytest.raises(InvalidArgumentError, match="shortlist") as err:
        RerankConfig(shortlist=5).check_holds(10)
    assert err.value.params == ("shortlist",)
    with pytest.raises(InvalidArgumentError, match="rerank weight") as err:
        RerankConfig(weight=-1)
    assert err.value.params == ("rerank_weight",)
    with pytest.raises(InvalidArgumentError, match="rerank mode") as err:
        RerankConfig(mode="cosine")
    assert err.value.params == ("rerank_mode",)


# The multivector collection and the rerank stage, on every backend.


@pytest.fixture
def sift_gallery(store, prefix, fmnist):
    ingest(store, get_embedder("pixels"), limit=TINY, batch_size=128, prefix=prefix)
    report = ingest(store, SiftExtractor(), limit=TINY, batch_size=128, prefix=prefix)
    assert report.points_total == TINY
    return Searcher(store, prefix=prefix)


def test_multivector_round_trip(sift_gallery, store, prefix, fmnist):
    name = prefix + "sift"
    info = store.info(name)
    assert info.multivector and info.dim == 128 and info.points == TINY
    assert info.metadata["fingerprint"] == SiftExtractor().fingerprint
    sift = SiftExtractor()
    want = sift.descriptors(fmnist["train"].images[7])
    got = from_storage(store.retrieve(name, [7], with_vectors=True)[0].vector)
    assert got.shape == want.shape
    # equal up to a per-row scale (a backend may return them cosine-normalised)
    assert np.allclose(_unit(got), _unit(want.astype(np.float32)), atol=1e-5)
    # MaxSim inside Qdrant equals the numpy MaxSim x number of query descriptors
    ids = (3, 7, 11)
    points = store.query(name, want, 3, schema_filter(ids), exact=True, with_payload=False)
    assert sorted(p.id for p in points) == sorted(ids) and points[0].id == 7
    for p in points:
        other = from_storage(store.retrieve(name, [p.id], with_vectors=True)[0].vector)
        assert p.score / len(want) == pytest.approx(maxsim_score(want, other), abs=1e-4)
    rec = store.retrieve(name, [7])[0]
    assert rec.payload["label"] == int(fmnist["train"].labels[7]) and rec.payload["split"] == "train"


def schema_filter(ids):
    from fmsearch.store import QueryFilter

    return QueryFilter(ids=tuple(ids))


@pytest.mark.parametrize("mode", ["maxsim", "lowe"])
def test_rerank_keeps_exactly_the_shortlist(sift_gallery, fmnist, mode):
    image = fmnist["test"].images[0]
    config = RerankConfig(shortlist=30, mode=mode, weight=0.5)
    shortlist = sift_gallery.search("pixels", image=image, k=30)
    reranked = sift_gallery.search(SearchMode("pixels", rerank=config), image=image, k=30)
    assert sorted(h.id for h in reranked) == sorted(h.id for h in shortlist)
    assert [h.rank for h in reranked] == list(range(1, 31))
    fused = [h.score for h in reranked]
    assert fused == sorted(fused, reverse=True)
    # the fused score is what the module says it is
    first = np.array([h.first_score for h in reranked])
    sift = np.array([h.rerank_score for h in reranked])
    assert np.allclose(fused, fuse(first, sift, 0.5))
    by_id = {h.id: h.score for h in shortlist}
    assert np.allclose(first, [by_id[h.id] for h in reranked], atol=1e-6)
    # and the SIFT scores are the stated formula on the stored descriptors
    q = SiftExtractor().descriptors(image)
    h = reranked[0]
    stored = sift_gallery.reranker.stored_descriptors(h.id)
    expected = maxsim_score(q, stored) if mode == "maxsim" else lowe_score(q, stored)
    assert h.rerank_score == pytest.approx(expected, abs=1e-4)
    top5 = sift_gallery.search(SearchMode("pixels", rerank=config), image=image, k=5)
    assert [x.id for x in top5] == [x.id for x in reranked[:5]]


def test_rerank_by_id_uses_stored_descriptors(sift_gallery):
    hits = sift_gallery.search(SearchMode("pixels", rerank=RerankConfig(shortlist=40, weight=1e6)), id=5, k=10)
    assert 5 not in [h.id for h in hits]
    sift = [h.rerank_score for h in hits]
    assert sift == sorted(sift, reverse=True)  # a huge weight orders by SIFT alone


def test_rerank_needs_the_sift_collection(store, prefix, fmnist):
    ingest(store, get_embedder("pixels"), limit=50, prefix=prefix)
    searcher = Searcher(store, prefix=prefix)
    with pytest.raises(CollectionNotFoundError, match="ingest"):
        searcher.search(SearchMode("pixels", rerank=RerankConfig(shortlist=10)), image=fmnist["test"].images[0], k=5)
    with pytest.raises(InvalidArgumentError, match="rerank stage"):
        searcher.search("sift", id=3)


# Near-duplicate transforms.


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transforms_are_seeded_and_change_the_image(name, fmnist):
    images = fmnist["train"].images[:20]
    a, b = apply(name, images, seed=3), apply(name, images, seed=3)
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert all(not np.array_equal(x, y) for x, y in zip(a, images, strict=True))


def test_shift_moves_content():
    from fmsearch.images.transforms import _affine

    img = np.zeros((28, 28), np.uint8)
    img[10, 10] = 255
    out = _affine(img, dx=2, dy=-1)
    assert np.unravel_index(np.argmax(out), out.shape) == (9, 12)


def test_near_duplicate_evaluation(sift_gallery, store, prefix, tmp_path):
    from fmsearch.evaluation.near_duplicate import (
        NearDuplicateConfig,
        evaluate_near_duplicates,
    )
    from fmsearch.evaluation.report import write_near_duplicate_report

    config = NearDuplicateConfig(
        method="pixels", sources=15, transforms=("shift", "jpeg"), rerank=RerankConfig(shortlist=20)
    )
    data = evaluate_near_duplicates(store, config, prefix=prefix)
    assert set(data["per_transform"]) == {"shift", "jpeg"} and data["sources"] == 15
    for v in data["per_transform"].values():
        for key in ("recall@1", "recall@10", "recall@1_reranked", "recall@10_reranked"):
            assert 0 <= v[key] <= 1
        assert v["recall@1"] <= v["recall@10"] <= v["recall@20"]
        assert v["recall@10_reranked"] <= v["recall@20"]  # the rerank cannot add what the shortlist missed
    # JPEG at quality >= 30 leaves pixels nearly unchanged: the source is found
    assert data["per_transform"]["jpeg"]["recall@10"] == 1.0
    write_near_duplicate_report(data, tmp_path)
    assert "| shift |" in (tmp_path / "report.md").read_text() and (tmp_path / "recall.png").stat().st_size > 0


# The CLI.


def run(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args])


def test_cli_query_with_rerank_shows_both_scores(home):
    r = run(
        home,
        "query",
        "--id",
        "60000",
        "--method",
        "pixels",
        "-k",
        "5",
        "--rerank",
        "sift",
        "--shortlist",
        "20",
        "--json",
    )
    assert r.exit_code == 0, r.output
    hits = [json.loads(line) for line in r.output.splitlines()]
    assert len(hits) == 5 and all(h["first_score"] is not None and h["rerank_score"] is not None for h in hits)
    r = run(home, "query", "--id", "60000", "--method", "pixels", "-k", "5", "--rerank", "sift")
    assert r.exit_code == 0 and "fused" in r.output and "sift" in r.output


def test_cli_compare(home, tmp_path, fmnist):
    from fmsearch.images.files import save_png

    path = tmp_path / "a.png"
    save_png(fmnist["train"].images[3], path)
    out = tmp_path / "m.png"
    r = run(home, "compare", str(path), "3", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["lowe_score"] == 1.0 and data["keypoints_a"] == data["good_matches"] > 0
    assert out.stat().st_size > 0
    from PIL import Image

    with Image.open(out) as img:
        assert img.width > img.height  # two images side by side


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "70000", "1"], "out of range"),
        (["compare", "/no/such.png", "1"], "no such file"),
        (["compare", "1", "2", "--ratio", "2"], "ratio"),
        (["compare", "1", "2", "--upscale", "0"], "upscale"),
        (["query", "--id", "1", "--method", "sift"], "rerank stage"),
        (
            ["query", "--id", "1", "--method", "pixels", "--rerank", "sift", "-k", "20", "--shortlist", "10"],
            "shortlist",
        ),
        (["query", "--id", "1", "--method", "pixels", "--rerank", "sift", "--rerank-weight", "-1"], "rerank-weight"),
        (["query", "--id", "1", "--method", "autoencoder", "--rerank", "sift"], "fmnist_autoencoder not found"),
        (["ingest", "--method", "sift", "--weights", "x.keras"], "does not apply to sift"),
    ],
)
def test_cli_errors(home, args, message):
    r = run(home, *args)
    assert r.exit_code != 0
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_cli_evaluate_with_rerank_and_near_duplicate(home, tmp_path):
    out = tmp_path / "cat"
    r = run(
        home,
        "evaluate",
        "--method",
        "pixels",
        "--queries",
        "30",
        "--rerank",
        "sift",
        "--shortlist",
        "20",
        "--out",
        str(out),
    )
    assert r.exit_code == 0, r.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["rerank"]["mode"] == "maxsim" and "first_stage" in data
    assert set(data["first_stage"]["metrics"]) == set(data["metrics"])
    assert "## Rerank stage" in (out / "report.md").read_text()
    out = tmp_path / "nd"
    r = run(
        home,
        "evaluate",
        "--method",
        "pixels",
        "--task",
        "near-duplicate",
        "--sources",
        "10",
        "--shortlist",
        "20",
        "--out",
        str(out),
    )
    assert r.exit_code == 0, r.output
    assert "rotate" in r.output and (out / "recall.png").exists()


def test_cli_sift_settings_recorded_and_followed_by_queries(tmp_path):
    home = tmp_path / "h"
    for args in (["--method", "pixels"], ["--method", "sift", "--sift-upscale", "2", "--sift-plain"]):
        r = CliRunner().invoke(main, ["--home", str(home), "ingest", *args, "--limit", "60"])
        assert r.exit_code == 0, r.output
    meta = json.loads(CliRunner().invoke(main, ["--home", str(home), "collections", "--json"]).output.splitlines()[1])
    assert meta["collection"] == "fmnist_sift"
    from fmsearch.store import open_store

    with open_store(None, home=home) as store:
        info = store.info("fmnist_sift")
        assert info.metadata["upscale"] == 2 and info.metadata["rootsift"] is False
        hits = Searcher(store).search(SearchMode("pixels", rerank=RerankConfig(shortlist=20)), id=3, k=5)
        assert len(hits) == 5
        # the query side used the collection's settings: plain SIFT at 2x
        assert Searcher(store).reranker.extractor.fingerprint == SiftExtractor(upscale=2, root=False).fingerprint
    r = CliRunner().invoke(main, ["--home", str(home), "ingest", "--method", "pixels", "--sift-upscale", "2"])
    assert r.exit_code != 0 and "apply to --method sift only" in r.output
    # other settings into the same collection: refused, with how to re-ingest
    r = CliRunner().invoke(main, ["--home", str(home), "ingest", "--method", "sift", "--limit", "60"])
    assert r.exit_code != 0 and "--recreate" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "given",
    [
        ["--quantization", "int8"],
        ["--hnsw-ef", "64"],
        ["--acorn"],
        ["--expand", "3"],
        ["--fusion", "dbsf"],
        ["--queries", "100"],
        ["--rerank", "sift"],
        ["--k", "1,5"],
        ["--collection", "shop"],
    ],
)
def test_cli_near_duplicate_refuses_options_it_would_ignore(home, given):
    r = run(home, "evaluate", "--method", "pixels", "--task", "near-duplicate", *given)
    assert r.exit_code != 0 and f"Error: --task near-duplicate does not take {given[0]}" in r.output, r.output
    assert "Traceback" not in r.output
