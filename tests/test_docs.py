"""README is a front door: short, every link resolving, its code running."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    out, fence = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


def test_readme_is_at_most_300_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_resolves(page):
    """Relative links point at files that exist, and anchors at headings
    that exist (web links are not followed: no network in the tests)."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, "\n".join(broken)


def test_one_table_lists_every_environment_variable():
    """docs/development.md's table names each variable fmsearch reads
    (fmsearch/environment.py), and no other but those the tests read."""
    from fmsearch import environment

    constants = {v for k, v in vars(environment).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(environment.NAMES)
    text = (ROOT / "docs" / "development.md").read_text()
    table = text[re.search(r"^#+ Environment variables$", text, re.MULTILINE).end() :].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("*.py"))
    assert set(environment.NAMES) <= listed, set(environment.NAMES) - listed
    assert all(name in environment.NAMES or f'"{name}"' in tests for name in listed), listed - set(environment.NAMES)


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert all(f"docs/{p.name}" in readme for p in PAGES[1:])


def test_the_readme_python_snippet_runs(fmnist, tmp_path, monkeypatch):
    """The README's Python API snippet, as printed, on a small embedded store."""
    from fmsearch.ingest.indexer import ingest
    from fmsearch.models import get_embedder
    from fmsearch.store import open_store

    (snippet,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    monkeypatch.setenv("FMSEARCH_HOME", str(tmp_path / "home"))
    with open_store() as store:
        for method in ("autoencoder", "siamese"):
            ingest(store, get_embedder(method), limit=300)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    hits = scope["hits"]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and all(0 <= h.id < 300 for h in hits)
