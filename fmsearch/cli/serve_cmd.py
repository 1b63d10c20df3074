"""``fmsearch serve``: the search service over HTTP."""

from __future__ import annotations

import logging
import os
import socket

import click

from fmsearch import environment
from fmsearch.serve.config import DEFAULT_MAX_UPLOAD

from .common import data_dir_option, domain_errors, graph_search_options, pass_settings, read_key_file, setup_logging


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (localhost unless told).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--methods", default=None, help="Methods to serve, comma-separated [default: every ingested one].")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes sharing the port, each with its own copy of the collections.",
)
@click.option(
    "--api-key",
    envvar=environment.SERVE_API_KEY,
    default=None,
    help=f"Require this key in the X-API-Key header of every /api request [env {environment.SERVE_API_KEY}].",
)
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None, help="Read the API key from this file.")
@click.option("--cors-origin", "cors_origins", multiple=True, help="An origin browsers may call from (repeatable).")
@click.option(
    "--max-upload",
    "max_upload_bytes",
    type=int,
    default=DEFAULT_MAX_UPLOAD,
    show_default=True,
    help="Largest upload in bytes.",
)
@click.option(
    "--request-timeout",
    "request_timeout_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds before a request is cancelled (503).",
)
@click.option(
    "--batching/--no-batching",
    default=True,
    show_default=True,
    help="Embed and search concurrent plain searches of one method together.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=None,
    help="ONNX Runtime threads per inference in each worker [default: the cores shared out among the workers].",
)
@click.option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default="granian",
    show_default=True,
    help="The HTTP server (granian spreads connections evenly across workers).",
)
@click.option(
    "--insight",
    "insight_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where `fmsearch map` and `fmsearch duplicates` wrote: the page's map and duplicates [default eval-results].",
)
@graph_search_options
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request line.")
@data_dir_option
@pass_settings
@domain_errors
def command(
    settings,
    host,
    port,
    methods,
    workers,
    api_key,
    api_key_file,
    cors_origins,
    max_upload_bytes,
    request_timeout_s,
    batching,
    threads,
    server,
    insight_dir,
    hnsw_ef,
    acorn,
    access_log,
    data_dir,
) -> None:
    """Serve searches over HTTP until stopped (Ctrl-C or SIGTERM).

    Loads every ingested method's model once, answers JSON (OpenAPI at
    /openapi.json, interactive docs at /docs). Read-only: nothing it serves
    writes a collection.
    """
    from fmsearch.models.registry import check_method
    from fmsearch.serve.config import ServeConfig
    from fmsearch.serve.run import serve

    if api_key_file:
        api_key = read_key_file(api_key_file)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    names = None if methods is None else tuple(check_method(m.strip()) for m in methods.split(",") if m.strip())
    _preflight(settings, names, host, port)
    config = ServeConfig(
        store_settings=settings.store_settings,
        data_dir=data_dir,
        methods=names,
        api_key=api_key,
        cors_origins=tuple(cors_origins),
        max_upload_bytes=max_upload_bytes,
        request_timeout_s=request_timeout_s,
        batching=batching,
        threads=threads,
        hnsw_ef=hnsw_ef,
        acorn=acorn,
        **({"insight_dir": insight_dir} if insight_dir else {}),
    )
    logging.getLogger("fmsearch").setLevel(logging.INFO)  # what is loaded and what is skipped, and why
    click.echo(
        f"fmsearch serve on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}); "
        f"docs at http://{host}:{port}/docs",
        err=True,
    )
    serve(
        config, f"{__name__}:service_app", server=server, host=host, port=port, workers=workers, access_log=access_log
    )


def _preflight(settings, methods: tuple[str, ...] | None, host: str, port: int) -> None:
    """Refuse at once, in one line, what would fail every request or the start:
    no wanted method ingested, an unreachable store, an address not free."""
    from fmsearch.models.registry import method_names
    from fmsearch.store import schema

    wanted = methods or method_names()
    store = settings.store()
    try:
        present, where = set(store.collections()), store.location
        galleries = any(store.info(n).metadata.get(schema.META_GALLERY) for n in present)
    finally:
        settings.close()  # each worker opens its own serving copy
    if not galleries and not any(schema.collection_name(m, settings.store_settings.prefix) in present for m in wanted):
        raise click.ClickException(
            f"nothing to serve: {', '.join(wanted)} {'is' if len(wanted) == 1 else 'are'} "
            f"not ingested in {where}; run `fmsearch ingest --method M` first"
        )
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind(address)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror or err}") from err


def service_app():
    """The application of one worker process (it reads its configuration
    from the environment), logging as the command does."""
    from fmsearch.serve.app import create_app
    from fmsearch.serve.config import ServeConfig

    _worker_logging()
    return create_app(ServeConfig.from_env())


def _worker_logging() -> None:
    """A worker process is started afresh: log what is loaded and skipped, as the parent does."""
    setup_logging(0)
    logging.getLogger("fmsearch").setLevel(logging.INFO)
