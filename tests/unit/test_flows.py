"""The flow ring, its readers and filters, the data-path counters fed from it, and `emulator flows`' pure parts."""

from __future__ import annotations

import argparse
import asyncio
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from dnslib import QTYPE, RR, A, DNSRecord

from emulator.cli import flows as cli
from emulator.flows import filters
from emulator.flows.log import DNS, HTTP, SERVICE_KEYS, TCP, UDP, FlowLog, dns_question
from emulator.flows.reader import FlowReader, PodNames, dns_summary, service_name
from emulator.kinds import NETWORK_POLICIES
from emulator.netpol.engine import PolicyEngine
from emulator.observability.stats import DataPathStats
from emulator.proxy.table import Route
from emulator.store.events import ADDED, Event


def dns_reply(name: str = "web.default.svc.cluster.local", answer: str | None = "127.96.0.10", rcode: int = 0) -> bytes:
    record = DNSRecord.question(name, "A").reply()
    record.header.rcode = rcode
    if answer:
        record.add_answer(RR(name, QTYPE.A, rdata=A(answer), ttl=5))
    return bytes(record.pack())[2:]  # as recorded: past the ID


ROUTE = SERVICE_KEYS[Route("default", "api", 8080, "TCP", "http", "http")]  # as the data paths record it


def tcp(t: float, verdict: str = "allowed", client: str = "127.244.0.5", endpoint: tuple[str, int] | None = ("127.244.0.7", 8000)) -> tuple[Any, ...]:
    if verdict != "allowed":  # as the policy hook records it
        return (t, TCP, client, None, ROUTE, endpoint, verdict, "why", -1, -1, -1.0)
    return (t, TCP, client, ("127.96.0.10", 8080), ROUTE, endpoint, verdict, None, 10, 20, 0.002)


def http(t: float, status: int = 200) -> tuple[Any, ...]:
    return (t, HTTP, "127.244.0.5", ("127.96.0.10", 8080), ROUTE, ("127.244.0.7", 8000), "allowed", None, -1, -1, 0.0015,
            b"GET", b"api", b"/x", status, None)


def pod(name: str, ip: str, namespace: str = "default", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": {}, "status": {"podIP": ip, "phase": "Running"}}


# --- the ring ------------------------------------------------------------------------------------------


def test_ids_are_consecutive_and_since_reads_after_one() -> None:
    log = FlowLog(size=10)
    for i in range(5):
        log.record(tcp(float(i)))
    assert [n for n, _ in log.since(0)] == [1, 2, 3, 4, 5]
    assert [n for n, _ in log.since(3)] == [4, 5]
    assert log.since(5) == []
    assert log.next_id == 6


def test_ring_stays_bounded_under_load() -> None:
    size = 1000
    log = FlowLog(size=size)
    reply = dns_reply()
    tracemalloc.start()
    try:
        for round_ in range(6):
            for i in range(size):
                log.record((float(i), DNS, "127.0.0.1", "udp", reply, 0.0))
            log.drain()
            if round_ == 2:  # steady state: the ring full, the interpreter's free lists warm
                held, _ = tracemalloc.get_traced_memory()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert log.held == size and log.pending == []
    ids = [n for n, _ in log.since(0)]
    assert ids[0] == 5 * size + 1 and ids[-1] == 6 * size  # the oldest fell out
    assert [n for n, _ in log.since(6 * size - 2)] == [6 * size - 1, 6 * size]
    assert after < held * 1.1  # three more buffers' worth recorded, nothing more held


def test_cache_answers_share_the_ring_in_time_order_and_keep_no_object_of_their_own() -> None:
    log = FlowLog(size=5)
    client, answer = ("127.0.0.9", 40000), (dns_reply(), 0)
    log.record_cached((1.0, client, answer))
    log.record(tcp(2.0))
    log.record_cached((0.5, client, answer))  # a drain orders what it takes by time
    flows = log.since(0)
    assert [n for n, _ in flows] == [1, 2, 3]
    assert [r[0] for _, r in flows] == [0.5, 1.0, 2.0]
    assert flows[0][1] == (0.5, client, answer) and flows[2][1] == tcp(2.0)
    for i in range(7):  # past the end of the ring: the slots wrap, the oldest are overwritten
        log.record_cached((3.0 + i, client, answer))
        log.drain()
    assert [n for n, _ in log.since(0)] == [6, 7, 8, 9, 10] and log.held == 5
    assert [r[0] for _, r in log.since(8)] == [8.0, 9.0]
    assert FlowReader().render(log.since(9)[0], 0.0)["dns"]["name"] == "web.default.svc.cluster.local"

    # a full ring of cache answers, written over many times: nothing allocated per answer stays
    big = FlowLog(size=1000)
    tracemalloc.start()
    try:
        for round_ in range(6):
            t = float(round_)
            for _ in range(1000):
                big.record_cached((t, client, answer))
            big.drain()
            if round_ == 2:
                held, _ = tracemalloc.get_traced_memory()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - held < 2_000  # bytes: not one object per answer (a tuple would be 64 bytes each)


def test_drain_feeds_the_data_path_counters() -> None:
    stats = DataPathStats()
    log = FlowLog(size=10, stats=stats)
    log.record((0.0, DNS, "127.0.0.1", "udp", dns_reply(), 0.0))
    log.record((0.0, DNS, "127.0.0.1", "tcp", dns_reply(rcode=3, answer=None), 0.001))
    log.record(tcp(0.0))
    log.record(tcp(0.0, "denied", endpoint=None))
    log.record((0.0, UDP, "127.0.0.1", None, "default/dns:53", None, "error", "no ready endpoints", -1, -1, -1.0))
    log.record(http(0.0, 503))
    log.drain()
    assert stats.dns_requests == {(1, "udp"): 1, (1, "tcp"): 1}
    assert stats.dns_responses == {0: 1, 3: 1}
    assert stats.proxy_connections[("default/api", 8080, "TCP", "allowed")] == 1
    assert stats.proxy_connections[("default/api", 8080, "TCP", "denied")] == 1
    assert stats.proxy_connections[("default/dns", 53, "UDP", "error")] == 1
    assert stats.proxy_requests[("default/api", 8080, 503, "allowed")] == 1
    assert stats.proxy_bytes[("default/api", 8080)] == [10, 20]
    assert stats.proxy_durations[("default/api", 8080)].count == 1


def test_a_slow_watcher_is_cut_off_and_a_live_one_is_woken() -> None:
    async def scenario() -> None:
        log = FlowLog(size=100)
        slow, live = log.watch(limit=3), log.watch(limit=100)
        for i in range(4):
            log.record(tcp(float(i)))
        log.drain()
        assert slow.overflowed and not live.overflowed
        assert [n for n, _ in await live.next(0.1)] == [1, 2, 3, 4]
        assert await live.next(0.01) == []
        waiting = asyncio.ensure_future(live.next(1.0))
        await asyncio.sleep(0)
        log.record(tcp(5.0))
        log.drain()
        assert [n for n, _ in await waiting] == [5]
        log.unwatch(slow)
        assert log.watchers == {live}

    asyncio.run(scenario())


def test_started_log_drains_by_itself_and_stops() -> None:
    async def scenario() -> None:
        log = FlowLog(size=10)
        log.start(asyncio.get_running_loop())
        log.record(tcp(log.clock()))
        await asyncio.sleep(0.25)
        assert log.pending == [] and log.held == 1
        log.stop()

    asyncio.run(scenario())


# --- reading -------------------------------------------------------------------------------------------


def test_dns_reply_summary_and_question() -> None:
    reply = dns_reply()
    assert dns_question(reply) == (1, 0)
    assert dns_summary(b"\x00\x00" + reply) == {"name": "web.default.svc.cluster.local", "type": "A", "rcode": "NOERROR", "answers": ["127.96.0.10"], "truncated": False}
    assert dns_summary(b"\x00")["rcode"] == "FORMERR"


def test_service_names_from_routes_and_labels() -> None:
    assert service_name(ROUTE) == ("default/api", 8080)
    assert service_name("shop/web:80") == ("shop/web", 80)
    assert service_name(None) == (None, None)


def _engine(*pods: dict[str, Any]) -> PolicyEngine:
    return PolicyEngine(stored_pods=lambda: list(pods))


def test_rendered_flow_names_pods_and_service() -> None:
    engine = _engine(pod("web-1", "127.244.0.5"), pod("api-1", "127.244.0.7"))
    reader = FlowReader(PodNames(engine))
    flow = reader.render((7, tcp(100.0)), offset=1_800_000_000.0)
    assert flow["id"] == 7 and flow["kind"] == "tcp" and flow["verdict"] == "allowed"
    assert flow["time"] == "2027-01-15T08:01:40.000000Z"
    assert flow["source"] == {"ip": "127.244.0.5", "pod": "default/web-1", "namespace": "default"}
    assert flow["destination"] == {
        "ip": "127.96.0.10", "port": 8080, "service": "default/api", "servicePort": 8080,
        "endpoint": "127.244.0.7:8000", "pod": "default/api-1",
    }
    assert flow["bytes"] == {"sent": 10, "received": 20} and flow["durationMs"] == 2.0
    assert flow["policy"] is None
    assert flow["summary"] == "default/web-1 -> default/api:8080 (default/api-1 127.244.0.7:8000) TCP"
    h = reader.render((8, http(100.0)), 0.0)
    assert h["http"] == {"method": "GET", "host": "api", "path": "/x", "status": 200, "route": None}
    assert h["summary"].endswith("HTTP GET api/x 200")


def test_pods_are_looked_up_again_after_they_change() -> None:
    pods = [pod("web-1", "127.244.0.5")]
    engine = PolicyEngine(stored_pods=lambda: list(pods))
    names = PodNames(engine)
    assert names.at("127.244.0.5") is not None and names.at("127.244.0.9") is None
    pods.append(pod("new", "127.244.0.9"))
    names.apply(Event(ADDED, "pods", "default", "new", 2, orjson.dumps(pod("new", "127.244.0.9"))))
    names._refreshed = 0.0  # as if the refresh interval had passed
    found = names.at("127.244.0.9")
    assert found is not None and found.key == "default/new"


def test_denied_flow_names_the_policies_and_reason() -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all", "namespace": "default"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    engine = _engine(pod("web-1", "127.244.0.5"), pod("api-1", "127.244.0.7"))
    engine.apply(Event(ADDED, NETWORK_POLICIES.key, "default", "deny-all", 1, orjson.dumps(policy)))
    flow = FlowReader(PodNames(engine)).render((1, tcp(0.0, "denied")), 0.0)
    assert flow["verdict"] == "denied"
    assert flow["policy"] == {"verdict": "denied", "reason": "why", "policies": ["default/deny-all"]}
    assert flow["summary"].endswith("DENIED (why)")


def test_error_flow_says_what_failed() -> None:
    flow = FlowReader().render((1, (0.0, TCP, "127.0.0.1", None, ROUTE, None, "error", "no ready endpoints", -1, -1, -1.0)), 0.0)
    assert flow["verdict"] == "error" and flow["error"] == "no ready endpoints"
    assert flow["bytes"] is None and flow["durationMs"] is None and flow["source"]["pod"] is None
    assert flow["summary"] == "127.0.0.1 -> default/api:8080 TCP ERROR (no ready endpoints)"


# --- filters -------------------------------------------------------------------------------------------


def test_parse_rejects_what_it_cannot_use() -> None:
    for query, said in (
        ({"verdict": "maybe"}, "verdict"), ({"kind": "dns,smtp"}, "smtp"), ({"since": "x"}, "since"),
        ({"limit": "0"}, "limit"), ({"sinceTime": "yesterday"}, "RFC 3339"),
    ):
        with pytest.raises(ValueError, match=said):
            filters.parse(query)
    parsed = filters.parse({"kind": "DNS, http", "verdict": "Denied", "limit": "5", "sinceTime": "2026-12-02T21:00:00Z"})
    assert parsed.kinds == frozenset({"dns", "http"}) and parsed.verdict == "denied" and parsed.limit == 5
    assert parsed.since_time == datetime(2026, 12, 2, 21, tzinfo=UTC).timestamp()


def _flow(src: str | None, dst: str | None, service: str | None) -> dict[str, Any]:
    return {"source": {"pod": src}, "destination": {"pod": dst, "service": service}}


@pytest.mark.parametrize(("query", "flow", "expected"), [
    ({"namespace": "shop"}, _flow("shop/web", None, None), True),
    ({"namespace": "shop"}, _flow(None, None, "shop/api"), True),
    ({"namespace": "shop"}, _flow("dev/web", "dev/api", "dev/api"), False),
    ({"pod": "shop/web"}, _flow(None, "shop/web", None), True),
    ({"pod": "web"}, _flow("dev/web", None, None), True),
    ({"pod": "shop/web"}, _flow("dev/web", None, None), False),
    ({"service": "api"}, _flow(None, None, "shop/api"), True),
    ({"service": "dev/api"}, _flow(None, None, "shop/api"), False),
    ({"service": "api"}, _flow("shop/api", None, None), False),
])
def test_flow_matches(query: dict[str, str], flow: dict[str, Any], expected: bool) -> None:
    assert filters.flow_matches(flow, filters.parse(query)) is expected


def test_select_takes_the_newest_matching_oldest_first() -> None:
    reader = FlowReader()
    log = FlowLog(size=100)
    for i in range(10):
        log.record(tcp(float(i), "denied" if i % 2 else "allowed"))
    log.record((10.0, DNS, "127.0.0.1", "udp", dns_reply(), 0.0))
    flows = log.since(0)

    def render(n: Any) -> dict[str, Any]:
        return reader.render(n, 0.0)

    chosen = filters.select(flows, filters.parse({"verdict": "denied", "limit": "3"}), render, 0.0)
    assert [f["id"] for f in chosen] == [6, 8, 10]
    assert [f["id"] for f in filters.select(flows, filters.parse({"kind": "dns"}), render, 0.0)] == [11]
    assert [f["id"] for f in filters.select(flows, filters.parse({"since": "9"}), render, 0.0)] == [10, 11]
    assert [f["id"] for f in filters.select(flows, filters.FlowFilter(since_time=8.0), render, 0.0)] == [9, 10, 11]
    assert [f["id"] for f in filters.live(flows[:3], filters.parse({"verdict": "allowed"}), render)] == [1, 3]


# --- emulator flows ------------------------------------------------------------------------------------


def _args(**given: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in given.items():
        setattr(args, key, value)
    return args


def test_cli_query_from_flags() -> None:
    args = _args(verdict="denied", pod="shop/web", service="api", namespace="shop", dns=True, kind="http")
    assert cli.query(args, 20) == {
        "verdict": "denied", "pod": "shop/web", "service": "api", "namespace": "shop", "kind": "http,dns", "limit": "20",
    }
    assert cli.query(_args(), None, since=7, watch=True) == {"since": "7", "watch": "1"}


def test_cli_since_takes_durations_and_times() -> None:
    now = datetime(2026, 12, 2, 21, 0, 0, tzinfo=UTC)
    assert cli.since_time("5m", now) == "2026-12-02T20:55:00.000000Z"
    assert cli.since_time("1.5s", now) == "2026-12-02T20:59:58.500000Z"
    assert cli.since_time("2026-12-02T20:00:00Z") == "2026-12-02T20:00:00Z"
    with pytest.raises(ValueError, match="duration"):
        cli.since_time("soon")


def test_cli_compact_line_colours_only_when_asked() -> None:
    flow = {"time": "2026-12-02T21:00:00.123456Z", "kind": "tcp", "verdict": "denied", "summary": "a -> b"}
    assert cli.compact(flow) == "21:00:00.123  TCP   DENIED   a -> b"
    assert "\033[31m" in cli.compact(flow, colour=True)

    class Tty:
        def isatty(self) -> bool:
            return True

    assert cli.colours_wanted(Tty(), {}) is True  # type: ignore[arg-type]
    assert cli.colours_wanted(Tty(), {"NO_COLOR": "1"}) is False  # type: ignore[arg-type]


# --- the DNS server's records, end to end (no sockets) ------------------------------------------------


def test_dns_answers_from_the_cache_and_not_are_recorded_and_counted() -> None:
    import gc
    import socket

    from emulator.dns import DnsIndex, DnsSettings
    from emulator.dns import synthetic as make
    from emulator.dns.server import DnsServer, _Udp, udp_socket
    from emulator.dns.upstream import Upstreams

    async def scenario() -> None:
        settings = DnsSettings(port=0, upstreams=[])
        index = DnsIndex(settings)
        index.apply(make.namespace("shop"))
        index.apply(make.service("web", "shop", cluster_ip="127.96.0.10"))
        stats = DataPathStats()
        log = FlowLog(size=100, stats=stats)
        log.start(asyncio.get_running_loop())
        udp = _Udp(DnsServer(settings, index, Upstreams([], 1.0), log), udp_socket("127.0.0.1", 0))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(2)
        try:
            server_address = udp.sock.getsockname()
            query = bytes(DNSRecord.question("Web.Shop.svc.cluster.local", "A").pack())
            missing = bytes(DNSRecord.question("nope.shop.svc.cluster.local", "A").pack())
            sent = []
            # the first through the slow path, then from the index cache, then from the reply cache
            for data in (query, query, query, missing):
                client.sendto(data, server_address)
                udp._readable()  # what the loop calls when the socket is readable
                sent.append(client.recv(4096))
        finally:
            client.close()
            udp.close()
        assert len(sent) == 4
        records = [r for _, r in log.since(0)]
        assert [len(r) for r in records] == [6, 3, 3, 6]  # slow, cached, cached, slow
        gc.collect()
        gc.collect()  # a tuple is untracked once what it holds is: the answer's first, then the record
        assert not any(gc.is_tracked(r) for r in records[1:3])  # cache answers' records: not the GC's to walk
        log.stop()
        flows = [FlowReader().render(n, log.wall_offset()) for n in log.since(0)]
        assert [f["dns"]["rcode"] for f in flows] == ["NOERROR"] * 3 + ["NXDOMAIN"]
        assert flows[0]["dns"]["name"] == "Web.Shop.svc.cluster.local"  # as asked
        assert flows[1]["dns"]["name"] == flows[2]["dns"]["name"] == "web.shop.svc.cluster.local"  # as cached
        assert all(f["dns"]["answers"] == ["127.96.0.10"] and f["dns"]["proto"] == "udp" for f in flows[:3])
        assert flows[1]["durationMs"] == 0.0 and flows[0]["durationMs"] > 0
        assert sent[1] == sent[2] and sent[1][:2] == query[:2]
        assert DNSRecord.parse(sent[1]).rr[0].rdata == DNSRecord.parse(b"\x00\x00" + records[0][4]).rr[0].rdata
        assert stats.dns_requests == {(1, "udp"): 4}
        assert stats.dns_responses == {0: 3, 3: 1}
        assert stats.dns_duration.count == 4

    asyncio.run(scenario())
