"""Metrics without a server: the data paths' plain counters as CoreDNS- and proxy-named families, the
collectors that read the store and the kubelet at scrape time, and the API server's labels for a request."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api import prometheus
from emulator.kinds import CONFIG_MAPS, PODS
from emulator.observability import metrics
from emulator.observability.metrics import Collectors
from emulator.observability.stats import DNS_DURATION_BUCKETS, DataPathStats, PlainHistogram
from emulator.registry.watch import Watch
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(collector: Any) -> Samples:
    """What a scrape of `collector` alone shows, read back with prometheus_client's own parser."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# -- the data paths ----------------------------------------------------------------------------------------


def test_dns_queries_become_coredns_metrics() -> None:
    stats = DataPathStats()
    stats.dns_query(1, "udp", 0, 0.0002)  # dnslib's numbers: A, NOERROR
    stats.dns_query(1, "udp", 3, 0.0004)  # A, NXDOMAIN
    stats.dns_query("AAAA", "tcp", "NOERROR", 0.003)  # names work too
    stats.dns_query(99, "udp", 0, 0.0001)  # SPF: not a type CoreDNS names
    stats.dns_query(13, "udp", 5, 0.0001)  # HINFO: "other" as well, added up with SPF
    samples = scrape(stats)
    assert value(samples, "coredns_dns_requests_total", type="A", proto="udp") == 2
    assert value(samples, "coredns_dns_requests_total", type="AAAA", proto="tcp") == 1
    assert value(samples, "coredns_dns_requests_total", type="other", proto="udp") == 2
    assert value(samples, "coredns_dns_responses_total", rcode="NOERROR") == 3
    assert value(samples, "coredns_dns_responses_total", rcode="NXDOMAIN") == 1
    assert value(samples, "coredns_dns_responses_total", rcode="REFUSED") == 1
    assert value(samples, "coredns_dns_request_duration_seconds_count") == 5
    assert value(samples, "coredns_dns_request_duration_seconds_sum") == pytest.approx(0.0038)
    # CoreDNS' buckets, cumulative: 0.25 ms holds three, 0.5 ms four, 4 ms all five
    assert value(samples, "coredns_dns_request_duration_seconds_bucket", le="0.00025") == 3
    assert value(samples, "coredns_dns_request_duration_seconds_bucket", le="0.0005") == 4
    assert value(samples, "coredns_dns_request_duration_seconds_bucket", le="0.002") == 4
    assert value(samples, "coredns_dns_request_duration_seconds_bucket", le="0.004") == 5
    assert value(samples, "coredns_dns_request_duration_seconds_bucket", le="+Inf") == 5
    buckets = [s for s in samples if s[0] == "coredns_dns_request_duration_seconds_bucket"]
    assert len(buckets) == len(DNS_DURATION_BUCKETS) + 1


def test_proxy_counters_by_service_port_and_verdict() -> None:
    stats = DataPathStats()
    web = ("default", "web")
    stats.proxy_connection(web, 80, "TCP", "allowed")
    stats.proxy_connection("default/web", 80, "TCP", "allowed")  # the same service, named as a string
    stats.proxy_connection(web, 80, "TCP", "denied")
    stats.proxy_connection(("dns", "coredns"), 53, "UDP", "allowed")
    stats.proxy_request(web, 80, 200, "allowed", 0.002)
    stats.proxy_request(web, 80, 200, "allowed", 0.2)
    stats.proxy_request(web, 80, 403, "denied", 0.0001)
    stats.proxy_request("default/web", 80, 503, "error", 0.0001)
    stats.proxy_transfer(web, 80, 120, 3400)
    stats.proxy_transfer("default/web", 80, 10, 0)
    samples = scrape(stats)
    connections = "emulator_proxy_connections_total"
    assert value(samples, connections, service="default/web", port="80", protocol="TCP", verdict="allowed") == 2
    assert value(samples, connections, service="default/web", port="80", protocol="TCP", verdict="denied") == 1
    assert value(samples, connections, service="dns/coredns", port="53", protocol="UDP", verdict="allowed") == 1
    requests = "emulator_proxy_http_requests_total"
    assert value(samples, requests, service="default/web", port="80", code="200", verdict="allowed") == 2
    assert value(samples, requests, service="default/web", port="80", code="403", verdict="denied") == 1
    assert value(samples, requests, service="default/web", port="80", code="503", verdict="error") == 1
    latency = "emulator_proxy_request_duration_seconds"
    assert value(samples, f"{latency}_count", service="default/web", port="80") == 4
    assert value(samples, f"{latency}_bucket", service="default/web", port="80", le="0.0025") == 3
    assert value(samples, f"{latency}_bucket", service="default/web", port="80", le="+Inf") == 4
    moved = "emulator_proxy_bytes_total"
    assert value(samples, moved, service="default/web", port="80", direction="sent") == 130
    assert value(samples, moved, service="default/web", port="80", direction="received") == 3400


def test_a_plain_histogram_counts_a_value_on_a_bound_in_that_bucket() -> None:
    histogram = PlainHistogram((0.1, 1.0))
    for seconds in (0.1, 0.5, 1.0, 2.0):
        histogram.observe(seconds)
    assert histogram.buckets() == [("0.1", 1.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert histogram.count == 4 and histogram.total == pytest.approx(3.6)


def test_recording_a_dns_query_costs_about_a_microsecond_at_most() -> None:
    import timeit

    stats = DataPathStats()
    per_call = min(timeit.repeat(lambda: stats.dns_query(1, "udp", 0, 0.0003), number=20_000, repeat=3)) / 20_000
    assert per_call < 5e-6  # (about 0.5 µs here; generous for a loaded machine)


# -- read at scrape time -------------------------------------------------------------------------------------


def test_the_store_and_the_kubelet_are_read_at_scrape_time() -> None:
    store = Store(MemoryBackend())
    for name in ("a", "b"):
        store.create(CONFIG_MAPS.key, "default", name, {"metadata": {"name": name, "namespace": "default"}})
    store.create(CONFIG_MAPS.key, "other", "c", {"metadata": {"name": "c", "namespace": "other"}})
    watches = [Watch(store, PODS, None, None), Watch(store, PODS, "default", None), Watch(store, CONFIG_MAPS, None, None)]
    for watch in watches:
        store.subscribe(watch._listener)

    def container(running: bool, terminated: Any, restarts: int) -> Any:
        return SimpleNamespace(running=running, terminated=terminated, restart_count=restarts)

    kubelet = SimpleNamespace(restarts_forgotten=4, workers={
        ("default", "web"): SimpleNamespace(containers={"app": container(True, None, 2), "side": container(False, {}, 1)}),
        ("default", "job"): SimpleNamespace(containers={"run": container(False, None, 0)}),
    })
    kubelet_now: list[Any] = [None]
    collectors = Collectors(store, lambda: kubelet_now[0], DataPathStats())

    samples = scrape(collectors)
    assert value(samples, "emulator_store_objects", resource="configmaps") == 3
    assert value(samples, "apiserver_registered_watchers", resource="pods") == 2
    assert value(samples, "apiserver_registered_watchers", resource="configmaps") == 1
    assert value(samples, "emulator_store_listeners") == 3
    assert value(samples, "emulator_store_writes_total") == 3
    assert value(samples, "kubelet_running_pods") is None  # no kubelet: no kubelet metrics
    assert value(samples, "coredns_dns_requests_total", type="A", proto="udp") is None

    watches[0].close()
    kubelet_now[0] = kubelet
    samples = scrape(collectors)
    assert value(samples, "apiserver_registered_watchers", resource="pods") == 1
    assert value(samples, "kubelet_running_pods") == 1
    assert value(samples, "kubelet_running_containers", container_state="running") == 1
    assert value(samples, "kubelet_running_containers", container_state="exited") == 1
    assert value(samples, "kubelet_running_containers", container_state="created") == 1
    assert value(samples, "emulator_container_restarts_total") == 7


def test_collectors_come_off_the_registry_with_their_runtime() -> None:
    store = Store(MemoryBackend())
    uninstall = metrics.install(Collectors(store, lambda: None, None))
    assert metrics.REGISTRY.get_sample_value("emulator_store_listeners") == 0
    uninstall()
    assert metrics.REGISTRY.get_sample_value("emulator_store_listeners") is None
    metrics.install(Collectors(store, lambda: None, DataPathStats()))()  # and a next one installs again


async def test_a_commit_is_timed() -> None:
    before = metrics.REGISTRY.get_sample_value("emulator_store_commit_duration_seconds_count") or 0
    store = Store(MemoryBackend())
    store.create(CONFIG_MAPS.key, "default", "a", {"metadata": {"name": "a", "namespace": "default"}})
    store.create(CONFIG_MAPS.key, "default", "b", {"metadata": {"name": "b", "namespace": "default"}})
    await store.settled(store.rv)
    after = metrics.REGISTRY.get_sample_value("emulator_store_commit_duration_seconds_count")
    assert after == before + 1  # both writes in one batch: one commit


# -- the API server's labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "headers", "expected"), [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("LIST", "", "", "v1", "pods", "", "namespace")),
    ("GET", "/api/v1/pods?watch=true", {}, ("WATCH", "", "", "v1", "pods", "", "cluster")),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, ("GET", "", "", "v1", "pods", "", "resource")),
    ("POST", "/apis/apps/v1/namespaces/default/deployments", {}, ("POST", "", "apps", "v1", "deployments", "", "resource")),
    ("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", {},
     ("PUT", "", "apps", "v1", "deployments", "scale", "resource")),
    ("PATCH", "/api/v1/nodes/node-1", {"Content-Type": "application/merge-patch+json"},
     ("PATCH", "", "", "v1", "nodes", "", "resource")),
    ("PATCH", "/api/v1/namespaces/default/configmaps/x?dryRun=All", {"Content-Type": "application/apply-patch+yaml"},
     ("APPLY", "All", "", "v1", "configmaps", "", "resource")),
    ("POST", "/api/v1/namespaces/default/pods/web/exec?command=ls", {}, ("CONNECT", "", "", "v1", "pods", "exec", "resource")),
    ("DELETE", "/api/v1/namespaces/default/configmaps?dryRun=Some", {},
     ("DELETECOLLECTION", "invalid", "", "v1", "configmaps", "", "namespace")),
    ("DELETE", "/api/v1/namespaces/x", {}, ("DELETE", "", "", "v1", "namespaces", "", "resource")),
])
def test_request_labels_are_the_api_servers(method: str, path: str, headers: dict[str, str], expected: tuple[str, ...]) -> None:
    request = make_mocked_request(method, path, headers=headers)
    assert prometheus.request_labels(request) == (*expected, "apiserver")


@pytest.mark.parametrize(("path", "long_running"), [
    ("/api/v1/namespaces/default/pods?watch=1", True),
    ("/api/v1/namespaces/default/pods/web/log?follow=true", True),
    ("/api/v1/namespaces/default/pods/web/portforward", True),
    ("/api/v1/namespaces/default/pods", False),
    ("/healthz", False),
])
def test_long_running_requests_are_counted_while_they_run(path: str, long_running: bool) -> None:
    request = make_mocked_request("GET", path)
    verb, _, group, version, resource, subresource, scope, component = prometheus.request_labels(request)
    gauge = metrics.APISERVER_LONGRUNNING.labels(verb, group, version, resource, subresource, scope, component)
    before = gauge._value.get()
    done = prometheus.longrunning(request)
    assert (done is not None) == long_running
    if done is not None:
        assert gauge._value.get() == before + 1
        done()
    assert gauge._value.get() == before


def test_a_request_is_counted_with_its_code() -> None:
    request = make_mocked_request("GET", "/api/v1/namespaces/default/pods")
    labels = dict(zip((*metrics.API_LABELS, "code"), (*prometheus.request_labels(request), "200"), strict=True))
    before = metrics.REGISTRY.get_sample_value("apiserver_request_total", labels) or 0
    for _ in range(3):
        prometheus.observe(request, 200, 0.01)
    assert metrics.REGISTRY.get_sample_value("apiserver_request_total", labels) == before + 3
    del labels["code"]
    assert metrics.REGISTRY.get_sample_value("apiserver_request_duration_seconds_count", labels) is not None
