"""Ingest into each backend, then query through the Searcher API."""

from __future__ import annotations

import numpy as np
import pytest

from fmsearch.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    InvalidArgumentError,
    UnknownClassError,
)
from fmsearch.images.files import load_image, save_png
from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.search.searcher import Searcher
from fmsearch.store import schema

TINY = 300  # gallery of the fast tests


@pytest.fixture
def gallery(store, prefix, fmnist):
    report = ingest(store, get_embedder("pixels"), limit=TINY, batch_size=128, prefix=prefix)
    assert (report.points_written, report.points_total) == (TINY, TINY)
    return Searcher(store, prefix=prefix)


def test_ingest_writes_schema_payload_and_metadata(gallery, store, prefix, fmnist):
    name = prefix + "pixels"
    info = store.info(name)
    assert info.points == TINY and info.dim == 784 and info.distance == "cosine"
    meta = info.metadata
    assert meta["method"] == "pixels" and meta["fingerprint"] == "pixels-v1"
    assert meta["complete"] is True and meta["points_planned"] == TINY
    assert meta["fmsearch_schema"] == schema.SCHEMA_VERSION
    rec = store.retrieve(name, [5])[0]
    assert rec.payload["split"] == "train" and rec.payload["index"] == 5
    assert rec.payload["label"] == int(fmnist["train"].labels[5])
    assert rec.payload["class_name"] == schema.CLASS_NAMES[rec.payload["label"]]
    from fmsearch.images.files import decode_png

    assert np.array_equal(decode_png(rec.payload["image"]), fmnist["train"].images[5])


def test_reingest_is_idempotent(gallery, store, prefix):
    ingest(store, get_embedder("pixels"), limit=TINY, batch_size=100, prefix=prefix)
    assert store.count(prefix + "pixels") == TINY


def test_test_split_ids(store, prefix, fmnist):
    ingest(store, get_embedder("pixels"), split="test", limit=20, prefix=prefix)
    recs = store.retrieve(prefix + "pixels", [60000, 60019, 19])
    assert [r.id for r in recs] == [60000, 60019]
    assert recs[1].payload == {**recs[1].payload, "split": "test", "index": 19}


def test_query_by_id_excludes_itself_and_matches_brute_force(gallery, fmnist):
    hits = gallery.search("pixels", id=3, k=10, exact=True)
    assert len(hits) == 10 and 3 not in [h.id for h in hits]
    v = get_embedder("pixels").embed(fmnist["train"].images[:TINY])
    scores = v @ v[3]
    scores[3] = -np.inf
    assert [h.id for h in hits] == np.argsort(-scores, kind="stable")[:10].tolist()
    assert [h.rank for h in hits] == list(range(1, 11))


def test_query_test_image_by_id_not_in_collection(gallery, fmnist):
    hits = gallery.search("pixels", id=60000, k=5)
    direct = gallery.search("pixels", image=fmnist["test"].images[0], k=5)
    assert [h.id for h in hits] == [h.id for h in direct]


def test_class_filters(gallery):
    hits = gallery.search("pixels", id=0, k=10, classes=["Sneaker"])
    assert len(hits) == 10 and {h.class_name for h in hits} == {"Sneaker"}
    hits = gallery.search("pixels", id=0, k=50, exclude_classes=["Ankle boot", "Sneaker"])
    assert not {h.class_name for h in hits} & {"Ankle boot", "Sneaker"}
    with pytest.raises(UnknownClassError):
        gallery.search("pixels", id=0, classes=["Hat"])


def test_image_file_finds_itself_first(gallery, fmnist, tmp_path):
    save_png(fmnist["train"].images[42], tmp_path / "q.png")
    hits = gallery.search("pixels", image=load_image(tmp_path / "q.png"), k=3)
    assert hits[0].id == 42 and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_mismatched_model_is_refused(gallery, store, prefix):
    store.set_metadata(prefix + "pixels", {"fingerprint": "pixels-v0"})
    fresh = Searcher(store, prefix=prefix)
    with pytest.raises(CollectionMismatchError, match="again with recreate"):
        fresh.search("pixels", id=0)
    with pytest.raises(CollectionMismatchError):
        ingest(store, get_embedder("pixels"), limit=10, prefix=prefix)
    ingest(store, get_embedder("pixels"), limit=10, prefix=prefix, recreate=True)
    assert store.count(prefix + "pixels") == 10


def test_missing_collection_and_bad_ids(store, prefix):
    s = Searcher(store, prefix=prefix)
    with pytest.raises(CollectionNotFoundError, match=f"{prefix}pixels not found"):
        s.search("pixels", id=0)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        schema.split_index(70000)
