"""``fmsearch bench``: store and search benchmarks (tables + JSON)."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors, pass_settings


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from err
    if not sizes or any(not 1000 <= s <= 60000 for s in sizes):
        raise click.BadParameter("gallery sizes must be between 1000 and 60000")
    return sizes


@click.command("bench")
@click.option("--suite", type=click.Choice(["store", "search", "embed", "rerank", "modes", "quantization", "all"]), default="all", show_default=True,
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
    from models.registry import check_method
    from search.bench import (
        run_embed_bench,
        run_modes_bench,
        run_quantization_bench,
        run_rerank_bench,
        run_search_bench,
        run_store_bench,
    )

    def method_list(default: str, no_sift: str) -> tuple[str, ...]:
        names = tuple(check_method(m.strip()) for m in (methods or default).split(",") if m.strip())
        if not names:
            raise click.BadParameter("--methods names no method")
        if "sift" in names:
            raise click.BadParameter(no_sift)
        return names

    def show(result: dict, name: str) -> None:
        click.echo(result["table"])
        for s in result.get("skipped", ()):
            click.echo(f"skipped {s['mode']}: {s['why']}")
        click.echo(f"wrote {out_dir}/{name}.json")

    if suite in ("store", "all"):
        show(run_store_bench(gallery=gallery, queries=queries, out=f"{out_dir}/store.json", data_dir=data_dir, log=click.echo),
             "store")
    if suite in ("search", "all"):
        show(run_search_bench(sizes=_sizes(sizes), synthetic=synthetic, queries=queries, local=local,
                              out=f"{out_dir}/search.json", data_dir=data_dir, log=click.echo), "search")
    if suite in ("embed", "all"):
        names = method_list("pixels,autoencoder,siamese,resnet101", "sift is measured by --suite rerank, not the embed suite")
        show(run_embed_bench(methods=names, ingest_gallery=gallery, out=f"{out_dir}/embed.json", data_dir=data_dir,
                             log=click.echo), "embed")
    if suite in ("rerank", "all"):
        show(run_rerank_bench(gallery=gallery, queries=queries, out=f"{out_dir}/rerank.json", data_dir=data_dir, log=click.echo),
             "rerank")
    if suite in ("modes", "all"):
        names = method_list("pixels,autoencoder,siamese", "sift is a rerank stage (--suite rerank), not a search mode")
        show(run_modes_bench(settings.store(), prefix=settings.prefix, methods=names, queries=queries,
                             out=f"{out_dir}/modes.json", data_dir=data_dir, log=click.echo), "modes")
    if suite in ("quantization", "all"):
        names = method_list("pixels,autoencoder,siamese", "sift's multivectors are not quantised")
        show(run_quantization_bench(methods=names, gallery=gallery, queries=queries, out=f"{out_dir}/quantization.json",
                                    data_dir=data_dir, log=click.echo), "quantization")
