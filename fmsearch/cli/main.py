"""The ``fmsearch`` group and its global options."""

from __future__ import annotations

import click

from fmsearch import __version__, environment
from fmsearch.store.base import DEFAULT_TIMEOUT
from fmsearch.store.retry import DEFAULT_RETRIES
from fmsearch.store.schema import DEFAULT_PREFIX

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
    export_cmd,
    ingest_cmd,
    map_cmd,
    migrate_cmd,
    query_cmd,
    results_cmd,
    serve_cmd,
    train_cmd,
    validate_cmd,
)
from .common import Settings, read_key_file, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fmsearch")
@click.option("--home", envvar=environment.HOME, type=click.Path(file_okay=False), default=None,
              help=f"Embedded store directory [env {environment.HOME}; default ./.fmsearch].")
@click.option("--qdrant-url", envvar=environment.QDRANT_URL, default=None,
              help=f"Use a Qdrant server instead of the embedded store [env {environment.QDRANT_URL}].")
@click.option("--qdrant-api-key", envvar=environment.QDRANT_API_KEY, default=None, show_default=False,
              help=f"API key of the server [env {environment.QDRANT_API_KEY}]; never printed.")
@click.option("--qdrant-api-key-file", envvar=environment.QDRANT_API_KEY_FILE, type=click.Path(dir_okay=False),
              default=None, help=f"Read the API key from this file instead [env {environment.QDRANT_API_KEY_FILE}] "
              "(e.g. a mounted secret).")
@click.option("--prefer-grpc/--no-prefer-grpc", envvar=environment.QDRANT_PREFER_GRPC, default=False,
              show_default=True, help=f"Talk to the server over gRPC (port 6334) [env {environment.QDRANT_PREFER_GRPC}].")
@click.option("--retries", default=DEFAULT_RETRIES, show_default=True, type=click.IntRange(0, 10),
              help="Server requests failing transiently (connection, timeout, 429/5xx) are retried this many times.")
@click.option("--prefix", envvar=environment.PREFIX, default=DEFAULT_PREFIX, show_default=True,
              help=f"Collection name prefix [env {environment.PREFIX}].")
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=click.IntRange(1, 3600), help="Server request timeout, seconds.")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
@click.pass_context
def main(ctx: click.Context, home, qdrant_url, qdrant_api_key, qdrant_api_key_file, prefer_grpc, retries, prefix, timeout,
         verbose) -> None:
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
    settings = Settings(home, qdrant_url, qdrant_api_key, prefix, timeout, retries=retries, prefer_grpc=prefer_grpc)
    ctx.obj = settings
    ctx.call_on_close(settings.close)


for module in (data_cmd, train_cmd, combine_cmd, validate_cmd, export_cmd, ingest_cmd, add_cmd, delete_cmd, query_cmd, compare_cmd, evaluate_cmd, duplicates_cmd, map_cmd, results_cmd, collections_cmd, bench_cmd, serve_cmd,
               migrate_cmd):
    main.add_command(module.command)
