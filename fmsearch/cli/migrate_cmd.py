"""``fmsearch migrate``: copy collections to a Qdrant server."""

from __future__ import annotations

import click

from .common import domain_errors, pass_settings, read_key_file


@click.command("migrate")
@click.option(
    "--to", "to_url", required=True, help="Target Qdrant server URL (http:// or https://; local:PATH for a test)."
)
@click.option(
    "--to-api-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The target's API key, read from this file [default: --qdrant-api-key when the source is embedded].",
)
@click.option(
    "--method",
    "-m",
    default="all",
    show_default=True,
    help="Which method's collections (plain and quantised variants, and sift), or 'all'.",
)
@click.option(
    "--recreate", is_flag=True, help="Rebuild target collections that exist (beside them, swapped in when complete)."
)
@click.option(
    "--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True, help="Points per copy request."
)
@click.option(
    "--sample",
    type=click.IntRange(1, 100000),
    default=100,
    show_default=True,
    help="Vectors compared between source and target per collection.",
)
@click.option("--shards", type=int, default=1, show_default=True, help="Shards of each new target collection.")
@click.option("--replicas", type=int, default=1, show_default=True, help="Copies of each shard.")
@click.option("--write-consistency", type=int, default=1, show_default=True, help="Replicas that must confirm a write.")
@pass_settings
@domain_errors
def command(
    settings, to_url, to_api_key_file, method, recreate, batch_size, sample, shards, replicas, write_consistency
) -> None:
    """Copy collections (vectors, payloads, metadata and fingerprints) from the
    configured store, usually the embedded one, to a Qdrant server, and verify
    them: equal counts and a sample of equal vectors. A re-run resumes."""
    from dataclasses import replace

    from tqdm import tqdm

    from fmsearch.ingest.migrate import migrate_collection, select

    here = settings.store_settings
    key = read_key_file(to_api_key_file) if to_api_key_file else (here.api_key if here.url is None else None)
    there = replace(here, url=to_url, api_key=key)  # the same timeout, retries and gRPC choice, at the target
    source = settings.store()
    names = select(source, method, here.prefix)
    target = there.open()
    try:
        for name in names:
            bar = tqdm(total=source.count(name), unit="pt", desc=f"migrate {name}", disable=None)
            try:
                r = migrate_collection(
                    source,
                    target,
                    name,
                    recreate=recreate,
                    batch_size=batch_size,
                    sample=sample,
                    shards=shards,
                    replicas=replicas,
                    write_consistency=write_consistency,
                    progress=bar.update,
                )
            finally:
                bar.close()
            click.echo(
                f"{r.collection}: {r.points_target} of {r.points_source} points on {target.location} "
                f"(copied {r.copied}, already there {r.skipped}); {r.sample} vectors checked, "
                f"max |diff| {r.max_abs_diff:.1g}"
            )
    finally:
        target.close()
