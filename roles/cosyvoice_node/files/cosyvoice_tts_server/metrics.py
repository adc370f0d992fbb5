"""Prometheus metrics (text format on /metrics), all named cosyvoice_tts_*.

Counters and the latency histogram are updated by the service; queue depth and the
queue's configured max size, in-flight work, readiness, draining, the spool's backlog (a
scan of the local spool dir, never of outputs.dir) and GPU memory are read when scraped.
"""

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .engine_cosyvoice import gpu_memory

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180)


class _LiveCollector:
    """Values read at scrape time from the service."""

    def __init__(self, read: Callable[[], dict[str, Any]]):
        self.read = read

    def collect(self):
        state = self.read()
        for name, doc in (
            ("queue_depth", "Requests waiting for a synthesis slot (Gradio queue and REST together)."),
            ("queue_max_size", "Configured queue.max_size: the waiting room's capacity (one more gets 503)."),
            ("in_flight", "Syntheses running now."),
            ("ready", "1 when /readyz answers 200."),
            ("draining", "1 while draining (POST /drain, the drain file or SIGTERM)."),
            ("stuck_workers", "Cancelled syntheses that did not stop within queue.cancel_grace_s."),
            ("spool_backlog_files", "Results waiting in the local spool for the mover (sidecars *.json)."),
            ("spool_oldest_age_seconds", "Age of the oldest result waiting in the spool (0 when empty)."),
        ):
            yield GaugeMetricFamily(f"cosyvoice_tts_{name}", doc, value=float(state[name]))
        devices = gpu_memory()
        if devices:
            allocated = GaugeMetricFamily(
                "cosyvoice_tts_gpu_memory_allocated_bytes", "torch.cuda.memory_allocated", labels=["device"]
            )
            reserved = GaugeMetricFamily(
                "cosyvoice_tts_gpu_memory_reserved_bytes", "torch.cuda.memory_reserved", labels=["device"]
            )
            for device, alloc, resv in devices:
                allocated.add_metric([device], float(alloc))
                reserved.add_metric([device], float(resv))
            yield allocated
            yield reserved


class Metrics:
    def __init__(self, engine: str, node: str, version: str, read_live: Callable[[], dict[str, Any]]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.engine = engine
        labels = ["engine", "route"]
        self.requests = Counter(
            "cosyvoice_tts_requests", "Synthesis requests received.", labels, registry=self.registry
        )
        self.failures = Counter(
            "cosyvoice_tts_failures",
            "Synthesis requests that failed, by reason.",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cosyvoice_tts_request_duration_seconds",
            "Synthesis request latency, queue wait included.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.spooled = Counter(
            "cosyvoice_tts_outputs_spooled",
            "Results written to the local spool (every result with outputs.delivery=spool).",
            ["engine"],
            registry=self.registry,
        )
        self.info = Gauge(
            "cosyvoice_tts_info",
            "Engine and node of this server (value 1).",
            ["engine", "node", "version"],
            registry=self.registry,
        )
        self.info.labels(engine, node, version).set(1)
        self.registry.register(_LiveCollector(read_live))

    def request(self, route: str) -> None:
        self.requests.labels(self.engine, route).inc()

    def failure(self, route: str, reason: str) -> None:
        self.failures.labels(self.engine, route, reason).inc()

    def observe(self, route: str, seconds: float) -> None:
        self.latency.labels(self.engine, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
