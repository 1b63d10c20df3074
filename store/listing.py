"""What a store holds, collection by collection (``fmsearch collections``)."""

from __future__ import annotations

from dataclasses import dataclass

from fmsearch.errors import StoreLockedError
from fmsearch.store import planner, schema
from fmsearch.store.base import Store


@dataclass(frozen=True)
class CollectionSummary:
    """One collection as a listing shows it. A collection another process
    holds has only its name and ``in_use`` (who holds it)."""

    collection: str
    points: int | None = None
    dim: int | None = None
    distance: str | None = None
    method: str = "?"
    fingerprint: str = "?"
    #: every planned point written and indexed; None: not known (in use)
    complete: bool | None = None
    in_use: str | None = None
    #: the ef a class filter's graph walk takes, as calibrated at ingest
    #: (None: not calibrated; the search planner then keeps the default walk)
    filtered_ef: int | None = None
    #: the payload fields with filter-aware graph links
    linked_fields: tuple[str, ...] = ()


def summarize(store: Store) -> list[CollectionSummary]:
    """Every collection of the store, sorted by name."""
    out = []
    for name in store.collections():
        try:
            info = store.info(name)
        except StoreLockedError as err:
            out.append(CollectionSummary(name, in_use=str(err)))
            continue
        meta = info.metadata
        out.append(
            CollectionSummary(
                name,
                info.points,
                info.dim,
                info.distance,
                meta.get(schema.META_METHOD, "?"),
                meta.get(schema.META_FINGERPRINT, "?"),
                bool(meta.get(schema.META_COMPLETE, False)),
                filtered_ef=planner.filtered_ef(meta),
                linked_fields=() if info.multivector else schema.recorded_linked_fields(meta),
            )
        )
    return out
