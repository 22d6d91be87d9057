"""Prometheus metrics, one registry per app (several apps in one process never mix counts)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Request counts and latencies by route and status, batch sizes, run times, queue depths."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "omnifuse_requests",
            "HTTP requests answered, by route, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "omnifuse_request_seconds",
            "Time to answer a request (to the last byte), by route.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "omnifuse_requests_in_flight", "Requests being answered.", registry=self.registry
        )
        self.batch_size = Histogram(
            "omnifuse_batch_size",
            "Items per batch run, by component.",
            ("component",),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "omnifuse_batch_seconds",
            "Run time of one batch, by component.",
            ("component",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "omnifuse_queue_depth",
            "Items waiting for a batch, by component.",
            ("component",),
            registry=self.registry,
        )

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def batch_ran(self, component: str, size: int, seconds: float) -> None:
        self.batch_size.labels(component).observe(size)
        self.batch_seconds.labels(component).observe(seconds)

    def queue_depth(self, component: str, depth: int) -> None:
        self.queue.labels(component).set(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
