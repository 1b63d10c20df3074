"""Ensemble method: several trained networks as one embedding.

Each member (a trained ``siamese`` or ``proxy`` artifact) embeds the image
averaged with its mirror image (proxy's served network already does; a
siamese member is wrapped the same way), and the members' unit vectors are
concatenated and normalised. The cosine of two such vectors is the mean of
the members' cosines: a score fusion computed by the vector database itself,
in one collection and one search, where rank fusion of separate collections
(RRF) throws the scores away. The members are trained with ``fmsearch
train``; ``fmsearch combine`` builds the ensemble from their artifacts (no
training: one Keras model holding the members' weights, so it saves, loads
in safe mode and exports to ONNX like any other artifact). The design
experiments behind it are in docs/methods.md.

Reads top to bottom: the members' check, the combined network, the card's
record, the Embedder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.artifact_embedder import ArtifactEmbedder
from fmsearch.models.artifacts import load_verified, read_card, write_card

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
            raise InvalidArgumentError(f"{artifact} holds the {card.get('method')} method's network; an ensemble's "
                                       f"members are {' or '.join(MEMBER_METHODS)} artifacts")
        if card["artifact_sha256"] in seen:
            raise InvalidArgumentError(f"{artifact} is given twice (the same SHA-256)")
        seen.add(card["artifact_sha256"])
        cards.append(card)
    trained_on = {str(c.get("trained_on")) for c in cards}
    if len(trained_on) > 1:  # a member trained without the validation images, another with them
        raise InvalidArgumentError("the members were trained on different images (their cards' trained_on: "
                                   f"{', '.join(sorted(trained_on))}); train them on the same split")
    return cards


def combine(artifacts: list[str | os.PathLike], cards: list[dict[str, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """The ensemble network of the members (each verified against its card
    and loaded in safe mode) and the card's record of them; ``cards``: the
    members' cards from :func:`member_cards`, when already read."""
    import keras
    from keras import layers

    from fmsearch.models.proxy import flip_averaged

    cards = cards or member_cards(artifacts)
    inputs = keras.Input((28, 28, 1), name="image")
    outputs = []
    for i, (artifact, card) in enumerate(zip(artifacts, cards)):
        member = load_verified(artifact)
        if card["method"] in MIRRORED:
            member.name = f"member_{i}"
        else:
            member = flip_averaged(member, name=f"member_{i}")
        outputs.append(member(inputs))
    joined = layers.Concatenate(name="members")(outputs)
    model = keras.Model(inputs, layers.UnitNormalization(name="embedding")(joined), name="ensemble_embedding")
    record = {
        "method": "ensemble",
        "embedding_dim": sum(int(c["embedding_dim"]) for c in cards),
        "served": "unit(concat(m_1(x), ..., m_k(x))) with each member m_i(x) = unit(net_i(x) + net_i(mirror of x)); "
                  "the cosine of two images is the mean of the members' cosines",
        "members": [_member(artifact, card) for artifact, card in zip(artifacts, cards)],
        "trained_on": cards[0].get("trained_on"),
        "data_sha256": cards[0].get("data_sha256"),
    }
    return model, record


def _member(artifact: str | os.PathLike, card: dict[str, Any]) -> dict[str, Any]:
    """What an ensemble's card keeps of a member: enough to retrain it."""
    keep = ("method", "artifact_sha256", "command", "date", "epochs", "seed", "augment", "losses_trained", "mining",
            "trained_on", "data_sha256", "machine", "software", "wall_time_s", "final_loss",
            "eval_test_split_numpy_exact")
    return {"artifact": Path(artifact).name, **{k: card[k] for k in keep if k in card},
            "mirror_averaged": "by its own network" if card["method"] in MIRRORED else "by the ensemble"}


def build(artifacts: list[str | os.PathLike], out: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
          evaluate: bool = True) -> dict[str, Any]:
    """Combine the members, write ``<out>/ensemble.keras``, its card (the
    members' cards, the command, the test-split precision unless not
    ``evaluate``) and its ONNX export; returns the card."""
    from fmsearch.models.tf_runtime import import_tensorflow, require_exporter
    from fmsearch.models.training import output_folder, provenance, quick_eval

    cards = member_cards(artifacts)  # the members' check, before TensorFlow loads
    out_dir = output_folder(out)
    import_tensorflow("combining an ensemble")
    require_exporter("combining an ensemble")
    model, record = combine(artifacts, cards)
    artifact = out_dir / "ensemble.keras"
    tmp = out_dir / ".ensemble.tmp.keras"
    model.save(tmp)
    os.replace(tmp, artifact)
    card = {**provenance((record["trained_on"] or {}).get("images")), **record,
            "command": f"fmsearch combine --out {out} " + " ".join(str(a) for a in artifacts)}
    if evaluate:
        card["eval_test_split_numpy_exact"] = quick_eval(model, data_dir)
    write_card(artifact, card)
    from fmsearch.models.export import export_onnx  # query time runs the export

    return export_onnx(artifact, data_dir)


class EnsembleEmbedder(ArtifactEmbedder):
    """The members' mirror-averaged vectors, concatenated and normalised."""

    name = "ensemble"
