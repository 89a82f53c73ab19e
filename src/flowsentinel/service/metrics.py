"""Prometheus metrics of one app (its own registry, so several apps never share counters).

- ``flowsentinel_http_requests_total{method,route,status}``
- ``flowsentinel_http_request_duration_seconds{method,route}`` (histogram)
- ``flowsentinel_flows_scored_total{model,verdict}``
- ``flowsentinel_model_info{model,version,dataset,task}`` (1 per served model)

Alert outputs (:class:`AlertMetrics`, its own registry: ``watch --metrics-port`` serves it):

- ``flowsentinel_alerts_total{family}``: alerts written (an incident once, when it opens; a
  flagged flow once)
- ``flowsentinel_alert_sink_events_total{sink,event}``: per sink, records ``delivered``,
  ``retried``, ``spooled`` (could not be delivered, or the queue was full) and ``replayed``

With several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder (``flowsentinel
serve --workers N`` does it for you): each scrape then adds up every worker.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_MAX_CHILDREN = 4096
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flowsentinel_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flowsentinel_http_request_duration_seconds",
            "Time to answer a request.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.flows = Counter(
            "flowsentinel_flows_scored",
            "Flows scored, by model and verdict.",
            ["model", "verdict"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "flowsentinel_model_info",
            "Served models (value 1).",
            ["model", "version", "dataset", "task"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        # labelled children by their label values: ``labels()`` validates and locks on every
        # call; the label sets are small and bounded (routes, statuses, models x classes)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._flow_children: dict[tuple[str, str], Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._request_children) < _MAX_CHILDREN:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _flow_child(self, model: str, verdict: str) -> Any:
        child = self._flow_children.get((model, verdict))
        if child is None:
            child = self.flows.labels(model, verdict)
            if len(self._flow_children) < _MAX_CHILDREN:
                self._flow_children[(model, verdict)] = child
        return child

    def count_verdicts(self, model: str, labels: np.ndarray) -> None:
        if len(labels) == 0:
            return
        if len(labels) == 1:  # a single flow: no np.unique
            self._flow_child(model, str(labels[0])).inc()
            return
        names, counts = np.unique(labels.astype(str), return_counts=True)
        for name, count in zip(names, counts, strict=True):
            self._flow_child(model, str(name)).inc(int(count))

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class AlertMetrics:
    """Counters of the alert outputs (see the module docstring), in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.alerts = Counter(
            "flowsentinel_alerts",
            "Alerts written, by attack family.",
            ["family"],
            registry=self.registry,
        )
        self.sink_events = Counter(
            "flowsentinel_alert_sink_events",
            "Alert records per sink: delivered, retried, spooled, replayed.",
            ["sink", "event"],
            registry=self.registry,
        )
        self._families: dict[str, Any] = {}
        self._sinks: dict[tuple[str, str], Any] = {}

    def count_alert(self, family: str, n: int = 1) -> None:
        child = self._families.get(family)
        if child is None:
            child = self.alerts.labels(family)
            if len(self._families) < _MAX_CHILDREN:
                self._families[family] = child
        child.inc(n)

    def sink_event(self, sink: str, event: str, n: int = 1) -> None:
        child = self._sinks.get((sink, event))
        if child is None:
            child = self.sink_events.labels(sink, event)
            if len(self._sinks) < _MAX_CHILDREN:
                self._sinks[(sink, event)] = child
        child.inc(n)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
