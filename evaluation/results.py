"""Tables across evaluation runs, from their metrics.json files (and the
modes benchmark's JSON): what README's results tables are made from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fmsearch.evaluation import markdown
from fmsearch.evaluation.category import SEED_RESULTS
from fmsearch.evaluation.report import fmt
from fmsearch.search.mode import SearchMode


def results_table(paths: list[str | os.PathLike], digits: int = 3) -> str:
    """Markdown tables from metrics.json files: category runs (one row each,
    the seed's figures beside ours, and for reranked runs the first stage's
    P@10 beside), then near-duplicate runs."""
    loaded = [(p, json.loads(Path(p).read_text())) for p in paths]
    category = [p for p, d in loaded if d.get("task", "category") == "category"]
    near = [d for _, d in loaded if d.get("task") == "near-duplicate"]
    parts = [_category_table(category, digits)] if category else []
    if near:
        parts.append(near_duplicate_table(near))
    return "\n\n".join(parts)


def near_duplicate_table(runs: list[dict[str, Any]]) -> str:
    """recall@1 per transform, first stage -> reranked, one row per run."""
    names = list(runs[0]["per_transform"])
    rows = [
        "| method + rerank | sources | " + " | ".join(f"{n} R@1" for n in names) + " | mean R@1 | mean R@10 |",
        "|---|---:|" + "---:|" * (len(names) + 2),
    ]
    for d in runs:
        r = d["settings"]["rerank"]
        cells = []
        for n in names:
            v = d["per_transform"].get(n)
            cells.append("-" if v is None else f"{v['recall@1']:.3f} -> {v['recall@1_reranked']:.3f}")
        m = d["mean"]
        rows.append(
            f"| {d['settings']['method']} + sift {r['mode']} (w={r['weight']:g}, N={r['shortlist']}) "
            f"| {d['sources']} | " + " | ".join(cells) + f" | {m['recall@1']:.3f} -> {m['recall@1_reranked']:.3f} "
            f"| {m['recall@10']:.3f} -> {m['recall@10_reranked']:.3f} |"
        )
    return "\n".join(rows)


def modes_table(paths: list[str | os.PathLike], bench: str | os.PathLike | None = None) -> str:
    """One row per run: quality, recall against exact search, latency and the
    bytes per vector a search reads; for choosing a search mode.

    With ``bench`` (``bench-results/modes.json``), the latency comes from the
    modes benchmark (all modes timed round-robin in one process, and as a
    ratio to the plain query) instead of each run's own timing, and the
    collection's bytes on disk per point are added."""
    timed = {}
    if bench is not None:
        for row in json.loads(Path(bench).read_text())["modes"]:
            timed[SearchMode.from_settings(row["settings"]).key] = row
    head = "| mode | P@1 | P@10 | recall@10 vs exact | single query p50 ms | bytes / vector searched (float32) |"
    if timed:
        head = (
            "| mode | P@1 | P@10 | recall@10 vs exact | single query p50 ms (bench) | vs plain query | "
            "bytes / vector searched (float32) | disk bytes / point |"
        )
    rows = [head, "|---" + "|---:" * (head.count("|") - 2) + "|"]
    for path in paths:
        data = json.loads(Path(path).read_text())
        if data.get("task", "category") != "category" or data["settings"].get("rerank"):
            continue
        m, ann, vb = data["metrics"], data["ann_recall_at_10"], data.get("vector_bytes")
        if ann["value"] is not None:
            recall = fmt(ann["value"], 4)
        else:
            recall = "1 (exact)" if data["search"] == "exact" else "-"
        size = "-" if not vb else f"{vb['searched']} ({vb['float32']})"
        cells = [
            SearchMode.from_settings(data["settings"]).label,
            fmt(m.get("1", {}).get("precision"), 4),
            fmt(m.get("10", {}).get("precision"), 4),
            recall,
        ]
        if timed:
            row = timed.get(SearchMode.from_settings(data["settings"]).key)
            disk = None if row is None else row["disk_bytes_per_point"]
            cells += [
                "not benchmarked" if row is None else f"{row['p50_ms']:.2f}",
                "-" if row is None or row["vs_plain"] is None else f"{row['vs_plain']:.2f}x",
                size,
                "-" if disk is None else f"{disk:.0f}",
            ]
        else:
            cells += [f"{data['latency']['p50_ms']:.2f}", size]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _label(data: dict[str, Any]) -> str:
    """The mode's label, and the runtime that embedded the queries where the
    run records one (runs from before runtimes record none)."""
    label = SearchMode.from_settings(data["settings"]).label
    runtimes = {r for r in data.get("runtimes", {}).values() if r}
    return label + (f" [{', '.join(sorted(runtimes))}]" if runtimes else "")


def _category_table(paths: list[str | os.PathLike], digits: int = 3) -> str:
    head = [
        "method",
        "search",
        "queries",
        "P@1",
        "P@5",
        "P@10",
        "P@20",
        "mAP@10",
        "top-1 acc.",
        "batch q/s",
        "P@10 without rerank",
        "seed report (hand-picked queries)",
    ]
    rows = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        m, first = data["metrics"], data.get("first_stage", {}).get("metrics", {})
        seed = SEED_RESULTS.get(data["settings"]["method"])
        rows.append(
            [
                _label(data),
                data["search"].split(" ")[0],
                data["queries"],
                *(fmt(m.get(k, {}).get("precision"), digits) for k in ("1", "5", "10", "20")),
                fmt(m.get("10", {}).get("map"), digits),
                fmt(data["top1_accuracy"], digits),
                f"{data['throughput']['queries_per_s']:.0f}",
                fmt(first["10"]["precision"], digits) if "10" in first else "-",
                ", ".join(f"{k} {v:.3f}" for k, v in seed.items()) if seed else "none",
            ]
        )
    return markdown.table(head, rows, "llrrrrrrrrrl")


def _weakest(column: list[float | None]) -> int:
    """The row of a column's lowest value (a missing one counts as none)."""
    values = [2.0 if v is None else v for v in column]
    return min(range(len(values)), key=values.__getitem__)


def per_class_table(paths: list[str | os.PathLike], digits: int = 3) -> str:
    """One row per class, P@1 and P@10 of each run side by side (category
    runs' metrics.json), the weakest class of each run in bold."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    if any(d.get("task", "category") != "category" or "per_class" not in d for d in runs):
        raise ValueError("per-class tables need category runs' metrics.json")
    if any("precision@10" not in d["per_class"] for d in runs):
        raise ValueError("per-class tables need runs evaluated with K=10 among their --k values")
    names = runs[0]["per_class"]["class_names"]
    head = ["class", *(f"{_label(d)} P@{k}" for d in runs for k in (1, 10))]
    columns = [d["per_class"][key] for d in runs for key in ("top1_accuracy", "precision@10")]
    weakest = [_weakest(c) for c in columns]
    rows = [
        [
            name,
            *(
                f"**{fmt(c[i], digits)}**" if w == i else fmt(c[i], digits)
                for c, w in zip(columns, weakest, strict=False)
            ),
        ]
        for i, name in enumerate(names)
    ]
    rows.append(
        [
            "all",
            *(
                fmt(d[key] if key == "top1_accuracy" else d["metrics"]["10"]["precision"], digits)
                for d in runs
                for key in ("top1_accuracy", "precision@10")
            ),
        ]
    )
    return markdown.table(head, rows, "l" + "r" * (len(head) - 1))
