"""Write an evaluation to disk: metrics.json, report.md, pr_curve.png, results_grid.png."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ingest.fmnist import CLASS_NAMES, load_split
from ingest.images import decode_png

from . import schema
from .evaluate import SEED_RESULTS, EvalResult
from .store import Store


def _fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def seed_comparison(method: str, metrics_by_k: dict[str, dict[str, Any]], top1: float | None) -> str:
    """One line: the seed's figures for this method beside ours."""
    seed = SEED_RESULTS.get(method)
    if not seed:
        return f"The seed report has no figures for `{method}`."
    parts = []
    for key, theirs in seed.items():
        if key == "top1":
            parts.append(f"top-1 accuracy {theirs:.3f} (ours {_fmt(top1, 3)})")
            continue
        metric, k = key.split("@")
        name = {"P": "precision", "R": "recall", "F1": "f1"}[metric]
        ours = metrics_by_k.get(k, {}).get(name)
        if k == "?":
            parts.append(f"{metric} at an unstated K {theirs:.3f}")
        else:
            parts.append(f"{metric}@{k} {theirs:.3f} (ours {_fmt(ours, 3)})")
    return (
        f"Seed report for `{method}` (a handful of hand-picked queries): " + "; ".join(parts) + "."
    )


def render_markdown(data: dict[str, Any]) -> str:
    """report.md from the metrics.json dict."""
    s = data["settings"]
    lines = [
        f"# Evaluation: {method_label(data)}",
        "",
        f"- date: {data['date']}; backend: {data['backend']}; search: {data['search']}",
        f"- collection: `{data['collection']}` (fingerprint `{data['collection_metadata'].get('fingerprint')}`), "
        f"gallery {data['gallery_size']} train images",
        f"- queries: {data['queries']} test images (seed {s['seed']}); relevant = every gallery image of the query's class",
        "",
        "## Retrieval quality",
        "",
        "| K | precision@K | recall@K | F1@K | mAP@K |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k, m in data["metrics"].items():
        lines.append(f"| {k} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | {_fmt(m['map'])} |")
    rp = data["r_precision"]
    ann = data["ann_recall_at_10"]
    lines += [
        "",
        f"- top-1 retrieval accuracy: {_fmt(data['top1_accuracy'])}",
        f"- R-precision: {_fmt(rp['value'])} (on {rp['queries']} queries; R = gallery images of the class"
        + ("; first stage, the rerank reorders only the shortlist)" if "first_stage" in data else ")"),
        "- HNSW recall@10 against exact search: "
        + (f"{_fmt(ann['value'])} (on {ann['queries']} queries)" if ann["value"] is not None else ann.get("note", "n/a")),
        "",
        seed_comparison(s["method"], data["metrics"], data["top1_accuracy"]),
        "",
    ]
    if "first_stage" in data:
        lines += rerank_section(data)
    lines += ["## Per class", ""]
    ks = list(data["metrics"])
    pc = data["per_class"]
    lines.append("| class | " + " | ".join(f"P@{k}" for k in ks) + " | top-1 |")
    lines.append("|---|" + "---:|" * (len(ks) + 1))
    for c, cname in enumerate(pc["class_names"]):
        cells = [_fmt(pc[f"precision@{k}"][c], 3) for k in ks]
        lines.append(f"| {cname} | " + " | ".join(cells) + f" | {_fmt(pc['top1_accuracy'][c], 3)} |")
    lat, thr = data["latency"], data["throughput"]
    lines += [
        "",
        "## Speed",
        "",
        f"- single query (embed + search{' + SIFT on the query + rerank' if lat.get('rerank') else ''}, "
        f"k={lat['k']}, {lat['queries']} queries): "
        f"p50 {_fmt(lat['p50_ms'], 2)} ms, p95 {_fmt(lat['p95_ms'], 2)} ms, p99 {_fmt(lat['p99_ms'], 2)} ms",
        f"- batch ({thr['batch_size']} queries a request, limit {thr['limit']}): "
        f"{thr['queries_per_s']:.0f} queries/s ({thr['queries']} queries in {thr['seconds']:.1f} s)",
        "",
        "![precision and recall against K](pr_curve.png)",
        "",
        "![queries and their top-10](results_grid.png)",
        "",
    ]
    return "\n".join(lines)


def method_label(data: dict[str, Any]) -> str:
    """``siamese``; ``pixels [int8, rescore, oversampling 2]`` when quantised;
    ``siamese + sift (maxsim, w=1, N=100)`` when reranked."""
    s = data["settings"]
    label = s["method"]
    q = s.get("quantization", "none")
    if q != "none":
        parts = [q, "rescore" if s.get("rescore", True) else "no rescore"]
        if s.get("oversampling"):
            parts.append(f"oversampling {s['oversampling']:g}")
        label += f" [{', '.join(parts)}]"
    if "+" in s["method"]:
        w = s.get("fusion_weights")
        label += f" ({s.get('fusion', 'rrf')}{', weights ' + ','.join(f'{x:g}' for x in w) if w else ''}, N={s.get('shortlist', 100)})"
    if s.get("rescore_with"):
        label += f" -> rescored by {s['rescore_with']} (N={s.get('shortlist', 100)})"
    r = s.get("rerank")
    if r:
        label += f" + {r['stage']} ({r['mode']}, w={r['weight']:g}, N={r['shortlist']})"
    return label


def rerank_section(data: dict[str, Any]) -> list[str]:
    """With/without the rerank stage, overall and per class (where it helps)."""
    r, first = data["settings"]["rerank"], data["first_stage"]
    lines = [
        "## Rerank stage",
        "",
        f"SIFT ({r['mode']}) reranks the first {r['shortlist']} results of `{data['settings']['method']}`; "
        f"fused score = z(first-stage score) + {r['weight']:g} x z(SIFT score), z over the shortlist. "
        f"{_fmt(data['rerank']['ms_per_query'], 2)} ms per query (SIFT on the query + scoring).",
        "",
        "| K | P@K first stage | P@K reranked | change | mAP@K first stage | mAP@K reranked |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for k, m in data["metrics"].items():
        f = first["metrics"][k]
        lines.append(
            f"| {k} | {_fmt(f['precision'])} | {_fmt(m['precision'])} | {m['precision'] - f['precision']:+.4f} | "
            f"{_fmt(f['map'])} | {_fmt(m['map'])} |"
        )
    k = "10" if "10" in data["metrics"] else list(data["metrics"])[-1]
    lines += ["", f"Per class, P@{k} (where the rerank helps and where it hurts):", "",
              f"| class | first stage | reranked | change |", "|---|---:|---:|---:|"]
    pc, fpc = data["per_class"], first["per_class"]
    for c, cname in enumerate(pc["class_names"]):
        a, b = fpc[f"precision@{k}"][c], pc[f"precision@{k}"][c]
        change = "n/a" if a is None or b is None else f"{b - a:+.3f}"
        lines.append(f"| {cname} | {_fmt(a, 3)} | {_fmt(b, 3)} | {change} |")
    return lines + [""]


def plot_pr_curve(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = data["pr_curve"]
    fig, ax1 = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax1.plot(curve["k"], curve["precision"], color="tab:blue", label="precision@K")
    ax1.set_xlabel("K (results retrieved)")
    ax1.set_ylabel("precision@K", color="tab:blue")
    ax1.set_ylim(0, 1)
    ax2 = ax1.twinx()
    ax2.plot(curve["k"], curve["recall"], color="tab:orange", label="recall@K")
    ax2.set_ylabel("recall@K (relevant = whole class)", color="tab:orange")
    ax1.grid(alpha=0.3)
    ax1.set_title(f"{data['settings']['method']}: precision and recall against K ({data['queries']} queries)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_results_grid(result: EvalResult, store: Store, path: Path, data_dir: str | os.PathLike | None) -> None:
    """Like the seed's figures: query, then its top-10; wrong-class hits outlined red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = min(result.config.grid_queries, len(result.query_indices))
    rows = np.random.default_rng(result.config.seed + 2).permutation(len(result.query_indices))[:n]
    top = 10
    test = load_split("test", data_dir)
    fig, axes = plt.subplots(max(n, 1), top + 1, figsize=(1.25 * (top + 1), 1.5 * max(n, 1)), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, row in enumerate(rows):
        q_label = int(result.query_labels[row])
        ax = axes[r, 0]
        ax.imshow(test.images[result.query_indices[row]], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"query\n{CLASS_NAMES[q_label]}", fontsize=7, fontweight="bold")
        ids = [int(i) for i in result.hit_ids[row, :top] if i >= 0]
        records = store.retrieve(result.collection, ids, with_payload=[schema.IMAGE, schema.LABEL])
        for j, rec in enumerate(records):
            ax = axes[r, j + 1]
            ax.imshow(decode_png(rec.payload[schema.IMAGE]), cmap="gray", vmin=0, vmax=255)
            label = int(rec.payload[schema.LABEL])
            wrong = label != q_label
            ax.set_title(CLASS_NAMES[label], fontsize=7, color="red" if wrong else "black")
            if wrong:
                ax.add_patch(Rectangle((-0.5, -0.5), 28, 28, fill=False, edgecolor="red", linewidth=3))
    fig.suptitle(f"{result.config.method}: test queries and their top-{top} (red: another class)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    result: EvalResult, store: Store, out_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Write the four files; returns the metrics.json dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    (out / "metrics.json").write_text(json.dumps(data, indent=2))
    (out / "report.md").write_text(render_markdown(data))
    plot_pr_curve(data, out / "pr_curve.png")
    plot_results_grid(result, store, out / "results_grid.png", data_dir)
    return data


def results_table(paths: list[str | os.PathLike]) -> str:
    """Markdown tables from metrics.json files: category runs (one row each,
    the seed's figures beside ours, and for reranked runs the first stage's
    P@10 beside), then near-duplicate runs."""
    loaded = [(p, json.loads(Path(p).read_text())) for p in paths]
    category = [p for p, d in loaded if d.get("task", "category") == "category"]
    near = [d for _, d in loaded if d.get("task") == "near-duplicate"]
    parts = [_category_table(category)] if category else []
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
            f"| {d['settings']['method']} + sift {r['mode']} (w={r['weight']:g}, N={r['shortlist']}) | {d['sources']} | "
            + " | ".join(cells)
            + f" | {m['recall@1']:.3f} -> {m['recall@1_reranked']:.3f} | {m['recall@10']:.3f} -> {m['recall@10_reranked']:.3f} |"
        )
    return "\n".join(rows)


def mode_key(settings: dict[str, Any]) -> tuple:
    """What identifies a search mode, in metrics.json settings and in the
    modes benchmark's rows alike."""
    method = settings["method"]
    quant = settings.get("quantization", "none")
    combined = "+" in method or bool(settings.get("rescore_with"))
    return (
        method,
        quant,
        settings.get("rescore", True) if quant != "none" else None,
        settings.get("oversampling") if quant != "none" else None,
        settings.get("fusion", "rrf") if "+" in method else None,
        tuple(settings.get("fusion_weights") or ()) if "+" in method else None,
        settings.get("rescore_with") or None,
        settings.get("shortlist", 100) if combined else None,
    )


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
            timed[mode_key(row["settings"])] = row
    head = "| mode | P@1 | P@10 | recall@10 vs exact | single query p50 ms | bytes / vector searched (float32) |"
    if timed:
        head = ("| mode | P@1 | P@10 | recall@10 vs exact | single query p50 ms (bench) | vs plain query | "
                "bytes / vector searched (float32) | disk bytes / point |")
    rows = [head, "|---" + "|---:" * (head.count("|") - 2) + "|"]
    for path in paths:
        data = json.loads(Path(path).read_text())
        if data.get("task", "category") != "category" or data["settings"].get("rerank"):
            continue
        m, ann, vb = data["metrics"], data["ann_recall_at_10"], data.get("vector_bytes")
        if ann["value"] is not None:
            recall = _fmt(ann["value"], 4)
        else:
            recall = "1 (exact)" if data["search"] == "exact" else "-"
        size = "-" if not vb else f"{vb['searched']} ({vb['float32']})"
        cells = [method_label(data), _fmt(m.get("1", {}).get("precision"), 4), _fmt(m.get("10", {}).get("precision"), 4), recall]
        if timed:
            row = timed.get(mode_key(data["settings"]))
            disk = None if row is None else row["disk_bytes_per_point"]
            cells += [
                "not benchmarked" if row is None else f"{row['p50_ms']:.2f}",
                "-" if row is None or row["vs_plain"] is None else f"{row['vs_plain']:.2f}x",
                size, "-" if disk is None else f"{disk:.0f}",
            ]
        else:
            cells += [f"{data['latency']['p50_ms']:.2f}", size]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _category_table(paths: list[str | os.PathLike]) -> str:
    rows = [
        "| method | search | queries | P@1 | P@5 | P@10 | P@20 | mAP@10 | top-1 acc. | batch q/s | P@10 without rerank | seed report (hand-picked queries) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for path in paths:
        data = json.loads(Path(path).read_text())
        method = data["settings"]["method"]
        label = method_label(data)
        m = data["metrics"]

        def cell(k: str, name: str) -> str:
            return _fmt(m.get(k, {}).get(name), 3)

        seed = SEED_RESULTS.get(method)
        seed_text = ", ".join(f"{k} {v:.3f}" for k, v in seed.items()) if seed else "none"
        rows.append(
            f"| {label} | {data['search'].split(' ')[0]} | {data['queries']} | {cell('1', 'precision')} | "
            f"{cell('5', 'precision')} | {cell('10', 'precision')} | {cell('20', 'precision')} | "
            f"{cell('10', 'map')} | {_fmt(data['top1_accuracy'], 3)} | "
            f"{data['throughput']['queries_per_s']:.0f} | "
            f"{_fmt(data['first_stage']['metrics']['10']['precision'], 3) if 'first_stage' in data and '10' in data['first_stage']['metrics'] else '-'} | "
            f"{seed_text} |"
        )
    return "\n".join(rows)
