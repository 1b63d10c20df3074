"""Prometheus metrics of one service process (``GET /metrics``): requests
and their latency per endpoint and search method, and embed batch sizes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """A registry of this process's own (several workers: one each)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fmsearch_requests_total", "Requests answered", ["endpoint", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "fmsearch_request_seconds",
            "Time to answer a request",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._series: dict[tuple[str, str, int], tuple] = {}
        self.batches = Histogram(
            "fmsearch_embed_batch_size",
            "Requests embedded together",
            ["method"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        series = self._series.get(key)
        if series is None:  # labels() is a locked lookup: resolve each combination once
            series = self._series[key] = (
                self.requests.labels(endpoint, method, str(status)),
                self.latency.labels(endpoint, method),
            )
        series[0].inc()
        series[1].observe(seconds)

    def batch(self, method: str, size: int) -> None:
        self.batches.labels(method).observe(size)

    def text(self) -> bytes:
        return generate_latest(self.registry)
