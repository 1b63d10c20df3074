"""Store suite: Qdrant Edge against qdrant-client's local mode, pixels."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.timing import (
    BenchResult,
    environment,
    time_ingest,
    time_queries,
)
from fmsearch.images.files import encode_png
from fmsearch.images.fmnist import load_split
from fmsearch.models.registry import get_embedder
from fmsearch.store import QueryFilter, open_store, schema

logger = logging.getLogger(__name__)

SNEAKER = 7


def run_store_bench(*, gallery: int = 60_000, queries: int = 200, data_dir=None, seed: int = 0,
                    log: Callable[[str], None] = logger.info) -> BenchResult:
    """Pixels: ingest time and single-query p50 on Qdrant Edge vs qdrant-client local mode.

    Both stores get the same vectors and payloads (the collection schema's,
    base64 PNG included) and the same query vectors (random test images).
    """
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    embedder = get_embedder("pixels")
    vectors = embedder.embed(train.images[:gallery])
    payloads = [schema.make_payload("train", i, int(train.labels[i]), encode_png(train.images[i]))
                for i in range(gallery)]
    q_vectors = embedder.embed(test.images[np.random.default_rng(seed).choice(len(test), size=queries, replace=False)])
    spec = schema.spec_for(embedder.describe())
    backends: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for label, url in (("qdrant-edge", None), ("qdrant-client local", f"local:{tmp}/local")):
            log(f"{label}: ingesting {gallery} pixel vectors ...")
            with open_store(url, home=f"{tmp}/edge") as store:
                ingest = time_ingest(store, spec, vectors, payloads)
                log(f"{label}: {ingest['total_s']:.1f}s; timing {queries} queries ...")
                backends[label] = {
                    "ingest": ingest,
                    "query": time_queries(store, spec.name, q_vectors),
                    "query_filtered": time_queries(store, spec.name, q_vectors, flt=QueryFilter(labels=(SNEAKER,))),
                }
    edge, local = backends["qdrant-edge"], backends["qdrant-client local"]
    ratios = {
        "ingest_total": local["ingest"]["total_s"] / edge["ingest"]["total_s"],
        "ingest_upsert": local["ingest"]["upsert_s"] / edge["ingest"]["upsert_s"],
        "query_p50": local["query"]["p50_ms"] / edge["query"]["p50_ms"],
        "query_filtered_p50": local["query_filtered"]["p50_ms"] / edge["query_filtered"]["p50_ms"],
    }
    data = {"method": "pixels", "gallery": gallery, "queries": queries, "k": 10, "filter": "label == 7 (Sneaker)",
            "environment": environment(), "backends": backends, "ratios_local_over_edge": ratios}
    return BenchResult("store", data, _table(backends, ratios))


def _table(backends: dict[str, dict[str, Any]], ratios: dict[str, float]) -> str:
    rows = [[label, f"{b['ingest']['upsert_s']:.1f}", f"{b['ingest']['index_s']:.1f}", f"{b['ingest']['total_s']:.1f}",
             f"{b['query']['p50_ms']:.2f}", f"{b['query_filtered']['p50_ms']:.2f}"] for label, b in backends.items()]
    rows.append(["**local / edge**", f"{ratios['ingest_upsert']:.0f}x", "", f"{ratios['ingest_total']:.0f}x",
                 f"{ratios['query_p50']:.0f}x", f"{ratios['query_filtered_p50']:.0f}x"])
    head = ["backend", "upsert s", "HNSW build s", "ingest total s", "query p50 ms", "query p50 ms, class filter"]
    return markdown.table(head, rows)
