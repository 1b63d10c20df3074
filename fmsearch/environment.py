"""Every environment variable fmsearch reads, named once.

A constant per name, for the CLI's ``envvar=`` options, and an accessor per
variable the library itself reads, so that no other module looks at
``os.environ`` (``tests/test_architecture.py`` checks this). The table in
docs/development.md (environment variables) lists each one: what it sets,
its default, who reads it.

Setting a variable for a child process (the service's worker configuration)
is a write, not a read, and stays where the child is started.
"""

from __future__ import annotations

import os

# The store (the CLI's global options; FMSEARCH_HOME is also the library's default home)
HOME = "FMSEARCH_HOME"
QDRANT_URL = "QDRANT_URL"
QDRANT_API_KEY = "QDRANT_API_KEY"
QDRANT_API_KEY_FILE = "QDRANT_API_KEY_FILE"
QDRANT_PREFER_GRPC = "QDRANT_PREFER_GRPC"
PREFIX = "FMSEARCH_PREFIX"
LOCK_TIMEOUT = "FMSEARCH_LOCK_TIMEOUT"
# The FMNIST files
FMNIST_DIR = "FMNIST_DIR"
FMNIST_MIRROR = "FMNIST_MIRROR"
CACHE = "FMSEARCH_CACHE"
XDG_CACHE_HOME = "XDG_CACHE_HOME"
# TensorFlow's logs
TF_LOGS = "FMSEARCH_TF_LOGS"
TF_CPP_MIN_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
# The service
SERVE_API_KEY = "FMSEARCH_API_KEY"
SERVE_CONFIG = "FMSEARCH_SERVE_CONFIG"
REFERENCE_CONFIG = "FMSEARCH_REFERENCE_CONFIG"

#: every name above, in the order of the docs' table
NAMES = (
    HOME,
    QDRANT_URL,
    QDRANT_API_KEY,
    QDRANT_API_KEY_FILE,
    QDRANT_PREFER_GRPC,
    PREFIX,
    LOCK_TIMEOUT,
    FMNIST_DIR,
    FMNIST_MIRROR,
    CACHE,
    XDG_CACHE_HOME,
    TF_LOGS,
    TF_CPP_MIN_LOG_LEVEL,
    SERVE_API_KEY,
    SERVE_CONFIG,
    REFERENCE_CONFIG,
)


def _get(name: str) -> str | None:
    """The variable's value; unset and empty read alike, as None."""
    return os.environ.get(name) or None


def home() -> str | None:
    """The embedded store's directory (``FMSEARCH_HOME``), if set."""
    return _get(HOME)


def lock_timeout() -> float | None:
    """Seconds to wait for a collection another process holds
    (``FMSEARCH_LOCK_TIMEOUT``, at least 0); None when unset or not a number."""
    value = _get(LOCK_TIMEOUT)
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def fmnist_dir() -> str | None:
    """The folder holding the four FMNIST files (``FMNIST_DIR``), if set."""
    return _get(FMNIST_DIR)


def fmnist_mirror() -> str | None:
    """The base URL to download FMNIST from (``FMNIST_MIRROR``), if set."""
    return _get(FMNIST_MIRROR)


def cache_dir() -> str | None:
    """Where downloaded FMNIST files go (``FMSEARCH_CACHE``), if set."""
    return _get(CACHE)


def xdg_cache_home() -> str | None:
    """The user's cache base (``XDG_CACHE_HOME``), if set."""
    return _get(XDG_CACHE_HOME)


def tf_logs() -> bool:
    """Whether TensorFlow's start-up output is shown (``FMSEARCH_TF_LOGS`` set)."""
    return _get(TF_LOGS) is not None


def serve_config() -> str | None:
    """The service's configuration a worker process inherits
    (``FMSEARCH_SERVE_CONFIG``, JSON), if set."""
    return _get(SERVE_CONFIG)


def reference_config() -> str | None:
    """The serve benchmark's reference endpoint's settings a worker inherits
    (``FMSEARCH_REFERENCE_CONFIG``, JSON), if set."""
    return _get(REFERENCE_CONFIG)


def for_child(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: this one's, with ``extra`` set."""
    return {**os.environ, **extra}


#: the variables that pick a store (a child told which store on its command line drops them)
STORE_NAMES = (HOME, QDRANT_URL, QDRANT_API_KEY, QDRANT_API_KEY_FILE, QDRANT_PREFER_GRPC, PREFIX, LOCK_TIMEOUT)


def without_store() -> dict[str, str]:
    """The environment of a child process that must use the store its
    command line names: this one's, less the variables that pick a store."""
    return {k: v for k, v in os.environ.items() if k not in STORE_NAMES}


def quiet_tensorflow() -> None:
    """Quiet TensorFlow's C++ start-up log in this process and its children
    (``TF_CPP_MIN_LOG_LEVEL=2``) unless the user chose a level. For the CLI
    only: the library never sets a variable."""
    os.environ.setdefault(TF_CPP_MIN_LOG_LEVEL, "2")
