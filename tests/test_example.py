"""README's example of a service calling Qdrant directly runs as printed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from models import get_embedder
from search.indexer import ingest
from search.query import Searcher

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "query_qdrant_directly.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_the_example_verbatim():
    readme = (ROOT / "README.md").read_text()
    body = EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert body in readme


def test_example_queries_a_collection_with_plain_qdrant_client(tmp_path, fmnist):
    from search.server_store import ServerStore

    with ServerStore.local(str(tmp_path / "q")) as store:
        ingest(store, get_embedder("pixels"), limit=400, prefix="fmnist_")
        vector = store.retrieve("fmnist_pixels", [0], with_vectors=True)[0].vector.tolist()
        rows = _load_example().similar_in_class(store.client, "fmnist_pixels", vector, "Sneaker", k=5)
        assert len(rows) == 5 and {r[2] for r in rows} == {"Sneaker"}
        ours = Searcher(store).query_id("pixels", 0, k=5, classes=["Sneaker"])
        assert [r[0] for r in rows] == [h.id for h in ours]
