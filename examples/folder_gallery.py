"""A folder gallery end to end, checked against FMNIST itself.

    python examples/folder_gallery.py [--images 2000] [--queries 200] [--method siamese] [--label-noise 0.05]

Writes the first N FMNIST test images as files in class subfolders (PNG and
JPEG at quality 95 alternately, every third one enlarged to 84x84), with a
broken PNG, an empty JPEG and a text file among them; ingests the folder with
`fmsearch ingest --images`; evaluates it with `fmsearch evaluate --collection`
(Q images held out as queries, the rest the gallery). Then the same held-out
split over the original FMNIST pixels of the same images, searched by id
(their vectors from FMNIST, exact search): the two P@10 should agree within
0.02 (the files' JPEG round trips and resizing are the only difference).
Last, `fmsearch label-issues --collection` with the given share of the
folder's labels flipped (seed 3, in a copy): how many of the flips it finds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from fmsearch.cli import main
from fmsearch.evaluation.category import held_out_ids
from fmsearch.images.fmnist import CLASS_NAMES, load_split
from fmsearch.models import get_embedder
from fmsearch.store import open_store, schema


def write_folder(root: Path, n: int) -> dict[str, int]:
    """The first ``n`` test images as files; relative path -> test index."""
    test = load_split("test")
    made = {}
    for i in range(n):
        cls = CLASS_NAMES[int(test.labels[i])].replace("/", "-")
        rel = f"{cls}/{i:05d}.{'png' if i % 2 else 'jpg'}"
        (root / cls).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(test.images[i])
        (image.resize((84, 84)) if i % 3 == 0 else image).save(root / rel, quality=95)
        made[rel] = i
    (root / "Bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (root / "Bag" / "empty.jpg").write_bytes(b"")
    (root / "Bag" / "notes.txt").write_text("not an image")
    return made


def fmnist_p_at_10(method: str, made: dict[str, int], query_ids: list[int]) -> float:
    """P@10 of the held-out queries over the same images' FMNIST pixels:
    exact cosine search among the gallery's other images, by id."""
    test = load_split("test")
    by_id = {schema.folder_point_id(rel): i for rel, i in made.items()}
    index = np.array(sorted(made.values()))
    vectors = get_embedder(method).embed(test.images[index])
    labels = test.labels[index]
    row = {i: r for r, i in enumerate(index)}
    queries = np.array([row[by_id[q]] for q in query_ids])
    gallery = np.setdiff1d(np.arange(len(index)), queries)
    scores = vectors[queries] @ vectors[gallery].T
    top = gallery[np.argsort(-scores, axis=1, kind="stable")[:, :10]]
    return float(np.mean(labels[top] == labels[queries][:, None]))


def run(n: int, queries: int, method: str, workdir: Path, label_noise: float = 0.05) -> dict:
    folder, home = workdir / "shop", workdir / "home"
    made = write_folder(folder, n)
    cli = CliRunner()
    ingest = cli.invoke(
        main, ["--home", str(home), "ingest", "--images", str(folder), "--collection", "shop", "-m", method, "--json"]
    )
    if ingest.exit_code != 0:
        raise SystemExit(ingest.output)
    report = json.loads(ingest.output.strip().splitlines()[-1])
    out = workdir / "eval"
    ev = cli.invoke(
        main,
        [
            "--home",
            str(home),
            "evaluate",
            "--collection",
            "shop",
            "-m",
            method,
            "--queries",
            str(queries),
            "--out",
            str(out),
            "--json",
        ],
    )
    if ev.exit_code != 0:
        raise SystemExit(ev.output)
    folder_p10 = json.loads(ev.output.strip().splitlines()[-1])["metrics"]["10"]["precision"]
    with open_store(None, home=home) as store:  # the ids `fmsearch evaluate --collection` held out
        query_ids = held_out_ids(store, schema.gallery_collection("shop", method), queries, seed=0).tolist()
    issues = cli.invoke(
        main,
        ["--home", str(home), "label-issues", "--collection", "shop", "-m", method, "--out", str(workdir / "issues")]
        + ["--inject-noise", str(label_noise), "--seed", "3", "--no-cleanlab", "--json"],
    )
    if issues.exit_code != 0:
        raise SystemExit(issues.output)
    return {
        "images": n,
        "queries": queries,
        "method": method,
        "stored": report["points_total"],
        "skipped": [b["path"] for b in report["bad"]],
        "not_images": report["unsupported"],
        "folder_p@10": folder_p10,
        "fmnist_p@10": fmnist_p_at_10(method, made, query_ids),
        "label_issues": json.loads(issues.output.strip().splitlines()[-1])["detection"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--method", default="siamese")
    parser.add_argument("--label-noise", type=float, default=0.05, help="share of the labels label-issues flips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        result = run(args.images, args.queries, args.method, Path(tmp), args.label_noise)
    print(json.dumps(result, indent=1))
    sys.exit(0 if abs(result["folder_p@10"] - result["fmnist_p@10"]) <= 0.02 else 1)
