"""cleanlab's Datalab on the same vectors and labels as a label-issues run:
the reference ``fmsearch label-issues --inject-noise`` measures itself
against (the ``labels`` install extra: ``pip install 'fmsearch[labels]'``).

Each Datalab run is a fresh Python process, so that its time and peak
memory are its own: it loads the vectors and labels from files, then times
``Datalab.find_issues`` alone, with its own k-nearest-neighbour graph
(scikit-learn, exact) or with the graph fmsearch took from its index.
Datalab's label check does not take a graph (cleanlab 2.9 fits a
``KNeighborsClassifier`` on the features and turns its votes into
out-of-sample class probabilities); with fmsearch's graph, the same
probabilities are formed from the graph's ``k`` nearest neighbours (each
class's share of their labels) and handed to ``find_issues(pred_probs=...)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError

#: cleanlab's neighbours per image (its default, and the issue's baseline)
CLEANLAB_K = 10

_RUN = r"""
import json, sys, time
import numpy as np
from cleanlab import Datalab
import cleanlab

folder, k = sys.argv[1], int(sys.argv[2])
features = np.load(f"{folder}/features.npy")
labels = np.load(f"{folder}/labels.npy")
try:
    votes = np.load(f"{folder}/votes.npy")  # (n, k) the graph's neighbours' labels
except FileNotFoundError:
    votes = None
t0 = time.perf_counter()
lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
if votes is None:
    lab.find_issues(features=features, issue_types={"label": {"k": k}})
else:
    # Datalab numbers the classes the labels hold, in order: a vote for another class, or a
    # neighbour without a class (-1), is left out; a row left with no vote gets even odds
    classes = np.unique(labels)
    column = np.searchsorted(classes, votes)
    valid = (votes >= 0) & (column < len(classes)) & (classes[np.minimum(column, len(classes) - 1)] == votes)
    pred_probs = np.zeros((len(labels), len(classes)))
    rows = np.repeat(np.arange(len(labels)), votes.shape[1])
    np.add.at(pred_probs, (rows[valid.ravel()], column.ravel()[valid.ravel()]), 1.0)
    counts = pred_probs.sum(axis=1, keepdims=True)
    pred_probs = np.where(counts > 0, pred_probs / np.maximum(counts, 1), 1.0 / len(classes))
    lab.find_issues(pred_probs=pred_probs, issue_types={"label": {}})
issues = lab.get_issues("label")
seconds = time.perf_counter() - t0
np.save(f"{folder}/score.npy", issues["label_score"].to_numpy(np.float64))
np.save(f"{folder}/flagged.npy", issues["is_label_issue"].to_numpy(bool))
np.save(f"{folder}/suggested.npy", issues["predicted_label"].to_numpy(np.int64))
print(json.dumps({
    "seconds": seconds,
    "peak_rss_mb": next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")),
    "version": cleanlab.__version__,
}))
"""


def available() -> str | None:
    """cleanlab's version where its Datalab can run here, else None (asked of
    the installed packages: importing it here would add its 100 MB to the
    memory this process measures)."""
    from importlib import metadata, util

    if util.find_spec("cleanlab") is None or util.find_spec("datasets") is None:
        return None
    return metadata.version("cleanlab")


def require() -> None:
    """Refuse, in one line, where the reference cannot run."""
    if available() is None:
        raise InvalidArgumentError(
            "the cleanlab reference needs the labels extra: pip install 'fmsearch[labels]' "
            "(or run without it: --no-cleanlab)"
        )


def run_datalab(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    votes: np.ndarray | None = None,
    k: int = CLEANLAB_K,
    timeout: float = 3600,
) -> dict[str, Any]:
    """One Datalab label-issue run in a fresh process; returns its time,
    peak memory, version, and per image its label score (lower: more
    suspect), flag and predicted label. ``votes``: the labels of each
    image's ``k`` nearest neighbours in fmsearch's graph (Datalab then
    builds no graph)."""
    require()
    with tempfile.TemporaryDirectory(prefix="fmsearch-cleanlab-") as folder:
        np.save(f"{folder}/features.npy", np.ascontiguousarray(features, np.float32))
        np.save(f"{folder}/labels.npy", np.asarray(labels, np.int64))
        if votes is not None:
            np.save(f"{folder}/votes.npy", np.asarray(votes, np.int64))
        try:
            done = subprocess.run(
                [sys.executable, "-c", _RUN, folder, str(k)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as err:
            raise InvalidArgumentError(f"cleanlab's Datalab ran past {timeout:g} s and was stopped") from err
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            error = next((line for line in reversed(lines) if "Error" in line.split(":")[0]), None)
            raise InvalidArgumentError(f"cleanlab's Datalab failed: {error or (lines or ['no output'])[-1]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        base = Path(folder)
        result["score"] = np.load(base / "score.npy")
        result["flagged"] = np.load(base / "flagged.npy")
        result["suggested"] = np.load(base / "suggested.npy")
    return result


def against_cleanlab(store, name: str, kept: dict[str, Any], *, k: int = CLEANLAB_K) -> dict[str, Any]:
    """Datalab on the run's vectors and labels (the injected-noise copy),
    with its own graph and with fmsearch's; each row scored against the
    same flips, on the images checked.

    ``kept``: what :func:`~fmsearch.evaluation.label_issues.find_label_issues`
    keeps (graph, labels, ids). The test split checked against the train
    gallery gives Datalab's own graph the train images (their stored
    labels) beside the test images (the copy); with fmsearch's graph, the
    test images get their votes from their train neighbours.
    """
    from fmsearch.evaluation.label_issues import stored_vectors

    graph, labels, ids = kept["graph"], kept["labels"], kept["ids"]
    flips = labels.flipped()
    is_error = np.array([int(i) in flips for i in ids])
    checked = set(ids.tolist())
    extra = np.array([i for i in graph.pool_ids.tolist() if i in labels.given and i not in checked], np.int64)
    all_ids = np.concatenate([ids, extra])  # the checked images first
    features = stored_vectors(store, name, all_ids)
    n = len(ids)  # the checked images come first
    pool_given = labels.of(graph.pool_ids)
    complete = graph.neighbours.shape[1] >= k and bool((graph.neighbours[:, :k] >= 0).all())
    rows: dict[str, Any] = {}
    own = run_datalab(features, labels.of(all_ids), k=k)
    rows["cleanlab Datalab, its own kNN graph (scikit-learn, exact)"] = _row(own, n, is_error, len(all_ids), k)
    if complete:
        # the same out-of-sample votes Datalab forms, from fmsearch's graph (its checked images alone: a
        # graph into the train gallery gives the test images their votes)
        votes = pool_given[graph.neighbours[:, :k]]
        ours = run_datalab(features[:n], labels.of(ids), votes=votes, k=k)
        rows["cleanlab Datalab, fmsearch's kNN graph"] = _row(ours, n, is_error, n, k)
    else:
        rows["cleanlab Datalab, fmsearch's kNN graph"] = {
            "note": f"not run: some images have fewer than {k} neighbours in the graph"
        }
    return {"cleanlab": available(), "rows": rows}


def _row(got: dict[str, Any], n: int, is_error: np.ndarray, images: int, k: int) -> dict[str, Any]:
    """A Datalab run scored on the checked images (its first ``n``)."""
    from fmsearch.evaluation.label_issues import detection_metrics

    return {
        **detection_metrics(-got["score"][:n], got["flagged"][:n], is_error),
        "seconds": round(got["seconds"], 2),
        "peak_rss_mb": round(got["peak_rss_mb"], 1),
        "images": int(images),
        "k": k,
    }
