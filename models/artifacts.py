"""Trained-model artifacts: a ``.keras`` file and its model card beside it.

The card (``<name>.card.json``) records how the artifact was made (settings,
data checksums, epochs, losses, wall time) and the artifact's SHA-256. The
SHA-256 is the model's fingerprint: collections record it, and the artifact
is checked against it before it is loaded (with ``safe_mode=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fmsearch.errors import ModelError

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
    card_path(artifact).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card


def load_verified(artifact: str | os.PathLike, custom_objects: dict[str, Any] | None = None):
    """Check the SHA-256 against the card, then load with ``safe_mode=True``.

    Raises:
        ModelError: missing, altered or corrupt artifact.
    """
    card = read_card(artifact)
    digest = sha256_file(artifact)
    if digest != card["artifact_sha256"]:
        raise ModelError(
            f"{artifact} does not match its model card (SHA-256 {digest[:12]}..., card says "
            f"{card['artifact_sha256'][:12]}...); re-train with `fmsearch train` or restore the file"
        )
    import keras

    try:
        return keras.saving.load_model(artifact, safe_mode=True, compile=False, custom_objects=custom_objects)
    except Exception as err:  # Keras raises many types for a bad archive
        raise ModelError(f"cannot load {artifact}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
