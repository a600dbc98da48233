"""The server's Prometheus metrics, in a registry of its own (not prometheus_client's global one, so
that two servers in one process, as in the tests, count apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency from 5 ms (a tiny model on a GPU) to 60 s (a full queue on a slow CPU).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """requests by endpoint and status, request latency, batch size and queue depth (images)."""

    def __init__(self, *, max_batch_size: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("xception_requests", "HTTP requests answered, by endpoint and status code",
                                ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("xception_request_duration_seconds", "time from request to answer, by endpoint",
                                 ("endpoint",), buckets=_LATENCY_BUCKETS, registry=self.registry)
        sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch_size})
        self.batch_size = Histogram("xception_batch_size", "images per inference batch",
                                    buckets=[s for s in sizes if s <= max_batch_size], registry=self.registry)
        self.queue_depth = Gauge("xception_queue_depth", "images waiting for inference", registry=self.registry)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
