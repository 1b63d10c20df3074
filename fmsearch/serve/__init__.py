"""``fmsearch serve``: the search service over HTTP, a thin face over the
library like the CLI (models loaded once, requests micro-batched).

A module here imports only those above it in this list:

- :mod:`~fmsearch.serve.config`: what the service is started with;
- :mod:`~fmsearch.serve.schemas`: the request and response shapes (the
  OpenAPI document);
- :mod:`~fmsearch.serve.service`: the loaded serving copy, Searcher and
  models, the work each request does (blocking, run off the event loop:
  decode, embed, search);
- :mod:`~fmsearch.serve.limits`, :mod:`~fmsearch.serve.metrics`,
  :mod:`~fmsearch.serve.middleware`: the upload limit, the Prometheus
  series, the deadline and the metering (plain ASGI middleware);
- :mod:`~fmsearch.serve.errors`: every error's answer, in one handler;
- :mod:`~fmsearch.serve.deps`: what routes get with ``Depends``: the
  process's ``Serving``, the service once ready (503 while loading), the
  API key (a FastAPI security dependency);
- :mod:`~fmsearch.serve.forms`: a multipart search form (python-multipart,
  through Starlette's parser), its fields typed strictly;
- :mod:`~fmsearch.serve.routers`: the endpoints, an ``APIRouter`` per subject;
- :mod:`~fmsearch.serve.app`: the application: the routers, the key where
  one is set, the middleware, the page; the service loads at start-up,
  before the server takes a connection;
- :mod:`~fmsearch.serve.run`: granian (default) or uvicorn, one process or
  several.

Concurrent searches of one method are embedded together and searched with
one batch request by :mod:`fmsearch.search.batcher`; the service's benchmark
and its bare reference endpoint are in :mod:`fmsearch.evaluation.bench`
(``fmsearch bench serve``).
"""
