"""Serve suite (``fmsearch bench serve``): the service under load, over loopback.

Starts ``fmsearch serve`` in a subprocess and drives it from another process
with ``wrk`` (C, one thread, so the client costs little of the two cores it
shares with the server; its CPU is measured from ``os.wait4`` and reported)
posting real FMNIST test images as PNG uploads in multipart forms, with N
connections at once. Each point reports requests/s, p50/p95/p99 latency,
errors (non-2xx answers and socket errors), and the CPU the client and the
server used.

Measured in one run, on the configured store:

- the service (``--workers W``, micro-batching on): every method, both upload
  sizes (a test image as 28x28, and scaled to 280x280), every client count;
- micro-batching off, one worker, and uvicorn in place of granian, at 16
  clients: what each choice buys;
- the bare reference endpoint (:mod:`~fmsearch.evaluation.bench.reference`:
  decode, embed, search, nothing else), a process of its own with the same
  server and W, at 16 clients: the service's share of it is the ratio that
  holds on any machine;
- what a work thread's three steps (decode, embed, search) cost apart, the
  ceiling of the goals.

The service is a face above this room, so it is measured as a user meets
it: ``fmsearch serve`` started as a command, nothing of it imported. (A
command-line query's wall time, which this suite measured too until
2026-12, is the embed suite's.)
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.environment import for_child
from fmsearch.errors import FmsearchError, InvalidArgumentError
from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.reference import CONFIG_ENV, Loaded, reference_env
from fmsearch.evaluation.bench.timing import BenchResult, environment
from fmsearch.images.fmnist import load_split
from fmsearch.search.batcher import WORK_THREAD
from fmsearch.store import StoreSettings

logger = logging.getLogger(__name__)

#: what is measured (a method, or a method with the SIFT rerank: "siamese+sift")
METHODS = ("pixels", "autoencoder", "siamese", "siamese+sift")
CLIENTS = (1, 4, 16, 64)
SIZES = (28, 280)
#: the client count of the goals, the batching and worker comparisons and the reference
FOCUS_CLIENTS = 16
IMAGES = 200  # distinct test images, posted round-robin
BOUNDARY = "fmsearch-bench-boundary-7d2f"
#: the series the reference endpoint runs as (a process of its own, not ``fmsearch serve``)
REFERENCE = "reference"
#: what is compared with the service, each run beside it and driven in alternation with it:
#: (series, the options of its ``fmsearch serve``, its workers (None: the service's))
COMPARISONS = (
    (REFERENCE, (), None),
    ("no batching", ("--no-batching",), None),
    ("one worker", (), 1),
    ("uvicorn", ("--server", "uvicorn"), None),
)
#: the methods compared: the reference serves both, the other comparisons the first
FOCUS = ("siamese", "pixels")
ROUNDS = 3
#: the issue's goals at 16 clients on the 2-core machine: (method, size) -> (requests/s, p99 ms);
#: pixels is to be at least as fast as siamese
GOALS = {(method, 28): (3000, 20) for method in ("siamese", "pixels")} | {
    (method, 280): (1500, 25) for method in ("siamese", "pixels")
}
REFERENCE_SHARE = 0.9
#: where the server's CPU goes, by thread (see _Server.cpu_s)
CPU_PARTS = ("loop", "work", "http", "other")

#: wrk script: POST the prepared bodies round-robin; print the figures as JSON at the end
LUA = """
local requests, n = {}, 0
function init(args)
  local path, dir, boundary = args[1], args[2], args[3]
  local headers = {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}
  local bodies = io.open(dir .. "/bodies.bin", "rb")
  for line in io.lines(dir .. "/lengths.txt") do
    requests[#requests + 1] = wrk.format("POST", path, headers, bodies:read(tonumber(line)))
  end
  bodies:close()
end
function request()
  n = n % #requests + 1
  return requests[n]
end
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_serve_bench(
    served: StoreSettings,
    *,
    data_dir: str | None = None,
    methods: Sequence[str] = METHODS,
    clients: Sequence[int] = CLIENTS,
    sizes: Sequence[int] = SIZES,
    workers: int = 2,
    duration: float = 5.0,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Measure the service under load (see the module's docstring).

    Args:
        served: the store to serve (a Qdrant server's API key reaches the service's
            processes as ``QDRANT_API_KEY`` in their environment, never as an argument).
        data_dir: the FMNIST files.
        methods: what to measure (:data:`METHODS`).
        clients: concurrent connections per point.
        sizes: upload sides in pixels.
        workers: the service's processes.
        duration: seconds per point (after a one-second warm-up per method and size).

    Raises:
        InvalidArgumentError: wrk is not installed.
        FmsearchError: a server did not start, or does not serve a method asked for.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise InvalidArgumentError(
            "the serve benchmark drives the service with wrk, which is not installed (apt-get install wrk)"
        )
    images = load_split("test", data_dir).images[:IMAGES]
    plain = sorted({m.split("+")[0] for m in methods})
    with tempfile.TemporaryDirectory(prefix="fmsearch-serve-bench-") as tmp:
        bodies = {(m, s): _bodies(Path(tmp) / f"{m}-{s}", m, s, images) for m in methods for s in sizes}
        drive = _Driver(wrk, Path(tmp) / "drive.lua", duration)
        with _Server.service(served, methods, workers, data_dir=data_dir) as service:
            log(f"service: {workers} worker(s), ready in {service.ready_s:.1f} s")
            points = []
            for (method, size), folder in bodies.items():
                drive.warm(service, folder)
                for n in clients:
                    points.append(drive.point(service, folder, n, series="service", method=method, size=size))
                    log(_line(points[-1]))
            comparisons = []
            for series, options, count in COMPARISONS:
                if series == "one worker" and workers == 1:
                    continue
                wanted = [m for m in (FOCUS if series == REFERENCE else FOCUS[:1]) if m in plain] or plain[:1]
                start = _Server.reference if series == REFERENCE else _Server.service
                with start(served, wanted, count or workers, *options, data_dir=data_dir) as other:
                    for method in wanted:
                        for size in sizes:
                            comparisons.append(
                                _alternate(
                                    drive, service, other, bodies[method, size], series, method=method, size=size
                                )
                            )
                            log(_compared(comparisons[-1]))
    stages = _stage_costs(served, plain, images, sizes, data_dir)
    data = {
        "environment": environment(),
        "workers": workers,
        "duration_s": duration,
        "clients": list(clients),
        "sizes": list(sizes),
        "points": points,
        "comparisons": comparisons,
        "stages": stages,
        "reference_share": _shares(comparisons),
        "goals": _goals(points, stages),
    }
    return BenchResult("serve", data, _table(data))


def _alternate(
    drive: _Driver, service: _Server, other: _Server, folder: Path, series: str, **labels: Any
) -> dict[str, Any]:
    """The service and another server, driven in turn (:data:`ROUNDS` times each, so
    that the machine's drift falls on both), at :data:`FOCUS_CLIENTS`: the medians
    and the other's requests/s as a share of the service's."""
    drive.warm(service, folder)
    drive.warm(other, folder)
    rounds: dict[str, list[dict[str, Any]]] = {"service": [], series: []}
    for _ in range(ROUNDS):
        rounds["service"].append(drive.point(service, folder, FOCUS_CLIENTS, series="service", **labels))
        rounds[series].append(drive.point(other, folder, FOCUS_CLIENTS, series=series, **labels))
    medians = {
        name: {key: statistics.median(p[key] for p in runs) for key in ("rps", "p50_ms", "p99_ms")}
        for name, runs in rounds.items()
    }
    return {
        "series": series,
        **labels,
        "clients": FOCUS_CLIENTS,
        "workers": other.workers,
        "service": medians["service"],
        "other": medians[series],
        "errors": sum(p["errors"] for runs in rounds.values() for p in runs),
        "ratio": medians[series]["rps"] / medians["service"]["rps"],
        "rounds": rounds,
    }


# -- the load -------------------------------------------------------------------------------------


def _png(image: np.ndarray, size: int) -> bytes:
    """A test image as the PNG file a user uploads, ``size`` pixels a side."""
    from PIL import Image

    picture = Image.fromarray(image)
    if size != picture.width:
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    png = io.BytesIO()
    picture.save(png, format="PNG")
    return png.getvalue()


def _bodies(folder: Path, method: str, size: int, images: np.ndarray) -> Path:
    """Multipart bodies, one per test image (as a PNG of ``size`` pixels), for ``method``."""
    folder.mkdir(parents=True)
    name, _, rerank = method.partition("+")
    fields = {"method": name, "k": "10", **({"rerank": rerank} if rerank else {})}
    lengths = []
    with open(folder / "bodies.bin", "wb") as out:
        for image in images:
            body = b"".join(
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in fields.items()
            )
            body += (
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
                    f"Content-Type: image/png\r\n\r\n"
                ).encode()
                + _png(image, size)
                + f"\r\n--{BOUNDARY}--\r\n".encode()
            )
            out.write(body)
            lengths.append(len(body))
    (folder / "lengths.txt").write_text("".join(f"{n}\n" for n in lengths))
    return folder


class _Driver:
    """wrk, one thread, over loopback."""

    def __init__(self, wrk: str, script: Path, duration: float) -> None:
        script.write_text(LUA)
        self.wrk, self.script, self.duration = wrk, script, duration

    def warm(self, server: _Server, folder: Path) -> None:
        self._run(server, folder, FOCUS_CLIENTS, 1.0)

    def point(self, server: _Server, folder: Path, clients: int, **labels: Any) -> dict[str, Any]:
        cpu0 = server.cpu_s()
        t0 = time.perf_counter()
        figures, client_cpu = self._run(server, folder, clients, self.duration)
        wall = time.perf_counter() - t0
        cpu1 = server.cpu_s()
        split = None if cpu0 is None or cpu1 is None else {k: (cpu1[k] - cpu0[k]) / wall for k in CPU_PARTS}
        seconds = figures["duration_us"] / 1e6
        errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
        return {
            **labels,
            "clients": clients,
            "requests": figures["requests"],
            "errors": errors,
            "rps": figures["requests"] / seconds,
            "p50_ms": figures["p50_us"] / 1000,
            "p95_ms": figures["p95_us"] / 1000,
            "p99_ms": figures["p99_us"] / 1000,
            "max_ms": figures["max_us"] / 1000,
            "client_cpu": client_cpu / wall,
            "server_cpu": None if split is None else sum(split.values()),
            "server_cpu_by_thread": split,
            "workers": labels.get("workers", server.workers),
        }

    def _run(self, server: _Server, folder: Path, clients: int, seconds: float) -> tuple[dict[str, int], float]:
        """wrk's figures, and the CPU seconds it used (os.wait4)."""
        cmd = [
            self.wrk,
            "-t1",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(self.script),
            server.url,
            "--",
            "/api/search",
            str(folder),
            BOUNDARY,
        ]
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise FmsearchError(f"wrk failed ({proc.returncode}): {' '.join(text.split())[-300:]}")
        return json.loads(lines[-1]), usage.ru_utime + usage.ru_stime


class _Server:
    """A server in a subprocess on a free loopback port: ``fmsearch serve``
    (:meth:`service`) or the bare reference endpoint (:meth:`reference`)."""

    def __init__(
        self, name: str, cmd: Sequence[str], methods: Sequence[str], workers: int, env: dict[str, str]
    ) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.name, self.workers, self.env = name, workers, for_child(env)
        self.methods = [m.split("+")[0] for m in methods]
        self.rerank = any("+" in m for m in methods)
        self.cmd = [*cmd, "--port", str(self.port)]
        self.proc: subprocess.Popen | None = None
        self.ready_s = 0.0
        self.ready_workers: set[int] = set()

    @classmethod
    def service(
        cls, served: StoreSettings, methods: Sequence[str], workers: int, *options: str, data_dir: str | None = None
    ) -> _Server:
        """``fmsearch serve`` with ``options``, as a user starts it."""
        names = ",".join(dict.fromkeys(m.split("+")[0] for m in methods))
        cmd = [
            sys.executable,
            "-m",
            "fmsearch",
            *served.cli_args(),
            "serve",
            "--workers",
            str(workers),
            "--methods",
            names,
            *(["--data-dir", data_dir] if data_dir else []),
            *options,
        ]
        return cls(
            "`fmsearch serve`", cmd, methods, workers, {"QDRANT_API_KEY": served.api_key} if served.api_key else {}
        )

    @classmethod
    def reference(
        cls, served: StoreSettings, methods: Sequence[str], workers: int, *options: str, data_dir: str | None = None
    ) -> _Server:
        """The bare reference endpoint, with the server, workers and thread
        budget ``fmsearch serve`` would use (``options``: none)."""
        threads = max(1, (os.cpu_count() or 1) // workers)  # as `fmsearch serve` shares out the cores
        cmd = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--workers",
            str(workers),
            "--no-access-log",
            "--host",
            "127.0.0.1",
            *options,
            f"{__package__}.reference:create_app",
        ]
        return cls(
            "the reference endpoint",
            cmd,
            methods,
            workers,
            {CONFIG_ENV: reference_env(served, methods, threads=threads, data_dir=data_dir)},
        )

    def __enter__(self) -> _Server:
        self.log = tempfile.TemporaryFile()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        while not (ready := self._ready()):
            if ready is None or self.proc.poll() is not None or time.perf_counter() - t0 > 600:
                why = self._tail().removeprefix("Error: ")  # read before the log is closed
                self.__exit__(None, None, None)
                raise FmsearchError(f"{self.name} did not become ready: {why}")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - t0
        self._check_serves()
        return self

    def _check_serves(self) -> None:
        """Refuse to measure a method the service does not serve, saying why."""
        health = json.loads(urllib.request.urlopen(f"{self.url}/api/health", timeout=5).read())
        if "methods" not in health:  # the reference endpoint says only that it is ready
            return
        for method in self.methods:
            if method not in health["methods"]:
                self.__exit__(None, None, None)
                raise FmsearchError(
                    f"the service does not serve {method}: {health['skipped'].get(method, 'not loaded')}"
                )
        if self.rerank and not health["rerank"]:
            self.__exit__(None, None, None)
            raise FmsearchError("the service has no SIFT rerank stage: run `fmsearch ingest -m sift` first")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def _ready(self) -> bool | None:
        """Every worker (each loads its own copy) has answered ready (None: one
        answered that it failed, and its status is the log's last line)."""
        try:
            answer = json.loads(urllib.request.urlopen(f"{self.url}/api/health", timeout=2).read())
        except urllib.error.HTTPError as err:
            if err.code == 503:  # loading
                return False
            self.log.write(f"\n{json.loads(err.read()).get('status', err.code)}\n".encode())
            return None
        except OSError:  # not listening yet
            return False
        self.ready_workers.add(answer["worker"])
        return len(self.ready_workers) >= self.workers

    def _tail(self) -> str:
        """The log's last line (one line: the error)."""
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def cpu_s(self) -> dict[str, float] | None:
        """CPU seconds the server's processes (the parent and its workers) used
        so far, by thread: each worker's main thread (its event loop: the
        ASGI application), its work threads (:data:`WORK_THREAD`: decode,
        embed, search), the HTTP server's own threads, the rest (Linux /proc)."""
        if self.proc is None or not Path("/proc/self/stat").exists():
            return None
        tick = os.sysconf("SC_CLK_TCK")
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
        tree = {self.proc.pid}
        for _ in range(3):  # children, grandchildren
            tree |= {pid for pid, parent in parents.items() if parent in tree}
        out = dict.fromkeys(CPU_PARTS, 0.0)
        for pid in tree:
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    name = (task / "comm").read_text().strip()
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                part = (
                    "work"
                    if name == WORK_THREAD
                    else "loop"
                    if task.name == str(pid) and pid != self.proc.pid
                    else "http"
                    if name.startswith("tokio")
                    else "other"
                )
                out[part] += (int(fields[11]) + int(fields[12])) / tick
        return out


def _stage_costs(
    served: StoreSettings, methods: Sequence[str], images: np.ndarray, sizes: Sequence[int], data_dir: str | None
) -> dict[str, Any]:
    """CPU milliseconds per request of the three steps a work thread runs,
    measured here on one thread, the collections and encoders loaded as a
    worker loads them (its own serving copy, one encoder thread): decoding an
    upload of each size, and each method's encoder and store search on
    batches of 16 (the search asks for 10 hits with their payload fields, as
    a search request does; for a Qdrant server it is this process's share)."""

    def cpu_ms(fn: Callable[[], Any], items: int, repeat: int = 20) -> float:
        fn()
        t0 = time.process_time()
        for _ in range(repeat):
            fn()
        return 1000 * (time.process_time() - t0) / (repeat * items)

    out: dict[str, Any] = {"decode_ms": {}, "embed_ms": {}, "search_ms": {}}
    for size in sizes:
        pngs = [_png(image, size) for image in images[:16]]
        out["decode_ms"][str(size)] = cpu_ms(partial(_decode_all, pngs), len(pngs))
    batch = images[:16]
    loaded = Loaded(served, methods, threads=1, data_dir=data_dir)
    try:
        for method in methods:
            embedder = loaded.searcher.embedder(method)
            vectors = embedder.embed(batch)
            out["embed_ms"][method] = cpu_ms(partial(embedder.embed, batch), len(batch))
            out["search_ms"][method] = cpu_ms(partial(loaded.searcher.search_vectors, method, vectors, 10), len(batch))
    finally:
        loaded.close()
    return out


def _decode_all(pngs: list[bytes]) -> list:
    from fmsearch.images.files import image_from_bytes

    return [image_from_bytes(p) for p in pngs]


# -- figures ------------------------------------------------------------------------------------------


def _shares(comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The service's requests/s as a share of the bare reference's, driven in alternation."""
    return [
        {
            "method": c["method"],
            "size": c["size"],
            "service_rps": c["service"]["rps"],
            "reference_rps": c["other"]["rps"],
            "share": 1 / c["ratio"],
            "goal": REFERENCE_SHARE,
        }
        for c in comparisons
        if c["series"] == REFERENCE
    ]


def _goals(points: list[dict[str, Any]], stages: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals at :data:`FOCUS_CLIENTS`, each beside its ceiling: this machine's cores
    over the CPU of a work thread's three steps alone (no HTTP, no framework)."""
    out = []
    for p in points:
        goal = GOALS.get((p["method"], p["size"]))
        if p["series"] == "service" and p["clients"] == FOCUS_CLIENTS and goal:
            steps = [
                stages[key].get(k)
                for key, k in (("decode_ms", str(p["size"])), ("embed_ms", p["method"]), ("search_ms", p["method"]))
            ]
            out.append(
                {
                    "method": p["method"],
                    "size": p["size"],
                    "rps": p["rps"],
                    "p99_ms": p["p99_ms"],
                    "errors": p["errors"],
                    "goal_rps": goal[0],
                    "goal_p99_ms": goal[1],
                    "ceiling_rps": None if None in steps else 1000 * (os.cpu_count() or 1) / sum(steps),
                    "met": p["rps"] >= goal[0] and p["p99_ms"] <= goal[1] and p["errors"] == 0,
                }
            )
    return out


def _line(p: dict[str, Any]) -> str:
    return (
        f"{p['series']:<12} {p['method']:<13} {p['size']:>3}px x{p['clients']:<3} {p['rps']:7.0f} req/s  "
        f"p50 {p['p50_ms']:6.1f}  p99 {p['p99_ms']:6.1f} ms  errors {p['errors']}"
    )


def _compared(c: dict[str, Any]) -> str:
    return (
        f"{c['series']:<12} {c['method']:<13} {c['size']:>3}px x{c['clients']:<3} {c['other']['rps']:7.0f} req/s "
        f"against the service's {c['service']['rps']:.0f} in turn: {c['ratio']:.2f}x"
    )


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _upload(size: int) -> str:
    return f"{size}x{size}"


def _load_table(data: dict[str, Any]) -> str:
    return markdown.table(
        ["method", "upload", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "client CPU", "server CPU"],
        [
            [
                p["method"].replace("+", " + "),
                _upload(p["size"]),
                p["clients"],
                f"{p['rps']:.0f}",
                f"{p['p50_ms']:.1f}",
                f"{p['p95_ms']:.1f}",
                f"{p['p99_ms']:.1f}",
                p["errors"],
                _cpu(p["client_cpu"]),
                _cpu(p["server_cpu"]),
            ]
            for p in data["points"]
        ],
        "lllrrrrrrr",
    )


def _split_table(data: dict[str, Any]) -> str:
    return markdown.table(
        ["method", "upload", "req/s", "CPU ms/request", "event loop", "work threads", "HTTP server", "other"],
        [
            [
                p["method"].replace("+", " + "),
                _upload(p["size"]),
                f"{p['rps']:.0f}",
                f"{1000 * p['server_cpu'] / p['rps']:.2f}",
                *(f"{p['server_cpu_by_thread'][k] / p['server_cpu']:.0%}" for k in CPU_PARTS),
            ]
            for p in data["points"]
            if p["clients"] == FOCUS_CLIENTS and p["server_cpu"]
        ],
        "llrrrrrr",
    )


def _compared_table(data: dict[str, Any]) -> str:
    return markdown.table(
        [
            "against the service",
            "workers",
            "method",
            "upload",
            "req/s",
            "p99 ms",
            "service req/s",
            "service p99 ms",
            "ratio",
            "errors",
        ],
        [
            [
                c["series"],
                c["workers"],
                c["method"],
                _upload(c["size"]),
                f"{c['other']['rps']:.0f}",
                f"{c['other']['p99_ms']:.1f}",
                f"{c['service']['rps']:.0f}",
                f"{c['service']['p99_ms']:.1f}",
                f"{c['ratio']:.2f}x",
                c["errors"],
            ]
            for c in data["comparisons"]
        ],
        "lrllrrrrrr",
    )


def _shares_table(data: dict[str, Any]) -> str:
    return markdown.table(
        ["method", "upload", "service req/s", "reference req/s", "share", "goal"],
        [
            [
                s["method"],
                _upload(s["size"]),
                f"{s['service_rps']:.0f}",
                f"{s['reference_rps']:.0f}",
                f"{s['share']:.0%}",
                f">= {s['goal']:.0%}",
            ]
            for s in data["reference_share"]
        ],
        "llrrrr",
    )


def _goals_table(data: dict[str, Any]) -> str:
    return markdown.table(
        ["method", "upload", "req/s", "p99 ms", "goal", "met", "ceiling req/s"],
        [
            [
                g["method"],
                _upload(g["size"]),
                f"{g['rps']:.0f}",
                f"{g['p99_ms']:.1f}",
                f">= {g['goal_rps']} req/s, p99 <= {g['goal_p99_ms']} ms",
                "yes" if g["met"] else "no",
                "-" if g["ceiling_rps"] is None else f"{g['ceiling_rps']:.0f}",
            ]
            for g in data["goals"]
        ],
        "llrrllr",
    )


def _costs_table(data: dict[str, Any]) -> str:
    stages = data["stages"]
    return markdown.table(
        [
            "method",
            *(f"decode {_upload(int(k))}" for k in stages["decode_ms"]),
            "embed",
            "search",
            *(f"sum, {_upload(int(k))}" for k in stages["decode_ms"]),
        ],
        [
            [
                m,
                *(f"{d:.2f}" for d in stages["decode_ms"].values()),
                f"{e:.2f}",
                f"{stages['search_ms'][m]:.2f}",
                *(f"{d + e + stages['search_ms'][m]:.2f}" for d in stages["decode_ms"].values()),
            ]
            for m, e in stages["embed_ms"].items()
        ],
        "l" + "r" * (2 * len(stages["decode_ms"]) + 2),
    )


def _table(data: dict[str, Any]) -> str:
    load, split, compared, shares, goals, costs = (
        _load_table(data),
        _split_table(data),
        _compared_table(data),
        _shares_table(data),
        _goals_table(data),
        _costs_table(data),
    )
    return "\n\n".join(
        [
            f"The service ({data['workers']} workers, micro-batching on), wrk over loopback, {data['duration_s']:g} s "
            "per point; CPU in cores (the client's is wrk's own):",
            load,
            f"Where the service's CPU went at {FOCUS_CLIENTS} clients, by thread: the workers' event loops (HTTP to "
            "ASGI, FastAPI, parsing, validating, answering), their work threads (decode, embed, search), the HTTP "
            "server's own threads, the rest:",
            split,
            "What a work thread's three steps cost, CPU ms per request measured apart on one thread (the encoder "
            "and the search on batches of 16): the floor under the CPU per request above.",
            costs,
            f"Each choice against the service, the two driven in turn {ROUNDS} times at {FOCUS_CLIENTS} clients "
            "(medians; ratio: its req/s over the service's):",
            compared,
            "The service's share of the bare reference endpoint (decode, embed, search):",
            shares,
            f"Goals ({FOCUS_CLIENTS} clients), beside the ceiling of this machine's {os.cpu_count()} cores spent on "
            "the three steps alone:",
            goals,
        ]
    )
