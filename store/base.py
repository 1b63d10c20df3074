"""The store interface every backend implements, and the values it speaks.

The backends (:mod:`~fmsearch.store.edge`, :mod:`~fmsearch.store.server`)
import this module; :func:`fmsearch.store.open_store` picks one of them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError, StoreError
from fmsearch.store import planner
from fmsearch.store.planner import DEFAULT_HNSW_EF as DEFAULT_HNSW_EF  # re-exported: the default search breadth
from fmsearch.store.planner import SearchPlan
from fmsearch.store.schema import CollectionSpec, recorded_linked_fields

#: the widest graph search a caller may ask for (the CLI and the service refuse more)
MAX_HNSW_EF = 100_000
DEFAULT_TIMEOUT = 10
logger = logging.getLogger(__name__)
#: seconds a collection's size and a filter's estimated size are reused by the planner
PLAN_CACHE_SECONDS = 30.0
#: filters whose estimate is kept, per store
PLAN_CACHE_FILTERS = 4096


@dataclass(frozen=True)
class QueryFilter:
    """Backend-neutral filter: every field set narrows the result.

    Attributes:
        labels: keep only points whose ``label`` is one of these.
        exclude_labels: drop points whose ``label`` is one of these.
        ids: keep only these point ids.
        exclude_ids: drop these point ids (e.g. the query point itself).
        split: keep only points of this split.
        fields: keep only points whose payload field is one of the values,
            per ``(field, values)`` pair (an indexed field: a tag, a folder, a shard of the gallery);
            a field holds one type, so its values are all ints or all strings.
    """

    labels: tuple[int, ...] | None = None
    exclude_labels: tuple[int, ...] = ()
    ids: tuple[int, ...] | None = None
    exclude_ids: tuple[int, ...] = ()
    split: str | None = None
    fields: tuple[tuple[str, tuple[int, ...] | tuple[str, ...]], ...] = ()

    def narrowed_by(self) -> set[str]:
        """The payload fields the filter keeps points by (``"id"`` for ids);
        what it drops (``exclude_*``) narrows nothing much."""
        from fmsearch.store.schema import LABEL, SPLIT

        keys = {key for key, _ in self.fields}
        keys |= {LABEL} if self.labels is not None else set()
        keys |= {SPLIT} if self.split is not None else set()
        return keys | ({"id"} if self.ids is not None else set())

    def is_empty(self) -> bool:
        return (
            self.labels is None
            and not self.exclude_labels
            and self.ids is None
            and not self.exclude_ids
            and self.split is None
            and not self.fields
        )


@dataclass(frozen=True)
class QuantizationParams:
    """How a quantised collection is searched (Qdrant's quantisation params).

    Attributes:
        rescore: re-score the candidates with the original float32 vectors.
        oversampling: fetch ``oversampling x limit`` candidates by the
            quantised vectors before rescoring (>= 1).
        ignore: search the original vectors only (the reference for recall).
    """

    rescore: bool = True
    oversampling: float | None = None
    ignore: bool = False

    def __post_init__(self) -> None:
        if self.oversampling is not None and not (np.isfinite(self.oversampling) and self.oversampling >= 1):
            raise InvalidArgumentError(
                f"oversampling must be at least 1, got {self.oversampling}", param="oversampling"
            )


def search_params(models: Any, plan: SearchPlan, quantization: QuantizationParams | None) -> Any:
    """A search's params, as its plan says, in the classes of ``models``:
    qdrant-client's ``qdrant_client.models`` or Qdrant Edge's module, which
    name them alike (``SearchParams``, ``QuantizationSearchParams``,
    ``AcornSearchParams``)."""
    quant = (
        None
        if quantization is None
        else models.QuantizationSearchParams(
            ignore=quantization.ignore, rescore=quantization.rescore, oversampling=quantization.oversampling
        )
    )
    return models.SearchParams(
        hnsw_ef=plan.hnsw_ef,
        exact=plan.exact,
        quantization=quant,
        acorn=models.AcornSearchParams(enable=True) if plan.acorn else None,
    )


@dataclass(frozen=True)
class ScoredPoint:
    """One search result as the store returns it."""

    id: int
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """One stored point, fetched by id."""

    id: int
    payload: dict[str, Any]
    vector: np.ndarray | None = None

    def fetched_vector(self) -> np.ndarray:
        """The vector of a point retrieved with ``with_vectors=True``.

        Raises:
            StoreError: the store sent the point without its vector.
        """
        if self.vector is None:
            raise StoreError(f"point {self.id} came back without its vector")
        return self.vector


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection is and holds."""

    name: str
    points: int
    dim: int
    distance: str
    metadata: dict[str, Any]
    multivector: bool = False


def ordered_records(ids: Sequence[int], records: Sequence[Any], with_vectors: bool) -> list[Record]:
    """A backend's fetched points (anything with ``id``, ``payload``,
    ``vector``) as :class:`Record` s in the order ``ids`` asked for them;
    ids the collection does not hold are left out."""
    by_id = {int(r.id): r for r in records}
    out = []
    for i in ids:
        r = by_id.get(int(i))
        if r is not None:
            vector = np.asarray(r.vector, dtype=np.float32) if with_vectors and r.vector is not None else None
            out.append(Record(int(r.id), dict(r.payload or {}), vector))
    return out


def per_row(value: Any, n: int, scalar: type | tuple[type, ...]) -> list:
    """One value for every row of a batch request, or a value per row."""
    if value is None or isinstance(value, scalar):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {n} queries")
    return values


def payload_selector(with_payload: bool | Sequence[str]) -> bool | list[str]:
    """``with_payload`` as both Qdrant bindings take it."""
    return with_payload if isinstance(with_payload, bool) else list(with_payload)


def vector_lists(vectors: np.ndarray | Sequence[np.ndarray], multivector: bool) -> list:
    """Dense (N, d) rows, or N multivectors of shape (n_i, d), as the plain
    lists both Qdrant bindings take."""
    if multivector:
        return [np.asarray(v).reshape(len(v), -1).tolist() for v in vectors]
    return np.asarray(vectors, dtype=np.float32).tolist()


class Store(ABC):
    """A set of collections of points (id, vector, payload)."""

    #: Where the store lives, for messages ("embedded:/path" or the server URL).
    location: str
    #: Whether searches honour their parameters: HNSW breadth, exact search,
    #: quantised vectors with rescore and oversampling. qdrant-client's local
    #: mode does not (it always searches the original vectors exactly).
    honours_search_params: bool = True

    @abstractmethod
    def collections(self) -> list[str]:
        """Names of every collection, sorted."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether a collection exists."""

    @abstractmethod
    def info(self, name: str) -> CollectionInfo:
        """Size, vector params and metadata.

        Raises:
            CollectionNotFoundError: no such collection.
        """

    @abstractmethod
    def create(self, spec: CollectionSpec) -> None:
        """Create an empty collection with its payload indexes.

        Raises:
            StoreError: it exists already.
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete a collection if it exists."""

    @abstractmethod
    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Merge keys into the collection's metadata."""

    @abstractmethod
    def upsert(self, name: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        """Insert or replace points (same id: replaced, never duplicated).

        ``vectors``: (N, d) for a dense collection, N arrays (n_i, d) for a
        multivector one."""

    @abstractmethod
    def delete_points(self, name: str, ids: Sequence[int]) -> None:
        """Remove points by id (ids not stored are ignored); the index is
        kept, no rebuild."""

    @abstractmethod
    def finalize(self, name: str) -> None:
        """Make what was written durable and indexed (HNSW built after bulk load)."""

    @abstractmethod
    def query_batch(
        self,
        name: str,
        vectors: np.ndarray | Sequence[np.ndarray],
        limit: int | Sequence[int],
        flt: QueryFilter | Sequence[QueryFilter | None] | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_payload: bool | Sequence[str] = True,
        quantization: QuantizationParams | None = None,
        score_threshold: float | None = None,
        acorn: bool = False,
        plans: list[SearchPlan] | None = None,
    ) -> list[list[ScoredPoint]]:
        """Nearest neighbours of each row of ``vectors`` (or of each (n, d)
        multivector, for a multivector collection), as one batch request;
        ``limit`` and ``flt`` are one for every row, or one per row;
        ``score_threshold``: only hits scoring at least this (Qdrant's own
        threshold, applied in the search; for euclid, at most this distance);
        ``acorn``: Qdrant's ACORN search for filtered queries (it also
        explores the neighbours of filtered-out points). Each row runs by
        its :meth:`plan`: ``exact``, ``hnsw_ef`` and ``acorn`` given are
        obeyed, else the filter-aware default chooses; ``plans``, when
        given, receives each row's plan."""

    def query(
        self, name: str, vector: np.ndarray, limit: int, flt: QueryFilter | None = None, **params: Any
    ) -> list[ScoredPoint]:
        """Nearest neighbours of one vector (or one (n, d) multivector);
        ``params`` as :meth:`query_batch` takes them."""
        batch = [np.asarray(vector)] if self.is_multivector(name) else np.asarray(vector, np.float32)[None]
        return self.query_batch(name, batch, limit, flt, **params)[0]

    @abstractmethod
    def recommend(
        self,
        name: str,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray],
        limit: int,
        flt: QueryFilter | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        quantization: QuantizationParams | None = None,
        with_payload: bool | Sequence[str] = True,
        acorn: bool = False,
        plans: list[SearchPlan] | None = None,
    ) -> list[ScoredPoint]:
        """Qdrant's recommend query, best-score strategy: points close to the
        positive vectors and far from the negative ones; ``exact``,
        ``hnsw_ef``, ``quantization``, ``acorn`` and ``plans`` as
        :meth:`query_batch` takes them."""

    def is_multivector(self, name: str) -> bool:
        """Whether the collection holds multivectors (cached per name)."""
        cache = self.__dict__.setdefault("_multivector", {})
        if name not in cache:
            cache[name] = self.info(name).multivector
        return cache[name]

    def _forget(self, name: str) -> None:
        """Drop what is cached about a collection (it was deleted or swapped)."""
        self.__dict__.setdefault("_multivector", {}).pop(name, None)
        self._forget_plans(name)

    def _forget_plans(self, name: str) -> None:
        """Drop the planner's figures of a collection (it was written)."""
        self.__dict__.setdefault("_plan_sizes", {}).pop(name, None)
        estimates = self.__dict__.get("_plan_estimates")
        if estimates:
            with self._plan_lock:
                for key in [key for key in estimates if key[0] == name]:
                    del estimates[key]

    # -- the filter-aware default (fmsearch.store.planner) ------------------

    #: scored exactly below this many multiply-adds (tests lower it)
    scan_budget: int = planner.SCAN_BUDGET

    @abstractmethod
    def estimate(self, name: str, flt: QueryFilter) -> int:
        """Qdrant's estimate of the points ``flt`` keeps (from the payload
        index's cardinality, not a count of the points)."""

    @property
    def _plan_lock(self) -> threading.Lock:
        return self.__dict__.setdefault("_plan_lock_", threading.Lock())

    def _plan_size(self, name: str) -> tuple[int, int, int | None, tuple[str, ...]]:
        """(points, dimensions, calibrated ef, linked fields), read at most
        every :data:`PLAN_CACHE_SECONDS` (and again after this store writes)."""
        sizes = self.__dict__.setdefault("_plan_sizes", {})
        cached = sizes.get(name)
        if cached is None or time.monotonic() - cached[0] > PLAN_CACHE_SECONDS:
            info = self.info(name)
            linked = recorded_linked_fields(info.metadata)
            cached = sizes[name] = (time.monotonic(), info.points, info.dim, planner.filtered_ef(info.metadata), linked)
        return cached[1:]

    def _matching(self, name: str, flt: QueryFilter) -> int:
        """The filter's estimate, kept :data:`PLAN_CACHE_SECONDS` (a
        server's costs a request)."""
        estimates: OrderedDict = self.__dict__.setdefault("_plan_estimates", OrderedDict())
        key, now = (name, flt), time.monotonic()
        with self._plan_lock:
            cached = estimates.get(key)
            if cached is not None and now - cached[0] <= PLAN_CACHE_SECONDS:
                estimates.move_to_end(key)
                return cached[1]
        matching = int(self.estimate(name, flt))
        with self._plan_lock:
            estimates[key] = (now, matching)
            while len(estimates) > PLAN_CACHE_FILTERS:
                estimates.popitem(last=False)
        return matching

    def plan(
        self,
        name: str,
        flt: QueryFilter | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        acorn: bool = False,
    ) -> SearchPlan:
        """How a search of ``name`` under ``flt`` runs: the filter-aware
        default (:func:`fmsearch.store.planner.plan`), or the caller's own
        ``exact`` / ``hnsw_ef`` / ``acorn`` as given. Every search of the
        store is run by its plan; ``query_batch(plans=[])`` returns them."""
        if exact or hnsw_ef is not None or acorn or self.is_multivector(name):
            return planner.plan(points=None, dim=0, matching=None, exact=exact, hnsw_ef=hnsw_ef, acorn=acorn)
        points, dim, wide_ef, linked = self._plan_size(name)
        if flt is None or flt.is_empty():
            return planner.plan(points=points, dim=dim, matching=None)
        return planner.plan(
            points=points,
            dim=dim,
            matching=self._matching(name, flt),
            filtered_ef=wide_ef,
            unlinked=bool(flt.narrowed_by() - set(linked)),
            scan_budget=self.scan_budget,
        )

    def plans(
        self,
        name: str,
        flt: QueryFilter | Sequence[QueryFilter | None] | None,
        n: int,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        acorn: bool = False,
        out: list[SearchPlan] | None = None,
    ) -> list[SearchPlan]:
        """One :meth:`plan` per row of a batch (``flt`` one for all, or
        one per row), appended to ``out`` when given and logged."""
        filters = per_row(flt, n, QueryFilter)
        found: dict[QueryFilter | None, SearchPlan] = {}
        rows = []
        for f in filters:
            if f not in found:
                found[f] = self.plan(name, f, exact=exact, hnsw_ef=hnsw_ef, acorn=acorn)
            rows.append(found[f])
        if out is not None:
            out.extend(rows)
        if logger.isEnabledFor(logging.INFO):
            for p, count in Counter(p.describe() for p in rows).items():
                logger.info("%s: %s%s", name, p, "" if count == 1 else f" ({count} searches)")
        return rows

    @abstractmethod
    def retrieve(
        self, name: str, ids: Sequence[int], *, with_vectors: bool = False, with_payload: bool | Sequence[str] = True
    ) -> list[Record]:
        """Points by id, in the order asked; missing ids are left out."""

    @abstractmethod
    def ids(self, name: str, flt: QueryFilter | None = None) -> np.ndarray:
        """Every point id the collection holds (that ``flt`` keeps), sorted
        (what a resumed ingest skips; a class's members, read from the
        payload index, not the payloads)."""

    @abstractmethod
    def staging_name(self, name: str) -> str:
        """A fresh, hidden name for rebuilding ``name`` beside it (leftovers
        of earlier killed rebuilds are removed first)."""

    @abstractmethod
    def swap(self, name: str, staging: str) -> None:
        """Atomically make the complete collection ``staging`` serve under
        ``name`` (readers see the old or the new, never a mix or nothing),
        then drop the old one."""

    @abstractmethod
    def count(self, name: str, flt: QueryFilter | None = None) -> int:
        """Exact number of points (matching ``flt``)."""

    def serving_copy(self, names: Sequence[str], workdir: str | os.PathLike) -> Store:
        """A store to serve ``names`` from, for a long-running reader (the
        service, each of its worker processes) that must not keep writers
        out: a server serves any number of readers itself, so this store."""
        return self

    def disk_bytes(self, name: str) -> int | None:
        """Bytes the collection takes on disk (vectors, quantised copies,
        index and payload together), where the backend can tell; ``None``
        for a server, whose disk is not ours to read."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Flush and release everything."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
