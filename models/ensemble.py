"""Ensemble method: several trained networks as one embedding.

Each member (a trained ``siamese`` or ``proxy`` artifact) embeds the image
averaged with its mirror image (proxy's served network already does; a
siamese member is wrapped the same way) and, with test-time shifts, also
averaged over the image moved a pixel up, down, left and right; the
members' unit vectors are concatenated and normalised. The cosine of two
such vectors is the mean of the members' cosines: a score fusion computed by
the vector database itself, in one collection and one search, where rank
fusion of separate collections (RRF) throws the scores away. The members are trained with ``fmsearch
train``; ``fmsearch combine`` builds the ensemble from their artifacts (no
training: one Keras model holding the members' weights, so it saves, loads
in safe mode and exports to ONNX like any other artifact). The design
experiments behind it are in docs/methods.md.

Reads top to bottom: the members' check, the test-time shifts, the combined
network, the card's record, the Embedder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.artifact_embedder import ArtifactEmbedder
from fmsearch.models.artifacts import load_verified, read_card, write_card
from fmsearch.models.augment import offsets

#: the methods an ensemble can hold: the ones trained for similarity
MEMBER_METHODS = ("siamese", "proxy")
#: members whose served network already averages the image with its mirror
MIRRORED = ("proxy",)


def member_cards(artifacts: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """The members' cards, checked: at least two, each a siamese or proxy
    artifact, none twice, all trained on the same images.

    Raises:
        InvalidArgumentError, ModelError (a missing or unreadable card).
    """
    if len(artifacts) < 2:
        raise InvalidArgumentError(f"an ensemble needs at least 2 members, got {len(artifacts)}")
    cards, seen = [], set()
    for artifact in artifacts:
        card = read_card(artifact)
        if card.get("method") not in MEMBER_METHODS:
            raise InvalidArgumentError(
                f"{artifact} holds the {card.get('method')} method's network; an ensemble's "
                f"members are {' or '.join(MEMBER_METHODS)} artifacts"
            )
        if card["artifact_sha256"] in seen:
            raise InvalidArgumentError(f"{artifact} is given twice (the same SHA-256)")
        seen.add(card["artifact_sha256"])
        cards.append(card)
    trained_on = {str(c.get("trained_on")) for c in cards}
    if len(trained_on) > 1:  # a member trained without the validation images, another with them
        raise InvalidArgumentError(
            "the members were trained on different images (their cards' trained_on: "
            f"{', '.join(sorted(trained_on))}); train them on the same split"
        )
    return cards


def shift_layers(inputs, shifts: int) -> list:
    """The image and, for ``shifts`` > 0, the image moved ``shifts`` pixels
    up, down, left and right (zero padding, then a crop: Keras's own layers,
    so the artifact loads in safe mode; numpy's twin is ``augment.shifted``)."""
    from keras import layers

    views = [inputs]
    for dy, dx in offsets(shifts)[1:]:
        pad = ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
        name = f"shift_{dy}_{dx}".replace("-", "m")
        padded = layers.ZeroPadding2D(pad, name=f"{name}_pad")(inputs)
        views.append(layers.Cropping2D((pad[0][::-1], pad[1][::-1]), name=f"{name}_crop")(padded))
    return views


def combine(
    artifacts: list[str | os.PathLike], cards: list[dict[str, Any]] | None = None, shifts: int = 0
) -> tuple[Any, dict[str, Any]]:
    """The ensemble network of the members (each verified against its card
    and loaded in safe mode) and the card's record of them; ``cards``: the
    members' cards from :func:`member_cards`, when already read; ``shifts``:
    each member's mirror-averaged vector also averaged over the image moved
    that many pixels each way (0: not)."""
    import keras
    from keras import layers

    from fmsearch.models.proxy import flip_averaged

    cards = cards or member_cards(artifacts)
    inputs = keras.Input((28, 28, 1), name="image")
    views = shift_layers(inputs, shifts)
    outputs = []
    for i, (artifact, card) in enumerate(zip(artifacts, cards, strict=False)):
        member = load_verified(artifact)
        if card["method"] in MIRRORED:
            member.name = f"member_{i}"
        else:
            member = flip_averaged(member, name=f"member_{i}")
        if len(views) == 1:
            outputs.append(member(inputs))
        else:
            summed = layers.Add(name=f"member_{i}_shifts")([member(v) for v in views])
            outputs.append(layers.UnitNormalization(name=f"member_{i}_shift_averaged")(summed))
    joined = layers.Concatenate(name="members")(outputs)
    model = keras.Model(inputs, layers.UnitNormalization(name="embedding")(joined), name="ensemble_embedding")
    mirrored = "unit(net_i(y) + net_i(mirror of y))"
    member_rule = (
        f"m_i(x) = {mirrored.replace('y', 'x')}"
        if not shifts
        else f"m_i(x) = unit(sum over y in (x and x moved {shifts} px up, down, left, right) of {mirrored})"
    )
    record = {
        "method": "ensemble",
        "embedding_dim": sum(int(c["embedding_dim"]) for c in cards),
        "shifts": shifts,
        "served": f"unit(concat(m_1(x), ..., m_k(x))) with each member {member_rule}; "
        "the cosine of two images is the mean of the members' cosines",
        "members": [_member(artifact, card) for artifact, card in zip(artifacts, cards, strict=False)],
        "trained_on": cards[0].get("trained_on"),
        "data_sha256": cards[0].get("data_sha256"),
    }
    return model, record


def _member(artifact: str | os.PathLike, card: dict[str, Any]) -> dict[str, Any]:
    """What an ensemble's card keeps of a member: enough to retrain it."""
    keep = (
        "method",
        "artifact_sha256",
        "command",
        "date",
        "epochs",
        "seed",
        "augment",
        "losses_trained",
        "mining",
        "trained_on",
        "data_sha256",
        "machine",
        "software",
        "wall_time_s",
        "final_loss",
        "eval_test_split_numpy_exact",
    )
    return {
        "artifact": Path(artifact).name,
        **{k: card[k] for k in keep if k in card},
        "mirror_averaged": "by its own network" if card["method"] in MIRRORED else "by the ensemble",
    }


def build(
    artifacts: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    evaluate: bool = True,
    shifts: int = 0,
) -> dict[str, Any]:
    """Combine the members (``shifts``: see :func:`combine`), write
    ``<out>/ensemble.keras``, its card (the members' cards, the command, the
    test-split precision unless not ``evaluate``) and its ONNX export;
    returns the card."""
    from fmsearch.models.tf_runtime import import_tensorflow, require_exporter
    from fmsearch.models.training import output_folder, provenance, quick_eval

    cards = member_cards(artifacts)  # the members' check, before TensorFlow loads
    offsets(shifts)  # a negative shift refused before TensorFlow loads
    out_dir = output_folder(out)
    import_tensorflow("combining an ensemble")
    require_exporter("combining an ensemble")
    model, record = combine(artifacts, cards, shifts)
    artifact = out_dir / "ensemble.keras"
    tmp = out_dir / ".ensemble.tmp.keras"
    model.save(tmp)
    os.replace(tmp, artifact)
    card = {
        **provenance((record["trained_on"] or {}).get("images")),
        **record,
        "command": f"fmsearch combine --out {out} "
        + (f"--shifts {shifts} " if shifts else "")
        + " ".join(str(a) for a in artifacts),
    }
    if evaluate:
        card["eval_test_split_numpy_exact"] = quick_eval(model, data_dir)
    write_card(artifact, card)
    from fmsearch.models.export import export_onnx  # query time runs the export

    return export_onnx(artifact, data_dir)


class EnsembleEmbedder(ArtifactEmbedder):
    """The members' mirror-averaged vectors, concatenated and normalised."""

    name = "ensemble"
