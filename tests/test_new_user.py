"""The new user's path: the first command each docs page shows runs on the
home `make demo` builds.

`make demo` runs `fmsearch data` and `fmsearch ingest --method all`: the
60,000 train images, no test split, and no ResNet101 where its ImageNet
weights cannot be downloaded (as on the machine the docs were measured on).
Here the same commands build that home on the first 500 train images
(``--limit 500``), offline, and each page's first command runs on it, on a
subset where it takes one (``--queries all`` -> ``--queries 300``). A
command that runs for tens of minutes (a full benchmark) is checked to
parse, options and all; one that installs or runs this suite is not run.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fmsearch.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
#: each page's first command, as the page shows it (a new page, or a new first
#: command, fails test_every_page_opens_with_a_known_command until it is run below)
OPENING = {
    "benchmarks.md": "make bench",
    "development.md": "make test",
    "evaluation.md": "make evaluate",
    "insight.md": "fmsearch duplicates --method pixels",
    "methods.md": "fmsearch query --id 60000 --method distilled -k 5",
    "reliability.md": "fmsearch collections",
    "scale.md": "pip install '.[scale]'",
    "schema.md": "fmsearch collections --json",
    "search-modes.md": "fmsearch ingest --method pixels --quantization int8",
    "serve.md": "fmsearch serve",
}
DEMO_GALLERY = 500
#: what a first command that runs on the whole test split runs on here instead
SUBSET = {"--queries all": "--queries 300"}


def _commands(page: Path) -> list[str]:
    """The commands of a page's first ``bash`` block, in order (continuation
    lines joined, comments dropped)."""
    return _commands_of(page.read_text())


def _commands_of(text: str) -> list[str]:
    """The commands of the first ``bash`` block in ``text``."""
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    if block is None:
        return []
    text = re.sub(r"\\\n\s*", " ", block.group(1))
    lines = [line.split("  #")[0].split(" # ")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _run(home: Path, command: str) -> str:
    """A documented ``fmsearch`` command on ``home``, in this process; its output."""
    for whole, subset in SUBSET.items():
        command = command.replace(whole, subset)
    args = shlex.split(command)
    assert args[0] == "fmsearch", command
    if args[1] == "ingest":
        args += ["--limit", str(DEMO_GALLERY)]
    result = CliRunner().invoke(main, ["--home", str(home), *args[1:]])
    assert result.exit_code == 0, f"{command}: {result.output}"
    return result.output


def _parses(command: str) -> None:
    """``command --help``: its subcommand and every option exist (a bad one is click's usage error)."""
    args = shlex.split(command)
    result = CliRunner().invoke(main, [*args[1:], "--help"], prog_name="fmsearch")
    assert result.exit_code == 0 and result.output.startswith("Usage: fmsearch"), f"{command}: {result.output}"


def _make_runs(target: str) -> str:
    """What ``make TARGET`` runs, without running it (``make -n``)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_page_opens_with_a_known_command():
    assert {p.name: (_commands(p) or [None])[0] for p in PAGES} == OPENING


def test_readme_shows_what_make_demo_runs():
    """README's `make demo` block is the Makefile's recipe: the same commands
    in order, the per-method query once for each method of the recipe's loop,
    the distilled method first (resnet101 has no line: README says it is
    queried only where its weights load); and the loop queries every method
    `ingest --method all` writes, which leaves out the ensemble."""
    from fmsearch.models.registry import BY_NAME_ONLY, DOWNLOADED, all_methods

    readme = (ROOT / "README.md").read_text().split("`make demo` runs, in `.venv`:")[1]
    shown = _commands_of(readme)
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    loop = re.search(r"for m in ([\w ]+); do", recipe).group(1).split()
    per_method = re.search(r"\$\(BIN\)/(fmsearch query [^;|]*\$\$m[^;|]*?) *\|\|", recipe).group(1)
    runs = []
    for line in recipe.splitlines():
        line = line.strip()
        if line.startswith("$(BIN)/fmsearch") and "$$m" not in line:
            runs.append(line.removeprefix("$(BIN)/"))
        elif line.startswith("@for m in"):
            runs += [per_method.replace("$$m", m) for m in loop if m not in DOWNLOADED]
    assert shown == runs
    assert loop[0] == "distilled" and set(loop) == set(all_methods())
    assert not set(BY_NAME_ONLY) & set(loop)


@pytest.fixture(scope="module")
def demo_home(fmnist, tmp_path_factory) -> Path:
    """`make demo`'s home on the first 500 train images: `fmsearch data`, then
    `fmsearch ingest --method all` with no network for Keras's download."""

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    demo = [
        line.strip().removeprefix("$(BIN)/")
        for line in (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0].splitlines()
        if line.strip().startswith("$(BIN)/fmsearch")
    ]
    assert demo[:2] == ["fmsearch data", "fmsearch ingest --method all"]
    home = tmp_path_factory.mktemp("demo-home")
    with pytest.MonkeyPatch.context() as mp:
        try:  # an empty Keras cache and no network, wherever the tests run
            import keras.src.backend.config as kconfig
            import keras.src.utils.file_utils as fu

            mp.setattr(kconfig, "_KERAS_DIR", str(tmp_path_factory.mktemp("keras")))
            mp.setattr(fu, "urlretrieve", offline)
        except ImportError:  # no training extra: resnet101 is skipped for that reason instead
            pass
        for command in demo[:2]:
            _run(home, command)
    rows = [json.loads(line) for line in _run(home, "fmsearch collections --json").splitlines()]
    assert {r["collection"]: r["points"] for r in rows} == {
        f"fmnist_{m}": DEMO_GALLERY for m in ("pixels", "autoencoder", "siamese", "proxy", "distilled", "sift")
    }
    return home


@pytest.mark.slow
def test_insight_opens_with_duplicates_on_the_train_split(demo_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it writes eval-results/ where it runs
    out = _run(demo_home, OPENING["insight.md"])
    assert out.startswith(f"fmnist_pixels, score >= 0.9981: {DEMO_GALLERY} images")
    assert "--split all would add the test images and count the test images with a near-copy in train" in out
    assert (tmp_path / "eval-results" / "duplicates-pixels-train" / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("page", ["methods.md", "reliability.md", "schema.md", "search-modes.md"])
def test_the_first_command_of(page, demo_home, tmp_path):
    """A query, the collections (a table, JSON) and a quantised ingest, on a
    home of their own where they write."""
    home = demo_home
    if page == "search-modes.md":
        home = tmp_path / "home"
        shutil.copytree(demo_home, home)
    out = _run(home, OPENING[page])
    expected = {
        "methods.md": "Ankle boot",
        "reliability.md": "fmnist_siamese",
        "schema.md": '"complete": true',
        "search-modes.md": f"fmnist_pixels_int8: wrote {DEMO_GALLERY} points",
    }
    assert expected[page] in out, out


@pytest.mark.slow
def test_evaluation_opens_with_make_evaluate(demo_home, tmp_path, monkeypatch):
    """`make evaluate` is the page's two evaluate commands, then `fmsearch
    results`: the Makefile says so, and each runs (300 queries here)."""
    monkeypatch.chdir(tmp_path)
    commands = _commands(ROOT / "docs" / "evaluation.md")
    assert commands[0] == OPENING["evaluation.md"]
    recipe = _make_runs("evaluate")
    for command in commands[1:]:
        assert command in recipe, command
        _run(demo_home, command)
    table = _run(
        demo_home,
        "fmsearch results " + " ".join(str(p) for p in sorted((tmp_path / "eval-results").glob("*/metrics.json"))),
    )
    assert "| pixels | exact | 300 |" in table and "| pixels | hnsw | 300 |" in table


@pytest.mark.slow
def test_serve_opens_with_fmsearch_serve(demo_home):
    """`fmsearch serve` (on a free port) on the demo's home: every method
    ingested is served, with the rerank stage, and SIGTERM stops it cleanly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "fmsearch",
        "--home",
        str(demo_home),
        *shlex.split(OPENING["serve.md"])[1:],
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health, t0 = None, time.monotonic()
        while health is None and time.monotonic() - t0 < 120 and proc.poll() is None:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).read())
            except OSError:  # not listening yet, or 503 while loading
                time.sleep(0.2)
        assert health is not None, proc.stderr.read().decode() if proc.poll() is not None else "not ready in 120 s"
        assert set(health["methods"]) == {"pixels", "autoencoder", "siamese", "proxy", "distilled"} and health["rerank"]
        assert health["default_method"] == "distilled"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


@pytest.mark.parametrize("page", ["benchmarks.md", "scale.md"])
def test_benchmark_pages_open_with_commands_that_parse(page):
    """A benchmark page's commands take tens of minutes to hours: each parses,
    its subcommand and options as written; `make bench` runs `fmsearch bench
    all`. (`pip install '.[scale]'` installs and is not run.)"""
    commands = _commands(ROOT / "docs" / page)
    assert commands[0] == OPENING[page]
    if page == "benchmarks.md":
        assert ".venv/bin/fmsearch bench all" in _make_runs("bench")
    bench = [c for c in commands if c.startswith("fmsearch bench")]
    assert len(bench) >= 3 and all("--suite" not in c for c in bench)
    for command in bench:
        _parses(command)


def test_development_opens_with_make_test():
    """The contributors' page opens with `make test`, which runs this suite:
    it is not run from inside it, only checked to be what the Makefile runs."""
    assert _commands(ROOT / "docs" / "development.md")[0] == OPENING["development.md"]
    assert "python -m pytest -q" in _make_runs("test")
