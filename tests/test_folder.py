"""Folder galleries: a folder of the user's images ingested, resumed, added
to and deleted from, on each backend and through the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fmsearch.cli import main
from fmsearch.errors import ImageError, InvalidArgumentError
from fmsearch.images.files import decode_png, load_image
from fmsearch.images.fmnist import CLASS_NAMES
from fmsearch.images.folders import scan
from fmsearch.ingest.folder import add_images, delete_images, ingest_folder
from fmsearch.models import get_embedder
from fmsearch.store import schema
from fmsearch.store.edge import EdgeStore
from fmsearch.store.gallery import gallery_collections, open_gallery


def _folder(root: Path, fmnist, n: int, start: int = 0, broken: bool = True) -> dict[str, int]:
    """FMNIST test images as files in class subfolders (PNG and JPEG
    alternately, some enlarged); with ``broken``, an unreadable PNG, an empty
    JPEG and a text file beside them. Returns relative path -> test index."""
    test = fmnist["test"]
    made = {}
    for i in range(start, start + n):
        cls = CLASS_NAMES[int(test.labels[i])].replace("/", "-")
        rel = f"{cls}/img{i:05d}.{'png' if i % 2 else 'jpg'}"
        (root / cls).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(test.images[i])
        (image.resize((84, 84)) if i % 3 == 0 else image).save(root / rel, quality=95)
        made[rel] = i
    if broken:
        (root / "Bag").mkdir(exist_ok=True)
        (root / "Bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
        (root / "Bag" / "empty.jpg").write_bytes(b"")
        (root / "Bag" / "notes.txt").write_text("not an image")
    return made


def _points(store, name: str) -> dict[int, tuple[dict, np.ndarray]]:
    ids = store.ids(name).tolist()
    return {r.id: (r.payload, r.vector) for r in store.retrieve(name, ids, with_vectors=True)}


def test_scan_finds_classes_and_reports_what_is_not_an_image(tmp_path, fmnist):
    made = _folder(tmp_path, fmnist, 12)
    found = scan(tmp_path)
    assert [i.rel_path for i in found.images] == sorted([*made, "Bag/broken.png", "Bag/empty.jpg"])
    assert found.unsupported == ["Bag/notes.txt"]
    assert found.classes == sorted({rel.split("/")[0] for rel in made} | {"Bag"})
    assert all(i.class_name == i.rel_path.split("/")[0] for i in found.images)
    Image.fromarray(fmnist["test"].images[0]).save(tmp_path / "top.png")  # one image outside a class folder
    assert scan(tmp_path).classes == [] and all(i.class_name is None for i in scan(tmp_path).images)
    assert [i.rel_path for i in scan(tmp_path, recursive=False).images] == ["top.png"]
    with pytest.raises(ImageError, match="no such folder"):
        scan(tmp_path / "nope")


def test_folder_ids_and_names_follow_the_schema():
    pid = schema.folder_point_id("Shirt/a.png")
    assert pid == schema.folder_point_id("Shirt/a.png") != schema.folder_point_id("Shirt/b.png")
    assert 0 <= pid < 2**53
    assert schema.gallery_collection("my-shop", "siamese") == "my-shop_siamese"
    assert schema.legacy_gallery_collection("my-shop", "siamese") == "fmnist_my-shop_siamese"
    for bad in ("", "Shop", "a_b", "-x", "x" * 41, "a/b"):
        with pytest.raises(InvalidArgumentError, match="lower-case letters, digits or dashes"):
            schema.check_gallery(bad)


def test_a_folder_ingests_with_the_bad_files_listed(store, prefix, shop, tmp_path, fmnist):
    tmp_path = tmp_path / "shop"  # beside the local backend's own folder
    made = _folder(tmp_path, fmnist, 30)
    embedder = get_embedder("siamese")
    report = ingest_folder(store, embedder, str(tmp_path), shop, prefix=prefix, batch_size=8)
    name = schema.gallery_collection(shop, "siamese")
    assert (report.collection, report.files, report.written, report.unchanged) == (name, 32, 30, 0)
    assert sorted(p for p, _ in report.bad) == ["Bag/broken.png", "Bag/empty.jpg"]
    assert dict(report.bad)["Bag/empty.jpg"] == "file is empty"
    assert report.unsupported == ["Bag/notes.txt"] and report.points_total == 30
    meta = store.info(name).metadata
    assert meta[schema.META_GALLERY] == shop and meta[schema.META_COMPLETE] is True
    assert meta[schema.META_ROOT] == str(tmp_path.resolve())
    classes = meta[schema.META_CLASSES]
    points = _points(store, name)
    assert set(points) == {schema.folder_point_id(rel) for rel in made}
    for rel in list(made)[:6]:
        payload, vector = points[schema.folder_point_id(rel)]
        assert payload[schema.PATH] == rel and classes[payload[schema.LABEL]] == payload[schema.CLASS_NAME]
        assert payload[schema.CLASS_NAME] == rel.split("/")[0]
        image = load_image(tmp_path / rel)
        assert np.array_equal(decode_png(payload[schema.IMAGE]), image)
        np.testing.assert_allclose(vector, embedder.embed(image[None])[0], atol=1e-5)
    # a re-run writes nothing; a changed file is written again, the others are not
    assert ingest_folder(store, embedder, str(tmp_path), shop, prefix=prefix).unchanged == 30
    changed = next(iter(made))
    Image.fromarray(fmnist["test"].images[500]).save(
        tmp_path / changed, format="PNG" if changed.endswith("png") else "JPEG"
    )
    again = ingest_folder(store, embedder, str(tmp_path), shop, prefix=prefix)
    assert (again.written, again.unchanged, again.points_total) == (1, 29, 30)
    stored = store.retrieve(name, [schema.folder_point_id(changed)], with_vectors=True)[0]
    np.testing.assert_allclose(stored.vector, embedder.embed(load_image(tmp_path / changed)[None])[0], atol=1e-5)


class _Stop(Exception):
    pass


def test_an_interrupted_folder_ingest_resumes_to_the_clean_result(store, prefix, shop, tmp_path, fmnist):
    tmp_path = tmp_path / "shop"
    _folder(tmp_path, fmnist, 40)
    embedder = get_embedder("pixels")
    seen = []

    def stop_after_two(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        ingest_folder(store, embedder, str(tmp_path), shop, prefix=prefix, batch_size=10, progress=stop_after_two)
    name = schema.gallery_collection(shop, "pixels")
    # two batches of 10 files, the first holding the two unreadable ones
    assert store.count(name) == 18 and store.info(name).metadata[schema.META_COMPLETE] is False
    resumed = ingest_folder(store, embedder, str(tmp_path), shop, prefix=prefix, batch_size=10)
    assert (resumed.written, resumed.unchanged, len(resumed.bad)) == (22, 18, 2)
    ingest_folder(store, embedder, str(tmp_path), f"{prefix[:-1]}-clean", prefix=prefix)
    a, b = _points(store, name), _points(store, schema.gallery_collection(f"{prefix[:-1]}-clean", "pixels"))
    assert a.keys() == b.keys()
    for pid in a:
        assert a[pid][0] == b[pid][0] and np.array_equal(a[pid][1], b[pid][1])


def test_add_and_delete_change_the_count_by_one_and_the_next_query_sees_it(store, prefix, shop, tmp_path, fmnist):
    _folder(tmp_path / "shop", fmnist, 20, broken=False)
    embedder = get_embedder("siamese")
    ingest_folder(store, embedder, str(tmp_path / "shop"), shop, prefix=prefix)
    name = gallery_collections(store, open_gallery(store, shop, prefix=prefix))[0]
    new = tmp_path / "elsewhere.png"
    Image.fromarray(fmnist["test"].images[700]).save(new)
    vector = embedder.embed(load_image(new)[None])[0]
    assert store.query(name, vector, 1)[0].id != schema.folder_point_id("elsewhere.png")
    report = add_images(store, [(name, embedder)], [str(new)], class_name="Extra")[0]
    assert (report.written, report.points_total) == (1, 21)
    top = store.query(name, vector, 1)[0]
    assert top.id == schema.folder_point_id("elsewhere.png")
    assert top.payload[schema.CLASS_NAME] == "Extra" and store.info(name).metadata[schema.META_CLASSES][-1] == "Extra"
    with pytest.raises(InvalidArgumentError, match=r"id -1 is not a folder image's point id \(0-9007199254740991\)"):
        delete_images(store, [name], [], [-1])
    with pytest.raises(InvalidArgumentError, match="is not in .*; nothing was deleted"):
        delete_images(store, [name], ["elsewhere.png", "nope.png"], [])
    assert store.count(name) == 21
    assert delete_images(store, [name], ["elsewhere.png"], []) == [(name, 21, 20)]
    assert store.query(name, vector, 1)[0].id != schema.folder_point_id("elsewhere.png")
    with pytest.raises(ImageError, match="not an image file"):
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"nope")
        add_images(store, [(name, embedder)], [str(new), str(bad)])
    assert store.count(name) == 20  # a bad file among them: nothing was added


def test_cli_ingest_add_delete(tmp_path, fmnist):
    _folder(tmp_path / "shop", fmnist, 24)
    home = tmp_path / "home"
    run = lambda *args: CliRunner().invoke(main, ["--home", str(home), *args])  # noqa: E731
    result = run("ingest", "--images", str(tmp_path / "shop"), "--collection", "shop", "-m", "pixels")
    assert result.exit_code == 0, result.output
    assert "shop_pixels: 26 images found, 24 written, 0 unchanged, 2 unreadable, 1 not images" in result.output
    assert "skipped Bag/broken.png: not an image file Pillow can read" in result.output
    assert "not an image (extension): Bag/notes.txt" in result.output
    result = run("ingest", "--images", str(tmp_path / "shop"), "--collection", "shop", "-m", "pixels", "--json")
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["unchanged"] == 24 and {"path": "Bag/empty.jpg", "reason": "file is empty"} in report["bad"]
    added = tmp_path / "shop" / "Bag" / "new.png"
    Image.fromarray(fmnist["test"].images[900]).save(added)
    result = run("add", str(added), "--collection", "shop")
    assert result.exit_code == 0 and "shop_pixels: 1 added, 0 already stored unchanged; 25 stored" in result.output
    result = run("delete", "--path", "Bag/new.png", "--collection", "shop")
    assert result.exit_code == 0 and "shop_pixels: 1 deleted; 24 stored" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "-m", "pixels", "--images", "DIR"], "--images and --collection go together"),
        (["ingest", "-m", "pixels", "--images", "DIR", "--collection", "Shop"], "must be 1-40 lower-case letters"),
        (["ingest", "-m", "pixels", "--images", "DIR/nope", "--collection", "shop"], "no such folder"),
        (
            ["ingest", "-m", "pixels", "--images", "DIR/Bag", "--collection", "shop", "--limit", "3"],
            "--split, --limit, --quantization and --on-disk apply to FMNIST",
        ),
        (
            ["ingest", "-m", "pixels", "--images", "DIR/Bag", "--collection", "shop", "--on-disk"],
            "--split, --limit, --quantization and --on-disk apply to FMNIST",
        ),
        (["ingest", "-m", "sift", "--images", "DIR", "--collection", "shop"], "sift is a rerank stage"),
        (["add", "DIR/nope.png", "--collection", "shop"], "no collection 'shop'"),
        (["delete", "--collection", "shop"], "name the images: --path P or --id N"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, fmnist, args, message):
    _folder(tmp_path / "d", fmnist, 2)
    args = [a.replace("DIR", str(tmp_path / "d")) for a in args]
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), *args])
    assert result.exit_code != 0
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.slow
def test_kill_9_folder_ingest_then_resume_equals_a_clean_run(tmp_path, fmnist):
    _folder(tmp_path / "shop", fmnist, 2000)
    home, clean = tmp_path / "a", tmp_path / "clean"
    args = [
        "ingest",
        "-m",
        "siamese",
        "--images",
        str(tmp_path / "shop"),
        "--collection",
        "shop",
        "--batch-size",
        "100",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmsearch", "--home", str(home), "-v", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = 0
    for line in proc.stderr:
        if "shop_siamese: wrote 100 images" in line:
            seen += 1
            if seen == 3:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    assert "2002 images found" in result.output and "2000 stored" in result.output
    assert int(result.output.split(" written, ")[1].split(" unchanged")[0]) >= 298  # a resume, not a fresh load
    assert CliRunner().invoke(main, ["--home", str(clean), *args]).exit_code == 0
    with EdgeStore(home) as s:
        a = _points(s, "shop_siamese")
        assert s.info("shop_siamese").metadata[schema.META_COMPLETE] is True
    with EdgeStore(clean) as s:
        b = _points(s, "shop_siamese")
    assert a.keys() == b.keys() and len(a) == 2000
    assert all(a[p][0] == b[p][0] and np.array_equal(a[p][1], b[p][1]) for p in a)


def test_a_folder_gallery_is_searched_by_image_id_and_its_own_classes(store, prefix, shop, tmp_path, fmnist):
    from fmsearch.errors import UnknownClassError
    from fmsearch.search.mode import SearchMode
    from fmsearch.search.rerank import RerankConfig
    from fmsearch.search.searcher import Searcher

    made = _folder(tmp_path / "shop", fmnist, 40, broken=False)
    ingest_folder(store, get_embedder("siamese"), str(tmp_path / "shop"), shop, prefix=prefix)
    searcher = Searcher(store, prefix=prefix, gallery=shop)
    with pytest.raises(InvalidArgumentError, match="a Gallery value holds its prefix"):
        Searcher(store, prefix=prefix, gallery=searcher.gallery)
    rel = next(r for r in made if r.startswith("Trouser/"))
    hits = searcher.search("siamese", image=load_image(tmp_path / "shop" / rel), k=5)
    assert hits[0].path == rel and hits[0].id == schema.folder_point_id(rel) and hits[0].score > 0.999
    assert hits[0].class_name == "Trouser" and (hits[0].split, hits[0].index) == (None, None)
    by_id = searcher.search("siamese", id=hits[0].id, k=5)
    assert hits[0].id not in [h.id for h in by_id] and [h.id for h in by_id[:4]] == [h.id for h in hits[1:5]]
    only = searcher.search("siamese", id=hits[0].id, k=3, classes=["Bag"])
    assert only and {h.class_name for h in only} == {"Bag"}
    with pytest.raises(UnknownClassError, match=f"unknown class 'Shirtt' in gallery {shop}; its classes: Ankle boot"):
        searcher.search("siamese", id=hits[0].id, classes=["Shirtt"])
    with pytest.raises(InvalidArgumentError, match="no image with id 5 in"):
        searcher.search("siamese", id=5)
    with pytest.raises(InvalidArgumentError, match="a folder gallery is searched without it"):
        searcher.search(SearchMode(("siamese",), rerank=RerankConfig()), id=hits[0].id)
    with pytest.raises(InvalidArgumentError, match="a folder gallery is not quantised"):
        searcher.search(SearchMode(("siamese",), quantization="int8"), id=hits[0].id)
    liked = searcher.recommend("siamese", [hits[0].id], k=3)
    assert hits[0].id not in [h.id for h in liked] and all(h.path for h in liked)


def test_cli_query_a_folder_gallery(tmp_path, fmnist):
    made = _folder(tmp_path / "shop", fmnist, 20, broken=False)
    home = tmp_path / "home"
    run = lambda *args: CliRunner().invoke(main, ["--home", str(home), *args])  # noqa: E731
    assert run("ingest", "--images", str(tmp_path / "shop"), "--collection", "shop", "-m", "pixels").exit_code == 0
    rel = next(iter(made))
    result = run("query", str(tmp_path / "shop" / rel), "--collection", "shop", "-m", "pixels", "-k", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["rank", "id", "score", "class", "path"] and lines[1].endswith(rel)
    result = run("query", "--id", str(schema.folder_point_id(rel)), "--collection", "shop", "-m", "pixels", "--json")
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert len(rows) == 10 and all(set(r) == {"rank", "id", "score", "label", "class_name", "path"} for r in rows)
    assert rel not in [r["path"] for r in rows]
    result = run("query", str(tmp_path / "shop" / rel), "--collection", "shop", "-m", "siamese")
    assert result.exit_code == 1 and "gallery shop has no siamese collection" in result.output


def test_a_folder_gallery_evaluation_matches_numpy_over_its_stored_vectors(store, prefix, shop, tmp_path, fmnist):
    """Held-out queries, exact search: P@K and top-1 from the stored vectors by hand."""
    from fmsearch.evaluation.category import EvalConfig, evaluate, held_out_ids

    _folder(tmp_path / "shop", fmnist, 120)
    ingest_folder(store, get_embedder("siamese"), str(tmp_path / "shop"), shop, prefix=prefix)
    name = schema.gallery_collection(shop, "siamese")
    result = evaluate(
        store,
        EvalConfig(
            "siamese", queries=30, ks=(1, 10), exact=True, gallery=shop, latency_queries=5, rprecision_queries=5
        ),
        prefix=prefix,
    )
    data = result.to_json()
    points = _points(store, name)
    ids = np.array(sorted(points))
    vectors = np.stack([points[i][1] for i in ids])
    labels = np.array([points[i][0][schema.LABEL] for i in ids])
    held = held_out_ids(store, name, 30)
    q = np.searchsorted(ids, held)
    gallery = np.setdiff1d(np.arange(len(ids)), q)
    top = gallery[np.argsort(-(vectors[q] @ vectors[gallery].T), axis=1, kind="stable")[:, :10]]
    right = labels[top] == labels[q][:, None]
    assert data["queries"] == 30 and data["gallery_size"] == 90
    assert data["metrics"]["10"]["precision"] == pytest.approx(right.mean())
    assert data["top1_accuracy"] == pytest.approx(right[:, 0].mean())
    assert data["per_class"]["class_names"] == store.info(name).metadata[schema.META_CLASSES]
    assert data["settings"]["gallery"] == shop and result.query_images.shape == (30, 28, 28)


def test_the_folder_gallery_example_agrees_with_fmnist(tmp_path, fmnist):
    """examples/folder_gallery.py at a small size: the folder's P@10 and the same images' FMNIST P@10."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "folder_gallery", Path(__file__).parents[1] / "examples" / "folder_gallery.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.run(300, 60, "siamese", tmp_path)
    assert result["stored"] == 300 and result["skipped"] == ["Bag/broken.png", "Bag/empty.jpg"]
    assert result["not_images"] == ["Bag/notes.txt"]
    assert abs(result["folder_p@10"] - result["fmnist_p@10"]) <= 0.02
    found = result["label_issues"]  # 5% of the 300 labels flipped in a copy, and what label-issues found
    assert found["flipped"] == 15 and 0 <= found["precision"] <= 1 and found["auroc"] > 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queries", "all"], "--queries: a folder gallery is evaluated with some of its images held out"),
        (["--queries", "500"], "--queries must be fewer than the 24 images of shop_pixels with a class"),
        (["--queries", "5", "--rerank", "sift"], "a folder gallery is searched without it"),
        (["--queries", "5", "-m", "pixels+siamese"], "a folder gallery is evaluated one method at a time"),
        (["--queries", "5", "--task", "near-duplicate"], "--task near-duplicate does not take --queries"),
    ],
)
def test_cli_evaluate_a_folder_gallery_refuses_in_one_line(tmp_path, fmnist, args, message):
    _folder(tmp_path / "shop", fmnist, 24, broken=False)
    home = str(tmp_path / "home")
    CliRunner().invoke(
        main, ["--home", home, "ingest", "--images", str(tmp_path / "shop"), "--collection", "shop", "-m", "pixels"]
    )
    result = CliRunner().invoke(
        main, ["--home", home, "evaluate", "--collection", "shop", "-m", "pixels", *args, "--out", str(tmp_path / "e")]
    )
    assert result.exit_code != 0
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_duplicates_of_a_folder_gallery_name_paths_and_its_own_classes(store, prefix, shop, tmp_path, fmnist):
    import shutil

    from fmsearch.evaluation.duplicates import DuplicatesConfig, find_duplicates
    from fmsearch.evaluation.report import render_duplicates_markdown

    made = _folder(tmp_path / "shop", fmnist, 20, broken=False)
    source = next(r for r in made if r.startswith("Trouser/") and r.endswith(".png"))
    (tmp_path / "shop" / "Dress").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "shop" / source, tmp_path / "shop" / "Dress" / "copy.png")  # the same file, another label
    ingest_folder(store, get_embedder("pixels"), str(tmp_path / "shop"), shop, prefix=prefix)
    data = find_duplicates(store, DuplicatesConfig("pixels", 0.9999, gallery=shop), prefix=prefix)
    assert data["summary"]["images_scanned"] == 21 and data["summary"]["conflict_groups"] == 1
    first = data["groups"][0]
    assert sorted(first["paths"]) == sorted([source, "Dress/copy.png"]) and "splits" not in first
    assert sorted(first["classes"]) == ["Dress", "Trouser"] and first["conflict"] and first["max_score"] > 0.9999
    assert data["summary"]["test_with_train_copy"] is None  # no splits: not a count of zero
    text = render_duplicates_markdown(data)
    assert f"gallery {shop}" in text and "near-copy in train" not in text and "Dress/copy.png" in text
    with pytest.raises(InvalidArgumentError, match="a folder gallery has no train and test splits"):
        find_duplicates(store, DuplicatesConfig("pixels", 0.99, split="train", gallery=shop), prefix=prefix)


def test_two_paths_with_one_id_in_one_run_are_refused_not_overwritten(
    store, prefix, shop, tmp_path, fmnist, monkeypatch
):
    made = _folder(tmp_path / "shop", fmnist, 3, broken=False)
    monkeypatch.setattr(schema, "folder_point_id", lambda rel: 7)  # every path on one id
    report = ingest_folder(store, get_embedder("pixels"), str(tmp_path / "shop"), shop, prefix=prefix)
    first, *rest = sorted(made)
    assert report.written == 1 and store.count(schema.gallery_collection(shop, "pixels")) == 1
    assert report.bad == [(rel, f"its point id collides with {first}'s") for rel in rest]


@pytest.mark.parametrize(
    "args",
    [
        ["map", "-m", "siamese", "--seed", "-1"],
        ["evaluate", "-m", "pixels", "--queries", "10", "--seed", "-1"],
        ["evaluate", "-m", "pixels", "--task", "near-duplicate", "--seed", "-1"],
    ],
)
def test_a_negative_seed_is_one_line(home, tmp_path, args):
    result = CliRunner().invoke(main, ["--home", str(home), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and result.output == "Error: --seed must be at least 0, got -1\n"


def test_add_checks_every_collection_before_writing_any(store, prefix, shop, tmp_path, fmnist):
    from fmsearch.errors import CollectionMismatchError

    _folder(tmp_path / "shop", fmnist, 10, broken=False)
    for method in ("pixels", "siamese"):
        ingest_folder(store, get_embedder(method), str(tmp_path / "shop"), shop, prefix=prefix)
    pixels, siamese = (schema.gallery_collection(shop, m) for m in ("pixels", "siamese"))
    new = tmp_path / "new.png"
    Image.fromarray(fmnist["test"].images[300]).save(new)
    with pytest.raises(CollectionMismatchError):  # the second target's model is the wrong one
        add_images(store, [(pixels, get_embedder("pixels")), (siamese, get_embedder("pixels"))], [str(new)])
    assert store.count(pixels) == store.count(siamese) == 10


def test_a_gallery_under_the_old_naming_keeps_working(tmp_path, fmnist):
    """A folder gallery stored before galleries had names of their own, in
    fmnist_<gallery>_<method>, is found by its name: searched, ingested again
    in place (no second collection), added to; a new one is <gallery>_<method>."""
    from fmsearch.store import open_store

    home, folder = tmp_path / "home", tmp_path / "shop"
    made = _folder(folder, fmnist, 12, broken=False)
    legacy = schema.legacy_gallery_collection("shop", "pixels")
    with open_store(None, home=home) as store:
        report = ingest_folder(store, get_embedder("pixels"), str(folder), "shop")
        assert report.collection == "shop_pixels"
        meta, ids = store.info("shop_pixels").metadata, [int(i) for i in store.ids("shop_pixels")]
        records = store.retrieve("shop_pixels", ids, with_vectors=True)
        store.create(
            schema.folder_spec_for(
                get_embedder("pixels").describe(), "shop", meta[schema.META_ROOT], meta[schema.META_CLASSES], legacy
            )
        )
        store.upsert(legacy, ids, np.stack([r.vector for r in records]), [r.payload for r in records])
        store.finalize(legacy)
        store.set_metadata(legacy, {schema.META_COMPLETE: True})
        store.delete("shop_pixels")

    def run(*args):
        result = CliRunner().invoke(main, ["--home", str(home), *args])
        assert result.exit_code == 0, result.output
        return result.output

    rel = sorted(made)[0]
    hits = [
        json.loads(line)
        for line in run(
            "query", str(folder / rel), "--collection", "shop", "-m", "pixels", "-k", "1", "--json"
        ).splitlines()
    ]
    assert hits[0]["path"] == rel and hits[0]["id"] == schema.folder_point_id(rel)
    assert "12 unchanged" in run("ingest", "--images", str(folder), "--collection", "shop", "-m", "pixels")
    new = tmp_path / "new.png"
    Image.fromarray(fmnist["test"].images[900]).save(new)
    run("add", str(new), "--collection", "shop")
    with open_store(None, home=home) as store:
        assert legacy in store.collections() and "shop_pixels" not in store.collections()
        assert store.count(legacy) == 13
    assert "shop_siamese" in run("ingest", "--images", str(folder), "--collection", "shop", "-m", "siamese")
    refused = CliRunner().invoke(
        main, ["--home", str(home), "ingest", "--images", str(folder), "--collection", "fmnist", "-m", "pixels"]
    )
    assert refused.exit_code == 1 and "collection name 'fmnist' is FMNIST's" in refused.output
