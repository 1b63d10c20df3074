"""fmsearch duplicates: threshold queries, grouping, reports, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import duplicates
from fmsearch.evaluation.duplicates import DuplicatesConfig, find_duplicates, find_pairs, group
from fmsearch.evaluation.report import render_duplicates_markdown, write_duplicates_report
from fmsearch.images.files import encode_png
from fmsearch.store import schema

DIM = 16
THRESHOLD = 0.99


def _near(v: np.ndarray, rng: np.random.Generator, noise: float = 0.01) -> np.ndarray:
    w = v + noise * rng.normal(size=v.shape)
    return w / np.linalg.norm(w)


def _copies_collection(store, prefix):
    """A hand-made pixels collection: 30 train + 5 test points, random unit
    vectors (far apart), and known copies:

    - train 0, 1, 2 copies of one image (label 3);
    - train 4 and 5 copies with different labels (2 and 6): a conflict;
    - test 60003 a copy of train 7: a test image with a train copy;
    - train 10 -> 11 -> 12 a chain (10 and 12 score under the threshold,
      each next to 11 over it): one group.
    """
    rng = np.random.default_rng(3)
    ids = list(range(30)) + [60000 + i for i in range(5)]
    v = rng.normal(size=(len(ids), DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    row = {pid: r for r, pid in enumerate(ids)}
    v[row[1]], v[row[2]] = _near(v[0], rng), _near(v[0], rng)
    v[row[5]] = _near(v[4], rng)
    v[row[60003]] = _near(v[7], rng)
    base, side = v[10], rng.normal(size=DIM)
    side -= side.dot(base) * base
    side /= np.linalg.norm(side)
    angle = np.arccos(0.995)  # 10-11 and 11-12 at cos 0.995, 10-12 at cos 0.980
    v[row[11]] = np.cos(angle) * base + np.sin(angle) * side
    v[row[12]] = np.cos(2 * angle) * base + np.sin(2 * angle) * side
    labels = {pid: pid % 10 for pid in ids}
    labels.update({0: 3, 1: 3, 2: 3, 4: 2, 5: 6, 7: 1, 60003: 1, 10: 8, 11: 8, 12: 8})
    png = encode_png(np.zeros((28, 28), np.uint8))
    payloads = [schema.make_payload(*schema.split_index(pid), labels[pid], png) for pid in ids]
    name = schema.collection_name("pixels", prefix)
    store.create(schema.CollectionSpec(name, dim=DIM, metadata={"method": "pixels", "dim": DIM}))
    store.upsert(name, ids, v.astype(np.float32), payloads)
    store.finalize(name)
    sims = v @ v.T
    expected = {(a, b) for i, a in enumerate(ids) for j, b in enumerate(ids) if i < j and sims[i, j] >= THRESHOLD}
    assert expected == {(0, 1), (0, 2), (1, 2), (4, 5), (7, 60003), (10, 11), (11, 12)}, "the collection is as designed"
    return name, v, ids


def test_threshold_query_returns_exactly_the_hits_over_it(store, prefix):
    """The store's score threshold on every backend, HNSW and exact, against numpy."""
    name, v, ids = _copies_collection(store, prefix)
    sims = v @ v.T
    for exact in (False, True):
        results = store.query_batch(
            name, v.astype(np.float32), 10, exact=exact, with_payload=False, score_threshold=0.5
        )
        for r, hits in enumerate(results):
            want = sorted(int(ids[j]) for j in np.flatnonzero(sims[r] >= 0.5))[:10]
            assert sorted(h.id for h in hits) == want
            assert all(h.score >= 0.5 for h in hits)


def test_groups_copies_chains_and_label_conflicts(store, prefix):
    _copies_collection(store, prefix)
    data = find_duplicates(store, DuplicatesConfig("pixels", THRESHOLD, "all"), prefix=prefix)
    groups = data["groups"]
    assert [g["ids"] for g in groups] == [[4, 5], [0, 1, 2], [10, 11, 12], [7, 60003]]  # conflicts first, then size
    assert [g["conflict"] for g in groups] == [True, False, False, False]
    assert groups[0]["classes"] == ["Pullover", "Shirt"]
    assert groups[3]["splits"] == ["train", "test"]
    assert {tuple(p[:2]) for p in groups[2]["pairs"]} == {(10, 11), (11, 12)}  # one group, joined through 11
    m = data["summary"]
    assert (m["images_scanned"], m["pairs"], m["groups"], m["images_in_groups"]) == (35, 7, 4, 10)
    assert (m["conflict_groups"], m["conflict_pairs"], m["test_with_train_copy"], m["largest_group"]) == (1, 1, 1, 3)
    per_class = {p["class"]: p for p in m["per_class"]}
    assert per_class["Dress"]["groups"] == 1 and per_class["Dress"]["images_in_groups"] == 3
    assert per_class["Trouser"]["test_with_train_copy"] == 1
    assert per_class["Pullover"]["conflict_groups"] == per_class["Shirt"]["conflict_groups"] == 1
    assert data["settings"]["threshold_source"] == "given"

    train_only = find_duplicates(store, DuplicatesConfig("pixels", THRESHOLD, "train"), prefix=prefix)
    assert [g["ids"] for g in train_only["groups"]] == [[4, 5], [0, 1, 2], [10, 11, 12]]
    assert train_only["summary"]["images_scanned"] == 30
    assert train_only["summary"]["test_with_train_copy"] == 0


def test_a_group_larger_than_the_first_limit_is_found_whole(store, prefix, monkeypatch):
    name, v, ids = _copies_collection(store, prefix)
    rng = np.random.default_rng(5)
    many = [100 + i for i in range(9)]
    store.upsert(
        name,
        many,
        np.stack([_near(v[20], rng, 0.002) for _ in many]).astype(np.float32),
        [schema.make_payload("train", i, 0, "") for i in many],
    )
    store.finalize(name)
    monkeypatch.setattr(duplicates, "FIRST_LIMIT", 2)  # every member has 9 copies: asked again with 8, then 32
    pairs = find_pairs(store, name, np.array([20, *many]), THRESHOLD)
    assert len(pairs) == 10 * 9 // 2


def test_hnsw_pairs_match_exact_search_on_real_images(home):
    from fmsearch.store import open_store

    store = open_store(None, home=home)
    try:
        hnsw = find_duplicates(store, DuplicatesConfig("pixels", 0.97, "train"))
        exact = find_duplicates(store, DuplicatesConfig("pixels", 0.97, "train", exact=True))
    finally:
        store.close()
    assert hnsw["summary"]["pairs"] > 5  # the check compares something
    assert [g["pairs"] for g in hnsw["groups"]] == [g["pairs"] for g in exact["groups"]]


def test_group_and_report_of_a_hand_made_pair_list():
    pairs = {(1, 2): 0.999, (2, 3): 0.995, (8, 60001): 0.998}
    labels = {1: 0, 2: 0, 3: 6, 8: 5, 60001: 5}
    groups = group(pairs, labels)
    assert [g["ids"] for g in groups] == [[1, 2, 3], [8, 60001]]
    assert groups[0]["conflict"] and (groups[0]["min_score"], groups[0]["max_score"]) == (0.995, 0.999)
    summary = duplicates.summarize(groups, pairs, labels, 100)
    data = {
        "settings": {
            "method": "pixels",
            "split": "all",
            "threshold": 0.99,
            "threshold_source": "given",
            "exact": False,
        },
        "date": "2026-12-04",
        "backend": "embedded:x",
        "collection": "fmnist_pixels",
        "scope": "split all",
        "summary": summary,
        "cost": {"seconds": 1.0, "images_per_second": 100.0, "peak_rss_mb": 10.0, "all_pairs_matrix_mb": 0.0},
        "groups": groups,
    }
    text = render_duplicates_markdown(data)
    assert text.startswith("# Duplicates: pixels, split all\n")
    assert "groups with conflicting labels: 1**" in text
    assert "test images with a near-copy in train: 1**" in text
    assert "| 3 | 1 (T-shirt/top, train), 2 (T-shirt/top, train), 3 (Shirt, train) | 0.9950-0.9990 |" in text


def test_config_refuses_bad_values():
    with pytest.raises(InvalidArgumentError, match=r"threshold must be in \(0, 1\]"):
        DuplicatesConfig("pixels", 1.5)
    with pytest.raises(InvalidArgumentError, match="unknown split"):
        DuplicatesConfig("pixels", split="val")
    with pytest.raises(InvalidArgumentError, match="no measured default"):
        DuplicatesConfig("resnet101").resolved_threshold()
    assert DuplicatesConfig("pixels").resolved_threshold() == duplicates.DEFAULT_THRESHOLDS["pixels"]


def test_cli_writes_the_three_files(home, tmp_path):
    out = tmp_path / "dup"
    args = [
        "--home",
        str(home),
        "duplicates",
        "-m",
        "pixels",
        "--split",
        "train",
        "--threshold",
        "0.97",
        "--out",
        str(out),
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    data = json.loads((out / "duplicates.json").read_text())
    assert line["pairs"] == data["summary"]["pairs"] == sum(len(g["pairs"]) for g in data["groups"]) > 0
    assert line["images_scanned"] == 300
    assert (out / "duplicates.png").stat().st_size > 5000
    assert f"{data['summary']['groups']} groups" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "pixels", "--threshold", "2"], "Error: --threshold must be in (0, 1], got 2.0"),
        (
            ["-m", "pixels", "--split", "all"],
            "Error: fmnist_pixels holds no test images; store them with "
            "`fmsearch ingest --split all`, or scan the train split alone (--split train)",
        ),
        (["-m", "sift", "--split", "train"], "sift is a rerank stage, not a search method"),
        (["-m", "nope"], "Error: unknown method 'nope'"),
    ],
)
def test_cli_bad_input_is_one_line(home, tmp_path, args, message):
    result = CliRunner().invoke(main, ["--home", str(home), "duplicates", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_default_split_is_what_the_collection_holds(home, tmp_path):
    """On a train-only home (what `make demo` builds) the default scans the
    train split, writes where --split train writes, and says in one line what
    --split all would add; asked for explicitly, --split all is still refused
    (test_cli_bad_input_is_one_line)."""
    result = CliRunner().invoke(
        main, ["--home", str(home), "duplicates", "-m", "pixels", "--threshold", "0.97", "--out", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("fmnist_pixels, score >= 0.97: 300 images")
    assert lines[1].startswith("groups with conflicting labels: ") and "near-copy in train" not in lines[1]
    assert lines[2] == (
        "--split all would add the test images and count the test images with a near-copy in train; "
        "fmnist_pixels holds no test images: store them first with "
        "`fmsearch ingest --method pixels --split all`"
    )
    data = json.loads((tmp_path / "d" / "duplicates.json").read_text())
    assert data["settings"]["split"] == "train" and data["split_note"] == lines[2]
    report = (tmp_path / "d" / "report.md").read_text()
    assert "split train" in report and lines[2] in report and "test images with a near-copy in train:" not in report
    explicit = CliRunner().invoke(
        main,
        [
            "--home",
            str(home),
            "duplicates",
            "-m",
            "pixels",
            "--split",
            "train",
            "--threshold",
            "0.97",
            "--json",
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert json.loads(explicit.output.strip().splitlines()[-1])["pairs"] == data["summary"]["pairs"]


def test_default_split_holds_both_splits_when_stored(store, prefix):
    """A collection with both splits is scanned whole by default, as --split all."""
    _copies_collection(store, prefix)
    config = duplicates.resolve_split(store, DuplicatesConfig("pixels", THRESHOLD), prefix=prefix)
    assert config.split == "all" and config.out_dir.endswith("duplicates-pixels-all")
    data = find_duplicates(store, DuplicatesConfig("pixels", THRESHOLD), prefix=prefix)
    assert data["settings"]["split"] == "all" and data["split_note"] is None
    assert data["summary"]["test_with_train_copy"] == 1
    train = find_duplicates(store, DuplicatesConfig("pixels", THRESHOLD, "train"), prefix=prefix)
    assert train["split_note"] == (
        "--split all would add the test images and count the test images with a near-copy in train"
    )


def test_calibrate_picks_the_larger_of_its_two_thresholds(home):
    from fmsearch.models.registry import get_embedder
    from fmsearch.store import open_store

    store = open_store(None, home=home)
    try:
        data = duplicates.calibrate(store, get_embedder("pixels"), sample=200)
    finally:
        store.close()
    assert data["sample"] == 200
    assert data["threshold"] == max(data["threshold_keeping_copies"], data["threshold_pairing_few"])
    if data["threshold"] == data["threshold_keeping_copies"]:
        assert data["copies_kept"] >= duplicates.CALIBRATION_KEEP
    assert data["images_paired_at_threshold"] <= duplicates.CALIBRATION_PAIRED + 1e-9


def test_report_files_for_the_hand_made_collection(store, prefix, tmp_path):
    _copies_collection(store, prefix)
    data = find_duplicates(store, DuplicatesConfig("pixels", THRESHOLD, "all"), prefix=prefix)
    write_duplicates_report(data, store, tmp_path)
    assert json.loads((tmp_path / "duplicates.json").read_text())["summary"]["conflict_groups"] == 1
    assert (tmp_path / "duplicates.png").stat().st_size > 2000
