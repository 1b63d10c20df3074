"""Ingest: FMNIST batches (images/) -> embeddings (models/) -> points (store/).

Point ids are deterministic (see :mod:`fmsearch.store.schema`), so writing a
batch twice replaces it and never duplicates. The collection's metadata says
``complete: false`` until every planned point is written and indexed.

Re-running an ingest of the same model resumes: the ids already stored are
skipped, only the missing points are embedded and written. ``recreate``
builds a new collection beside the live one and swaps it in only once it is
complete; until then, and if the rebuild dies, queries keep getting the old
collection (:mod:`fmsearch.ingest.rebuild`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.images.batches import iter_batches, plan
from fmsearch.images.files import encode_png
from fmsearch.ingest.rebuild import Target, build_index, write_target
from fmsearch.models.base import Embedder
from fmsearch.store import Store, schema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did."""

    collection: str
    method: str
    points_written: int
    points_total: int
    seconds_embed: float
    seconds_write: float
    seconds_index: float
    #: wall seconds of embedding and writing, which overlap (see ``ingest``)
    seconds_load: float
    #: planned points found already stored (a resumed run), not written again
    points_skipped: int = 0
    #: a rebuild beside the live collection, swapped in at the end
    rebuilt: bool = False

    @property
    def seconds(self) -> float:
        """Wall seconds of the whole ingest: embedding and writing, then indexing."""
        return self.seconds_load + self.seconds_index


def ingest(
    store: Store,
    embedder: Embedder,
    *,
    split: str = "train",
    limit: int | None = None,
    batch_size: int = 1000,
    recreate: bool = False,
    data_dir: str | os.PathLike | None = None,
    prefix: str = schema.DEFAULT_PREFIX,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    quantization: str = "none",
    shards: int = 1,
    replicas: int = 1,
    write_consistency: int = 1,
    overlap: bool = True,
    on_disk: bool = False,
) -> IngestReport:
    """Embed FMNIST images and write them to the method's collection.

    Args:
        store: where the collection lives.
        embedder: the method.
        split: "train" (the gallery), "test" or "all".
        limit: the first ``limit`` items of each split only.
        batch_size: images embedded and written per step.
        recreate: build the collection anew beside the live one; swap it in
            when complete (the live one serves until then).
        data_dir: FMNIST location override (see :func:`fmsearch.images.fmnist.locate`).
        prefix: collection name prefix.
        progress: called with the number of points written after each batch.
        on_plan: called once with the number of points planned.
        quantization: "int8" or "binary" writes the quantised variant
            collection ``<prefix><method>_<quantization>`` (see :mod:`fmsearch.store.schema`).
        shards, replicas, write_consistency: how a new collection is spread
            over a Qdrant cluster (server only; recorded in its metadata).
        overlap: write each batch on a second thread while the next one is
            embedded (off: one after the other, the baseline the embed
            benchmark compares with).
        on_disk: a new collection keeps its float32 vectors on disk,
            memory-mapped (recorded in its metadata; docs/scale.md says
            when it pays).

    Raises:
        CollectionMismatchError: the collection exists with another model
            (and ``recreate`` is off).
        InvalidArgumentError, DatasetError, StoreError: as raised below.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be at least 1, got {batch_size}", param="batch_size")
    sizes = plan(split, limit, data_dir)
    total = sum(sizes.values())
    schema.check_offered(embedder.name, quantization)  # before loading a model
    embedder.prepare()  # a model that cannot load fails here, before any write
    spec = schema.spec_for(embedder.describe(), prefix, planned=total, quantization=quantization, on_disk=on_disk)
    distribution = {"shards": shards, "replicas": replicas, "write_consistency": write_consistency}
    spec = replace(
        spec,
        shards=shards,
        replicas=replicas,
        write_consistency=write_consistency,
        metadata={**spec.metadata, schema.META_DISTRIBUTION: distribution},
    )
    with write_target(store, spec, recreate=recreate) as target:
        if on_plan:
            on_plan(total)
        written, skipped, count, times = _write(
            store, embedder, target, sizes, batch_size, data_dir, total, progress, overlap
        )
    logger.info("ingested %d points into %s (%d stored, %d already there)", written, target.live, count, skipped)
    return IngestReport(target.live, embedder.name, written, count, *times, skipped, target.rebuilding)


def _write(
    store: Store,
    embedder: Embedder,
    target: Target,
    sizes: dict[str, int],
    batch_size: int,
    data_dir,
    total: int,
    progress,
    overlap: bool = True,
) -> tuple[int, int, int, tuple[float, float, float, float]]:
    """Embed and write every planned point the target does not hold;
    finalize; mark the target complete when it holds every planned point.

    With ``overlap``, a batch is written (PNG payloads, upsert) on a second
    thread while the next one is embedded; batches are still stored in
    order, each before the next is sent, and ``progress`` follows the
    stored ones. The embed and write seconds then overlap in wall time."""
    seconds = {"embed": 0.0, "write": 0.0}
    written = skipped = 0

    def write(batch, ids: np.ndarray, todo: np.ndarray, vectors: np.ndarray) -> None:
        t0 = time.perf_counter()
        payloads = [
            schema.make_payload(batch.split, int(i), int(lab), encode_png(img))
            for i, lab, img in zip(batch.indices[todo], batch.labels[todo], batch.images[todo], strict=True)
        ]
        store.upsert(target.name, ids[todo].tolist(), vectors, payloads)
        seconds["write"] += time.perf_counter() - t0
        logger.info("%s: wrote %d points", target.name, int(todo.sum()))

    def stored(pending: tuple[Future | None, int] | None) -> None:
        if pending is not None:
            if pending[0] is not None:
                pending[0].result()  # a failed write raises here, before the next batch is sent
            if progress:
                progress(pending[1])

    pending: tuple[Future | None, int] | None = None
    t_load = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmsearch-write") as writer:
        for batch in iter_batches(sizes, batch_size, data_dir):
            ids = schema.point_ids(batch.split, batch.indices)
            todo = ~np.isin(ids, target.stored)
            skipped += int((~todo).sum())
            vectors = None
            if todo.any():
                t0 = time.perf_counter()
                vectors = embedder.embed(batch.images[todo])
                seconds["embed"] += time.perf_counter() - t0
            stored(pending)
            pending = (None if vectors is None else writer.submit(write, batch, ids, todo, vectors), len(ids))
            written += int(todo.sum())
            if not overlap:
                stored(pending)
                pending = None
        stored(pending)
    t0 = time.perf_counter()
    t_load = t0 - t_load
    build_index(store, target.name)
    t_index = time.perf_counter() - t0
    count = store.count(target.name)
    store.set_metadata(target.name, {schema.META_COMPLETE: count >= total, schema.META_PLANNED: total})
    return written, skipped, count, (seconds["embed"], seconds["write"], t_index, t_load)
