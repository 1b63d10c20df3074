"""fmsearch map: the projection, its neighbour keeping, map.json."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.errors import InvalidArgumentError, ModelError
from fmsearch.evaluation.projection import MapConfig, make_map, neighbour_keeping, project


def test_neighbour_keeping_of_hand_made_layouts():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(200, 2))
    # vectors whose cosine order is the plane's distance order: (x, y, c) with c large keeps near-planar
    vectors = np.column_stack([xy, np.full(200, 100.0)])
    assert neighbour_keeping(vectors, xy.astype(np.float32)) == 1.0
    shuffled = xy[rng.permutation(200)]
    assert neighbour_keeping(vectors, shuffled) < 0.15  # chance: about 10 of 199
    # a hand case, k=1: four vectors at 0, 45, 63.4 and 74.1 degrees (nearest by cosine: 1, 2, 3, 2),
    # a map putting them at x = 0, 2, 1.2, 4 (nearest there: 2, 2, 1, 1): only point 1 keeps its neighbour
    line = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.5]])
    moved = np.array([[0.0, 0], [2.0, 0], [1.2, 0], [4.0, 0]])
    assert neighbour_keeping(line, moved, k=1) == 0.25
    with pytest.raises(InvalidArgumentError, match="need more than 10 points"):
        neighbour_keeping(vectors[:10], xy[:10])


@pytest.mark.parametrize("algorithm", ["tsne", "umap"])
def test_projection_is_deterministic_for_a_seed(algorithm):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(150, 8)).astype(np.float32)
    a, b = project(vectors, algorithm, 3), project(vectors, algorithm, 3)
    assert a.shape == (150, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, project(vectors, algorithm, 4))


def test_a_missing_extra_is_a_one_line_model_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # import openTSNE raises ImportError
    with pytest.raises(ModelError, match=r"pip install 'fmsearch\[map\]'"):
        project(np.zeros((20, 4), np.float32), "tsne", 0)


def test_map_of_the_home(home):
    from fmsearch.store import open_store

    store = open_store(None, home=home)
    try:
        data = make_map(store, MapConfig("siamese", points=200, seed=5))
        again = make_map(store, MapConfig("siamese", points=200, seed=5))
    finally:
        store.close()
    n = data["points"]
    assert n == 200 and len(data["ids"]) == len(data["x"]) == len(data["y"]) == len(data["labels"]) == n
    assert data["ids"] == sorted(set(data["ids"])) and max(data["ids"]) < 300
    assert (data["x"], data["y"], data["ids"]) == (again["x"], again["y"], again["ids"])
    assert 0 < data["neighbour_keeping@10"] <= 1
    assert len(data["class_names"]) == 10 and set(data["labels"]) <= set(range(10))


def test_cli_writes_map_json_and_png(insight):
    data = json.loads((insight / "map-siamese" / "map.json").read_text())
    assert data["points"] == 300 and data["settings"]["algorithm"] == "tsne"
    assert (insight / "map-siamese" / "map.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "siamese", "--points", "5"], "Error: --points must be between 100 and 70000, got 5"),
        (["-m", "sift"], "sift is a rerank stage, not a search method"),
        (["-m", "autoencoder"], "fmnist_autoencoder"),
    ],
)
def test_cli_bad_input_is_one_line(home, tmp_path, args, message):
    result = CliRunner().invoke(main, ["--home", str(home), "map", *args, "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
