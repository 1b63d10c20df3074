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
from fmsearch.models.tf_runtime import import_tensorflow, missing_extra

logger = logging.getLogger(__name__)

#: the fixed batch the export is checked on: the first test images
CHECK_IMAGES = 1024
#: the largest difference from Keras an export may show
TOLERANCE = 1e-5


def export_onnx(artifact: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                command: str | None = None) -> dict[str, Any]:
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
    try:
        import tf2onnx
    except ImportError as err:
        raise missing_extra("exporting to ONNX", "tf2onnx") from err
    import keras

    artifact = Path(artifact)
    model = load_verified(artifact)
    x = to_model_input(load_split("test", data_dir).images[:CHECK_IMAGES])
    expected = np.asarray(model(x, training=False))
    target = onnx_path(artifact)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():  # the exporter's own numpy deprecation notices
            warnings.simplefilter("ignore", FutureWarning)
            model.export(tmp, format="onnx", verbose=False)
        got = load_session(tmp)(x)
        diff = float(np.abs(got - expected).max())
        if not diff <= TOLERANCE:
            raise ModelError(f"the ONNX export of {artifact.name} differs from Keras by {diff:.2g} "
                             f"(more than {TOLERANCE:g}); it was not written")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    import onnx

    opset = max((o.version for o in onnx.load(str(target)).opset_import if o.domain in ("", "ai.onnx")), default=None)
    entry = {
        "opset": opset, "max_abs_diff_vs_keras": diff, "checked_on": f"the first {CHECK_IMAGES} FMNIST test images",
        "software": {"onnxruntime": onnxruntime_version(), "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
                     "onnx": onnx.__version__},
        "command": command or f"fmsearch export --weights {artifact}",
    }
    logger.info("exported %s (opset %s, max |diff| from Keras %.2g)", target, opset, diff)
    return record_onnx(artifact, entry)
