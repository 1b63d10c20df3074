"""Inter-process locks for the embedded store, and an atomic directory swap.

A Qdrant Edge shard can be open in one process at a time (its write-ahead
log is exclusive). Each collection directory holds a ``.lock`` file; a
process takes an exclusive ``flock`` on it before opening the shard and keeps
it until it closes the store. Another process waits up to a timeout, then
fails with a message naming the lock and its holder (pid, command, since
when), which the holder writes into the file. The kernel drops a flock when
its process dies, even by ``kill -9``, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fmsearch import environment
from fmsearch.errors import StoreLockedError

LOCK_FILE = ".lock"
#: Seconds a process waits for a collection another process holds
#: (``FMSEARCH_LOCK_TIMEOUT``).
DEFAULT_LOCK_TIMEOUT = 10.0
_POLL_S = 0.05


def lock_timeout() -> float:
    """``FMSEARCH_LOCK_TIMEOUT`` seconds, else :data:`DEFAULT_LOCK_TIMEOUT`."""
    value = environment.lock_timeout()
    return DEFAULT_LOCK_TIMEOUT if value is None else value


class DirLock:
    """An exclusive flock on ``<directory>/.lock``."""

    def __init__(self, directory: Path, what: str) -> None:
        self.path = Path(directory) / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    def acquire(self, timeout: float | None = None) -> DirLock:
        """Wait up to ``timeout`` seconds (default :func:`lock_timeout`).

        Raises:
            StoreLockedError: another process holds it; names the holder.
        """
        timeout = lock_timeout() if timeout is None else timeout
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise StoreLockedError(
                        f"{self.what} is in use by another process ({holder}); lock {self.path}; "
                        f"waited {timeout:g} s (FMSEARCH_LOCK_TIMEOUT); retry when it has finished"
                    ) from None
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()}: {_command()} since {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it, without waiting."""
        try:
            self.acquire(timeout=0)
        except (StoreLockedError, FileNotFoundError):
            return False
        return True

    def same_file(self, other: Path) -> bool:
        """Whether ``other`` is the file this lock holds (it was not swapped away)."""
        if self._fd is None:
            return False
        try:
            a, b = os.fstat(self._fd), os.stat(other)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 400, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def _command() -> str:
    argv = [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv and sys.argv[0] else ["python"]
    return " ".join(argv)[:200]


_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``):
    at every instant each name points at one complete directory. Returns
    False where the call is not available (the caller falls back)."""
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd = -100
    rc = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True
