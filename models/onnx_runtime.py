"""Running an exported encoder with ONNX Runtime: what query time uses.

ONNX Runtime imports in about a tenth of a second and needs no training
framework; it gives the vectors Keras gives (to about 1e-6, recorded per
artifact in its model card).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fmsearch.errors import InvalidArgumentError, ModelError


def check_threads(threads: int | None) -> int | None:
    """Threads one inference may use (None: ONNX Runtime's default, one per core)."""
    if threads is not None and not 1 <= int(threads) <= (os.cpu_count() or 1) * 4:
        raise InvalidArgumentError(
            f"threads must be between 1 and {(os.cpu_count() or 1) * 4}, got {threads}", param="threads"
        )
    return None if threads is None else int(threads)


def load_session(
    model: str | os.PathLike | bytes, threads: int | None = None, spin: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A forward function over an ONNX model (a file, or its bytes):
    (N, 28, 28, 1) float32 -> (N, d). ``spin``: the intra-op threads
    spin-wait for work between calls (ONNX Runtime's default: lower latency
    for one caller; a loaded service turns it off, so idle threads leave the
    cores to the rest of the request).

    Raises:
        ModelError: the file cannot be loaded.
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ModelError("ONNX Runtime is not installed (pip install onnxruntime)") from err
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1  # one encoder, one graph: parallelism lives inside the ops
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    try:
        source = model if isinstance(model, bytes) else str(model)
        session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types for a bad file
        what = "the ONNX model" if isinstance(model, bytes) else Path(model)
        raise ModelError(f"cannot load {what}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
    name = session.get_inputs()[0].name

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]

    return forward


def onnxruntime_version() -> str:
    import onnxruntime as ort

    return ort.__version__
