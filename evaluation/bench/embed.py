"""Embed suite: images per second per method, one image at a time and
batched, and the time to ingest the gallery, against pixels in the same process."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any

from fmsearch.errors import ModelError
from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.timing import (
    BenchResult,
    check_first_stage,
    environment,
    p50_ms,
)
from fmsearch.images.fmnist import load_split
from fmsearch.ingest.indexer import ingest
from fmsearch.models.base import Embedder
from fmsearch.models.registry import get_embedder
from fmsearch.store import open_store

logger = logging.getLogger(__name__)

#: what the suite measures when no methods are named
DEFAULT_METHODS = ("pixels", "autoencoder", "siamese", "resnet101")


def _embedder(method: str) -> tuple[Embedder, dict[str, Any], str]:
    """The method's embedder, loaded; ResNet101 untrained when its ImageNet
    weights are not at hand (its speed does not depend on their values)."""
    embedder = get_embedder(method)
    try:
        embedder.prepare()
    except ModelError:
        if method != "resnet101":
            raise
        embedder = get_embedder(method, weights="none")
        embedder.prepare()
        return embedder, {"weights": "none"}, "untrained weights (no ImageNet weights here); speed only"
    return embedder, {}, ""


def _measure(method: str, images, size: int, ingest_gallery: int, home: str, data_dir) -> dict[str, Any]:
    embedder, options, note = _embedder(method)
    embedder.embed(images[:8])  # warm-up: load and trace
    t0 = time.perf_counter()
    embedder.embed(images)
    batched = len(images) / (time.perf_counter() - t0)
    row: dict[str, Any] = {"method": method, "options": options, "dim": embedder.dim, "images_per_s_batched": batched,
                           "single_image_p50_ms": p50_ms(embedder.embed, images[:50]), "note": note}
    with open_store(None, home=home) as store:
        report = ingest(store, embedder, limit=size, batch_size=min(1000, size), data_dir=data_dir)
    row["ingest"] = {"points": report.points_total, "embed_s": report.seconds_embed, "write_s": report.seconds_write,
                     "index_s": report.seconds_index, "total_s": report.seconds, "projected": size < ingest_gallery}
    if size < ingest_gallery:  # linear in the embedding, which dominates
        row["ingest"]["projected_total_s"] = report.seconds * ingest_gallery / size
    return row


def run_embed_bench(*, methods: tuple[str, ...] | None = None,
                    images: int = 2000, ingest_gallery: int = 60_000, resnet_images: int = 256, data_dir=None,
                    log: Callable[[str], None] = logger.info) -> BenchResult:
    """Embedding throughput (batched, and one image at a time) for each method,
    and the time to ingest the gallery into a fresh Edge collection, with
    ratios against the pixels baseline measured in the same process.

    ResNet101 is timed untrained where its ImageNet weights are not at hand
    (noted in the row). Its gallery ingest is measured on ``resnet_images``
    images and the full-gallery time is projected from that (marked as a
    projection): at 224 px on 2 cores the real run takes about an hour.
    """
    methods = methods or DEFAULT_METHODS
    check_first_stage(methods, "is measured by the rerank suite, not the embed suite")
    test = load_split("test", data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for method in methods:
            resnet = method == "resnet101"
            n = min(images, resnet_images) if resnet else images
            size = min(ingest_gallery, resnet_images) if resnet else ingest_gallery
            log(f"{method}: embedding {n} images, then ingesting {size} ...")
            row = _measure(method, test.images[:n], size, ingest_gallery, f"{tmp}/{method}", data_dir)
            rows.append(row)
            log(f"{method}: {row['images_per_s_batched']:.0f} images/s batched, "
                f"{row['single_image_p50_ms']:.2f} ms for one image")
    base = next((r for r in rows if r["method"] == "pixels"), None)
    for r in rows:
        seconds = r["ingest"].get("projected_total_s", r["ingest"]["total_s"])
        r["ingest_vs_pixels"] = seconds / base["ingest"]["total_s"] if base else None
    data = {"environment": environment(), "gallery": ingest_gallery, "rows": rows}
    return BenchResult("embed", data, _table(rows))


def _table(rows: list[dict[str, Any]]) -> str:
    cells = []
    for r in rows:
        ing = r["ingest"]
        if ing["projected"]:
            ing_text = f"~{ing['projected_total_s']:.0f} (projected from {ing['points']} images)"
        else:
            ing_text = f"{ing['total_s']:.0f} ({ing['embed_s']:.0f} + {ing['write_s']:.0f} + {ing['index_s']:.0f})"
        ratio = "-" if r["ingest_vs_pixels"] is None else f"{r['ingest_vs_pixels']:.1f}x"
        cells.append([r["method"], r["dim"], f"{r['images_per_s_batched']:.0f}", f"{r['single_image_p50_ms']:.2f}",
                      ing_text, ratio, r["note"]])
    head = ["method", "dim", "images/s (batched)", "one image p50 ms", "gallery ingest s (embed + write + HNSW)",
            "ingest vs pixels", "note"]
    return markdown.table(head, cells, "lrrrrrl")
