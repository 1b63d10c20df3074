"""``fmsearch bench``: benchmarks, one subcommand per suite (tables + JSON)."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import click

from fmsearch.evaluation.bench import SUITES
from fmsearch.store.schema import FULL_SCAN_THRESHOLD_KB, QUANTIZATIONS

from .common import data_dir_option, domain_errors, parse_numbers, pass_settings

NO_WRK = "the serve suite drives the service with wrk, which is not installed (apt-get install wrk)"


@click.group("bench")
def command() -> None:
    """Benchmarks, each figure a ratio to a baseline measured in the same
    process or run.

    One subcommand per suite, each with its own options; each prints markdown
    tables and writes OUT_DIR/<suite>.json (`explain --sweep`:
    explain-sweep.json). `fmsearch bench all` runs every suite but scale,
    label-issues and explain: tens of minutes on 2 cores. The modes, serve
    and explain suites measure the configured store (--home, --qdrant-url);
    the others build temporary collections of their own.
    """


def _suite(name: str) -> Callable[[Callable], click.Command]:
    """A suite's subcommand: its own options, then --out-dir and --data-dir."""

    def register(fn: Callable) -> click.Command:
        fn = domain_errors(fn)
        fn = pass_settings(fn)
        fn = data_dir_option(fn)
        fn = click.option(
            "--out-dir",
            type=click.Path(file_okay=False),
            default="bench-results",
            show_default=True,
            help="Where the JSON goes.",
        )(fn)
        suite = command.command(name)(fn)
        suite.params.sort(key=lambda p: p.name in ("out_dir", "data_dir"))  # the suite's own options first
        return suite

    return register


def _methods_option(default: str, extra: str = "") -> Callable:
    return click.option("--methods", default=None, help=f"Methods, comma-separated [default {default}]{extra}.")


def _gallery_option(fn: Callable) -> Callable:
    return click.option(
        "--gallery",
        type=click.IntRange(1000, 60000),
        default=60000,
        show_default=True,
        help="Gallery size: the first N train images.",
    )(fn)


def _queries_option(what: str = "Queries timed per setting.") -> Callable:
    return click.option("--queries", type=click.IntRange(10, 10000), default=200, show_default=True, help=what)


def _report(result, out_dir: str) -> None:
    click.echo(result.table)
    for s in result.skipped:
        click.echo(f"skipped {s['mode']}: {s['why']}")
    click.echo(f"wrote {result.write(out_dir)}")


@_suite("search")
@click.option(
    "--sizes",
    default="10000,30000,60000",
    show_default=True,
    help="Real gallery sizes (pixels of the first N train images), 1,000 to 60,000.",
)
@click.option(
    "--synthetic",
    type=click.IntRange(0, 5_000_000),
    default=1_000_000,
    show_default=True,
    help="Synthetic 64-d collection size (0: none).",
)
@click.option("--local/--no-local", default=True, show_default=True, help="Include qdrant-client local mode.")
@_queries_option()
def search_command(settings, sizes, synthetic, local, queries, out_dir, data_dir) -> None:
    """Qdrant Edge (HNSW and exact) against numpy brute force and
    qdrant-client local mode: query latency and batch throughput, recall, a
    class-filtered query, and each store's ingest (upsert, HNSW build)."""
    from fmsearch.evaluation.bench.search import run_search_bench

    numbers = parse_numbers(sizes, "--sizes", int)
    if not numbers or any(not 1000 <= s <= 60000 for s in numbers):
        raise click.UsageError("--sizes: gallery sizes must be between 1000 and 60000")
    _report(
        run_search_bench(
            sizes=numbers, synthetic=synthetic, queries=queries, local=local, data_dir=data_dir, log=click.echo
        ),
        out_dir,
    )


@_suite("embed")
@_methods_option("pixels,autoencoder,siamese,resnet101")
@_gallery_option
def embed_command(settings, methods, gallery, out_dir, data_dir) -> None:
    """Images/s per method (batched, one at a time), the gallery's ingest,
    Keras against ONNX Runtime, a command-line query's wall time, and what
    the installs weigh."""
    from fmsearch.evaluation.bench.embed import run_embed_bench

    _report(
        run_embed_bench(methods=_methods(methods), ingest_gallery=gallery, data_dir=data_dir, log=click.echo), out_dir
    )


@_suite("rerank")
@_gallery_option
@_queries_option()
def rerank_command(settings, gallery, queries, out_dir, data_dir) -> None:
    """SIFT extraction per upscale factor, the SIFT gallery's ingest, and the
    rerank's latency against the plain query."""
    from fmsearch.evaluation.bench.rerank import run_rerank_bench

    _report(run_rerank_bench(gallery=gallery, queries=queries, data_dir=data_dir, log=click.echo), out_dir)


@_suite("modes")
@_methods_option("pixels,autoencoder,siamese,proxy,ensemble")
@_queries_option()
def modes_command(settings, methods, queries, out_dir, data_dir) -> None:
    """Every search mode (quantisation, rescoring, fusion, expansion) on the
    collections `fmsearch ingest` built in the configured store: latency
    against the plain query, bytes per vector."""
    from fmsearch.evaluation.bench.modes import run_modes_bench

    _report(
        run_modes_bench(
            settings.store(),
            prefix=settings.store_settings.prefix,
            methods=_methods(methods),
            queries=queries,
            data_dir=data_dir,
            log=click.echo,
        ),
        out_dir,
    )


@_suite("quantization")
@_methods_option("pixels,autoencoder,siamese")
@_gallery_option
@_queries_option("Queries whose recall is measured.")
def quantization_command(settings, methods, gallery, queries, out_dir, data_dir) -> None:
    """Recall@10 against exact search of int8 and binary quantisation per
    method and oversampling, offered or not (why each is offered)."""
    from fmsearch.evaluation.bench.quantization import run_quantization_bench

    _report(
        run_quantization_bench(
            methods=_methods(methods), gallery=gallery, queries=queries, data_dir=data_dir, log=click.echo
        ),
        out_dir,
    )


@_suite("serve")
@_methods_option("pixels,autoencoder,siamese,siamese+sift", "; method+sift for the SIFT rerank")
@click.option("--clients", default="1,4,16,64", show_default=True, help="Concurrent connections per point.")
@click.option("--uploads", default="28,280", show_default=True, help="Upload sides in pixels.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Service processes.")
@click.option("--duration", type=click.FloatRange(1, 600), default=5.0, show_default=True, help="Seconds per point.")
def serve_command(settings, methods, clients, uploads, workers, duration, out_dir, data_dir) -> None:
    """`fmsearch serve` on the configured store under load from wrk over
    loopback (requests/s, latency percentiles, errors, CPU) per method,
    upload size and client count; batching, workers and uvicorn compared,
    and its share of a bare reference endpoint. Needs wrk (apt-get install wrk)."""
    from fmsearch.evaluation.bench.serve import METHODS, run_serve_bench

    if shutil.which("wrk") is None:
        raise click.UsageError(NO_WRK)
    names = METHODS if methods is None else _serve_methods(methods)
    counts = parse_numbers(clients, "--clients", int)
    sides = parse_numbers(uploads, "--uploads", int)
    if not counts or any(not 1 <= c <= 1024 for c in counts):
        raise click.UsageError("--clients: counts must be between 1 and 1024")
    if not sides or any(not 8 <= s <= 4096 for s in sides):
        raise click.UsageError("--uploads: sides must be between 8 and 4096 pixels")
    _report(
        run_serve_bench(
            settings.store_settings,
            data_dir=data_dir,
            methods=names,
            clients=counts,
            sizes=sides,
            workers=workers,
            duration=duration,
            log=click.echo,
        ),
        out_dir,
    )


@_suite("scale")
@click.option("--sizes", default=None, help="Gallery sizes, 1,000 to 10,000,000 [default 60000,300000,1000000].")
@click.option(
    "--kinds",
    default="vectors,images",
    show_default=True,
    help="Galleries of jittered real embeddings (vectors), of augmented images embedded for real (images), or both.",
)
@_methods_option("pixels,siamese")
@_queries_option()
@click.option(
    "--linked-fields",
    default=None,
    help="Payload fields whose index gets filter-aware graph links, "
    "comma-separated [default label]; 'label,class_name,split' links every indexed field.",
)
@click.option("--on-disk/--in-memory", default=False, show_default=True, help="Original vectors on disk.")
@click.option(
    "--quantization",
    type=click.Choice(QUANTIZATIONS),
    default="none",
    show_default=True,
    help="Quantised copies searched first, rescored with the originals.",
)
@click.option(
    "--full-scan-threshold",
    type=click.IntRange(1, 10_000_000),
    default=FULL_SCAN_THRESHOLD_KB,
    show_default=True,
    help="KB of vectors below which a filtered search scans instead of walking the "
    "graph (and below which a linked field's values get no extra links).",
)
@click.option(
    "--reference/--no-reference",
    default=True,
    show_default=True,
    help="Build and query hnswlib on the same vectors beside each size.",
)
def scale_command(
    settings,
    sizes,
    kinds,
    methods,
    queries,
    linked_fields,
    on_disk,
    quantization,
    full_scan_threshold,
    reference,
    out_dir,
    data_dir,
) -> None:
    """Galleries of 60,000 to millions of points (jittered embeddings,
    augmented images embedded for real): ingest, disk, memory, latency and
    recall with and without filters, hnswlib beside it, plots. An hour and
    more at a million points: not part of `all`."""
    from fmsearch.evaluation.bench import scale

    _report(
        scale.run_scale_bench(
            sizes=_scale_sizes(sizes),
            kinds=_kinds(kinds),
            methods=_methods(methods) or scale.METHODS,
            queries=queries,
            linked_fields=_names(linked_fields),
            on_disk=on_disk,
            quantization=quantization,
            full_scan_threshold_kb=full_scan_threshold,
            reference=reference,
            plot_dir=out_dir,
            data_dir=data_dir,
            log=click.echo,
        ),
        out_dir,
    )


@_suite("label-issues")
@click.option("--method", "-m", default="autoencoder", show_default=True, help="The method whose vectors are jittered.")
@click.option(
    "--points",
    type=click.IntRange(1000, 5_000_000),
    default=300_000,
    show_default=True,
    help="Gallery size: the train images' vectors, then jittered copies.",
)
@click.option(
    "--inject-noise", "rate", type=click.FloatRange(0.001, 0.5), default=0.02, show_default=True, help="Labels flipped."
)
@click.option("--noise", "mode", type=click.Choice(["uniform", "confusable"]), default="uniform", show_default=True)
@click.option("--seed", type=click.IntRange(0), default=3, show_default=True, help="The seed of the flips.")
def label_issues_command(settings, method, points, rate, mode, seed, out_dir, data_dir) -> None:
    """`fmsearch label-issues --inject-noise` on the scale suite's jittered
    gallery (a method's train vectors, then noisy copies) in a temporary
    store, with cleanlab's Datalab beside it (the labels extra): where the
    index's graph should beat a brute-force one most."""
    from fmsearch.evaluation import cleanlab_reference
    from fmsearch.evaluation.bench.label_issues import run_label_issues_bench
    from fmsearch.models.registry import check_method

    cleanlab_reference.require()
    _report(
        run_label_issues_bench(
            method=check_method(method),
            points=points,
            rate=rate,
            seed=seed,
            mode=mode,
            data_dir=data_dir,
            log=click.echo,
        ),
        out_dir,
    )


@_suite("explain")
@_methods_option(
    "pixels,autoencoder,siamese,proxy,distilled,ensemble", "; --sweep: autoencoder,siamese,proxy,distilled"
)
@click.option(
    "--pairs",
    type=int,
    default=None,
    help="Query-hit pairs per method [default 500 test queries; --sweep: 100 validation queries].",
)
@click.option("--sweep", is_flag=True, help="Choose the patch, stride and fill on validation queries instead.")
@click.option("--seed", type=int, default=0, show_default=True, help="The seed of the queries, ranks and orders.")
@click.option(
    "--service/--no-service", default=True, show_default=True, help="Time siamese explanations in `fmsearch serve`."
)
def explain_command(settings, methods, pairs, sweep, seed, service, out_dir, data_dir) -> None:
    """The deletion test of the occlusion heatmaps on the collections
    `fmsearch ingest` built in the configured store: the heatmap's order
    against a random and a centre-first order, and one explanation's time
    (in the service, against a search by id)."""
    from fmsearch.evaluation.bench.explain import run_explain_bench, run_explain_sweep

    if sweep and not service:
        raise click.UsageError("--no-service is for the default run: --sweep never starts the service")
    common = {"methods": _methods(methods), "seed": seed, "data_dir": data_dir, "log": click.echo}
    if sweep:
        result = run_explain_sweep(settings.store_settings, pairs=100 if pairs is None else pairs, **common)
    else:
        result = run_explain_bench(
            settings.store_settings, pairs=500 if pairs is None else pairs, service=service, **common
        )
    _report(result, out_dir)


@_suite("all")
@click.pass_context
def all_command(ctx, settings, out_dir, data_dir) -> None:
    """Every suite but scale, each with its defaults: search, embed, rerank,
    modes, quantization and serve (tens of minutes on 2 cores)."""
    if shutil.which("wrk") is None:  # before the other suites' tens of minutes, not after
        raise click.UsageError(NO_WRK)
    for name in SUITES:
        ctx.invoke(command.commands[name], out_dir=out_dir, data_dir=data_dir)


def _serve_methods(text: str) -> tuple[str, ...]:
    """--methods of the serve suite: a method, or a method with a rerank stage (siamese+sift)."""
    from fmsearch.models.registry import check_method, check_stage

    names = tuple(m.strip() for m in text.split(",") if m.strip())
    for name in names:
        first, _, rerank = name.partition("+")
        check_method(first)
        if rerank:
            check_stage(rerank)
    if not names:
        raise click.UsageError(f"--methods names no method: {text!r}")
    return names


def _scale_sizes(text: str | None) -> tuple[int, ...]:
    from fmsearch.evaluation.bench.scale import SIZES

    sizes = parse_numbers(text, "--sizes", int) or SIZES
    if any(not 1000 <= s <= 10_000_000 for s in sizes) or len(set(sizes)) < len(sizes):
        raise click.UsageError("--sizes: scale gallery sizes must be distinct and between 1000 and 10000000")
    return sizes


def _kinds(text: str) -> tuple[str, ...]:
    from fmsearch.evaluation.bench.galleries import KINDS

    kinds = _names(text) or ()
    if not kinds or set(kinds) - set(KINDS):
        raise click.UsageError(f"--kinds: choose from {', '.join(KINDS)}, got {text!r}")
    return kinds


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def _methods(text: str | None) -> tuple[str, ...] | None:
    """--methods as names (None: the suite's own default)."""
    from fmsearch.models.registry import check_method

    if text is None:
        return None
    names = tuple(check_method(m.strip()) for m in text.split(",") if m.strip())
    if not names:
        raise click.UsageError(f"--methods names no method: {text!r}")
    if len(set(names)) < len(names):
        raise click.UsageError(f"--methods names a method twice: {text!r}")
    return names
