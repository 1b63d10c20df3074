"""An evaluation written to disk: metrics.json, report.md and its plots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fmsearch.evaluation import markdown, plots
from fmsearch.evaluation.category import SEED_RESULTS, EvalResult
from fmsearch.search.mode import SearchMode
from fmsearch.store import Store


def fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def seed_comparison(method: str, metrics_by_k: dict[str, dict[str, Any]], top1: float | None) -> str:
    """One line: the seed's figures for this method beside ours."""
    seed = SEED_RESULTS.get(method)
    if not seed:
        return f"The seed report has no figures for `{method}`."
    parts = []
    for key, theirs in seed.items():
        if key == "top1":
            parts.append(f"top-1 accuracy {theirs:.3f} (ours {fmt(top1, 3)})")
            continue
        metric, k = key.split("@")
        name = {"P": "precision", "R": "recall", "F1": "f1"}[metric]
        ours = metrics_by_k.get(k, {}).get(name)
        if k == "?":
            parts.append(f"{metric} at an unstated K {theirs:.3f}")
        else:
            parts.append(f"{metric}@{k} {theirs:.3f} (ours {fmt(ours, 3)})")
    return f"Seed report for `{method}` (a handful of hand-picked queries): " + "; ".join(parts) + "."


def render_markdown(data: dict[str, Any]) -> str:
    """report.md from the metrics.json dict."""
    s = data["settings"]
    lines = [
        f"# Evaluation: {SearchMode.from_settings(data['settings']).label}",
        "",
        f"- date: {data['date']}; backend: {data['backend']}; search: {data['search']}",
        f"- collection: `{data['collection']}` (fingerprint `{data['collection_metadata'].get('fingerprint')}`), "
        f"gallery {data['gallery_size']} {data['gallery_words']['gallery']}",
        f"- queries: {data['queries']} {data['gallery_words']['queries']} "
        f"(seed {s['seed']}); relevant = every gallery image of the query's class",
        "",
        "## Retrieval quality",
        "",
        "| K | precision@K | recall@K | F1@K | mAP@K |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k, m in data["metrics"].items():
        lines.append(f"| {k} | {fmt(m['precision'])} | {fmt(m['recall'])} | {fmt(m['f1'])} | {fmt(m['map'])} |")
    rp = data["r_precision"]
    ann = data["ann_recall_at_10"]
    lines += [
        "",
        f"- top-1 retrieval accuracy: {fmt(data['top1_accuracy'])}",
        f"- R-precision: {fmt(rp['value'])} (on {rp['queries']} queries; R = gallery images of the class"
        + ("; first stage, the rerank reorders only the shortlist)" if "first_stage" in data else ")"),
        "- HNSW recall@10 against exact search: "
        + (
            f"{fmt(ann['value'])} (on {ann['queries']} queries)" if ann["value"] is not None else ann.get("note", "n/a")
        ),
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
        cells = [fmt(pc[f"precision@{k}"][c], 3) for k in ks]
        lines.append(f"| {cname} | " + " | ".join(cells) + f" | {fmt(pc['top1_accuracy'][c], 3)} |")
    lines += confusion_section(data)
    lat, thr = data["latency"], data["throughput"]
    lines += [
        "",
        "## Speed",
        "",
        f"- single query (embed + search{' + SIFT on the query + rerank' if lat.get('rerank') else ''}, "
        f"k={lat['k']}, {lat['queries']} queries): "
        f"p50 {fmt(lat['p50_ms'], 2)} ms, p95 {fmt(lat['p95_ms'], 2)} ms, p99 {fmt(lat['p99_ms'], 2)} ms",
        f"- batch ({thr['batch_size']} queries a request, limit {thr['limit']}): "
        f"{thr['queries_per_s']:.0f} queries/s ({thr['queries']} queries in {thr['seconds']:.1f} s)",
        "",
        "![precision and recall against K](pr_curve.png)",
        "",
        "![queries and their top-10](results_grid.png)",
        "",
    ]
    return "\n".join(lines)


def confusion_section(data: dict[str, Any]) -> list[str]:
    """The retrieval confusion matrix as a table: each query class's top-K
    hits by class, the largest leak of each row in bold."""
    conf, names = data["confusion"], data["per_class"]["class_names"]
    lines = [
        "",
        f"## Retrieval confusion (share of each query class's top-{conf['k']} hits in each class)",
        "",
        "| query class | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for c, row in enumerate(conf["matrix"]):
        if row is None:
            lines.append(f"| {names[c]} | " + " | ".join("-" for _ in names) + " |")
            continue
        leak = max((j for j in range(len(row)) if j != c), key=lambda j: row[j])
        cells = [f"**{v:.3f}**" if j == leak and v > 0 else f"{v:.3f}" for j, v in enumerate(row)]
        lines.append(f"| {names[c]} | " + " | ".join(cells) + " |")
    return lines + ["", "![retrieval confusion matrix](confusion.png)"]


def rerank_section(data: dict[str, Any]) -> list[str]:
    """With/without the rerank stage, overall and per class (where it helps)."""
    r, first = data["settings"]["rerank"], data["first_stage"]
    lines = [
        "## Rerank stage",
        "",
        f"SIFT ({r['mode']}) reranks the first {r['shortlist']} results of `{data['settings']['method']}`; "
        f"fused score = z(first-stage score) + {r['weight']:g} x z(SIFT score), z over the shortlist. "
        f"{fmt(data['rerank']['ms_per_query'], 2)} ms per query (SIFT on the query + scoring).",
        "",
        "| K | P@K first stage | P@K reranked | change | mAP@K first stage | mAP@K reranked |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for k, m in data["metrics"].items():
        f = first["metrics"][k]
        lines.append(
            f"| {k} | {fmt(f['precision'])} | {fmt(m['precision'])} | {m['precision'] - f['precision']:+.4f} | "
            f"{fmt(f['map'])} | {fmt(m['map'])} |"
        )
    k = "10" if "10" in data["metrics"] else list(data["metrics"])[-1]
    lines += [
        "",
        f"Per class, P@{k} (where the rerank helps and where it hurts):",
        "",
        "| class | first stage | reranked | change |",
        "|---|---:|---:|---:|",
    ]
    pc, fpc = data["per_class"], first["per_class"]
    for c, cname in enumerate(pc["class_names"]):
        a, b = fpc[f"precision@{k}"][c], pc[f"precision@{k}"][c]
        change = "n/a" if a is None or b is None else f"{b - a:+.3f}"
        lines.append(f"| {cname} | {fmt(a, 3)} | {fmt(b, 3)} | {change} |")
    return lines + [""]


def write_report(
    result: EvalResult, store: Store, out_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Write the five files; returns the metrics.json dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    (out / "metrics.json").write_text(json.dumps(data, indent=2))
    (out / "report.md").write_text(render_markdown(data))
    plots.pr_curve(data, out / "pr_curve.png")
    plots.confusion(data, out / "confusion.png")
    plots.results_grid(result, store, out / "results_grid.png", data_dir)
    return data


def render_near_duplicate_markdown(data: dict[str, Any]) -> str:
    """report.md of a near-duplicate run."""
    s, r = data["settings"], data["settings"]["rerank"]
    lines = [
        f"# Near-duplicate evaluation: {s['method']} + SIFT rerank",
        "",
        f"- date: {data['date']}; backend: {data['backend']}; collection `{data['collection']}`, "
        f"gallery {data['gallery_size']} train images",
        f"- queries: {data['sources']} gallery images (seed {s['seed']}) under each transform; "
        "relevant = the source image only",
        f"- rerank: SIFT {r['mode']} over the first {r['shortlist']}; fused = z(first-stage score) + "
        f"{r['weight']:g} x z(SIFT score)",
        "",
        "| transform | recall@1 | recall@1 reranked | recall@10 | recall@10 reranked | "
        f"recall@{r['shortlist']} (shortlist) | rerank ms/query |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    at_n = f"recall@{r['shortlist']}"
    for name, v in data["per_transform"].items():
        lines.append(
            f"| {name} | {v['recall@1']:.4f} | {v['recall@1_reranked']:.4f} | {v['recall@10']:.4f} | "
            f"{v['recall@10_reranked']:.4f} | {v[at_n]:.4f} | {v['rerank_ms_per_query']:.2f} |"
        )
    m = data["mean"]
    lines += [
        f"| **mean** | {m['recall@1']:.4f} | {m['recall@1_reranked']:.4f} | {m['recall@10']:.4f} | "
        f"{m['recall@10_reranked']:.4f} | | |",
        "",
        "Transforms:",
        "",
        *[f"- `{n}`: {v['description']}" for n, v in data["per_transform"].items()],
        "",
        "![recall@1 per transform](recall.png)",
        "",
    ]
    return "\n".join(lines)


def write_near_duplicate_report(data: dict[str, Any], out_dir: str | os.PathLike) -> None:
    """metrics.json, report.md and recall.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(data, indent=2))
    (out / "report.md").write_text(render_near_duplicate_markdown(data))
    plots.near_duplicate_recall(data, out / "recall.png")


def _group_row(g: dict[str, Any]) -> list[str]:
    where = g.get("splits") or g["paths"]  # FMNIST's split, or a folder image's path
    members = ", ".join(f"{i} ({c or 'no class'}, {w})" for i, c, w in zip(g["ids"], g["classes"], where, strict=True))
    return [str(len(g["ids"])), members, f"{g['min_score']:.4f}-{g['max_score']:.4f}"]


def render_duplicates_markdown(data: dict[str, Any], shown: int = 20) -> str:
    """report.md of a duplicates run: counts, label conflicts, test images
    with a train copy, per-class counts, the largest groups."""
    s, m, c = data["settings"], data["summary"], data["cost"]
    groups = data["groups"]
    # test images with a train copy: counted across a gallery's splits only (None: a gallery without splits)
    across = m["test_with_train_copy"] is not None and s["split"] == "all"
    head = ["class", "images in groups", "groups", "conflict groups", "test images with a train copy"]
    keys = ["class", "images_in_groups", "groups", "conflict_groups", "test_with_train_copy"]
    cut = len(head) if across else -1
    lines = [
        f"# Duplicates: {s['method']}, {data['scope']}",
        "",
        f"- date: {data['date']}; backend: {data['backend']}; collection `{data['collection']}`",
        f"- threshold: score >= {s['threshold']:g} ({s['threshold_source']}); "
        f"{'exact search' if s['exact'] else 'HNSW threshold queries'}",
        f"- {m['images_scanned']} images scanned: {m['pairs']} pairs in {m['groups']} groups "
        f"({m['images_in_groups']} images, largest group {m['largest_group']})",
        f"- **groups with conflicting labels: {m['conflict_groups']}** ({m['conflict_pairs']} pairs)",
        *([f"- **test images with a near-copy in train: {m['test_with_train_copy']}**"] if across else []),
        *([f"- {data['split_note']}"] if data.get("split_note") else []),
        f"- cost: {c['seconds']:.1f} s ({c['images_per_second']:.0f} images/s), peak resident memory "
        f"{c['peak_rss_mb']:.0f} MB (an all-pairs float32 matrix would take {c['all_pairs_matrix_mb']:.0f} MB)",
        "",
        "## Per class",
        "",
        markdown.table(head[:cut], [[p[k] for k in keys[:cut]] for p in m["per_class"]]),
        "",
    ]
    conflicts = [g for g in groups if g["conflict"]]
    cross = [g for g in groups if not g["conflict"] and {"train", "test"} <= set(g.get("splits", ()))]
    for title, chosen in (
        ("Groups with conflicting labels", conflicts),
        ("Test images with a near-copy in train", cross),
        ("Largest groups", sorted(groups, key=lambda g: -len(g["ids"]))),
    ):
        if title.startswith("Test images") and not across:
            continue
        lines += [f"## {title}", ""]
        if not chosen:
            lines += ["None.", ""]
            continue
        lines += [
            markdown.table(
                ["size", f"members: id (class, {'path' if s.get('gallery') else 'split'})", "scores"],
                [_group_row(g) for g in chosen[:shown]],
                "rlr",
            ),
            "",
        ]
        if len(chosen) > shown:
            lines += [f"... and {len(chosen) - shown} more in duplicates.json.", ""]
    lines += ["![groups as image rows](duplicates.png)", ""]
    return "\n".join(lines)


def write_duplicates_report(data: dict[str, Any], store: Store, out_dir: str | os.PathLike) -> None:
    """duplicates.json, report.md and duplicates.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "duplicates.json").write_text(json.dumps(data, indent=1))
    (out / "report.md").write_text(render_duplicates_markdown(data))
    plots.duplicate_groups(data, store, out / "duplicates.png")


def label_detection_rows(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A benchmark run's detectors, fmsearch's first, each scored against
    the injected flips (cleanlab's rows where it ran)."""
    c = data["cost"]
    ours = {**data["detection"], "seconds": c["seconds"], "peak_rss_mb": c["peak_rss_mb"]}
    rows = [(f"fmsearch (the index's graph, k={data['settings']['k']})", ours)]
    return rows + list(data.get("reference", {}).get("rows", {}).items())


def _suspect_row(s: dict[str, Any]) -> list[str]:
    nb = ", ".join(f"{n['id']} {n['class']}" for n in s["neighbours"][:5])
    margin = "n/a" if s["margin"] is None else f"{s['margin']:.4f}"
    flagged = "yes" if s["flagged"] else ""
    return [str(s["id"]), s["given"] or "", s["suggested"] or "", margin, flagged, f"{s['vote_share']:.2f}", nb]


def detection_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Detectors against injected flips, as a markdown table (a row with a
    ``note`` was not run, and says why)."""
    cells = []
    for label, row in rows:
        if "note" in row:
            cells.append([label, row["note"], "", "", "", "", "", ""])
            continue
        figures = [f"{row['auroc']:.4f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}"]
        cells.append([label, *figures, str(row["flagged"]), f"{row['seconds']:.1f}", f"{row['peak_rss_mb']:.0f}"])
    head = ["detector", "AUROC", "precision", "recall", "F1", "flagged", "seconds", "peak MiB"]
    return markdown.table(head, cells, "lrrrrrrr")


def _detection_section(data: dict[str, Any]) -> list[str]:
    """A benchmark run's table: every detector against the injected flips."""
    n = data["noise"]
    return [
        f"## Against injected noise: {n['rate']:g} of the labels, {n['mode']}, seed {n['seed']}",
        "",
        f"{n['flipped']} labels flipped in a copy (the stored payload untouched). Confusable classes: "
        + ", ".join(f"{a} -> {b}" for a, b in n["confusable"].items())
        + ".",
        "",
        detection_table(label_detection_rows(data)),
        "",
    ]


def render_label_issues_markdown(data: dict[str, Any], shown: int = 30) -> str:
    """report.md of a label-issues run: counts, the given / suggested class
    pairs, the benchmark table where noise was injected, the top suspects
    and outliers."""
    s, m, c = data["settings"], data["summary"], data["cost"]
    lines = [
        f"# Label issues: {s['method']}, {data['scope']}",
        "",
        f"- date: {data['date']}; backend: {data['backend']}; collection `{data['collection']}`",
        f"- {m['images_checked']} images checked against {data['pool']}: each image's {s['k']} nearest "
        f"neighbours from the collection's {'exact search' if s['exact'] else 'HNSW index'}, itself left out",
        f"- margin: mean similarity of the image's {s['m']} nearest images of its own class minus that of the "
        f"nearest other class; flagged at margin <= {m['threshold']:.4f} ({s['flag_at']:g} x the median "
        f"margin {m['median_margin']:.4f}, reversed)",
        f"- **flagged: {m['flagged']}** ({m['flagged_share']:.2%} of the images checked)",
        f"- cost: {c['seconds']:.1f} s (graph {c['seconds_graph']:.1f} s, {c['class_queries']} class-filtered "
        f"queries), peak resident memory {c['peak_rss_mb']:.0f} MB",
        "",
    ]
    if "detection" in data:
        lines += _detection_section(data)
    lines += [
        "## Given and suggested class",
        "",
        markdown.table(
            ["given", "nearer", "flagged"],
            [[p["given"], p["suggested"], p["count"]] for p in m["pairs"][:shown]],
            "llr",
        )
        if m["pairs"]
        else "None flagged.",
        "",
        "## Per class",
        "",
        markdown.table(
            ["class", "checked", "flagged", "suggested"],
            [[p["class"], p["checked"], p["flagged"], p["suggested"]] for p in m["per_class"]],
            "lrrr",
        ),
        "",
    ]
    for title, rows in (("Top suspects", data["suspects"]), ("Top outliers", data["outliers"])):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["None.", ""]
            continue
        lines += [
            markdown.table(
                ["id", "given", "nearer", "margin", "flagged", "vote share", "nearest neighbours"],
                [_suspect_row(r) for r in rows[:shown]],
                "rllrlrl",
            ),
            "",
        ]
    lines += [
        "![the top suspects beside their neighbours](label_issues.png)",
        "",
        "![the likeliest 50, numbered (flagged in red)](top.png)",
        "",
    ]
    return "\n".join(lines)


def write_label_issues_report(data: dict[str, Any], store: Store, out_dir: str | os.PathLike) -> None:
    """label_issues.json, report.md, label_issues.png and top.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_issues.json").write_text(json.dumps(data, indent=1))
    (out / "report.md").write_text(render_label_issues_markdown(data))
    plots.label_suspects(data, store, out / "label_issues.png")
    plots.top_suspects(data, store, out / "top.png")
