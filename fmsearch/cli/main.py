"""The ``fmsearch`` group and its global options."""

from __future__ import annotations

import click

from fmsearch import __version__, environment
from fmsearch.store.settings import MAX_RETRIES, MAX_TIMEOUT, StoreSettings

from . import (
    add_cmd,
    bench_cmd,
    collections_cmd,
    combine_cmd,
    compare_cmd,
    data_cmd,
    delete_cmd,
    duplicates_cmd,
    evaluate_cmd,
    explain_cmd,
    export_cmd,
    ingest_cmd,
    label_issues_cmd,
    map_cmd,
    migrate_cmd,
    query_cmd,
    results_cmd,
    serve_cmd,
    train_cmd,
    validate_cmd,
)
from .common import Settings, domain_errors, read_key_file, setup_logging

#: the store settings' defaults, as the options show them
_DEFAULTS = StoreSettings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fmsearch")
@click.option(
    "--home",
    envvar=environment.HOME,
    type=click.Path(file_okay=False),
    default=None,
    help=f"Embedded store directory [env {environment.HOME}; default ./.fmsearch].",
)
@click.option(
    "--qdrant-url",
    envvar=environment.QDRANT_URL,
    default=None,
    help=f"Use a Qdrant server instead of the embedded store [env {environment.QDRANT_URL}].",
)
@click.option(
    "--qdrant-api-key",
    envvar=environment.QDRANT_API_KEY,
    default=None,
    show_default=False,
    help=f"API key of the server [env {environment.QDRANT_API_KEY}]; never printed.",
)
@click.option(
    "--qdrant-api-key-file",
    envvar=environment.QDRANT_API_KEY_FILE,
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Read the API key from this file instead [env {environment.QDRANT_API_KEY_FILE}] (e.g. a mounted secret).",
)
@click.option(
    "--prefer-grpc/--no-prefer-grpc",
    envvar=environment.QDRANT_PREFER_GRPC,
    default=_DEFAULTS.prefer_grpc,
    show_default=True,
    help=f"Talk to the server over gRPC (port 6334) [env {environment.QDRANT_PREFER_GRPC}].",
)
@click.option(
    "--retries",
    type=int,
    default=_DEFAULTS.retries,
    show_default=True,
    help=f"Server requests failing transiently (connection, timeout, 429/5xx) are retried this many times "
    f"(0-{MAX_RETRIES}).",
)
@click.option(
    "--prefix",
    envvar=environment.PREFIX,
    default=_DEFAULTS.prefix,
    show_default=True,
    help=f"Collection name prefix [env {environment.PREFIX}].",
)
@click.option(
    "--timeout",
    type=int,
    default=_DEFAULTS.timeout,
    show_default=True,
    help=f"Server request timeout, seconds (1-{MAX_TIMEOUT}).",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
@click.pass_context
@domain_errors
def main(
    ctx: click.Context,
    home,
    qdrant_url,
    qdrant_api_key,
    qdrant_api_key_file,
    prefer_grpc,
    retries,
    prefix,
    timeout,
    verbose,
) -> None:
    """Image similarity search over Fashion-MNIST, backed by Qdrant.

    The store is embedded (Qdrant Edge, under --home) unless --qdrant-url
    names a server.
    """
    setup_logging(verbose)
    # TensorFlow's C++ start-up chatter (CPU instruction sets, oneDNN notices)
    # is not for a terminal; set TF_CPP_MIN_LOG_LEVEL=0 to see it again.
    environment.quiet_tensorflow()
    if qdrant_api_key_file:
        qdrant_api_key = read_key_file(qdrant_api_key_file)
    settings = Settings(
        StoreSettings(
            url=qdrant_url,
            api_key=qdrant_api_key,
            prefer_grpc=prefer_grpc,
            retries=retries,
            timeout=timeout,
            prefix=prefix,
            home=home,
        )
    )
    ctx.obj = settings
    ctx.call_on_close(settings.close)


for module in (
    data_cmd,
    train_cmd,
    combine_cmd,
    validate_cmd,
    export_cmd,
    ingest_cmd,
    add_cmd,
    delete_cmd,
    query_cmd,
    compare_cmd,
    explain_cmd,
    evaluate_cmd,
    duplicates_cmd,
    label_issues_cmd,
    map_cmd,
    results_cmd,
    collections_cmd,
    bench_cmd,
    serve_cmd,
    migrate_cmd,
):
    main.add_command(module.command)
