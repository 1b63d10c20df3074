"""The embedded backend: Qdrant Edge, the Qdrant engine in-process.

Layout under the store's home::

    <home>/collections/<name>/collection.json   vector params + metadata
    <home>/collections/<name>/shard/            the Edge shard (segments, WAL)

``collection.json`` is written atomically (temp file + rename). Points are
appended to unindexed segments during a bulk load; :meth:`finalize` flushes
and runs the optimizers, which build the HNSW graph once over everything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import CollectionNotFoundError, StoreError

from .schema import PAYLOAD_INDEXES, CollectionSpec
from .store import (
    DEFAULT_HNSW_EF,
    CollectionInfo,
    QuantizationParams,
    QueryFilter,
    Record,
    ScoredPoint,
    Store,
    vector_lists,
)

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
META_FILE = "collection.json"
SHARD_DIR = "shard"
# HNSW parameters (Qdrant's defaults); full_scan_threshold is in KB of vectors.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
FULL_SCAN_THRESHOLD_KB = 10_000


def _edge():
    import qdrant_edge

    return qdrant_edge


def _quantization_config(qe, quantization: str):
    """Qdrant's int8 scalar (0.99 quantile) or 1-bit binary quantisation, kept in RAM."""
    if quantization == "int8":
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
    if quantization == "binary":
        return qe.BinaryQuantizationConfig(always_ram=True)
    return None


class EdgeStore(Store):
    """Collections as Qdrant Edge shards under one home directory."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.location = f"embedded:{self.home}"
        self._shards: dict[str, Any] = {}

    # -- paths and metadata -------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise StoreError(f"invalid collection name {name!r}")
        return self.home / "collections" / name

    def _read_meta(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / META_FILE
        if not path.is_file():
            raise CollectionNotFoundError(
                f"collection {name} not found in {self.location}; run `fmsearch ingest` first"
            )
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise StoreError(f"{path} is unreadable or corrupt: {err}") from err

    def _write_meta(self, name: str, meta: dict[str, Any]) -> None:
        directory = self._dir(name)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".collection-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / META_FILE)

    def _shard(self, name: str):
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        self._read_meta(name)  # raises CollectionNotFoundError
        path = self._dir(name) / SHARD_DIR
        try:
            shard = _edge().EdgeShard.load(str(path))
        except Exception as err:  # the binding raises plain Exceptions
            raise StoreError(f"cannot open shard {path}: {err}") from err
        self._shards[name] = shard
        return shard

    # -- Store interface ----------------------------------------------------

    def collections(self) -> list[str]:
        root = self.home / "collections"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / META_FILE).is_file())

    def exists(self, name: str) -> bool:
        return (self._dir(name) / META_FILE).is_file()

    def info(self, name: str) -> CollectionInfo:
        meta = self._read_meta(name)
        points = self._shard(name).info().points_count
        return CollectionInfo(
            name=name,
            points=int(points),
            dim=int(meta["dim"]),
            distance=meta["distance"],
            metadata=meta["metadata"],
            multivector=bool(meta.get("multivector", False)),
        )

    def create(self, spec: CollectionSpec) -> None:
        qe = _edge()
        directory = self._dir(spec.name)
        if self.exists(spec.name):
            raise StoreError(f"collection {spec.name} already exists in {self.location}")
        if directory.exists():  # leftovers of a create that died before its metadata
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        distance = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid}
        datatype = {"float32": qe.VectorStorageDatatype.Float32, "uint8": qe.VectorStorageDatatype.Uint8}
        hnsw = qe.HnswIndexConfig(
            m=HNSW_M if spec.hnsw else 0,  # m=0: no graph, scored by id/filter only
            ef_construct=HNSW_EF_CONSTRUCT,
            full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
        )
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(
                size=spec.dim,
                distance=distance[spec.distance],
                datatype=datatype[spec.datatype],
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
                if spec.multivector else None,
                hnsw_config=hnsw,
                quantization_config=_quantization_config(qe, spec.quantization),
            ),
            hnsw_config=hnsw,
        )
        try:
            shard = qe.EdgeShard.create(str(directory / SHARD_DIR), config)
            schema = {"integer": qe.PayloadSchemaType.Integer, "keyword": qe.PayloadSchemaType.Keyword}
            for key, kind in PAYLOAD_INDEXES.items():
                shard.update(qe.UpdateOperation.create_field_index(key, schema[kind]))
            shard.flush()
        except Exception as err:
            shutil.rmtree(directory, ignore_errors=True)
            raise StoreError(f"cannot create shard for {spec.name}: {err}") from err
        self._shards[spec.name] = shard
        # The metadata file goes last: a directory without it is not a collection.
        self._write_meta(
            spec.name,
            {
                "dim": spec.dim,
                "distance": spec.distance,
                "multivector": spec.multivector,
                "datatype": spec.datatype,
                "metadata": spec.metadata,
            },
        )

    def delete(self, name: str) -> None:
        self._forget(name)
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        directory = self._dir(name)
        if directory.exists():
            # Drop the metadata first so a half-deleted directory is never listed.
            (directory / META_FILE).unlink(missing_ok=True)
            shutil.rmtree(directory)

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        meta = self._read_meta(name)
        meta["metadata"] = {**meta["metadata"], **metadata}
        self._write_meta(name, meta)

    def upsert(
        self, name: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        qe = _edge()
        rows = vector_lists(vectors, self.is_multivector(name))
        points = [qe.Point(int(i), v, p) for i, v, p in zip(ids, rows, payloads, strict=True)]
        self._shard(name).update(qe.UpdateOperation.upsert_points(points))

    def finalize(self, name: str) -> None:
        shard = self._shard(name)
        shard.flush()
        shard.optimize()
        shard.flush()

    def _filter(self, flt: QueryFilter | None):
        if flt is None or flt.is_empty():
            return None
        qe = _edge()
        must, must_not = [], []
        if flt.labels is not None:
            must.append(qe.FieldCondition(key="label", match=qe.MatchAny(list(flt.labels))))
        if flt.exclude_labels:
            must_not.append(
                qe.FieldCondition(key="label", match=qe.MatchAny(list(flt.exclude_labels)))
            )
        if flt.ids is not None:
            must.append(qe.HasIdCondition(set(flt.ids)))
        if flt.exclude_ids:
            must_not.append(qe.HasIdCondition(set(flt.exclude_ids)))
        if flt.split is not None:
            must.append(qe.FieldCondition(key="split", match=qe.MatchValue(flt.split)))
        return qe.Filter(must=must or None, must_not=must_not or None)

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
        qe = _edge()
        shard = self._shard(name)
        filt = self._filter(flt)
        quant = None if quantization is None else qe.QuantizationSearchParams(
            ignore=quantization.ignore, rescore=quantization.rescore, oversampling=quantization.oversampling
        )
        params = qe.SearchParams(hnsw_ef=hnsw_ef or DEFAULT_HNSW_EF, exact=exact, quantization=quant)
        payload = with_payload if isinstance(with_payload, bool) else list(with_payload)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(v),
                filter=filt,
                params=params,
                with_payload=payload,
            )
            for v in vector_lists(vectors, self.is_multivector(name))
        ]
        results = shard.query_batch(qe.QueryBatchRequest(requests))
        return [
            [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in hits]
            for hits in results
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
        qe = _edge()
        query = qe.Query.RecommendBestScore(qe.RecommendQuery(
            [np.asarray(v, np.float32).tolist() for v in positive],
            [np.asarray(v, np.float32).tolist() for v in negative],
        ))
        payload = with_payload if isinstance(with_payload, bool) else list(with_payload)
        hits = self._shard(name).query(qe.QueryRequest(
            limit=limit, query=query, filter=self._filter(flt),
            params=qe.SearchParams(hnsw_ef=hnsw_ef or DEFAULT_HNSW_EF), with_payload=payload,
        ))
        return [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in hits]

    def retrieve(
        self,
        name: str,
        ids: Sequence[int],
        *,
        with_vectors: bool = False,
        with_payload: bool | Sequence[str] = True,
    ) -> list[Record]:
        payload = with_payload if isinstance(with_payload, bool) else list(with_payload)
        records = self._shard(name).retrieve(
            [int(i) for i in ids], with_payload=payload, with_vector=with_vectors
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
        qe = _edge()
        return int(self._shard(name).count(qe.CountRequest(exact=True, filter=self._filter(flt))))

    def close(self) -> None:
        for shard in self._shards.values():
            try:
                shard.flush()
            finally:
                shard.close()
        self._shards.clear()
