"""fmsearch label-issues: the graph from the index, the margins, planted
and injected label errors, the refusals, the report and the cleanlab
reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fmsearch.cli import main
from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import cleanlab_reference, label_issues
from fmsearch.evaluation.label_issues import LabelIssuesConfig, Noise, auroc, find_label_issues
from fmsearch.images.files import encode_png
from fmsearch.store import schema

DIM = 16
CLUSTERS = 10
PER_CLUSTER = 20
#: train ids stored with a wrong label: id -> (stored label, true cluster)
PLANTED = {5: (2, 0), 47: (3, 2), 130: (0, 6)}


def _clusters(store, prefix, planted=PLANTED):
    """A hand-made pixels collection: ten tight clusters of 20 train
    points (cluster c carries label c), a few stored with another cluster's
    label. Returns the collection name, the vectors and the true labels."""
    rng = np.random.default_rng(11)
    centres = np.eye(DIM)[:CLUSTERS] * 3
    ids = np.arange(CLUSTERS * PER_CLUSTER)
    true = ids // PER_CLUSTER
    v = centres[true] + 0.35 * rng.normal(size=(len(ids), DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    stored = true.copy()
    for pid, (label, cluster) in planted.items():
        assert true[pid] == cluster
        stored[pid] = label
    png = encode_png(np.zeros((28, 28), np.uint8))
    name = schema.collection_name("pixels", prefix)
    store.create(schema.CollectionSpec(name, dim=DIM, metadata={"method": "pixels", "dim": DIM}))
    payloads = [schema.make_payload(*schema.split_index(int(p)), int(stored[p]), png) for p in ids]
    store.upsert(name, ids.tolist(), v.astype(np.float32), payloads)
    store.finalize(name)
    return name, v.astype(np.float32), stored


def test_planted_label_errors_head_the_list_with_their_true_class(store, prefix):
    """On each backend: the three planted errors, and only they, are
    flagged, first, each with its true cluster suggested."""
    name, _, _ = _clusters(store, prefix)
    data = find_label_issues(store, LabelIssuesConfig("pixels"), prefix=prefix)
    assert data["collection"] == name and data["scope"] == "split train"
    top = data["suspects"][: len(PLANTED)]
    assert {s["id"] for s in top} == set(PLANTED)
    for s in top:
        stored, cluster = PLANTED[s["id"]]
        assert s["given"] == schema_class(stored) and s["suggested"] == schema_class(cluster)
        assert s["margin"] < 0 and s["flagged"]
        assert len(s["neighbours"]) == label_issues.SHOWN_NEIGHBOURS
        assert all(n["class"] == schema_class(cluster) for n in s["neighbours"])  # its cluster, not its label
    assert data["summary"]["flagged"] == len(PLANTED) and not data["suspects"][len(PLANTED)]["flagged"]
    assert data["summary"]["images_checked"] == CLUSTERS * PER_CLUSTER
    pairs = {(p["given"], p["suggested"]): p["count"] for p in data["summary"]["pairs"]}
    assert pairs == {(schema_class(s), schema_class(c)): 1 for s, c in PLANTED.values()}


def schema_class(label: int) -> str:
    from fmsearch.images.fmnist import CLASS_NAMES

    return CLASS_NAMES[label]


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_margins_match_brute_force_with_injected_noise(store, prefix, rate):
    """Every margin the detector measured (the flagged images, the median's
    sample) equals numpy's over the injected-noise labels: the class queries
    correct for the ids whose label the copy changed (at half the labels
    flipped, many of a class's nearest have left it), and the stored labels
    stay as they were."""
    name, v, stored = _clusters(store, prefix, planted={})
    kept: dict = {}
    noise = Noise(rate, seed=4)
    data = find_label_issues(store, LabelIssuesConfig("pixels", noise=noise), prefix=prefix, keep=kept)
    given = kept["labels"].of(kept["ids"])
    flips = np.flatnonzero(given != stored)
    assert len(flips) == round(rate * len(stored)) == data["noise"]["flipped"] == data["detection"]["flipped"]
    near = label_issues.nearness(store, name, kept["graph"], kept["labels"], exact=rate > 0.2)
    sims = v @ v.T
    checked = 0

    def nearness_of(r, c):  # the mean of class c's m nearest images but r itself (all of them where fewer)
        members = np.flatnonzero((given == c) & (np.arange(len(given)) != r))
        return np.sort(sims[r, members])[-label_issues.M :].mean() if len(members) else np.nan

    for r in np.flatnonzero(near.exact):
        others = [nearness_of(r, c) for c in set(given.tolist()) - {given[r]}]
        assert near.own[r] == pytest.approx(nearness_of(r, given[r]), abs=1e-5, nan_ok=True)
        assert near.other[r] == pytest.approx(max(others), abs=1e-5)
        checked += 1
    assert checked >= len(flips)
    assert set(flips) <= set(np.flatnonzero(near.exact)), "every flip is measured exactly here"
    # the injected copy never reached the store
    records = store.retrieve(name, list(range(len(stored))), with_payload=[schema.LABEL])
    assert [r.payload[schema.LABEL] for r in records] == stored.tolist()
    if rate > 0.2:
        return  # at half the labels flipped, the clusters no longer say which label is right
    # every flip is nearer another class; none of the clean images is flagged; a flip missed has a
    # partner: another flip in its cluster given the same label
    margin, flagged = kept["scores"].margin, kept["scores"].flagged
    assert (margin[flips] < 0).all() and set(np.flatnonzero(flagged)) <= set(flips)
    true = np.arange(len(stored)) // PER_CLUSTER
    for f in set(flips) - set(np.flatnonzero(flagged)):
        assert any(o != f and true[o] == true[f] and given[o] == given[f] for o in flips)
    assert data["detection"]["precision"] == 1.0 and data["detection"]["recall"] >= 0.8


def test_injected_noise_is_seeded_and_its_modes_differ():
    stored = {i: i % 5 for i in range(1000)}
    checked = np.arange(1000)
    confusable = np.array([1, 0, 3, 2, 0])
    a = label_issues.inject_noise(stored, checked, Noise(0.05, 3), 5, confusable)
    b = label_issues.inject_noise(stored, checked, Noise(0.05, 3), 5, confusable)
    c = label_issues.inject_noise(stored, checked, Noise(0.05, 3, "confusable"), 5, confusable)
    changed = [i for i in stored if a[i] != stored[i]]
    assert a == b and len(changed) == 50 and stored == {i: i % 5 for i in range(1000)}
    assert all(c[i] == confusable[stored[i]] for i in stored if c[i] != stored[i])
    assert sum(c[i] != stored[i] for i in stored) == 50
    with pytest.raises(InvalidArgumentError, match="inject noise must be a share in"):
        Noise(0.0)
    with pytest.raises(InvalidArgumentError, match="unknown noise mode"):
        Noise(0.1, mode="sideways")


def test_auroc_counts_ties_half_and_matches_pairwise():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)
    positive = rng.random(200) < 0.3
    pos, neg = scores[positive], scores[~positive]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert auroc(scores, positive) == pytest.approx(pairwise)
    assert auroc(np.arange(4.0), np.array([False, False, True, True])) == 1.0


def test_cli_writes_the_json_report_and_sheet(home, tmp_path):
    out = tmp_path / "issues"
    args = ["--home", str(home), "label-issues", "-m", "siamese", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "label_issues.json").read_text())
    assert data["summary"]["images_checked"] == 300 and data["settings"]["k"] == label_issues.K
    assert f"{data['summary']['flagged']} flagged" in result.output
    report = (out / "report.md").read_text()
    assert "## Given and suggested class" in report and "![the top suspects" in report
    shown = min(16, len(data["suspects"]))
    with Image.open(out / "label_issues.png") as sheet:  # one row of images per suspect shown
        assert sheet.height == int(100 * (1.3 * max(shown, 1) + 0.7))
    with Image.open(out / "top.png") as grid:  # the likeliest 50, ten to a row
        assert grid.height == int(80 * (1.72 * 5 + 0.5))
    assert len(data["outliers"]) == 300 and data["outliers"][0]["outlier"] >= data["outliers"][-1]["outlier"]
    # the likeliest first: the flagged ones, then the next by margin
    suspects, n = data["suspects"], data["summary"]["flagged"]
    assert len(suspects) == 300 and [s["margin"] for s in suspects] == sorted(s["margin"] for s in suspects)
    assert [s["flagged"] for s in suspects] == [True] * n + [False] * (300 - n)
    assert all(s["margin"] <= data["summary"]["threshold"] for s in suspects[:n])


def test_cli_benchmark_table_without_cleanlab(home, tmp_path):
    args = ["--home", str(home), "label-issues", "-m", "siamese", "--out", str(tmp_path / "b")]
    args += ["--inject-noise", "0.05", "--noise", "confusable", "--seed", "2", "--no-cleanlab", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    d = data["detection"]
    assert d["flipped"] == 15 and 0 <= d["precision"] <= 1 and 0.5 < d["auroc"] <= 1
    assert "reference" not in data
    saved = json.loads((tmp_path / "b" / "label_issues.json").read_text())
    assert saved["noise"] == {**saved["noise"], "rate": 0.05, "seed": 2, "mode": "confusable"}


@pytest.mark.skipif(cleanlab_reference.available() is None, reason="cleanlab is not installed (the labels extra)")
def test_cleanlab_reference_runs_on_the_same_labels(home, tmp_path):
    args = ["--home", str(home), "label-issues", "-m", "siamese", "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(main, [*args, "--inject-noise", "0.05", "--seed", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "c" / "label_issues.json").read_text())
    rows = data["reference"]["rows"]
    assert set(rows) == {
        "cleanlab Datalab, its own kNN graph (scikit-learn, exact)",
        "cleanlab Datalab, fmsearch's kNN graph",
    }
    for row in rows.values():
        assert row["flipped"] == 15 and row["seconds"] > 0 and row["peak_rss_mb"] > 50 and 0.5 < row["auroc"] <= 1
    assert "cleanlab Datalab, its own kNN graph" in result.output and "fmsearch (the index's graph" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "sift"], "sift is a rerank stage, not a search method"),
        (["-m", "pixels", "--inject-noise", "0.7"], "--inject-noise must be a share in (0, 0.5]"),
        (["-m", "pixels", "--seed", "3"], "belong to a benchmark run: give --inject-noise RATE"),
        (["-m", "pixels", "-k", "0"], "-k must be in [1, 1000]"),
        (["-m", "pixels", "--inject-noise", "0.001"], "--inject-noise 0.001 flips no label of 300 images"),
        (["-m", "pixels", "--inject-noise", "0.1", "--seed", "-1"], "--seed must be 0 or more, got -1"),
        (["-m", "pixels", "--split", "test"], "holds no test images"),
        (["-m", "nope"], "unknown method"),
    ],
)
def test_cli_refuses_in_one_line(home, args, message):
    result = CliRunner().invoke(main, ["--home", str(home), "label-issues", *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 2, result.output


def test_a_folder_gallery_without_classes_is_refused(tmp_path, fmnist):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(12):
        Image.fromarray(fmnist["test"].images[i]).save(flat / f"img{i}.png")
    home = tmp_path / "home"
    run = lambda *a: CliRunner().invoke(main, ["--home", str(home), *a])  # noqa: E731
    assert run("ingest", "--images", str(flat), "--collection", "flat", "-m", "pixels").exit_code == 0
    result = run("label-issues", "-m", "pixels", "--collection", "flat")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "flat_pixels has no classes: label issues need images that carry a class" in result.output


def test_a_folder_gallery_with_classes_is_checked_whole(tmp_path, fmnist):
    shop = tmp_path / "shop"
    test = fmnist["test"]
    from fmsearch.images.fmnist import CLASS_NAMES

    for i in range(60):
        cls = CLASS_NAMES[int(test.labels[i])].replace("/", "-")
        (shop / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.images[i]).save(shop / cls / f"img{i:03d}.png")
    home = tmp_path / "home"
    run = lambda *a: CliRunner().invoke(main, ["--home", str(home), *a])  # noqa: E731
    assert run("ingest", "--images", str(shop), "--collection", "shop", "-m", "pixels").exit_code == 0
    result = run("label-issues", "-m", "pixels", "--collection", "shop", "--json", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["images_checked"] == 60 and data["scope"] == "gallery shop"
    saved = json.loads((tmp_path / "o" / "label_issues.json").read_text())
    assert saved["classes"] == sorted({CLASS_NAMES[int(c)].replace("/", "-") for c in test.labels[:60]})


@pytest.mark.skipif(cleanlab_reference.available() is None, reason="cleanlab is not installed (the labels extra)")
def test_the_bench_suite_runs_the_command_on_a_jittered_gallery(tmp_path, fmnist):
    args = ["bench", "label-issues", "--points", "1500", "--inject-noise", "0.04", "--out-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "label-issues.json").read_text())
    assert data["settings"]["points"] == 1500 and len(data["rows"]) == 3
    assert all(row["flipped"] == 60 for row in data["rows"].values())
    ours = data["rows"][f"fmsearch (the index's graph, k={label_issues.K})"]
    cleanlab = data["rows"]["cleanlab Datalab, its own kNN graph (scikit-learn, exact)"]
    assert data["cleanlab_over_fmsearch_time"] == pytest.approx(cleanlab["seconds"] / ours["seconds"])
    assert "cleanlab's time / fmsearch's" in result.output
