"""The store interface, and the one place that picks a backend.

Two backends speak the same interface:

- :class:`search.edge_store.EdgeStore`: Qdrant Edge, the Qdrant engine
  in-process, one shard directory per collection (the default);
- :class:`search.server_store.ServerStore`: ``qdrant-client`` against a Qdrant
  server (or, for tests, qdrant-client's local mode, which speaks the same API).

The rest of the code receives a ``Store`` from :func:`open_store` and never
asks which one it is. This module never imports TensorFlow.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .schema import CollectionSpec

DEFAULT_HOME = ".fmsearch"
DEFAULT_HNSW_EF = 128
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
    """

    labels: tuple[int, ...] | None = None
    exclude_labels: tuple[int, ...] = ()
    ids: tuple[int, ...] | None = None
    exclude_ids: tuple[int, ...] = ()
    split: str | None = None

    def is_empty(self) -> bool:
        return (
            self.labels is None
            and not self.exclude_labels
            and self.ids is None
            and not self.exclude_ids
            and self.split is None
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
        from fmsearch.errors import InvalidArgumentError

        if self.oversampling is not None and not (np.isfinite(self.oversampling) and self.oversampling >= 1):
            raise InvalidArgumentError(f"--oversampling must be at least 1, got {self.oversampling}")


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


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection is and holds."""

    name: str
    points: int
    dim: int
    distance: str
    metadata: dict[str, Any]
    multivector: bool = False


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
    def upsert(
        self, name: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        """Insert or replace points (same id: replaced, never duplicated).

        ``vectors``: (N, d) for a dense collection, N arrays (n_i, d) for a
        multivector one."""

    @abstractmethod
    def finalize(self, name: str) -> None:
        """Make what was written durable and indexed (HNSW built after bulk load)."""

    @abstractmethod
    def query_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        flt: QueryFilter | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_payload: bool | Sequence[str] = True,
        quantization: QuantizationParams | None = None,
    ) -> list[list[ScoredPoint]]:
        """Nearest neighbours of each row of ``vectors`` (or of each (n, d)
        multivector, for a multivector collection), as one batch request."""

    def query(
        self,
        name: str,
        vector: np.ndarray,
        limit: int,
        flt: QueryFilter | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_payload: bool | Sequence[str] = True,
        quantization: QuantizationParams | None = None,
    ) -> list[ScoredPoint]:
        """Nearest neighbours of one vector (or one (n, d) multivector)."""
        return self.query_batch(
            name,
            [np.asarray(vector)] if self.is_multivector(name) else np.asarray(vector, np.float32)[None],
            limit,
            flt,
            exact=exact,
            hnsw_ef=hnsw_ef,
            with_payload=with_payload,
            quantization=quantization,
        )[0]

    @abstractmethod
    def recommend(
        self,
        name: str,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray],
        limit: int,
        flt: QueryFilter | None = None,
        *,
        hnsw_ef: int | None = None,
        with_payload: bool | Sequence[str] = True,
    ) -> list[ScoredPoint]:
        """Qdrant's recommend query, best-score strategy: points close to the
        positive vectors and far from the negative ones."""

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
        self,
        name: str,
        ids: Sequence[int],
        *,
        with_vectors: bool = False,
        with_payload: bool | Sequence[str] = True,
    ) -> list[Record]:
        """Points by id, in the order asked; missing ids are left out."""

    @abstractmethod
    def ids(self, name: str) -> np.ndarray:
        """Every point id the collection holds, sorted (what a resumed
        ingest skips)."""

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

    @abstractmethod
    def close(self) -> None:
        """Flush and release everything."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_home() -> Path:
    """``$FMSEARCH_HOME``, else ``./.fmsearch``."""
    return Path(os.environ.get("FMSEARCH_HOME") or DEFAULT_HOME)


def open_store(
    url: str | None = None,
    *,
    api_key: str | None = None,
    home: str | os.PathLike | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    retries: int = 3,
    prefer_grpc: bool = False,
) -> Store:
    """Pick the backend from the arguments.

    Args:
        url: a Qdrant server URL (``http://`` or ``https://``) selects the server
            backend; ``local:PATH`` selects qdrant-client's local mode at PATH
            (a test stand-in for a server: slow, not for real use); ``None``
            selects the embedded Qdrant Edge store.
        api_key: the server's API key (never printed or logged).
        home: the embedded store's directory (default :func:`default_home`).
        timeout: seconds before a server request fails.
        retries: server requests that fail transiently (connection errors,
            timeouts, 429/5xx) are sent again up to this many times, with
            exponential backoff and jitter.
        prefer_grpc: talk to the server over gRPC (port 6334) where the
            client can.

    Returns:
        An open store; close it (or use it as a context manager).
    """
    if url:
        from .server_store import ServerStore

        if url.startswith("local:"):
            return ServerStore.local(url.removeprefix("local:"))
        if not url.startswith(("http://", "https://")):
            from fmsearch.errors import InvalidArgumentError

            raise InvalidArgumentError(f"a Qdrant URL starts with http:// or https:// (or local:PATH), got {url!r}")
        return ServerStore(url, api_key=api_key, timeout=timeout, retries=retries, prefer_grpc=prefer_grpc)
    from .edge_store import EdgeStore

    return EdgeStore(Path(home) if home else default_home())
