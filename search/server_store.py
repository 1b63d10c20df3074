"""The server backend: ``qdrant-client`` against a Qdrant server.

Also runs on qdrant-client's local mode (``ServerStore.local(path)``), which
speaks the same client API: the fast tests exercise this code path that way.
The API key is passed to the client and nowhere else: never printed, logged
or put in an error message.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fmsearch.errors import CollectionNotFoundError, StoreError

from .schema import PAYLOAD_INDEXES, CollectionSpec
from .store import (
    DEFAULT_HNSW_EF,
    DEFAULT_TIMEOUT,
    CollectionInfo,
    QuantizationParams,
    QueryFilter,
    Record,
    ScoredPoint,
    Store,
    vector_lists,
)

logger = logging.getLogger(__name__)

HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
_UPSERT_CHUNK = 512
_INDEX_WAIT_S = 600


def _quantization_config(models, quantization: str):
    """Qdrant's int8 scalar (0.99 quantile) or 1-bit binary quantisation, kept in RAM."""
    if quantization == "int8":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
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
        _client: Any = None,
    ) -> None:
        from qdrant_client import QdrantClient

        self.location = url
        self._local = _client is not None
        if _client is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _client = QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)
            for w in caught:  # e.g. "Api key is used with an insecure connection": one log line
                logger.warning("%s (%s)", w.message, url)
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
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            yield
        except UnexpectedResponse as err:
            if err.status_code == 404 and collection is not None:
                raise CollectionNotFoundError(
                    f"collection {collection} not found on {self.location}; "
                    "run `fmsearch ingest` first"
                ) from err
            raise StoreError(
                f"Qdrant at {self.location} answered {err.status_code} to {what}: "
                f"{(err.reason_phrase or '').strip()}"
            ) from err
        except ResponseHandlingException as err:
            cause = err.source if getattr(err, "source", None) else err
            raise StoreError(
                f"cannot reach Qdrant at {self.location} ({what}): {type(cause).__name__}"
            ) from err
        except ValueError as err:
            # local mode reports a missing collection as ValueError
            if collection is not None and "not found" in str(err):
                raise CollectionNotFoundError(
                    f"collection {collection} not found on {self.location}; "
                    "run `fmsearch ingest` first"
                ) from err
            raise
        except (ConnectionError, TimeoutError, OSError) as err:
            raise StoreError(
                f"cannot reach Qdrant at {self.location} ({what}): {type(err).__name__}"
            ) from err
        except Exception as err:
            # httpx / grpc transport errors do not share a base class with the above
            if type(err).__module__.split(".")[0] in ("httpx", "httpcore", "grpc"):
                raise StoreError(
                    f"cannot reach Qdrant at {self.location} ({what}): {type(err).__name__}"
                ) from err
            raise

    def collections(self) -> list[str]:
        with self._call("list collections"):
            return sorted(c.name for c in self.client.get_collections().collections)

    def exists(self, name: str) -> bool:
        with self._call("check collection", name):
            return bool(self.client.collection_exists(name))

    def info(self, name: str) -> CollectionInfo:
        with self._call("get collection", name):
            desc = self.client.get_collection(name)
            points = self.client.count(name, exact=True).count
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
        with self._call("create collection", spec.name):
            if self.client.collection_exists(spec.name):
                raise StoreError(f"collection {spec.name} already exists on {self.location}")
            params = models.VectorParams(
                size=spec.dim,
                distance=distance[spec.distance],
                datatype=models.Datatype.UINT8 if spec.datatype == "uint8" else None,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
                if spec.multivector else None,
                # m=0: no graph, the collection is scored by id/filter only
                hnsw_config=None if spec.hnsw else models.HnswConfigDiff(m=0),
                quantization_config=_quantization_config(models, spec.quantization),
            )
            self.client.create_collection(
                spec.name,
                vectors_config=params,
                hnsw_config=models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT),
                metadata=spec.metadata,
            )
            if not self._local:  # local mode has no payload indexes (and warns)
                schema = {
                    "integer": models.PayloadSchemaType.INTEGER,
                    "keyword": models.PayloadSchemaType.KEYWORD,
                }
                for key, kind in PAYLOAD_INDEXES.items():
                    self.client.create_payload_index(spec.name, key, schema[kind], wait=True)

    def delete(self, name: str) -> None:
        self._forget(name)
        with self._call("delete collection", name):
            self.client.delete_collection(name)

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        with self._call("update collection metadata", name):
            self.client.update_collection(name, metadata=metadata)

    def upsert(
        self, name: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        from qdrant_client import models

        rows = vector_lists(vectors, self.is_multivector(name))
        ids = [int(i) for i in ids]
        with self._call("upsert", name), warnings.catch_warnings():
            # local mode warns past 20,000 points; it is only a test stand-in here
            warnings.filterwarnings("ignore", message="Local mode is not recommended")
            for lo in range(0, len(ids), _UPSERT_CHUNK):
                hi = lo + _UPSERT_CHUNK
                self.client.upsert(
                    name,
                    points=models.Batch(
                        ids=ids[lo:hi], vectors=rows[lo:hi], payloads=list(payloads[lo:hi])
                    ),
                    wait=True,
                )

    def finalize(self, name: str) -> None:
        """Wait until the server's optimizers have indexed the collection."""
        from qdrant_client import models

        deadline = time.monotonic() + _INDEX_WAIT_S
        with self._call("wait for indexing", name):
            while self.client.get_collection(name).status != models.CollectionStatus.GREEN:
                if time.monotonic() > deadline:
                    raise StoreError(f"{name} on {self.location} still indexing after {_INDEX_WAIT_S}s")
                time.sleep(0.5)

    def _filter(self, flt: QueryFilter | None):
        if flt is None or flt.is_empty():
            return None
        from qdrant_client import models

        must, must_not = [], []
        if flt.labels is not None:
            must.append(models.FieldCondition(key="label", match=models.MatchAny(any=list(flt.labels))))
        if flt.exclude_labels:
            must_not.append(
                models.FieldCondition(key="label", match=models.MatchAny(any=list(flt.exclude_labels)))
            )
        if flt.ids is not None:
            must.append(models.HasIdCondition(has_id=list(flt.ids)))
        if flt.exclude_ids:
            must_not.append(models.HasIdCondition(has_id=list(flt.exclude_ids)))
        if flt.split is not None:
            must.append(models.FieldCondition(key="split", match=models.MatchValue(value=flt.split)))
        return models.Filter(must=must or None, must_not=must_not or None)

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
        from qdrant_client import models

        filt = self._filter(flt)
        quant = None if quantization is None else models.QuantizationSearchParams(
            ignore=quantization.ignore, rescore=quantization.rescore, oversampling=quantization.oversampling
        )
        # local mode is always exact (no quantisation either) and warns about search params
        params = None if self._local else models.SearchParams(
            hnsw_ef=hnsw_ef or DEFAULT_HNSW_EF, exact=exact, quantization=quant
        )
        payload = with_payload if isinstance(with_payload, bool) else list(with_payload)
        requests = [
            models.QueryRequest(
                query=v, limit=limit, filter=filt, params=params, with_payload=payload
            )
            for v in vector_lists(vectors, self.is_multivector(name))
        ]
        with self._call("query", name):
            responses = self.client.query_batch_points(name, requests=requests)
        return [
            [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in r.points]
            for r in responses
        ]

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
        from qdrant_client import models

        query = models.RecommendQuery(recommend=models.RecommendInput(
            positive=[np.asarray(v, np.float32).tolist() for v in positive],
            negative=[np.asarray(v, np.float32).tolist() for v in negative],
            strategy=models.RecommendStrategy.BEST_SCORE,
        ))
        params = None if self._local else models.SearchParams(hnsw_ef=hnsw_ef or DEFAULT_HNSW_EF)
        payload = with_payload if isinstance(with_payload, bool) else list(with_payload)
        with self._call("recommend", name):
            points = self.client.query_points(
                name, query=query, limit=limit, query_filter=self._filter(flt), search_params=params,
                with_payload=payload,
            ).points
        return [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def retrieve(
        self,
        name: str,
        ids: Sequence[int],
        *,
        with_vectors: bool = False,
        with_payload: bool | Sequence[str] = True,
    ) -> list[Record]:
        payload = with_payload if isinstance(with_payload, bool) else list(with_payload)
        with self._call("retrieve", name):
            records = self.client.retrieve(
                name, [int(i) for i in ids], with_payload=payload, with_vectors=with_vectors
            )
        by_id = {int(r.id): r for r in records}
        out = []
        for i in ids:
            r = by_id.get(int(i))
            if r is None:
                continue
            vec = np.asarray(r.vector, dtype=np.float32) if with_vectors and r.vector is not None else None
            out.append(Record(int(r.id), dict(r.payload or {}), vec))
        return out

    def count(self, name: str, flt: QueryFilter | None = None) -> int:
        with self._call("count", name):
            return int(self.client.count(name, count_filter=self._filter(flt), exact=True).count)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
