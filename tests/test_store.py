"""The store interface: the same bodies on Qdrant Edge, qdrant-client local
mode (the server code path) and, marked integration, a real Qdrant server."""

from __future__ import annotations

import numpy as np
import pytest

from fmsearch.errors import CollectionNotFoundError, StoreError
from fmsearch.store import QueryFilter, schema


def _fill(store, prefix, vectors, labels, meta=None):
    spec = schema.CollectionSpec(prefix + "toy", dim=vectors.shape[1], metadata=meta or {"method": "toy"})
    store.create(spec)
    payloads = [schema.make_payload("train", i, int(labels[i]), "") for i in range(len(vectors))]
    store.upsert(spec.name, list(range(len(vectors))), vectors, payloads)
    store.finalize(spec.name)
    return spec.name


def _brute_force(vectors, q, k, keep=None):
    scores = vectors @ q
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep(i)]
    return order[:k]


def test_upsert_count_info_and_list(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y, meta={"method": "toy", "fingerprint": "abc"})
    assert store.count(name) == 40
    assert store.count(name, QueryFilter(labels=(3,))) == 4
    info = store.info(name)
    assert (info.points, info.dim, info.distance) == (40, 8, "cosine")
    assert info.metadata == {
        "method": "toy",
        "fingerprint": "abc",
        "index": {"hnsw_m": 16, "ef_construct": 100, "full_scan_threshold_kb": 10_000, "linked_fields": ["label"]},
    }
    assert name in store.collections()
    assert store.exists(name) and not store.exists(prefix + "nope")


def test_upsert_same_ids_replaces_never_duplicates(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    payloads = [schema.make_payload("train", i, 0, "") for i in range(10)]
    store.upsert(name, list(range(10)), v[10:20], payloads)
    assert store.count(name) == 40
    rec = store.retrieve(name, [3], with_vectors=True)[0]
    assert rec.payload["label"] == 0
    np.testing.assert_allclose(rec.vector, v[13], atol=1e-6)


def test_query_matches_brute_force_and_batch(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    q = v[5]
    hits = store.query(name, q, 5, exact=True)
    assert [h.id for h in hits] == _brute_force(v, q, 5)
    np.testing.assert_allclose([h.score for h in hits], np.sort(v @ q)[::-1][:5], atol=1e-5)
    batch = store.query_batch(name, v[:3], 5, exact=True)
    assert [[h.id for h in r] for r in batch] == [_brute_force(v, v[i], 5) for i in range(3)]


def test_filtered_query_returns_only_that_class(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    hits = store.query(name, v[0], 10, QueryFilter(labels=(3, 4)))
    assert {h.payload["label"] for h in hits} == {3, 4} and len(hits) == 8
    hits = store.query(name, v[0], 40, QueryFilter(exclude_labels=(0, 1, 2)))
    assert len(hits) == 28 and all(h.payload["label"] > 2 for h in hits)


def test_query_by_id_excludes_itself(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    hits = store.query(name, v[7], 5, QueryFilter(exclude_ids=(7,)), exact=True)
    assert 7 not in [h.id for h in hits]
    assert [h.id for h in hits] == _brute_force(v, v[7], 5, keep=lambda i: i != 7)


def test_has_id_filter_restricts_to_those_ids(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    hits = store.query(name, v[0], 10, QueryFilter(ids=(1, 2, 30)))
    assert sorted(h.id for h in hits) == [1, 2, 30]


def test_retrieve_keeps_order_and_skips_missing(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    recs = store.retrieve(name, [9, 2, 999], with_payload=["label"])
    assert [r.id for r in recs] == [9, 2]
    assert recs[0].payload == {"label": int(y[9])} and recs[0].vector is None


def test_metadata_merge(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y, meta={"method": "toy", "complete": False})
    store.set_metadata(name, {"complete": True, "points_planned": 40})
    meta = store.info(name).metadata
    assert meta == {"method": "toy", "complete": True, "points_planned": 40, "index": meta["index"]}


def test_recreate_and_missing_collection(store, prefix, unit_vectors):
    v, y = unit_vectors
    name = _fill(store, prefix, v, y)
    with pytest.raises(StoreError, match="already exists"):
        store.create(schema.CollectionSpec(name, dim=8))
    store.delete(name)
    assert not store.exists(name)
    with pytest.raises(CollectionNotFoundError, match=name):
        store.info(name)
    with pytest.raises(CollectionNotFoundError):
        store.query(name, v[0], 3)
    store.create(schema.CollectionSpec(name, dim=8))
    assert store.count(name) == 0


def test_store_survives_reopen(backend, prefix, unit_vectors):
    v, y = unit_vectors
    with backend.open() as s:
        name = _fill(s, prefix, v, y)
    with backend.open() as s:
        assert s.count(name) == 40
        assert [h.id for h in s.query(name, v[1], 1)] == [1]
        s.delete(name)


def test_a_serving_copy_answers_as_the_source_and_leaves_it_free(tmp_path, unit_vectors):
    """Qdrant Edge: the copy a service reads gives the source's answers, is
    tuned for serving (one search thread, payload in memory) without
    touching the source's configuration, and holds no lock on the source."""
    import json

    from fmsearch.store.edge import EDGE_CONFIG_FILE, SHARD_DIR, EdgeStore

    v, y = unit_vectors
    source = EdgeStore(tmp_path / "home", lock_timeout=0)
    name = _fill(source, "fmnist_", v, y)
    copy = source.serving_copy([name], tmp_path / "copy")
    try:
        flt = QueryFilter(labels=(1, 2))
        for exact in (True, False):
            assert [
                [(h.id, h.score, h.payload) for h in hits]
                for hits in copy.query_batch(name, v[:5], 7, flt, exact=exact)
            ] == [
                [(h.id, h.score, h.payload) for h in hits]
                for hits in source.query_batch(name, v[:5], 7, flt, exact=exact)
            ]
        tuned = json.loads((tmp_path / "copy/collections" / name / SHARD_DIR / EDGE_CONFIG_FILE).read_text())
        assert (tuned["max_search_threads"], tuned["payload_memory"]) == (1, "pinned")
        own = json.loads((tmp_path / "home/collections" / name / SHARD_DIR / EDGE_CONFIG_FILE).read_text())
        assert "max_search_threads" not in own and own.get("payload_memory") != "pinned"
        source.close()
        with EdgeStore(tmp_path / "home", lock_timeout=0) as again:  # would fail at once if the copy held a lock
            again.upsert(name, [0], v[1:2], [schema.make_payload("train", 0, 5, "")])
    finally:
        copy.close()


def test_a_record_without_its_vector_is_a_store_error():
    """A point sent back without the vector asked for is named, not a numpy error further on."""
    from fmsearch.store.base import Record

    assert Record(3, {}, np.ones(2, np.float32)).fetched_vector().tolist() == [1.0, 1.0]
    with pytest.raises(StoreError, match="point 3 came back without its vector"):
        Record(3, {}).fetched_vector()
