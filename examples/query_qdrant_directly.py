"""Another service querying an fmsearch collection with plain qdrant-client."""

import os

from qdrant_client import QdrantClient, models


def similar_in_class(client, collection, vector, class_name, k=10):
    """Nearest neighbours of `vector` among gallery images of one class."""
    hits = client.query_points(
        collection,
        query=vector,  # 784 floats for fmnist_pixels; any L2-normalised vector of the collection's size
        query_filter=models.Filter(
            must=[models.FieldCondition(key="class_name", match=models.MatchValue(value=class_name))]
        ),
        limit=k,
        with_payload=["label", "class_name", "split", "index"],
    ).points
    return [(hit.id, round(hit.score, 4), hit.payload["class_name"]) for hit in hits]


if __name__ == "__main__":
    client = QdrantClient(
        url=os.environ.get("QDRANT_URL", "http://localhost:6333"), api_key=os.environ.get("QDRANT_API_KEY")
    )
    # Query with the stored vector of gallery image 0 (a train image: point id = index).
    query = client.retrieve("fmnist_pixels", [0], with_vectors=True)[0].vector
    for row in similar_in_class(client, "fmnist_pixels", query, "Sneaker"):
        print(row)
