"""``fmsearch bench``: store and search benchmarks (tables + JSON)."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from err
    if not sizes or any(not 1000 <= s <= 60000 for s in sizes):
        raise click.BadParameter("gallery sizes must be between 1000 and 60000")
    return sizes


@click.command("bench")
@click.option("--suite", type=click.Choice(["store", "search", "embed", "rerank", "all"]), default="all", show_default=True,
              help="store: ingest + query, Edge vs local mode. search: Edge vs numpy brute force vs local mode, and a scale "
              "series. embed: images/s per method and full-gallery ingest time. rerank: SIFT extraction per upscale factor, "
              "SIFT gallery ingest, rerank latency against the plain query.")
@click.option("--gallery", type=click.IntRange(1000, 60000), default=60000, show_default=True, help="store, embed and rerank suites: gallery size.")
@click.option("--sizes", default="10000,30000,60000", show_default=True, help="search suite: real gallery sizes.")
@click.option("--synthetic", type=click.IntRange(0, 5_000_000), default=1_000_000, show_default=True, help="search suite: synthetic 64-d collection size (0: none).")
@click.option("--local/--no-local", default=True, show_default=True, help="search suite: include qdrant-client local mode.")
@click.option("--methods", default="pixels,autoencoder,siamese,resnet101", show_default=True, help="embed suite: methods, comma-separated.")
@click.option("--queries", type=click.IntRange(10, 10000), default=200, show_default=True, help="Queries timed per setting.")
@click.option("--out-dir", type=click.Path(file_okay=False), default="bench-results", show_default=True, help="Where the JSON goes.")
@data_dir_option
@domain_errors
def command(suite, gallery, sizes, synthetic, local, methods, queries, out_dir, data_dir) -> None:
    """Benchmarks, measured as ratios between runs in this same process.

    Prints markdown tables and writes bench-results/{store,search,embed,rerank}.json. The full default run takes tens of minutes
    on 2 cores (local mode and the 1M-point HNSW build dominate).
    """
    from search.bench import run_embed_bench, run_rerank_bench, run_search_bench, run_store_bench

    if suite in ("store", "all"):
        result = run_store_bench(gallery=gallery, queries=queries, out=f"{out_dir}/store.json", data_dir=data_dir, log=click.echo)
        click.echo(result["table"])
        click.echo(f"wrote {out_dir}/store.json")
    if suite in ("search", "all"):
        result = run_search_bench(
            sizes=_sizes(sizes), synthetic=synthetic, queries=queries, local=local,
            out=f"{out_dir}/search.json", data_dir=data_dir, log=click.echo,
        )
        click.echo(result["table"])
        click.echo(f"wrote {out_dir}/search.json")
    if suite in ("embed", "all"):
        from models.registry import check_method

        names = tuple(check_method(m.strip()) for m in methods.split(",") if m.strip())
        if not names:
            raise click.BadParameter("--methods names no method")
        if "sift" in names:
            raise click.BadParameter("sift is measured by --suite rerank, not the embed suite")
        result = run_embed_bench(methods=names, ingest_gallery=gallery, out=f"{out_dir}/embed.json", data_dir=data_dir, log=click.echo)
        click.echo(result["table"])
        click.echo(f"wrote {out_dir}/embed.json")
    if suite in ("rerank", "all"):
        result = run_rerank_bench(gallery=gallery, queries=queries, out=f"{out_dir}/rerank.json", data_dir=data_dir, log=click.echo)
        click.echo(result["table"])
        click.echo(f"wrote {out_dir}/rerank.json")
