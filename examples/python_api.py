"""README's Python API example: one query image through every search mode.

tests/test_example.py runs `search_modes` on a small gallery and checks each
mode against the CLI's own code path.
"""
import sys

from ingest.images import load_image
from search.query import Searcher
from search.rerank import RerankConfig
from search.store import QuantizationParams, open_store


def search_modes(store, image, k=5):
    """{mode: [(id, class name), ...]} for one (28, 28) query image."""
    s = Searcher(store)  # plain collections fmnist_<method>
    int8 = Searcher(store, quantization="int8", quantization_params=QuantizationParams(rescore=True, oversampling=2))
    modes = {
        "siamese": s.search("siamese", image=image, k=k),
        "siamese, Sneaker only": s.search("siamese", image=image, k=k, classes=["Sneaker"]),
        "pixels int8 + rescore": int8.search("pixels", image=image, k=k),
        "pixels, rescored by siamese": s.search("pixels", image=image, k=k, shortlist=100, rescore_with="siamese"),
        "autoencoder+siamese, RRF": s.search("autoencoder+siamese", image=image, k=k, fusion="rrf"),
        "pixels + SIFT rerank": s.search("pixels", image=image, k=k, rerank=RerankConfig(shortlist=100)),
        "like gallery images 0 and 1, unlike 2": s.recommend("siamese", positive=[0, 1], negative=[2], k=k),
    }
    return {mode: [(hit.id, hit.class_name) for hit in hits] for mode, hits in modes.items()}


if __name__ == "__main__":
    # The embedded store in $FMSEARCH_HOME (default ./.fmsearch); open_store("http://...") for a server.
    with open_store() as store:
        for mode, hits in search_modes(store, load_image(sys.argv[1])).items():
            print(f"{mode}: {hits}")
