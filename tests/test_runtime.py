"""Two runtimes, one embedder: the shipped encoders run from their ONNX
export with ONNX Runtime, and give the vectors Keras gives; TensorFlow stays
off the query path; a tampered export is refused; without the training
extra, the commands that need it say so in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmsearch.errors import ModelError
from fmsearch.models import get_embedder
from fmsearch.models.artifacts import card_path, default_artifact, onnx_path, read_card, sha256_file
from fmsearch.models.registry import SHIPPED

PARITY = 1e-5  # the tolerance the issue states; exports measure about 6e-7


@pytest.mark.parametrize("method", SHIPPED)
def test_shipped_artifacts_have_a_checked_onnx_export(method):
    artifact = default_artifact(method)
    card = read_card(artifact)
    entry = card["onnx"]
    assert onnx_path(artifact).stat().st_size < 5 * 2**20
    assert entry["sha256"] == sha256_file(onnx_path(artifact))
    assert entry["exported_from_sha256"] == card["artifact_sha256"] == sha256_file(artifact)
    assert entry["opset"] >= 13 and entry["max_abs_diff_vs_keras"] <= PARITY
    assert entry["command"] == f"fmsearch export --method {method}"
    assert get_embedder(method).runs_on == "onnx"  # auto picks the export


@pytest.mark.parametrize("method", SHIPPED)
def test_onnx_and_keras_give_the_same_vectors(method, fmnist):
    pytest.importorskip("tensorflow", reason="the training extra is not installed: nothing to compare with")
    images = fmnist["test"].images[:256]
    onnx = get_embedder(method, runtime="onnx")
    keras = get_embedder(method, runtime="tensorflow")
    a, b = onnx.embed(images), keras.embed(images)
    assert np.abs(a - b).max() <= PARITY
    assert onnx.fingerprint == keras.fingerprint and onnx.describe() == keras.describe()


def test_a_collection_is_the_same_whichever_runtime_embedded_it(tmp_path, fmnist):
    """Ingested by TensorFlow, searched through ONNX Runtime (and back): the
    same fingerprint, so no mismatch, and the same neighbours."""
    pytest.importorskip("tensorflow", reason="the training extra is not installed")
    from fmsearch.ingest.indexer import ingest
    from fmsearch.search import Searcher
    from fmsearch.store import open_store

    with open_store(None, home=tmp_path / "h") as store:
        ingest(store, get_embedder("siamese", runtime="tensorflow"), limit=300)
        image = fmnist["test"].images[3]
        hits = {
            runtime: Searcher(store, options={"siamese": {"runtime": runtime}}).search("siamese", image=image, k=10)
            for runtime in ("onnx", "tensorflow")
        }
        assert [h.id for h in hits["onnx"]] == [h.id for h in hits["tensorflow"]]
        assert np.allclose([h.score for h in hits["onnx"]], [h.score for h in hits["tensorflow"]], atol=PARITY)


@pytest.fixture
def copied_artifact(tmp_path) -> Path:
    """The shipped siamese artifact, its card and its export, copied."""
    src = default_artifact("siamese")
    for path in (src, card_path(src), onnx_path(src)):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / src.name


def test_a_tampered_or_stale_export_is_refused(copied_artifact, fmnist):
    export = onnx_path(copied_artifact)
    data = bytearray(export.read_bytes())
    data[-2000:-1000] = bytes(b ^ 0xFF for b in data[-2000:-1000])
    export.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="siamese.onnx does not match its model card"):
        get_embedder("siamese", weights=copied_artifact).embed(fmnist["test"].images[:2])
    # the card vouches for this export, but it was made from another .keras file
    card = json.loads(card_path(copied_artifact).read_text())
    card["onnx"]["sha256"] = sha256_file(export)
    card["onnx"]["exported_from_sha256"] = "0" * 64
    card_path(copied_artifact).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="was not exported from siamese.keras as it is now"):
        get_embedder("siamese", weights=copied_artifact).embed(fmnist["test"].images[:2])


def test_without_an_export_auto_runs_keras_and_onnx_is_refused(copied_artifact):
    """A card that lists an export whose file is gone says so (not that
    TensorFlow is missing); an artifact never exported runs on Keras."""
    onnx_path(copied_artifact).unlink()
    with pytest.raises(ModelError, match="no ONNX export beside it"):
        get_embedder("siamese", weights=copied_artifact).prepare()
    card = json.loads(card_path(copied_artifact).read_text())
    del card["onnx"]
    card_path(copied_artifact).write_text(json.dumps(card))
    assert get_embedder("siamese", weights=copied_artifact).runs_on == "tensorflow"
    with pytest.raises(ModelError, match="no ONNX export beside it"):
        get_embedder("siamese", weights=copied_artifact, runtime="onnx").prepare()


def _run(code: str, tmp_path: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "FMSEARCH_HOME": str(tmp_path / "home"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)


@pytest.mark.slow
def test_the_query_path_never_imports_tensorflow(tmp_path, fmnist):
    """With the ONNX exports shipped, ingest, query and evaluate of the
    trained methods run in a process that never imports TensorFlow or Keras."""
    code = (
        "import sys\n"
        "from fmsearch.cli import main\n"
        "for args in (['ingest', '-m', 'siamese', '--limit', '500'],\n"
        "             ['ingest', '-m', 'autoencoder', '--limit', '500'],\n"
        "             ['query', '--id', '60000', '-m', 'siamese'],\n"
        "             ['query', '--id', '3', '-m', 'autoencoder+siamese'],\n"
        "             ['evaluate', '-m', 'siamese', '--queries', '20', '--out', 'ev']):\n"
        "    try:\n"
        "        main(args, standalone_mode=False)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, args\n"
        "print('LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout


# Without the training extra: simulated by making its imports fail in a fresh process.
BLOCK = "import sys; [sys.modules.__setitem__(m, None) for m in ('tensorflow', 'keras', 'tf2onnx')]\n"


@pytest.mark.parametrize(
    "args, what",
    [
        (["train", "--method", "siamese", "--epochs", "1", "--limit", "50", "--out", "out"], "training siamese"),
        (["export", "--method", "siamese"], "exporting to ONNX"),
        (["ingest", "-m", "siamese", "--runtime", "tensorflow", "--limit", "10"], "running siamese's .keras file"),
        (["ingest", "-m", "resnet101", "--weights", "none", "--limit", "10"], "ResNet101"),
    ],
)
def test_without_the_training_extra_the_error_names_it(tmp_path, fmnist, args, what):
    code = BLOCK + f"from fmsearch.cli import main\nmain({args!r}, prog_name='fmsearch')\n"
    done = _run(code, tmp_path)
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert len([line for line in lines if line.startswith("Error:")]) == 1 and "Traceback" not in done.stderr
    error = next(line for line in lines if line.startswith("Error:"))
    assert what in error and "pip install 'fmsearch[train]'" in error


def test_training_without_the_exporter_stops_before_training(tmp_path, fmnist):
    """TensorFlow there but not tf2onnx: refused at once, not after the run."""
    pytest.importorskip("tensorflow", reason="the training extra is not installed")
    code = (
        "import sys; sys.modules['tf2onnx'] = None\nimport time; t = time.time()\n"
        "from fmsearch.cli import main\n"
        "try:\n    main(['train', '--method', 'siamese', '--epochs', '1', '--limit', '300', '--out', 'out'])\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'OUT', __import__('os').path.exists('out/siamese.keras'))\n"
    )
    done = _run(code, tmp_path)
    assert "EXIT 1 OUT False" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "training siamese needs tf2onnx" in done.stderr and "pip install 'fmsearch[train]'" in done.stderr


def test_runtime_and_threads_are_checked():
    from fmsearch.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="unknown runtime 'gpu'; valid: auto, onnx, tensorflow"):
        get_embedder("siamese", runtime="gpu")
    with pytest.raises(InvalidArgumentError, match="threads must be between 1 and"):
        get_embedder("siamese", threads=0)
    with pytest.raises(InvalidArgumentError, match="threads apply to ONNX Runtime"):
        get_embedder("siamese", runtime="tensorflow", threads=2)
    with pytest.raises(InvalidArgumentError, match="runtime does not apply to pixels"):
        from fmsearch.models.registry import model_options

        model_options("pixels", runtime="onnx")
