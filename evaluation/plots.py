"""The plots of an evaluation, drawn on matplotlib Figures (no pyplot, no
global backend: a library call never changes how the caller's process plots).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.evaluation.category import EvalResult
from fmsearch.images.files import decode_png
from fmsearch.images.fmnist import load_split
from fmsearch.store import Store, schema


def _figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def pr_curve(data: dict[str, Any], path: Path) -> None:
    """Precision and recall against K."""
    curve = data["pr_curve"]
    fig = _figure(figsize=(7, 4.2), dpi=110)
    ax1 = fig.subplots()
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


def confusion(data: dict[str, Any], path: Path) -> None:
    """The retrieval confusion matrix as a heatmap: rows the query's class,
    columns the hits' class, each cell the share of the row's top-K hits."""
    from matplotlib.colors import PowerNorm

    conf, names = data["confusion"], data["per_class"]["class_names"]
    matrix = np.array([row if row is not None else [np.nan] * len(names) for row in conf["matrix"]])
    fig = _figure(figsize=(7.6, 6.4), dpi=110)
    ax = fig.subplots()
    # a square-root-like colour scale: leaks of a few per cent stay visible next to a diagonal near 1
    image = ax.imshow(matrix, cmap="Blues", norm=PowerNorm(0.4, vmin=0, vmax=1))
    for (i, j), v in np.ndenumerate(matrix):
        if np.isfinite(v) and v >= 0.005:
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.3 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"class of the top-{conf['k']} hits")
    ax.set_ylabel("class of the query")
    ax.set_title(f"{data['settings']['method']}: retrieval confusion ({data['queries']} queries)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)


def results_grid(result: EvalResult, store: Store, path: Path, data_dir: str | os.PathLike | None) -> None:
    """Like the seed's figures: query, then its top-10; wrong-class hits outlined red."""
    from matplotlib.patches import Rectangle

    n = min(result.config.grid_queries, len(result.query_indices))
    rows = np.random.default_rng(result.config.seed + 2).permutation(len(result.query_indices))[:n]
    top = 10
    names = result.class_names
    queries = (
        result.query_images
        if result.query_images is not None
        else load_split("test", data_dir).images[result.query_indices]
    )
    fig = _figure(figsize=(1.25 * (top + 1), 1.5 * max(n, 1)), dpi=100)
    axes = fig.subplots(max(n, 1), top + 1, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, row in enumerate(rows):
        q_label = int(result.query_labels[row])
        ax = axes[r, 0]
        ax.imshow(queries[row], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"query\n{names[q_label]}", fontsize=7, fontweight="bold")
        ids = [int(i) for i in result.hit_ids[row, :top] if i >= 0]
        records = store.retrieve(result.collection, ids, with_payload=[schema.IMAGE, schema.LABEL])
        for j, rec in enumerate(records):
            ax = axes[r, j + 1]
            ax.imshow(decode_png(rec.payload[schema.IMAGE]), cmap="gray", vmin=0, vmax=255)
            label = rec.payload.get(schema.LABEL)  # a folder image may have no class
            wrong = label != q_label
            ax.set_title(
                names[label] if label is not None else "(no class)", fontsize=7, color="red" if wrong else "black"
            )
            if wrong:
                ax.add_patch(Rectangle((-0.5, -0.5), 28, 28, fill=False, edgecolor="red", linewidth=3))
    fig.suptitle(f"{result.config.mode.method}: test queries and their top-{top} (red: another class)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def near_duplicate_recall(data: dict[str, Any], path) -> None:
    """Bars: recall@1 per transform, without and with the rerank."""
    names = list(data["per_transform"])
    x = np.arange(len(names))
    before = [data["per_transform"][n]["recall@1"] for n in names]
    after = [data["per_transform"][n]["recall@1_reranked"] for n in names]
    fig = _figure(figsize=(7.5, 4), dpi=110)
    ax = fig.subplots()
    ax.bar(x - 0.2, before, 0.4, label=f"{data['settings']['method']} alone")
    ax.bar(x + 0.2, after, 0.4, label=f"+ SIFT {data['settings']['rerank']['mode']} rerank")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall@1 (source image ranked first)")
    ax.set_title(f"Near-duplicates: {data['sources']} gallery images per transform")
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def _stored_images(store: Store, collection: str, ids) -> dict[int, np.ndarray]:
    """The images stored in the payload of ``ids`` (those that have one)."""
    wanted = sorted(set(ids))
    images = {}
    for lo in range(0, len(wanted), 256):
        for rec in store.retrieve(collection, wanted[lo : lo + 256], with_payload=[schema.IMAGE]):
            if rec.payload.get(schema.IMAGE):
                images[rec.id] = decode_png(rec.payload[schema.IMAGE])
    return images


def duplicate_groups(data: dict[str, Any], store: Store, path: Path, rows: int = 16, per_row: int = 10) -> None:
    """Every label conflict, then the largest other groups, as image rows
    (each image titled with its class and split; conflicts in red)."""
    groups = data["groups"]
    conflicts = [g for g in groups if g["conflict"]]
    others = sorted((g for g in groups if not g["conflict"]), key=lambda g: (-len(g["ids"]), g["ids"][0]))
    chosen = (conflicts + others)[:rows]
    per_row = max(6, min(per_row, max((len(g["ids"]) for g in chosen), default=0)))
    fig = _figure(figsize=(1.1 * per_row, 1.35 * max(len(chosen), 1) + 0.7), dpi=100)
    axes = fig.subplots(max(len(chosen), 1), per_row, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, g in enumerate(chosen):
        ids = g["ids"][:per_row]
        images = _stored_images(store, data["collection"], ids)
        where = g.get("splits") or [path.rsplit("/", 1)[-1][:14] for path in g["paths"]]  # a file name, cut
        for j, (pid, cname, split) in enumerate(zip(ids, g["classes"], where, strict=False)):
            ax = axes[r, j]
            if pid in images:
                ax.imshow(images[pid], cmap="gray", vmin=0, vmax=255)
            more = f" +{len(g['ids']) - per_row}" if j == per_row - 1 and len(g["ids"]) > per_row else ""
            label = f"{split} {pid}" if "splits" in g else split
            ax.set_title(f"{cname or 'no class'}\n{label}{more}", fontsize=6, color="red" if g["conflict"] else "black")
    m = data["summary"]
    fig.suptitle(
        f"{data['settings']['method']} duplicates at score >= {data['settings']['threshold']:g}:\n"
        f"{m['groups']} groups, {m['conflict_groups']} with conflicting labels (red), "
        f"{len(chosen)} shown",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (1.35 * max(len(chosen), 1) + 0.7)))
    fig.savefig(path)


def top_suspects(data: dict[str, Any], store: Store, path: Path, shown: int = 50, per_row: int = 10) -> None:
    """The likeliest label errors of a label-issues run as a numbered grid
    (given > nearer class; the flagged ones in red): the sheet to judge by eye."""
    chosen = data["suspects"][:shown]
    rows = max(1, -(-len(chosen) // per_row))
    fig = _figure(figsize=(1.5 * per_row, 1.72 * rows + 0.5), dpi=80)
    axes = fig.subplots(rows, per_row, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    images = _stored_images(store, data["collection"], [s["id"] for s in chosen])
    for i, (ax, s) in enumerate(zip(axes.ravel(), chosen, strict=False)):
        if s["id"] in images:
            ax.imshow(images[s["id"]], cmap="gray", vmin=0, vmax=255)
        ax.set_title(
            f"{i + 1}: {(s['given'] or '')[:7]}>{(s['suggested'] or '')[:7]}",
            fontsize=9,
            color="red" if s["flagged"] else "black",
        )
    m = data["summary"]
    fig.suptitle(
        f"{data['settings']['method']}, {data['scope']}: the likeliest {len(chosen)} label errors, "
        f"given > nearer class ({m['flagged']} flagged, in red)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (1.72 * rows + 0.5)))
    fig.savefig(path)


def label_suspects(data: dict[str, Any], store: Store, path: Path, rows: int = 16, neighbours: int = 8) -> None:
    """The likeliest label errors of a label-issues run as image rows: each
    suspect (its id, given class -> nearer class; red where flagged) beside
    its nearest neighbours (their class and score)."""
    chosen = data["suspects"][:rows]
    cols = 1 + neighbours
    fig = _figure(figsize=(1.05 * cols, 1.3 * max(len(chosen), 1) + 0.7), dpi=100)
    axes = fig.subplots(max(len(chosen), 1), cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    wanted = [s["id"] for s in chosen] + [n["id"] for s in chosen for n in s["neighbours"][:neighbours]]
    images = _stored_images(store, data["collection"], wanted)
    for r, s in enumerate(chosen):
        cells = [(s["id"], f"{s['given']} ->\n{s['suggested']}", "red" if s["flagged"] else "black")]
        cells += [(n["id"], f"{n['class']}\n{n['score']:.3f}", "black") for n in s["neighbours"][:neighbours]]
        for j, (pid, title, colour) in enumerate(cells):
            ax = axes[r, j]
            if pid in images:
                ax.imshow(images[pid], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{title}" if j else f"{pid}: {title}", fontsize=6, color=colour)
    m = data["summary"]
    fig.suptitle(
        f"{data['settings']['method']}, {data['scope']}: {m['flagged']} flagged of {m['images_checked']}; "
        f"the likeliest {len(chosen)} (given -> nearer class; flagged in red) and their nearest neighbours",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (1.3 * max(len(chosen), 1) + 0.7)))
    fig.savefig(path)


#: one colour per class (matplotlib's tab10, the page uses the same)
CLASS_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def gallery_map(data: dict[str, Any], path: Path) -> None:
    """The map: one dot per stored image, coloured by class."""
    x, y, labels = np.asarray(data["x"]), np.asarray(data["y"]), np.asarray(data["labels"])
    fig = _figure(figsize=(8, 7), dpi=110)
    ax = fig.subplots()
    size = max(0.5, min(8.0, 20000 / max(len(x), 1) * 0.2))
    for c, name in enumerate(data["class_names"]):
        on = labels == c
        ax.scatter(x[on], y[on], s=size, c=CLASS_COLOURS[c], label=name, linewidths=0, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=max(1.0, 6 / size), fontsize=7, loc="best", frameon=True)
    s = data["settings"]
    ax.set_title(
        f"{s['method']}: {data['points']} images, {s['algorithm']} (seed {s['seed']}); "
        f"neighbour keeping@10 {data['neighbour_keeping@10']:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
