"""Scale: the gallery maker is deterministic, filtered search keeps its
recall where Qdrant's planner switches from scanning to the graph (at a small
size, thresholds lowered), the generic field filter on both backends, and
the scale suite end to end on a small gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_clustered, clustered

from fmsearch.cli import main
from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation.bench import galleries
from fmsearch.store import QueryFilter, schema


def test_jittered_gallery_is_deterministic_and_grows_by_prefix():
    base = np.random.default_rng(3).normal(size=(50, 8)).astype(np.float32)
    a, b = galleries.jittered(base, 170, seed=1), galleries.jittered(base, 170, seed=1)
    assert np.array_equal(a, b)
    assert np.array_equal(galleries.jittered(base, 120, seed=1), a[:120])  # a smaller size is the prefix
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.allclose(a[:50], base / np.linalg.norm(base, axis=1, keepdims=True), atol=1e-6)  # copy 0: the originals
    other = galleries.jittered(base, 170, seed=2)
    assert np.array_equal(other[:50], a[:50]) and not np.allclose(other[50:], a[50:])
    assert 0 < np.linalg.norm(a[50] - a[0]) < 0.2  # a copy is near its original, not on it
    assert list(galleries.sources(7, 3)) == [0, 1, 2, 0, 1, 2, 0]


def test_augmented_gallery_is_deterministic():
    images = np.random.default_rng(0).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    a = list(galleries.augmented(images, 75, seed=5))
    b = list(galleries.augmented(images, 75, seed=5))
    assert [lo for lo, _ in a] == [0, 30, 60]
    assert all(x.dtype == np.uint8 and np.array_equal(x, y) for (_, x), (_, y) in zip(a, b, strict=False))
    assert np.array_equal(a[0][1], images)  # copy 0: the real images
    assert len(a[2][1]) == 15 and not np.array_equal(a[1][1], images)
    assert not np.array_equal(a[1][1], next(b for lo, b in galleries.augmented(images, 75, seed=6) if lo == 30))


def test_groups_are_deterministic_and_even():
    g = galleries.groups(120_000, seed=0)
    assert np.array_equal(g, galleries.groups(120_000, seed=0))
    assert np.array_equal(galleries.groups(70_000, seed=0), g[:70_000])
    counts = np.bincount(g, minlength=galleries.GROUPS)
    assert len(counts) == galleries.GROUPS and counts.min() > 1000 and counts.max() < 1400  # 1% each: 1,200


def test_gallery_refuses_nothing_to_copy():
    with pytest.raises(InvalidArgumentError):
        galleries.jittered(np.ones((0, 4), np.float32), 10, seed=0)


def _filtered_recall(store, name, g, column, queries, values, flt, **params) -> float:
    found = []
    for i, q in enumerate(queries):
        hits = {h.id for h in store.query(name, q, 10, flt(values[i]), with_payload=False, **params)}
        ref = np.argsort(-np.where(column == values[i], g @ q, -np.inf), kind="stable")[:10]
        found.append(len(hits & set(ref.tolist())) / 10)
    return float(np.mean(found))


def test_filtered_search_keeps_recall_where_the_planner_switches(tmp_path):
    """8,000 16-d points (64 B each) with the full-scan threshold at 16 KB
    (256 points): a class (about 800 points) is searched in the graph, a 1%
    group (about 80) by a scan of its payload index. Both keep recall@10
    against exact search with the same filter, for a class far from the
    query too. The graph is what answered the class filter: with a tiny ef
    its recall drops, while with the default threshold (everything scanned)
    the same tiny ef stays exact."""
    g, labels, groups, queries = clustered(8000, 16, seed=0)
    by_class = lambda c: QueryFilter(labels=(int(c),))  # noqa: E731
    by_group = lambda v: QueryFilter(fields=(("group", (int(v),)),))  # noqa: E731
    other = (np.arange(100) * 3) % 10  # mostly not the query's own class
    with build_clustered(tmp_path / "low", "t", g, labels, groups, full_scan_threshold_kb=16) as store:
        assert _filtered_recall(store, "t", g, labels, queries, other, by_class, hnsw_ef=128) >= 0.97
        assert _filtered_recall(store, "t", g, groups, queries, np.arange(100), by_group, hnsw_ef=128) == 1.0
        assert _filtered_recall(store, "t", g, labels, queries, other, by_class, hnsw_ef=10) < 0.97
        assert _filtered_recall(store, "t", g, labels, queries, other, by_class, hnsw_ef=128, acorn=True) >= 0.97
    with build_clustered(tmp_path / "default", "t", g, labels, groups) as store:
        assert _filtered_recall(store, "t", g, labels, queries, other, by_class, hnsw_ef=10) == 1.0


def test_a_small_filter_above_the_threshold_needs_its_field_linked(tmp_path):
    """The full-scan threshold at 2 KB (32 points): the 1% groups (about 80
    points) are answered in the graph. Without filter-aware links for the
    group field, the walk stays among points the filter rejects and finds
    few of the right neighbours (the 1M pixels row of docs/scale.md); with
    the field linked, recall holds."""
    g, labels, groups, queries = clustered(8000, 16, seed=0)
    by_group = lambda v: QueryFilter(fields=(("group", (int(v),)),))  # noqa: E731
    wanted = np.arange(100)
    with build_clustered(
        tmp_path / "unlinked", "t", g, labels, groups, full_scan_threshold_kb=2, linked_fields=("label",)
    ) as store:
        unlinked = _filtered_recall(store, "t", g, groups, queries, wanted, by_group, hnsw_ef=128)
    with build_clustered(
        tmp_path / "linked", "t", g, labels, groups, full_scan_threshold_kb=2, linked_fields=("label", "group")
    ) as store:
        linked = _filtered_recall(store, "t", g, groups, queries, wanted, by_group, hnsw_ef=128)
    assert unlinked < 0.5 <= 0.97 <= linked, (unlinked, linked)


def test_field_filter_on_each_backend(store, prefix):
    """QueryFilter.fields matches any indexed payload field, on Edge and on the server code path."""
    name = prefix + "fields"
    store.create(
        schema.CollectionSpec(name, dim=4, payload_indexes={"label": "integer", "group": "integer", "tag": "keyword"})
    )
    v = np.eye(4, dtype=np.float32)[np.arange(20) % 4] + 0.01
    store.upsert(name, list(range(20)), v, [{"label": i % 10, "group": i % 5, "tag": "ab"[i % 2]} for i in range(20)])
    store.finalize(name)
    assert store.count(name, QueryFilter(fields=(("group", (1, 2)),))) == 8
    assert store.count(name, QueryFilter(fields=(("tag", ("a",)), ("group", (0,))))) == 2
    hits = store.query(name, v[0], 20, QueryFilter(labels=(3,), fields=(("group", (3,)),)))
    assert sorted(h.id for h in hits) == [3, 13]
    assert not QueryFilter(fields=(("group", (1,)),)).is_empty()


def test_spec_refuses_a_linked_field_without_an_index():
    with pytest.raises(InvalidArgumentError, match="no payload index"):
        schema.CollectionSpec("x", dim=4, linked_fields=("group",))
    with pytest.raises(InvalidArgumentError, match="full scan threshold kb must be at least 1"):
        schema.CollectionSpec("x", dim=4, full_scan_threshold_kb=0)


@pytest.mark.slow
def test_bench_scale_suite_small(tmp_path, fmnist):
    """The scale suite on two small pixel galleries of each kind: a row per
    kind and size with its figures, the filter grid, hnswlib beside it, the
    plot (no timing asserts)."""
    pytest.importorskip("hnswlib", reason="the scale extra is not installed (pip install '.[scale]')")
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "scale",
            "--sizes",
            "2000,3000",
            "--methods",
            "pixels",
            "--queries",
            "20",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "scale.json").read_text())
    assert [(r["kind"], r["points"]) for r in data["rows"]] == [
        ("vectors", 2000),
        ("vectors", 3000),
        ("images", 2000),
        ("images", 3000),
    ]
    for r in data["rows"]:
        assert r["disk_mib"] > 0 and r["upsert_s"] > 0 and (r["embed_s"] is None) == (r["kind"] == "vectors")
        assert r["search"]["plain"]["recall_at_10"] >= 0.95 and r["hnswlib"]["recall_at_10"] >= 0.9
        grid = {f"ef {ef}{a}" for ef in (128, 256, 1024) for a in ("", " + ACORN")}
        assert set(r["search"]["1% group"]) == {"default"} | grid
        default = r["search"]["1% group"]["default"]  # no options: the store's plan, and what ran
        assert default["strategies"] == {"scan": 20} and default["recall_at_10"] == 1.0
        assert r["search"]["plain"]["strategies"] == {"graph ef 128": 20}
        assert r["search"]["plain ef128 as asked"]["recall_at_10"] == r["search"]["plain"]["recall_at_10"]
        assert set(r["hnswlib"]["other class"]) == {"ef 128", "ef 256", "ef 1024"}
        assert min(r["hnswlib"]["own class"].values()) >= 0.9  # the filter callback keeps only the class
        assert r["search"]["1% group"]["ef 128"]["recall_at_10"] == 1.0  # 20-30 points: scanned, exact
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    assert "| images pixels | 3,000 |" in result.output
    assert "| vectors pixels | 2,000 | 1% group | 1.000 |" in result.output  # the default's table
    bare = CliRunner().invoke(
        main,
        ["bench", "scale", "--sizes", "2000", "--kinds", "vectors", "--methods", "pixels", "--queries", "10"]
        + ["--no-reference", "--out-dir", str(tmp_path / "bare")],
    )
    assert bare.exit_code == 0, bare.output
    assert json.loads((tmp_path / "bare" / "scale.json").read_text())["rows"][0]["hnswlib"] is None
    assert "hnswlib: left out (--no-reference)" in bare.output


@pytest.mark.slow
def test_bench_scale_memory_options(tmp_path, fmnist, monkeypatch):
    """--on-disk, --quantization and --full-scan-threshold reach the
    collection the suite builds, which is searched rescored at the
    product's oversampling; the heap part of the serving memory is reported
    beside the whole."""
    pytest.importorskip("hnswlib", reason="the scale extra is not installed (pip install '.[scale]')")
    from fmsearch.store.edge import EdgeStore

    specs, quant, create, query_batch = [], [], EdgeStore.create, EdgeStore.query_batch
    monkeypatch.setattr(EdgeStore, "create", lambda self, spec: specs.append(spec) or create(self, spec))
    monkeypatch.setattr(
        EdgeStore,
        "query_batch",
        lambda self, *a, **kw: quant.append(kw.get("quantization")) or query_batch(self, *a, **kw),
    )
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "scale",
            "--sizes",
            "2000",
            "--kinds",
            "vectors",
            "--methods",
            "pixels",
            "--queries",
            "20",
            "--on-disk",
            "--quantization",
            "int8",
            "--full-scan-threshold",
            "20000",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [(s.on_disk, s.quantization, s.full_scan_threshold_kb) for s in specs] == [(True, "int8", 20000)]
    assert all(q is not None and q.rescore for q in quant)
    assert {q.oversampling for q in quant} == {schema.DEFAULT_OVERSAMPLING["int8"], 8, 16, 32}
    data = json.loads((tmp_path / "scale.json").read_text())
    assert data["settings"]["full_scan_threshold_kb"] == 20000
    row = data["rows"][0]
    assert row["search"]["plain"]["recall_at_10"] >= 0.95
    assert all(row["search"][f"plain oversampling {o}"]["recall_at_10"] >= 0.95 for o in (8, 16, 32))
    assert 0 <= row["serve_rss_anon_mib"] <= row["serve_rss_mib"] + 1


def test_bench_scale_refuses_bad_options():
    runner = CliRunner()
    for args, words in (
        (["--sizes", "10"], "between 1000"),
        (["--kinds", "photos"], "--kinds: choose"),
        (["--methods", "sift"], "rerank stage"),
        (["--linked-fields", "nope"], "no payload index"),
        (["--full-scan-threshold", "0"], "--full-scan-threshold"),
    ):
        result = runner.invoke(main, ["bench", "scale", *args])
        assert result.exit_code != 0 and words in result.output, result.output
        assert "Traceback" not in result.output
