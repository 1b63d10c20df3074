"""Exporting a trained ``.keras`` artifact to ONNX, checked against Keras.

``fmsearch export`` and the end of ``fmsearch train`` write ``<name>.onnx``
beside the artifact and record it in the model card (see
:mod:`~fmsearch.models.artifacts`). This needs the training extra
(TensorFlow, Keras, tf2onnx); running the export does not.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import ModelError
from fmsearch.images.fmnist import load_split
from fmsearch.models.artifact_embedder import to_model_input
from fmsearch.models.artifacts import load_verified, onnx_path, record_onnx
from fmsearch.models.onnx_runtime import load_session, onnxruntime_version
from fmsearch.models.tf_runtime import import_tensorflow, require_exporter

logger = logging.getLogger(__name__)

#: the fixed batch the export is checked on: the first test images
CHECK_IMAGES = 1024
#: the largest difference from Keras an export may show
TOLERANCE = 1e-5


def export_onnx(
    artifact: str | os.PathLike, data_dir: str | os.PathLike | None = None, command: str | None = None
) -> dict[str, Any]:
    """Export ``artifact`` to ONNX beside it, check it, record it in the card.

    The export runs the ``.keras`` model (verified against its card) through
    Keras's ONNX exporter, then compares ONNX Runtime's vectors with Keras's
    on the first :data:`CHECK_IMAGES` test images.

    Returns:
        The updated model card.

    Raises:
        ModelError: the training extra is missing, the artifact does not
            match its card, or the export differs from Keras by more than
            :data:`TOLERANCE`.
    """
    import_tensorflow("exporting to ONNX")
    require_exporter("exporting to ONNX")
    artifact = Path(artifact)
    model = load_verified(artifact)
    x = to_model_input(load_split("test", data_dir).images[:CHECK_IMAGES])
    expected = np.asarray(model(x, training=False))
    target = onnx_path(artifact)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".onnx")
        os.close(fd)
    except OSError as err:
        raise ModelError(f"cannot write beside {artifact}: {err.strerror or err}") from err
    try:
        with warnings.catch_warnings():  # the exporter's own numpy deprecation notices
            warnings.simplefilter("ignore", FutureWarning)
            model.export(tmp, format="onnx", verbose=False)
        diff = float(np.abs(load_session(tmp)(x) - expected).max())
        if not diff <= TOLERANCE:
            raise ModelError(
                f"the ONNX export of {artifact.name} differs from Keras by {diff:.2g} "
                f"(more than {TOLERANCE:g}); it was not written"
            )
        os.chmod(tmp, _readable_mode())  # mkstemp's file is private; an artifact is read by every user
        card = record_onnx(artifact, _entry(tmp, diff, command or f"fmsearch export --weights {artifact}"), tmp)
        os.replace(tmp, target)  # the card names this file's digest: swapped in last
    except OSError as err:
        raise ModelError(f"cannot write {target}: {err.strerror or err}") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    logger.info("exported %s (opset %s, max |diff| from Keras %.2g)", target, card["onnx"]["opset"], diff)
    return card


def _entry(path: str, diff: float, command: str) -> dict[str, Any]:
    """What the card records of an export."""
    import keras
    import onnx
    import tf2onnx

    opset = max((o.version for o in onnx.load(path).opset_import if o.domain in ("", "ai.onnx")), default=None)
    return {
        "opset": opset,
        "max_abs_diff_vs_keras": diff,
        "checked_on": f"the first {CHECK_IMAGES} FMNIST test images",
        "software": {
            "onnxruntime": onnxruntime_version(),
            "keras": keras.__version__,
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
        },
        "command": command,
    }


def _readable_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
