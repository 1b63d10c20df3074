"""``fmsearch data``: find (or download) and verify the FMNIST files."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors


@click.command("data")
@data_dir_option
@click.option(
    "--download/--no-download",
    default=True,
    show_default=True,
    help="Fetch from Zalando's mirror when not found locally.",
)
@domain_errors
def command(data_dir, download) -> None:
    """Locate FMNIST and verify every file (magic, sizes, SHA-256)."""
    from fmsearch.images.fmnist import SPLITS, load_split, locate

    directory = locate(data_dir, download=download)
    for split in SPLITS:
        data = load_split(split, directory)
        click.echo(f"{split}: {len(data)} images verified in {directory}")
