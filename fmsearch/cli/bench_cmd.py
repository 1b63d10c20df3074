"""``fmsearch bench``: benchmarks (tables + JSON)."""

from __future__ import annotations

import os
import shutil

import click

from fmsearch import environment
from fmsearch.evaluation.bench import SUITES
from fmsearch.store.schema import FULL_SCAN_THRESHOLD_KB, QUANTIZATIONS

from .common import data_dir_option, domain_errors, parse_numbers, pass_settings


@click.command("bench")
@click.option("--suite", type=click.Choice([*SUITES, "serve", "scale", "all"]), default="all", show_default=True,
              help="store: ingest + query, Edge vs local mode. search: Edge vs numpy brute force vs local mode, and a scale "
              "series. embed: images/s per method and full-gallery ingest time. rerank: SIFT extraction per upscale factor, "
              "SIFT gallery ingest, rerank latency against the plain query. modes: every search mode (quantisation, rescoring, "
              "fusion) on the collections `fmsearch ingest` built, latency against the plain query and bytes per vector. "
              "quantization: recall@10 against exact of int8 and binary per method and oversampling (why each is offered). "
              "serve: fmsearch serve under load from wrk over loopback (requests/s, latency percentiles, errors, CPU) per "
              "method, upload size and client count, batching and workers compared, against a bare reference endpoint. "
              "scale: galleries of 60,000 to millions of points (jittered embeddings, augmented images embedded for "
              "real): ingest split, disk, memory, latency, recall with and without filters, hnswlib beside it, plots. "
              "all: every suite but scale (which takes an hour and more at a million points).")
@click.option("--gallery", type=click.IntRange(1000, 60000), default=60000, show_default=True, help="store, embed, rerank and quantization suites: gallery size.")
@click.option("--sizes", default=None, help="search suite: real gallery sizes [default 10000,30000,60000]. scale suite: "
              "gallery sizes, 1,000 to 10,000,000 [default 60000,300000,1000000].")
@click.option("--kinds", default="vectors,images", show_default=True, help="scale suite: galleries of jittered real "
              "embeddings (vectors), of augmented images embedded for real (images), or both.")
@click.option("--linked-fields", default=None, help="scale suite: payload fields whose index gets filter-aware graph "
              "links, comma-separated [default label]; 'label,class_name,split' links every indexed field.")
@click.option("--on-disk/--in-memory", default=False, show_default=True, help="scale suite: original vectors on disk.")
@click.option("--quantization", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
              help="scale suite: quantised copies searched first, rescored with the originals.")
@click.option("--full-scan-threshold", type=click.IntRange(1, 10_000_000), default=FULL_SCAN_THRESHOLD_KB,
              show_default=True, help="scale suite: KB of vectors below which a filtered search scans instead of "
              "walking the graph (and below which a linked field's values get no extra links).")
@click.option("--synthetic", type=click.IntRange(0, 5_000_000), default=1_000_000, show_default=True, help="search suite: synthetic 64-d collection size (0: none).")
@click.option("--local/--no-local", default=True, show_default=True, help="search suite: include qdrant-client local mode.")
@click.option("--methods", default=None, help="embed suite: methods, comma-separated [default pixels,autoencoder,siamese,resnet101]. "
              "scale suite: methods [default pixels,siamese]. "
              "modes suite: methods to measure [default pixels,autoencoder,siamese,proxy,ensemble]. quantization suite: "
              "methods to measure [default pixels,autoencoder,siamese]. serve suite: "
              "methods, method+sift for the rerank [default pixels,autoencoder,siamese,siamese+sift].")
@click.option("--queries", type=click.IntRange(10, 10000), default=200, show_default=True, help="Queries timed per setting (quantization suite: queries whose recall is measured).")
@click.option("--clients", default="1,4,16,64", show_default=True, help="serve suite: concurrent connections per point.")
@click.option("--uploads", default="28,280", show_default=True, help="serve suite: upload sides in pixels.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="serve suite: service processes.")
@click.option("--duration", type=click.FloatRange(1, 600), default=5.0, show_default=True, help="serve suite: seconds per point.")
@click.option("--out-dir", type=click.Path(file_okay=False), default="bench-results", show_default=True, help="Where the JSON goes.")
@data_dir_option
@pass_settings
@domain_errors
def command(settings, suite, gallery, sizes, kinds, linked_fields, on_disk, quantization, full_scan_threshold, synthetic,
            local, methods, queries, clients, uploads, workers, duration, out_dir, data_dir) -> None:
    """Benchmarks, measured as ratios between runs in this same process.

    Prints markdown tables and writes bench-results/{store,search,embed,rerank,modes,quantization,serve,scale}.json
    (and scale.png). The full default run takes tens of
    minutes on 2 cores (local mode and the 1M-point HNSW build dominate). The modes suite reads the configured store
    (--store/--url); the others build their own temporary collections.
    The serve suite starts `fmsearch serve` on the configured store and needs wrk (apt-get install wrk).
    """
    from fmsearch.evaluation.bench import (
        embed,
        modes,
        rerank,
        scale,
        search,
        store,
    )
    from fmsearch.evaluation.bench import quantization as quantization_bench

    log = click.echo
    runs = {
        "store": lambda: store.run_store_bench(gallery=gallery, queries=queries, data_dir=data_dir, log=log),
        "search": lambda: search.run_search_bench(sizes=_sizes(sizes or "10000,30000,60000"), synthetic=synthetic, queries=queries,
                                                  local=local, data_dir=data_dir, log=log),
        "embed": lambda: embed.run_embed_bench(methods=_methods(methods), ingest_gallery=gallery, data_dir=data_dir,
                                               log=log),
        "rerank": lambda: rerank.run_rerank_bench(gallery=gallery, queries=queries, data_dir=data_dir, log=log),
        "modes": lambda: modes.run_modes_bench(settings.store(), prefix=settings.store_settings.prefix,
                                               methods=_methods(methods), queries=queries,
                                               data_dir=data_dir, log=log),
        "quantization": lambda: quantization_bench.run_quantization_bench(methods=_methods(methods), gallery=gallery,
                                                                    queries=queries, data_dir=data_dir, log=log),
        "scale": lambda: scale.run_scale_bench(
            sizes=_scale_sizes(sizes), kinds=_kinds(kinds), methods=_methods(methods) or scale.METHODS,
            queries=queries, linked_fields=_names(linked_fields), on_disk=on_disk, quantization=quantization,
            full_scan_threshold_kb=full_scan_threshold, plot_dir=out_dir, data_dir=data_dir, log=log),
        "serve": lambda: _serve_bench(settings, methods, clients, uploads, workers, duration, data_dir, log),
    }
    names = (*SUITES, "serve") if suite == "all" else (suite,)
    if "serve" in names and shutil.which("wrk") is None:  # before the other suites' tens of minutes, not after
        raise click.UsageError("the serve suite drives the service with wrk, which is not installed "
                               "(apt-get install wrk)")
    for name in names:
        result = runs[name]()
        click.echo(result.table)
        for s in result.skipped:
            click.echo(f"skipped {s['mode']}: {s['why']}")
        click.echo(f"wrote {result.write(out_dir)}")


def _serve_bench(settings, methods, clients, uploads, workers, duration, data_dir, log):
    from fmsearch.models.registry import check_method, check_stage
    from fmsearch.serve.bench import METHODS, run_serve_bench
    from fmsearch.serve.config import ServeConfig

    config = ServeConfig(store_settings=settings.store_settings, data_dir=data_dir)
    if settings.store_settings.api_key:  # the service's process reads it as every command does, never from its arguments
        os.environ[environment.QDRANT_API_KEY] = settings.store_settings.api_key
    names = METHODS if methods is None else tuple(m.strip() for m in methods.split(",") if m.strip())
    for name in names:  # a method, or a method with a rerank stage: siamese+sift
        first, _, rerank = name.partition("+")
        check_method(first)
        if rerank:
            check_stage(rerank)
    counts = parse_numbers(clients, "--clients", int)
    sides = parse_numbers(uploads, "--uploads", int)
    if not counts or any(not 1 <= c <= 1024 for c in counts):
        raise click.UsageError("--clients: counts must be between 1 and 1024")
    if not sides or any(not 8 <= s <= 4096 for s in sides):
        raise click.UsageError("--uploads: sides must be between 8 and 4096 pixels")
    return run_serve_bench(config, methods=names, clients=counts, sizes=sides, workers=workers, duration=duration,
                           log=log)


def _sizes(text: str) -> tuple[int, ...]:
    sizes = parse_numbers(text, "--sizes", int)
    if not sizes or any(not 1000 <= s <= 60000 for s in sizes):
        raise click.UsageError("--sizes: gallery sizes must be between 1000 and 60000")
    return sizes


def _scale_sizes(text: str | None) -> tuple[int, ...]:
    from fmsearch.evaluation.bench.scale import SIZES

    sizes = parse_numbers(text, "--sizes", int) or SIZES
    if any(not 1000 <= s <= 10_000_000 for s in sizes) or len(set(sizes)) < len(sizes):
        raise click.UsageError("--sizes: scale gallery sizes must be distinct and between 1000 and 10000000")
    return sizes


def _kinds(text: str) -> tuple[str, ...]:
    from fmsearch.evaluation.bench.galleries import KINDS

    kinds = _names(text) or ()
    if not kinds or set(kinds) - set(KINDS):
        raise click.UsageError(f"--kinds: choose from {', '.join(KINDS)}, got {text!r}")
    return kinds


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def _methods(text: str | None) -> tuple[str, ...] | None:
    """--methods as names (None: the suite's own default)."""
    from fmsearch.models.registry import check_method

    if text is None:
        return None
    names = tuple(check_method(m.strip()) for m in text.split(",") if m.strip())
    if not names:
        raise click.UsageError(f"--methods names no method: {text!r}")
    if len(set(names)) < len(names):
        raise click.UsageError(f"--methods names a method twice: {text!r}")
    return names
