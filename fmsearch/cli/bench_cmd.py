"""``fmsearch bench``: ingest and query speed of the embedded store vs local mode."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors


@click.command("bench")
@click.option("--gallery", type=click.IntRange(1000, 60000), default=60000, show_default=True, help="Gallery size (first N train images).")
@click.option("--queries", type=click.IntRange(10, 10000), default=200, show_default=True, help="Single queries timed per setting.")
@click.option("--out", type=click.Path(dir_okay=False), default="bench-results/store.json", show_default=True, help="Where to write the JSON.")
@data_dir_option
@domain_errors
def command(gallery, queries, out, data_dir) -> None:
    """Pixels ingest time and query latency: Qdrant Edge vs qdrant-client local mode.

    Both run in this process on the same vectors; prints a markdown table and
    writes JSON. Local mode ingests slowly: the full 60,000 takes minutes.
    """
    from search.bench import run_store_bench

    result = run_store_bench(gallery=gallery, queries=queries, out=out, data_dir=data_dir, log=click.echo)
    click.echo(result["table"])
    click.echo(f"wrote {out}")
