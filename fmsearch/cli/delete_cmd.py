"""``fmsearch delete``: images out of a folder gallery, one at a time."""

from __future__ import annotations

import click

from .common import domain_errors, echo_json, pass_settings


@click.command("delete")
@click.option("--collection", "gallery", required=True, help="The folder gallery (its name at ingest).")
@click.option(
    "--path",
    "paths",
    multiple=True,
    help="An image by its path (relative to the gallery's folder, or a file inside it); repeatable.",
)
@click.option("--id", "ids", multiple=True, type=int, help="An image by its point id; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per collection changed.")
@pass_settings
@domain_errors
def command(settings, gallery, paths, ids, as_json) -> None:
    """Remove images from every collection of a folder gallery, the index
    kept: no rebuild. Every image named must be stored; otherwise nothing is
    removed.
    """
    from fmsearch.ingest.folder import delete_images
    from fmsearch.store.gallery import gallery_collections

    if not paths and not ids:
        raise click.UsageError("name the images: --path P or --id N (repeatable)")
    store = settings.store()
    for name, before, after in delete_images(
        store, gallery_collections(store, settings.gallery(gallery)), list(paths), list(ids)
    ):
        if as_json:
            echo_json({"collection": name, "deleted": before - after, "points_total": after})
        else:
            click.echo(f"{name}: {before - after} deleted; {after} stored")
