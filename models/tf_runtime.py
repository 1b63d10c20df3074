"""Importing TensorFlow without its start-up chatter on the terminal.

TensorFlow's C++ runtime writes a few lines straight to file descriptor 2
while it is imported and finds its devices: absl's "log messages before
InitializeLog" warning, the oneDNN notice, and, with the CUDA-enabled
``tensorflow`` wheel on a machine without a GPU, "failed call to cuInit".
Some come before its logging is configured, so ``TF_CPP_MIN_LOG_LEVEL``
cannot silence them. They say nothing a user of the CLI can act on, so the
first import and the device discovery run with fd 2 pointed at /dev/null.
Errors still raise (the exception carries its message). Set
``FMSEARCH_TF_LOGS=1`` to see the lines.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from fmsearch import environment
from fmsearch.errors import ModelError

#: what adds the training framework to the default (lean) install
TRAIN_EXTRA = "fmsearch[train]"


def missing_extra(what: str, package: str) -> ModelError:
    """The one-line error for a part of the training extra that is not installed."""
    return ModelError(f"{what} needs {package}, which the default install leaves out: pip install '{TRAIN_EXTRA}'")


def require_exporter(what: str) -> None:
    """Check that the ONNX exporter (tf2onnx, onnx) is installed.

    Raises:
        ModelError: it is not; the message names the extra.
    """
    import importlib.util

    for package in ("tf2onnx", "onnx"):
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):  # a module blocked in sys.modules, or broken
            found = False
        if not found:
            raise missing_extra(what, package)


def import_tensorflow(what: str = "this") -> ModuleType:
    """``import tensorflow`` (and Keras) with fd 2 muted for the first import.

    Raises:
        ModelError: TensorFlow is not installed (the lean install); the
            message names the extra that adds it and what needed it.
    """
    try:
        return _import_tensorflow()
    except ImportError as err:
        raise missing_extra(what, "TensorFlow") from err


def _import_tensorflow() -> ModuleType:
    if "tensorflow" in sys.modules or environment.tf_logs():
        import keras  # noqa: F401
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401  (imports TensorFlow, its backend)
        import tensorflow

        tensorflow.config.list_physical_devices()  # CUDA probing happens here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
