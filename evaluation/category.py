"""Category-retrieval evaluation: FMNIST test images as queries, train as gallery.

One run embeds the queries, searches the method's collection in batches
(Qdrant's batch query, on either backend), and computes every metric of
:mod:`fmsearch.evaluation.metrics` plus speed: single-query latency percentiles and
batch throughput, and, for HNSW, its recall@10 against exact search.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import RESULTS_DIR, metrics
from fmsearch.images.files import decode_png
from fmsearch.images.fmnist import CLASS_NAMES, SPLIT_SIZES, load_split
from fmsearch.search.mode import SearchMode
from fmsearch.search.query import Query
from fmsearch.search.rerank import RerankConfig
from fmsearch.search.searcher import Hit, Searcher
from fmsearch.store import QuantizationParams, QueryFilter, Store, schema
from fmsearch.store.gallery import open_gallery

logger = logging.getLogger(__name__)

# The seed report's own figures, by method, for the comparison line. The seed
# evaluated a handful of hand-picked queries, not the test split.
SEED_RESULTS: dict[str, dict[str, float]] = {
    "autoencoder": {"P@5": 0.8000, "R@5": 0.0040, "P@10": 0.7333, "R@10": 0.0073, "top1": 1.0},
    "resnet101": {
        "P@1": 0.789,
        "R@1": 0.002,
        "F1@1": 0.003,
        "P@5": 0.754,
        "R@5": 0.008,
        "F1@5": 0.015,
        "P@20": 0.702,
        "R@20": 0.052,
        "F1@20": 0.098,
    },
    "siamese": {"P@?": 0.8180, "R@?": 0.0206, "top1": 0.93},
}
CURVE_K = 100
#: the retrieval confusion matrix counts each query's top K hits
CONFUSION_K = 10


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run (recorded in metrics.json).

    ``mode`` is the search mode evaluated (a :class:`SearchMode`, or a
    method name for its plain search)."""

    mode: SearchMode
    queries: int | None = None  # None: the whole test split
    ks: tuple[int, ...] = (1, 5, 10, 20)
    seed: int = 0
    exact: bool = False
    batch_size: int = 256
    hnsw_ef: int | None = None
    acorn: bool = False
    latency_queries: int = 200
    ann_check_queries: int = 1000
    rprecision_queries: int = 200
    grid_queries: int = 8
    #: a folder gallery instead of FMNIST: ``queries`` of its images with a class, held out of it, query the rest
    gallery: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SearchMode.of(self.mode))
        if self.seed < 0:
            raise InvalidArgumentError(f"seed must be at least 0, got {self.seed}", param="seed")
        if not self.ks or min(self.ks) < 1:
            raise InvalidArgumentError(f"K values must be >= 1, got {self.ks}", param="ks")
        if max(self.ks) > 1000:
            raise InvalidArgumentError(f"K values must be <= 1000, got {max(self.ks)}", param="ks")
        if self.batch_size < 1:
            raise InvalidArgumentError(f"batch size must be at least 1, got {self.batch_size}", param="batch_size")
        if self.mode.rerank is not None:
            self.mode.rerank.check_holds(max(self.ks))
            if self.mode.combined:
                raise InvalidArgumentError(
                    "evaluate a fusion or a rescoring without a rerank (one second stage at a time)"
                )

    @property
    def out_dir(self) -> str:
        """Where this run writes when no folder is named: eval-results/<mode's output name>
        (a folder gallery's: eval-results/<gallery>-<mode's output name>)."""
        return f"{RESULTS_DIR}/" + "-".join(filter(None, (self.gallery, self.mode.output_name(exact=self.exact))))

    def settings(self) -> dict[str, Any]:
        """metrics.json's ``settings``: the mode's, then the run's."""
        run = asdict(self)
        del run["mode"]
        return {**self.mode.settings(), **run}


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
    #: a folder gallery's: the query images and the class names (FMNIST's: the test split's, CLASS_NAMES)
    query_images: np.ndarray | None = None
    class_names: tuple[str, ...] = tuple(CLASS_NAMES)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.summary["date"],
            "settings": self.config.settings(),
            "collection": self.collection,
            "collection_metadata": self.collection_metadata,
            "gallery_size": self.gallery_size,
            "gallery_per_class": self.gallery_per_class,
            "queries": int(len(self.query_indices)),
            **{k: v for k, v in self.summary.items() if k != "date"},
        }


@dataclass(frozen=True)
class _Queries:
    """The test images a run asks with, and what each of them is."""

    indices: np.ndarray
    labels: np.ndarray
    images: np.ndarray

    @classmethod
    def select(cls, config: EvalConfig, data_dir) -> _Queries:
        test = load_split("test", data_dir)
        idx = _select_queries(config.queries, config.seed)
        return cls(idx, test.labels[idx].astype(np.int64), test.images[idx])

    @classmethod
    def held_out(cls, store: Store, name: str, n: int, seed: int) -> _Queries:
        """``n`` of a folder gallery's images with a class (seeded), by point
        id, with their stored 28x28 images."""
        ids = store.ids(name)
        labels: dict[int, int] = {}
        for lo in range(0, len(ids), 1000):
            for r in store.retrieve(name, [int(i) for i in ids[lo : lo + 1000]], with_payload=[schema.LABEL]):
                if r.payload.get(schema.LABEL) is not None:
                    labels[r.id] = int(r.payload[schema.LABEL])
        if not labels:
            raise InvalidArgumentError(
                f"{name} has no image with a class (its folder has no class subfolders): "
                "there is nothing to evaluate against"
            )
        if n >= len(labels):
            raise InvalidArgumentError(
                f"queries must be fewer than the {len(labels)} images of {name} with a class "
                f"(the rest are the gallery), got {n}",
                param="queries",
            )
        chosen = np.sort(np.random.default_rng(seed).choice(np.array(sorted(labels), np.int64), size=n, replace=False))
        records = store.retrieve(name, [int(i) for i in chosen], with_payload=[schema.IMAGE])
        images = np.stack([decode_png(r.payload[schema.IMAGE]) for r in records])
        return cls(chosen, np.array([labels[int(i)] for i in chosen], np.int64), images)


def held_out_ids(store: Store, name: str, n: int, seed: int = 0) -> np.ndarray:
    """The point ids a folder gallery's evaluation holds out as queries
    (``n`` of its images with a class, chosen by ``seed``)."""
    return _Queries.held_out(store, name, n, seed).indices


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
        for j, h in enumerate(hits[:limit]):  # a folder image without a class is relevant to no query
            ids[i, j], labels[i, j], scores[i, j] = h.id, metrics.MISSING if h.label is None else h.label, h.score
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
            as raised by :class:`~fmsearch.search.searcher.Searcher`.
    """
    # record the oversampling the searches use, not None
    config = replace(config, mode=config.mode.with_effective_oversampling())
    gallery = open_gallery(store, config.gallery, prefix=prefix, data_dir=data_dir)  # named once, here
    gallery.check_queries(config.queries)
    if not gallery.has_splits and config.mode.combined:
        raise InvalidArgumentError(
            "a folder gallery is evaluated one method at a time, without a fusion or a rescoring"
        )
    searcher = Searcher(store, hnsw_ef=config.hnsw_ef, acorn=config.acorn, options=options, gallery=gallery)
    searcher.check_mode(config.mode)
    run = _evaluate_combined if config.mode.combined else _evaluate_single
    return run(searcher, config, data_dir, progress or (lambda n: None), on_plan or (lambda n: None))


def _evaluate_single(searcher: Searcher, config: EvalConfig, data_dir, progress, on_plan) -> EvalResult:
    """One method's collection: batched searches (a rerank after them), then
    R-precision, recall against exact search and single-query latency."""
    mode = config.mode
    info = searcher.collection(mode.method, mode.quantization)
    class_names = tuple(searcher.gallery.classes(info.metadata))
    if searcher.gallery.has_splits:  # the test split queries the train split
        flt, per_class = _gallery(searcher, info.name)
        queries = _Queries.select(config, data_dir)
    else:  # some of its images, held out, query the rest
        n = cast(int, config.queries)  # gallery.check_queries refused None (every test image) for a folder
        queries = _Queries.held_out(searcher.store, info.name, n, config.seed)
        flt, per_class = _held_out_gallery(searcher.store, info.name, queries, len(class_names))
    limit = max(max(config.ks), CURVE_K, mode.rerank.shortlist if mode.rerank else 0)
    on_plan(len(queries.indices) * (2 if mode.rerank else 1))
    t0 = time.perf_counter()
    q_vectors, results = _search_batched(searcher, config, queries.images, limit, flt, progress)
    batch_seconds = time.perf_counter() - t0
    summary: dict[str, Any] = _run_header(searcher, config)
    if mode.rerank is not None:
        # the same run without the rerank stage, for the with/without comparison
        _, first_labels, _ = _to_arrays(results, limit)
        summary["first_stage"] = _quality(first_labels, queries.labels, per_class, config.ks)
        t0 = time.perf_counter()
        results = _rerank_all(searcher, mode.rerank, results, queries.images, progress)
        summary["rerank"] = _rerank_summary(searcher, time.perf_counter() - t0, len(queries.indices))
    hit_ids, hit_labels, hit_scores = _to_arrays(results, limit, keep_order=mode.rerank is not None)
    summary.update(_quality(hit_labels, queries.labels, per_class, config.ks, class_names))
    summary["throughput"] = _throughput(len(queries.indices), batch_seconds, config.batch_size, limit)
    summary["r_precision"] = _r_precision(searcher, config, q_vectors, queries.labels, per_class, flt)
    summary["ann_recall_at_10"] = _ann_recall(searcher, config, q_vectors, flt)
    summary["vector_bytes"] = schema.vector_bytes(info.dim, mode.quantization)
    summary["latency"] = _latency(searcher, config, queries.images, max(config.ks), flt)
    return EvalResult(
        config,
        info.name,
        dict(info.metadata),
        sum(per_class),
        per_class,
        queries.indices,
        queries.labels,
        hit_ids,
        hit_labels,
        hit_scores,
        summary,
        query_images=queries.images,
        class_names=class_names,
    )


def _held_out_gallery(store: Store, name: str, queries: _Queries, n_classes: int) -> tuple[QueryFilter, list[int]]:
    """A folder gallery less its held-out queries: the filter, and its size
    per class."""
    held = np.bincount(queries.labels, minlength=n_classes)
    per_class = [store.count(name, QueryFilter(labels=(c,))) - int(held[c]) for c in range(n_classes)]
    return QueryFilter(exclude_ids=tuple(int(i) for i in queries.indices)), per_class


def _search_batched(searcher: Searcher, config: EvalConfig, images: np.ndarray, limit: int, flt, progress):
    """Embedding and querying in batches, as a service would run a batch."""
    embedder = searcher.embedder(config.mode.method)
    q_vectors = np.empty((len(images), embedder.dim), np.float32)
    results: list[list[Hit]] = []
    for lo in range(0, len(images), config.batch_size):
        sl = slice(lo, lo + config.batch_size)
        q_vectors[sl] = embedder.embed(images[sl])
        results += searcher.search_vectors(config.mode, q_vectors[sl], limit, flt, exact=config.exact)
        progress(len(q_vectors[sl]))
    return q_vectors, results


def _run_header(searcher: Searcher, config: EvalConfig) -> dict[str, Any]:
    methods = (*config.mode.methods, *([config.mode.rescore_with] if config.mode.rescore_with else []))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": searcher.store.location,
        "gallery_words": searcher.gallery.words,
        "search": "exact"
        if config.exact
        else f"hnsw (ef={config.hnsw_ef or 'default'}{', ACORN' if config.acorn else ''})",
        # how each method's queries were embedded (onnx or tensorflow; none for pixels)
        "runtimes": {m: getattr(searcher.embedder(m), "runs_on", None) for m in methods},
    }


def _throughput(queries: int, seconds: float, batch_size: int, limit: int) -> dict[str, Any]:
    return {
        "queries": queries,
        "seconds": seconds,
        "queries_per_s": queries / seconds,
        "batch_size": batch_size,
        "limit": limit,
    }


def _rerank_summary(searcher: Searcher, seconds: float, queries: int) -> dict[str, Any]:
    sift = searcher.reranker.collection()
    return {
        "seconds": seconds,
        "ms_per_query": 1000 * seconds / max(queries, 1),
        "collection": sift.name,
        "fingerprint": sift.metadata.get(schema.META_FINGERPRINT),
    }


def _gallery(searcher: Searcher, name: str) -> tuple[QueryFilter | None, list[int]]:
    """The gallery filter (train only, when the collection holds test points)
    and the gallery size per class."""
    store = searcher.store
    flt = QueryFilter(split="train") if store.count(name, QueryFilter(split="test")) else None
    per_class = [store.count(name, QueryFilter(labels=(c,), split="train")) for c in range(len(CLASS_NAMES))]
    if sum(per_class) == 0:
        raise InvalidArgumentError(f"{name} holds no train images to search; run `fmsearch ingest`")
    return flt, per_class


def _evaluate_combined(searcher: Searcher, config: EvalConfig, data_dir, progress, on_plan) -> EvalResult:
    """A fusion ("a+b") or a cross-method rescoring, one query at a time
    through :meth:`Searcher.search`, the same call a user's query makes."""
    mode = config.mode
    for name in mode.methods:
        searcher.collection(name, mode.quantization)
    info = searcher.collection(mode.methods[0], mode.quantization)
    flt, per_class = _gallery(searcher, info.name)
    queries = _Queries.select(config, data_dir)
    limit = max(max(config.ks), CURVE_K)
    wide = replace(mode, shortlist=max(mode.shortlist, limit))
    split = None if flt is None else "train"
    on_plan(len(queries.indices))
    t0 = time.perf_counter()
    results = []
    for image in queries.images:
        results.append(searcher.search(wide, Query(image=image, k=limit, exact=config.exact, split=split)))
        progress(1)
    seconds = time.perf_counter() - t0
    hit_ids, hit_labels, hit_scores = _to_arrays(results, limit, keep_order=True)
    n = min(config.latency_queries, len(queries.indices))
    times = []
    for image in queries.images[:n]:
        t1 = time.perf_counter()
        searcher.search(wide, Query(image=image, k=max(config.ks), exact=config.exact, split=split))
        times.append(time.perf_counter() - t1)
    note = "not measured for a fusion or a rescoring (no single exact reference)"
    summary = {
        **_run_header(searcher, config),
        **_quality(hit_labels, queries.labels, per_class, config.ks),
        "throughput": _throughput(len(queries.indices), seconds, 1, limit),
        "r_precision": {"value": None, "queries": 0, "note": note},
        "ann_recall_at_10": {"value": None, "note": note},
        "latency": {"queries": n, "k": max(config.ks), **metrics.percentiles_ms(times)},
        "vector_bytes": _combined_bytes(searcher, mode),
        "collections": [searcher.collection(m, mode.quantization).name for m in mode.methods]
        + ([searcher.collection(mode.rescore_with).name] if mode.rescore_with else []),
    }
    return EvalResult(
        config,
        info.name,
        dict(info.metadata),
        sum(per_class),
        per_class,
        queries.indices,
        queries.labels,
        hit_ids,
        hit_labels,
        hit_scores,
        summary,
    )


def _combined_bytes(searcher: Searcher, mode: SearchMode) -> dict[str, Any]:
    """Bytes per gallery point a fused or rescored query reads: each searched
    collection's vector (quantised where it is), plus the float32 vector a
    rescoring fetches."""
    searched = [
        schema.vector_bytes(searcher.collection(m, mode.quantization).dim, mode.quantization) for m in mode.methods
    ]
    if mode.rescore_with:
        searched.append(schema.vector_bytes(searcher.collection(mode.rescore_with).dim))
    return {
        "float32": sum(v["float32"] for v in searched),
        "searched": sum(v["searched"] for v in searched),
        "quantization": mode.quantization,
    }


def _rerank_all(searcher: Searcher, rerank: RerankConfig, results, images, progress) -> list:
    """Each query's shortlist reranked by SIFT (its descriptors extracted as a
    query would), followed by the rest of its first-stage list."""
    out = []
    reranker = searcher.reranker
    for hits, image in zip(results, images, strict=True):
        n = rerank.shortlist
        out.append(reranker.rerank(hits[:n], reranker.query_descriptors(image), rerank) + list(hits[n:]))
        progress(1)
    return out


def _quality(hit_labels, q_labels, per_class, ks, class_names: tuple[str, ...] = tuple(CLASS_NAMES)) -> dict[str, Any]:
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
        class_table[str(k)] = {m: metrics.per_class(v, q_labels, len(class_names)) for m, v in values.items()}
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
            "class_names": list(class_names),
            "top1_accuracy": metrics.per_class(top1, q_labels, len(class_names)),
            **{f"{m}@{k}": class_table[k][m] for k in class_table for m in ("precision", "map")},
        },
        "pr_curve": curve,
        "confusion": {
            "k": min(CONFUSION_K, hit_labels.shape[1]),
            "matrix": metrics.confusion(hit_labels, q_labels, len(class_names), CONFUSION_K),
        },
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
    mode = config.mode
    values = []
    for lo in range(0, len(sub), 16):
        part = sub[lo : lo + 16]
        vectors = (
            searcher.expanded_queries(mode, q_vectors[part], flt, exact=config.exact)
            if mode.expand
            else q_vectors[part]
        )
        # past the k limit of a query: ask the store directly, labels only
        points = searcher.store.query_batch(
            searcher.collection(mode.method, mode.quantization).name,
            vectors,
            r_max,
            flt,
            exact=config.exact,
            hnsw_ef=config.hnsw_ef,
            acorn=config.acorn,
            with_payload=[schema.LABEL],
            quantization=mode.quantization_params,
        )
        hl = np.full((len(part), r_max), metrics.MISSING, np.int64)
        for i, pts in enumerate(points):
            hl[i, : len(pts)] = [p.payload.get(schema.LABEL, metrics.MISSING) for p in pts]
        values.append(metrics.r_precision(metrics.relevance(hl, q_labels[part]), np.asarray(per_class)[q_labels[part]]))
    return {"value": metrics.mean(np.concatenate(values)), "queries": int(len(sub)), "seed": config.seed + 1}


def _ann_recall(searcher, config, q_vectors, flt) -> dict[str, Any]:
    """Recall@10 of k=10 searches (as a user's query runs them, with this
    run's quantisation params) against exact search on the original float32
    vectors (quantisation ignored), on a seeded subset."""
    mode = config.mode
    if config.exact and mode.quantization == "none":
        return {"value": None, "note": "search was exact; no ANN error to measure"}
    sub = _subset(len(q_vectors), config.ann_check_queries, config.seed)
    found, _, _ = _to_arrays(searcher.search_vectors(mode, q_vectors[sub], 10, flt, exact=config.exact), 10)
    exact = searcher.search_vectors(
        mode, q_vectors[sub], 10, flt, exact=True, quantization_params=QuantizationParams(ignore=True)
    )
    exact_ids, _, _ = _to_arrays(exact, 10)
    k = min(10, exact_ids.shape[1])
    return {"value": metrics.mean(metrics.overlap_at_k(found, exact_ids, k)), "queries": int(len(sub)), "k": 10}


def _latency(searcher, config, images, k, flt) -> dict[str, Any]:
    """End-to-end single queries (embed one image + one search request, and
    with a rerank stage: SIFT on the query + the rerank request)."""
    n = min(config.latency_queries, len(images))
    mode = config.mode
    embedder = searcher.embedder(mode.method)
    limit = k if mode.rerank is None else mode.rerank.shortlist

    def one(img) -> None:
        hits = searcher.search_vectors(mode, embedder.embed(img), limit, flt, exact=config.exact)[0]
        if mode.rerank is not None:
            searcher.reranker.rerank(hits, searcher.reranker.query_descriptors(img), mode.rerank)

    if n:
        one(images[0])
    seconds = []
    for img in images[:n]:
        t0 = time.perf_counter()
        one(img)
        seconds.append(time.perf_counter() - t0)
    return {"queries": n, "k": k, "rerank": mode.rerank is not None, **metrics.percentiles_ms(seconds)}
