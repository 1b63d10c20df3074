"""README's example of a service calling Qdrant directly runs as printed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fmsearch.ingest.indexer import ingest
from fmsearch.models import get_embedder
from fmsearch.search import Searcher, SearchMode

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "query_qdrant_directly.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schema_page_shows_the_example_verbatim():
    page = (ROOT / "docs" / "schema.md").read_text()
    body = EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert body in page


def test_example_queries_a_collection_with_plain_qdrant_client(tmp_path, fmnist):
    from fmsearch.store.server import ServerStore

    with ServerStore.local(str(tmp_path / "q")) as store:
        ingest(store, get_embedder("pixels"), limit=400, prefix="fmnist_")
        vector = store.retrieve("fmnist_pixels", [0], with_vectors=True)[0].vector.tolist()
        rows = _load_example().similar_in_class(store.client, "fmnist_pixels", vector, "Sneaker", k=5)
        assert len(rows) == 5 and {r[2] for r in rows} == {"Sneaker"}
        ours = Searcher(store).search("pixels", id=0, k=5, classes=["Sneaker"])
        assert [r[0] for r in rows] == [h.id for h in ours]


API_EXAMPLE = ROOT / "examples" / "python_api.py"


def test_the_search_modes_page_shows_the_python_api_example_verbatim():
    body = API_EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert body in (ROOT / "docs" / "search-modes.md").read_text()


@pytest.mark.slow
def test_python_api_example_runs_every_mode(tmp_path, fmnist):
    """Each mode of the example, on a 300-image gallery of every collection it
    needs, gives k results that agree with what the CLI's code path returns."""
    from fmsearch.models.sift import SiftExtractor
    from fmsearch.search.rerank import RerankConfig
    from fmsearch.store.edge import EdgeStore

    spec = importlib.util.spec_from_file_location("python_api", API_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with EdgeStore(tmp_path / "home") as store:
        for method in ("pixels", "autoencoder", "siamese"):
            ingest(store, get_embedder(method), limit=300)
        ingest(store, get_embedder("pixels"), limit=300, quantization="int8")
        ingest(store, SiftExtractor(), limit=300)
        image = fmnist["test"].images[0]
        out = module.search_modes(store, image, k=5)
        assert len(out) == 8 and all(len(hits) == 5 for hits in out.values())
        assert {c for _, c in out["siamese, Sneaker only"]} == {"Sneaker"}
        assert not {0, 1, 2} & {i for i, _ in out["like gallery images 0 and 1, unlike 2"]}
        s = Searcher(store)
        assert [i for i, _ in out["siamese"]] == [h.id for h in s.search("siamese", image=image, k=5)]
        reranked = s.search(SearchMode("pixels", rerank=RerankConfig(shortlist=100)), image=image, k=5)
        assert [i for i, _ in out["pixels + SIFT rerank"]] == [h.id for h in reranked]
        expanded = s.search(SearchMode("siamese", expand=3), image=image, k=5)
        assert [i for i, _ in out["siamese, query expanded by its top 3"]] == [h.id for h in expanded]
