"""Retrieval metrics: pure functions over arrays.

Conventions (the seed's, made precise):

- A query's *relevant* set is every gallery image of the query's class, so
  recall@K is small by construction (at most K / 6000 on the full gallery).
- Results are ranked lists padded with ``-1`` where the store returned fewer
  than K hits (K larger than the gallery); a missing hit is never relevant and
  still counts in the denominator of precision@K.
- Ties in score are broken by ascending point id (:func:`order_hits`), so the
  metrics do not depend on the order in which a backend returns equal scores.
- Per-query arrays carry ``nan`` where a metric is undefined (recall, F1, AP
  and R-precision of a query whose class has no gallery image); means skip
  those queries, and the mean of no queries is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fmsearch.errors import InvalidArgumentError

MISSING = -1


def order_hits(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise permutation sorting hits by descending score, then ascending id.

    Padding (id ``-1``) goes last.
    """
    ids = np.asarray(ids)
    scores = np.asarray(scores, dtype=np.float64)
    key_score = np.where(ids == MISSING, np.inf, -scores)
    key_id = np.where(ids == MISSING, np.iinfo(np.int64).max, ids)
    return np.lexsort((key_id, key_score), axis=-1)


def relevance(hit_labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """(n, L) bool: hit j of query i has the query's label (padding never does)."""
    hit_labels = np.asarray(hit_labels)
    query_labels = np.asarray(query_labels)
    if hit_labels.ndim != 2 or hit_labels.shape[0] != query_labels.shape[0]:
        raise InvalidArgumentError(f"hit labels {hit_labels.shape} do not match {query_labels.shape[0]} queries")
    return (hit_labels == query_labels[:, None]) & (hit_labels != MISSING)


def _check_k(rel: np.ndarray, k: int) -> None:
    if k < 1:
        raise InvalidArgumentError(f"K must be >= 1, got {k}")
    if rel.shape[1] < k and rel.shape[0] > 0:
        raise InvalidArgumentError(f"K={k} needs {k} ranked positions, got {rel.shape[1]}")


def precision_at_k(rel: np.ndarray, k: int) -> np.ndarray:
    """Per query: relevant hits among the first K, divided by K."""
    _check_k(rel, k)
    return rel[:, :k].sum(axis=1) / k


def recall_at_k(rel: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query: relevant hits among the first K over all relevant gallery images."""
    _check_k(rel, k)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, rel[:, :k].sum(axis=1) / n_relevant, np.nan)


def f1_at_k(rel: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query harmonic mean of precision@K and recall@K (0 when both are 0)."""
    p = precision_at_k(rel, k)
    r = recall_at_k(rel, n_relevant, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return np.where(np.isnan(r), np.nan, f1)


def average_precision_at_k(rel: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query AP@K = sum over relevant ranks i <= K of precision@i, / min(K, R)."""
    _check_k(rel, k)
    top = rel[:, :k].astype(np.float64)
    ranks = np.arange(1, k + 1)
    precision_at_each = np.cumsum(top, axis=1) / ranks
    denom = np.minimum(k, np.asarray(n_relevant, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (precision_at_each * top).sum(axis=1) / denom, np.nan)


def r_precision(rel: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per query precision at R, R = the query's number of relevant gallery images.

    ``rel`` must hold at least max(R) ranked positions.
    """
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if rel.shape[0] and n_relevant.max(initial=0) > rel.shape[1]:
        raise InvalidArgumentError(f"R-precision needs {n_relevant.max()} ranked positions, got {rel.shape[1]}")
    hits_within_r = np.cumsum(rel, axis=1)
    out = np.full(rel.shape[0], np.nan)
    ok = n_relevant > 0
    out[ok] = hits_within_r[ok, n_relevant[ok] - 1] / n_relevant[ok]
    return out


def top1_accuracy(rel: np.ndarray) -> np.ndarray:
    """Per query: 1.0 when the nearest hit has the query's class."""
    if rel.shape[1] == 0:
        return np.zeros(rel.shape[0])
    return rel[:, 0].astype(np.float64)


def overlap_at_k(ids: np.ndarray, reference_ids: np.ndarray, k: int) -> np.ndarray:
    """Per query |first K of ids ∩ first K of reference| / K (ANN recall vs exact)."""
    out = np.empty(len(ids))
    for i, (a, b) in enumerate(zip(ids, reference_ids, strict=True)):
        ref = {x for x in b[:k] if x != MISSING}
        out[i] = len(ref & {x for x in a[:k] if x != MISSING}) / k
    return out


def exact_top_k(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(n, k) row indices of ``gallery`` with the k largest dot products per
    query (cosine, for unit vectors), best first; ties broken by index. The
    physical reference an index's results are measured against."""
    return top_k(np.atleast_2d(np.asarray(queries, np.float32)) @ np.asarray(gallery, np.float32).T, k)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) column indices of the k largest of each row of ``scores``, best
    first; ties broken by index."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), np.int64)
    top = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def mean(values: np.ndarray) -> float | None:
    """Mean over the defined (non-nan) entries; ``None`` when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def per_class(values: np.ndarray, query_labels: np.ndarray, n_classes: int) -> list[float | None]:
    """Mean of a per-query metric for each query class."""
    query_labels = np.asarray(query_labels)
    return [mean(values[query_labels == c]) for c in range(n_classes)]


def confusion(hit_labels: np.ndarray, query_labels: np.ndarray, n_classes: int, k: int) -> list[list[float] | None]:
    """The retrieval confusion matrix: row c is, over the queries of class
    c, the share of their top-``k`` hits in each class (padding not
    counted; a row sums to 1). ``None`` for a class with no query or no hit."""
    top = np.asarray(hit_labels)[:, :k]
    query_labels = np.asarray(query_labels)
    rows: list[list[float] | None] = []
    for c in range(n_classes):
        hits = top[query_labels == c]
        hits = hits[hits != MISSING]
        counts = np.bincount(hits, minlength=n_classes)[:n_classes] if hits.size else None
        rows.append(None if counts is None else (counts / counts.sum()).tolist())
    return rows


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds (``None`` for no samples)."""
    if len(seconds) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ms = np.asarray(seconds) * 1000
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}
