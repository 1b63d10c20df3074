"""The package as users install it: one import root, ``fmsearch``, from the
wheel, from the sdist, and in an editable install; built without a
packaging warning, carrying the page and the shipped weights."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _folder(package: str) -> Path:
    """The repository folder a package installs from (pyproject's package-dir)."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    root = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
    return ROOT / mapping[root] / Path(*package[len(root) :].split(".")[1:])


def test_every_package_folder_is_installed_under_fmsearch():
    """pyproject's package list names every folder with an __init__.py in the
    rooms it maps (a new subpackage left out would be missing from the wheel),
    and each data folder that package-data fills (setuptools warns of, and
    will one day leave out, a data folder missing from the list)."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    data = set(setuptools["package-data"])
    assert all(_folder(p).is_dir() and not (_folder(p) / "__init__.py").exists() for p in data)
    assert found | data == set(setuptools["packages"])
    assert all(p == "fmsearch" or p.startswith("fmsearch.") for p in setuptools["packages"])


#: a line of build output about packaging that is a warning (setuptools' warning classes, distutils' "warning:")
PACKAGING_WARNING = re.compile(r"warn", re.IGNORECASE)


def _build(kind: str, source: Path, out: Path) -> tuple[Path, str]:
    """Build with the project's build backend in a fresh process, as pip
    would; the built file and everything the build printed."""
    code = f"from setuptools import build_meta; print(build_meta.build_{kind}({str(out)!r}))"
    # PYTHONDONTWRITEBYTECODE makes distutils print "warning: byte-compiling is disabled", about
    # the environment, not the package
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1], done.stdout + done.stderr


def _wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n for n in zf.namelist() if ".dist-info/" not in n}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the working tree's files (what git tracks or would), so that
    builds leave nothing in the repository and see no stale build/ folder."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"git cannot list the working tree: {listed.stderr.strip()}")
    copy = tmp_path_factory.mktemp("source")
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture(scope="module")
def built(source, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """The wheel, the sdist and the editable wheel (what ``pip install .``
    and ``pip install -e .`` build), each with what its build printed."""
    return {kind: _build(kind, source, tmp_path_factory.mktemp(kind)) for kind in ("wheel", "sdist", "editable")}


@pytest.fixture(scope="module")
def wheel(built) -> Path:
    return built["wheel"][0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wheel", "sdist", "editable"])
def test_building_prints_no_packaging_warning(built, kind):
    warnings = [line for line in built[kind][1].splitlines() if PACKAGING_WARNING.search(line)]
    assert not warnings, "\n".join(warnings)


@pytest.mark.slow
def test_the_wheel_carries_the_page_and_the_shipped_weights(source, wheel):
    """Every file of the page and every shipped model file in the repository
    (a file added later included) is in the wheel, where the code looks for it."""
    page = {
        f"fmsearch/serve/web/{p.relative_to(source / 'fmsearch/serve/web').as_posix()}"
        for p in (source / "fmsearch/serve/web").rglob("*")
        if p.is_file()
    }
    weights = {
        f"fmsearch/models/weights/{p.name}"
        for p in (source / "models/weights").iterdir()
        if p.name.endswith((".keras", ".onnx", ".card.json"))
    }
    assert "fmsearch/serve/web/index.html" in page and any(f.endswith("static/app.js") for f in page)
    assert {f"fmsearch/models/weights/siamese.{ext}" for ext in ("keras", "onnx", "card.json")} <= weights
    files = _wheel_files(wheel)
    assert (page | weights) - files == set()


@pytest.mark.slow
def test_the_wheel_has_one_import_root(wheel, tmp_path):
    files = _wheel_files(wheel)
    assert {f.split("/")[0] for f in files} == {"fmsearch"}
    for module in (
        "fmsearch/cli/main.py",
        "fmsearch/store/edge.py",
        "fmsearch/search/mode.py",
        "fmsearch/ingest/rebuild.py",
        "fmsearch/evaluation/bench/timing.py",
        "fmsearch/images/fmnist.py",
        "fmsearch/models/weights/siamese.keras",
        "fmsearch/models/weights/siamese.card.json",
        "fmsearch/serve/web/index.html",
        "fmsearch/serve/web/static/app.js",
        "fmsearch/serve/web/static/style.css",
    ):
        assert module in files
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    # the unpacked wheel, first on the path, imports on its own (not from the repository)
    code = (
        "import fmsearch.store, fmsearch.search.mode, fmsearch.models.artifacts as a; "
        "print(fmsearch.store.__file__); print(a.default_artifact('siamese').is_file())"
    )
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {code}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(tmp_path / "site")) and out[1] == "True"


@pytest.mark.slow
def test_the_sdist_builds_the_same_wheel(built, wheel, tmp_path):
    with tarfile.open(built["sdist"][0]) as tf:
        tf.extractall(tmp_path / "src", filter="data")
    (unpacked,) = (tmp_path / "src").iterdir()
    assert _wheel_files(_build("wheel", unpacked, tmp_path / "out")[0]) == _wheel_files(wheel)


def test_the_editable_install_maps_the_rooms_to_the_repository():
    import fmsearch.evaluation
    import fmsearch.search
    import fmsearch.store

    assert Path(fmsearch.store.__file__) == ROOT / "store" / "__init__.py"
    assert Path(fmsearch.search.__file__) == ROOT / "search" / "__init__.py"
    assert Path(fmsearch.evaluation.__file__) == ROOT / "evaluation" / "__init__.py"
