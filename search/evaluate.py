"""Category-retrieval evaluation: FMNIST test images as queries, train as gallery.

One run embeds the queries, searches the method's collection in batches
(Qdrant's batch query, on either backend), and computes every metric of
:mod:`search.metrics` plus speed: single-query latency percentiles and
batch throughput, and, for HNSW, its recall@10 against exact search.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from ingest.fmnist import CLASS_NAMES, SPLIT_SIZES, load_split

from . import metrics, schema
from .query import Searcher
from .rerank import RerankConfig
from .store import QuantizationParams, QueryFilter, Store

logger = logging.getLogger(__name__)

# The seed report's own figures, by method, for the comparison line. The seed
# evaluated a handful of hand-picked queries, not the test split.
SEED_RESULTS: dict[str, dict[str, float]] = {
    "autoencoder": {"P@5": 0.8000, "R@5": 0.0040, "P@10": 0.7333, "R@10": 0.0073, "top1": 1.0},
    "resnet101": {
        "P@1": 0.789, "R@1": 0.002, "F1@1": 0.003,
        "P@5": 0.754, "R@5": 0.008, "F1@5": 0.015,
        "P@20": 0.702, "R@20": 0.052, "F1@20": 0.098,
    },
    "siamese": {"P@?": 0.8180, "R@?": 0.0206, "top1": 0.93},
}
CURVE_K = 100


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run (recorded in metrics.json)."""

    method: str
    queries: int | None = None  # None: the whole test split
    ks: tuple[int, ...] = (1, 5, 10, 20)
    seed: int = 0
    exact: bool = False
    batch_size: int = 256
    hnsw_ef: int | None = None
    latency_queries: int = 200
    ann_check_queries: int = 1000
    rprecision_queries: int = 200
    grid_queries: int = 8
    rerank: RerankConfig | None = None
    quantization: str = "none"
    rescore: bool = True
    oversampling: float | None = None
    #: fused methods ("a+b") combine with this; weights per method (optional)
    fusion: str = "rrf"
    fusion_weights: tuple[float, ...] | None = None
    rescore_with: str | None = None
    #: candidates per method for a fusion or a rescoring (at least 100, the curve's K)
    shortlist: int = 100

    def combined(self) -> bool:
        """A fusion of methods or a cross-method rescoring."""
        return "+" in self.method or self.rescore_with is not None

    def validate(self) -> None:
        n_test = SPLIT_SIZES["test"]
        if self.queries is not None and not 1 <= self.queries <= n_test:
            raise InvalidArgumentError(
                f"--queries must be between 1 and {n_test} (the test split), or 'all'; got {self.queries}"
            )
        if not self.ks or min(self.ks) < 1:
            raise InvalidArgumentError(f"--k values must be >= 1, got {self.ks}")
        if max(self.ks) > 1000:
            raise InvalidArgumentError(f"--k values must be <= 1000, got {max(self.ks)}")
        if self.batch_size < 1:
            raise InvalidArgumentError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.rerank is not None:
            self.rerank.validate(max(self.ks))
        schema.check_quantization(self.quantization)
        QuantizationParams(self.rescore, self.oversampling)  # validates the oversampling
        if self.combined() and self.rerank is not None:
            raise InvalidArgumentError("evaluate a fusion or --rescore-with without --rerank (one second stage at a time)")


@dataclass
class EvalResult:
    """Everything one run measured; :meth:`to_json` is metrics.json."""

    config: EvalConfig
    collection: str
    collection_metadata: dict[str, Any]
    gallery_size: int
    gallery_per_class: list[int]
    query_indices: np.ndarray
    query_labels: np.ndarray
    hit_ids: np.ndarray  # (n, L) ranked, -1 padded
    hit_labels: np.ndarray
    hit_scores: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.summary["date"],
            "settings": asdict(self.config),
            "collection": self.collection,
            "collection_metadata": self.collection_metadata,
            "gallery_size": self.gallery_size,
            "gallery_per_class": self.gallery_per_class,
            "queries": int(len(self.query_indices)),
            **{k: v for k, v in self.summary.items() if k != "date"},
        }


def _select_queries(n: int | None, seed: int) -> np.ndarray:
    total = SPLIT_SIZES["test"]
    if n is None or n == total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def _to_arrays(results, limit: int, keep_order: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hit lists to (ids, labels, scores) arrays, -1 padded; sorted by score
    then id (ties broken the same way on every backend) unless ``keep_order``
    (a reranked list is already in its final order)."""
    n = len(results)
    ids = np.full((n, limit), metrics.MISSING, np.int64)
    labels = np.full((n, limit), metrics.MISSING, np.int64)
    scores = np.full((n, limit), -np.inf)
    for i, hits in enumerate(results):
        for j, h in enumerate(hits[:limit]):
            ids[i, j], labels[i, j], scores[i, j] = h.id, h.label, h.score
    if keep_order:
        return ids, labels, scores
    order = metrics.order_hits(ids, scores)
    return (
        np.take_along_axis(ids, order, 1),
        np.take_along_axis(labels, order, 1),
        np.take_along_axis(scores, order, 1),
    )


def evaluate(
    store: Store,
    config: EvalConfig,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    data_dir: str | os.PathLike | None = None,
    options: dict[str, dict] | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> EvalResult:
    """Run one evaluation.

    Raises:
        InvalidArgumentError: bad settings.
        UnknownMethodError, CollectionNotFoundError, CollectionMismatchError:
            as raised by :class:`~search.query.Searcher`.
    """
    config.validate()
    if config.quantization != "none" and config.rescore and config.oversampling is None:
        # record the oversampling the search uses, not None
        config = replace(config, oversampling=schema.DEFAULT_OVERSAMPLING[config.quantization])
    searcher = Searcher(
        store, prefix=prefix, data_dir=data_dir, hnsw_ef=config.hnsw_ef, options=options,
        quantization=config.quantization, quantization_params=QuantizationParams(config.rescore, config.oversampling),
    )
    if config.combined():
        return _evaluate_combined(searcher, config, data_dir, progress, on_plan)
    info = searcher.collection(config.method)
    embedder = searcher.embedder(config.method)
    name = info.name

    # The gallery is the train split; leave out any test points the collection holds.
    flt, per_class = _gallery(searcher, name)
    gallery_size = sum(per_class)

    test = load_split("test", data_dir)
    q_idx = _select_queries(config.queries, config.seed)
    q_labels = test.labels[q_idx].astype(np.int64)
    limit = max(max(config.ks), CURVE_K, config.rerank.shortlist if config.rerank else 0)
    if config.rerank is not None:
        searcher.reranker.collection()  # missing/mismatched SIFT collection: fail before the work
    if on_plan:
        on_plan(len(q_idx) * (2 if config.rerank else 1))

    # Batched search: embedding and querying, as a service would run a batch.
    t0 = time.perf_counter()
    q_vectors = np.empty((len(q_idx), embedder.dim), np.float32)
    results = []
    for lo in range(0, len(q_idx), config.batch_size):
        sl = slice(lo, lo + config.batch_size)
        q_vectors[sl] = embedder.embed(test.images[q_idx[sl]])
        results += searcher.search_vectors(config.method, q_vectors[sl], limit, flt, exact=config.exact)
        if progress:
            progress(len(q_idx[sl]))
    batch_seconds = time.perf_counter() - t0
    _, first_labels, _ = _to_arrays(results, limit)
    rerank_seconds = None
    if config.rerank is not None:
        t0 = time.perf_counter()
        results = _rerank_all(searcher, config.rerank, results, test.images[q_idx], progress)
        rerank_seconds = time.perf_counter() - t0
    hit_ids, hit_labels, hit_scores = _to_arrays(results, limit, keep_order=config.rerank is not None)
    quality = _quality(hit_labels, q_labels, per_class, config.ks)

    summary: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": store.location,
        "search": "exact" if config.exact else f"hnsw (ef={config.hnsw_ef or 'default'})",
        **quality,
        "throughput": {
            "queries": int(len(q_idx)),
            "seconds": batch_seconds,
            "queries_per_s": len(q_idx) / batch_seconds,
            "batch_size": config.batch_size,
            "limit": limit,
        },
    }
    if config.rerank is not None:
        # the same run without the rerank stage, for the with/without comparison
        summary["first_stage"] = _quality(first_labels, q_labels, per_class, config.ks)
        summary["rerank"] = {
            "seconds": rerank_seconds,
            "ms_per_query": 1000 * rerank_seconds / max(len(q_idx), 1),
            "collection": searcher.reranker.collection().name,
            "fingerprint": searcher.reranker.collection().metadata.get("fingerprint"),
        }
    summary["r_precision"] = _r_precision(searcher, config, q_vectors, q_labels, per_class, flt)
    summary["ann_recall_at_10"] = _ann_recall(searcher, config, q_vectors, flt)
    summary["vector_bytes"] = vector_bytes(info.dim, config.quantization)
    summary["latency"] = _latency(searcher, config, test.images[q_idx], max(config.ks), flt)
    return EvalResult(
        config, name, dict(info.metadata), gallery_size, per_class,
        q_idx, q_labels, hit_ids, hit_labels, hit_scores, summary,
    )


def _gallery(searcher: Searcher, name: str) -> tuple[QueryFilter | None, list[int]]:
    """The gallery filter (train only, when the collection holds test points)
    and the gallery size per class."""
    store = searcher.store
    flt = QueryFilter(split="train") if store.count(name, QueryFilter(split="test")) else None
    per_class = [store.count(name, QueryFilter(labels=(c,), split="train")) for c in range(10)]
    if sum(per_class) == 0:
        raise InvalidArgumentError(f"{name} holds no train images to search; run `fmsearch ingest`")
    return flt, per_class


def _evaluate_combined(searcher: Searcher, config: EvalConfig, data_dir, progress, on_plan) -> EvalResult:
    """A fusion ("a+b") or a cross-method rescoring, one query at a time
    through :meth:`Searcher.search`, the same call a user's query makes."""
    from .query import parse_methods

    names = parse_methods(config.method)
    for name in names:
        searcher.collection(name)
    info = searcher.collection(names[0])
    flt, per_class = _gallery(searcher, info.name)
    test = load_split("test", data_dir)
    q_idx = _select_queries(config.queries, config.seed)
    q_labels = test.labels[q_idx].astype(np.int64)
    limit = max(max(config.ks), CURVE_K)
    kwargs = dict(
        fusion=config.fusion, weights=config.fusion_weights, rescore_with=config.rescore_with,
        shortlist=max(config.shortlist, limit), exact=config.exact, split=None if flt is None else "train",
    )
    if on_plan:
        on_plan(len(q_idx))
    t0 = time.perf_counter()
    results = []
    for i in q_idx:
        results.append(searcher.search(names, image=test.images[i], k=limit, **kwargs))
        if progress:
            progress(1)
    seconds = time.perf_counter() - t0
    hit_ids, hit_labels, hit_scores = _to_arrays(results, limit, keep_order=True)
    n = min(config.latency_queries, len(q_idx))
    times = []
    for i in q_idx[:n]:
        t1 = time.perf_counter()
        searcher.search(names, image=test.images[i], k=max(config.ks), **kwargs)
        times.append(time.perf_counter() - t1)
    note = "not measured for a fusion or a rescoring (no single exact reference)"
    summary: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": searcher.store.location,
        "search": "exact" if config.exact else f"hnsw (ef={config.hnsw_ef or 'default'})",
        **_quality(hit_labels, q_labels, per_class, config.ks),
        "throughput": {
            "queries": int(len(q_idx)), "seconds": seconds, "queries_per_s": len(q_idx) / seconds,
            "batch_size": 1, "limit": limit,
        },
        "r_precision": {"value": None, "queries": 0, "note": note},
        "ann_recall_at_10": {"value": None, "note": note},
        "latency": {"queries": n, "k": max(config.ks), **metrics.percentiles_ms(times)},
        "vector_bytes": _combined_bytes(searcher, names, config),
        "collections": [schema.collection_name(m, searcher.prefix, config.quantization) for m in names]
        + ([schema.collection_name(config.rescore_with, searcher.prefix)] if config.rescore_with else []),
    }
    return EvalResult(
        config, info.name,
        dict(info.metadata), sum(per_class), per_class, q_idx, q_labels, hit_ids, hit_labels, hit_scores, summary,
    )


def _combined_bytes(searcher: Searcher, names, config: EvalConfig) -> dict[str, Any]:
    """Bytes per gallery point a fused or rescored query reads: each searched
    collection's vector (quantised where it is), plus the float32 vector a
    rescoring fetches."""
    searched = [vector_bytes(searcher.collection(m).dim, config.quantization) for m in names]
    if config.rescore_with:
        searched.append(vector_bytes(searcher.collection(config.rescore_with).dim, "none"))
    return {
        "float32": sum(v["float32"] for v in searched),
        "searched": sum(v["searched"] for v in searched),
        "quantization": config.quantization,
    }


def _rerank_all(searcher, rerank: RerankConfig, results, images, progress) -> list:
    """Each query's shortlist reranked by SIFT (its descriptors extracted as a
    query would), followed by the rest of its first-stage list."""
    out = []
    reranker = searcher.reranker
    for hits, image in zip(results, images, strict=True):
        n = rerank.shortlist
        out.append(reranker.rerank(hits[:n], reranker.query_descriptors(image), rerank) + list(hits[n:]))
        if progress:
            progress(1)
    return out


def _quality(hit_labels, q_labels, per_class, ks) -> dict[str, Any]:
    """Every quality metric of ranked hit labels."""
    rel = metrics.relevance(hit_labels, q_labels)
    n_rel = np.asarray(per_class)[q_labels]
    per_k: dict[str, dict[str, Any]] = {}
    class_table: dict[str, dict[str, list[float | None]]] = {}
    for k in ks:
        values = {
            "precision": metrics.precision_at_k(rel, k),
            "recall": metrics.recall_at_k(rel, n_rel, k),
            "f1": metrics.f1_at_k(rel, n_rel, k),
            "map": metrics.average_precision_at_k(rel, n_rel, k),
        }
        per_k[str(k)] = {m: metrics.mean(v) for m, v in values.items()}
        class_table[str(k)] = {m: metrics.per_class(v, q_labels, 10) for m, v in values.items()}
    top1 = metrics.top1_accuracy(rel)
    curve = {
        "k": list(range(1, CURVE_K + 1)),
        "precision": [metrics.mean(metrics.precision_at_k(rel, k)) for k in range(1, CURVE_K + 1)],
        "recall": [metrics.mean(metrics.recall_at_k(rel, n_rel, k)) for k in range(1, CURVE_K + 1)],
    }

    return {
        "metrics": per_k,
        "top1_accuracy": metrics.mean(top1),
        "per_class": {
            "class_names": list(CLASS_NAMES),
            "top1_accuracy": metrics.per_class(top1, q_labels, 10),
            **{f"{m}@{k}": class_table[k][m] for k in class_table for m in ("precision", "map")},
        },
        "pr_curve": curve,
    }


def _subset(n: int, size: int, seed: int) -> np.ndarray:
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed + 1).choice(n, size=size, replace=False))


def _r_precision(searcher, config, q_vectors, q_labels, per_class, flt) -> dict[str, Any]:
    """R-precision needs R (thousands of) results per query: run it on a seeded subset."""
    sub = _subset(len(q_vectors), config.rprecision_queries, config.seed)
    labels = q_labels[sub]
    n_rel = np.asarray(per_class)[labels]
    r_max = int(n_rel.max(initial=0))
    if r_max == 0 or len(sub) == 0:
        return {"value": None, "queries": int(len(sub))}
    values = []
    for lo in range(0, len(sub), 16):
        part = sub[lo : lo + 16]
        # past the CLI's k limit: ask the store directly, labels only
        points = searcher.store.query_batch(
            searcher.collection(config.method).name, q_vectors[part], r_max, flt,
            exact=config.exact, hnsw_ef=config.hnsw_ef, with_payload=[schema.LABEL],
            quantization=searcher.effective_quantization_params(),
        )
        hl = np.full((len(part), r_max), metrics.MISSING, np.int64)
        for i, pts in enumerate(points):
            hl[i, : len(pts)] = [p.payload[schema.LABEL] for p in pts]
        values.append(metrics.r_precision(metrics.relevance(hl, q_labels[part]), np.asarray(per_class)[q_labels[part]]))
    return {"value": metrics.mean(np.concatenate(values)), "queries": int(len(sub)), "seed": config.seed + 1}


def vector_bytes(dim: int, quantization: str) -> dict[str, Any]:
    """Bytes per vector: the float32 original, and what a quantised search reads."""
    searched = {"none": 4 * dim, "int8": dim, "binary": -(-dim // 8)}[quantization]
    return {"float32": 4 * dim, "searched": searched, "quantization": quantization}


def _ann_recall(searcher, config, q_vectors, flt) -> dict[str, Any]:
    """Recall@10 of k=10 searches (as a user's query runs them, with this
    run's quantisation params) against exact search on the original float32
    vectors (quantisation ignored), on a seeded subset."""
    if config.exact and config.quantization == "none":
        return {"value": None, "note": "search was exact; no ANN error to measure"}
    sub = _subset(len(q_vectors), config.ann_check_queries, config.seed)
    found, _, _ = _to_arrays(searcher.search_vectors(config.method, q_vectors[sub], 10, flt, exact=config.exact), 10)
    reference = searcher.variant(quantization=config.quantization, quantization_params=QuantizationParams(ignore=True))
    exact = reference.search_vectors(config.method, q_vectors[sub], 10, flt, exact=True)
    exact_ids, _, _ = _to_arrays(exact, 10)
    k = min(10, exact_ids.shape[1])
    return {
        "value": metrics.mean(metrics.overlap_at_k(found, exact_ids, k)),
        "queries": int(len(sub)),
        "k": 10,
    }


def _latency(searcher, config, images, k, flt) -> dict[str, Any]:
    """End-to-end single queries (embed one image + one search request, and
    with a rerank stage: SIFT on the query + the rerank request)."""
    n = min(config.latency_queries, len(images))

    embedder = searcher.embedder(config.method)
    limit = k if config.rerank is None else config.rerank.shortlist

    def one(img) -> None:
        hits = searcher.search_vectors(config.method, embedder.embed(img), limit, flt, exact=config.exact)[0]
        if config.rerank is not None:
            searcher.reranker.rerank(hits, searcher.reranker.query_descriptors(img), config.rerank)

    if n:
        one(images[0])
    seconds = []
    for img in images[:n]:
        t0 = time.perf_counter()
        one(img)
        seconds.append(time.perf_counter() - t0)
    return {"queries": n, "k": k, "rerank": config.rerank is not None, **metrics.percentiles_ms(seconds)}
