"""The ensemble method: `fmsearch combine` on two members trained for one
epoch on a few hundred images; its vectors against the members' computed by
hand; its refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow", reason="the training extra is not installed (pip install -e '.[train]')")

from fmsearch.cli import main  # noqa: E402
from fmsearch.models import get_embedder  # noqa: E402
from fmsearch.models.artifacts import card_path, load_verified, onnx_path, sha256_file  # noqa: E402
from fmsearch.models.base import l2_normalize  # noqa: E402
from fmsearch.models.training import train_method  # noqa: E402


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    out = tmp_path_factory.mktemp("members")
    paths = []
    for method in ("siamese", "proxy"):
        train_method(method, epochs=1, batch_size=64, limit=300, out=out / method, evaluate=False, verbose=0)
        paths.append(out / method / f"{method}.keras")
    return paths


@pytest.fixture(scope="module")
def ensemble(members, tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble")
    result = CliRunner().invoke(main, ["combine", "--out", str(out), "--no-eval", *map(str, members)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out}/ensemble.keras (2 members, 128-d")
    return out / "ensemble.keras"


def test_combine_concatenates_the_members_mirror_averaged_vectors(members, ensemble, fmnist):
    """unit(concat(unit(s(x) + s(mirror x)), p(x))): the siamese member
    mirror-averaged by the ensemble, the proxy member by its own network;
    the cosine of two vectors is the mean of the members' cosines."""
    images = fmnist["test"].images[:64]
    siamese, proxy = (get_embedder(m, weights=p) for m, p in zip(("siamese", "proxy"), members, strict=False))
    s = l2_normalize(siamese.embed(images) + siamese.embed(np.ascontiguousarray(images[:, :, ::-1])))
    p = proxy.embed(images)
    by_hand = np.hstack([s, p]) / np.sqrt(2)
    vectors = get_embedder("ensemble", weights=ensemble).embed(images)
    assert vectors.shape == (64, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, by_hand, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, (s @ s.T + p @ p.T) / 2, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_shift_averaged_ensemble_matches_numpy(members, fmnist, tmp_path):
    """combine --shifts 1: each member's mirror-averaged vector summed over
    the image and its four one-pixel shifts (zeros coming in), normalised,
    then concatenated; the ONNX export gives the same vectors."""
    from fmsearch.models.augment import shifted

    result = CliRunner().invoke(
        main, ["combine", "--out", str(tmp_path), "--shifts", "1", "--no-eval", *map(str, members)]
    )
    assert result.exit_code == 0, result.output
    artifact = tmp_path / "ensemble.keras"
    card = json.loads(card_path(artifact).read_text())
    assert card["shifts"] == 1 and card["command"].startswith(f"fmsearch combine --out {tmp_path} --shifts 1 ")
    images = fmnist["test"].images[:48]
    siamese, proxy = (get_embedder(m, weights=p) for m, p in zip(("siamese", "proxy"), members, strict=False))

    def mirrored_siamese(x):
        return l2_normalize(siamese.embed(x) + siamese.embed(np.ascontiguousarray(x[:, :, ::-1])))

    views = [shifted(images, dy, dx) for dy, dx in ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))]
    s = l2_normalize(sum(mirrored_siamese(v) for v in views))
    p = l2_normalize(sum(proxy.embed(v) for v in views))
    vectors = get_embedder("ensemble", weights=artifact).embed(images)
    assert vectors.shape == (48, 128)
    np.testing.assert_allclose(vectors, np.hstack([s, p]) / np.sqrt(2), atol=1e-5)
    keras = get_embedder("ensemble", weights=artifact, runtime="tensorflow").embed(images)
    np.testing.assert_allclose(vectors, keras, atol=1e-5)
    assert not np.allclose(vectors[:, :64] * np.sqrt(2), mirrored_siamese(images), atol=1e-3)  # not a no-op


def test_ensemble_reloads_safely_and_its_export_matches(ensemble, members, fmnist):
    card = json.loads(card_path(ensemble).read_text())
    assert card["method"] == "ensemble" and card["embedding_dim"] == 128
    assert [m["method"] for m in card["members"]] == ["siamese", "proxy"]
    assert [m["artifact_sha256"] for m in card["members"]] == [sha256_file(p) for p in members]
    assert all(m["command"].startswith(f"fmsearch train --method {m['method']} --epochs 1") for m in card["members"])
    assert card["command"] == f"fmsearch combine --out {ensemble.parent} {members[0]} {members[1]}"
    assert card["trained_on"] == {"split": "train", "images": 300}
    assert card["onnx"]["sha256"] == sha256_file(onnx_path(ensemble))
    model = load_verified(ensemble)
    assert model.output_shape == (None, 128)
    images = fmnist["test"].images[:32]
    onnx = get_embedder("ensemble", weights=ensemble)
    keras = get_embedder("ensemble", weights=ensemble, runtime="tensorflow")
    assert onnx.runs_on == "onnx"
    a = onnx.embed(images)
    np.testing.assert_allclose(a, keras.embed(images), atol=1e-5)
    np.testing.assert_array_equal(a, get_embedder("ensemble", weights=ensemble).embed(images))
    assert onnx.fingerprint == f"ensemble-sha256:{card['artifact_sha256']}"


def _copy(artifact, target, **card_changes):
    target.mkdir()
    shutil.copy(artifact, target / artifact.name)
    card = {**json.loads(card_path(artifact).read_text()), **card_changes}
    card_path(target / artifact.name).write_text(json.dumps(card))
    return target / artifact.name


def test_combine_refuses_bad_members_in_one_line(members, tmp_path):
    siamese, proxy = members
    other_split = _copy(proxy, tmp_path / "other", trained_on={"split": "train", "images": 50000})
    not_similarity = _copy(siamese, tmp_path / "ae", method="autoencoder")
    out = tmp_path / "out"
    for args, says in (
        ([siamese], "an ensemble needs at least 2 members, got 1"),
        ([siamese, siamese], f"{siamese} is given twice (the same SHA-256)"),
        (
            [siamese, not_similarity],
            f"{not_similarity} holds the autoencoder method's network; an ensemble's members are siamese or proxy",
        ),
        ([siamese, other_split], "the members were trained on different images"),
    ):
        result = CliRunner().invoke(main, ["combine", "--out", str(out), "--no-eval", *map(str, args)])
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"Error: {says}") and len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything was written


def test_shipped_ensemble_says_how_each_member_was_made():
    """The shipped ensemble: small, its members' train commands in its card
    (the shipped siamese and proxy among them, by SHA-256), 192-d, averaged
    over one-pixel shifts (the validation split's pick)."""
    from fmsearch.models.artifacts import default_artifact, read_card

    artifact = default_artifact("ensemble")
    card = read_card(artifact)
    assert artifact.stat().st_size < 5 * 2**20 and card["embedding_dim"] == 192
    assert card["command"].startswith("fmsearch combine --out models/weights --shifts 1 ") and card["shifts"] == 1
    assert all(m["command"].startswith(f"fmsearch train --method {m['method']} ") for m in card["members"])
    assert all(m["trained_on"] == {"split": "train", "images": 60000} for m in card["members"])
    shipped = {read_card(default_artifact(m))["artifact_sha256"] for m in ("siamese", "proxy")}
    assert shipped <= {m["artifact_sha256"] for m in card["members"]}
    assert load_verified(artifact).output_shape == (None, 192)
