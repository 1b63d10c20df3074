"""A real `fmsearch serve` process for the tests (the service's and the page's)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`fmsearch serve` in a subprocess on a free loopback port."""

    def __init__(self, home: Path, *args: str, tmp: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **({"TMPDIR": str(tmp)} if tmp else {})}  # where the serving copies go
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fmsearch", "--home", str(home), "serve", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def wait_ready(self, workers: int = 1, timeout: float = 90) -> None:
        self.wait_ready_with({}, workers, timeout)

    def wait_ready_with(self, headers: dict[str, str], workers: int = 1, timeout: float = 90) -> None:
        """Until every worker (each loads its own copy) has answered ready."""
        import httpx

        deadline = time.monotonic() + timeout
        ready: set[int] = set()
        while len(ready) < workers:
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                r = httpx.get(f"{self.url}/api/health", headers=headers, timeout=2)
                if r.status_code == 200:
                    ready.add(r.json()["worker"])
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return code, self.proc.stderr.read() + self.proc.stdout.read()
