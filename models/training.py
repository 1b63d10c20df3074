"""`fmsearch train`: train a method on the FMNIST train split, save artifact + card."""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.images.fmnist import FILES, load_split
from fmsearch.models.artifacts import load_verified, read_card, write_card
from fmsearch.models.base import l2_normalize
from fmsearch.models.registry import TRAINABLE

logger = logging.getLogger(__name__)
from fmsearch.models.artifact_embedder import to_model_input
from fmsearch.models.tf_runtime import import_tensorflow, require_exporter


def quick_eval(model, data_dir: str | os.PathLike | None = None, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Exact precision@K of the trained embedding on the full test split vs the
    train gallery (numpy brute force; `fmsearch evaluate` measures the same
    through Qdrant)."""
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    g = l2_normalize(model.predict(to_model_input(train.images), batch_size=1024, verbose=0))
    out = {f"P@{k}": 0.0 for k in ks}
    kmax = max(ks)
    for lo in range(0, len(test), 1000):
        q = l2_normalize(model.predict(to_model_input(test.images[lo : lo + 1000]), batch_size=1000, verbose=0))
        s = q @ g.T
        idx = np.argpartition(-s, kmax, axis=1)[:, :kmax]
        idx = np.take_along_axis(idx, np.argsort(-np.take_along_axis(s, idx, 1), axis=1), 1)
        rel = train.labels[idx] == test.labels[lo : lo + 1000, None]
        for k in ks:
            out[f"P@{k}"] += float(rel[:, :k].mean(axis=1).sum())
    return {k: v / len(test) for k, v in out.items()}


def _check(method: str, epochs: int, batch_size: int, out: str | os.PathLike, limit: int | None,
           mining: str | None, learning_rate: float, init) -> Path:
    """Every setting checked before a minute of training is spent; returns
    the output folder, made and found writable."""
    if method not in TRAINABLE:
        raise InvalidArgumentError(f"cannot train {method!r}; trainable methods: {', '.join(TRAINABLE)}",
                                   param="method")
    if epochs < 1:
        raise InvalidArgumentError(f"epochs must be at least 1, got {epochs}", param="epochs")
    if batch_size < 2:
        raise InvalidArgumentError(f"batch size must be at least 2, got {batch_size}", param="batch_size")
    if limit is not None and limit < 2:
        raise InvalidArgumentError(f"limit must be at least 2, got {limit}", param="limit")
    if mining is not None and method != "siamese":
        raise InvalidArgumentError("mining applies to siamese only", param="mining")
    if init is not None and method != "siamese":
        raise InvalidArgumentError("init applies to siamese only", param="init")
    if not 0 < learning_rate < 1:
        raise InvalidArgumentError(f"learning rate must be in (0, 1), got {learning_rate}", param="learning_rate")
    out_dir = Path(out)
    try:  # before training: a run is minutes to an hour, its result must have somewhere to go
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as err:
        raise InvalidArgumentError(f"cannot write to out {out}: {err.strerror or err}", param="out") from err
    return out_dir


def train_method(
    method: str,
    *,
    epochs: int,
    batch_size: int = 256,
    seed: int = 0,
    out: str | os.PathLike = "trained-models",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    evaluate: bool = True,
    mining: str | None = None,
    learning_rate: float = 1e-3,
    init: str | os.PathLike | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Train ``method``, write ``<out>/<method>.keras`` and its card.

    ``mining`` (siamese only) defaults to "semi-hard"; ``init`` (siamese
    only) continues a verified artifact, whose card the new card keeps.

    Returns:
        The model card.
    """
    out_dir = _check(method, epochs, batch_size, out, limit, mining, learning_rate, init)
    mining = mining or "semi-hard"
    import_tensorflow(f"training {method}")
    require_exporter(f"training {method}")  # the export at the end: find out now, not after an hour
    # continue training a verified artifact; the new card keeps the old one (the chain)
    init_model, parent = (load_verified(init), read_card(init)) if init is not None else (None, None)
    train = load_split("train", data_dir)
    n = len(train) if limit is None else min(limit, len(train))
    if method == "siamese":
        from fmsearch.models.siamese import train as fit

        model, record = fit(train.images[:n], train.labels[:n], epochs=epochs, batch_size=batch_size, seed=seed,
                            mining=mining, learning_rate=learning_rate, init_model=init_model, verbose=verbose,
                            log=log)
    else:
        from fmsearch.models.autoencoder import train as fit

        model, record = fit(train.images[:n], epochs=epochs, batch_size=batch_size, seed=seed,
                            learning_rate=learning_rate, verbose=verbose)
    artifact = out_dir / f"{method}.keras"
    tmp = out_dir / f".{method}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, artifact)
    command = (f"fmsearch train --method {method} --epochs {epochs} --batch-size {batch_size} --seed {seed}"
               + (f" --mining {mining}" if method == "siamese" else "")
               + (f" --learning-rate {learning_rate:g}" if learning_rate != 1e-3 else "")
               + (f" --init {init}" if init is not None else "")
               + (f" --limit {limit}" if limit else "") + f" --out {out}")
    card = {**record, **_provenance(n), "command": command}
    if parent is not None:
        card["init"] = parent
    if evaluate:
        card["eval_test_split_numpy_exact"] = quick_eval(model, data_dir)
    write_card(artifact, card)
    from fmsearch.models.export import export_onnx  # query time runs the export

    return export_onnx(artifact, data_dir)


def _provenance(images: int) -> dict[str, Any]:
    """What a card records of the data, the date, the software and the machine."""
    import keras
    import tensorflow as tf

    return {
        "trained_on": {"split": "train", "images": images},
        "data_sha256": {f.name: f.sha256 for f in FILES.values() if f.split == "train"},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "software": {"keras": keras.__version__, "tensorflow": tf.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine()},
    }
