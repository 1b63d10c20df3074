"""`fmsearch train`: train a method on the FMNIST train split, save artifact + card."""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.images.fmnist import FILES, SPLIT_SIZES, load_split
from fmsearch.models.artifact_embedder import to_model_input
from fmsearch.models.artifacts import default_artifact, load_verified, read_card, write_card
from fmsearch.models.augment import AUGMENTATIONS
from fmsearch.models.base import l2_normalize
from fmsearch.models.distilled import LOSSES as DISTILLED_LOSSES
from fmsearch.models.distilled import TEACHER
from fmsearch.models.distilled import TOWER_NAME as DISTILLED_TOWER
from fmsearch.models.proxy import LOSSES as PROXY_LOSSES
from fmsearch.models.proxy import TOWER_NAME as PROXY_TOWER
from fmsearch.models.registry import TRAINABLE, method_names
from fmsearch.models.tf_runtime import import_tensorflow, require_exporter

logger = logging.getLogger(__name__)
#: the query expansions a validation run measures (the --expand N of a search)
VALIDATED_EXPANSIONS = (1, 2, 3, 5, 10)
#: the losses each method can train with (--loss), the first its default
METHOD_LOSSES = {"proxy": PROXY_LOSSES, "distilled": DISTILLED_LOSSES}
#: the mirror-averaged networks' towers, measured alone in a validation run
TOWERS = (PROXY_TOWER, DISTILLED_TOWER)


def _embed(model, images: np.ndarray) -> np.ndarray:
    return l2_normalize(model.predict(to_model_input(images), batch_size=1024, verbose=0))


def vector_precision(
    q: np.ndarray,
    g: np.ndarray,
    gallery_labels: np.ndarray,
    query_labels: np.ndarray,
    ks: tuple[int, ...],
    expand: int = 0,
) -> dict[str, float]:
    """Precision@K of unit query vectors against unit gallery vectors (exact,
    cosine); ``expand``: average query expansion by the nearest ``expand``
    (as the search mode does it through Qdrant)."""
    out = {f"P@{k}": 0.0 for k in ks}
    kmax = max(ks + (expand,))
    for lo in range(0, len(q), 1000):
        part = q[lo : lo + 1000]
        s = part @ g.T
        idx = np.argpartition(-s, kmax, axis=1)[:, :kmax]
        idx = np.take_along_axis(idx, np.argsort(-np.take_along_axis(s, idx, 1), axis=1), 1)
        if expand:
            part = l2_normalize(part + g[idx[:, :expand]].sum(axis=1))
            s = part @ g.T
            idx = np.argpartition(-s, kmax, axis=1)[:, :kmax]
            idx = np.take_along_axis(idx, np.argsort(-np.take_along_axis(s, idx, 1), axis=1), 1)
        rel = gallery_labels[idx] == query_labels[lo : lo + 1000, None]
        for k in ks:
            out[f"P@{k}"] += float(rel[:, :k].mean(axis=1).sum())
    return {k: round(v / len(q), 5) for k, v in out.items()}


def exact_precision(
    model,
    gallery_images: np.ndarray,
    gallery_labels: np.ndarray,
    query_images: np.ndarray,
    query_labels: np.ndarray,
    ks: tuple[int, ...] = (1, 10),
) -> dict[str, float]:
    """Exact precision@K of an embedding network: each query against the
    whole gallery (numpy brute force, cosine), relevant = same class."""
    return vector_precision(
        _embed(model, query_images), _embed(model, gallery_images), gallery_labels, query_labels, ks
    )


def quick_eval(model, data_dir: str | os.PathLike | None = None, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Exact precision@K of the trained embedding on the full test split vs the
    train gallery (`fmsearch evaluate` measures the same through Qdrant)."""
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    return exact_precision(model, train.images, train.labels, test.images, test.labels, ks)


def validate(model, images: np.ndarray, labels: np.ndarray, n_train: int) -> dict[str, Any]:
    """Precision@1/@10 of the held-out train images (``[n_train:]``) against
    the images trained on (``[:n_train]``): the figure design choices are
    made by, never the test split. For a flip-averaged network, also the
    figure of its tower alone."""
    g, q = _embed(model, images[:n_train]), _embed(model, images[n_train:])
    held = (labels[:n_train], labels[n_train:], (1, 10))
    out: dict[str, Any] = {
        "queries": len(images) - n_train,
        "gallery": n_train,
        "split": f"train images {n_train}-{len(images) - 1} against 0-{n_train - 1}",
        **vector_precision(q, g, *held),
    }
    # the query expansion mode (--expand N) on the same split: which N, if any
    out["expand"] = {str(n): vector_precision(q, g, *held, expand=n) for n in VALIDATED_EXPANSIONS if n < n_train}
    towers = [layer for layer in model.layers if layer.name in TOWERS]
    if not towers:
        return out
    tower = towers[0]
    out["tower_alone"] = exact_precision(tower, images[:n_train], labels[:n_train], images[n_train:], labels[n_train:])
    return out


def _check(
    method: str,
    epochs: int,
    batch_size: int,
    out: str | os.PathLike,
    limit: int | None,
    mining: str | None,
    learning_rate: float,
    init,
    validation: int | None,
    augment: str | None,
    loss: str | None,
    teacher: str | os.PathLike | None = None,
    views: int | None = None,
) -> Path:
    """Every setting checked before a minute of training is spent; returns
    the output folder, made and found writable."""
    if method not in TRAINABLE:
        raise InvalidArgumentError(
            f"cannot train {method!r}; trainable methods: {', '.join(TRAINABLE)}", param="method"
        )
    if epochs < 1:
        raise InvalidArgumentError(f"epochs must be at least 1, got {epochs}", param="epochs")
    if batch_size < 2:
        raise InvalidArgumentError(f"batch size must be at least 2, got {batch_size}", param="batch_size")
    if limit is not None and limit < 2:
        raise InvalidArgumentError(f"limit must be at least 2, got {limit}", param="limit")
    if validation is not None and not 1 <= validation <= min(limit or SPLIT_SIZES["train"], SPLIT_SIZES["train"]) - 2:
        raise InvalidArgumentError(
            f"validation must hold out at least 1 image and leave 2 to train on, got {validation}", param="validation"
        )
    if mining is not None and method != "siamese":
        raise InvalidArgumentError("mining applies to siamese only", param="mining")
    if init is not None and method != "siamese":
        raise InvalidArgumentError("init applies to siamese only", param="init")
    if augment is not None and method != "proxy":
        raise InvalidArgumentError("augment applies to proxy only", param="augment")
    for name, value in (("teacher", teacher), ("views", views)):
        if value is not None and method != "distilled":
            raise InvalidArgumentError(f"{name} applies to distilled only", param=name)
    if views is not None and not 0 <= views <= 8:
        raise InvalidArgumentError(f"views must be 0-8, got {views}", param="views")
    if loss is not None and method not in METHOD_LOSSES:
        raise InvalidArgumentError(f"loss applies to {' and '.join(METHOD_LOSSES)} only", param="loss")
    if loss is not None and loss not in METHOD_LOSSES[method]:
        raise InvalidArgumentError(
            f"unknown loss {loss!r} for {method}; valid: {', '.join(METHOD_LOSSES[method])}", param="loss"
        )
    if method == "distilled":  # the teacher and its card exist, and it is a method's, before TensorFlow loads
        given = teacher or default_artifact(TEACHER)
        made_by = read_card(given).get("method")
        if made_by not in method_names():
            raise InvalidArgumentError(
                f"the teacher {given} holds the {made_by} method's network; a teacher is one of: "
                f"{', '.join(method_names())}",
                param="teacher",
            )
    if augment is not None and augment not in AUGMENTATIONS:
        raise InvalidArgumentError(
            f"unknown augmentation {augment!r}; valid: {', '.join(AUGMENTATIONS)}", param="augment"
        )
    if not 0 < learning_rate < 1:
        raise InvalidArgumentError(f"learning rate must be in (0, 1), got {learning_rate}", param="learning_rate")
    return output_folder(out)


def output_folder(out: str | os.PathLike) -> Path:
    """The output folder, made and found writable."""
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
    validation: int | None = None,
    augment: str | None = None,
    loss: str | None = None,
    teacher: str | os.PathLike | None = None,
    views: int | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Train ``method``, write ``<out>/<method>.keras`` and its card.

    ``mining`` (siamese only) defaults to "semi-hard"; ``init`` (siamese
    only) continues a verified artifact, whose card the new card keeps;
    ``augment`` (proxy only) defaults to "flip-shift"; ``loss`` (proxy and
    distilled) to the first of the method's losses; ``teacher`` (distilled
    only) to the shipped ensemble, whose vectors of the (limited) train
    images (and ``views``, distilled only, default 0, shifted copies of them)
    are computed once and cached. ``validation`` holds out the last N
    of the (limited) train images: the model trains on the rest, and the card
    records their precision against them.

    Returns:
        The model card.
    """
    out_dir = _check(
        method, epochs, batch_size, out, limit, mining, learning_rate, init, validation, augment, loss, teacher, views
    )
    import_tensorflow(f"training {method}")
    require_exporter(f"training {method}")  # the export at the end: find out now, not after an hour
    # continue training a verified artifact; the new card keeps the old one (the chain)
    init_model, parent = (load_verified(init), read_card(init)) if init is not None else (None, None)
    train = load_split("train", data_dir)
    n = len(train) if limit is None else min(limit, len(train))
    fit_n = n - (validation or 0)  # trained on [:fit_n], validated on [fit_n:n]
    images, labels = train.images[:fit_n], train.labels[:fit_n]
    targets, taught = _teacher_targets(method, teacher, views, train.images[:n], log)
    # the settings the training takes and its card's command records
    settings: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "mining": mining or "semi-hard",
        "learning_rate": learning_rate,
        "augment": augment or "flip-shift",
        "loss": loss or (METHOD_LOSSES[method][0] if method in METHOD_LOSSES else None),
    }
    model, record = _fit(
        method,
        images,
        labels,
        init_model=init_model,
        targets=None if targets is None else targets[:, :fit_n],
        verbose=verbose,
        log=log,
        **settings,
    )
    if taught is not None:  # the teacher's vectors are part of the training's cost
        taught["used"] = f"the first {fit_n} images' views"
        record.update(teacher_vectors=taught, wall_time_s=record["fit_wall_time_s"] + taught["wall_time_s"])
    views_taught = len(targets) - 1 if targets is not None else None
    command = _command(
        method, init=init, teacher=teacher, views=views_taught, limit=limit, validation=validation, out=out, **settings
    )
    card = {**record, **provenance(fit_n), "command": command, **({"init": parent} if parent is not None else {})}
    held_out = (train.images[:n], train.labels[:n], fit_n) if validation else None
    return _save(model, card, out_dir / f"{method}.keras", held_out, evaluate, data_dir, log)


def _save(
    model,
    card: dict[str, Any],
    artifact: Path,
    held_out: tuple[np.ndarray, np.ndarray, int] | None,
    evaluate: bool,
    data_dir: str | os.PathLike | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Write the trained model to ``artifact`` and its card, with the
    validation figures of ``held_out`` (images, labels, how many were
    trained on) and, when ``evaluate``, the test split's; then the checked
    ONNX export. Returns the card."""
    tmp = artifact.with_name(f".{artifact.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, artifact)
    if held_out is not None:
        card["validation"] = validate(model, *held_out)
        log(
            "validation: "
            + ", ".join(f"{k} {v}" for k, v in card["validation"].items() if k.startswith(("P@", "tower")))
        )
    if evaluate:
        card["eval_test_split_numpy_exact"] = quick_eval(model, data_dir)
    write_card(artifact, card)
    from fmsearch.models.export import export_onnx  # query time runs the export

    return export_onnx(artifact, data_dir)


def _fit(
    method: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    mining: str,
    learning_rate: float,
    init_model: Any,
    targets: np.ndarray | None,
    augment: str,
    loss: str,
    verbose: int,
    log: Callable[[str], None],
) -> tuple[Any, dict[str, Any]]:
    """Train one method's model on the images (``targets``: a distilled
    run's teacher vectors of them): the model and its training record."""
    if method == "siamese":
        from fmsearch.models.siamese import train as train_siamese

        return train_siamese(
            images,
            labels,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            mining=mining,
            learning_rate=learning_rate,
            init_model=init_model,
            verbose=verbose,
            log=log,
        )
    elif method == "proxy":
        from fmsearch.models.proxy import train as train_proxy

        return train_proxy(
            images,
            labels,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            learning_rate=learning_rate,
            augment=augment,
            loss=loss,
            verbose=verbose,
            log=log,
        )
    elif method == "distilled":
        from fmsearch.models.distilled import train as train_distilled

        assert targets is not None
        return train_distilled(
            images,
            labels,
            targets,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            learning_rate=learning_rate,
            loss=loss,
            verbose=verbose,
            log=log,
        )
    else:
        from fmsearch.models.autoencoder import train as train_autoencoder

        return train_autoencoder(
            images, epochs=epochs, batch_size=batch_size, seed=seed, learning_rate=learning_rate, verbose=verbose
        )


def _command(
    method: str,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    mining: str,
    augment: str,
    loss: str,
    learning_rate: float,
    init,
    teacher,
    views: int | None,
    limit: int | None,
    validation: int | None,
    out,
) -> str:
    """The `fmsearch train` command line that reproduces a run (its card records it)."""
    return (
        f"fmsearch train --method {method} --epochs {epochs} --batch-size {batch_size} --seed {seed}"
        + (f" --mining {mining}" if method == "siamese" else "")
        + (f" --augment {augment}" if method == "proxy" else "")
        + (f" --loss {loss}" if method in METHOD_LOSSES else "")
        + (f" --views {views}" if views is not None else "")
        + (f" --teacher {teacher}" if teacher is not None else "")
        + (f" --learning-rate {learning_rate:g}" if learning_rate != 1e-3 else "")
        + (f" --init {init}" if init is not None else "")
        + (f" --limit {limit}" if limit else "")
        + (f" --validation {validation}" if validation else "")
        + f" --out {out}"
    )


def _teacher_targets(
    method: str,
    teacher: str | os.PathLike | None,
    views: int | None,
    images: np.ndarray,
    log: Callable[[str], None],
) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """A distilled run's teacher vectors of every view of ``images`` (the
    limited train split, held-out images included, so that a validation run
    and a full run share one cache) and their record; (None, None) for any
    other method."""
    if method != "distilled":
        return None, None
    from fmsearch.models.distilled import VIEWS, teacher_vectors

    return teacher_vectors(teacher or default_artifact(TEACHER), images, VIEWS if views is None else views, log=log)


def provenance(images: int | None) -> dict[str, Any]:
    """What a card records of the data (``images``: how many trained on; None
    where a combined model's members do not say), the date, the software and
    the machine."""
    import keras
    import tensorflow as tf

    return {
        "trained_on": {"split": "train", "images": images},
        "data_sha256": {f.name: f.sha256 for f in FILES.values() if f.split == "train"},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": {"keras": keras.__version__, "tensorflow": tf.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine()},
    }
