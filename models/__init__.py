"""Embedding methods: images (N, 28, 28) uint8 -> vectors (N, d) float32.

Never imports Qdrant; TensorFlow is imported only by the methods that need it.
"""

import os

# TensorFlow's C++ start-up chatter (CPU instruction sets, oneDNN notices) is
# not for users of a CLI; set TF_CPP_MIN_LOG_LEVEL=0 to see it again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .base import Embedder, l2_normalize
from .registry import check_method, get_embedder, method_names

__all__ = ["Embedder", "check_method", "get_embedder", "l2_normalize", "method_names"]
