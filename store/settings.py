"""The store settings, one value, and the one place that picks a backend.

Which store a process uses is decided once, where the user names it (the
CLI's global options, ``fmsearch serve``'s, a Python caller), as a
:class:`StoreSettings`; the value is then passed whole: the CLI's settings
and the service's configuration embed it, the service's worker processes
receive it in their configuration, and :meth:`StoreSettings.open` opens the
store it selects through :func:`open_store`.

Only the backends are imported lazily here (qdrant-client for a server), so
nothing imports in a circle: the backends know only :mod:`~fmsearch.store.base`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmsearch import environment
from fmsearch.errors import InvalidArgumentError
from fmsearch.store.base import DEFAULT_TIMEOUT, Store
from fmsearch.store.retry import DEFAULT_RETRIES
from fmsearch.store.schema import DEFAULT_PREFIX

#: the embedded store's directory when neither ``home`` nor ``FMSEARCH_HOME`` names one
DEFAULT_HOME = ".fmsearch"
MAX_RETRIES = 10
MAX_TIMEOUT = 3600
#: a collection prefix: the start of a collection name and of its directory in the embedded store
_PREFIX = re.compile(r"[A-Za-z0-9_-]*")


def default_home() -> Path:
    """``$FMSEARCH_HOME``, else ``./.fmsearch``."""
    return Path(environment.home() or DEFAULT_HOME)


@dataclass(frozen=True)
class StoreSettings:
    """Which store to open and how to talk to it; validated when made.

    Attributes:
        url: a Qdrant server URL (``http://`` or ``https://``) selects the
            server backend; ``local:PATH`` qdrant-client's local mode at PATH
            (a test stand-in for a server: slow, not for real use); None the
            embedded Qdrant Edge store.
        api_key: the server's API key (never printed, logged or in a repr).
        prefer_grpc: talk to the server over gRPC (port 6334) where the client can.
        retries: server requests that fail transiently (connection errors,
            timeouts, 429/5xx) are sent again up to this many times, with
            exponential backoff and jitter (0-10).
        timeout: seconds before a server request fails (1-3600).
        prefix: the start of every collection name (letters, digits, ``_``, ``-``).
        home: the embedded store's directory (None: :func:`default_home`,
            read when the store is opened).
    """

    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    prefer_grpc: bool = False
    retries: int = DEFAULT_RETRIES
    timeout: int = DEFAULT_TIMEOUT
    prefix: str = DEFAULT_PREFIX
    home: str | None = None

    def __post_init__(self) -> None:
        # unset and empty (an empty environment variable) mean the same; a path is kept as text
        for name in ("url", "api_key", "home"):
            value = getattr(self, name)
            object.__setattr__(self, name, os.fspath(value) if value else None)
        if self.url is not None and not self.url.startswith(("http://", "https://", "local:")):
            raise InvalidArgumentError(
                f"a Qdrant URL starts with http:// or https:// (or local:PATH), got {self.url!r}"
            )
        if not _is_int(self.retries) or not 0 <= self.retries <= MAX_RETRIES:
            raise InvalidArgumentError(f"retries must be 0-{MAX_RETRIES}, got {self.retries!r}", param="retries")
        if not _is_int(self.timeout) or not 1 <= self.timeout <= MAX_TIMEOUT:
            raise InvalidArgumentError(
                f"timeout must be 1-{MAX_TIMEOUT} seconds, got {self.timeout!r}", param="timeout"
            )
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise InvalidArgumentError(
                f"prefix must be letters, digits, '_' and '-', got {self.prefix!r}", param="prefix"
            )
        object.__setattr__(self, "prefer_grpc", bool(self.prefer_grpc))

    def open(self, *, lock_timeout: float | None = None) -> Store:
        """The store these settings select (:func:`open_store` picks the backend).

        Args:
            lock_timeout: embedded store: seconds to wait for a collection
                another process holds (default ``FMSEARCH_LOCK_TIMEOUT``, else 10).

        Returns:
            An open store; close it (or use it as a context manager).
        """
        return open_store(self, lock_timeout=lock_timeout)

    def cli_args(self) -> list[str]:
        """The ``fmsearch`` global options that select this store, for a
        child process (the API key goes by ``QDRANT_API_KEY`` in its
        environment, never as an argument)."""
        return [
            *(["--home", self.home] if self.home else []),
            *(["--qdrant-url", self.url] if self.url else []),
            "--prefix",
            self.prefix,
            "--timeout",
            str(self.timeout),
            "--retries",
            str(self.retries),
            *(["--prefer-grpc"] if self.prefer_grpc else []),
        ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def open_store(
    settings: StoreSettings | str | None = None, *, lock_timeout: float | None = None, **fields: Any
) -> Store:
    """Open the store the settings select: the one place that picks the backend.

    Args:
        settings: the store settings, or, as a shorthand, their ``url``
            (None: the embedded store) with the other fields as keywords.
        lock_timeout: embedded store: seconds to wait for a collection that
            another process holds (default ``FMSEARCH_LOCK_TIMEOUT``, else 10).
        **fields: :class:`StoreSettings` fields (``api_key``, ``home``,
            ``timeout``, ``retries``, ``prefer_grpc``), with a url or None.

    Returns:
        An open store; close it (or use it as a context manager).

    Raises:
        InvalidArgumentError: a field out of its range, or fields given
            beside a StoreSettings.
    """
    if isinstance(settings, StoreSettings):
        if fields:
            raise InvalidArgumentError(f"give the store settings or their fields, not both ({', '.join(fields)})")
    else:
        settings = StoreSettings(url=settings, **fields)
    if settings.url:
        from fmsearch.store.server import (
            ServerStore,  # imports qdrant-client: only for a server
        )

        if settings.url.startswith("local:"):
            return ServerStore.local(settings.url.removeprefix("local:"))
        return ServerStore(
            settings.url,
            api_key=settings.api_key,
            timeout=settings.timeout,
            retries=settings.retries,
            prefer_grpc=settings.prefer_grpc,
        )
    from fmsearch.store.edge import EdgeStore

    return EdgeStore(Path(settings.home) if settings.home else default_home(), lock_timeout=lock_timeout)
