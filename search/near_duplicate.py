"""Near-duplicate evaluation: find the exact gallery image a query was made from.

Queries are gallery (train) images under seeded transforms
(:mod:`ingest.transforms`: rotation, scale, shift, brightness/contrast, JPEG);
the one relevant result is the source image itself. For each transform the
same first stage is measured without and with the SIFT rerank stage:
recall@1 (the source ranks first) and recall@10.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from ingest.fmnist import load_split
from ingest.transforms import DESCRIPTIONS, TRANSFORMS, apply

from . import schema
from .query import Searcher
from .rerank import RerankConfig
from .store import QueryFilter, Store

MAX_SOURCES = 10_000


@dataclass(frozen=True)
class NearDuplicateConfig:
    """Settings of one near-duplicate run (recorded in metrics.json)."""

    method: str
    sources: int = 1000
    seed: int = 0
    transforms: tuple[str, ...] = tuple(TRANSFORMS)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    exact: bool = False
    batch_size: int = 256

    def validate(self) -> None:
        if not 1 <= self.sources <= MAX_SOURCES:
            raise InvalidArgumentError(f"--sources must be between 1 and {MAX_SOURCES}, got {self.sources}")
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown or not self.transforms:
            raise InvalidArgumentError(f"unknown transform {unknown[0] if unknown else ''!r}; valid: {', '.join(TRANSFORMS)}")
        self.rerank.validate(10)


def _recall(ranked_ids: list[list[int]], sources: np.ndarray, k: int) -> float:
    return float(np.mean([s in ids[:k] for ids, s in zip(ranked_ids, sources, strict=True)])) if len(sources) else 0.0


def evaluate_near_duplicates(
    store: Store,
    config: NearDuplicateConfig,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    data_dir: str | os.PathLike | None = None,
    options: dict[str, dict] | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run one near-duplicate evaluation; returns the metrics.json dict.

    Raises:
        InvalidArgumentError, CollectionNotFoundError, CollectionMismatchError.
    """
    config.validate()
    searcher = Searcher(store, prefix=prefix, data_dir=data_dir, options=options)
    info = searcher.collection(config.method)
    reranker = searcher.reranker
    reranker.collection()
    embedder = searcher.embedder(config.method)
    gallery = store.count(info.name, QueryFilter(split="train"))
    if gallery == 0:
        raise InvalidArgumentError(f"{info.name} holds no train images; run `fmsearch ingest`")
    flt = QueryFilter(split="train")
    train = load_split("train", data_dir)
    # the ingest writes a prefix of the split: sample sources among the stored ones
    n_src = min(config.sources, gallery)
    sources = np.sort(np.random.default_rng(config.seed).choice(gallery, size=n_src, replace=False))
    if on_plan:
        on_plan(n_src * len(config.transforms))

    per_transform: dict[str, dict[str, Any]] = {}
    for t_i, name in enumerate(config.transforms):
        queries = apply(name, train.images[sources], config.seed + 1 + t_i)
        t0 = time.perf_counter()
        first: list[list] = []
        for lo in range(0, n_src, config.batch_size):
            vectors = embedder.embed(queries[lo : lo + config.batch_size])
            first += searcher.search_vectors(config.method, vectors, config.rerank.shortlist, flt, exact=config.exact)
        t1 = time.perf_counter()
        reranked = []
        for hits, image in zip(first, queries, strict=True):
            reranked.append(reranker.rerank(hits, reranker.query_descriptors(image), config.rerank))
            if progress:
                progress(1)
        t2 = time.perf_counter()
        first_ids = [[h.id for h in hits] for hits in first]
        rr_ids = [[h.id for h in hits] for hits in reranked]
        src_ids = schema.point_ids("train", sources)
        per_transform[name] = {
            "description": DESCRIPTIONS[name],
            "recall@1": _recall(first_ids, src_ids, 1),
            "recall@10": _recall(first_ids, src_ids, 10),
            "recall@1_reranked": _recall(rr_ids, src_ids, 1),
            "recall@10_reranked": _recall(rr_ids, src_ids, 10),
            # the rerank cannot find what the shortlist missed
            f"recall@{config.rerank.shortlist}": _recall(first_ids, src_ids, config.rerank.shortlist),
            "first_stage_ms_per_query": 1000 * (t1 - t0) / n_src,
            "rerank_ms_per_query": 1000 * (t2 - t1) / n_src,
        }
    keys = ("recall@1", "recall@10", "recall@1_reranked", "recall@10_reranked")
    return {
        "task": "near-duplicate",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": asdict(config),
        "backend": store.location,
        "collection": info.name,
        "collection_metadata": dict(info.metadata),
        "sift_collection": reranker.collection().name,
        "sift_fingerprint": reranker.collection().metadata.get("fingerprint"),
        "gallery_size": int(gallery),
        "sources": int(n_src),
        "per_transform": per_transform,
        "mean": {k: float(np.mean([v[k] for v in per_transform.values()])) for k in keys},
    }


def render_markdown(data: dict[str, Any]) -> str:
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


def plot_recall(data: dict[str, Any], path) -> None:
    """Bars: recall@1 per transform, without and with the rerank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(data["per_transform"])
    x = np.arange(len(names))
    before = [data["per_transform"][n]["recall@1"] for n in names]
    after = [data["per_transform"][n]["recall@1_reranked"] for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 4), dpi=110)
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
    plt.close(fig)


def write_near_duplicate_report(data: dict[str, Any], out_dir: str | os.PathLike) -> None:
    """metrics.json, report.md and recall.png."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(data, indent=2))
    (out / "report.md").write_text(render_markdown(data))
    plot_recall(data, out / "recall.png")
