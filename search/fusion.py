"""Fusing the ranked lists of several methods into one.

Implemented here once, over result lists, so both backends fuse the same way:

- **RRF** (reciprocal-rank fusion, Cormack et al. 2009): each list adds
  ``weight / (k + rank)`` to every id it holds (rank from 1, ``k`` = 60).
- **DBSF** (distribution-based score fusion, as Qdrant defines it): each
  list's scores are normalised to [0, 1] by mean +- 3 standard deviations of
  that list (clipped), then summed with the weights.

An id missing from a list gets nothing from it. Ties are broken by the id, so
the fused order never depends on dict or backend order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fmsearch.errors import InvalidArgumentError

FUSIONS = ("rrf", "dbsf")
DEFAULT_FUSION = "rrf"
RRF_K = 60


def _check(lists: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(lists)
    if len(weights) != len(lists):
        raise InvalidArgumentError(f"{len(weights)} weights for {len(lists)} methods")
    if any(not np.isfinite(w) or w < 0 for w in weights):
        raise InvalidArgumentError(f"fusion weights must be finite and >= 0, got {list(weights)}")
    return [float(w) for w in weights]


def _ranked(scores: dict[int, float]) -> list[tuple[int, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def rrf(
    lists: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float] | None = None, k: int = RRF_K
) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of ranked ``(id, score)`` lists (scores unused).

    Returns:
        ``(id, fused score)``, best first.
    """
    w = _check(lists, weights)
    if k < 1:
        raise InvalidArgumentError(f"RRF k must be at least 1, got {k}")
    fused: dict[int, float] = {}
    for weight, items in zip(w, lists, strict=True):
        for rank, (pid, _) in enumerate(items, start=1):
            fused[pid] = fused.get(pid, 0.0) + weight / (k + rank)
    return _ranked(fused)


def dbsf(
    lists: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Distribution-based score fusion of ``(id, score)`` lists.

    Returns:
        ``(id, fused score)``, best first.
    """
    w = _check(lists, weights)
    fused: dict[int, float] = {}
    for weight, items in zip(w, lists, strict=True):
        if not items:
            continue
        scores = np.array([s for _, s in items], np.float64)
        mean, std = scores.mean(), scores.std()
        lo, hi = mean - 3 * std, mean + 3 * std
        norm = np.full_like(scores, 0.5) if hi <= lo else np.clip((scores - lo) / (hi - lo), 0.0, 1.0)
        for (pid, _), value in zip(items, norm, strict=True):
            fused[pid] = fused.get(pid, 0.0) + weight * float(value)
    return _ranked(fused)


def fuse_lists(method: str, lists, weights=None) -> list[tuple[int, float]]:
    """Fuse with ``method`` ("rrf" or "dbsf")."""
    if method == "rrf":
        return rrf(lists, weights)
    if method == "dbsf":
        return dbsf(lists, weights)
    raise InvalidArgumentError(f"unknown fusion {method!r}; valid: {', '.join(FUSIONS)}")
