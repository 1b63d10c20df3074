"""``fmsearch bench``: benchmarks (tables + JSON)."""

from __future__ import annotations

import click

from fmsearch.evaluation.bench import SUITES

from .common import data_dir_option, domain_errors, parse_numbers, pass_settings


@click.command("bench")
@click.option("--suite", type=click.Choice([*SUITES, "all"]), default="all", show_default=True,
              help="store: ingest + query, Edge vs local mode. search: Edge vs numpy brute force vs local mode, and a scale "
              "series. embed: images/s per method and full-gallery ingest time. rerank: SIFT extraction per upscale factor, "
              "SIFT gallery ingest, rerank latency against the plain query. modes: every search mode (quantisation, rescoring, "
              "fusion) on the collections `fmsearch ingest` built, latency against the plain query and bytes per vector. "
              "quantization: recall@10 against exact of int8 and binary per method and oversampling (why each is offered).")
@click.option("--gallery", type=click.IntRange(1000, 60000), default=60000, show_default=True, help="store, embed, rerank and quantization suites: gallery size.")
@click.option("--sizes", default="10000,30000,60000", show_default=True, help="search suite: real gallery sizes.")
@click.option("--synthetic", type=click.IntRange(0, 5_000_000), default=1_000_000, show_default=True, help="search suite: synthetic 64-d collection size (0: none).")
@click.option("--local/--no-local", default=True, show_default=True, help="search suite: include qdrant-client local mode.")
@click.option("--methods", default=None, help="embed suite: methods, comma-separated [default pixels,autoencoder,siamese,resnet101]. "
              "modes and quantization suites: methods to measure [default pixels,autoencoder,siamese].")
@click.option("--queries", type=click.IntRange(10, 10000), default=200, show_default=True, help="Queries timed per setting (quantization suite: queries whose recall is measured).")
@click.option("--out-dir", type=click.Path(file_okay=False), default="bench-results", show_default=True, help="Where the JSON goes.")
@data_dir_option
@pass_settings
@domain_errors
def command(settings, suite, gallery, sizes, synthetic, local, methods, queries, out_dir, data_dir) -> None:
    """Benchmarks, measured as ratios between runs in this same process.

    Prints markdown tables and writes bench-results/{store,search,embed,rerank,modes,quantization}.json. The full default run takes tens of
    minutes on 2 cores (local mode and the 1M-point HNSW build dominate). The modes suite reads the configured store
    (--store/--url); the others build their own temporary collections.
    """
    from fmsearch.evaluation.bench import (
        embed,
        modes,
        quantization,
        rerank,
        search,
        store,
    )

    log = click.echo
    runs = {
        "store": lambda: store.run_store_bench(gallery=gallery, queries=queries, data_dir=data_dir, log=log),
        "search": lambda: search.run_search_bench(sizes=_sizes(sizes), synthetic=synthetic, queries=queries,
                                                  local=local, data_dir=data_dir, log=log),
        "embed": lambda: embed.run_embed_bench(methods=_methods(methods), ingest_gallery=gallery, data_dir=data_dir,
                                               log=log),
        "rerank": lambda: rerank.run_rerank_bench(gallery=gallery, queries=queries, data_dir=data_dir, log=log),
        "modes": lambda: modes.run_modes_bench(settings.store(), prefix=settings.prefix,
                                               methods=_methods(methods), queries=queries,
                                               data_dir=data_dir, log=log),
        "quantization": lambda: quantization.run_quantization_bench(methods=_methods(methods), gallery=gallery,
                                                                    queries=queries, data_dir=data_dir, log=log),
    }
    for name in SUITES if suite == "all" else (suite,):
        result = runs[name]()
        click.echo(result.table)
        for s in result.skipped:
            click.echo(f"skipped {s['mode']}: {s['why']}")
        click.echo(f"wrote {result.write(out_dir)}")


def _sizes(text: str) -> tuple[int, ...]:
    sizes = parse_numbers(text, "--sizes", int)
    if not sizes or any(not 1000 <= s <= 60000 for s in sizes):
        raise click.UsageError("--sizes: gallery sizes must be between 1000 and 60000")
    return sizes


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
