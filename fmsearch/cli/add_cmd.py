"""``fmsearch add``: image files into a folder gallery, one at a time."""

from __future__ import annotations

import click

from .common import domain_errors, echo_json, pass_settings


@click.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--collection", "gallery", required=True, help="The folder gallery (its name at ingest).")
@click.option(
    "--class",
    "class_name",
    default=None,
    help="The images' class [default: the first-level subfolder, inside the gallery's folder].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per collection written.")
@pass_settings
@domain_errors
def command(settings, paths, gallery, class_name, as_json) -> None:
    """Add image files to every collection of a folder gallery (each
    method's), the index kept: no rebuild. A file inside the gallery's folder
    is known by its path relative to it (re-adding it replaces its point);
    one outside, by its file name.
    """
    from fmsearch.ingest.folder import add_images
    from fmsearch.models.registry import get_embedder
    from fmsearch.store import schema
    from fmsearch.store.gallery import gallery_collections

    store = settings.store()
    targets = [
        (name, get_embedder(store.info(name).metadata[schema.META_METHOD]))
        for name in gallery_collections(store, settings.gallery(gallery))
    ]
    for report in add_images(store, targets, list(paths), class_name):
        name = report.collection
        if as_json:
            echo_json(
                {
                    "collection": name,
                    "written": report.written,
                    "unchanged": report.unchanged,
                    "points_total": report.points_total,
                }
            )
        else:
            click.echo(
                f"{name}: {report.written} added, {report.unchanged} already stored unchanged; "
                f"{report.points_total} stored"
            )
