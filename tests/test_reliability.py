"""Reliability: resumable ingest, atomic rebuilds, locks on the embedded
store, retries against a flaky server, and kill -9 fault tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from fmsearch.errors import StoreError, StoreLockedError
from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.models.pixels import PixelEmbedder
from fmsearch.store.edge import EdgeStore


class _Stop(Exception):
    pass


def _stop_after(batches: int):
    seen = []

    def progress(n: int) -> None:
        seen.append(n)
        if len(seen) >= batches:
            raise _Stop

    return progress


def _all_vectors(store, name: str, n: int) -> np.ndarray:
    return np.stack([r.vector for r in store.retrieve(name, list(range(n)), with_vectors=True)])


# -- resumable, idempotent ingest --------------------------------------------


def test_interrupted_ingest_resumes_to_exactly_the_clean_result(store, prefix, fmnist):
    name = prefix + "pixels"
    with pytest.raises(_Stop):
        ingest(store, get_embedder("pixels"), limit=600, batch_size=200, prefix=prefix, progress=_stop_after(2))
    assert store.count(name) == 400 and store.info(name).metadata["complete"] is False
    report = ingest(store, get_embedder("pixels"), limit=600, batch_size=200, prefix=prefix)
    assert (report.points_skipped, report.points_written, report.points_total) == (400, 200, 600)
    assert store.ids(name).tolist() == list(range(600))
    assert store.info(name).metadata["complete"] is True
    clean = ingest(store, get_embedder("pixels"), limit=600, prefix=prefix + "clean_")
    assert clean.points_written == 600
    assert np.array_equal(_all_vectors(store, name, 600), _all_vectors(store, prefix + "clean_pixels", 600))
    again = ingest(store, get_embedder("pixels"), limit=600, prefix=prefix)  # complete: nothing to embed
    assert (again.points_written, again.points_skipped, again.points_total) == (0, 600, 600)


def test_overlapped_ingest_equals_one_after_the_other(store, prefix, fmnist):
    """Writing a batch while the next is embedded stores exactly what the
    one-after-the-other baseline stores: the same ids, vectors and payloads."""
    a = ingest(store, get_embedder("pixels"), limit=550, batch_size=100, prefix=prefix)
    b = ingest(store, get_embedder("pixels"), limit=550, batch_size=100, prefix=prefix + "serial_", overlap=False)
    assert (a.points_written, b.points_written) == (550, 550) and a.seconds_load > 0 and b.seconds_load > 0
    ids = list(range(550))
    one, two = (store.retrieve(n + "pixels", ids, with_vectors=True) for n in (prefix, prefix + "serial_"))
    assert [r.id for r in one] == [r.id for r in two] == ids
    assert all(np.array_equal(x.vector, y.vector) and x.payload == y.payload for x, y in zip(one, two, strict=True))


def test_a_failed_write_stops_the_overlapped_ingest(store, prefix, fmnist, monkeypatch):
    """The third batch's write fails on the writer thread: the ingest raises
    that error, the batch embedded meanwhile is never sent, the two stored
    batches stay, and a rerun resumes to the full gallery."""
    upsert, calls = store.upsert, []

    def failing(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise StoreError("disk full")
        return upsert(*args, **kwargs)

    monkeypatch.setattr(store, "upsert", failing)
    with pytest.raises(StoreError, match="disk full"):
        ingest(store, get_embedder("pixels"), limit=500, batch_size=100, prefix=prefix)
    assert calls == [100, 100, 100] and store.count(prefix + "pixels") == 200
    monkeypatch.setattr(store, "upsert", upsert)
    report = ingest(store, get_embedder("pixels"), limit=500, batch_size=100, prefix=prefix)
    assert (report.points_skipped, report.points_written, store.count(prefix + "pixels")) == (200, 300, 500)


class _FailingPixels(PixelEmbedder):
    """Pixels that die on their second batch: a rebuild killed midway."""

    calls = 0

    def embed(self, images):
        type(self).calls += 1
        if type(self).calls >= 2:
            raise RuntimeError("embedder died")
        return super().embed(images)


def test_failed_rebuild_leaves_the_live_collection_serving(store, prefix, fmnist):
    name = prefix + "pixels"
    ingest(store, get_embedder("pixels"), limit=300, prefix=prefix)
    before = store.info(name)
    _FailingPixels.calls = 0
    with pytest.raises(RuntimeError, match="embedder died"):
        ingest(store, _FailingPixels(), limit=500, batch_size=100, recreate=True, prefix=prefix)
    after = store.info(name)
    assert (after.points, after.metadata) == (before.points, before.metadata)
    assert [c for c in store.collections() if c.startswith(prefix)] == [name]
    hits = store.query(name, get_embedder("pixels").embed(fmnist["test"].images[:1])[0], 5)
    assert len(hits) == 5

    report = ingest(store, get_embedder("pixels"), limit=200, recreate=True, prefix=prefix)
    assert report.rebuilt and store.count(name) == 200
    assert store.info(name).metadata["created_at"] >= before.metadata["created_at"]
    assert [c for c in store.collections() if c.startswith(prefix)] == [name]
    if isinstance(store, EdgeStore):  # the dead build's directory was swept, the old one removed
        assert [p.name for p in (store.home / "collections").iterdir() if p.name.startswith(f".{name}")] == []
    else:
        real = [c.name for c in store.client.get_collections().collections if c.name.startswith(prefix)]
        assert len(real) == 1


# -- locks on the embedded store -----------------------------------------------


def test_second_store_on_one_shard_waits_then_names_the_holder(tmp_path, fmnist):
    with EdgeStore(tmp_path) as a:
        ingest(a, get_embedder("pixels"), limit=50)
        b = EdgeStore(tmp_path, lock_timeout=0.2)
        with pytest.raises(StoreLockedError, match=rf"in use by another process \(pid {os.getpid()}: .*lock .*\.lock"):
            b.info("fmnist_pixels")
    assert b.info("fmnist_pixels").points == 50  # a closed: b gets it
    b.close()


def _fmsearch(home, *args, env=None, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "fmsearch", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        **kw,
    )


def _count(home, name="fmnist_pixels") -> int:
    with EdgeStore(home) as s:
        return s.count(name)


def test_two_processes_query_one_store_at_once(tmp_path, fmnist):
    with EdgeStore(tmp_path) as s:
        ingest(s, get_embedder("pixels"), limit=300)
    procs = [_fmsearch(tmp_path, "query", "--id", str(i), "-m", "pixels", "--json") for i in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(len(out.splitlines()) == 10 for out, _ in outs)


def test_ingest_while_another_process_holds_the_store_fails_fast(tmp_path, fmnist):
    with EdgeStore(tmp_path) as s:
        ingest(s, get_embedder("pixels"), limit=300)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from fmsearch.store.edge import EdgeStore; "
            "s = EdgeStore(sys.argv[1]); s.info('fmnist_pixels'); print('holding', flush=True); time.sleep(30)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        t0 = time.monotonic()
        p = _fmsearch(tmp_path, "ingest", "-m", "pixels", "--limit", "400", env={"FMSEARCH_LOCK_TIMEOUT": "0.5"})
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1 and time.monotonic() - t0 < 60
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: collection fmnist_pixels in ")
        assert f"in use by another process (pid {holder.pid}" in lines[0] and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()
    assert _count(tmp_path) == 300  # nothing written, shard intact


# -- kill -9 -------------------------------------------------------------------


def _kill_after(proc: subprocess.Popen, marker: str, times: int) -> None:
    """SIGKILL ``proc`` once its stderr has shown ``marker`` ``times`` times."""
    seen = 0
    for line in proc.stderr:
        if marker in line:
            seen += 1
            if seen >= times:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"


@pytest.mark.slow
def test_kill_9_ingest_then_resume_equals_a_clean_run(tmp_path, fmnist):
    home, clean = tmp_path / "a", tmp_path / "clean"
    n = 20000
    proc = _fmsearch(home, "-v", "ingest", "-m", "pixels", "--limit", str(n), "--batch-size", "250")
    _kill_after(proc, "fmnist_pixels: wrote 250 points", 3)
    partial = _count(home)
    assert 750 <= partial < n
    p = _fmsearch(home, "ingest", "-m", "pixels", "--limit", str(n), "--batch-size", "250")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert f"{n} stored" in out and "resumed:" in out
    with EdgeStore(home) as s:
        assert s.ids("fmnist_pixels").tolist() == list(range(n))
        assert s.info("fmnist_pixels").metadata["complete"] is True
        got = _all_vectors(s, "fmnist_pixels", n)
    with EdgeStore(clean) as s:
        ingest(s, get_embedder("pixels"), limit=n)
        assert np.array_equal(got, _all_vectors(s, "fmnist_pixels", n))


@pytest.mark.slow
def test_kill_9_during_recreate_keeps_the_old_collection(tmp_path, fmnist):
    with EdgeStore(tmp_path) as s:
        ingest(s, get_embedder("pixels"), limit=2000)
    proc = _fmsearch(tmp_path, "-v", "ingest", "-m", "pixels", "--recreate", "--limit", "20000", "--batch-size", "250")
    _kill_after(proc, "wrote 250 points", 3)
    p = _fmsearch(tmp_path, "collections", "--json")
    out, _ = p.communicate(timeout=120)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["collection"], r["points"], r["complete"]) for r in rows] == [("fmnist_pixels", 2000, True)]
    p = _fmsearch(tmp_path, "query", "--id", "60000", "-m", "pixels", "--json")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and len(out.splitlines()) == 10, err
    # the next rebuild sweeps the killed one's directory and swaps in
    with EdgeStore(tmp_path) as s:
        report = ingest(s, get_embedder("pixels"), limit=500, recreate=True)
        assert report.rebuilt and s.count("fmnist_pixels") == 500
    assert [p.name for p in (tmp_path / "collections").iterdir()] == ["fmnist_pixels"]


# -- retries against a flaky server -------------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    """Answers the REST calls `collections()` makes; the first `fail` GETs of
    /collections get `status`."""

    fail = 0
    status = 503
    hits: list[str] = []
    keys: list[str | None] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        type(self).keys.append(self.headers.get("api-key"))
        if self.path.startswith("/collections") and type(self).fail > 0:
            type(self).fail -= 1
            self.send_response(type(self).status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        key = "aliases" if self.path.startswith("/aliases") else "collections"
        body = json.dumps({"result": {key: []}, "status": "ok", "time": 0.0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Flaky.hits, _Flaky.keys, _Flaky.fail = [], [], 0
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _server_store(url, **kw):
    from fmsearch.store.server import ServerStore

    return ServerStore(url, api_key="sekret-key", retries=3, retry_base_delay=0.01, **kw)


def test_transient_5xx_is_retried_until_it_passes(flaky):
    _, url = flaky
    _Flaky.fail, _Flaky.status = 2, 503
    assert _server_store(url).collections() == []
    assert [h for h in _Flaky.hits if h.startswith("/collections")] == ["/collections"] * 3


def test_retries_are_bounded_and_the_error_names_server_and_attempts(flaky):
    _, url = flaky
    _Flaky.fail, _Flaky.status = 99, 502
    with pytest.raises(StoreError) as err:
        _server_store(url).collections()
    msg = str(err.value)
    assert msg.startswith(f"Qdrant at {url} answered 502 to list collections after 4 attempts")
    assert "sekret" not in msg and "\n" not in msg
    assert len([h for h in _Flaky.hits if h.startswith("/collections")]) == 4


def test_a_client_error_is_not_retried(flaky):
    _, url = flaky
    _Flaky.fail, _Flaky.status = 1, 400
    with pytest.raises(StoreError, match="answered 400 to list collections: "):
        _server_store(url).collections()
    assert len(_Flaky.hits) == 1


def test_unreachable_server_is_retried_then_named(unused_port=None):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(StoreError, match=rf"cannot reach Qdrant at {url} \(list collections\) after 4 attempts"):
        _server_store(url).collections()


def test_api_key_from_a_file_is_sent_and_never_printed(flaky, tmp_path):
    from click.testing import CliRunner

    from fmsearch.cli import main

    _, url = flaky
    key_file = tmp_path / "key"
    key_file.write_text("file-sekret-42\n")
    result = CliRunner().invoke(
        main, ["--qdrant-url", url, "--qdrant-api-key-file", str(key_file), "-v", "collections"]
    )
    assert result.exit_code == 0, result.output
    assert set(_Flaky.keys) == {"file-sekret-42"}  # every request carried it
    assert "file-sekret-42" not in result.output
    _Flaky.fail, _Flaky.status = 99, 503
    result = CliRunner().invoke(
        main, ["--qdrant-url", url, "--qdrant-api-key-file", str(key_file), "--retries", "1", "collections"]
    )
    assert result.exit_code == 1 and "file-sekret-42" not in result.output
    assert result.output.startswith(f"Error: Qdrant at {url} answered 503 to list collections after 2 attempts")
    empty = tmp_path / "empty"
    empty.write_text("")
    result = CliRunner().invoke(main, ["--qdrant-url", url, "--qdrant-api-key-file", str(empty), "collections"])
    assert result.exit_code == 1 and "must hold one non-empty line" in result.output


def test_grpc_and_https_settings_reach_the_client(flaky):
    """--prefer-grpc talks gRPC (this loopback server speaks only REST: a
    clear one-line error); an https URL makes the client use TLS."""
    from fmsearch.store import open_store

    _, url = flaky
    with pytest.raises(StoreError, match=rf"cannot reach Qdrant at {url} \(list collections\)") as err:
        open_store(url, prefer_grpc=True, retries=0).collections()
    assert "\n" not in str(err.value)
    store = open_store("https://127.0.0.1:9", retries=0)
    assert store.client._client._client.rest_uri.startswith("https://")
