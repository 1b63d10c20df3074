"""The bad-input battery: bad image files, ids, class names, model artifacts,
shards and data files, through the CLI and through the Python API.

CLI: an invalid input exits non-zero with exactly one line ``Error: ...`` and
no traceback; a valid but unusual image (16-bit, RGBA, CMYK, animated GIF)
gives k results. Either way no collection changes (point counts and
``collection.json`` as before). Python API: the matching
:mod:`fmsearch.errors` exception, whose message is one line.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import HOME_GALLERY, HOME_METHODS
from PIL import Image

from fmsearch.cli import main
from fmsearch.errors import (
    CollectionMismatchError,
    DatasetError,
    FmsearchError,
    ImageError,
    InvalidArgumentError,
    ModelError,
    StoreError,
    UnknownClassError,
)
from fmsearch.images import fmnist as loader
from fmsearch.models.artifacts import card_path, default_artifact, sha256_file

GALLERY = HOME_GALLERY  # points in each collection of the shared home (conftest.py)
NOT_IN_GALLERY = 500  # a train id the home does not hold: its image comes from the data files
ODD_IMAGES = ["p16.png", "rgba.png", "cmyk.jpg", "anim.gif"]


# -- inputs -------------------------------------------------------------------


def _garment(h: int = 40, w: int = 60) -> np.ndarray:
    """A light garment on a dark background, as FMNIST draws them."""
    img = np.zeros((h, w), np.uint8)
    img[h // 8 : 7 * h // 8, w // 3 : 2 * w // 3] = 220
    return img


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (a few dozen bytes on disk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("files")
    g = _garment()
    Image.fromarray(g).save(d / "ok.png")
    Image.fromarray(np.kron(g, np.ones((4, 4), np.uint8))).save(d / "big.png")
    data = (d / "big.png").read_bytes()
    (d / "cut.png").write_bytes(data[: len(data) // 2])  # a real PNG, cut in the middle of its pixels
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("not an image, whatever the name says\n")
    (d / "adir").mkdir()
    _png_header_only(d / "bomb.png", 30000, 30000)  # 900 megapixels claimed: Pillow's own guard
    _png_header_only(d / "huge.png", 10000, 5000)  # 50 megapixels: under Pillow's guard, over fmsearch's
    _png_header_only(d / "short.png", 64, 64)  # a header that promises more pixels than the file holds
    Image.new("L", (1, 1), 255).save(d / "one.png")
    # the valid but unusual ones
    Image.fromarray(g.astype(np.uint16) * 257).save(d / "p16.png")
    rgba = Image.fromarray(np.where(g > 0, 30, 200).astype(np.uint8)).convert("RGBA")  # a dark cut-out...
    rgba.putalpha(Image.fromarray(np.where(g > 0, 255, 0).astype(np.uint8)))  # ...on a transparent page
    rgba.save(d / "rgba.png")
    Image.fromarray(255 - g).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    frames = [Image.fromarray(g), Image.fromarray(255 - g)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return d


def test_odd_images_are_what_they_claim(files):
    """The battery's valid-but-odd inputs really are 16-bit, RGBA, CMYK, animated."""
    assert (files / "p16.png").read_bytes()[24] == 16  # IHDR bit depth
    with Image.open(files / "p16.png") as im:
        assert im.mode == "I;16"
    with Image.open(files / "rgba.png") as im:
        assert im.mode == "RGBA"
    with Image.open(files / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    with Image.open(files / "anim.gif") as im:
        assert im.n_frames == 2
    assert max((files / n).stat().st_size for n in ("bomb.png", "huge.png")) < 100


def run(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), *args])


@pytest.fixture(scope="module")
def home_state(home):
    """The home as built; every test leaves it so (checked after each)."""
    state = snapshot(home)
    assert state[0] == 0 and len(state[1].splitlines()) == len(HOME_METHODS)  # every collection healthy
    return state


@pytest.fixture(scope="module")
def corrupt_home(home, tmp_path_factory) -> Path:
    """A copy of the home whose pixels shard files are all overwritten with garbage."""
    copy = tmp_path_factory.mktemp("corrupt") / "home"
    shutil.copytree(home, copy)
    _garble(copy, lambda p: True)
    return copy


def _garble(home: Path, which) -> None:
    rng = np.random.default_rng(0)
    shard = home / "collections" / "fmnist_pixels" / "shard"
    hits = [p for p in sorted(shard.rglob("*")) if p.is_file() and which(p)]
    assert hits
    for p in hits:
        p.write_bytes(rng.integers(0, 256, max(p.stat().st_size, 64), dtype=np.uint8).tobytes())


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Copies of the shipped siamese artifact and its card, each broken one way,
    and of the shipped proxy artifact (another method's network)."""
    root = tmp_path_factory.mktemp("weights")
    (root / "other").mkdir()
    for path in (default_artifact("proxy"), card_path(default_artifact("proxy"))):
        shutil.copy(path, root / "other" / path.name)
    src = default_artifact("siamese")
    for variant in ("altered", "corrupt", "badcard"):
        d = root / variant
        d.mkdir()
        artifact = d / "siamese.keras"
        shutil.copy(src, artifact)
        shutil.copy(card_path(src), card_path(artifact))
        if variant in ("altered", "corrupt"):
            data = bytearray(artifact.read_bytes())
            data[1000:5096] = bytes(b ^ 0xFF for b in data[1000:5096])  # garbage inside the archive
            artifact.write_bytes(bytes(data))
        if variant == "corrupt":  # a card that vouches for the garbage, and no export: Keras's loading must fail
            card = json.loads(card_path(artifact).read_text())
            card.pop("onnx")
            card_path(artifact).write_text(json.dumps({**card, "artifact_sha256": sha256_file(artifact)}))
        if variant == "badcard":
            card_path(artifact).write_text("{not json")
    return root


@pytest.fixture(scope="module")
def bad_data(fmnist, tmp_path_factory) -> Path:
    """The four IDX files, one train label changed: structurally perfect, wrong checksum
    (tests/test_fmnist.py's approach, on the train split that every command reads first)."""
    d = tmp_path_factory.mktemp("data")
    src = loader.locate(download=False)
    for f in loader.FILES.values():
        shutil.copy(src / f.name, d / f.name)
    labels = fmnist["train"].labels.copy()
    labels[0] = (labels[0] + 1) % 10
    header = np.array([2049, len(labels)], dtype=">u4").tobytes()
    with gzip.open(d / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(header + labels.tobytes())
    return d


# -- what "unchanged" means ----------------------------------------------------


def snapshot(home: Path):
    """Every collection's point count (via the CLI) and collection.json, and
    what the collections directory holds (no staging leftovers either)."""
    listing = run(home, "collections", "--json")
    root = home / "collections"
    metas = {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("collection.json"))}
    entries = sorted(p.name for p in root.iterdir())
    return listing.exit_code, listing.output, metas, entries


def assert_one_line_error(result, message: str) -> None:
    out = result.output
    assert result.exit_code != 0, out
    assert "Traceback" not in out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out
    assert message in lines[0], out


def _fill(args, **paths) -> list[str]:
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]


# -- the CLI -------------------------------------------------------------------

Q = ["query", "-m", "pixels", "-k", "5"]
X = ["explain", "-m", "siamese"]

BAD_IMAGES = [
    ("cut.png", "cut.png: unreadable or truncated image"),
    ("short.png", "short.png: unreadable or truncated image"),
    ("empty.png", "empty.png: file is empty"),
    ("text.png", "text.png: not an image file"),
    ("adir", "adir: is a directory"),
    ("missing.png", "missing.png: no such file"),
    ("bomb.png", "bomb.png: refused by the decompression-bomb guard"),
    ("huge.png", "huge.png: 10000x5000 pixels exceeds the 40,000,000-pixel limit"),
    ("one.png", "one.png: 1x1 pixels is too small"),
]
RANGE = "is out of range; valid ids: 0-59999 (train), 60000-69999 (test)"
CHECKSUM = "train-labels-idx1-ubyte.gz fails its checksum"

CLI_BAD = [
    # image files: as the query, as a recommend example, as a compare argument
    *[pytest.param([*Q, "{files}/" + name], msg, id=f"query-{name}") for name, msg in BAD_IMAGES],
    *[pytest.param([*Q, "--positive", "{files}/" + name], msg, id=f"positive-{name}") for name, msg in BAD_IMAGES],
    *[pytest.param(["compare", "1", "{files}/" + name], msg, id=f"compare-{name}") for name, msg in BAD_IMAGES],
    *[pytest.param([*X, "{files}/" + name, "1"], msg, id=f"explain-{name}") for name, msg in BAD_IMAGES],
    pytest.param(
        [*Q, "--positive", "1", "--negative", "{files}/text.png"], "text.png: not an image file", id="negative-text"
    ),
    # ids out of range
    pytest.param([*Q, "--id", "70000"], f"point id 70000 {RANGE}", id="id-70000"),
    pytest.param([*Q, "--id", "-1"], f"point id -1 {RANGE}", id="id--1"),
    pytest.param([*Q, "--id", "70000", "--exact"], f"point id 70000 {RANGE}", id="id-70000-exact"),
    pytest.param([*Q, "--positive", "70000"], f"point id 70000 {RANGE}", id="positive-70000"),
    pytest.param([*Q, "--positive", "-1"], f"point id -1 {RANGE}", id="positive--1"),
    pytest.param([*Q, "--positive", "1", "--negative", "70000"], f"point id 70000 {RANGE}", id="negative-70000"),
    pytest.param([*Q, "--positive", "1", "--negative", "-1"], f"point id -1 {RANGE}", id="negative--1"),
    pytest.param(["compare", "70000", "1"], f"point id 70000 {RANGE}", id="compare-70000"),
    pytest.param(["compare", "1", "70000"], f"point id 70000 {RANGE}", id="compare-b-70000"),
    pytest.param(["compare", "-1", "1"], f"point id -1 {RANGE}", id="compare--1"),
    pytest.param(["compare", "1", "-1"], f"point id -1 {RANGE}", id="compare-b--1"),
    pytest.param([*X, "70000", "1"], f"point id 70000 {RANGE}", id="explain-70000"),
    pytest.param([*X, "1", "-1"], f"point id -1 {RANGE}", id="explain-b--1"),
    pytest.param([*X, "1", "2", "--patch", "0"], "--patch must be between 1 and 28 pixels, got 0", id="explain-patch"),
    pytest.param(
        [*X, "1", "2", "--patch", "7", "--stride", "8"],
        "--stride must be between 1 and the patch (7)",
        id="explain-stride",
    ),
    pytest.param([*X, "1", "2", "--fill", "grey"], "--fill must be one of zero, mean, blur", id="explain-fill"),
    pytest.param(["explain", "1", "2", "-m", "sift"], "sift is a rerank stage, not a search method", id="explain-sift"),
    pytest.param(
        ["explain", "1", "2", "-m", "pixels+siamese"],
        "--method pixels+siamese is a fusion, and an explanation is of one similarity: explain each of pixels, siamese",
        id="explain-fused",
    ),
    pytest.param(
        [*X, "1", "2", "--fill", "blur", "--patch", "2", "--stride", "2"],
        "a blur fill needs a --patch of at least 3 pixels",
        id="explain-blur-2",
    ),
    pytest.param(
        [*X, "1", "2", "--collection", "nope"], "gallery nope has no siamese collection", id="explain-no-gallery"
    ),
    pytest.param([*X, "1", "2", "--out", "{files}/adir"], "cannot write", id="explain-out-dir"),
    # ids that are not numbers (query --id takes only ids; elsewhere it may be a path)
    pytest.param(
        [*Q, "--id", "abc"],
        "--id must be an integer point id (train 0-59999, test 60000-69999), got 'abc'",
        id="id-abc",
    ),
    pytest.param([*Q, "--id", "1.5"], "--id must be an integer point id", id="id-1.5"),
    pytest.param([*Q, "--id", ""], "--id must be an integer point id", id="id-empty"),
    pytest.param([*Q, "--positive", "abc"], "abc: no such file", id="positive-abc"),
    pytest.param(["compare", "abc", "1"], "abc: no such file", id="compare-abc"),
    # unknown methods; counts and sizes out of range
    pytest.param(
        ["query", "--id", "1", "-m", "resnet9"],
        "unknown method 'resnet9'; valid methods: pixels, autoencoder, siamese, proxy, distilled, ensemble, resnet101",
        id="method-query",
    ),
    pytest.param(["ingest", "-m", "resnet9", "--limit", "5"], "unknown method 'resnet9'", id="method-ingest"),
    pytest.param([*Q, "--id", "1", "-k", "0"], "k must be between 1 and 1000, got 0", id="k-0"),
    pytest.param(["ingest", "-m", "pixels", "--limit", "0"], "--limit must be at least 1, got 0", id="limit-0"),
    pytest.param(
        ["ingest", "-m", "pixels", "--batch-size", "0"], "--batch-size must be at least 1, got 0", id="batch-size-0"
    ),
    pytest.param(
        ["evaluate", "-m", "pixels", "--task", "near-duplicate", "--sources", "3", "--batch-size", "0"],
        "--batch-size must be at least 1, got 0",
        id="near-duplicate-batch-size-0",
    ),
    pytest.param(["evaluate", "-m", "pixels", "--k", "1,2000"], "--k values must be <= 1000", id="evaluate-k-2000"),
    pytest.param(
        ["evaluate", "-m", "pixels", "--queries", "0"],
        "--queries must be between 1 and 10000 (the test split), or all of them; got 0",
        id="evaluate-queries-0",
    ),
    pytest.param(
        [*Q, "--id", "1", "--oversampling", "2"],
        "--oversampling and rescore settings apply to a --quantization (int8 or binary) only",
        id="oversampling-without-quantization",
    ),
    pytest.param(
        [*Q, "--id", "1", "-m", "pixels+siamese", "--fusion-weights", "1,2,3"],
        "--fusion-weights: 3 given for 2 methods",
        id="fusion-weights-count",
    ),
    pytest.param(
        [*Q, "--id", "1", "-m", "pixels+siamese", "--fusion-weights", "1,,2"],
        "--fusion-weights must be a comma-separated list of numbers",
        id="fusion-weights-empty-part",
    ),
    pytest.param(
        [*Q, "--positive", "1", "--expand", "3"],
        "--expand does not apply to a recommend query (positive/negative examples)",
        id="positive-expand",
    ),
    pytest.param(
        [*Q, "--id", "1", "--expand", "101"], "--expand must be between 0 (off) and 100, got 101", id="expand-101"
    ),
    # an option the mode would not use is refused, never silently dropped
    pytest.param(
        [*Q, "--id", "1", "--fusion", "dbsf"], "--fusion applies to methods joined by + only", id="fusion-one"
    ),
    pytest.param(
        [*Q, "--id", "1", "--fusion-weights", "2"],
        "--fusion-weights applies to methods joined by + only",
        id="weights-one",
    ),
    pytest.param([*Q, "--id", "1", "--shortlist", "50"], "--shortlist applies to a second stage", id="shortlist-plain"),
    pytest.param([*Q, "--id", "1", "--rerank-mode", "lowe"], "--rerank-mode applies to a rerank only", id="mode-plain"),
    pytest.param([*Q, "--id", "1", "--ratio", "0.8"], "--ratio applies to a rerank only", id="ratio-plain"),
    pytest.param(
        ["bench", "modes", "--methods", "pixels,pixels"], "--methods names a method twice", id="bench-methods-twice"
    ),
    pytest.param(["bench", "modes", "--methods", ","], "--methods names no method", id="bench-methods-none"),
    # class names
    pytest.param(
        [*Q, "--id", "1", "--class", "Shoes"], "unknown class 'Shoes'; valid classes: T-shirt/top", id="class-Shoes"
    ),
    pytest.param([*Q, "--id", "1", "--exclude-class", "Shoes"], "unknown class 'Shoes'", id="exclude-class-Shoes"),
    pytest.param([*Q, "{files}/ok.png", "--class", "Shoes"], "unknown class 'Shoes'", id="image-class-Shoes"),
    pytest.param([*Q, "--positive", "1", "--class", "Shoes"], "unknown class 'Shoes'", id="positive-class-Shoes"),
    pytest.param(
        [*Q, "--id", "1", "--class", "Sneaker", "--class", "Shoes"], "unknown class 'Shoes'", id="class-one-of-two"
    ),
    # model artifacts: bytes altered (card disagrees), garbage the card vouches for, unreadable card
    pytest.param(
        ["query", "{files}/ok.png", "-m", "siamese", "--weights", "{weights}/altered/siamese.keras"],
        "siamese.keras does not match its model card",
        id="model-altered-query",
    ),
    pytest.param(
        ["query", "--id", "60000", "-m", "siamese", "--weights", "{weights}/altered/siamese.keras"],
        "siamese.keras does not match its model card",
        id="model-altered-query-test-id",
    ),
    pytest.param(
        ["ingest", "-m", "siamese", "--limit", "50", "--weights", "{weights}/altered/siamese.keras"],
        "siamese.keras does not match its model card",
        id="model-altered-ingest",
    ),
    pytest.param(
        ["ingest", "-m", "siamese", "--limit", "50", "--recreate", "--weights", "{weights}/altered/siamese.keras"],
        "siamese.keras does not match its model card",
        id="model-altered-ingest-recreate",
    ),
    pytest.param(
        ["ingest", "-m", "siamese", "--limit", "50", "--weights", "{weights}/corrupt/siamese.keras"],
        "cannot load",
        id="model-corrupt-ingest",
    ),
    pytest.param(
        ["query", "{files}/ok.png", "-m", "siamese", "--weights", "{weights}/corrupt/siamese.keras"],
        "collection fmnist_siamese was built with fingerprint=",
        id="model-corrupt-query",
    ),
    pytest.param(
        ["query", "--id", "1", "-m", "siamese", "--weights", "{weights}/corrupt/siamese.keras"],
        "ingest siamese again with --recreate to rebuild it",
        id="model-mismatch-names-the-flag",
    ),
    pytest.param(
        ["query", "--id", "1", "-m", "siamese", "--weights", "{weights}/badcard/siamese.keras"],
        "siamese.card.json is unreadable",
        id="model-badcard-query",
    ),
    pytest.param(
        ["ingest", "-m", "siamese", "--limit", "50", "--weights", "{weights}/badcard/siamese.keras"],
        "siamese.card.json is unreadable",
        id="model-badcard-ingest",
    ),
    pytest.param(
        ["query", "--id", "1", "-m", "siamese", "--weights", "{weights}/other/proxy.keras"],
        "proxy.keras holds the proxy method's network, not siamese's",
        id="model-other-method-query",
    ),
    pytest.param(
        ["ingest", "-m", "siamese", "--limit", "50", "--recreate", "--weights", "{weights}/other/proxy.keras"],
        "proxy.keras holds the proxy method's network, not siamese's",
        id="model-other-method-ingest",
    ),
    pytest.param(
        ["ingest", "-m", "siamese", "--limit", "50", "--weights", "{weights}/missing.keras"],
        "missing.keras not found",
        id="model-missing",
    ),
    # a data file with a wrong checksum: every command that needs the data refuses
    pytest.param(["data", "--data-dir", "{data}"], CHECKSUM, id="data-check"),
    pytest.param(["ingest", "-m", "pixels", "--limit", "50", "--data-dir", "{data}"], CHECKSUM, id="data-ingest"),
    pytest.param(
        ["ingest", "-m", "pixels", "--limit", "50", "--recreate", "--data-dir", "{data}"],
        CHECKSUM,
        id="data-ingest-recreate",
    ),
    pytest.param([*Q, "--id", str(NOT_IN_GALLERY), "--data-dir", "{data}"], CHECKSUM, id="data-query-id"),
    pytest.param([*Q, "--positive", str(NOT_IN_GALLERY), "--data-dir", "{data}"], CHECKSUM, id="data-positive"),
    pytest.param(["compare", "1", "2", "--data-dir", "{data}"], CHECKSUM, id="data-compare"),
]


@pytest.mark.parametrize("args, message", CLI_BAD)
def test_cli_bad_input_is_one_line(home, home_state, files, weights, bad_data, args, message):
    result = run(home, *_fill(args, files=files, weights=weights, data=bad_data))
    assert_one_line_error(result, message)
    assert snapshot(home) == home_state


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["collections"], id="collections"),
        pytest.param([*Q, "--id", "3"], id="query-id"),
        pytest.param([*Q, "{files}/ok.png"], id="query-image"),
        pytest.param([*Q, "--positive", "1"], id="recommend"),
        pytest.param(["ingest", "-m", "pixels", "--limit", "10"], id="ingest"),
        pytest.param(["ingest", "-m", "pixels", "--limit", "10", "--batch-size", "5"], id="ingest-batches"),
    ],
)
def test_cli_corrupt_shard_is_one_line(corrupt_home, files, args):
    before = snapshot(corrupt_home)
    assert before[0] == 1 and before[1].startswith("Error: cannot open shard")
    result = run(corrupt_home, *_fill(args, files=files))
    assert_one_line_error(result, "cannot open shard")
    assert "fmnist_pixels/shard" in result.output
    assert snapshot(corrupt_home) == before


@pytest.mark.parametrize(
    "which",
    [
        pytest.param(
            lambda p: p.name == "page_0.dat" and "payload_storage" in p.parts,
            id="payload-pages",
        ),
        pytest.param(
            lambda p: p.name in ("tracker.dat", "bitmask.dat", "gaps.dat"),
            id="gridstore-trackers",
        ),
    ],
)
def test_cli_partly_corrupt_shard_is_one_line(home, tmp_path, which):
    """Garbage in only some of the shard's files (the shard may still load)."""
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    _garble(copy, which)
    before = [p.read_text() for p in sorted((copy / "collections").rglob("collection.json"))]
    result = run(copy, "query", "--id", "3", "-m", "pixels", "-k", "5")
    assert_one_line_error(result, "fmnist_pixels")
    assert [p.read_text() for p in sorted((copy / "collections").rglob("collection.json"))] == before


@pytest.mark.parametrize(
    "args",
    [
        *[pytest.param([*Q, "--json", "{files}/" + name], id=f"query-{name}") for name in ODD_IMAGES],
        *[
            pytest.param([*Q, "--json", "--positive", "{files}/" + name, "--negative", "3"], id=f"positive-{name}")
            for name in ODD_IMAGES
        ],
        # test-split ids are valid wherever an id is: their images come from the data files
        pytest.param([*Q, "--json", "--id", "60000"], id="query-test-id"),
        pytest.param([*Q, "--json", "--positive", "60000", "--negative", "60001"], id="recommend-test-ids"),
        pytest.param([*Q, "--json", "--id", "+7"], id="query-id-plus-sign"),
    ],
)
def test_cli_odd_but_valid_input_gives_k_results(home, home_state, files, args):
    result = run(home, *_fill(args, files=files))
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert len(hits) == 5 and all(0 <= h["id"] < GALLERY and h["split"] == "train" for h in hits)
    assert snapshot(home) == home_state


@pytest.mark.parametrize(
    "a, b",
    [
        ("{files}/cmyk.jpg", "60000"),
        ("{files}/anim.gif", "{files}/p16.png"),
        ("60000", "60001"),
        ("{files}/rgba.png", "199"),
    ],
)
def test_cli_compare_odd_but_valid_input(home, home_state, files, a, b):
    result = run(home, "compare", *_fill([a, b], files=files), "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert 0.0 <= row["lowe_score"] <= 1.0 and 0.0 <= row["maxsim_score"] <= 1.0
    assert snapshot(home) == home_state


# -- the Python API ------------------------------------------------------------


def assert_one_line(err: BaseException) -> None:
    assert isinstance(err, FmsearchError)
    assert str(err) and "\n" not in str(err)


@pytest.mark.parametrize("name, message", BAD_IMAGES, ids=[n for n, _ in BAD_IMAGES])
def test_api_load_image_refuses(files, name, message):
    from fmsearch.images.files import load_image

    with pytest.raises(ImageError, match=re.escape(message)) as info:
        load_image(files / name)
    assert_one_line(info.value)


@pytest.mark.parametrize("name", ODD_IMAGES)
def test_api_load_image_odd_but_valid(files, name):
    from fmsearch.images.files import load_image

    out = load_image(files / name)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[14, 14] > 150 and out[14, 0] < 60  # a light garment on a dark background, whatever the mode


@pytest.fixture
def api_store(home, home_state):
    """The home's store, opened for the Python API; closed (releasing the
    collections) before the test compares the home with its snapshot."""
    from fmsearch.store import open_store

    store = open_store(None, home=home)
    yield store
    store.close()
    assert snapshot(home) == home_state


API_SEARCHES = [
    pytest.param(
        lambda s, img: s.search("pixels", id=70000, k=5),
        InvalidArgumentError,
        "point id 70000 is out of range",
        id="pid-70000",
    ),
    pytest.param(
        lambda s, img: s.search("pixels", id=-1, k=5), InvalidArgumentError, "point id -1 is out of range", id="pid--1"
    ),
    pytest.param(
        lambda s, img: s.recommend("pixels", [70000], k=5), InvalidArgumentError, "point id 70000", id="positive-70000"
    ),
    pytest.param(
        lambda s, img: s.recommend("pixels", [1], [-1], k=5), InvalidArgumentError, "point id -1", id="negative--1"
    ),
    pytest.param(
        lambda s, img: s.recommend("pixels", [], k=5),
        InvalidArgumentError,
        "at least one positive example",
        id="no-positive",
    ),
    pytest.param(
        lambda s, img: s.search("pixels", id=1, classes=["Shoes"]),
        UnknownClassError,
        "unknown class 'Shoes'",
        id="class-Shoes",
    ),
    pytest.param(
        lambda s, img: s.search("pixels", id=1, exclude_classes=["Shoes"]),
        UnknownClassError,
        "unknown class 'Shoes'",
        id="exclude-Shoes",
    ),
    pytest.param(
        lambda s, img: s.search("pixels", image=img, classes=["Shoes"]),
        UnknownClassError,
        "unknown class 'Shoes'",
        id="image-class-Shoes",
    ),
    pytest.param(
        lambda s, img: s.recommend("pixels", [1], classes=["Shoes"]),
        UnknownClassError,
        "unknown class 'Shoes'",
        id="recommend-class-Shoes",
    ),
]


@pytest.mark.parametrize("call, error, message", API_SEARCHES)
def test_api_searcher_refuses(api_store, fmnist, call, error, message):
    from fmsearch.search.searcher import Searcher

    with pytest.raises(error, match=message) as info:
        call(Searcher(api_store), fmnist["test"].images[0])
    assert_one_line(info.value)


@pytest.mark.parametrize(
    "variant, error, message",
    [
        ("altered", ModelError, "does not match its model card"),
        ("corrupt", CollectionMismatchError, "was built with fingerprint="),
        ("badcard", ModelError, "is unreadable"),
    ],
)
def test_api_search_with_broken_model(api_store, fmnist, weights, variant, error, message):
    from fmsearch.search.searcher import Searcher

    searcher = Searcher(api_store, options={"siamese": {"weights": str(weights / variant / "siamese.keras")}})
    with pytest.raises(error, match=message) as info:
        searcher.search("siamese", image=fmnist["test"].images[0], k=5)
    assert_one_line(info.value)


@pytest.mark.parametrize(
    "variant, message",
    [("altered", "does not match its model card"), ("corrupt", "cannot load"), ("badcard", "is unreadable")],
)
def test_api_ingest_with_broken_model(api_store, weights, variant, message):
    from fmsearch.ingest.indexer import ingest
    from fmsearch.models.registry import get_embedder

    with pytest.raises(ModelError, match=message) as info:
        ingest(api_store, get_embedder("siamese", weights=str(weights / variant / "siamese.keras")), limit=50)
    assert_one_line(info.value)


def test_api_bad_data_file(api_store, bad_data):
    from fmsearch.ingest.indexer import ingest
    from fmsearch.models.registry import get_embedder
    from fmsearch.search.searcher import Searcher

    calls = [
        lambda: loader.load_split("train", bad_data),
        lambda: ingest(api_store, get_embedder("pixels"), limit=50, data_dir=bad_data),
        lambda: ingest(api_store, get_embedder("pixels"), limit=50, data_dir=bad_data, recreate=True),
        lambda: Searcher(api_store, data_dir=bad_data).search("pixels", id=NOT_IN_GALLERY, k=5),
        lambda: Searcher(api_store, data_dir=bad_data).recommend("pixels", [NOT_IN_GALLERY], k=5),
    ]
    for call in calls:
        with pytest.raises(DatasetError, match=CHECKSUM) as info:
            call()
        assert_one_line(info.value)


def test_api_corrupt_shard(corrupt_home, fmnist):
    from fmsearch.ingest.indexer import ingest
    from fmsearch.models.registry import get_embedder
    from fmsearch.search.searcher import Searcher
    from fmsearch.store import open_store

    before = snapshot(corrupt_home)
    store = open_store(None, home=corrupt_home)
    try:
        calls = [
            lambda: store.info("fmnist_pixels"),
            lambda: Searcher(store).search("pixels", id=3, k=5),
            lambda: Searcher(store).search("pixels", image=fmnist["test"].images[0], k=5),
            lambda: ingest(store, get_embedder("pixels"), limit=10),
        ]
        for call in calls:
            with pytest.raises(StoreError, match="cannot open shard") as info:
                call()
            assert_one_line(info.value)
    finally:
        store.close()
    assert snapshot(corrupt_home) == before
