"""``fmsearch label-issues``: likely label errors and outliers in a gallery."""

from __future__ import annotations

import click

from .common import domain_errors, echo_json, pass_settings


@click.command("label-issues")
@click.option(
    "--method", "-m", required=True, help="The collection to check: its method (autoencoder, distilled, ...)."
)
@click.option(
    "--split",
    type=click.Choice(["train", "test", "all"]),
    default=None,
    help="Which stored images to check: train and all against themselves, test against the train gallery "
    "[default: the splits the collection holds; train alone after `make demo`].",
)
@click.option("-k", "k", type=int, default=None, help="Neighbours per image in the graph [default: 10].")
@click.option("--exact", is_flag=True, help="Exact search instead of the HNSW index (slower; the reference).")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Images queried per request.")
@click.option(
    "--inject-noise",
    "rate",
    type=float,
    default=None,
    help="Benchmark: flip this share of the checked labels (in a copy; the store is never written) "
    "and score the detector, and cleanlab beside it, against the flips.",
)
@click.option(
    "--noise",
    "mode",
    type=click.Choice(["uniform", "confusable"]),
    default="uniform",
    show_default=True,
    help="How --inject-noise flips a label: to another class at random, or to the class the graph finds "
    "most confusable with it (Shirt <-> T-shirt/top).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="The seed of the injected flips.")
@click.option(
    "--cleanlab/--no-cleanlab",
    "with_cleanlab",
    default=None,
    help="With --inject-noise, run cleanlab's Datalab on the same vectors and labels (its own kNN graph and "
    "fmsearch's), each in a fresh process for its time and memory [default: on; needs fmsearch[labels]].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory [default eval-results/label-issues-[GALLERY-]METHOD-SPLIT[-noise-MODE-RATE-sSEED]].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (the lists are in label_issues.json).")
@click.option("--collection", "gallery", default=None, help="Check a folder gallery with classes instead of FMNIST.")
@pass_settings
@domain_errors
def command(
    settings, method, split, k, exact, batch_size, rate, mode, seed, with_cleanlab, out, as_json, gallery
) -> None:
    """Find images whose label is likely wrong, and images that fit no
    class, in METHOD's collection: each image's nearest neighbours from the
    collection's own index (one batch of queries, itself left out), then
    its margin: how much nearer its own class's three nearest images are
    than another class's. Images nearer another class by more than the
    gallery's median margin are flagged, with that class as the suggestion.

    Writes label_issues.json (the likeliest 500, flagged ones first, each
    with its neighbours; the top outliers), report.md (counts per given /
    suggested class pair), label_issues.png (the likeliest 16 beside their
    neighbours) and top.png (the likeliest 50, numbered, to judge by eye).
    """
    from tqdm import tqdm

    from fmsearch.evaluation import cleanlab_reference
    from fmsearch.evaluation.label_issues import K, LabelIssuesConfig, Noise, find_label_issues
    from fmsearch.evaluation.report import write_label_issues_report
    from fmsearch.models.registry import check_method

    method = check_method(method)
    if rate is None and (with_cleanlab or mode != "uniform" or seed != 0):
        raise click.UsageError("--noise, --seed and --cleanlab belong to a benchmark run: give --inject-noise RATE")
    noise = Noise(rate, seed, mode) if rate is not None else None
    with_cleanlab = noise is not None and with_cleanlab is not False
    if with_cleanlab:
        cleanlab_reference.require()
    store = settings.store()
    config = LabelIssuesConfig(method, split, K if k is None else k, batch_size, exact, gallery, noise)
    kept: dict = {}
    with tqdm(total=0, unit="img", desc=f"label issues {method}", disable=None) as bar:
        data = find_label_issues(
            store,
            config,
            prefix=settings.store_settings.prefix,
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
            keep=kept,
        )
    out = out or _out_dir(config, data)
    write_label_issues_report(data, store, out)  # written first: a reference that fails loses nothing
    if with_cleanlab:
        data["reference"] = cleanlab_reference.against_cleanlab(store, data["collection"], kept)
        write_label_issues_report(data, store, out)
    m, c = data["summary"], data["cost"]
    if as_json:
        echo_json(
            {
                "collection": data["collection"],
                "scope": data["scope"],
                "out": out,
                **{key: v for key, v in m.items() if key not in ("per_class", "pairs")},
                "cost": c,
                **({"detection": data["detection"]} if "detection" in data else {}),
                **({"reference": data["reference"]} if "reference" in data else {}),
            }
        )
        return
    click.echo(
        f"{data['collection']}, {data['scope']} against {data['pool']}: {m['images_checked']} images, "
        f"{m['flagged']} flagged (margin <= {m['threshold']:.4f}, the median margin {m['median_margin']:.4f} reversed)"
    )
    for p in m["pairs"][:5]:
        click.echo(f"  {p['count']:>5}  given {p['given']}, nearer {p['suggested']}")
    click.echo(
        f"{c['seconds']:.1f} s (graph {c['seconds_graph']:.1f} s), peak resident memory {c['peak_rss_mb']:.0f} MB"
    )
    if "detection" in data:
        click.echo(_detection_table(data))
    click.echo(f"wrote {out}/label_issues.json, report.md, label_issues.png, top.png")


def _out_dir(config, data) -> str:
    from dataclasses import replace

    return replace(config, split=data["settings"]["split"]).out_dir


def _detection_table(data) -> str:
    from fmsearch.evaluation.report import label_detection_rows

    head = f"{'detector':<58} {'AUROC':>6} {'P':>6} {'R':>6} {'F1':>6} {'flagged':>7} {'s':>7} {'MiB':>6}"
    lines = [head]
    for label, row in label_detection_rows(data):
        if "note" in row:
            lines.append(f"{label:<58} {row['note']}")
            continue
        lines.append(
            f"{label:<58} {row['auroc']:>6.4f} {row['precision']:>6.3f} {row['recall']:>6.3f} {row['f1']:>6.3f} "
            f"{row['flagged']:>7} {row['seconds']:>7.1f} {row['peak_rss_mb']:>6.0f}"
        )
    return "\n".join(lines)
