"""``fmsearch ingest``: embed the gallery into the method's collection."""

from __future__ import annotations

import click

from fmsearch.store.schema import QUANTIZATIONS

from .common import (
    cli_message,
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    model_options,
    pass_settings,
)


@click.command("ingest")
@click.option(
    "--method",
    "-m",
    required=True,
    help="Embedding method (pixels, autoencoder, siamese, proxy, distilled, ensemble, resnet101), sift (descriptors "
    "for --rerank sift), or 'all' (every method but the ensemble, which the distilled method comes close to at one "
    "network's cost; ingest it by name).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "test", "all"]),
    default="train",
    show_default=True,
    help="Which FMNIST split(s) to store.",
)
@click.option("--limit", type=int, default=None, help="Only the first N images of each split.")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Images embedded and written per step.")
@click.option(
    "--recreate",
    is_flag=True,
    help="Rebuild the collection from scratch, beside the live one, and swap it in when "
    "complete (queries keep the old one until then). Without it, a re-run resumes: stored points are skipped.",
)
@click.option(
    "--quantization",
    type=click.Choice(QUANTIZATIONS),
    default="none",
    show_default=True,
    help="Write the quantised variant fmnist_<method>_<q> instead: int8 (scalar) or binary quantised vectors, "
    "with the float32 originals kept for rescoring.",
)
@click.option(
    "--on-disk",
    is_flag=True,
    help="A new collection keeps its float32 vectors on disk, memory-mapped: "
    "with --quantization int8, a million pixel vectors served in 1.5 GiB of RAM instead of 3.4, at recall@10 "
    "0.997 (docs/scale.md#memory-options).",
)
@click.option("--shards", type=int, default=1, show_default=True, help="Server/cluster: shards of a new collection.")
@click.option("--replicas", type=int, default=1, show_default=True, help="Server/cluster: copies of each shard.")
@click.option(
    "--write-consistency",
    type=int,
    default=1,
    show_default=True,
    help="Server/cluster: replicas that must confirm a write (<= --replicas).",
)
@click.option(
    "--sift-upscale", type=int, default=None, help="sift: enlarge images this many times before SIFT [default 3]."
)
@click.option("--sift-plain", is_flag=True, help="sift: plain SIFT descriptors instead of RootSIFT.")
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Ingest your own folder of images instead of FMNIST, into --collection (a folder gallery).",
)
@click.option(
    "--collection",
    "gallery",
    default=None,
    help="With --images: the gallery's name (lower-case letters, digits, dashes): collection <prefix><name>_<method>.",
)
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="With --images: the subfolders too (DIR/<class>/<file> gives each image its class).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="With --images: print the report as JSON, skipped files with the reason."
)
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(
    settings,
    method,
    split,
    limit,
    batch_size,
    recreate,
    quantization,
    on_disk,
    shards,
    replicas,
    write_consistency,
    sift_upscale,
    sift_plain,
    images_dir,
    gallery,
    recursive,
    as_json,
    weights,
    input_size,
    runtime,
    threads,
    data_dir,
) -> None:
    """Embed FMNIST images with METHOD and store them in Qdrant.

    With --method all, every method whose model is available is ingested,
    but the ensemble (ingested by name: the distilled method comes within
    half a point of it at one network's cost); resnet101 is skipped, with the reason, when its
    weights cannot be loaded.
    --method sift stores each image's SIFT descriptors (RootSIFT, image
    upscaled 3x, uint8) as a multivector in collection fmnist_sift, for
    `fmsearch query/evaluate --rerank sift`.
    """
    from fmsearch.errors import ModelError
    from fmsearch.models.registry import DOWNLOADED, all_methods, check_method, get_ingestible, stage_names
    from fmsearch.models.registry import model_options as method_options

    if method == "all" and (weights is not None or input_size is not None):
        raise click.UsageError("--weights/--input-size need a single --method")
    if (sift_upscale is not None or sift_plain) and method != "sift":
        raise click.UsageError("--sift-upscale/--sift-plain apply to --method sift only")
    if (images_dir is None) != (gallery is None):
        raise click.UsageError("--images and --collection go together: a folder and the gallery's name")
    if images_dir is not None:
        if split != "train" or limit is not None or quantization != "none" or on_disk:
            raise click.UsageError("--split, --limit, --quantization and --on-disk apply to FMNIST, not to --images")
        methods = all_methods() if method == "all" else (check_method(method),)  # a folder gallery: methods only
        options = embedder_options(methods, weights, input_size, runtime, threads)
        for name in methods:  # each method's collection of the gallery (a model that cannot load: skipped with all)
            _ingest_folder(
                settings,
                name,
                options[name],
                (images_dir, gallery, recursive),
                recreate,
                batch_size,
                as_json,
                method == "all",
            )
        return
    if method == "all":  # FMNIST: every method's collection, and every rerank stage's (descriptors: never quantised)
        methods = (*all_methods(), *(stage_names() if quantization == "none" else ()))
    else:
        methods = (method if method in stage_names() else check_method(method),)
    options = embedder_options(methods, weights, input_size, runtime, threads)
    for name in methods:
        sift = method_options(name, upscale=sift_upscale, root=False if sift_plain else None) if name == "sift" else {}
        embedder = get_ingestible(name, **options[name], **sift)
        if method == "all" and name in DOWNLOADED:
            try:
                embedder.prepare()
            except ModelError as err:
                click.echo(f"skipping {name}: {cli_message(err, click.get_current_context())}", err=True)
                continue
        layout = {"shards": shards, "replicas": replicas, "write_consistency": write_consistency, "on_disk": on_disk}
        _ingest_one(settings, embedder, split, limit, batch_size, recreate, data_dir, quantization, layout)


def _ingest_one(settings, embedder, split, limit, batch_size, recreate, data_dir, quantization, layout) -> None:
    from tqdm import tqdm

    from fmsearch.ingest.indexer import ingest

    with tqdm(total=0, unit="img", desc=f"ingest {embedder.name}", disable=None) as bar:
        report = ingest(
            settings.store(),
            embedder,
            split=split,
            limit=limit,
            batch_size=batch_size,
            recreate=recreate,
            data_dir=data_dir,
            prefix=settings.store_settings.prefix,
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
            quantization=quantization,
            **layout,
        )
    extra = ""
    if report.points_skipped:
        extra = (
            f"; resumed: {report.points_skipped} were already stored"
            if report.points_written
            else "; every planned point was already stored"
        )
    if report.rebuilt:
        extra = "; rebuilt beside the live collection and swapped in"
    click.echo(
        f"{report.collection}: wrote {report.points_written} points, {report.points_total} stored "
        f"(embed {report.seconds_embed:.1f}s and write {report.seconds_write:.1f}s, overlapped in "
        f"{report.seconds_load:.1f}s; index {report.seconds_index:.1f}s){extra}"
    )


def _ingest_folder(settings, method, options, folder, recreate, batch_size, as_json, skip_unloadable) -> None:
    """One method's collection of a folder gallery; ``folder``: (its directory, the gallery's name, recursive)."""
    images_dir, gallery, recursive = folder
    batch_size = min(batch_size, 256)
    from tqdm import tqdm

    from fmsearch.errors import ModelError
    from fmsearch.ingest.folder import ingest_folder
    from fmsearch.models.registry import DOWNLOADED, get_embedder

    embedder = get_embedder(method, **options)
    if skip_unloadable and method in DOWNLOADED:
        try:
            embedder.prepare()
        except ModelError as err:
            click.echo(f"skipping {method}: {cli_message(err, click.get_current_context())}", err=True)
            return
    with tqdm(total=0, unit="img", desc=f"ingest {method}", disable=None) as bar:
        report = ingest_folder(
            settings.store(),
            embedder,
            images_dir,
            gallery,
            recursive=recursive,
            recreate=recreate,
            batch_size=batch_size,
            prefix=settings.store_settings.prefix,
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
        )
    if as_json:
        from dataclasses import asdict

        echo_json({**asdict(report), "bad": [{"path": p, "reason": why} for p, why in report.bad]})
        return
    click.echo(
        f"{report.collection}: {report.files} images found, {report.written} written, {report.unchanged} "
        f"unchanged, {len(report.bad)} unreadable, {len(report.unsupported)} not images; "
        f"{report.points_total} stored ({report.seconds:.1f}s)"
        + (f"; {report.gone} stored images are no longer in the folder (fmsearch delete --path)" if report.gone else "")
    )
    for path, why in report.bad:
        click.echo(f"  skipped {path}: {why}")
    for path in report.unsupported:
        click.echo(f"  not an image (extension): {path}")
