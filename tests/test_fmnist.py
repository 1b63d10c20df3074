"""The FMNIST loader: real files, and synthetic ones for every failure."""

from __future__ import annotations

import gzip
import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from fmsearch.errors import DatasetError, UnknownClassError
from fmsearch.images import fmnist as loader


def test_real_files_load_verified(fmnist):
    train, test = fmnist["train"], fmnist["test"]
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28) and test.labels.shape == (10000,)
    # FMNIST is balanced: 6000 and 1000 of each class
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert fmnist["train"].labels[:3].tolist() == [9, 0, 0]  # Ankle boot, T-shirt, T-shirt


def test_class_names_and_lookup():
    assert len(loader.CLASS_NAMES) == 10 and loader.CLASS_NAMES[7] == "Sneaker"
    assert loader.class_index("sneaker") == 7
    assert loader.class_index("T-shirt") == 0 and loader.class_index("T-shirt/top") == 0
    with pytest.raises(UnknownClassError, match="valid classes: T-shirt/top, Trouser"):
        loader.class_index("Hat")


@pytest.fixture(scope="session")
def real_dir(fmnist):
    return loader.locate(download=False)


def _copy_real(src: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    for f in loader.FILES.values():
        shutil.copy(src / f.name, d / f.name)
    return d


def _write_idx(path: Path, magic: int, dims: tuple[int, ...], body: bytes) -> None:
    header = np.array([magic, *dims], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as fh:
        fh.write(header + body)


def test_truncated_file_is_named(real_dir, tmp_path):
    d = _copy_real(real_dir, tmp_path)
    p = d / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-200])
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz is truncated"):
        loader.load_split("test", d)


def test_wrong_magic_dims_and_size(real_dir, tmp_path):
    d = _copy_real(real_dir, tmp_path)
    p = d / "t10k-labels-idx1-ubyte.gz"
    _write_idx(p, 2051, (10000,), bytes(10000))
    with pytest.raises(DatasetError, match="IDX magic 2051, expected 2049"):
        loader.load_split("test", d)
    _write_idx(p, 2049, (9999,), bytes(9999))
    with pytest.raises(DatasetError, match=r"dimensions \(9999,\), expected \(10000,\)"):
        loader.load_split("test", d)
    _write_idx(p, 2049, (10000,), bytes(9000))
    with pytest.raises(DatasetError, match="holds 9000 data bytes, expected 10000"):
        loader.load_split("test", d)


def test_wrong_checksum(fmnist, real_dir, tmp_path):
    d = _copy_real(real_dir, tmp_path)
    p = d / "t10k-labels-idx1-ubyte.gz"
    labels = fmnist["test"].labels.copy()
    labels[0] = (labels[0] + 1) % 10  # structurally perfect, one label changed
    _write_idx(p, 2049, (10000,), labels.tobytes())
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz fails its checksum"):
        loader.load_split("test", d)


def test_explicit_dir_is_authoritative(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=f"FMNIST data dir {tmp_path} lacks train-images"):
        loader.locate()


def _serve(directory: Path):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def no_local_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DIR", raising=False)
    monkeypatch.setattr(loader, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("FMSEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_download_verifies_into_cache(fmnist, real_dir, tmp_path, no_local_copy, monkeypatch):
    mirror = _copy_real(real_dir, tmp_path)
    server = _serve(mirror)
    try:
        monkeypatch.setenv("FMNIST_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        assert loader.locate() == no_local_copy
        assert sorted(p.name for p in no_local_copy.iterdir()) == sorted(f.name for f in loader.FILES.values())
        assert np.array_equal(loader.load_split("test").labels, fmnist["test"].labels)
    finally:
        server.shutdown()


def test_corrupt_download_leaves_nothing(real_dir, tmp_path, no_local_copy, monkeypatch):
    mirror = _copy_real(real_dir, tmp_path)
    (mirror / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    server = _serve(mirror)
    try:
        monkeypatch.setenv("FMNIST_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz"):
            loader.locate()
        assert not (no_local_copy / "train-labels-idx1-ubyte.gz").exists()
        assert not [p for p in no_local_copy.iterdir() if p.name.startswith(".")]
    finally:
        server.shutdown()


def test_no_copy_and_no_download(no_local_copy):
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        loader.locate(download=False)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_download_names_all_three_ways_to_get_the_data(no_local_copy, monkeypatch):
    """Offline without the Debian package: one line that names the data
    folder (--data-dir / FMNIST_DIR), the Debian package and the download."""
    from click.testing import CliRunner

    from fmsearch.cli import main

    monkeypatch.setenv("FMNIST_MIRROR", f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(
        DatasetError,
        match="download from .* failed .*: point data dir .*FMNIST_DIR.*dataset-fashion-mnist.* or retry the download",
    ):
        loader.locate()
    result = CliRunner().invoke(main, ["data"])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    for way in ("--data-dir", "FMNIST_DIR", "dataset-fashion-mnist", "retry the download"):
        assert way in result.output
    assert not [p for p in no_local_copy.iterdir() if p.name.startswith(".")]  # no half-written file
