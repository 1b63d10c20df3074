"""Bounded retries for a Qdrant client: transient failures (connection
errors, timeouts, 429 and 5xx answers) are sent again with exponential
backoff and full jitter; anything else fails at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_RETRIES = 3
BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0
_RETRY_STATUS = {429, 500, 502, 503, 504}
#: the attribute a retried error carries: how many attempts it took
_ATTEMPTS = "fmsearch_attempts"


def is_transient(err: BaseException) -> bool:
    """Whether a failure may pass if the same request is sent again."""
    from qdrant_client.http.exceptions import (
        ResponseHandlingException,
        UnexpectedResponse,
    )

    if isinstance(err, UnexpectedResponse):
        return err.status_code in _RETRY_STATUS
    if isinstance(err, (ResponseHandlingException, ConnectionError, TimeoutError)):
        return True
    module = type(err).__module__.split(".")[0]
    if module in ("httpx", "httpcore"):
        return True
    if module == "grpc":
        code = getattr(err, "code", lambda: None)()
        return getattr(code, "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
    return False


class RetryingClient:
    """The client, each of whose calls is retried on transient failures
    (bounded; exponential backoff with full jitter, capped)."""

    def __init__(self, client: Any, retries: int, base_delay: float = BACKOFF_BASE_S) -> None:
        self._client = client
        self._retries = retries
        self._base = base_delay

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._client, attr)
        if attr.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            attempt = 1
            while True:
                try:
                    return value(*args, **kwargs)
                except Exception as err:
                    if attempt > self._retries or not is_transient(err):
                        with contextlib.suppress(AttributeError):
                            setattr(err, _ATTEMPTS, attempt)
                        raise
                    delay = random.uniform(0, min(_BACKOFF_CAP_S, self._base * 2 ** (attempt - 1)))
                    logger.warning(
                        "%s failed (%s); retry %d of %d in %.2f s",
                        attr,
                        type(err).__name__,
                        attempt,
                        self._retries,
                        delay,
                    )
                    time.sleep(delay)
                    attempt += 1

        return call


def attempts_note(err: BaseException) -> str:
    """' after N attempts' for an error that was retried, else ''."""
    n = getattr(err, _ATTEMPTS, 1)
    return f" after {n} attempts" if n > 1 else ""
