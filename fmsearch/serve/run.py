"""Running the service: granian (the default) or uvicorn, one process or several.

Several worker processes each load their own serving copy of the
collections (an embedded shard is open in one process at a time) and share
the listening socket. granian is the default because it spreads persistent
connections across its workers (16 connections split 6/10, 8/8, 9/7 here)
where uvicorn's workers sometimes took most of them (11/5, 13/3, 2/14),
leaving one process, bound by its Python lock, to do the work while a core
idles; when they split evenly uvicorn was the faster of the two (see
docs/serve.md). ``fmsearch bench serve`` measures both; uvicorn stays as the
alternative because it wins a case users meet (many clients opening and
closing connections, where an uneven split evens out: 1.08-1.32x in seven
of eight runs of 2026-11-25).

Either server finishes the application's start-up (the service's load)
before its worker accepts a connection, so no request meets a worker that
is still loading.

SIGINT or SIGTERM stops every worker, each closing its store (and removing
its copy) on the way out, and the command exits 0: a clean stop, not a crash.
"""

from __future__ import annotations

import os
import signal
import sys

from fmsearch.serve.config import CONFIG_ENV, ServeConfig

SERVERS = ("granian", "uvicorn")


def serve(
    config: ServeConfig,
    factory: str,
    *,
    server: str = "granian",
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
) -> None:
    """Serve the application ``factory`` makes (``"module:function"``, called
    in each worker with no arguments; it reads ``config`` from the
    environment) until SIGINT or SIGTERM."""
    os.environ[CONFIG_ENV] = config.to_env()  # what each worker reads (its process inherits it)
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            factory,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            log_access=access_log,
        ).serve()
        return
    import uvicorn

    # uvicorn re-raises the stopping signal once it has shut down; answer it with a clean exit
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped)
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, log_level="info", access_log=access_log)


def _stopped(signum, frame) -> None:
    sys.exit(0)
