"""The package as users install it: one import root, ``fmsearch``, from the
wheel, from the sdist, and in an editable install."""

from __future__ import annotations

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


def test_every_package_folder_is_installed_under_fmsearch():
    """pyproject's package list names every folder with an __init__.py in the
    rooms it maps (a new subpackage left out would be missing from the wheel)."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    assert found == set(setuptools["packages"])
    assert all(p == "fmsearch" or p.startswith("fmsearch.") for p in setuptools["packages"])


def _build(kind: str, source: Path, out: Path) -> Path:
    """Build with the project's build backend in a fresh process, as pip would."""
    code = f"from setuptools import build_meta; print(build_meta.build_{kind}({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1]


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
def wheel(source, tmp_path_factory) -> Path:
    return _build("wheel", source, tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow
def test_the_wheel_has_one_import_root(wheel, tmp_path):
    files = _wheel_files(wheel)
    assert {f.split("/")[0] for f in files} == {"fmsearch"}
    for module in ("fmsearch/cli/main.py", "fmsearch/store/edge.py", "fmsearch/search/mode.py",
                   "fmsearch/ingest/rebuild.py", "fmsearch/evaluation/bench/timing.py", "fmsearch/images/fmnist.py",
                   "fmsearch/models/weights/siamese.keras", "fmsearch/models/weights/siamese.card.json",
                   "fmsearch/serve/web/index.html", "fmsearch/serve/web/static/app.js",
                   "fmsearch/serve/web/static/style.css"):
        assert module in files
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    # the unpacked wheel, first on the path, imports on its own (not from the repository)
    code = ("import fmsearch.store, fmsearch.search.mode, fmsearch.models.artifacts as a; "
            "print(fmsearch.store.__file__); print(a.default_artifact('siamese').is_file())")
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {code}"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith(str(tmp_path / "site")) and out[1] == "True"


@pytest.mark.slow
def test_the_sdist_builds_the_same_wheel(source, wheel, tmp_path):
    sdist = _build("sdist", source, tmp_path)
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp_path / "src", filter="data")
    (unpacked,) = (tmp_path / "src").iterdir()
    assert _wheel_files(_build("wheel", unpacked, tmp_path / "out")) == _wheel_files(wheel)


def test_the_editable_install_maps_the_rooms_to_the_repository():
    import fmsearch.evaluation
    import fmsearch.search
    import fmsearch.store

    assert Path(fmsearch.store.__file__) == ROOT / "store" / "__init__.py"
    assert Path(fmsearch.search.__file__) == ROOT / "search" / "__init__.py"
    assert Path(fmsearch.evaluation.__file__) == ROOT / "evaluation" / "__init__.py"
