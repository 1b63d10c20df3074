"""`fmsearch migrate`: embedded store -> a server (qdrant-client's local
mode here; the same code against a real server in the integration suite)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.models.sift import SiftExtractor
from fmsearch.search.searcher import Searcher
from fmsearch.store import open_store
from fmsearch.store.edge import EdgeStore


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    home = tmp_path_factory.mktemp("src")
    with EdgeStore(home) as s:
        ingest(s, get_embedder("pixels"), limit=300)
        ingest(s, get_embedder("pixels"), limit=300, quantization="int8", on_disk=True)
        ingest(s, SiftExtractor(), limit=60)
    return home


def _migrate(home, target, *args):
    return CliRunner().invoke(main, ["--home", str(home), "migrate", "--to", target, *args])


@pytest.fixture(params=["local", pytest.param("server", marks=pytest.mark.integration)])
def target(request, tmp_path):
    if request.param == "local":
        return f"local:{tmp_path / 'target'}"
    return request.getfixturevalue("server_url")


def test_migrate_copies_and_verifies_every_collection(source, target, fmnist):
    result = _migrate(source, target, "--recreate")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["fmnist_pixels", "fmnist_pixels_int8", "fmnist_sift"]
    assert "fmnist_pixels: 300 of 300 points" in lines[0] and "100 vectors checked" in lines[0]
    with EdgeStore(source) as src, open_store(target) as dst:
        for name in ("fmnist_pixels", "fmnist_pixels_int8", "fmnist_sift"):
            a, b = src.info(name), dst.info(name)
            assert (b.points, b.dim, b.multivector) == (a.points, a.dim, a.multivector)
            for key in ("method", "fingerprint", "quantization", "fmsearch_schema", "vectors_on_disk"):
                assert b.metadata[key] == a.metadata[key]
            assert b.metadata["complete"] is True
        # the copy is built as the original was: int8 with its vectors on disk
        params = dst.client.get_collection("fmnist_pixels_int8").config.params.vectors
        assert params.on_disk is True and src.info("fmnist_pixels_int8").metadata["vectors_on_disk"] is True
        image = fmnist["test"].images[0]
        ours = [h.id for h in Searcher(src).search("pixels", image=image, k=10)]
        theirs = [h.id for h in Searcher(dst).search("pixels", image=image, k=10)]
        assert ours == theirs
        v = src.retrieve("fmnist_pixels", [7], with_vectors=True)[0].vector
        assert np.allclose(dst.retrieve("fmnist_pixels", [7], with_vectors=True)[0].vector, v, atol=1e-6)
    again = _migrate(source, target, "--method", "pixels")
    assert again.exit_code == 0, again.output
    assert "(copied 0, already there 300)" in again.output


def test_migrate_errors_are_one_line(source, tmp_path):
    target = f"local:{tmp_path / 't'}"
    for args, message in [
        (["--method", "autoencoder"], "no collection of autoencoder"),
        (["--method", "pixels", "--replicas", "1", "--write-consistency", "2"], "cannot exceed --replicas"),
    ]:
        result = _migrate(source, target, *args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["--home", str(source), "migrate", "--to", "ftp://x"])
    assert result.exit_code == 1 and "starts with http:// or https://" in result.output


def test_incomplete_source_collection_is_refused(tmp_path, fmnist):
    with EdgeStore(tmp_path / "h") as s:
        ingest(s, get_embedder("pixels"), limit=50)
        s.set_metadata("fmnist_pixels", {"complete": False})
    result = _migrate(tmp_path / "h", f"local:{tmp_path / 't'}")
    assert result.exit_code == 1 and "fmnist_pixels is incomplete" in result.output
    assert (
        json.loads(
            CliRunner().invoke(main, ["--qdrant-url", f"local:{tmp_path / 't'}", "collections", "--json"]).output
            or "null"
        )
        is None
    )  # nothing created on the target


def test_cluster_options_need_a_server(tmp_path, fmnist):
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path), "ingest", "-m", "pixels", "--limit", "20", "--shards", "3"]
    )
    assert result.exit_code == 1 and "the embedded store is a single shard" in result.output
    assert not (tmp_path / "collections" / "fmnist_pixels").exists()
    url = f"local:{tmp_path / 'l'}"
    result = CliRunner().invoke(
        main,
        [
            "--qdrant-url",
            url,
            "ingest",
            "-m",
            "pixels",
            "--limit",
            "20",
            "--shards",
            "2",
            "--replicas",
            "2",
            "--write-consistency",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    with open_store(url) as s:
        assert s.info("fmnist_pixels").metadata["distribution"] == {"shards": 2, "replicas": 2, "write_consistency": 2}


def test_a_failed_verification_leaves_the_target_marked_incomplete(source, tmp_path, monkeypatch):
    import fmsearch.ingest.migrate as migrate
    from fmsearch.errors import StoreError

    def mismatch(*args, **kwargs):
        raise StoreError("fmnist_pixels: vectors differ (simulated)")

    monkeypatch.setattr(migrate, "_verify", mismatch)
    target = f"local:{tmp_path / 't'}"
    result = _migrate(source, target, "--method", "pixels")
    assert result.exit_code == 1 and "vectors differ (simulated)" in result.output
    with open_store(target) as dst:
        assert dst.info("fmnist_pixels").metadata["complete"] is False
