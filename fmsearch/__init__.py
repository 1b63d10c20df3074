"""fmsearch: image similarity search over Fashion-MNIST, backed by Qdrant."""

__version__ = "0.1.0"
