"""Neural methods: build, 1-epoch train on a few hundred images, save, reload
with safe_mode, embed deterministically; losses; artifact and weight errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the training extra is not installed (pip install -e '.[train]')")

from fmsearch.errors import CollectionMismatchError, ModelError  # noqa: E402
from fmsearch.models import get_embedder  # noqa: E402
from fmsearch.models.artifacts import card_path, load_verified  # noqa: E402
from fmsearch.models.training import train_method  # noqa: E402


@pytest.fixture(scope="module", params=["autoencoder", "siamese", "proxy"])
def trained(request, tmp_path_factory, fmnist):
    out = tmp_path_factory.mktemp(request.param)
    # the proxy run also holds out 100 of its 400 images as a validation split
    limit, validation = (400, 100) if request.param == "proxy" else (300, None)
    card = train_method(
        request.param, epochs=1, batch_size=64, limit=limit, validation=validation, out=out, evaluate=False, verbose=0
    )
    return request.param, out / f"{request.param}.keras", card


@pytest.mark.slow
def test_train_writes_artifact_and_card(trained):
    method, artifact, card = trained
    saved = json.loads(card_path(artifact).read_text())
    assert saved == card and saved["epochs"] == 1 and saved["trained_on"] == {"split": "train", "images": 300}
    assert saved["data_sha256"]["train-images-idx3-ubyte.gz"].startswith("c59f468a")
    assert len(saved["losses"]) == 1 and np.isfinite(saved["final_loss"])
    assert saved["command"].startswith(f"fmsearch train --method {method} --epochs 1")
    if method == "proxy":  # trained on 300, its last 100 held out and measured against them
        v = saved["validation"]
        assert (v["queries"], v["gallery"]) == (100, 300) and saved["command"].endswith(
            f"--validation 100 --out {artifact.parent}"
        )
        assert 0 < v["P@1"] <= 1 and 0 < v["P@10"] <= 1 and set(v["tower_alone"]) == {"P@1", "P@10"}
        assert set(v["expand"]) == {"1", "2", "3", "5", "10"}


def test_training_ends_with_a_checked_onnx_export(trained, fmnist):
    """The export round trip on a model trained for one epoch: the ONNX file
    beside the artifact, recorded in its card, giving Keras's vectors."""
    from fmsearch.models.artifacts import onnx_path, sha256_file

    method, artifact, card = trained
    assert card["onnx"]["sha256"] == sha256_file(onnx_path(artifact))
    assert card["onnx"]["exported_from_sha256"] == card["artifact_sha256"]
    images = fmnist["test"].images[:256]
    onnx = get_embedder(method, weights=artifact)
    assert onnx.runs_on == "onnx"
    keras = get_embedder(method, weights=artifact, runtime="tensorflow")
    assert np.abs(onnx.embed(images) - keras.embed(images)).max() <= 1e-5


def test_reload_safe_mode_embeds_unit_and_deterministic(trained, fmnist):
    method, artifact, card = trained
    emb = get_embedder(method, weights=artifact)
    imgs = fmnist["test"].images[:7]
    a = emb.embed(imgs, batch_size=3)
    b = get_embedder(method, weights=artifact).embed(imgs)
    assert a.shape == (7, card["embedding_dim"]) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert emb.fingerprint == f"{method}-sha256:{card['artifact_sha256']}"


def test_altered_or_corrupt_artifact_is_refused(trained, tmp_path):
    method, artifact, _ = trained
    copy = tmp_path / f"{method}.keras"
    copy.write_bytes(artifact.read_bytes()[:-100] + b"x" * 100)
    card_path(copy).write_text(card_path(artifact).read_text())
    with pytest.raises(ModelError, match="does not match its model card"):
        load_verified(copy)
    with pytest.raises(ModelError, match="not found"):
        get_embedder(method, weights=tmp_path / "missing.keras")


def test_triplet_loss_hand_computed():
    from fmsearch.models.siamese import (
        batch_hard_triplet_loss,
        semi_hard_triplet_loss,
        triplet_loss,
    )

    a = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    n = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    # |a-p|^2 = [2, 0], |a-n|^2 = [0, 2]: hinge [2 - 0 + .2, 0 - 2 + .2] -> [2.2, 0]
    assert float(triplet_loss(a, p, n, 0.2)) == pytest.approx(1.1)
    emb = np.array([[1, 0], [0.6, 0.8], [0, 1], [-1, 0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    # anchor 0: hardest pos d=|e0-e1|^2=0.8, nearest neg min(2, 4)=2 -> 0
    # anchor 1: pos 0.8, neg min(|e1-e2|^2=0.4, |e1-e3|^2=3.2)=0.4 -> 0.6
    # anchor 2: pos |e2-e3|^2=2, neg min(2, 0.4)=0.4 -> 1.8; anchor 3: pos 2, neg min(4, 3.2) -> 0
    assert float(batch_hard_triplet_loss(labels, emb, 0.2, squared=True)) == pytest.approx(
        (0 + 0.6 + 1.8 + 0) / 4, abs=1e-5
    )
    # the same on plain distances (the default): anchor 1: sqrt(.8) - sqrt(.4) + .2; anchor 2: sqrt(2) - sqrt(.4) + .2
    r = np.sqrt
    expected = ((r(0.8) - r(0.4) + 0.2) + (r(2) - r(0.4) + 0.2)) / 4
    assert float(batch_hard_triplet_loss(labels, emb, 0.2)) == pytest.approx(expected, abs=1e-5)
    # semi-hard, per anchor-positive pair: the nearest negative farther than the positive
    # (0,1): d=0.8, negatives {2, 4} -> 2: 0.  (1,0): d=0.8, negatives {0.4, 3.2} -> 3.2: 0.
    # (2,3): d=2, negatives {2, 0.4}, none farther -> the farthest, 2: 0.2.  (3,2): d=2, {4, 3.2} -> 3.2: 0.
    assert float(semi_hard_triplet_loss(labels, emb, 0.2)) == pytest.approx(0.2 / 4, abs=1e-5)


def test_seed_triplets_respect_classes(fmnist):
    from fmsearch.models.siamese import make_triplets

    labels = fmnist["train"].labels[:500]
    a, p, n = make_triplets(labels, 200, seed=1)
    assert (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all() and (a != p).all()


@pytest.mark.slow
def test_resnet101_untrained_on_small_inputs(fmnist):
    emb = get_embedder("resnet101", weights="none", input_size=32)
    v = emb.embed(fmnist["test"].images[:3])
    assert v.shape == (3, 2048)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    d = emb.describe()
    assert d["untrained"] is True and d["fingerprint"] == "resnet101-untrained-seed0-32px"
    np.testing.assert_allclose(
        v, get_embedder("resnet101", weights="none", input_size=32).embed(fmnist["test"].images[:3]), atol=1e-4
    )


def test_resnet101_offline_without_weights_fails_before_writing(tmp_path, monkeypatch, fmnist):
    import keras.src.backend.config as kconfig
    import keras.src.utils.file_utils as fu

    from fmsearch.ingest.indexer import ingest
    from fmsearch.store import open_store

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    # an empty Keras cache and no network, wherever the tests run
    monkeypatch.setattr(kconfig, "_KERAS_DIR", str(tmp_path / "keras"))
    monkeypatch.setattr(fu, "urlretrieve", offline)
    with open_store(None, home=tmp_path / "home") as store:
        with pytest.raises(ModelError, match=r"weights \(imagenet\) cannot be loaded: .*; pass a local file instead"):
            ingest(store, get_embedder("resnet101", input_size=32), limit=5)
        assert store.collections() == []
    with pytest.raises(ModelError, match="weights file .* not found"):
        get_embedder("resnet101", weights=tmp_path / "nope.h5")


def test_model_collection_mismatch(trained, tmp_path, fmnist):
    method, artifact, _ = trained
    from fmsearch.ingest.indexer import ingest
    from fmsearch.search.searcher import Searcher
    from fmsearch.store import open_store

    with open_store(None, home=tmp_path / "h") as store:
        ingest(store, get_embedder(method, weights=artifact), limit=20)
        store.set_metadata(f"fmnist_{method}", {"fingerprint": f"{method}-sha256:other"})
        with pytest.raises(CollectionMismatchError, match=f"ingest {method} again with recreate"):
            Searcher(store, options={method: {"weights": artifact}}).search(method, id=3)


def test_forward_pass_is_traced_once(trained, fmnist):
    """Query-time embedding reuses one compiled graph: no retracing per call
    or per batch size (the speed itself is in `fmsearch bench embed`)."""
    method, artifact, _ = trained
    emb = get_embedder(method, weights=artifact, runtime="tensorflow")
    for n in (1, 1, 5, 2, 1):
        emb.embed(fmnist["test"].images[:n])
    assert emb._graph.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("method", ["autoencoder", "siamese", "proxy", "distilled"])
def test_shipped_artifacts_match_their_cards(method):
    """The weights in models/weights load with safe_mode after the SHA-256
    check, are small, and their cards say how they were made."""
    from fmsearch.models.artifacts import default_artifact, read_card

    artifact = default_artifact(method)
    card = read_card(artifact)
    model = load_verified(artifact)
    assert artifact.stat().st_size < 5 * 2**20
    assert model.output_shape == (None, card["embedding_dim"])
    assert card["trained_on"] == {"split": "train", "images": 60000}
    assert card["command"].startswith(f"fmsearch train --method {method} ")
    assert len(card["losses"]) == card["epochs"]
    assert set(card["eval_test_split_numpy_exact"]) == {"P@1", "P@10"}


def test_train_refuses_an_unwritable_out_before_training(tmp_path):
    from click.testing import CliRunner

    from fmsearch.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["train", "--method", "siamese", "--epochs", "1", "--out", str(blocker / "sub")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot write to --out") and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["train", "--method", "autoencoder", "--mining", "semi-hard"])
    assert result.exit_code == 1 and "--mining applies to siamese only" in result.output
    result = CliRunner().invoke(main, ["train", "--method", "siamese", "--augment", "flip-shift"])
    assert result.exit_code == 1 and "--augment applies to proxy only" in result.output
    for bad in ("0", "59999"):
        result = CliRunner().invoke(main, ["train", "--method", "proxy", "--validation", bad, "--out", str(tmp_path)])
        assert result.exit_code == 1 and "--validation must hold out at least 1 image" in result.output
    assert not list(tmp_path.glob("*.keras"))


@pytest.mark.slow
def test_train_continues_from_an_artifact_and_keeps_the_chain(trained, tmp_path):
    method, artifact, card = trained
    if method != "siamese":
        with pytest.raises(Exception, match="init applies to siamese only"):
            train_method(method, epochs=1, limit=50, out=tmp_path, init=artifact, evaluate=False, verbose=0)
        return
    child = train_method(
        method,
        epochs=1,
        batch_size=64,
        limit=300,
        out=tmp_path,
        init=artifact,
        learning_rate=2e-4,
        evaluate=False,
        verbose=0,
    )
    assert child["init"] == card and child["learning_rate"] == 2e-4
    assert f"--learning-rate 0.0002 --init {artifact} --limit 300 --out {tmp_path}" in child["command"]
    assert child["artifact_sha256"] != card["artifact_sha256"]
    get_embedder(method, weights=tmp_path / f"{method}.keras").embed(np.zeros((2, 28, 28), np.uint8))


def test_validate_reproduces_the_cards_validation_figures(trained, tmp_path):
    """`fmsearch validate` on a run trained with --validation: the card's own
    figures (Keras) again through the method's embedder (ONNX), its mirror
    average, expansions; an artifact that saw its validation images is refused."""
    from click.testing import CliRunner

    from fmsearch.cli import main

    method, artifact, card = trained
    if method != "proxy":
        result = CliRunner().invoke(main, ["validate", str(artifact), "--validation", "100", "--limit", "400"])
        assert result.exit_code == 1 and "was not trained with --validation 100" in result.output
        assert result.output.startswith(f"Error: {artifact} was not")  # the path as given, no word in it rewritten
        assert len(result.output.strip().splitlines()) == 1
        result = CliRunner().invoke(main, ["validate", str(artifact), "--validation", "1", "--limit", "2"])
        assert result.exit_code == 1 and "--limit must be at least 3" in result.output
        return
    result = CliRunner().invoke(
        main, ["validate", str(artifact), "--validation", "100", "--limit", "400", "--mirror", "--expand", "0,2"]
    )
    assert result.exit_code == 0, result.output
    rows = {
        line.split(" | ")[0].strip("| "): [float(x) for x in line.strip(" |").split(" | ")[1:]]
        for line in result.output.strip().splitlines()[2:]
    }
    name = f"proxy ({artifact.parent.name}/proxy.keras)"
    v = card["validation"]
    assert rows[name] == pytest.approx([v["P@1"], v["P@10"]], abs=0.011)  # ONNX vs Keras: at most a tie apart
    assert rows[name + ", expanded by 2"] == pytest.approx(
        [v["expand"]["2"]["P@1"], v["expand"]["2"]["P@10"]], abs=0.011
    )
    # the proxy network already averages each image with its mirror image: a second average changes nothing
    assert rows[name + ", mirror-averaged"] == pytest.approx(rows[name], abs=1e-9)
    result = CliRunner().invoke(
        main, ["validate", str(artifact), "--validation", "100", "--limit", "400", "--expand", "-1"]
    )
    assert result.exit_code == 1 and "--expand values must be >= 0" in result.output


@pytest.mark.parametrize("trained", ["proxy"], indirect=True)  # the run that holds out a validation split
def test_validate_shift_average_matches_numpy(trained, fmnist):
    """--shifts 1: each image's (mirror-averaged) vector summed over the
    image and its four one-pixel shifts, normalised; the same figure by hand."""
    from click.testing import CliRunner

    from fmsearch.cli import main
    from fmsearch.models.augment import shifted
    from fmsearch.models.base import l2_normalize
    from fmsearch.models.training import vector_precision

    method, artifact, card = trained
    result = CliRunner().invoke(
        main, ["validate", str(artifact), "--validation", "100", "--limit", "400", "--shifts", "1"]
    )
    assert result.exit_code == 0, result.output
    rows = {
        line.split(" | ")[0].strip("| "): [float(x) for x in line.strip(" |").split(" | ")[1:]]
        for line in result.output.strip().splitlines()[2:]
    }
    images, labels = fmnist["train"].images[:400], fmnist["train"].labels[:400]
    embedder = get_embedder("proxy", weights=artifact)
    by_hand = l2_normalize(
        sum(embedder.embed(shifted(images, dy, dx)) for dy, dx in ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0)))
    )
    p = vector_precision(by_hand[300:], by_hand[:300], labels[:300], labels[300:], (1, 10))
    assert rows[f"proxy ({artifact.parent.name}/proxy.keras), mirror-averaged, shift-averaged (1 px)"] == pytest.approx(
        [p["P@1"], p["P@10"]], abs=1e-4
    )
    result = CliRunner().invoke(
        main, ["validate", str(artifact), "--validation", "100", "--limit", "400", "--shifts", "-1"]
    )
    assert result.exit_code == 2 and "--shifts" in result.output


@pytest.mark.slow
def test_proxy_trains_with_the_triplet_loss_added(tmp_path, fmnist):
    """--loss cosface+triplet: both losses on one tower (two outputs), the
    same served network, the choice in the card and its command."""
    card = train_method(
        "proxy",
        epochs=1,
        batch_size=64,
        limit=200,
        loss="cosface+triplet",
        augment="flip-shift-erase",
        out=tmp_path,
        evaluate=False,
        verbose=0,
    )
    assert card["losses_trained"] == "cosface+triplet" and "plus the semi-hard triplet loss" in card["loss"]
    assert np.isfinite(card["final_loss"]) and "random erasing" in card["augmentation"]
    assert "--augment flip-shift-erase --loss cosface+triplet" in card["command"]
    vectors = get_embedder("proxy", weights=tmp_path / "proxy.keras").embed(fmnist["test"].images[:4])
    assert vectors.shape == (4, 64)
