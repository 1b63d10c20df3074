"""Running the service: uvicorn, in one process or several.

Several worker processes each load their own serving copy of the
collections (an embedded shard is open in one process at a time) and share
the listening socket; uvicorn stops them all on SIGINT/SIGTERM, and each
closes its store on the way out.
"""

from __future__ import annotations

import logging
import os

from fmsearch.serve.config import CONFIG_ENV, ServeConfig

logger = logging.getLogger(__name__)


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info", access_log: bool = False) -> None:
    """Serve until stopped (SIGINT/SIGTERM)."""
    import uvicorn

    if workers == 1:
        from fmsearch.serve.app import create_app

        uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, access_log=access_log)
        return
    os.environ[CONFIG_ENV] = config.to_env()  # what each worker reads (its process inherits it)
    uvicorn.run("fmsearch.serve.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=access_log)
