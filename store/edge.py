"""The embedded backend: Qdrant Edge, the Qdrant engine in-process.

Layout under the store's home::

    <home>/collections/<name>/collection.json   vector params + metadata
    <home>/collections/<name>/shard/            the Edge shard (segments, WAL)

``collection.json`` is written atomically (temp file + rename). Points are
appended to unindexed segments during a bulk load; :meth:`finalize` flushes
and runs the optimizers, which build the HNSW graph once over everything.

Each collection directory holds a ``.lock`` (:mod:`fmsearch.store.locks`): a process
holds it while it has the shard open, so two processes never open one shard
at once; the second waits, then fails naming the holder. A rebuild writes a
hidden directory ``.<name>.r<stamp>`` beside the live one and swaps the two
atomically (:meth:`swap`) only once it is complete; a killed rebuild leaves
the live collection as it was, and its leftover is removed by the next one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import CollectionNotFoundError, StoreError, StoreLockedError
from fmsearch.store import schema
from fmsearch.store.base import (
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
from fmsearch.store.locks import LOCK_FILE, DirLock, exchange
from fmsearch.store.schema import CollectionSpec

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
META_FILE = "collection.json"
SHARD_DIR = "shard"
#: the shard's own configuration file (qdrant-edge writes it; a serving copy tunes it)
EDGE_CONFIG_FILE = "edge_config.json"


def _edge():
    import qdrant_edge

    return qdrant_edge


def _tune_for_serving(path: Path) -> None:
    """A serving copy's shard searches each query on one thread (a service
    gets its parallelism from its workers and its batches; Edge's search pool
    cost more CPU than it saved) and keeps the payload in memory: a batch of
    16 siamese queries took 0.10 ms of CPU per query against 0.24 with the
    defaults here. The copy is the service's own, so its configuration file
    is rewritten; a file not in the expected shape is left as it is."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        logger.warning("%s: not a readable shard configuration; the serving copy keeps its defaults", path)
        return
    if not isinstance(config, dict) or "vectors" not in config:
        logger.warning("%s: not a shard configuration; the serving copy keeps its defaults", path)
        return
    config.update(max_search_threads=1, payload_memory="pinned")
    path.write_text(json.dumps(config))


def _quantization_config(qe, quantization: str):
    """Qdrant's int8 scalar or 1-bit binary quantisation, kept in RAM."""
    if quantization == "int8":
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=schema.INT8_QUANTILE, always_ram=True)
    if quantization == "binary":
        return qe.BinaryQuantizationConfig(always_ram=True)
    return None


def _broken(err: BaseException) -> bool:
    """A failure of the binding (including a Rust panic, which Python sees
    as a BaseException), as opposed to an interrupt or our own errors."""
    return not isinstance(err, (KeyboardInterrupt, SystemExit, GeneratorExit, StoreError))


class _GuardedShard:
    """An EdgeShard whose every call turns a failure of the binding (a
    corrupt segment, a panic) into a one-line StoreError naming the shard."""

    def __init__(self, shard: Any, path: Path) -> None:
        self._shard = shard
        self._path = path

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._shard, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return value(*args, **kwargs)
            except BaseException as err:
                if not _broken(err):
                    raise
                detail = (str(err).strip().splitlines() or [""])[0][:200]
                raise StoreError(
                    f"shard {self._path} failed ({attr}): {type(err).__name__}: {detail}; it may be corrupt: "
                    "ingest the collection again with recreate",
                    param="recreate",
                ) from err

        return call


class EdgeStore(Store):
    """Collections as Qdrant Edge shards under one home directory."""

    def __init__(self, home: str | os.PathLike, *, lock_timeout: float | None = None) -> None:
        self.home = Path(home)
        self.location = f"embedded:{self.home}"
        self.lock_timeout = lock_timeout
        self._shards: dict[str, Any] = {}
        self._locks: dict[str, DirLock] = {}

    # -- paths and metadata -------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise StoreError(f"invalid collection name {name!r}")
        return self.home / "collections" / name

    def _read_meta(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / META_FILE
        if not path.is_file():
            raise CollectionNotFoundError(
                f"collection {name} not found in {self.location}; run `fmsearch ingest` first", collection=name
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

    def _lock(self, name: str) -> DirLock:
        """Hold the collection's directory lock (waiting for another process),
        making sure it is the live directory's and not one a rebuild swapped
        away while we waited."""
        for _ in range(5):
            lock = DirLock(self._dir(name), f"collection {name} in {self.location}")
            try:
                lock.acquire(self.lock_timeout)
            except FileNotFoundError:  # swapped away between our look and our open
                continue
            if lock.same_file(self._dir(name) / LOCK_FILE):
                self._locks[name] = lock
                return lock
            lock.release()
        raise StoreLockedError(f"collection {name} in {self.location} keeps being swapped; retry")

    def _unlock(self, name: str) -> None:
        lock = self._locks.pop(name, None)
        if lock is not None:
            lock.release()

    def _shard(self, name: str):
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        self._read_meta(name)  # raises CollectionNotFoundError
        self._lock(name)
        path = self._dir(name) / SHARD_DIR
        try:
            shard = _GuardedShard(_edge().EdgeShard.load(str(path)), path)
        except BaseException as err:  # plain Exceptions, or a panic on a corrupt shard
            self._unlock(name)
            if not _broken(err):
                raise
            detail = (str(err).strip().splitlines() or [""])[0][:200]
            raise StoreError(f"cannot open shard {path}: {type(err).__name__}: {detail}") from err
        self._shards[name] = shard
        return shard

    def _close_shard(self, name: str) -> None:
        self._forget(name)
        shard = self._shards.pop(name, None)
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()

    def _release(self, name: str) -> None:
        """Flush and close the collection's shard, and drop its lock."""
        try:
            self._close_shard(name)
        finally:
            self._unlock(name)

    # -- Store interface ----------------------------------------------------

    def collections(self) -> list[str]:
        root = self.home / "collections"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / META_FILE).is_file())

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
        if (spec.shards, spec.replicas, spec.write_consistency) != (1, 1, 1):
            raise StoreError(
                "the embedded store is a single shard: more shards or replicas, or a write consistency above 1, "
                "need a Qdrant server or cluster (a qdrant url)",
                param=("shards", "replicas", "write_consistency", "qdrant_url"),
            )
        qe = _edge()
        directory = self._dir(spec.name)
        if self.exists(spec.name):
            raise StoreError(f"collection {spec.name} already exists in {self.location}")
        if directory.exists():  # leftovers of a create that died before its metadata
            self._lock(spec.name)
            shutil.rmtree(directory)
            self._unlock(spec.name)
        directory.mkdir(parents=True)
        self._lock(spec.name)
        distance = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid}
        datatype = {"float32": qe.VectorStorageDatatype.Float32, "uint8": qe.VectorStorageDatatype.Uint8}
        hnsw = qe.HnswIndexConfig(
            m=spec.hnsw_m if spec.hnsw else 0,  # m=0: no graph, scored by id/filter only
            ef_construct=spec.ef_construct,
            full_scan_threshold=spec.full_scan_threshold_kb,
        )
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(
                size=spec.dim,
                distance=distance[spec.distance],
                datatype=datatype[spec.datatype],
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if spec.multivector else None,
                hnsw_config=hnsw,
                quantization_config=_quantization_config(qe, spec.quantization),
                on_disk=spec.on_disk or None,
            ),
            hnsw_config=hnsw,
            optimizers=None
            if spec.indexing_threshold_kb is None
            else qe.EdgeOptimizersConfig(indexing_threshold=spec.indexing_threshold_kb),
        )
        try:
            shard = _GuardedShard(qe.EdgeShard.create(str(directory / SHARD_DIR), config), directory / SHARD_DIR)
            kinds = {"integer": qe.IntegerIndexParams, "keyword": qe.KeywordIndexParams}
            for key, kind in spec.payload_indexes.items():
                params = kinds[kind](enable_hnsw=key in spec.linked_fields)
                shard.update(qe.UpdateOperation.create_field_index(key, params))
            shard.flush()
        except Exception as err:
            shutil.rmtree(directory, ignore_errors=True)
            self._unlock(spec.name)
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
                "metadata": {**spec.metadata, schema.META_INDEX: spec.index_record()},
            },
        )

    def delete(self, name: str) -> None:
        directory = self._dir(name)
        if not directory.exists():
            self._release(name)
            return
        self._close_shard(name)
        if name not in self._locks:
            self._lock(name)  # never under another process's feet
        try:
            # Drop the metadata first so a half-deleted directory is never listed.
            (directory / META_FILE).unlink(missing_ok=True)
            shutil.rmtree(directory)
        finally:
            self._unlock(name)

    def ids(self, name: str, flt: QueryFilter | None = None) -> np.ndarray:
        qe = _edge()
        shard, offset = self._shard(name), None
        out: list[int] = []
        condition = self._filter(flt)
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=10_000, filter=condition, with_payload=False, with_vector=False)
            )
            out.extend(int(r.id) for r in records)
            if offset is None or not records:
                return np.sort(np.asarray(out, np.int64))

    def staging_name(self, name: str) -> str:
        self._dir(name)  # validates the name
        self.sweep(name)
        return f".{name}.r{time.time_ns():x}"

    def swap(self, name: str, staging: str) -> None:
        """Make the complete collection ``staging`` serve as ``name`` in one
        atomic directory exchange; the old one is removed (or, while another
        process still has it open, left hidden for :meth:`sweep`)."""
        live, new = self._dir(name), self._dir(staging)
        if not (new / META_FILE).is_file():
            raise StoreError(f"{staging} is not a complete collection; {name} left as it was")
        self._release(staging)
        self._release(name)
        if not live.exists():
            os.replace(new, live)
            return
        if not exchange(live, new):  # no atomic exchange here: two renames
            aside = self._dir(f"{staging}.old")
            os.replace(live, aside)
            os.replace(new, live)
            new = aside
        self._remove_unused(new)

    def sweep(self, name: str) -> None:
        """Remove what killed rebuilds of ``name`` left: hidden directories
        no process holds (and put the live one back if a rebuild died in the
        middle of a non-atomic switch)."""
        root = self.home / "collections"
        if not root.is_dir():
            return
        leftovers = sorted(root.glob(f".{name}.r*"))
        live = self._dir(name)
        if not live.exists():
            for path in reversed(leftovers):
                if path.name.endswith(".old") and (path / META_FILE).is_file():
                    os.replace(path, live)
                    leftovers.remove(path)
                    break
        for path in leftovers:
            self._remove_unused(path)

    def _remove_unused(self, directory: Path) -> None:
        lock = DirLock(directory, str(directory))
        if lock.try_acquire():
            try:
                (directory / META_FILE).unlink(missing_ok=True)
                shutil.rmtree(directory, ignore_errors=True)
            finally:
                lock.release()
        else:
            logger.info("%s is still open in another process; left for a later sweep", directory)

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        meta = self._read_meta(name)
        meta["metadata"] = {**meta["metadata"], **metadata}
        self._write_meta(name, meta)
        self._forget(name)

    def upsert(self, name: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        qe = _edge()
        rows = vector_lists(vectors, self.is_multivector(name))
        points = [qe.Point(int(i), v, p) for i, v, p in zip(ids, rows, payloads, strict=True)]
        self._shard(name).update(qe.UpdateOperation.upsert_points(points))
        self._forget_plans(name)

    def delete_points(self, name: str, ids: Sequence[int]) -> None:
        self._shard(name).update(_edge().UpdateOperation.delete_points([int(i) for i in ids]))
        self._forget_plans(name)

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
            must.append(qe.FieldCondition(key=schema.LABEL, match=qe.MatchAny(list(flt.labels))))
        if flt.exclude_labels:
            must_not.append(qe.FieldCondition(key=schema.LABEL, match=qe.MatchAny(list(flt.exclude_labels))))
        if flt.ids is not None:
            must.append(qe.HasIdCondition(set(flt.ids)))
        if flt.exclude_ids:
            must_not.append(qe.HasIdCondition(set(flt.exclude_ids)))
        if flt.split is not None:
            must.append(qe.FieldCondition(key=schema.SPLIT, match=qe.MatchValue(flt.split)))
        for key, values in flt.fields:
            must.append(qe.FieldCondition(key=key, match=qe.MatchAny(list(values))))
        return qe.Filter(must=must or None, must_not=must_not or None)

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
        qe = _edge()
        shard = self._shard(name)
        rows, payload = vector_lists(vectors, self.is_multivector(name)), payload_selector(with_payload)
        limits, filters = per_row(limit, len(rows), (int, np.integer)), per_row(flt, len(rows), QueryFilter)
        planned = self.plans(name, filters, len(rows), exact=exact, hnsw_ef=hnsw_ef, acorn=acorn, out=plans)
        requests = [
            qe.QueryRequest(
                limit=n,
                query=qe.Query.Nearest(v),
                filter=self._filter(f),
                params=search_params(qe, plan, quantization),
                with_payload=payload,
                score_threshold=score_threshold,
            )
            for v, n, f, plan in zip(rows, limits, filters, planned, strict=True)
        ]
        results = shard.query_batch(qe.QueryBatchRequest(requests))
        if not payload:  # the payload getter converts on every access: not asked, not read
            return [[ScoredPoint(int(p.id), float(p.score), {}) for p in hits] for hits in results]
        return [[ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in hits] for hits in results]

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
        qe = _edge()
        query = qe.Query.RecommendBestScore(
            qe.RecommendQuery(
                [np.asarray(v, np.float32).tolist() for v in positive],
                [np.asarray(v, np.float32).tolist() for v in negative],
            )
        )
        (plan,) = self.plans(name, flt, 1, exact=exact, hnsw_ef=hnsw_ef, acorn=acorn, out=plans)
        hits = self._shard(name).query(
            qe.QueryRequest(
                limit=limit,
                query=query,
                filter=self._filter(flt),
                params=search_params(qe, plan, quantization),
                with_payload=payload_selector(with_payload),
            )
        )
        return [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in hits]

    def retrieve(
        self, name: str, ids: Sequence[int], *, with_vectors: bool = False, with_payload: bool | Sequence[str] = True
    ) -> list[Record]:
        records = self._shard(name).retrieve(
            [int(i) for i in ids], with_payload=payload_selector(with_payload), with_vector=with_vectors
        )
        return ordered_records(ids, records, with_vectors)

    def count(self, name: str, flt: QueryFilter | None = None) -> int:
        qe = _edge()
        return int(self._shard(name).count(qe.CountRequest(exact=True, filter=self._filter(flt))))

    def estimate(self, name: str, flt: QueryFilter) -> int:
        qe = _edge()
        return int(self._shard(name).count(qe.CountRequest(exact=False, filter=self._filter(flt))))

    def serving_copy(self, names: Sequence[str], workdir: str | os.PathLike) -> EdgeStore:
        """A shard can be open in one process at a time, and a reader that
        held the live collections would keep ingest out: each collection is
        copied under its lock (a consistent copy, taken between writes) into
        ``workdir``, and a store over the copies is returned."""
        target = Path(workdir) / "collections"
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            self._release(name)  # our own open shard would hold the lock we take
            self._lock(name)
            try:
                shutil.copytree(self._dir(name), target / name, ignore=shutil.ignore_patterns(LOCK_FILE))
            finally:
                self._unlock(name)
            _tune_for_serving(target / name / SHARD_DIR / EDGE_CONFIG_FILE)
        return EdgeStore(workdir, lock_timeout=self.lock_timeout)

    def disk_bytes(self, name: str) -> int | None:
        """Bytes allocated on disk: sparse, preallocated segment files count
        what they use, not their apparent size."""
        directory = self._dir(name)
        if not (directory / META_FILE).is_file():
            raise CollectionNotFoundError(
                f"collection {name} not found in {self.location}; run `fmsearch ingest` first", collection=name
            )
        return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())

    def close(self) -> None:
        for name in list(self._shards):
            self._release(name)
        for name in list(self._locks):
            self._unlock(name)
