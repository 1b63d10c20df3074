"""Micro-batching: concurrent searches of one kind run as one batch.

Query-time machinery for any face on an event loop (the service, and the
serve benchmark's bare reference endpoint, which must batch as the service
does for their ratio to mean anything). A request waits only while a batch
of its kind is running: everything that queued meanwhile becomes the next
batch, at once, with no added wait (in the probe that preceded the service,
this beat a fixed 2 ms wait: p99 19-23 ms against 40 ms at the same rate).
The batch runs in a thread, off the event loop; each request gets its own
answer, or its own error.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

#: the system name of the threads that run the blocking work (``top -H``, ``/proc/*/task/*/comm``)
WORK_THREAD = "fmsearch-work"


def work_executor() -> ThreadPoolExecutor:
    """The threads a worker runs its blocking work in (batches, single
    searches, images): two, so that a batch of one method never waits for
    another's; named :data:`WORK_THREAD` where the system allows."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix=WORK_THREAD, initializer=_name_thread)


def explain_executor() -> ThreadPoolExecutor:
    """The thread explanations run in (``POST /api/explain``): one, apart
    from :func:`work_executor`'s, so that an explanation (tens of ms for
    siamese, a second for the ensemble) never holds a search's thread;
    explanations wait for each other instead."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmsearch-explain")


def _name_thread() -> None:
    """Give this thread its system name (Linux), so that its CPU can be told apart."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(15, WORK_THREAD.encode(), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name only matters to the benchmark's CPU split
        threading.current_thread().name = WORK_THREAD


class MicroBatcher:
    """Runs ``run(key, items)`` over what queued for ``key`` while the
    previous batch of that key ran.

    Args:
        run: the blocking batch function: (key, items) -> one result per item.
        executor: where batches run (off the event loop).
        on_batch: called with (key, batch size) for each batch (metrics).
    """

    def __init__(
        self,
        run: Callable[[Hashable, Sequence[Any]], list[Any]],
        executor: Executor,
        on_batch: Callable[[Hashable, int], None] | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self._on_batch = on_batch
        self._queues: dict[Hashable, list[tuple[Any, asyncio.Future]]] = {}
        self._running: set[Hashable] = set()

    async def submit(self, key: Hashable, item: Any) -> Any:
        """Queue ``item`` under ``key``; returns its result (or raises its error)."""
        future = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((item, future))
        if key not in self._running:
            self._running.add(key)
            asyncio.get_running_loop().create_task(self._drain(key))
        return await future

    async def _drain(self, key: Hashable) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queues.get(key):
                batch = self._queues.pop(key)
                live = [(item, f) for item, f in batch if not f.done()]  # a cancelled request leaves the batch
                if not live:
                    continue
                if self._on_batch:
                    self._on_batch(key, len(live))
                try:
                    results = await loop.run_in_executor(self._executor, self._run, key, [i for i, _ in live])
                except Exception as err:  # noqa: BLE001 - the batch's error goes to each of its requests
                    results = [err] * len(live)
                for (_, future), result in zip(live, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running.discard(key)
