"""The distilled method's parts: the teacher's views and their cache, the
teacher's mirror invariance the training relies on, the losses against
numpy, a one-epoch run on a few hundred images with its card and its checked
ONNX export, and the settings refused before training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmsearch.errors import InvalidArgumentError
from fmsearch.models import distilled
from fmsearch.models.artifacts import default_artifact, sha256_file
from fmsearch.models.augment import moved


def test_views_are_fixed_shifts_independent_of_how_many_images_follow(fmnist):
    images = fmnist["train"].images[:50]
    views = distilled.view_images(images, 2)
    assert views.shape == (3, 50, 28, 28) and views.dtype == np.uint8
    np.testing.assert_array_equal(views[0], images)
    np.testing.assert_array_equal(distilled.view_images(images, 2), views)  # the same views every run
    np.testing.assert_array_equal(distilled.view_images(images[:20], 2), views[:, :20])  # a prefix's views
    pad = distilled.VIEW_SHIFT
    for v in (1, 2):  # each view is its image moved by one of the 25 shifts of up to 2 px
        for i in range(50):
            shifts = [moved(images[i : i + 1], [dy], [dx], pad)[0] for dy in range(5) for dx in range(5)]
            assert any(np.array_equal(views[v, i], s) for s in shifts)
    assert not np.array_equal(views[1], views[2])


def test_the_teacher_is_mirror_invariant(fmnist):
    """The shipped ensemble gives an image and its mirror image the same
    vector: the training flips a view and keeps its cached target."""
    from fmsearch.models.registry import get_embedder

    images = fmnist["test"].images[:64]
    embedder = get_embedder("ensemble")
    np.testing.assert_allclose(embedder.embed(images), embedder.embed(images[:, :, ::-1]), atol=2e-6)


def test_teacher_vectors_are_cached_and_checked(fmnist, tmp_path):
    images = fmnist["train"].images[:40]
    lines: list[str] = []
    vectors, record = distilled.teacher_vectors(default_artifact("ensemble"), images, 1, tmp_path, lines.append)
    assert vectors.shape == (2, 40, 192) and "in" in lines[-1] and "cached" in lines[-1]
    from fmsearch.models.registry import get_embedder

    np.testing.assert_allclose(vectors[1], get_embedder("ensemble").embed(distilled.view_images(images, 1)[1]))
    (cached,) = tmp_path.glob("*.npy")
    assert record["sha256"] == sha256_file(cached) and record["views"] == 1 and record["images"] == 40
    assert json.loads(cached.with_suffix(".json").read_text()) == {k: v for k, v in record.items() if k != "views_used"}
    again, same = distilled.teacher_vectors(default_artifact("ensemble"), images, 1, tmp_path, lines.append)
    assert lines[-1].startswith("teacher vectors: read from") and same == record
    np.testing.assert_array_equal(again, vectors)
    fewer, used = distilled.teacher_vectors(default_artifact("ensemble"), images, 0, tmp_path, lines.append)
    assert lines[-1].endswith("(its first 1 views)") and used["views_used"] == 0  # a cache of more views serves
    np.testing.assert_array_equal(fewer, vectors[:1])
    cached.write_bytes(cached.read_bytes()[:-8] + b"\0" * 8)  # damaged: recomputed, not trusted
    again, _ = distilled.teacher_vectors(default_artifact("ensemble"), images, 1, tmp_path, lines.append)
    assert "does not match its checksum" in lines[-2] and np.allclose(again, vectors, atol=1e-6)


def test_losses_match_numpy():
    pytest.importorskip("keras", reason="the training extra is not installed")
    rng = np.random.default_rng(0)
    s, t = (rng.normal(size=(6, 5)).astype(np.float32) for _ in range(2))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    cosine = float(distilled.cosine_distance_loss(t, s))
    assert cosine == pytest.approx(np.mean(np.sum((s - t) ** 2, axis=1)) / 2, abs=1e-6)
    assert float(distilled.cosine_distance_loss(t, t)) == pytest.approx(0, abs=1e-6)
    relational = float(distilled.relational_loss(t, s))
    assert relational == pytest.approx(np.mean((s @ s.T - t @ t.T) ** 2), abs=1e-6)
    rotation = np.linalg.qr(rng.normal(size=(5, 5)))[0].astype(np.float32)  # any rotation keeps the relations
    assert float(distilled.relational_loss(t, t @ rotation)) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def student(tmp_path_factory, fmnist):
    pytest.importorskip("tensorflow", reason="the training extra is not installed (pip install -e '.[train]')")
    from fmsearch.models.training import train_method

    out, cache = tmp_path_factory.mktemp("distilled"), tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        card = train_method(
            "distilled", epochs=1, batch_size=64, limit=400, validation=100, out=out, evaluate=False, verbose=0
        )
    return out / "distilled.keras", card, cache


@pytest.mark.slow
def test_a_student_trains_for_an_epoch_and_its_card_says_how(student):
    artifact, card, cache = student
    assert card["method"] == "distilled" and card["embedding_dim"] == 192 and card["epochs"] == 1
    taught = card["teacher_vectors"]
    assert (
        taught["teacher"]["artifact_sha256"]
        == json.loads(default_artifact("ensemble").with_suffix(".card.json").read_text())["artifact_sha256"]
    )
    (cached,) = (cache / "fmsearch" / "teacher-vectors").glob("*.npy")
    assert taught["sha256"] == sha256_file(cached) and taught["images"] == 400 and taught["shape"] == [1, 400, 192]
    assert card["wall_time_s"] == pytest.approx(card["fit_wall_time_s"] + taught["wall_time_s"])
    assert (
        card["command"] == f"fmsearch train --method distilled --epochs 1 --batch-size 64 --seed 0 "
        f"--loss relational+cosface --views 0 --limit 400 --validation 100 --out {artifact.parent}"
    )
    v = card["validation"]
    assert (v["queries"], v["gallery"]) == (100, 300) and set(v["tower_alone"]) == {"P@1", "P@10"}


def test_the_students_onnx_export_gives_its_keras_vectors(student, fmnist):
    from fmsearch.models.artifacts import onnx_path

    artifact, card, _ = student
    assert card["onnx"]["sha256"] == sha256_file(onnx_path(artifact))
    images = fmnist["test"].images[:256]
    onnx = distilled.DistilledEmbedder(weights=artifact)
    keras = distilled.DistilledEmbedder(weights=artifact, runtime="tensorflow")
    assert onnx.runs_on == "onnx"
    a = onnx.embed(images)
    assert a.shape == (256, 192) and np.abs(a - keras.embed(images)).max() <= 1e-5
    np.testing.assert_allclose(a, onnx.embed(images[:, :, ::-1]), atol=1e-5)  # served mirror-averaged


@pytest.mark.parametrize(
    ("method", "given", "refusal"),
    [
        ("proxy", {"teacher": "models/weights/ensemble.keras"}, "teacher applies to distilled only"),
        ("siamese", {"loss": "cosine"}, "loss applies to proxy and distilled only"),
        ("proxy", {"loss": "cosine"}, "unknown loss 'cosine' for proxy; valid: cosface, cosface+triplet"),
        (
            "distilled",
            {"loss": "cosface"},
            "unknown loss 'cosface' for distilled; valid: relational+cosface, cosine, cosine+cosface",
        ),
        ("distilled", {"augment": "flip-shift"}, "augment applies to proxy only"),
        ("distilled", {"teacher": "nowhere.keras"}, "nowhere.keras"),
    ],
)
def test_settings_a_run_does_not_take_are_refused_before_training(method, given, refusal, tmp_path):
    from fmsearch.errors import ModelError
    from fmsearch.models.training import train_method

    with pytest.raises((InvalidArgumentError, ModelError), match=refusal.replace("+", r"\+")):
        train_method(method, epochs=1, out=tmp_path, **given)


def test_a_teacher_no_method_takes_by_name_is_refused_before_training(tmp_path):
    from fmsearch.models.artifacts import card_path
    from fmsearch.models.training import train_method

    teacher = tmp_path / "old.keras"
    teacher.write_bytes(b"not read")
    card_path(teacher).write_text(json.dumps({"method": "triplet-v0", "artifact_sha256": "0" * 64}))
    with pytest.raises(
        InvalidArgumentError, match="holds the triplet-v0 method's network; a teacher is one of: pixels"
    ):
        train_method("distilled", epochs=1, out=tmp_path / "out", teacher=teacher)
