"""The shape of the codebase: rooms that data flows through one way, no
import circle, short functions, no side effects at import.

Read from the source with ``ast`` (every import counts, those inside
functions too), so these checks hold for code no test happens to run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> the package it installs as (pyproject's package-dir)
ROOMS = {
    "images": "fmsearch.images",
    "models": "fmsearch.models",
    "store": "fmsearch.store",
    "ingest": "fmsearch.ingest",
    "search": "fmsearch.search",
    "evaluation": "fmsearch.evaluation",
    "fmsearch/serve": "fmsearch.serve",
    "fmsearch/cli": "fmsearch.cli",
}
#: the data path: a room may import the rooms before it, never those after
ORDER = list(ROOMS.values())
#: the package root (version, domain errors, the environment variables) that every room may import
SHARED = ("fmsearch", "fmsearch.errors", "fmsearch.environment")
#: third-party packages a room must never import (CONVENTIONS.md)
TRAINING = ("tensorflow", "keras", "tf2onnx", "onnx")  # the training extra: only models/ may import it
FORBIDDEN = {
    "fmsearch.images": (*TRAINING, "qdrant_client", "qdrant_edge"),
    "fmsearch.models": ("qdrant_client", "qdrant_edge"),
    "fmsearch.store": (*TRAINING, "cv2", "matplotlib"),
    "fmsearch.ingest": TRAINING,
    "fmsearch.search": TRAINING,
    "fmsearch.evaluation": TRAINING,
    "fmsearch.serve": TRAINING,
    "fmsearch.cli": TRAINING,
}
MAX_FUNCTION_LINES = 80


def _library_files() -> dict[str, Path]:
    """module name -> file, for every library module."""
    out = {
        "fmsearch": ROOT / "fmsearch/__init__.py",
        "fmsearch.errors": ROOT / "fmsearch/errors.py",
        "fmsearch.environment": ROOT / "fmsearch/environment.py",
        "fmsearch.__main__": ROOT / "fmsearch/__main__.py",
    }
    for folder, package in ROOMS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


MODULES = _library_files()


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file; ``from a import b``
    counts as ``a.b`` when that is a module, else ``a``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in MODULES else base, node.lineno))
    return found


def _room(module: str) -> str | None:
    return next((r for r in sorted(ORDER, key=len, reverse=True) if module == r or module.startswith(r + ".")), None)


def test_every_library_file_is_in_a_room():
    assert len(MODULES) > 40
    assert all(_room(m) or m in (*SHARED, "fmsearch.__main__") for m in MODULES)


def test_nothing_imports_the_old_top_level_packages():
    """Installed, the rooms exist only under fmsearch: an import of plain
    ``search`` or ``models`` would work in the repository and fail for users."""
    bad = []
    for path in [*MODULES.values(), *ROOT.glob("tests/*.py"), *ROOT.glob("examples/*.py")]:
        for name, line in _imports("tests.x" if "tests" in path.parts else "x", path):
            if name.split(".")[0] in ("images", "models", "store", "ingest", "search", "evaluation"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_data_flows_one_way():
    """A room imports only the rooms before it on the data path (images ->
    models -> store -> ingest -> search -> evaluation -> cli), and nothing
    imports the CLI."""
    bad = []
    for module, path in MODULES.items():
        mine = _room(module)
        for name, line in _imports(module, path):
            theirs = _room(name)
            if name.startswith("fmsearch") and theirs is None and name not in SHARED:
                bad.append(f"{module}:{line} imports {name}, which is in no room")
            elif mine is not None and theirs is not None and ORDER.index(theirs) > ORDER.index(mine):
                bad.append(f"{module}:{line} ({mine}) imports {name} ({theirs}), a later room")
            elif mine is None and theirs is not None and module != "fmsearch.__main__":
                bad.append(f"{module}:{line} (the package root) imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("room, packages", FORBIDDEN.items())
def test_rooms_never_import_what_they_must_not(room, packages):
    bad = [
        f"{module}:{line} imports {name}"
        for module, path in MODULES.items()
        if _room(module) == room
        for name, line in _imports(module, path)
        if name.split(".")[0] in packages
    ]
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    """No cycle in the graph of library imports (imports inside functions count)."""
    graph = {m: {n for n, _ in _imports(m, p) if n in MODULES and n != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n) :] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


def test_no_library_function_is_longer_than_80_lines():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name} ({path.relative_to(ROOT)}:{node.lineno}): {n} lines")
    assert not long, "\n".join(long)


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read the process environment: any use of ``os.environ``,
    ``os.environb`` or ``os.getenv``, and importing them, except as the target
    of an assignment or a ``del`` (``os.environ[NAME] = value`` sets what a
    child process inherits: a write, which the module that starts the child
    keeps)."""
    names = {"environ", "environb", "getenv", "getenvb"}
    writes = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del))
    }
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names and getattr(node.value, "id", "") == "os":
            if id(node) not in writes:
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and names & {a.name for a in node.names}:
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_environment_module_reads_environment_variables():
    """Every variable is read in fmsearch/environment.py (so that one table
    in docs/development.md lists them all); the rest call its accessors."""
    assert _environment_reads(
        ast.parse(
            "import os\nos.environ.get('X')\nos.getenv('Y')\nx = {**os.environ}\n"
            "os.environ['Z'] = '1'\ndel os.environ['Z']\n"
        )
    ) == [2, 3, 4]
    bad = [
        f"{module}:{line} reads the environment"
        for module, path in MODULES.items()
        if module != "fmsearch.environment"
        for line in _environment_reads(ast.parse(path.read_text()))
    ]
    assert not bad, "\n".join(bad)


def test_cli_options_name_their_environment_variable_by_its_constant():
    """``envvar=`` is one of fmsearch.environment's constants, never a string
    typed again (a variable the table and the accessors would not know)."""
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "envvar":
                value = node.value
                if not (isinstance(value, ast.Attribute) and getattr(value.value, "id", "") == "environment"):
                    bad.append(f"{module}:{node.lineno} envvar={ast.unparse(value)}")
    assert not bad, "\n".join(bad)


def test_library_code_never_prints_or_picks_a_plot_backend():
    """Library code logs (the CLI configures handlers) and draws on
    matplotlib Figures without switching the process's backend."""
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name == "print" or (
                    name == "use" and isinstance(fn, ast.Attribute) and getattr(fn.value, "id", "") == "matplotlib"
                ):
                    bad.append(f"{module}:{node.lineno} calls {name}")
                if name == "basicConfig" and _room(module) != "fmsearch.cli":
                    bad.append(f"{module}:{node.lineno} configures logging")
            if isinstance(node, ast.Name) and node.id == "print" and isinstance(node.ctx, ast.Load):
                bad.append(f"{module}:{node.lineno} uses print")
    assert not bad, "\n".join(bad)


def test_importing_every_module_has_no_side_effects():
    """Importing the whole library changes no environment variable and
    imports neither TensorFlow nor qdrant-client (both load on first use)."""
    code = (
        "import os, sys, importlib, json\n"
        "before = dict(os.environ)\n"
        f"for m in {sorted(m for m in MODULES if m != 'fmsearch.__main__')!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps({'env': {k: v for k, v in os.environ.items() if before.get(k) != v},\n"
        "                  'heavy': sorted(m for m in ('tensorflow', 'keras', 'qdrant_client', 'cv2')\n"
        "                                  if m in sys.modules)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT / "tests", check=True
    )
    assert out.stdout.strip().splitlines()[-1] == '{"env": {}, "heavy": []}'
