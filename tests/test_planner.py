"""The filter-aware default (issue 38): the rule, each strategy's results
against exact filtered search on a small collection whose thresholds are
lowered so that the strategy switches, the calibration recorded at ingest,
collections built before it, and the plan shown by the CLI's -v."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_clustered, clustered

from fmsearch.cli import main
from fmsearch.store import QueryFilter, calibration, open_store, planner, schema
from fmsearch.store.edge import META_FILE
from fmsearch.store.planner import plan


def test_the_rule():
    big = dict(points=1_000_000, dim=64)
    assert plan(**big, matching=None) == planner.SearchPlan("graph", 128, points=1_000_000)
    assert plan(**big, matching=10_000).strategy == "scan"  # 10,000 x 234 under the budget
    assert plan(**big, matching=100_000).strategy == "graph"  # too many to scan, not calibrated
    wide = plan(**big, matching=100_000, filtered_ef=2048)
    assert (wide.strategy, wide.hnsw_ef, wide.exact) == ("wide graph", 2048, False)
    assert plan(**big, matching=600_000, filtered_ef=2048).strategy == "graph"  # half or more: the default walk
    assert plan(**big, matching=100_000, unlinked=True).strategy == "scan"  # no links: the graph cannot walk it
    assert plan(**big, matching=600_000, unlinked=True).strategy == "graph"
    assert plan(points=1_000_000, dim=784, matching=10_000, filtered_ef=256).strategy == "wide graph"
    asked = plan(**big, matching=100_000, filtered_ef=2048, hnsw_ef=64, acorn=True)
    assert (asked.strategy, asked.hnsw_ef, asked.acorn) == ("as asked", 64, True)
    assert plan(**big, matching=100_000, exact=True).exact
    assert "10.0% of 1,000,000" in wide.describe() and "ef 2048" in wide.describe()
    assert planner.filtered_ef({"filtered_search": {"ef": 512}}) == 512
    assert planner.filtered_ef({"filtered_search": {"ef": True}}) is None and planner.filtered_ef({}) is None


def _exact(g, column, value, q, k=10):
    return set(np.argsort(-np.where(column == value, g @ q, -np.inf), kind="stable")[:k].tolist())


def _run(store, name, queries, filters, **params):
    plans: list = []
    hits = store.query_batch(name, queries, 10, filters, with_payload=False, plans=plans, **params)
    return [{h.id for h in row} for row in hits], plans


@pytest.fixture
def lowered(tmp_path):
    """8,000 16-d points in 10 classes, Qdrant's full-scan threshold at 1 KB
    (so Qdrant itself never scans a class) and no links on ``group``."""
    g, labels, groups, queries = clustered(8000, 16, seed=1)
    store = build_clustered(
        tmp_path / "h", "t", g, labels, groups, full_scan_threshold_kb=1, linked_fields=(schema.LABEL,)
    )
    yield store, g, labels, groups, queries
    store.close()


def test_each_strategy_matches_exact_filtered_search(lowered):
    store, g, labels, groups, queries = lowered
    other = (np.arange(len(queries)) * 3 + 1) % 10
    by_class = [QueryFilter(labels=(int(c),)) for c in other]
    by_group = [QueryFilter(fields=(("group", (int(v),)),)) for v in range(len(queries))]
    class_ref = [_exact(g, labels, c, q) for c, q in zip(other, queries, strict=True)]
    group_ref = [_exact(g, groups, v, q) for v, q in enumerate(queries)]

    found, plans = _run(store, "t", queries, by_class)  # a class of ~800 points: under the scan budget
    assert {p.strategy for p in plans} == {"scan"} and found == class_ref

    store.scan_budget = 1  # nothing is cheap enough to scan now: the graph, not calibrated
    found, plans = _run(store, "t", queries, by_class)
    assert {(p.strategy, p.hnsw_ef) for p in plans} == {("graph", 128)}
    narrow, _ = _run(store, "t", queries, by_class, hnsw_ef=10)

    # the group field has no links: the planner scans it (the graph at ef 128 cannot walk it)
    found, plans = _run(store, "t", queries, by_group)
    assert {p.strategy for p in plans} == {"scan"} and found == group_ref
    walked, plans = _run(store, "t", queries, by_group, hnsw_ef=128)
    assert {p.strategy for p in plans} == {"as asked"}
    assert np.mean([len(a & b) / 10 for a, b in zip(walked, group_ref, strict=True)]) < 0.9

    result = calibration.calibrate(store, "t", minimum=1000, sample=60)
    assert result is not None and result["ef"] in calibration.EF_LADDER and result["sample"] == 60
    assert store.info("t").metadata["filtered_search"]["ef"] == result["ef"]
    found, plans = _run(store, "t", queries, by_class)
    assert {(p.strategy, p.hnsw_ef) for p in plans} == {("wide graph", max(result["ef"], 128))}
    recall = np.mean([len(a & b) / 10 for a, b in zip(found, class_ref, strict=True)])
    narrow_recall = np.mean([len(a & b) / 10 for a, b in zip(narrow, class_ref, strict=True)])
    assert recall >= 0.97 and recall >= narrow_recall, (recall, narrow_recall, result)

    found, plans = _run(store, "t", queries, None)  # unfiltered: the default walk, as before
    assert {(p.strategy, p.hnsw_ef, p.matching) for p in plans} == {("graph", 128, None)}
    found, plans = _run(store, "t", queries[:3], by_class[:3], exact=True)
    assert {p.strategy for p in plans} == {"exact"} and found == class_ref[:3]


def test_calibration_skips_small_collections_and_a_single_class(lowered):
    store, *_ = lowered
    assert calibration.calibrate(store, "t") is None  # 8,000 points: under CALIBRATE_FROM
    assert "filtered_search" not in store.info("t").metadata


def test_a_collection_built_before_the_planner_keeps_working(lowered, tmp_path):
    """No index record and no calibration in its metadata: only ``label`` is
    taken as linked, so a group filter is scanned, and class filters keep
    the default walk."""
    store, g, labels, groups, queries = lowered
    store.close()
    path = tmp_path / "h" / "collections" / "t" / META_FILE
    meta = json.loads(path.read_text())
    meta["metadata"].pop(schema.META_INDEX)
    path.write_text(json.dumps(meta))
    with open_store(None, home=tmp_path / "h") as old:
        old.scan_budget = 1
        found, plans = _run(old, "t", queries[:20], [QueryFilter(fields=(("group", (v,)),)) for v in range(20)])
        assert {p.strategy for p in plans} == {"scan"}
        assert found == [_exact(g, groups, v, q) for v, q in zip(range(20), queries[:20], strict=True)]
        assert {p.strategy for p in _run(old, "t", queries[:5], QueryFilter(labels=(3,)))[1]} == {"graph"}


def test_the_index_settings_are_recorded(lowered):
    store, *_ = lowered
    record = store.info("t").metadata[schema.META_INDEX]
    assert record == {"hnsw_m": 16, "ef_construct": 100, "full_scan_threshold_kb": 1, "linked_fields": ["label"]}
    spec = schema.CollectionSpec("x", dim=2, payload_indexes={**schema.PAYLOAD_INDEXES, "group": "integer"})
    assert spec.linked_fields == ("label",)  # a second linked field can cost label its links
    assert schema.recorded_linked_fields({}) == schema.LINKED_FIELDS == ("label",)


def test_cli_shows_the_plan(home):
    """-v logs the strategy each search ran."""
    out = subprocess.run(
        [sys.executable, "-m", "fmsearch", "--home", str(home), "-v", "query", "--id", "60000", "-m", "pixels"]
        + ["--class", "Bag"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "fmnist_pixels: scan of the filtered points: filter keeps ~" in out.stderr
    listing = CliRunner().invoke(main, ["--home", str(home), "collections", "--json"])
    rows = {json.loads(line)["collection"]: json.loads(line) for line in listing.output.splitlines()}
    assert rows["fmnist_pixels"]["filtered_ef"] is None and rows["fmnist_pixels"]["linked_fields"] == ["label"]


def test_collections_shows_the_calibrated_ef(lowered, tmp_path):
    store, *_ = lowered
    ef = calibration.calibrate(store, "t", minimum=1000, sample=40)["ef"]
    store.close()
    listing = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "collections"])
    assert listing.exit_code == 0, listing.output
    assert "filtered ef" in listing.output.splitlines()[0]
    assert listing.output.splitlines()[1].split()[5] == str(ef), listing.output
