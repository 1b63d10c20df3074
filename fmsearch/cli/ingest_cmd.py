"""``fmsearch ingest``: embed the gallery into the method's collection."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors, pass_settings


@click.command("ingest")
@click.option("--method", "-m", required=True, help="Embedding method, e.g. pixels.")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="train", show_default=True, help="Which FMNIST split(s) to store.")
@click.option("--limit", type=int, default=None, help="Only the first N images of each split.")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Images embedded and written per step.")
@click.option("--recreate", is_flag=True, help="Drop the collection first.")
@data_dir_option
@pass_settings
@domain_errors
def command(settings, method, split, limit, batch_size, recreate, data_dir) -> None:
    """Embed FMNIST images with METHOD and store them in Qdrant."""
    from tqdm import tqdm

    from models.registry import check_method, get_embedder
    from search.indexer import ingest

    embedder = get_embedder(check_method(method))
    bar = tqdm(total=0, unit="img", desc=f"ingest {method}", disable=None)
    try:
        report = ingest(
            settings.store(),
            embedder,
            split=split,
            limit=limit,
            batch_size=batch_size,
            recreate=recreate,
            data_dir=data_dir,
            prefix=settings.prefix,
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
        )
    finally:
        bar.close()
    click.echo(
        f"{report.collection}: wrote {report.points_written} points, {report.points_total} stored "
        f"(embed {report.seconds_embed:.1f}s, write {report.seconds_write:.1f}s, "
        f"index {report.seconds_index:.1f}s)"
    )
