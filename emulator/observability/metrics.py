"""Every Prometheus metric the emulator exports, defined once, on a registry of its own (not the process-wide
one: nothing a library registers there leaks into /metrics). Names are those of the component the emulator
stands in for where one exists (the API server's `apiserver_*`, the kubelet's `kubelet_*`, CoreDNS'
`coredns_*` in stats.py), `emulator_*` otherwise. docs/metrics.md lists them all.

What it costs, and so how each is kept:
- per API request, prometheus_client's own objects (an increment and an observation: ~2 µs beside a
  request's hundreds); api/prometheus.py caches the label children so a request pays no label lookup;
- per store flush, one observation;
- per watch event, per DNS query, per proxied packet: too often for a locked prometheus_client call. Those are
  plain ints (WATCH_EVENTS_SENT here, stats.DataPathStats), turned into metric families only when
  /metrics is scraped, as are the gauges read from the engine's state (`Collectors` below).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from emulator.kubelet.kubelet import Kubelet
    from emulator.observability.stats import DataPathStats
    from emulator.store.store import Store

# Counters without a `_created` sample each (the API server exports none): process-wide, and this process is ours.
disable_created_metrics()

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, open fds (Linux)

# -- the API server (api/prometheus.py records them) ---------------------------------------------------------

# The API server's labels, so that its dashboards and alerts (kube-prometheus' apiserver rules) read these as is.
API_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component")
LONGRUNNING_LABELS = ("verb", "group", "version", "resource", "subresource", "scope", "component")
# The API server's buckets for apiserver_request_duration_seconds.
API_DURATION_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60,
)

APISERVER_REQUESTS = Counter(
    "apiserver_request_total",
    "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, "
    "component, and HTTP response code.",
    (*API_LABELS, "code"), registry=REGISTRY,
)
APISERVER_REQUEST_DURATION = Histogram(
    "apiserver_request_duration_seconds",
    "Response latency distribution in seconds for each verb, dry run value, group, version, resource, "
    "subresource, scope and component.",
    API_LABELS, buckets=API_DURATION_BUCKETS, registry=REGISTRY,
)
APISERVER_LONGRUNNING = Gauge(
    "apiserver_longrunning_requests",
    "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope "
    "and component (watches, exec, attach, port-forward, logs).",
    LONGRUNNING_LABELS, registry=REGISTRY,
)

# -- the store (emulator/store/store.py observes it) -----------------------------------------------------------

# One flush is one transaction and (with --fsync full) one fsync: sub-millisecond in memory, milliseconds on disk.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STORE_COMMIT_DURATION = Histogram(
    "emulator_store_commit_duration_seconds",
    "Time to commit one batch of writes (group commit: one transaction, one fsync) to the store's backend: "
    "the emulator's etcd_request_duration_seconds.",
    buckets=COMMIT_BUCKETS, registry=REGISTRY,
)

# Events written to watch streams, by resource (api/watch.py): a plain dict, a watch event is too frequent
# for a locked counter (one event reaches every watcher of its kind).
WATCH_EVENTS_SENT: defaultdict[str, int] = defaultdict(int)

# Kubernetes' long-running requests (BasicLongRunningRequestCheck): these verbs, or these subresources.
LONGRUNNING_VERBS = frozenset({"watch", "proxy"})
LONGRUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})


# -- read at scrape time -----------------------------------------------------------------------------------------


class Collectors:
    """The metrics read from the engine's state when /metrics is scraped: the store's objects and watches,
    the kubelet's pods and containers, the data paths' counters (stats.py). `install` registers them on
    REGISTRY for one Runtime; the function it returns takes them off again (at stop)."""

    def __init__(self, store: Store, kubelet: Callable[[], Kubelet | None], data_path: DataPathStats | None) -> None:
        self.store = store
        self.kubelet = kubelet  # called at each scrape: None while the kubelet is off
        self.data_path = data_path

    def describe(self) -> list[Metric]:
        """The families without samples: what registering checks for clashes (nothing is read)."""
        return [*self._families(), *(self.data_path.describe() if self.data_path is not None else ())]

    def collect(self) -> Iterator[Metric]:
        yield from self._families(fill=True)
        if self.data_path is not None:
            yield from self.data_path.collect()

    def _families(self, fill: bool = False) -> Iterator[Metric]:
        objects = GaugeMetricFamily("emulator_store_objects", "Objects stored, by resource.", labels=["resource"])
        watchers = GaugeMetricFamily(
            "apiserver_registered_watchers", "Number of currently registered watchers, by resource.", labels=["resource"]
        )
        listeners = GaugeMetricFamily(
            "emulator_store_listeners", "Store listeners: controllers, indexes and one per open watch."
        )
        writes = CounterMetricFamily(
            "emulator_store_writes",
            "Writes committed to the store and delivered to its listeners: the store's resourceVersion (a kept "
            "store counts on across restarts).",
        )
        sent = CounterMetricFamily(
            "emulator_watch_events_delivered", "Events written to watch streams, by resource.", labels=["resource"]
        )
        if fill:
            for resource, count in sorted(self.store.object_counts().items()):
                objects.add_metric([resource], count)
            for resource, count in sorted(self._watchers().items()):
                watchers.add_metric([resource], count)
            listeners.add_metric([], len(self.store.listeners))
            writes.add_metric([], self.store.delivered_rv)
            for resource, count in sorted(WATCH_EVENTS_SENT.items()):
                sent.add_metric([resource], count)
        yield from (objects, watchers, listeners, writes, sent)
        yield from self._kubelet_families(fill)

    def _watchers(self) -> dict[str, int]:
        from emulator.registry.watch import Watch  # (the store imports this module: no cycle at import)

        counts: dict[str, int] = defaultdict(int)
        for listener in self.store.listeners:
            watch = getattr(listener, "__self__", None)
            if isinstance(watch, Watch):
                counts[watch.rt.key] += 1
        return counts

    def _kubelet_families(self, fill: bool) -> Iterator[Metric]:
        kubelet = self.kubelet() if fill else None
        if fill and kubelet is None:
            return  # without --kubelet there is no kubelet to speak of
        pods = GaugeMetricFamily("kubelet_running_pods", "Number of pods that have a running container.")
        containers = GaugeMetricFamily(
            "kubelet_running_containers", "Number of containers currently running, by state.", labels=["container_state"]
        )
        restarts = CounterMetricFamily(
            "emulator_container_restarts", "Container restarts by the kubelet (what restartCount counts), since start."
        )
        if kubelet is not None:
            states = {"running": 0, "exited": 0, "created": 0}
            running_pods = 0
            restarted = kubelet.restarts_forgotten
            for worker in list(kubelet.workers.values()):
                runs = False
                for c in worker.containers.values():
                    state = "running" if c.running else "exited" if c.terminated is not None else "created"
                    states[state] += 1
                    runs = runs or c.running
                    restarted += c.restart_count
                running_pods += runs
            pods.add_metric([], running_pods)
            for state, count in states.items():
                containers.add_metric([state], count)
            restarts.add_metric([], restarted)
        yield from (pods, containers, restarts)


def install(collectors: Collectors) -> Callable[[], None]:
    """Register `collectors` on REGISTRY; returns what takes them off (a stopped Runtime's state is not scraped)."""
    REGISTRY.register(collectors)

    def uninstall() -> None:
        REGISTRY.unregister(collectors)

    return uninstall

