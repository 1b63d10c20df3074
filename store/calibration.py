"""How wide a large collection's filtered graph walk must be: measured on
the collection itself, once, when it is built.

A class filter far from the query is the hard case of a filtered graph walk
(docs/scale.md): its nearest points lie across the gap between two clusters.
How wide the walk must be to find them depends on the embedding and on the
size, so it is measured where the graph is built: :func:`calibrate` searches
:data:`SAMPLE` of the collection's own points, each filtered to a class
other than its own, exactly and then up the :data:`EF_LADDER`, and records
the first ``ef`` whose recall@10 reaches :data:`TARGET_RECALL` in the
collection's metadata (:data:`~fmsearch.store.planner.CALIBRATION_KEY`);
:mod:`~fmsearch.store.planner` walks class filters at that ``ef``. The
target sits above the 0.98 the scale benchmark asks of test queries: 200
points measured 0.9915 and 0.973 on one collection at one ``ef``. A
collection of fewer than :data:`CALIBRATE_FROM` points, or one built before
this, has no calibration: its filters keep the default walk, measured at
recall 0.99-1.000 at 60,000 points (docs/scale.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fmsearch.store.base import QueryFilter, Store
from fmsearch.store.planner import CALIBRATION_KEY
from fmsearch.store.schema import LABEL

#: collections of at least this many points are calibrated at ingest
CALIBRATE_FROM = 200_000
#: the graph walks tried, narrowest first
EF_LADDER = (128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
#: the recall@10 against exact filtered search the calibrated walk must reach
TARGET_RECALL = 0.99
#: points searched, each filtered to another class
SAMPLE = 1000
K = 10


def calibrate(
    store: Store, name: str, *, sample: int = SAMPLE, minimum: int | None = None, seed: int = 0
) -> dict[str, Any] | None:
    """Measure the ``ef`` a class filter far from the query needs on
    collection ``name`` and record it in its metadata (see the module doc).

    Args:
        minimum: the least points calibrated (None: :data:`CALIBRATE_FROM`).

    Returns:
        The calibration recorded, or None for a collection under
        ``minimum`` points, of multivectors, or with fewer than two classes
        (nothing recorded).
    """
    info = store.info(name)
    if info.points < (CALIBRATE_FROM if minimum is None else minimum) or info.multivector:
        return None
    rng = np.random.default_rng(seed)
    ids = store.ids(name)
    picked = rng.choice(ids, size=min(sample, len(ids)), replace=False)
    records = [
        r for r in store.retrieve(name, picked.tolist(), with_vectors=True, with_payload=[LABEL]) if LABEL in r.payload
    ]
    classes = sorted({int(r.payload[LABEL]) for r in records})
    if len(classes) < 2:
        return None
    vectors = np.stack([r.fetched_vector() for r in records])
    filters = []
    for r in records:
        others = [c for c in classes if c != int(r.payload[LABEL])]
        filters.append(QueryFilter(labels=(int(rng.choice(others)),)))
    exact = store.query_batch(name, vectors, K, filters, exact=True, with_payload=False)
    reference = [{p.id for p in hits} for hits in exact]
    recalls: dict[int, float] = {}
    for ef in EF_LADDER:
        found = store.query_batch(name, vectors, K, filters, hnsw_ef=ef, with_payload=False)
        recalls[ef] = float(
            np.mean(
                [len(ref & {p.id for p in hits}) / max(len(ref), 1) for ref, hits in zip(reference, found, strict=True)]
            )
        )
        if recalls[ef] >= TARGET_RECALL:
            break
    chosen = next((ef for ef, r in recalls.items() if r >= TARGET_RECALL), EF_LADDER[-1])
    result = {
        "ef": chosen,
        "recall_at_10": recalls[chosen],
        "target": TARGET_RECALL,
        "points": info.points,
        "sample": len(records),
        "recalls": {str(ef): round(r, 4) for ef, r in recalls.items()},
    }
    store.set_metadata(name, {CALIBRATION_KEY: result})
    return result
