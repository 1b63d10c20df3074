"""Near-duplicate evaluation: find the exact gallery image a query was made from.

Queries are gallery (train) images under seeded transforms
(:mod:`fmsearch.images.transforms`: rotation, scale, shift, brightness/contrast, JPEG);
the one relevant result is the source image itself. For each transform the
same first stage is measured without and with the SIFT rerank stage:
recall@1 (the source ranks first) and recall@10.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import RESULTS_DIR
from fmsearch.images.fmnist import load_split
from fmsearch.images.transforms import DESCRIPTIONS, TRANSFORMS, apply
from fmsearch.search.rerank import RerankConfig
from fmsearch.search.searcher import Searcher
from fmsearch.store import QueryFilter, Store, schema

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

    @property
    def out_dir(self) -> str:
        """Where this run writes when no folder is named."""
        return f"{RESULTS_DIR}/near-duplicate-{self.method}-sift-{self.rerank.mode}"

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise InvalidArgumentError(f"seed must be at least 0, got {self.seed}", param="seed")
        if not 1 <= self.sources <= MAX_SOURCES:
            raise InvalidArgumentError(
                f"sources must be between 1 and {MAX_SOURCES}, got {self.sources}", param="sources"
            )
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown or not self.transforms:
            raise InvalidArgumentError(
                f"unknown transform {unknown[0] if unknown else ''!r}; valid: {', '.join(TRANSFORMS)}"
            )
        self.rerank.check_holds(10)
        if self.batch_size < 1:
            raise InvalidArgumentError(f"batch size must be at least 1, got {self.batch_size}", param="batch_size")


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
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": asdict(config),
        "backend": store.location,
        "collection": info.name,
        "collection_metadata": dict(info.metadata),
        "sift_collection": reranker.collection().name,
        "sift_fingerprint": reranker.collection().metadata.get(schema.META_FINGERPRINT),
        "gallery_size": int(gallery),
        "sources": int(n_src),
        "per_transform": per_transform,
        "mean": {k: float(np.mean([v[k] for v in per_transform.values()])) for k in keys},
    }
