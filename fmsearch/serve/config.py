"""What the service is started with, passed to each worker process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from fmsearch import environment
from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import RESULTS_DIR
from fmsearch.store.base import MAX_HNSW_EF
from fmsearch.store.settings import StoreSettings

#: the environment variable a worker process reads its configuration from
CONFIG_ENV = environment.SERVE_CONFIG
DEFAULT_MAX_UPLOAD = 20 * 2**20


@dataclass(frozen=True)
class ServeConfig:
    """The service's settings.

    Attributes:
        store_settings: the store, as every command takes it (the global
            options of ``fmsearch``, ``--prefer-grpc`` included).
        data_dir: the FMNIST files (images of ids the collections lack).
        methods: the methods to serve (None: every ingested one).
        api_key: required in the ``X-API-Key`` header of every /api request.
        cors_origins: origins a browser may call from (none: CORS off).
        max_upload_bytes: larger uploads are refused before they are read whole.
        request_timeout_s: a request running longer is answered 503.
        batching: embed and search concurrent plain searches together.
        threads: ONNX Runtime threads per inference (default one per core);
            they never spin-wait between calls here.
        hnsw_ef: the graph search's breadth (None: the store's default).
        acorn: Qdrant's ACORN search for filtered queries.
        insight_dir: where ``fmsearch map`` and ``fmsearch duplicates``
            wrote (their default folder): the page's map and duplicates.
    """

    store_settings: StoreSettings = field(default_factory=StoreSettings)
    data_dir: str | None = None
    methods: tuple[str, ...] | None = None
    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    request_timeout_s: float = 30.0
    batching: bool = True
    threads: int | None = None
    hnsw_ef: int | None = None
    acorn: bool = False
    insight_dir: str = RESULTS_DIR

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1024:
            raise InvalidArgumentError(
                f"max upload must be at least 1024 bytes, got {self.max_upload_bytes}", param="max_upload_bytes"
            )
        if not self.request_timeout_s > 0:
            raise InvalidArgumentError(
                f"request timeout must be above 0 s, got {self.request_timeout_s}", param="request_timeout_s"
            )
        if self.hnsw_ef is not None and not 1 <= self.hnsw_ef <= MAX_HNSW_EF:
            raise InvalidArgumentError(f"hnsw ef must be 1-{MAX_HNSW_EF}, got {self.hnsw_ef}", param="hnsw_ef")
        if self.api_key is not None and not self.api_key.strip():
            raise InvalidArgumentError("the API key is empty", param="api_key")

    def to_env(self) -> str:
        """The configuration as the text a worker process reads (:meth:`from_env`)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str | None = None) -> ServeConfig:
        """The configuration the parent process left for a worker.

        Args:
            text: what :meth:`to_env` wrote (default: ``FMSEARCH_SERVE_CONFIG``).

        Raises:
            InvalidArgumentError: no configuration was left.
        """
        text = environment.serve_config() if text is None else text
        if text is None:
            raise InvalidArgumentError(
                f"no service configuration: {CONFIG_ENV} is not set (fmsearch serve sets it for its workers)"
            )
        data = json.loads(text)
        data["store_settings"] = StoreSettings(**data["store_settings"])
        for key in ("methods", "cors_origins"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)
