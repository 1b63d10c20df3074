"""Benchmarks, one module per suite over shared timing helpers
(:mod:`~fmsearch.evaluation.bench.timing`). Each suite returns a
:class:`BenchResult`: its figures (written as JSON) and their table.

- ``search``: Edge against numpy brute force and local mode, a scale series,
  a class filter, and each store's ingest;
- ``embed``: images per second per method, the gallery's ingest time, the
  runtimes, a command-line query's wall time, the installs' weight;
- ``rerank``: SIFT extraction, the SIFT gallery, rerank latency;
- ``modes``: every search mode on the built collections;
- ``quantization``: recall of int8 and binary, offered or not;
- ``serve``: the HTTP service under load, started as a command, against
  a bare reference endpoint (:mod:`~fmsearch.evaluation.bench.reference`);
- ``scale``: 60,000 to millions of points, ingest to filtered recall, against
  hnswlib (an hour and more at a million: not part of ``all``);
- ``explain``: the deletion test of the occlusion heatmaps on the built
  collections, and an explanation's time in the service; ``--sweep`` chooses
  the occlusion on validation queries (tens of minutes: not part of ``all``).
"""

from fmsearch.evaluation.bench.timing import BenchResult

#: the suites ``fmsearch bench all`` runs, in order (every one but scale)
SUITES = ("search", "embed", "rerank", "modes", "quantization", "serve")

__all__ = ["SUITES", "BenchResult"]
