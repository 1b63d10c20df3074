"""The one protocol every writer of a collection follows.

- **create**: the collection does not exist: create it from the spec.
- **resume**: it exists, built by the same model: mark it incomplete and
  report the ids it already holds, so the writer skips them.
- **rebuild beside**: asked to recreate an existing collection: create a
  staging collection beside it (:meth:`Store.staging_name`), which the
  writer fills while the live one keeps serving.
- **index**: when every point is written, :func:`build_index` builds the
  graph once and, for a large collection, measures how wide its filtered
  walk must be (:mod:`~fmsearch.store.calibration`).
- **swap**: when the writer is done and has marked the staging collection
  complete, it replaces the live one atomically (:meth:`Store.swap`).
- **clean up**: if the writer fails, or leaves the staging collection
  incomplete, the staging collection is dropped and the live one is
  untouched; a failed clean-up is logged (the next rebuild sweeps the
  leftover), never allowed to hide the error that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from fmsearch.errors import InvalidArgumentError, StoreError
from fmsearch.store import Store, calibration, schema
from fmsearch.store.schema import CollectionSpec

logger = logging.getLogger(__name__)


def build_index(store: Store, name: str) -> None:
    """Make what was written durable and indexed (the graph built once),
    then calibrate the filtered walk of a collection of at least
    :data:`~fmsearch.store.calibration.CALIBRATE_FROM` points."""
    store.finalize(name)
    found = calibration.calibrate(store, name)
    if found is not None:
        logger.info(
            "%s: a filter of one class walks the graph at ef %d (recall@10 %.3f on %d of its points)",
            name,
            found["ef"],
            found["recall_at_10"],
            found["sample"],
        )


@dataclass(frozen=True)
class Target:
    """Where a writer writes.

    Attributes:
        name: the collection to write to (the live one, or a staging one).
        live: the name queries use.
        stored: ids the collection already holds (a resumed write skips them).
        rebuilding: ``name`` is a staging collection, swapped in at the end.
    """

    name: str
    live: str
    stored: np.ndarray
    rebuilding: bool


@contextmanager
def write_target(store: Store, spec: CollectionSpec, *, recreate: bool = False) -> Iterator[Target]:
    """Open ``spec.name`` for writing by the protocol above.

    The writer writes to ``target.name`` and sets ``complete`` in its
    metadata when every planned point is there; on leaving the block a
    rebuilt collection is swapped in (only if complete).

    Raises:
        CollectionMismatchError: the collection exists with another model and
            ``recreate`` is off.
        InvalidArgumentError: the spec asks for vectors on disk, and the
            collection exists with them in memory (``recreate`` is off).
        StoreError: a rebuild was left incomplete (the live collection is
            unchanged).
    """
    live = spec.name
    rebuilding = recreate and store.exists(live)
    if rebuilding:
        target = Target(store.staging_name(live), live, np.empty(0, np.int64), True)
        store.create(replace(spec, name=target.name))
        logger.info("rebuilding %s beside the live collection, as %s", live, target.name)
    elif store.exists(live):
        metadata = store.info(live).metadata
        schema.check_compatible(live, metadata, spec.metadata)
        if spec.on_disk and not metadata.get(schema.META_ON_DISK):
            raise InvalidArgumentError(
                f"{live} exists with its vectors in memory; ingest again with recreate to rebuild it with them on disk",
                param="recreate",
            )
        store.set_metadata(
            live, {schema.META_COMPLETE: False, schema.META_PLANNED: spec.metadata.get(schema.META_PLANNED, 0)}
        )
        target = Target(live, live, store.ids(live), False)
    else:
        store.create(spec)
        target = Target(live, live, np.empty(0, np.int64), False)
    try:
        yield target
        if rebuilding:
            _swap_if_complete(store, target)
    except BaseException:
        if rebuilding:
            _drop(store, target.name)
        raise


def _swap_if_complete(store: Store, target: Target) -> None:
    info = store.info(target.name)
    if not info.metadata.get(schema.META_COMPLETE):
        planned = info.metadata.get(schema.META_PLANNED)
        raise StoreError(
            f"rebuild of {target.live} holds {info.points} of {planned} points; the live collection is unchanged"
        )
    store.swap(target.live, target.name)


def _drop(store: Store, name: str) -> None:
    """Drop a half-built staging collection; a failure here is logged, so
    that the error that stopped the rebuild is the one raised."""
    try:
        store.delete(name)
    except Exception as err:  # noqa: BLE001 - the original error matters more
        logger.warning("could not drop the half-built %s (%s); the next rebuild removes it", name, err)
