"""mypy on the library as it installs: one package, ``fmsearch``.

The repository keeps one folder per room (``images/``, ``store/``, ...) and
pyproject maps each to its subpackage (``fmsearch.images``, ...), a layout
mypy cannot read from the folders themselves. This builds that package as
links under ``build/typecheck/fmsearch`` (from pyproject's ``package-dir``)
and runs mypy on it, so that every ``fmsearch.*`` import resolves to the
code it names. ``make lint`` (and so ``make test``) runs it.

Usage: python tests/typecheck.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"


def build_tree() -> Path:
    """The installed layout, as links into the repository."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "fmsearch"
    package.mkdir(parents=True)
    rooms = {name.split(".", 1)[1]: folder for name, folder in mapping.items() if name != "fmsearch"}
    for entry in (ROOT / mapping["fmsearch"]).iterdir():  # the package root's own modules and faces
        if entry.name not in rooms and entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for room, folder in rooms.items():
        (package / room).symlink_to(ROOT / folder)
    return package


def main() -> int:
    package = build_tree()
    done = subprocess.run(
        [sys.executable, "-m", "mypy", str(package)], cwd=ROOT, env={**os.environ, "MYPYPATH": str(TREE)}
    )
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
