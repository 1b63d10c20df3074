"""``fmsearch serve``: the search service over HTTP."""

from __future__ import annotations

import logging

import click

from fmsearch.serve.config import DEFAULT_MAX_UPLOAD

from .common import data_dir_option, domain_errors, pass_settings, read_key_file


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (localhost unless told).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--methods", default=None, help="Methods to serve, comma-separated [default: every ingested one].")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes sharing the port, each with its own copy of the collections.")
@click.option("--api-key", envvar="FMSEARCH_API_KEY", default=None,
              help="Require this key in the X-API-Key header of every /api request [env FMSEARCH_API_KEY].")
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None, help="Read the API key from this file.")
@click.option("--cors-origin", "cors_origins", multiple=True, help="An origin browsers may call from (repeatable).")
@click.option("--max-upload", "max_upload_bytes", type=int, default=DEFAULT_MAX_UPLOAD, show_default=True,
              help="Largest upload in bytes.")
@click.option("--request-timeout", "request_timeout_s", type=float, default=30.0, show_default=True,
              help="Seconds before a request is cancelled (503).")
@click.option("--batching/--no-batching", default=True, show_default=True,
              help="Embed and search concurrent plain searches of one method together.")
@click.option("--threads", type=int, default=None, help="ONNX Runtime threads per inference [default: one per core].")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request line.")
@data_dir_option
@pass_settings
@domain_errors
def command(settings, host, port, methods, workers, api_key, api_key_file, cors_origins, max_upload_bytes,
            request_timeout_s, batching, threads, access_log, data_dir) -> None:
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
    names = None if methods is None else tuple(check_method(m.strip()) for m in methods.split(",") if m.strip())
    config = ServeConfig(home=settings.home, qdrant_url=settings.qdrant_url, qdrant_api_key=settings.qdrant_api_key,
                         prefix=settings.prefix, timeout=settings.timeout, retries=settings.retries, data_dir=data_dir,
                         methods=names, api_key=api_key, cors_origins=tuple(cors_origins),
                         max_upload_bytes=max_upload_bytes, request_timeout_s=request_timeout_s, batching=batching,
                         threads=threads)
    logging.getLogger("fmsearch").setLevel(logging.INFO)  # what is loaded and what is skipped, and why
    click.echo(f"fmsearch serve on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}); "
               f"docs at http://{host}:{port}/docs", err=True)
    serve(config, host=host, port=port, workers=workers, access_log=access_log)
