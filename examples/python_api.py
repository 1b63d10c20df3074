"""README's Python API example: one query image through every search mode.

tests/test_example.py runs `search_modes` on a small gallery and checks each
mode against the CLI's own code path.
"""

import sys

from fmsearch.images.files import load_image
from fmsearch.search import RerankConfig, Searcher, SearchMode
from fmsearch.store import open_store


def search_modes(store, image, k=5):
    """{mode: [(id, class name), ...]} for one (28, 28) query image."""
    s = Searcher(store)  # collections fmnist_<method>; one Searcher serves every mode
    modes = {
        "siamese": s.search("siamese", image=image, k=k),
        "siamese, Sneaker only": s.search("siamese", image=image, k=k, classes=["Sneaker"]),
        "pixels int8 + rescore": s.search(SearchMode("pixels", quantization="int8", oversampling=2), image=image, k=k),
        "pixels, rescored by siamese": s.search(SearchMode("pixels", rescore_with="siamese"), image=image, k=k),
        "autoencoder+siamese, RRF": s.search(SearchMode("autoencoder+siamese", fusion="rrf"), image=image, k=k),
        "pixels + SIFT rerank": s.search(SearchMode("pixels", rerank=RerankConfig(shortlist=100)), image=image, k=k),
        "siamese, query expanded by its top 3": s.search(SearchMode("siamese", expand=3), image=image, k=k),
        "like gallery images 0 and 1, unlike 2": s.recommend("siamese", positive=[0, 1], negative=[2], k=k),
    }
    return {mode: [(hit.id, hit.class_name) for hit in hits] for mode, hits in modes.items()}


if __name__ == "__main__":
    # The embedded store in $FMSEARCH_HOME (default ./.fmsearch); open_store("http://...") for a server.
    with open_store() as store:
        for mode, hits in search_modes(store, load_image(sys.argv[1])).items():
            print(f"{mode}: {hits}")
