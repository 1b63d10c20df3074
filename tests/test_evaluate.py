"""`evaluate` end to end on a tiny gallery, checked against numpy brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.evaluation.category import EvalConfig, evaluate
from fmsearch.evaluation.report import write_report
from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.search import SearchMode

GALLERY = 300


def _numpy_precision(fmnist, q_idx, ks):
    emb = get_embedder("pixels")
    g = emb.embed(fmnist["train"].images[:GALLERY])
    q = emb.embed(fmnist["test"].images[q_idx])
    s = q @ g.T
    order = np.lexsort((np.broadcast_to(np.arange(GALLERY), s.shape), -s), axis=1)
    rel = fmnist["train"].labels[:GALLERY][order] == fmnist["test"].labels[q_idx][:, None]
    return {k: rel[:, :k].mean() for k in ks}, rel[:, 0].mean()


@pytest.mark.slow
def test_exact_evaluation_matches_numpy(store, prefix, fmnist, tmp_path):
    ingest(store, get_embedder("pixels"), limit=GALLERY, prefix=prefix)
    config = EvalConfig("pixels", queries=60, ks=(1, 5, 10), exact=True, latency_queries=5, rprecision_queries=10)
    result = evaluate(store, config, prefix=prefix)
    expected, top1 = _numpy_precision(fmnist, result.query_indices, (1, 5, 10))
    data = write_report(result, store, tmp_path / "out")
    for k, p in expected.items():
        assert data["metrics"][str(k)]["precision"] == pytest.approx(p, abs=1e-9)
    assert data["top1_accuracy"] == pytest.approx(top1)
    assert data["gallery_size"] == GALLERY and sum(data["gallery_per_class"]) == GALLERY
    assert data["queries"] == 60 and len(set(result.query_indices.tolist())) == 60
    assert data["ann_recall_at_10"]["value"] is None  # exact search: nothing to compare
    assert 0 < data["r_precision"]["value"] <= 1
    assert data["latency"]["queries"] == 5 and data["latency"]["p50_ms"] > 0
    assert data["collection_metadata"]["fingerprint"] == "pixels-v1"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "confusion.png",
        "metrics.json",
        "pr_curve.png",
        "report.md",
        "results_grid.png",
    ]
    # the confusion matrix against numpy's top 10: row c, the share of class c's queries' hits in each class
    labels = fmnist["train"].labels[:GALLERY][result.hit_ids[:, :10]]
    q_labels = fmnist["test"].labels[result.query_indices]
    for c, row in enumerate(data["confusion"]["matrix"]):
        hits = labels[q_labels == c].ravel()
        assert row == (None if hits.size == 0 else pytest.approx(np.bincount(hits, minlength=10) / hits.size))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Retrieval confusion (share of each query class's top-10 hits in each class)" in report
    assert "| 10 |" in report and "The seed report has no figures for `pixels`" in report
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]["seed"] == 0


def test_expanded_evaluation_matches_numpy(store, prefix, fmnist):
    """An evaluation with --expand 3 scores the same rankings as average
    query expansion computed by hand, and its R-precision uses them too."""
    ingest(store, get_embedder("pixels"), limit=GALLERY, prefix=prefix)
    config = EvalConfig(
        SearchMode("pixels", expand=3), queries=30, ks=(1, 10), exact=True, latency_queries=2, rprecision_queries=5
    )
    result = evaluate(store, config, prefix=prefix)
    emb = get_embedder("pixels")
    g = emb.embed(fmnist["train"].images[:GALLERY])
    q = emb.embed(fmnist["test"].images[result.query_indices])
    top = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :3]
    expanded = q + g[top].sum(axis=1)
    expanded /= np.linalg.norm(expanded, axis=1, keepdims=True)
    order = np.argsort(-(expanded @ g.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(result.hit_ids[:, :10], order)
    rel = fmnist["train"].labels[:GALLERY][order] == fmnist["test"].labels[result.query_indices][:, None]
    assert result.summary["metrics"]["10"]["precision"] == pytest.approx(rel.mean(), abs=1e-9)
    assert result.config.settings()["expand"] == 3 and 0 < result.summary["r_precision"]["value"] <= 1


def test_hnsw_run_reports_ann_recall_and_ignores_test_points(store, prefix, fmnist):
    ingest(store, get_embedder("pixels"), split="all", limit=GALLERY, prefix=prefix)
    config = EvalConfig("pixels", queries=40, ks=(1, 10), latency_queries=3, rprecision_queries=5)
    result = evaluate(store, config, prefix=prefix)
    assert result.gallery_size == GALLERY  # the 300 test points are not gallery
    assert (result.hit_ids[result.hit_ids >= 0] < 60000).all()
    assert result.summary["ann_recall_at_10"]["value"] >= 0.9


def test_seeded_subset_is_reproducible(store, prefix, fmnist):
    ingest(store, get_embedder("pixels"), limit=50, prefix=prefix)
    a = evaluate(
        store, EvalConfig("pixels", queries=20, seed=3, latency_queries=1, rprecision_queries=1), prefix=prefix
    )
    b = evaluate(
        store, EvalConfig("pixels", queries=20, seed=3, latency_queries=1, rprecision_queries=1), prefix=prefix
    )
    assert np.array_equal(a.query_indices, b.query_indices) and np.array_equal(a.hit_ids, b.hit_ids)


@pytest.mark.slow
def test_cli_evaluate_happy_path(home, tmp_path):
    out = tmp_path / "ev"
    result = CliRunner().invoke(
        main, ["--home", str(home), "evaluate", "-m", "pixels", "--queries", "30", "--k", "1,5", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "top-1 accuracy" in result.output and (out / "results_grid.png").stat().st_size > 10_000
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(home),
            "evaluate",
            "-m",
            "pixels",
            "--queries",
            "10",
            "--out",
            str(out),
            "--json",
            "--hnsw-ef",
            "256",
            "--acorn",
        ],
    )
    data = json.loads(result.output)
    assert data["queries"] == 10 and set(data["metrics"]) == {"1", "5", "10", "20"}
    assert data["search"] == "hnsw (ef=256, ACORN)"  # recorded as searched


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "sift2"], "unknown method 'sift2'"),
        (["-m", "pixels", "--k", "1,x"], "--k must be a comma-separated list of integers"),
        (["-m", "pixels", "--k", "0"], "--k values must be integers >= 1"),
        (["-m", "pixels", "--queries", "10001"], "--queries must be between 1 and 10000"),
        (["-m", "pixels", "--queries", "0"], "--queries must be between 1 and 10000"),
        (["-m", "pixels", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["-m", "pixels", "--expand", "101"], "--expand must be between 0 (off) and 100"),
    ],
)
def test_cli_evaluate_errors(home, tmp_path, args, message):
    result = CliRunner().invoke(main, ["--home", str(home), "evaluate", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_cli_evaluate_missing_collection(tmp_path):
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / "h"), "evaluate", "-m", "pixels", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "collection fmnist_pixels not found" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_cli_results_table(home, tmp_path):
    out = tmp_path / "ev"
    assert (
        CliRunner()
        .invoke(main, ["--home", str(home), "evaluate", "-m", "pixels", "--queries", "20", "--out", str(out)])
        .exit_code
        == 0
    )
    data = json.loads((out / "metrics.json").read_text())
    result = CliRunner().invoke(main, ["results", str(out / "metrics.json")])
    assert result.exit_code == 0
    row = result.output.strip().splitlines()[-1]
    assert row.startswith("| pixels | hnsw | 20 | ") and f"{data['metrics']['10']['precision']:.3f}" in row
    # the per-class table: each class's P@1 and P@10 from the run, the weakest in bold, the overall last
    result = CliRunner().invoke(main, ["results", "--per-class", str(out / "metrics.json"), str(out / "metrics.json")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "| class | pixels P@1 | pixels P@10 | pixels P@1 | pixels P@10 |" and len(lines) == 2 + 10 + 1
    pc = data["per_class"]
    shirt = lines[2 + 6].strip("| ").split(" | ")
    assert shirt[0] == "Shirt" and shirt[2].strip("*") == (
        "n/a" if pc["precision@10"][6] is None else f"{pc['precision@10'][6]:.3f}"
    )
    weakest = min((v, i) for i, v in enumerate(pc["top1_accuracy"]) if v is not None)[1]
    assert lines[2 + weakest].split(" | ")[1].startswith("**")
    assert lines[-1].split(" | ")[1] == f"{data['top1_accuracy']:.3f}"
    result = CliRunner().invoke(main, ["results", "--per-class", "--modes", str(out / "metrics.json")])
    assert result.exit_code != 0 and "two different tables" in result.output
    short = tmp_path / "k15"
    assert (
        CliRunner()
        .invoke(
            main, ["--home", str(home), "evaluate", "-m", "pixels", "--queries", "5", "--k", "1,5", "--out", str(short)]
        )
        .exit_code
        == 0
    )
    result = CliRunner().invoke(main, ["results", "--per-class", str(short / "metrics.json")])
    assert result.exit_code == 1 and "need runs evaluated with K=10" in result.output
    (tmp_path / "bad.json").write_text("{}")
    result = CliRunner().invoke(main, ["results", str(tmp_path / "bad.json")])
    assert result.exit_code == 1 and "not an fmsearch metrics.json" in result.output


@pytest.mark.slow
def test_cli_results_modes_table_with_the_benchmark(fmnist, tmp_path):
    """`results --modes`: a row per run, its quality from metrics.json and,
    with --bench, the benchmark's latency of the same mode."""

    def cli(*args):
        result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), *args])
        assert result.exit_code == 0, result.output
        return result.output

    for extra in ((), ("--quantization", "int8")):  # a home of its own: the shared one is read-only
        cli("ingest", "-m", "pixels", "--limit", "200", *extra)
    runs = {"plain": [], "int8": ["--quantization", "int8", "--no-rescore"]}
    for name, extra in runs.items():
        cli("evaluate", "-m", "pixels", "--queries", "20", "--out", str(tmp_path / name), *extra)
    cli("bench", "modes", "--methods", "pixels", "--queries", "10", "--out-dir", str(tmp_path / "b"))
    files = [str(tmp_path / name / "metrics.json") for name in runs]
    rows = cli("results", "--modes", *files).strip().splitlines()
    assert len(rows) == 4 and rows[3].startswith("| pixels [int8, no rescore] |") and "| 784 (3136) |" in rows[3]
    bench = json.loads((tmp_path / "b" / "modes.json").read_text())["modes"]
    rows = cli("results", "--modes", *files, "--bench", str(tmp_path / "b" / "modes.json")).strip().splitlines()
    assert "vs plain query" in rows[0]
    assert rows[2].startswith("| pixels |") and f"| {bench[0]['p50_ms']:.2f} | 1.00x |" in rows[2]
    no_rescore = next(r for r in bench if r["mode"] == "pixels [int8, no rescore]")
    assert f"| {no_rescore['p50_ms']:.2f} | {no_rescore['vs_plain']:.2f}x | 784 (3136) |" in rows[3]
    result = CliRunner().invoke(main, ["results", *files, "--bench", str(tmp_path / "b" / "modes.json")])
    assert result.exit_code != 0 and "--bench goes with --modes" in result.output
