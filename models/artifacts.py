"""Trained-model artifacts: a ``.keras`` file, its ONNX export and the model
card beside them.

The card (``<name>.card.json``) records how the artifact was made (settings,
data checksums, epochs, losses, wall time) and the artifact's SHA-256. The
SHA-256 is the model's fingerprint: collections record it, and the artifact
is checked against it before it is loaded (with ``safe_mode=True``).

The ONNX export (``<name>.onnx``, what query time runs) is recorded in the
card's ``onnx`` entry: its SHA-256, the ``.keras`` SHA-256 it was exported
from, the opset, the versions it was made and checked with, and the largest
difference from Keras on a fixed batch of test images. An ONNX file is run
only when its own digest and its ``.keras`` sibling's match that entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fmsearch.errors import ModelError
from fmsearch.models.tf_runtime import import_tensorflow

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(artifact: str | os.PathLike) -> Path:
    p = Path(artifact)
    return p.with_name(p.name.removesuffix(".keras") + ".card.json")


def onnx_path(artifact: str | os.PathLike) -> Path:
    """Where the ONNX export of a ``.keras`` artifact lives: beside it."""
    p = Path(artifact)
    return p.with_name(p.name.removesuffix(".keras") + ".onnx")


def has_onnx(artifact: str | os.PathLike, card: dict[str, Any]) -> bool:
    """Whether the artifact has an ONNX export: in its card (the file is
    then checked when it is loaded, and its absence said), or beside it."""
    return "onnx" in card or onnx_path(artifact).is_file()


def verified_onnx(artifact: str | os.PathLike, card: dict[str, Any]) -> bytes:
    """The artifact's ONNX file's bytes, read once and checked against the
    card: their own SHA-256, and the ``.keras`` sibling they were exported
    from (what runs is what was checked).

    Raises:
        ModelError: no export, or a file that does not match its card.
    """
    keras_digest = verify_artifact(artifact, card)  # the artifact asked for comes first
    path = onnx_path(artifact)
    entry = card.get("onnx")
    if entry is None or not path.is_file():
        raise ModelError(f"{artifact} has no ONNX export beside it ({path.name}); export it first")
    if not isinstance(entry, dict):
        raise ModelError(f"the model card of {artifact} has an unreadable onnx entry; export it again")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror or err}") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256"):
        raise ModelError(
            f"{path} does not match its model card (SHA-256 {digest[:12]}..., card says "
            f"{str(entry.get('sha256'))[:12]}...); export it again or restore the file"
        )
    if keras_digest != entry.get("exported_from_sha256"):
        raise ModelError(
            f"{path} was not exported from {Path(artifact).name} as it is now (SHA-256 "
            f"{keras_digest[:12]}...); export it again"
        )
    return data


def record_onnx(artifact: str | os.PathLike, entry: dict[str, Any], export: str | os.PathLike) -> dict[str, Any]:
    """Record an export (the file at ``export``, about to become the
    artifact's ONNX file) in the artifact's card, written atomically."""
    card = read_card(artifact)
    card["onnx"] = {
        **entry,
        "file": onnx_path(artifact).name,
        "sha256": sha256_file(export),
        "exported_from_sha256": card["artifact_sha256"],
    }
    _write_json(card_path(artifact), card)
    return card


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a file atomically (a temp file, then a rename), readable as the one it replaces."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def default_artifact(method: str) -> Path:
    """The shipped artifact of a method (``models/weights/<method>.keras``)."""
    return WEIGHTS_DIR / f"{method}.keras"


def read_card(artifact: str | os.PathLike) -> dict[str, Any]:
    """The model card of an artifact.

    Raises:
        ModelError: the artifact or its card is missing or unreadable.
    """
    a = Path(artifact)
    if not a.is_file():
        raise ModelError(f"model artifact {a} not found; train it with `fmsearch train`")
    c = card_path(a)
    try:
        card = json.loads(c.read_text())
    except FileNotFoundError as err:
        raise ModelError(f"model card {c} not found beside {a.name}") from err
    except (OSError, ValueError) as err:
        raise ModelError(f"model card {c} is unreadable: {err}") from err
    if not isinstance(card, dict) or "artifact_sha256" not in card:
        raise ModelError(f"model card {c} has no artifact_sha256")
    return card


def write_card(artifact: str | os.PathLike, card: dict[str, Any]) -> dict[str, Any]:
    """Write the card with the artifact's SHA-256 (computed here)."""
    card = {**card, "artifact": Path(artifact).name, "artifact_sha256": sha256_file(artifact)}
    _write_json(card_path(artifact), card)
    return card


def verify_artifact(artifact: str | os.PathLike, card: dict[str, Any]) -> str:
    """The artifact's SHA-256, checked against its card.

    Raises:
        ModelError: the file is not what its card says.
    """
    digest = sha256_file(artifact)
    if digest != card["artifact_sha256"]:
        raise ModelError(
            f"{artifact} does not match its model card (SHA-256 {digest[:12]}..., card says "
            f"{card['artifact_sha256'][:12]}...); re-train with `fmsearch train` or restore the file"
        )
    return digest


def load_verified(artifact: str | os.PathLike, custom_objects: dict[str, Any] | None = None):
    """Check the SHA-256 against the card, then load with ``safe_mode=True``.

    Raises:
        ModelError: missing, altered or corrupt artifact.
    """
    verify_artifact(artifact, read_card(artifact))
    import_tensorflow(f"loading {Path(artifact).name}")
    import keras

    try:
        return keras.saving.load_model(artifact, safe_mode=True, compile=False, custom_objects=custom_objects)
    except Exception as err:  # Keras raises many types for a bad archive
        raise ModelError(f"cannot load {artifact}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
