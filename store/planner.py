"""The filter-aware default: how each filtered search runs, chosen per search.

Qdrant's own planner scans the points a filter keeps while they hold fewer
KB of vectors than the collection's full-scan threshold, and above it walks
the graph at the search's ``ef``, the filter applied in the walk. On a large
gallery that walk loses the nearest points of a class far from the query
(docs/scale.md: 0.785 of them at ef 128 among a million siamese vectors),
and a small filter on a field without filter-aware links loses them all.
fmsearch plans before Qdrant does, from the filter's estimated size
(Qdrant's cardinality estimate, read from the payload index) and what the
collection recorded when it was built:

- **scan**: a filter that keeps few points is answered exactly, by scoring
  every point it keeps, when that costs at most :data:`SCAN_BUDGET`
  (points x (dimensions + :data:`SCAN_POINT_DIMS`)); and so is a filter
  by a field without filter-aware links that keeps less than
  :data:`WIDE_BELOW_SHARE` of the points, which the graph cannot walk;
- **wide graph**: a larger filter by linked fields that keeps less than
  :data:`WIDE_BELOW_SHARE` of a collection calibrated at ingest
  (:mod:`~fmsearch.store.calibration`) walks the graph at the ``ef``
  measured there for a class far from the query;
- **graph**: everything else, unfiltered searches included, as before
  (ef :data:`DEFAULT_HNSW_EF`, and Qdrant's own planner beneath).

``hnsw_ef``, ``acorn`` and ``exact`` given by the caller are obeyed as
they are ("as asked"). The constants come from ``fmsearch bench scale``
(docs/scale.md, "The filter-aware default").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_HNSW_EF = 128
#: collection metadata key of the calibration (:mod:`~fmsearch.store.calibration`)
CALIBRATION_KEY = "filtered_search"
#: a filter whose points cost at most this to score is scanned: about 2 ms
#: here (scoring a point took 0.47 ns per (dimension + SCAN_POINT_DIMS):
#: 10,000 pixel points 4.6 ms, 30,000 siamese points 3.4 ms, p50), under
#: the graph walk's own cost at a million points
SCAN_BUDGET = 4_000_000
#: what reading one filtered point costs beside its distance, in dimensions
SCAN_POINT_DIMS = 170
#: a filter keeping this share of the points or more walks the graph at the
#: default ef: the walk meets enough of its points
WIDE_BELOW_SHARE = 0.5

STRATEGIES = ("graph", "wide graph", "scan", "exact", "as asked")


@dataclass(frozen=True)
class SearchPlan:
    """How one search runs, and why.

    Attributes:
        strategy: one of :data:`STRATEGIES`.
        hnsw_ef: the graph walk's breadth (ignored by a scan).
        acorn: Qdrant's ACORN walk.
        exact: score every point the filter keeps (no graph).
        matching: the filter's estimated number of points (None: no filter).
        points: the collection's points (None: not read).
    """

    strategy: str
    hnsw_ef: int = DEFAULT_HNSW_EF
    acorn: bool = False
    exact: bool = False
    matching: int | None = None
    points: int | None = None

    def describe(self) -> str:
        """One line: the strategy, its ef, and the filter's estimated share."""
        how = {
            "scan": "scan of the filtered points",
            "exact": "exact search",
        }.get(self.strategy, f"{self.strategy} at ef {self.hnsw_ef}{' + ACORN' if self.acorn else ''}")
        if self.matching is None:
            return f"{how} (no filter)"
        share = f" ({self.matching / self.points:.1%} of {self.points:,})" if self.points else ""
        return f"{how}: filter keeps ~{self.matching:,} points{share}"


def scan_cost(matching: int, dim: int) -> int:
    """What scoring every point a filter keeps costs, in multiply-adds."""
    return matching * (dim + SCAN_POINT_DIMS)


def plan(
    *,
    points: int | None,
    dim: int,
    matching: int | None,
    filtered_ef: int | None = None,
    unlinked: bool = False,
    exact: bool = False,
    hnsw_ef: int | None = None,
    acorn: bool = False,
    scan_budget: int = SCAN_BUDGET,
) -> SearchPlan:
    """The plan of one search (the rule of the module doc).

    Args:
        points: the collection's points.
        dim: its vectors' dimensions (a multivector's per vector).
        matching: the filter's estimated points; None for no filter.
        filtered_ef: the ef the collection's calibration measured for a
            class filter far from the query (None: not calibrated).
        unlinked: the filter narrows by a field without filter-aware links.
        exact, hnsw_ef, acorn: the caller's own settings, obeyed as given.
        scan_budget: :data:`SCAN_BUDGET`, lowered by tests.
    """
    if exact:
        return SearchPlan("exact", hnsw_ef or DEFAULT_HNSW_EF, acorn, True, matching, points)
    if hnsw_ef is not None or acorn:
        return SearchPlan("as asked", hnsw_ef or DEFAULT_HNSW_EF, acorn, False, matching, points)
    if matching is None:
        return SearchPlan("graph", points=points)
    narrow = bool(points) and matching < WIDE_BELOW_SHARE * (points or 0)
    if scan_cost(matching, dim) <= scan_budget or (unlinked and narrow):
        return SearchPlan("scan", exact=True, matching=matching, points=points)
    if filtered_ef is not None and narrow:
        return SearchPlan("wide graph", max(filtered_ef, DEFAULT_HNSW_EF), matching=matching, points=points)
    return SearchPlan("graph", matching=matching, points=points)


def filtered_ef(metadata: dict[str, Any]) -> int | None:
    """The ``ef`` a collection's calibration recorded in its metadata
    (None: not calibrated, or a value that is not one)."""
    calibration = metadata.get(CALIBRATION_KEY)
    value = calibration.get("ef") if isinstance(calibration, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
