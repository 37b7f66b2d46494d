"""Forwarding: names outside the zone go to an upstream (a small DNS server started here), a silent
upstream is SERVFAIL within the timeout, ExternalName targets are chased, `none` is REFUSED."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from emulator.dns import DnsSettings
from emulator.dns import synthetic as make
from emulator.dns.upstream import host_upstreams, parse_upstream
from tests.integration.test_dns_harness import RunningDns, rdata_of

Z = "cluster.local"


class FakeUpstream:
    """Answers A for names under example.test and example.org with 192.0.2.1, NXDOMAIN otherwise;
    with `silent`, never answers at all."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.queries: list[str] = []
        while True:  # a port free for both UDP and TCP
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.tcp = socket.socket()
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.sock.close()
                self.tcp.close()
        self.tcp.listen()
        self.stop = False
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def answer(self, data: bytes) -> bytes:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).lower()
        self.queries.append(name)
        reply = query.reply()
        if name.startswith("big."):  # 100 addresses: about 1,700 bytes, whatever the query's EDNS size
            for i in range(100):
                reply.add_answer(RR(query.q.qname, QTYPE.A, ttl=60, rdata=A(f"192.0.2.{i}")))
        elif name.endswith(("example.test.", "example.org.")):
            if query.q.qtype == QTYPE.A:
                reply.add_answer(RR(query.q.qname, QTYPE.A, ttl=60, rdata=A("192.0.2.1")))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()

    def _serve_udp(self) -> None:
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            if not self.silent:
                self.sock.sendto(self.answer(data), addr)

    def _serve_tcp(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                size = int.from_bytes(conn.recv(2), "big")
                data = b""
                while len(data) < size:
                    data += conn.recv(size - len(data))
                reply = self.answer(data)
                conn.sendall(len(reply).to_bytes(2, "big") + reply)

    def close(self) -> None:
        self.stop = True
        self.sock.close()
        self.tcp.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(upstream: FakeUpstream) -> Iterator[RunningDns]:
    events = [
        make.namespace("default"),
        make.service("web", cluster_ip="127.10.0.10"),
        make.service("ext", external_name="www.example.org"),
    ]
    running = RunningDns(DnsSettings(port=0, upstreams=[f"127.0.0.1:{upstream.port}"], upstream_timeout=1), events)
    yield running
    running.close()


def test_names_outside_the_zone_are_forwarded(cluster: RunningDns) -> None:
    for tcp in (False, True):
        reply = cluster.query("host.example.test", "A", tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR and rdata_of(reply) == {"192.0.2.1"}
    result = cluster.dig("host.example.test")
    assert result.status == "NOERROR" and result.rdata() == {"192.0.2.1"}
    assert "ra" in result.flags
    assert cluster.query("nothing.invalid").rcode() == dns.rcode.NXDOMAIN  # the upstream's word


def test_forwarded_udp_answers_are_capped_like_our_own(cluster: RunningDns) -> None:
    name = "big.example.test"
    for edns in ({"use_edns": False}, {"use_edns": 0, "payload": 1000}, {"use_edns": 0, "payload": 65535}):
        reply = cluster.query(name, "A", **edns)  # type: ignore[arg-type]
        assert reply.flags & dns.flags.TC and not reply.answer, edns
        assert reply.question[0].name.to_text() == name + "."
        assert (reply.edns >= 0) == (edns["use_edns"] is not False)
    assert len(rdata_of(cluster.query(name, "A", tcp=True))) == 100
    result = cluster.dig(name)  # dig retries over TCP by itself
    assert "Truncated, retrying in TCP mode" in result.text and len(result.rdata()) == 100


def test_cluster_names_are_never_forwarded(cluster: RunningDns, upstream: FakeUpstream) -> None:
    before = len(upstream.queries)
    assert cluster.query(f"nope.default.svc.{Z}").rcode() == dns.rcode.NXDOMAIN
    assert rdata_of(cluster.query("web")) == {"127.10.0.10"}
    assert len(upstream.queries) == before


def test_short_form_miss_goes_upstream(cluster: RunningDns, upstream: FakeUpstream) -> None:
    assert cluster.query("nosuchthing").rcode() == dns.rcode.NXDOMAIN
    assert upstream.queries[-1] == "nosuchthing."
    assert rdata_of(cluster.query("web.example.test")) == {"192.0.2.1"}  # not service "web" in namespace "example"


def test_external_name_is_chased_through_the_upstream(cluster: RunningDns) -> None:
    reply = cluster.query(f"ext.default.svc.{Z}")
    assert rdata_of(reply) == {"www.example.org.", "192.0.2.1"}
    result = cluster.dig(f"ext.default.svc.{Z}")
    assert result.sections["ANSWER"][0] == (f"ext.default.svc.{Z}.", "CNAME", "www.example.org.")
    assert result.rdata("ANSWER", "A") == {"192.0.2.1"}


def test_unknown_reverse_names_are_forwarded(cluster: RunningDns, upstream: FakeUpstream) -> None:
    assert cluster.query("9.9.9.127.in-addr.arpa", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert upstream.queries[-1] == "9.9.9.127.in-addr.arpa."


def test_silent_upstream_is_servfail_within_the_timeout() -> None:
    silent = FakeUpstream(silent=True)
    running = RunningDns(DnsSettings(port=0, upstreams=[f"127.0.0.1:{silent.port}"], upstream_timeout=0.5))
    try:
        start = time.monotonic()
        assert running.query("host.example.test", timeout=5).rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - start < 2
        assert running.dig("host.example.test").status == "SERVFAIL"
    finally:
        running.close()
        silent.close()


def test_no_upstream_is_refused() -> None:
    running = RunningDns(DnsSettings(port=0, upstreams=["none"]))
    try:
        assert running.query("host.example.test").rcode() == dns.rcode.REFUSED
    finally:
        running.close()


def test_forwarding_only_for_the_clients_allowed(upstream: FakeUpstream) -> None:
    """The server asks `forward_from` (sources.forward_allowed, unit-tested in test_dns_sources.py)."""
    for mode, allowed in (
        ("local", {"127.0.0.1": True, "::1": True, "10.1.2.3": True, "172.17.0.2": True, "100.64.0.1": True,
                   "fd00::1": True, "0.0.0.0": False, "198.18.0.1": False, "192.0.2.1": False, "8.8.8.8": False}),
        ("loopback", {"127.0.0.1": True, "::1": True, "10.1.2.3": False, "8.8.8.8": False}),
        ("10.0.0.0/8, fd00::/8", {"10.1.2.3": True, "fd00::1": True, "127.0.0.1": False, "192.168.1.1": False}),
        ("any", {"8.8.8.8": True, "0.0.0.0": True}),
    ):
        running = RunningDns(DnsSettings(port=0, upstreams=[f"127.0.0.1:{upstream.port}"], forward_from=mode))  # type: ignore[arg-type]
        try:
            for client, expected in allowed.items():
                server = running.server
                assert running.call(lambda c=client, s=server: s._may_forward(c)) is expected, (mode, client)
        finally:
            running.close()


def test_a_client_outside_forward_from_is_refused(upstream: FakeUpstream) -> None:
    """Over real sockets: with only 10.0.0.0/8 allowed, a 127.0.0.1 client's outside names are REFUSED
    (UDP and TCP; an ExternalName is answered with its CNAME alone), cluster names still answered."""
    events = [make.service("web", cluster_ip="127.10.0.10"), make.service("ext", external_name="www.example.org")]
    settings = DnsSettings(port=0, upstreams=[f"127.0.0.1:{upstream.port}"], forward_from="10.0.0.0/8")  # type: ignore[arg-type]
    running = RunningDns(settings, events)
    try:
        before = len(upstream.queries)
        for tcp in (False, True):
            assert running.query("host.example.test", tcp=tcp).rcode() == dns.rcode.REFUSED
            assert rdata_of(running.query("web", tcp=tcp)) == {"127.10.0.10"}
            assert rdata_of(running.query(f"ext.default.svc.{Z}", tcp=tcp)) == {"www.example.org."}
        assert len(upstream.queries) == before
    finally:
        running.close()


def test_serve_forwards_for_loopback_by_default_and_honours_the_flag(upstream: FakeUpstream, tmp_path) -> None:
    """`emulator serve` wires --dns-forward-from into the DNS server: by default ('local') a loopback
    client is forwarded for; with --dns-forward-from 10.0.0.0/8 it is REFUSED."""
    from tests.conftest import start_emulator

    for extra, rcode in (((), dns.rcode.NOERROR), (("--dns-forward-from", "10.0.0.0/8"), dns.rcode.REFUSED)):
        emu = start_emulator(tmp_path / f"data{len(extra)}", "--dns-upstream", f"127.0.0.1:{upstream.port}", "--no-proxy", *extra)
        try:
            message = dns.message.make_query("host.example.test", "A")
            reply = dns.query.udp(message, "127.0.0.1", port=emu.dns_port, timeout=3)
            assert reply.rcode() == rcode, (extra, reply)
            if rcode == dns.rcode.NOERROR:
                assert rdata_of(reply) == {"192.0.2.1"}
        finally:
            emu.stop()


def test_upstream_addresses(tmp_path) -> None:
    assert parse_upstream("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_upstream("10.0.0.1:5353") == ("10.0.0.1", 5353)
    assert parse_upstream("[::1]:5353") == ("::1", 5353)
    assert parse_upstream("::1") == ("::1", 53)
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example.com\nnameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n")
    assert host_upstreams(("127.0.0.1", 53), str(conf)) == [("10.0.0.2", 53), ("fe80::1", 53)]  # never itself
    assert host_upstreams(("127.0.0.1", 1053), str(conf))[0] == ("127.0.0.1", 53)
    assert host_upstreams(("0.0.0.0", 53), str(conf)) == [("10.0.0.2", 53), ("fe80::1", 53)]
    # inside a container, Docker's embedded resolver is NAT'ed elsewhere: never this server
    docker = tmp_path / "docker-resolv.conf"
    docker.write_text("nameserver 127.0.0.11\noptions ndots:0\n")
    assert host_upstreams(("0.0.0.0", 53), str(docker)) == [("127.0.0.11", 53)]


def test_upstream_query_returns_none_when_nobody_answers() -> None:
    from emulator.dns.upstream import Upstreams

    silent = FakeUpstream(silent=True)
    try:
        query = DNSRecord.question("x.example.test").pack()
        assert asyncio.run(Upstreams([("127.0.0.1", silent.port)], 0.2).query(query)) is None
    finally:
        silent.close()
