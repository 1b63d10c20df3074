"""Data in: the FMNIST files, image files given as queries, and batches of them.

Knows nothing of models or Qdrant.
"""

from fmsearch.images.files import decode_png, encode_png, load_image
from fmsearch.images.fmnist import (
    CLASS_NAMES,
    IMAGE_SIDE,
    SPLITS,
    Split,
    class_index,
    load_split,
    locate,
)

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SIDE",
    "SPLITS",
    "Split",
    "class_index",
    "decode_png",
    "encode_png",
    "load_image",
    "load_split",
    "locate",
]
