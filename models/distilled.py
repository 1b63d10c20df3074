"""Distilled method: one network trained to reproduce the ensemble's embedding.

The ensemble (``models/ensemble.py``) is the best method and the dearest:
three networks, each run on the image, its mirror image and their one-pixel
shifts. The student is one tower of the proxy method's size, served like
proxy's (averaged with its mirror image), trained on the teacher's unit
vectors of the train images (and, if asked, of a fixed set of shifted views
of them; computed once, cached, their checksum in the card) and, for the
losses that say so, on the class labels (CosFace, as the proxy method). Song et al.
(2017) replaced several specialist embeddings by one trained with an L2 loss
on their outputs; Park et al. (2019) train on the teacher's pairwise
relations instead; both are losses here, chosen on the validation split
(docs/methods.md).

The teacher is exactly mirror-invariant (each member averages the image with
its mirror image, and its shift set is mirror-closed), so a view flipped at
random keeps its cached target: flips are free; shifts are the cached views.

Reads top to bottom: the teacher's vectors and their cache, the losses, the
batches, training, the Embedder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models import augment as aug
from fmsearch.models.artifact_embedder import ArtifactEmbedder, to_model_input

logger = logging.getLogger(__name__)

TOWER_NAME = "distilled_tower"
#: the teacher's method (its shipped artifact is the default teacher)
TEACHER = "ensemble"
#: the losses a distilled run can train with, the first the default (chosen
#: on the validation split: docs/methods.md): the teacher's in-batch cosines
#: (relational) with the proxy method's CosFace on the labels; the cosine
#: distance to the teacher's vector (the L2 loss of unit vectors), alone or
#: with CosFace
LOSSES = ("relational+cosface", "cosine", "cosine+cosface")
#: the shifted views of each train image the teacher embeds once (besides the image itself);
#: none by default (chosen on the validation split: docs/methods.md)
VIEWS = 0
#: the views' shifts: up to this many pixels each way, drawn once from VIEW_SEED
VIEW_SHIFT = 2
VIEW_SEED = 0


def teacher_cache_dir() -> Path:
    """Where teacher vectors are cached: the user cache's ``fmsearch/teacher-vectors``."""
    from fmsearch import environment

    base = environment.xdg_cache_home() or str(Path.home() / ".cache")
    return Path(base) / "fmsearch" / "teacher-vectors"


def view_images(images: np.ndarray, views: int) -> np.ndarray:
    """(1 + views, N, 28, 28): the images, then ``views`` copies each moved up
    to :data:`VIEW_SHIFT` pixels each way, drawn from :data:`VIEW_SEED`: the
    same views on every run and machine, and an image's views do not depend
    on how many images follow it (a validation run's first 50,000 have the
    views the full run's have)."""
    out = [images]
    for v in range(1, views + 1):
        moves = np.random.default_rng([VIEW_SEED, v]).integers(0, 2 * VIEW_SHIFT + 1, size=(len(images), 2))
        out.append(aug.moved(images, moves[:, 0], moves[:, 1], VIEW_SHIFT))
    return np.stack(out)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def teacher_vectors(
    teacher: str | os.PathLike,
    images: np.ndarray,
    views: int = VIEWS,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = logger.info,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The teacher's unit vectors of each view of each image, (1 + views, N,
    dim) float32, and the card's record of them (teacher, views, checksums,
    the time they took). Computed once per teacher, images and views, then
    read from the cache (its checksum checked; a damaged file is recomputed).

    Raises:
        ModelError: the teacher artifact is missing, altered or not an embedder's.
    """
    from fmsearch.models.artifacts import read_card, sha256_file
    from fmsearch.models.registry import get_embedder

    card = read_card(teacher)
    teacher_sha = card["artifact_sha256"]
    images_sha = _digest(images)
    folder = Path(cache) if cache is not None else teacher_cache_dir()
    key = f"{card.get('method')}-{teacher_sha[:16]}-{images_sha[:16]}"
    stem = f"{key}-views{views}"
    path, meta_path = folder / f"{stem}.npy", folder / f"{stem}.json"
    # a cache of more views holds these: the views are drawn per view (view_images)
    for found in sorted(folder.glob(f"{key}-views*.json"), key=lambda p: int(p.stem.rpartition("views")[2])):
        record = json.loads(found.read_text())
        if record.get("views", -1) < views:
            continue
        if sha256_file(found.with_suffix(".npy")) != record.get("sha256"):
            log(f"teacher vectors: {found.with_suffix('.npy')} does not match its checksum; not used")
            continue
        log(
            f"teacher vectors: read from {found.with_suffix('.npy')}"
            + (f" (its first {1 + views} views)" if record["views"] > views else "")
        )
        return np.load(found.with_suffix(".npy"))[: 1 + views], {**record, "views_used": views}
    embedder = get_embedder(card["method"], weights=teacher)
    t0 = time.perf_counter()
    vectors = np.stack([embedder.embed(v) for v in view_images(images, views)]).astype(np.float32)
    seconds = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}.tmp.npy"
    np.save(tmp, vectors)
    os.replace(tmp, path)
    record = {
        "teacher": {"method": card.get("method"), "artifact": Path(teacher).name, "artifact_sha256": teacher_sha},
        "teacher_runtime": getattr(embedder, "runs_on", "numpy"),
        "images": len(images),
        "images_sha256": images_sha,
        "views": views,
        "view_augmentation": f"the image, then {views} copies each moved up to {VIEW_SHIFT} px each way "
        f"(zero padding), drawn once from seed {VIEW_SEED}",
        "shape": list(vectors.shape),
        "sha256": sha256_file(path),
        "wall_time_s": round(seconds, 1),
    }
    meta_path.write_text(json.dumps(record, indent=2) + "\n")
    record["views_used"] = views
    log(f"teacher vectors: {vectors.shape[0]} views x {len(images)} images in {seconds:.0f}s, cached in {path}")
    return vectors, record


def cosine_distance_loss(targets, embeddings):
    """Mean over the batch of 1 - cos(student, teacher): half the squared L2
    distance of the two unit vectors."""
    from keras import ops

    return ops.mean(1.0 - ops.sum(targets * embeddings, axis=-1))


def relational_loss(targets, embeddings):
    """Mean squared difference of the in-batch cosine matrices of the student
    and of the teacher (the distance-wise relation of Park et al., 2019, in
    cosines): any student width, the teacher's geometry."""
    from keras import ops

    student = ops.matmul(embeddings, ops.transpose(embeddings))
    teacher = ops.matmul(targets, ops.transpose(targets))
    return ops.mean(ops.square(student - teacher))


def batches(images: np.ndarray, labels: np.ndarray, targets: np.ndarray, batch_size: int, seed: int, outputs):
    """A Keras ``PyDataset``: each epoch a new shuffle; each image of a batch
    one of its cached views (the image or a shifted copy) at random, mirrored
    with probability 0.5, with that view's teacher vector (the teacher is
    mirror-invariant) and its label, named per output of the trainer."""
    views = view_images(images, len(targets) - 1)

    def draw(idx: np.ndarray, rng: np.random.Generator):
        view = rng.integers(0, len(views), size=len(idx))
        y = {"embedding": targets[view, idx], "cosines": labels[idx]}
        return to_model_input(aug.flip(views[view, idx], rng)), {o: y[o] for o in outputs}

    return aug.shuffled(len(images), batch_size, seed, draw)


def train(
    images: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int = 40,
    batch_size: int = 256,
    seed: int = 0,
    learning_rate: float = 1e-3,
    loss: str = LOSSES[0],
    verbose: int = 1,
    log: Callable[[str], None] = logger.info,
) -> tuple[Any, dict[str, Any]]:
    """Train the student tower on the teacher's vectors ``targets`` (1 +
    views, N, dim) and, with CosFace, the labels; Adam with a cosine decay of
    the rate to 0. Returns the served network (the tower averaged with its
    mirror image, as proxy's) and the card's record."""
    import keras

    from fmsearch.models.proxy import class_proxies, flip_averaged, margin_softmax_loss
    from fmsearch.models.siamese import build_embedding_network, fit_recorded

    if loss not in LOSSES:
        raise InvalidArgumentError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}", param="loss")
    keras.utils.set_random_seed(seed)
    dim = int(targets.shape[-1])
    tower = build_embedding_network(dim, name=TOWER_NAME)
    inputs = keras.Input((28, 28, 1))
    embedding = tower(inputs)
    outputs: dict[str, Any] = {"embedding": embedding}
    if "cosface" in loss:
        outputs["cosines"] = class_proxies()(embedding)
    trainer = keras.Model(inputs, outputs)
    data = batches(images, np.asarray(labels, np.int32), targets, batch_size, seed, tuple(outputs))
    to_teacher = relational_loss if loss.startswith("relational") else cosine_distance_loss
    losses = {"embedding": to_teacher, "cosines": margin_softmax_loss}
    run = fit_recorded(
        trainer,
        tower,
        images,
        labels,
        {k: losses[k] for k in outputs},
        steps=epochs * len(data),
        epochs=epochs,
        learning_rate=learning_rate,
        verbose=verbose,
        log=log,
        x=data,
    )
    run["fit_wall_time_s"] = run.pop("wall_time_s")  # the card's wall time adds the teacher's vectors
    record = {
        "method": "distilled",
        "loss": {
            "cosine": "1 - cos(student, teacher) of each view",
            "cosine+cosface": "1 - cos(student, teacher) of each view, plus CosFace over learned class proxies "
            "(the proxy method's loss), weight 1 each",
            "relational+cosface": "mean squared difference of the student's and the teacher's in-batch cosine "
            "matrices, plus CosFace over learned class proxies, weight 1 each",
        }[loss],
        "losses_trained": loss,
        "embedding_dim": dim,
        "tower": "the siamese tower: 3 blocks of two 3x3 convolutions (32, 64, 128) with batch norm, "
        f"flatten, dense {dim}, batch norm, unit norm",
        "served": "unit(tower(x) + tower(mirror of x))",
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "learning_rate": learning_rate,
        "augmentation": "each image one of its cached views at random (the teacher's vectors), horizontal flip (p 0.5)",
        **run,
    }
    return flip_averaged(tower, name="distilled_embedding"), record


class DistilledEmbedder(ArtifactEmbedder):
    """One network trained on the ensemble's vectors: its 192-d embedding,
    averaged with its mirror image's."""

    name = "distilled"
