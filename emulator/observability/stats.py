"""The data paths' counters: plain ints the DNS server and the proxy bump per query, connection and request,
and the collector that turns them into metric families when /metrics is scraped.

A DNS answer costs tens of microseconds; a prometheus_client call (a lock, a label lookup) would add a few
per query. Here a query costs two dictionary increments and a histogram bucket found by bisection, about
half a microsecond, and nothing is formatted: the keys are what the data path has at hand (dnslib's numeric
query type and rcode, the service as a (namespace, name) tuple or a string, the port as an int); they
become label values at scrape time only. Every observation is counted (no sampling). All of it lives on
the event loop, as do the data paths and the scrape, so no lock is needed.

DNS metrics carry CoreDNS' names and label values (its query types, "other" for the rest), so that
CoreDNS dashboards read them; the proxy's are the emulator's own (docs/metrics.md).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence

from dnslib import QTYPE, RCODE
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# CoreDNS' buckets for coredns_dns_request_duration_seconds: 0.25 ms, doubling up to 8 s.
DNS_DURATION_BUCKETS = tuple(0.00025 * 2**i for i in range(16))
# The query types CoreDNS reports by name; any other is "other", so the label keeps a few values.
DNS_MONITORED_TYPES = frozenset({
    "A", "AAAA", "CNAME", "DNSKEY", "DS", "MX", "NSEC3", "NSEC", "NS", "PTR", "RRSIG", "SOA", "SRV", "TXT",
    "HTTPS", "IXFR", "AXFR", "ANY",
})
# Proxied HTTP requests: a local hop (sub-millisecond) up to a slow upstream.
PROXY_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Service = Hashable  # (namespace, name), "namespace/name", or None when no service was involved


class PlainHistogram:
    """A histogram in plain ints: `observe` is one bisection and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # per bucket (not cumulative); the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # le: a value equal to a bound is in its bucket
        self.total += value

    def add(self, other: PlainHistogram) -> None:
        """Add `other`'s observations (same bounds)."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as the exposition format has them."""
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((floatToGoString(bound), float(running)))
        return cumulative


def qtype_label(qtype: int | str) -> str:
    name = QTYPE.get(qtype, str(qtype)) if isinstance(qtype, int) else qtype.upper()
    return name if name in DNS_MONITORED_TYPES else "other"


def rcode_label(rcode: int | str) -> str:
    return str(RCODE.get(rcode, rcode)) if isinstance(rcode, int) else rcode.upper()


def service_label(service: Service) -> str:
    if service is None:
        return ""
    if isinstance(service, tuple):
        return "/".join(str(part) for part in service)
    return str(service)


class DataPathStats:
    """What the DNS server and the proxy count (the flows helper's recording calls these). One per Runtime."""

    __slots__ = ("dns_requests", "dns_responses", "dns_duration", "proxy_connections", "proxy_requests",
                 "proxy_durations", "proxy_bytes")

    def __init__(self) -> None:
        self.dns_requests: defaultdict[tuple[int | str, str], int] = defaultdict(int)  # (qtype, proto)
        self.dns_responses: defaultdict[int | str, int] = defaultdict(int)  # rcode
        self.dns_duration = PlainHistogram(DNS_DURATION_BUCKETS)
        # (service, port, protocol, verdict)
        self.proxy_connections: defaultdict[tuple[Service, Hashable, str, str], int] = defaultdict(int)
        # (service, port, status code, verdict)
        self.proxy_requests: defaultdict[tuple[Service, Hashable, Hashable, str], int] = defaultdict(int)
        self.proxy_durations: dict[tuple[Service, Hashable], PlainHistogram] = {}  # (service, port)
        # (service, port) -> [bytes the client sent, bytes it received]
        self.proxy_bytes: dict[tuple[Service, Hashable], list[int]] = {}

    # -- what the data paths call ------------------------------------------------------------------------

    def dns_query(self, qtype: int | str, proto: str, rcode: int | str, seconds: float) -> None:
        """One query answered: its type (dnslib's number or name), "udp" or "tcp", the answer's rcode, how long."""
        self.dns_requests[(qtype, proto)] += 1
        self.dns_responses[rcode] += 1
        self.dns_duration.observe(seconds)

    def proxy_connection(self, service: Service, port: Hashable, protocol: str, verdict: str) -> None:
        """One connection (TCP) or flow (UDP) to a service port: "allowed", "denied" or "error"."""
        self.proxy_connections[(service, port, protocol, verdict)] += 1

    def proxy_request(self, service: Service, port: Hashable, code: Hashable, verdict: str, seconds: float) -> None:
        """One HTTP request through the proxy or the gateway, its status code and how long it took."""
        self.proxy_requests[(service, port, code, verdict)] += 1
        key = (service, port)
        histogram = self.proxy_durations.get(key)
        if histogram is None:
            histogram = self.proxy_durations[key] = PlainHistogram(PROXY_DURATION_BUCKETS)
        histogram.observe(seconds)

    def proxy_transfer(self, service: Service, port: Hashable, sent: int, received: int) -> None:
        """Bytes a client sent to a service port and received from it (a connection's, or a part of it)."""
        moved = self.proxy_bytes.get((service, port))
        if moved is None:
            moved = self.proxy_bytes[(service, port)] = [0, 0]
        moved[0] += sent
        moved[1] += received

    # -- what /metrics reads -----------------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return list(self._families(fill=False))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(fill=True)

    def _families(self, fill: bool) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "coredns_dns_requests", "Counter of DNS requests made per type and protocol.", labels=["type", "proto"]
        )
        responses = CounterMetricFamily("coredns_dns_responses", "Counter of response status codes.", labels=["rcode"])
        duration = HistogramMetricFamily(
            "coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took."
        )
        connections = CounterMetricFamily(
            "emulator_proxy_connections", "Connections (TCP) and flows (UDP) to service ports, by verdict.",
            labels=["service", "port", "protocol", "verdict"],
        )
        http = CounterMetricFamily(
            "emulator_proxy_http_requests", "HTTP requests through the proxy and the gateway, by status code and verdict.",
            labels=["service", "port", "code", "verdict"],
        )
        latency = HistogramMetricFamily(
            "emulator_proxy_request_duration_seconds", "Time from an HTTP request to its response's head, by service port.",
            labels=["service", "port"],
        )
        moved = CounterMetricFamily(
            "emulator_proxy_bytes", "Bytes through the proxy, by service port and direction (as the client sees it).",
            labels=["service", "port", "direction"],
        )
        if fill:
            self._fill_dns(requests, responses, duration)
            self._fill_proxy(connections, http, latency, moved)
        yield from (requests, responses, duration, connections, http, latency, moved)

    def _fill_dns(self, requests: CounterMetricFamily, responses: CounterMetricFamily, duration: HistogramMetricFamily) -> None:
        by_type: defaultdict[tuple[str, str], int] = defaultdict(int)  # two numbers may make one "other"
        for (qtype, proto), count in list(self.dns_requests.items()):
            by_type[(qtype_label(qtype), proto)] += count
        for labels, count in sorted(by_type.items()):
            requests.add_metric(list(labels), count)
        by_rcode: defaultdict[str, int] = defaultdict(int)
        for rcode, count in list(self.dns_responses.items()):
            by_rcode[rcode_label(rcode)] += count
        for rcode, count in sorted(by_rcode.items()):
            responses.add_metric([rcode], count)
        duration.add_metric([], self.dns_duration.buckets(), self.dns_duration.total)

    def _fill_proxy(
        self, connections: CounterMetricFamily, http: CounterMetricFamily, latency: HistogramMetricFamily,
        moved: CounterMetricFamily,
    ) -> None:
        # keys of equal labels (a tuple and its "ns/name" string) add up
        opened: defaultdict[tuple[str, ...], int] = defaultdict(int)
        for (service, port, protocol, verdict), count in list(self.proxy_connections.items()):
            opened[(service_label(service), str(port), protocol, verdict)] += count
        for labels, count in sorted(opened.items()):
            connections.add_metric(list(labels), count)
        answered: defaultdict[tuple[str, ...], int] = defaultdict(int)
        for (service, port, code, verdict), count in list(self.proxy_requests.items()):
            answered[(service_label(service), str(port), str(code), verdict)] += count
        for labels, count in sorted(answered.items()):
            http.add_metric(list(labels), count)
        merged: dict[tuple[str, str], PlainHistogram] = {}
        for (service, port), histogram in list(self.proxy_durations.items()):
            labels = (service_label(service), str(port))
            into = merged.get(labels)
            if into is None:
                into = merged[labels] = PlainHistogram(histogram.bounds)
            into.add(histogram)
        for labels, histogram in sorted(merged.items()):
            latency.add_metric(list(labels), histogram.buckets(), histogram.total)
        carried: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        for (service, port), (sent, received) in list(self.proxy_bytes.items()):
            service_port = (service_label(service), str(port))
            carried[(*service_port, "sent")] += sent
            carried[(*service_port, "received")] += received
        for labels, count in sorted(carried.items()):
            moved.add_metric(list(labels), count)
