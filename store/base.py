"""The store interface every backend implements, and the values it speaks.

The backends (:mod:`~fmsearch.store.edge`, :mod:`~fmsearch.store.server`)
import this module; :func:`fmsearch.store.open_store` picks one of them.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError, StoreError
from fmsearch.store.schema import CollectionSpec

DEFAULT_HNSW_EF = 128
#: the widest graph search a caller may ask for (the CLI and the service refuse more)
MAX_HNSW_EF = 100_000
DEFAULT_TIMEOUT = 10


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


def search_params(
    models: Any, *, exact: bool, hnsw_ef: int | None, quantization: QuantizationParams | None, acorn: bool
) -> Any:
    """A search's params in the classes of ``models``: qdrant-client's
    ``qdrant_client.models`` or Qdrant Edge's module, which name them alike
    (``SearchParams``, ``QuantizationSearchParams``, ``AcornSearchParams``)."""
    quant = (
        None
        if quantization is None
        else models.QuantizationSearchParams(
            ignore=quantization.ignore, rescore=quantization.rescore, oversampling=quantization.oversampling
        )
    )
    return models.SearchParams(
        hnsw_ef=hnsw_ef or DEFAULT_HNSW_EF,
        exact=exact,
        quantization=quant,
        acorn=models.AcornSearchParams(enable=True) if acorn else None,
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
    ) -> list[list[ScoredPoint]]:
        """Nearest neighbours of each row of ``vectors`` (or of each (n, d)
        multivector, for a multivector collection), as one batch request;
        ``limit`` and ``flt`` are one for every row, or one per row;
        ``score_threshold``: only hits scoring at least this (Qdrant's own
        threshold, applied in the search; for euclid, at most this distance);
        ``acorn``: Qdrant's ACORN search for filtered queries (it also
        explores the neighbours of filtered-out points)."""

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
    ) -> list[ScoredPoint]:
        """Qdrant's recommend query, best-score strategy: points close to the
        positive vectors and far from the negative ones; ``exact``,
        ``hnsw_ef``, ``quantization`` and ``acorn`` as :meth:`query_batch`
        takes them."""

    def is_multivector(self, name: str) -> bool:
        """Whether the collection holds multivectors (cached per name)."""
        cache = self.__dict__.setdefault("_multivector", {})
        if name not in cache:
            cache[name] = self.info(name).multivector
        return cache[name]

    def _forget(self, name: str) -> None:
        """Drop what is cached about a collection (it was deleted)."""
        self.__dict__.setdefault("_multivector", {}).pop(name, None)

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
