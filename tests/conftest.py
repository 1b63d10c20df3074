"""Shared fixtures: real FMNIST, a store per backend, a home built by the CLI."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from fmsearch.errors import DatasetError
from fmsearch.store import open_store, schema

# Pinned server image: the same tag as docker-compose.yml.
QDRANT_IMAGE = "qdrant/qdrant:v1.16.2"
#: points in each collection of the shared home: train ids 0-299
HOME_GALLERY = 300
#: the collections the shared home holds (method -> collection)
HOME_METHODS = ("pixels", "siamese", "sift")


@pytest.fixture(scope="session")
def fmnist():
    """The real, verified FMNIST splits. Skips (with the reason) only when the
    files are absent and FMSEARCH_REQUIRE_DATA is unset; CI sets it."""
    from fmsearch.images.fmnist import load_split

    try:
        return {s: load_split(s, download=False) for s in ("train", "test")}
    except DatasetError as err:
        if os.environ.get("FMSEARCH_REQUIRE_DATA"):
            raise
        pytest.skip(f"FMNIST not available: {err}")


@pytest.fixture(scope="session")
def home(fmnist, tmp_path_factory) -> Path:
    """An embedded store built by the CLI, shared by every test that only
    reads it: the first 300 train images in fmnist_pixels, fmnist_siamese and
    fmnist_sift. A test that writes builds a home of its own."""
    from click.testing import CliRunner

    from fmsearch.cli import main

    home = tmp_path_factory.mktemp("home")
    for method in HOME_METHODS:
        args = ["--home", str(home), "ingest", "--method", method, "--limit", str(HOME_GALLERY), "--batch-size", "100"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert f"fmnist_{method}: wrote {HOME_GALLERY} points, {HOME_GALLERY} stored" in result.output
    return home


def _server_url() -> str:
    """A reachable Qdrant server: QDRANT_URL, else a testcontainers one."""
    url = os.environ.get("QDRANT_URL")
    if url:
        from qdrant_client import QdrantClient

        try:
            QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"), timeout=5).get_collections()
        except Exception as err:
            pytest.skip(f"QDRANT_URL={url} is not reachable: {type(err).__name__}")
        return url
    try:
        import docker

        docker.from_env().ping()
    except Exception as err:
        pytest.skip(f"no Docker engine reachable ({type(err).__name__}) and QDRANT_URL not set")
    try:
        from testcontainers.community.qdrant import QdrantContainer
    except ImportError:  # testcontainers < 4.13
        from testcontainers.qdrant import QdrantContainer

    container = QdrantContainer(image=QDRANT_IMAGE)
    container.start()
    _CONTAINERS.append(container)
    return f"http://{container.get_container_host_ip()}:{container.get_exposed_port(6333)}"


_CONTAINERS: list = []


@pytest.fixture(scope="session")
def server_url():
    url = _server_url()
    yield url
    for c in _CONTAINERS:
        c.stop()


@pytest.fixture(params=["edge", "local", pytest.param("server", marks=pytest.mark.integration)])
def backend(request, tmp_path):
    """The store settings selecting each backend in turn."""
    from fmsearch.store import StoreSettings

    if request.param == "edge":
        return StoreSettings(home=tmp_path / "home")
    if request.param == "local":
        return StoreSettings(url=f"local:{tmp_path / 'local'}")
    return StoreSettings(url=request.getfixturevalue("server_url"), api_key=os.environ.get("QDRANT_API_KEY"))


@pytest.fixture
def prefix():
    """A unique collection prefix, so tests never share a server collection."""
    return f"t{uuid.uuid4().hex[:8]}_"


@pytest.fixture
def shop(prefix):
    """A folder gallery's name as unique as the prefix (its collections,
    ``<name>_<method>``, are never under FMNIST's prefix)."""
    return f"{prefix[:-1]}-shop"


@pytest.fixture
def quantizing_store(store):
    """The store, where quantised search is real: qdrant-client's local mode
    accepts quantised collections but searches the original vectors exactly,
    so a test of recall or rescore there could not fail."""
    if not store.honours_search_params:
        pytest.skip(f"{store.location}: local mode ignores quantisation and search params")
    return store


@pytest.fixture
def store(backend, prefix):
    s = backend.open()
    yield s
    for name in s.collections():
        if name.startswith((prefix, f"{prefix[:-1]}-")):  # FMNIST's collections, and the test's galleries'
            s.delete(name)
    s.close()


@pytest.fixture
def unit_vectors():
    """Deterministic small unit vectors with known labels."""
    rng = np.random.default_rng(7)
    v = rng.normal(size=(40, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), np.arange(40) % 10


#: the duplicates thresholds of the insight folder: the pixels run has label conflicts among the home's 300
INSIGHT_THRESHOLDS = {"pixels": 0.96, "siamese": 0.99}


@pytest.fixture(scope="session")
def insight(home, tmp_path_factory) -> Path:
    """What `fmsearch serve --insight` reads, made by the CLI on the shared
    home: a siamese map of its 300 images, duplicates runs of pixels (with
    label conflicts) and siamese (without), and a label-issues run of pixels
    (with suspects)."""
    import json

    from click.testing import CliRunner

    from fmsearch.cli import main

    folder = tmp_path_factory.mktemp("insight")
    runs = [["map", "-m", "siamese", "--points", "300", "--out", str(folder / "map-siamese")]]
    runs += [
        ["duplicates", "-m", m, "--split", "train", "-t", str(t), "--out", str(folder / f"duplicates-{m}-train")]
        for m, t in INSIGHT_THRESHOLDS.items()
    ]
    runs.append(["label-issues", "-m", "pixels", "--out", str(folder / "label-issues-pixels-train")])
    for args in runs:
        result = CliRunner().invoke(main, ["--home", str(home), *args])
        assert result.exit_code == 0, result.output
    conflicts = json.loads((folder / "duplicates-pixels-train" / "duplicates.json").read_text())["summary"]
    assert conflicts["conflict_groups"] > 0, "the page's conflict rows need one"
    issues = json.loads((folder / "label-issues-pixels-train" / "label_issues.json").read_text())["summary"]
    assert issues["flagged"] > 0, "the page's label-issue rows need one"
    return folder


@pytest.fixture(scope="session")
def serve_home(home, tmp_path_factory) -> Path:
    """The shared home (pixels, siamese, sift: 300 points each), copied, with
    the pixels int8 variant added: every search mode has its collections."""
    import shutil

    from click.testing import CliRunner

    from fmsearch.cli import main

    copy = tmp_path_factory.mktemp("serve") / "home"
    shutil.copytree(home, copy)
    result = CliRunner().invoke(
        main, ["--home", str(copy), "ingest", "-m", "pixels", "--limit", "300", "--quantization", "int8"]
    )
    assert result.exit_code == 0, result.output
    return copy


@pytest.fixture(scope="session")
def gallery_home(home, fmnist, tmp_path_factory) -> Path:
    """The shared home, copied, with a folder gallery "shop" added (siamese
    and pixels): the first 120 test images as files in class subfolders."""
    import shutil

    from click.testing import CliRunner
    from PIL import Image

    from fmsearch.cli import main
    from fmsearch.images.fmnist import CLASS_NAMES

    root = tmp_path_factory.mktemp("gallery")
    copy, folder = root / "home", root / "shop"
    shutil.copytree(home, copy)
    test = fmnist["test"]
    for i in range(120):
        cls = CLASS_NAMES[int(test.labels[i])].replace("/", "-")
        (folder / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.images[i]).save(folder / cls / f"{i:04d}.png")
    for method in ("siamese", "pixels"):
        result = CliRunner().invoke(
            main, ["--home", str(copy), "ingest", "--images", str(folder), "--collection", "shop", "-m", method]
        )
        assert result.exit_code == 0, result.output
    return copy


def clustered(n: int, dim: int, seed: int):
    """Unit vectors in 10 classes (a centre each, noise around it) and a 1% group each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim))
    labels, groups = rng.integers(0, 10, n), rng.integers(0, 100, n)
    g = centres[labels] + rng.normal(scale=0.6, size=(n, dim))
    q = centres[rng.integers(0, 10, 100)] + rng.normal(scale=0.6, size=(100, dim))
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(g), labels, groups, unit(q)


def build_clustered(home, name, g, labels, groups, **spec_args):
    """A fresh Edge collection of the clustered points, label and group indexed, its graph built."""
    store = open_store(None, home=home)
    spec = schema.CollectionSpec(
        name,
        dim=g.shape[1],
        payload_indexes={"label": "integer", "group": "integer"},
        indexing_threshold_kb=1,
        **spec_args,
    )
    store.create(spec)
    store.upsert(
        name, list(range(len(g))), g, [{"label": int(a), "group": int(b)} for a, b in zip(labels, groups, strict=False)]
    )
    store.finalize(name)
    return store
