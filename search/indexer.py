"""Ingest: FMNIST batches (ingest/) -> embeddings (models/) -> points (store).

Point ids are deterministic (see :mod:`search.schema`), so writing a batch
twice replaces it and never duplicates. The collection's metadata says
``complete: false`` until every planned point is written and indexed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from fmsearch.errors import InvalidArgumentError
from ingest.batches import iter_batches, plan
from ingest.images import encode_png
from models.base import Embedder

from . import schema
from .store import Store

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
) -> IngestReport:
    """Embed FMNIST images and write them to the method's collection.

    Args:
        store: where the collection lives.
        embedder: the method.
        split: "train" (the gallery), "test" or "all".
        limit: the first ``limit`` items of each split only.
        batch_size: images embedded and written per step.
        recreate: drop the collection first.
        data_dir: FMNIST location override (see :func:`ingest.fmnist.locate`).
        prefix: collection name prefix.
        progress: called with the number of points written after each batch.
        on_plan: called once with the number of points planned.
        quantization: "int8" or "binary" writes the quantised variant
            collection ``<prefix><method>_<quantization>`` (see :mod:`search.schema`).

    Raises:
        CollectionMismatchError: the collection exists with another model
            (and ``recreate`` is off).
        InvalidArgumentError, DatasetError, StoreError: as raised below.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {batch_size}")
    sizes = plan(split, limit, data_dir)
    total = sum(sizes.values())
    schema.check_offered(embedder.name, quantization)  # before loading a model
    embedder.prepare()  # a model that cannot load fails here, before any write
    model = embedder.describe()
    spec = schema.spec_for(model, prefix, planned=total, quantization=quantization)
    if recreate:
        store.delete(spec.name)
    if store.exists(spec.name):
        schema.check_compatible(spec.name, store.info(spec.name).metadata, model)
        store.set_metadata(spec.name, {"complete": False, "points_planned": total})
    else:
        store.create(spec)
    if on_plan:
        on_plan(total)

    t_embed = t_write = 0.0
    written = 0
    for batch in iter_batches(sizes, batch_size, data_dir):
        t0 = time.perf_counter()
        vectors = embedder.embed(batch.images)
        t1 = time.perf_counter()
        ids = schema.point_ids(batch.split, batch.indices)
        payloads = [
            schema.make_payload(batch.split, int(i), int(lab), encode_png(img))
            for i, lab, img in zip(batch.indices, batch.labels, batch.images, strict=True)
        ]
        store.upsert(spec.name, ids.tolist(), vectors, payloads)
        t2 = time.perf_counter()
        t_embed += t1 - t0
        t_write += t2 - t1
        written += len(ids)
        if progress:
            progress(len(ids))
    t0 = time.perf_counter()
    store.finalize(spec.name)
    t_index = time.perf_counter() - t0
    count = store.count(spec.name)
    store.set_metadata(spec.name, {"complete": count >= total, "points_planned": total})
    logger.info("ingested %d points into %s (%d stored)", written, spec.name, count)
    return IngestReport(spec.name, embedder.name, written, count, t_embed, t_write, t_index)
