"""Copy collections from one store to another (embedded -> server, usually).

Points keep their ids, vectors and payloads, and the collection its vector
parameters, quantisation and metadata (method, fingerprint, ...): queries on
the target give what they gave on the source. A re-run resumes (ids already
on the target are skipped); ``recreate`` rebuilds beside a live target
collection and swaps it in when complete. Each copy is verified: equal
counts, and a seeded sample of vectors compared one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError, StoreError
from fmsearch.ingest.rebuild import build_index, write_target
from fmsearch.store import Store, schema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationReport:
    collection: str
    points_source: int
    points_target: int
    copied: int
    skipped: int
    sample: int
    max_abs_diff: float


def select(source: Store, method: str, prefix: str = schema.DEFAULT_PREFIX) -> list[str]:
    """The source's collections of ``method`` ("all": every one under ``prefix``)."""
    names = []
    for name in source.collections():
        if not name.startswith(prefix):
            continue
        if method == "all" or source.info(name).metadata.get(schema.META_METHOD) == method:
            names.append(name)
    if not names:
        raise InvalidArgumentError(
            f"no collection of {'any method' if method == 'all' else method} under prefix {prefix!r} "
            f"in {source.location}"
        )
    return names


def _unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine collections may store either form)."""
    v = np.atleast_2d(np.asarray(v, np.float64))
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n == 0, 1, n)


def migrate_collection(
    source: Store,
    target: Store,
    name: str,
    *,
    recreate: bool = False,
    batch_size: int = 500,
    sample: int = 100,
    seed: int = 0,
    shards: int = 1,
    replicas: int = 1,
    write_consistency: int = 1,
    progress: Callable[[int], None] | None = None,
) -> MigrationReport:
    """Copy one collection; raises StoreError when the verification fails."""
    info = source.info(name)
    meta = dict(info.metadata)
    if not meta.get(schema.META_COMPLETE):
        raise InvalidArgumentError(f"{name} is incomplete in {source.location}; finish its `fmsearch ingest` first")
    distribution = {"shards": shards, "replicas": replicas, "write_consistency": write_consistency}
    spec = schema.CollectionSpec(
        name=name,
        dim=info.dim,
        distance=info.distance,
        metadata={**meta, schema.META_COMPLETE: False, schema.META_DISTRIBUTION: distribution},
        multivector=info.multivector,
        datatype=str(meta.get("datatype", "float32")),
        hnsw=not info.multivector,
        quantization=str(meta.get(schema.META_QUANTIZATION, "none")),
        on_disk=bool(meta.get(schema.META_ON_DISK)),
        shards=shards,
        replicas=replicas,
        write_consistency=write_consistency,
    )
    ids = source.ids(name)
    with write_target(target, spec, recreate=recreate) as dest:
        todo = ids[~np.isin(ids, dest.stored)]
        for lo in range(0, len(todo), batch_size):
            chunk = todo[lo : lo + batch_size].tolist()
            records = source.retrieve(name, chunk, with_vectors=True, with_payload=True)
            rows = [r.fetched_vector() for r in records]
            vectors: Any = rows if info.multivector else np.stack(rows)
            target.upsert(dest.name, [r.id for r in records], vectors, [r.payload for r in records])
            if progress:
                progress(len(records))
        build_index(target, dest.name)
        diff = _verify(source, target, name, dest.name, ids, sample, seed)
        target.set_metadata(dest.name, {schema.META_COMPLETE: True})  # only once verified
    return MigrationReport(
        name, len(ids), target.count(name), len(todo), len(ids) - len(todo), min(sample, len(ids)), diff
    )


def _verify(source: Store, target: Store, name: str, written: str, ids: np.ndarray, sample: int, seed: int) -> float:
    """Equal counts, and a seeded sample of vectors equal up to float32
    rounding (rows compared at unit length: a server may store cosine
    vectors normalised)."""
    n_target = target.count(written)
    if n_target != len(ids):
        raise StoreError(f"{name}: {len(ids)} points in {source.location} but {n_target} on {target.location}")
    pick = np.sort(np.random.default_rng(seed).choice(ids, size=min(sample, len(ids)), replace=False)).tolist()
    a = {r.id: r.fetched_vector() for r in source.retrieve(name, pick, with_vectors=True, with_payload=False)}
    b = {r.id: r.fetched_vector() for r in target.retrieve(written, pick, with_vectors=True, with_payload=False)}
    worst = 0.0
    for pid in pick:
        if pid not in b:
            raise StoreError(f"{name}: point {pid} is missing on {target.location}")
        worst = max(worst, float(np.abs(_unit_rows(a[pid]) - _unit_rows(b[pid])).max()))
    if worst > 1e-3:
        raise StoreError(
            f"{name}: vectors differ on {target.location} (max |diff| {worst:.2g} over {len(pick)} points)"
        )
    return worst
