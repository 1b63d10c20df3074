"""Embedding methods: images (N, 28, 28) uint8 -> vectors (N, d) float32.

Never imports Qdrant; TensorFlow is imported only by the methods that need it
(:mod:`~fmsearch.models.tf_runtime`), when they first embed or train.
"""

from fmsearch.models.base import Embedder, l2_normalize
from fmsearch.models.registry import check_method, get_embedder, method_names

__all__ = ["Embedder", "check_method", "get_embedder", "l2_normalize", "method_names"]
