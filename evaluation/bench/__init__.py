"""Benchmarks, one module per suite over shared timing helpers
(:mod:`~fmsearch.evaluation.bench.timing`). Each suite returns a
:class:`BenchResult`: its figures (written as JSON) and their table.

- ``store``: ingest and query, Qdrant Edge against qdrant-client local mode;
- ``search``: Edge against numpy brute force and local mode, and a scale series;
- ``embed``: images per second per method, and the gallery's ingest time;
- ``rerank``: SIFT extraction, the SIFT gallery, rerank latency;
- ``modes``: every search mode on the built collections;
- ``quantization``: recall of int8 and binary, offered or not;
- ``scale``: 60,000 to millions of points, ingest to filtered recall, against
  hnswlib (an hour and more at a million: not part of ``all``).
"""

from fmsearch.evaluation.bench.timing import BenchResult

SUITES = ("store", "search", "embed", "rerank", "modes", "quantization")

__all__ = ["SUITES", "BenchResult"]
