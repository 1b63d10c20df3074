"""``fmsearch serve``: the search service over HTTP, a thin face over the
library like the CLI (models loaded once, requests micro-batched).

- :mod:`~fmsearch.serve.config`: what the service is started with;
- :mod:`~fmsearch.serve.service`: the loaded store, Searcher and models,
  the work each request does (blocking, run off the event loop);
- :mod:`~fmsearch.serve.batcher`: concurrent searches of one method
  embedded together and searched with one batch request;
- :mod:`~fmsearch.serve.schemas`: the request and response shapes (the
  OpenAPI document);
- :mod:`~fmsearch.serve.app`: the FastAPI application: routes, errors as
  4xx JSON, API key, limits, metrics;
- :mod:`~fmsearch.serve.run`: uvicorn, one process or several.
"""
