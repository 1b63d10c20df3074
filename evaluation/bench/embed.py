"""Embed suite: images per second per method, one image at a time and
batched, and the time to ingest the gallery, against pixels in the same
process, with the load overlapping embedding and writing against the two one
after the other; the trained encoders on Keras against ONNX Runtime at several batch
sizes; the wall time of a query from the command line; and what the default
install and the training extra weigh."""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fmsearch.errors import ModelError
from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.install_size import install_size
from fmsearch.evaluation.bench.timing import (
    BenchResult,
    check_first_stage,
    cli_wall,
    environment,
    p50_ms,
)
from fmsearch.images.fmnist import load_split
from fmsearch.ingest.indexer import ingest
from fmsearch.models.base import Embedder
from fmsearch.models.registry import SHIPPED, get_embedder
from fmsearch.store import open_store

logger = logging.getLogger(__name__)

#: what the suite measures when no methods are named
DEFAULT_METHODS = ("pixels", "autoencoder", "siamese", "resnet101")
#: batch sizes the two runtimes are compared at, and calls timed at each
RUNTIME_BATCHES = {1: 200, 16: 100, 64: 40, 1024: 5}
#: command-line queries timed per method (alternating, after one warm-up each)
CLI_QUERIES = 7


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
        embedder.prepare()  # without TensorFlow (the lean install) this raises too: the method is skipped
        return embedder, {"weights": "none"}, "untrained weights (no ImageNet weights here); speed only"
    runtime = getattr(embedder, "runs_on", None)
    return embedder, {}, f"{runtime} runtime" if runtime else ""


def _measure(method: str, images, size: int, ingest_gallery: int, home: str, data_dir) -> dict[str, Any]:
    embedder, options, note = _embedder(method)
    embedder.embed(images[:8])  # warm-up: load and trace
    t0 = time.perf_counter()
    embedder.embed(images)
    batched = len(images) / (time.perf_counter() - t0)
    row: dict[str, Any] = {
        "method": method,
        "options": options,
        "dim": embedder.dim,
        "images_per_s_batched": batched,
        "single_image_p50_ms": p50_ms(embedder.embed, images[:50]),
        "note": note,
    }
    with open_store(None, home=home) as store:
        report = ingest(store, embedder, limit=size, batch_size=min(1000, size), data_dir=data_dir)
        # against the baseline (each batch written before the next is embedded), in A-B-B-A order
        loads: dict[bool, list[float]] = {True: [report.seconds_load], False: []}
        for i, overlap in enumerate((False, False, True)):
            again = ingest(
                store,
                embedder,
                limit=size,
                batch_size=min(1000, size),
                data_dir=data_dir,
                prefix=f"again{i}_",
                overlap=overlap,
            )
            loads[overlap].append(again.seconds_load)
            store.delete(again.collection)
    load, serial = statistics.mean(loads[True]), statistics.mean(loads[False])
    row["ingest"] = {
        "points": report.points_total,
        "embed_s": report.seconds_embed,
        "write_s": report.seconds_write,
        "index_s": report.seconds_index,
        "total_s": report.seconds,
        "projected": size < ingest_gallery,
        "load_s": report.seconds_load,
        "overlap": {"overlapped_load_s": load, "serial_load_s": serial, "speedup": serial / load},
    }
    if size < ingest_gallery:  # linear in the embedding, which dominates
        row["ingest"]["projected_total_s"] = report.seconds * ingest_gallery / size
    return row


def _runtimes(method: str, images: np.ndarray) -> dict[str, Any]:
    """One trained method on Keras and on ONNX Runtime, each batch size timed
    round-robin (noise falls on both), and the largest vector difference."""
    onnx = get_embedder(method, runtime="onnx")
    keras_runtime = get_embedder(method, runtime="tensorflow")
    on_keras: Embedder | None = keras_runtime
    note = ""
    try:
        keras_runtime.prepare()
    except ModelError as err:  # the lean install: no TensorFlow to compare with
        on_keras, note = None, str(err)
    row: dict[str, Any] = {"method": method, "batches": {}, "note": note}
    for batch, calls in RUNTIME_BATCHES.items():
        x = images[:batch]
        runners = {"onnx": onnx} | ({"keras": on_keras} if on_keras else {})
        times: dict[str, list[float]] = {name: [] for name in runners}
        for e in runners.values():
            e.embed_batch(x)  # warm-up
        for _ in range(calls):
            for name, e in runners.items():
                t0 = time.perf_counter()
                e.embed_batch(x)
                times[name].append((time.perf_counter() - t0) * 1000)
        cell = {f"{name}_ms": statistics.median(t) for name, t in times.items()}
        if on_keras:
            cell["keras_over_onnx"] = cell["keras_ms"] / cell["onnx_ms"]
        row["batches"][str(batch)] = cell
    if on_keras:
        row["max_abs_diff"] = float(np.abs(onnx.embed_batch(images) - on_keras.embed_batch(images)).max())
    return row


def _cli_wall(homes: dict[str, str]) -> dict[str, Any]:
    """Wall seconds of `fmsearch query --id 60000 -k 10` in a new process per
    method (each against its home), alternating, after one warm-up each."""
    return cli_wall(
        {
            m: [sys.executable, "-m", "fmsearch", "--home", home, "query", "--id", "60000", "--method", m, "-k", "10"]
            for m, home in homes.items()
        },
        CLI_QUERIES,
        baseline="pixels",
    )


def run_embed_bench(
    *,
    methods: tuple[str, ...] | None = None,
    images: int = 2000,
    ingest_gallery: int = 60_000,
    resnet_images: int = 256,
    data_dir=None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Embedding throughput (batched, and one image at a time) for each method,
    and the time to ingest the gallery into a fresh Edge collection, with
    ratios against the pixels baseline measured in the same process (and the
    load, embedding overlapped with writing, against the two one after the
    other: two ingests of each, in A-B-B-A order); then
    Keras against ONNX Runtime for the trained methods, the wall time of a
    query from the command line, and the size of the installs.

    ResNet101 is timed untrained where its ImageNet weights are not at hand
    (noted in the row), and skipped without TensorFlow. Its gallery ingest is
    measured on ``resnet_images`` images and the full-gallery time is
    projected from that (marked as a projection).
    """
    methods = methods or DEFAULT_METHODS
    check_first_stage(methods, "is measured by the rerank suite, not the embed suite")
    test = load_split("test", data_dir)
    rows, skipped, homes = [], [], {}
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for method in methods:
            resnet = method == "resnet101"
            n = min(images, resnet_images) if resnet else images
            size = min(ingest_gallery, resnet_images) if resnet else ingest_gallery
            log(f"{method}: embedding {n} images, then ingesting {size} ...")
            try:
                row = _measure(method, test.images[:n], size, ingest_gallery, f"{tmp}/{method}", data_dir)
            except ModelError as err:
                skipped.append({"mode": method, "why": str(err)})
                continue
            rows.append(row)
            homes[method] = f"{tmp}/{method}"
            log(
                f"{method}: {row['images_per_s_batched']:.0f} images/s batched, "
                f"{row['single_image_p50_ms']:.2f} ms for one image"
            )
        log("trained encoders: Keras against ONNX Runtime ...")
        runtimes = [_runtimes(m, test.images[: max(RUNTIME_BATCHES)]) for m in methods if m in SHIPPED]
        log("command-line queries ...")
        cli = _cli_wall({m: homes[m] for m in ("pixels", "siamese") if m in homes})
    base = next((r for r in rows if r["method"] == "pixels"), None)
    for r in rows:
        seconds = r["ingest"].get("projected_total_s", r["ingest"]["total_s"])
        r["ingest_vs_pixels"] = seconds / base["ingest"]["total_s"] if base else None
    installs: dict[str, Any] = {}
    for name, extras in (("default", ()), ("with [train]", ("train",))):
        sizes, missing = install_size(extras)
        installs[name] = {
            "total": sum(sizes.values()),
            "largest": dict(list(sizes.items())[:8]),
            "not_installed": missing,
        }
    data = {
        "environment": environment(),
        "gallery": ingest_gallery,
        "rows": rows,
        "runtimes": runtimes,
        "cli_query": cli,
        "install_bytes": installs,
    }
    table = "\n\n".join([_table(rows), _runtime_table(runtimes), _cli_table(cli, installs)])
    return BenchResult("embed", data, table, tuple(skipped))


def _table(rows: list[dict[str, Any]]) -> str:
    cells = []
    for r in rows:
        ing = r["ingest"]
        if ing["projected"]:
            ing_text = f"~{ing['projected_total_s']:.0f} (projected from {ing['points']} images)"
        else:
            ing_text = (
                f"{ing['total_s']:.0f} ({ing['embed_s']:.0f} + {ing['write_s']:.0f} in "
                f"{ing['load_s']:.0f}, + {ing['index_s']:.0f})"
            )
        ratio = "-" if r["ingest_vs_pixels"] is None else f"{r['ingest_vs_pixels']:.1f}x"
        o = ing["overlap"]
        overlap = f"{o['serial_load_s']:.1f} / {o['overlapped_load_s']:.1f} = {o['speedup']:.2f}x"
        cells.append(
            [
                r["method"],
                r["dim"],
                f"{r['images_per_s_batched']:.0f}",
                f"{r['single_image_p50_ms']:.2f}",
                ing_text,
                overlap,
                ratio,
                r["note"],
            ]
        )
    head = [
        "method",
        "dim",
        "images/s (batched)",
        "one image p50 ms",
        "gallery ingest s (embed + write overlapped in load, + HNSW)",
        "load s, one after the other / overlapped (mean of 2 each)",
        "ingest vs pixels",
        "note",
    ]
    return markdown.table(head, cells, "lrrrrrrl")


def _runtime_table(runtimes: list[dict[str, Any]]) -> str:
    head = ["method", "batch", "Keras ms", "ONNX Runtime ms", "Keras / ONNX", "max abs diff of the vectors"]
    cells = []
    for r in runtimes:
        for batch, c in r["batches"].items():
            keras = c.get("keras_ms")
            cells.append(
                [
                    r["method"],
                    batch,
                    "-" if keras is None else f"{keras:.2f}",
                    f"{c['onnx_ms']:.2f}",
                    "-" if keras is None else f"{c['keras_over_onnx']:.2f}x",
                    f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else r["note"][:60],
                ]
            )
    return markdown.table(head, cells, "lrrrrr")


def _cli_table(cli: dict[str, Any], sizes: dict[str, Any]) -> str:
    rows = [
        [
            f"`fmsearch query --id 60000 -k 10 --method {m}`",
            f"{c['median_s']:.2f} s",
            f"{c['vs_pixels']:.2f}x" if "vs_pixels" in c else "-",
        ]
        for m, c in cli.items()
    ]
    rows += [
        [
            f"install, {name}",
            f"{v['total'] / 2**20:.0f} MiB"
            + (f" (not installed here, not counted: {', '.join(v['not_installed'])})" if v["not_installed"] else ""),
            "",
        ]
        for name, v in sizes.items()
    ]
    return markdown.table(["measure", "value", "vs pixels"], rows, "lrr")
