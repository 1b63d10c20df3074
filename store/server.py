"""The server backend: ``qdrant-client`` against a Qdrant server.

Also runs on qdrant-client's local mode (``ServerStore.local(path)``), which
speaks the same client API: the fast tests exercise this code path that way.
The API key is passed to the client and nowhere else: never printed, logged
or put in an error message.

Collections are served under an **alias**: ``fmnist_pixels`` names the real
collection ``fmnist_pixels__r<stamp>``. A rebuild fills a new real
collection beside it and moves the alias in one request (:meth:`swap`), so
queries by the alias see the old collection or the new, never a half-built
one. A collection created before aliases (a real collection under the plain
name) is replaced the same way, except that Qdrant cannot give an alias the
name of an existing collection: there the old one is deleted just before
the alias is made.

Transient failures (connection errors, timeouts, 429 and 5xx answers) are
retried with exponential backoff and jitter, a bounded number of times; the
final error names the server, what failed and how many attempts were made.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np

from fmsearch.errors import CollectionNotFoundError, StoreError
from fmsearch.store import schema
from fmsearch.store.base import (
    DEFAULT_TIMEOUT,
    CollectionInfo,
    QuantizationParams,
    QueryFilter,
    Record,
    ScoredPoint,
    SearchPlan,
    Store,
    ordered_records,
    payload_selector,
    per_row,
    search_params,
    vector_lists,
)
from fmsearch.store.retry import (
    BACKOFF_BASE_S,
    DEFAULT_RETRIES,
    RetryingClient,
    attempts_note,
)
from fmsearch.store.schema import CollectionSpec

logger = logging.getLogger(__name__)

_UPSERT_CHUNK = 512
_INDEX_WAIT_S = 600
#: real collections behind an alias: ``<name>__r<hex stamp>``
_REVISION_RE = re.compile(r"^(?P<name>.+)__r[0-9a-f]+$")


def _quantization_config(models, quantization: str):
    """Qdrant's int8 scalar or 1-bit binary quantisation, kept in RAM."""
    if quantization == "int8":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=schema.INT8_QUANTILE, always_ram=True
            )
        )
    if quantization == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    return None


class ServerStore(Store):
    """Collections on a Qdrant server (or in qdrant-client's local mode)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        prefer_grpc: bool = False,
        retry_base_delay: float = BACKOFF_BASE_S,
        _client: Any = None,
    ) -> None:
        from qdrant_client import QdrantClient

        self.location = url
        self._local = _client is not None
        # local mode searches every point exactly, whatever the params say
        self.honours_search_params = not self._local
        if _client is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _client = QdrantClient(
                    url=url, api_key=api_key, timeout=timeout, prefer_grpc=prefer_grpc, check_compatibility=False
                )
            for w in caught:  # e.g. "Api key is used with an insecure connection": one log line
                logger.warning("%s (%s)", w.message, url)
            _client = RetryingClient(_client, retries, retry_base_delay)
        self.client = _client

    @classmethod
    def local(cls, path: str) -> ServerStore:
        """qdrant-client's local mode at ``path`` (a test stand-in for a server)."""
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(path=path)
        except Exception as err:  # portalocker: another process holds the path
            raise StoreError(f"cannot open local qdrant at {path}: {err}") from err
        return cls(f"local:{path}", _client=client)

    @contextlib.contextmanager
    def _call(self, what: str, collection: str | None = None) -> Iterator[None]:
        """Turn client, transport and server errors into one-line StoreErrors."""
        from qdrant_client.http.exceptions import (
            ResponseHandlingException,
            UnexpectedResponse,
        )

        try:
            yield
        except UnexpectedResponse as err:
            if err.status_code == 404 and collection is not None:
                raise CollectionNotFoundError(
                    f"collection {collection} not found on {self.location}; run `fmsearch ingest` first",
                    collection=collection,
                ) from err
            raise StoreError(
                f"Qdrant at {self.location} answered {err.status_code} to {what}{attempts_note(err)}: "
                f"{(err.reason_phrase or '').strip()}"
            ) from err
        except ResponseHandlingException as err:
            cause = err.source if getattr(err, "source", None) else err
            raise StoreError(
                f"cannot reach Qdrant at {self.location} ({what}){attempts_note(err)}: {type(cause).__name__}"
            ) from err
        except ValueError as err:
            # local mode reports a missing collection as ValueError
            if collection is not None and "not found" in str(err):
                raise CollectionNotFoundError(
                    f"collection {collection} not found on {self.location}; run `fmsearch ingest` first",
                    collection=collection,
                ) from err
            raise
        except (ConnectionError, TimeoutError, OSError) as err:
            raise StoreError(
                f"cannot reach Qdrant at {self.location} ({what}){attempts_note(err)}: {type(err).__name__}"
            ) from err
        except Exception as err:
            # httpx / grpc transport errors do not share a base class with the above
            if type(err).__module__.split(".")[0] in ("httpx", "httpcore", "grpc"):
                raise StoreError(
                    f"cannot reach Qdrant at {self.location} ({what}){attempts_note(err)}: {type(err).__name__}"
                ) from err
            raise

    # -- aliases: the names users and services query ------------------------

    def _aliases(self) -> dict[str, str]:
        """alias -> real collection."""
        with self._call("list aliases"):
            return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def _real(self, name: str) -> str:
        """The real collection behind ``name`` (itself when not an alias)."""
        return self._aliases().get(name, name)

    def _set_alias(self, name: str, target: str) -> None:
        """Point alias ``name`` at ``target`` in one request (drop the old alias
        in the same request, so there is no moment without one)."""
        from qdrant_client import models

        ops: list[models.AliasOperations] = []
        if name in self._aliases():
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
        ops.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=target, alias_name=name))
        )
        with self._call("switch alias", name):
            self.client.update_collection_aliases(change_aliases_operations=ops)

    def collections(self) -> list[str]:
        with self._call("list collections"):
            real = {c.name for c in self.client.get_collections().collections}
        aliases = self._aliases()
        hidden = set(aliases.values()) | {n for n in real if _REVISION_RE.match(n)}
        return sorted((real - hidden) | set(aliases))

    def exists(self, name: str) -> bool:
        if name in self._aliases():
            return True
        with self._call("check collection", name):
            return bool(self.client.collection_exists(name))

    def info(self, name: str) -> CollectionInfo:
        real = self._real(name)
        with self._call("get collection", name):
            desc = self.client.get_collection(real)
            points = self.client.count(real, exact=True).count
        params = desc.config.params.vectors
        return CollectionInfo(
            name=name,
            points=int(points),
            dim=int(params.size),
            distance=str(params.distance.value).lower(),
            metadata=dict(desc.config.metadata or {}),
            multivector=params.multivector_config is not None,
        )

    def create(self, spec: CollectionSpec) -> None:
        from qdrant_client import models

        distance = {
            "cosine": models.Distance.COSINE,
            "dot": models.Distance.DOT,
            "euclid": models.Distance.EUCLID,
        }
        if self.exists(spec.name):
            raise StoreError(f"collection {spec.name} already exists on {self.location}")
        # A new collection is served by alias from the start (a staging name
        # already is a real collection's name).
        real = spec.name if _REVISION_RE.match(spec.name) else self._revision(spec.name)
        with self._call("create collection", spec.name):
            params = models.VectorParams(
                size=spec.dim,
                distance=distance[spec.distance],
                datatype=models.Datatype.UINT8 if spec.datatype == "uint8" else None,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
                if spec.multivector
                else None,
                # m=0: no graph, the collection is scored by id/filter only
                hnsw_config=None if spec.hnsw else models.HnswConfigDiff(m=0),
                quantization_config=_quantization_config(models, spec.quantization),
                on_disk=spec.on_disk or None,
            )
            self.client.create_collection(
                real,
                vectors_config=params,
                hnsw_config=models.HnswConfigDiff(
                    m=spec.hnsw_m, ef_construct=spec.ef_construct, full_scan_threshold=spec.full_scan_threshold_kb
                ),
                optimizers_config=None
                if spec.indexing_threshold_kb is None
                else models.OptimizersConfigDiff(indexing_threshold=spec.indexing_threshold_kb),
                metadata={**spec.metadata, schema.META_INDEX: spec.index_record()},
                shard_number=spec.shards,
                replication_factor=spec.replicas,
                write_consistency_factor=spec.write_consistency,
            )
            if not self._local:  # local mode has no payload indexes (and warns)
                kinds = {"integer": models.IntegerIndexParams, "keyword": models.KeywordIndexParams}
                for key, kind in spec.payload_indexes.items():
                    params = kinds[kind](type=kind, enable_hnsw=key in spec.linked_fields)
                    self.client.create_payload_index(real, key, params, wait=True)
        if real != spec.name:
            self._set_alias(spec.name, real)

    @staticmethod
    def _revision(name: str) -> str:
        return f"{name}__r{time.time_ns():x}"

    def delete(self, name: str) -> None:
        self._forget(name)
        aliases = self._aliases()
        with self._call("delete collection", name):
            if name in aliases:
                from qdrant_client import models

                self.client.update_collection_aliases(
                    change_aliases_operations=[
                        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name))
                    ]
                )
                self.client.delete_collection(aliases[name])
            else:
                self.client.delete_collection(name)

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        with self._call("update collection metadata", name):
            self.client.update_collection(self._real(name), metadata=metadata)
        self._forget_plans(name)

    def ids(self, name: str, flt: QueryFilter | None = None) -> np.ndarray:
        out: list[int] = []
        offset = None
        condition = self._filter(flt)
        with self._call("scroll ids", name):
            while True:
                records, offset = self.client.scroll(
                    name, scroll_filter=condition, limit=10_000, offset=offset, with_payload=False, with_vectors=False
                )
                out.extend(int(r.id) for r in records)
                if offset is None or not records:
                    return np.sort(np.asarray(out, np.int64))

    def staging_name(self, name: str) -> str:
        self.sweep(name)
        return self._revision(name)

    def sweep(self, name: str) -> None:
        """Delete real collections of ``name`` that no alias serves: what
        killed rebuilds left."""
        served = set(self._aliases().values())
        with self._call("list collections"):
            real = [c.name for c in self.client.get_collections().collections]
        for n in real:
            m = _REVISION_RE.match(n)
            if m and m.group("name") == name and n not in served:
                with self._call("delete leftover collection", n):
                    self.client.delete_collection(n)

    def swap(self, name: str, staging: str) -> None:
        self._forget(name)
        aliases = self._aliases()
        old = aliases.get(name)
        if old is None and self.exists(name):
            # a collection from before aliases: Qdrant refuses an alias that
            # shadows it, so it goes first (the one non-atomic switch)
            logger.warning("replacing %s, created before aliases: briefly absent during the switch", name)
            with self._call("delete collection", name):
                self.client.delete_collection(name)
        self._set_alias(name, staging)
        if old is not None and old != staging:
            with self._call("delete replaced collection", old):
                self.client.delete_collection(old)

    def upsert(self, name: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        from qdrant_client import models

        rows = vector_lists(vectors, self.is_multivector(name))
        point_ids: list[models.ExtendedPointId] = [int(i) for i in ids]
        with self._call("upsert", name), warnings.catch_warnings():
            # local mode warns past 20,000 points; it is only a test stand-in here
            warnings.filterwarnings("ignore", message="Local mode is not recommended")
            for lo in range(0, len(point_ids), _UPSERT_CHUNK):
                hi = lo + _UPSERT_CHUNK
                self.client.upsert(
                    name,
                    points=models.Batch(ids=point_ids[lo:hi], vectors=rows[lo:hi], payloads=list(payloads[lo:hi])),
                    wait=True,
                )
        self._forget_plans(name)

    def delete_points(self, name: str, ids: Sequence[int]) -> None:
        from qdrant_client import models

        with self._call("delete points", name):
            self.client.delete(name, points_selector=models.PointIdsList(points=[int(i) for i in ids]), wait=True)
        self._forget_plans(name)

    def finalize(self, name: str) -> None:
        """Wait until the server's optimizers have indexed the collection."""
        from qdrant_client import models

        deadline = time.monotonic() + _INDEX_WAIT_S
        real = self._real(name)
        with self._call("wait for indexing", name):
            while self.client.get_collection(real).status != models.CollectionStatus.GREEN:
                if time.monotonic() > deadline:
                    raise StoreError(f"{name} on {self.location} still indexing after {_INDEX_WAIT_S}s")
                time.sleep(0.5)

    def _filter(self, flt: QueryFilter | None):
        if flt is None or flt.is_empty():
            return None
        from qdrant_client import models

        must: list[models.Condition] = []
        must_not: list[models.Condition] = []
        if flt.labels is not None:
            must.append(models.FieldCondition(key=schema.LABEL, match=models.MatchAny(any=list(flt.labels))))
        if flt.exclude_labels:
            must_not.append(
                models.FieldCondition(key=schema.LABEL, match=models.MatchAny(any=list(flt.exclude_labels)))
            )
        if flt.ids is not None:
            must.append(models.HasIdCondition(has_id=list(flt.ids)))
        if flt.exclude_ids:
            must_not.append(models.HasIdCondition(has_id=list(flt.exclude_ids)))
        if flt.split is not None:
            must.append(models.FieldCondition(key=schema.SPLIT, match=models.MatchValue(value=flt.split)))
        for key, values in flt.fields:
            # a tuple of ints or of strings lists as such; mypy joins the two to list[object]
            any_of = cast("list[int] | list[str]", list(values))
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=any_of)))
        return models.Filter(must=must or None, must_not=must_not or None)

    def _search_params(self, plan: SearchPlan, quantization: QuantizationParams | None):
        """Qdrant's search params as the plan says; none for local mode,
        which would only warn that it ignores them (:attr:`honours_search_params`
        says so)."""
        from qdrant_client import models

        if self._local:
            if quantization is not None and not quantization.ignore:
                logger.info("local mode ignores quantisation params: it searches the original vectors exactly")
            return None
        return search_params(models, plan, quantization)

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
        from qdrant_client import models

        rows, payload = vector_lists(vectors, self.is_multivector(name)), payload_selector(with_payload)
        limits, filters = per_row(limit, len(rows), (int, np.integer)), per_row(flt, len(rows), QueryFilter)
        planned = self.plans(name, filters, len(rows), exact=exact, hnsw_ef=hnsw_ef, acorn=acorn, out=plans)
        requests = [
            models.QueryRequest(
                query=v,
                limit=n,
                filter=self._filter(f),
                params=self._search_params(plan, quantization),
                with_payload=payload,
                score_threshold=score_threshold,
            )
            for v, n, f, plan in zip(rows, limits, filters, planned, strict=True)
        ]
        with self._call("query", name):
            responses = self.client.query_batch_points(name, requests=requests)
        return [[ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in r.points] for r in responses]

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
        from qdrant_client import models

        (plan,) = self.plans(name, flt, 1, exact=exact, hnsw_ef=hnsw_ef, acorn=acorn, out=plans)
        query = models.RecommendQuery(
            recommend=models.RecommendInput(
                positive=[np.asarray(v, np.float32).tolist() for v in positive],
                negative=[np.asarray(v, np.float32).tolist() for v in negative],
                strategy=models.RecommendStrategy.BEST_SCORE,
            )
        )
        with self._call("recommend", name):
            points = self.client.query_points(
                name,
                query=query,
                limit=limit,
                query_filter=self._filter(flt),
                search_params=self._search_params(plan, quantization),
                with_payload=payload_selector(with_payload),
            ).points
        return [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def retrieve(
        self, name: str, ids: Sequence[int], *, with_vectors: bool = False, with_payload: bool | Sequence[str] = True
    ) -> list[Record]:
        with self._call("retrieve", name):
            records = self.client.retrieve(
                name, [int(i) for i in ids], with_payload=payload_selector(with_payload), with_vectors=with_vectors
            )
        return ordered_records(ids, records, with_vectors)

    def count(self, name: str, flt: QueryFilter | None = None) -> int:
        with self._call("count", name):
            return int(self.client.count(name, count_filter=self._filter(flt), exact=True).count)

    def estimate(self, name: str, flt: QueryFilter) -> int:
        with self._call("count", name):
            return int(self.client.count(name, count_filter=self._filter(flt), exact=False).count)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
