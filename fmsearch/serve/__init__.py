"""``fmsearch serve``: the search service over HTTP, a thin face over the
library like the CLI (models loaded once, requests micro-batched).

A module here imports only those above it in this list:

- :mod:`~fmsearch.serve.config`: what the service is started with;
- :mod:`~fmsearch.serve.forms`: ``multipart/form-data`` bodies parsed from
  memory in one pass;
- :mod:`~fmsearch.serve.schemas`: the request and response shapes (the
  OpenAPI document);
- :mod:`~fmsearch.serve.service`: the loaded serving copy, Searcher and
  models, the work each request does (blocking, run off the event loop:
  decode, embed, search);
- :mod:`~fmsearch.serve.limits`, :mod:`~fmsearch.serve.metrics`: the upload
  limit, the Prometheus series;
- :mod:`~fmsearch.serve.routes`: the endpoints (the search route a bare
  ASGI route, documented from the schemas);
- :mod:`~fmsearch.serve.app`: the application: errors as 4xx JSON in one
  place, API key, CORS, metrics, the upload limit;
- :mod:`~fmsearch.serve.run`: granian (default) or uvicorn, one process or
  several.

Concurrent searches of one method are embedded together and searched with
one batch request by :mod:`fmsearch.search.batcher`; the service's benchmark
and its bare reference endpoint are in :mod:`fmsearch.evaluation.bench`
(``fmsearch bench serve``).
"""
