"""``fmsearch duplicates``: near-copies and label conflicts in a gallery."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors, echo_json, pass_settings


@click.command("duplicates")
@click.option("--method", "-m", required=True, help="The collection to scan: its method (pixels, siamese, ...).")
@click.option(
    "--threshold",
    "-t",
    type=float,
    default=None,
    help="Pairs scoring at least this are copies [default: the method's measured default].",
)
@click.option(
    "--split",
    type=click.Choice(["train", "test", "all"]),
    default=None,
    help="Which stored images to scan (all: train and test, and test images with a train copy) "
    "[default: the splits the collection holds; train alone after `make demo`].",
)
@click.option("--exact", is_flag=True, help="Exact threshold search instead of the HNSW index (slower; the reference).")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Stored images queried per request.")
@click.option(
    "--calibrate",
    is_flag=True,
    help="Measure the method's default threshold instead (JPEG re-encoded copies "
    "of 1,000 stored images against their nearest other image); writes nothing.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory [default eval-results/duplicates-METHOD-SPLIT].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (groups are in duplicates.json).")
@click.option(
    "--collection", "gallery", default=None, help="Scan a folder gallery (fmsearch ingest --images) instead of FMNIST."
)
@data_dir_option
@pass_settings
@domain_errors
def command(settings, method, threshold, split, exact, batch_size, calibrate, out, as_json, gallery, data_dir) -> None:
    """Find images stored twice in METHOD's collection: every pair scoring
    at least the threshold, found through the collection's own index
    (batched threshold queries, never an all-pairs matrix), grouped into
    connected components.

    Writes duplicates.json (groups with ids, classes, scores), report.md
    (counts, groups with conflicting labels, test images with a near-copy in
    train, per-class counts) and duplicates.png (the groups as image rows).
    By default it scans the splits the collection holds: the train split
    alone after `fmsearch ingest`, saying what --split all would add (which
    needs the test split stored too: `fmsearch ingest --split all`).
    """
    from tqdm import tqdm

    from fmsearch.evaluation.duplicates import DuplicatesConfig, find_duplicates, resolve_split
    from fmsearch.evaluation.report import write_duplicates_report
    from fmsearch.models.registry import check_method

    method = check_method(method)
    if calibrate:
        if not settings.gallery(gallery).has_splits:
            raise click.UsageError("--calibrate measures FMNIST's train images: not with --collection")
        _calibrate(settings, method, data_dir, as_json)
        return
    store = settings.store()
    config = resolve_split(
        store,
        DuplicatesConfig(method, threshold, split, batch_size, exact, gallery),
        prefix=settings.store_settings.prefix,
    )
    out = out or config.out_dir
    with tqdm(total=0, unit="img", desc=f"duplicates {method}", disable=None) as bar:
        data = find_duplicates(
            store,
            config,
            prefix=settings.store_settings.prefix,
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
        )
    write_duplicates_report(data, store, out)
    m, c = data["summary"], data["cost"]
    if as_json:
        echo_json(
            {
                "settings": data["settings"],
                "collection": data["collection"],
                "out": out,
                **{k: v for k, v in m.items() if k != "per_class"},
                "cost": c,
                "split_note": data["split_note"],
            }
        )
        return
    click.echo(
        f"{data['collection']}, score >= {data['settings']['threshold']:g}: {m['images_scanned']} images, "
        f"{m['pairs']} pairs in {m['groups']} groups ({m['images_in_groups']} images, largest {m['largest_group']})"
    )
    click.echo(
        f"groups with conflicting labels: {m['conflict_groups']}"
        + (
            f"; test images with a near-copy in train: {m['test_with_train_copy']}"
            if m["test_with_train_copy"] is not None and config.split == "all"
            else ""
        )
    )
    if data["split_note"]:
        click.echo(data["split_note"])
    click.echo(f"{c['seconds']:.1f} s, peak resident memory {c['peak_rss_mb']:.0f} MB")
    click.echo(f"wrote {out}/duplicates.json, report.md, duplicates.png")


def _calibrate(settings, method, data_dir, as_json) -> None:
    from fmsearch.evaluation.duplicates import calibrate
    from fmsearch.models.registry import get_embedder

    data = calibrate(settings.store(), get_embedder(method), prefix=settings.store_settings.prefix, data_dir=data_dir)
    if as_json:
        echo_json(data)
        return
    click.echo(f"{data['collection']}: {data['sample']} stored train images, copies = {data['copy']}")
    click.echo(f"{'quantile':>9}  {'copy score':>10}  {'nearest other':>13}")
    for q, v in data["copy_score_quantiles"].items():
        click.echo(f"{q:>9}  {v:>10.4f}  {data['nearest_other_quantiles'][q]:>13.4f}")
    click.echo(
        f"threshold {data['threshold']:g}: keeps {data['copies_kept']:.1%} of the copies, pairs "
        f"{data['images_paired_at_threshold']:.1%} of the images with their nearest other image"
    )
