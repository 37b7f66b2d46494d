"""No client can take the DNS server over or stall it: TCP connection limits per source and in all,
queries that must arrive whole in time, bounded upstream lookups, stored names that cannot be encoded,
and a shutdown that ends open connections. The real server, on real sockets."""

from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from emulator.dns import DnsSettings
from emulator.dns import synthetic as make
from emulator.store.events import MODIFIED
from tests.integration.test_dns_harness import RunningDns, rdata_of
from tests.integration.test_dns_upstream import FakeUpstream

Z = "cluster.local"
LONG_LABEL = "a" * 64


def _is_closed(sock: socket.socket) -> bool:
    """Whether the server has closed (or reset) this connection, without waiting."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionError:
        return True


def _tcp_query(name: str, port: int, source: str = "127.0.0.1") -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=3, source=source)


@pytest.fixture
def server() -> Iterator[RunningDns]:
    running = RunningDns(DnsSettings(port=0, upstreams=[]), [make.service("web", cluster_ip="127.10.0.10")])
    yield running
    running.close()


def test_one_source_cannot_lock_others_out_of_tcp(server: RunningDns) -> None:
    settings = server.settings
    assert (settings.tcp_max_connections, settings.tcp_max_per_source, settings.tcp_query_timeout) == (256, 16, 3.0)
    hog: list[socket.socket] = []
    try:
        # One client opens as many connections as the server takes in all, each starting a query.
        for _ in range(settings.tcp_max_connections):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
            sock.sendall(b"\xff")  # the first byte of a 65535-byte message that never comes
            hog.append(sock)
        started = time.monotonic()
        time.sleep(0.3)
        open_ = [sock for sock in hog if not _is_closed(sock)]
        assert len(open_) == settings.tcp_max_per_source  # the rest were closed at once

        # Another address still gets answers over TCP (where truncated UDP answers are fetched).
        assert rdata_of(_tcp_query(f"web.default.svc.{Z}", server.port, source="127.0.0.2")) == {"127.10.0.10"}

        # The hog trickles a byte every half second: its queries never complete, so it is dropped
        # tcp_query_timeout after their first byte, however often bytes arrive.
        while open_ and time.monotonic() - started < settings.tcp_query_timeout + 3:
            for sock in open_:
                try:
                    sock.sendall(b"\xff")
                except OSError:
                    pass
            time.sleep(0.5)
            open_ = [sock for sock in open_ if not _is_closed(sock)]
        assert not open_
        assert time.monotonic() - started < settings.tcp_query_timeout + 1.5
        assert server.call(lambda: server.server.tcp_connections) == 0
        # ...and its slots are free again.
        assert rdata_of(_tcp_query(f"web.default.svc.{Z}", server.port)) == {"127.10.0.10"}
    finally:
        for sock in hog:
            sock.close()


def test_idle_counts_from_the_last_complete_query() -> None:
    settings = DnsSettings(port=0, upstreams=[], tcp_idle_timeout=1.5, tcp_query_timeout=0.5)
    running = RunningDns(settings, [make.service("web", cluster_ip="127.10.0.10")])
    try:
        query = dns.message.make_query("web", "A").to_wire()
        framed = struct.pack("!H", len(query)) + query
        with socket.create_connection(("127.0.0.1", running.port), timeout=3) as sock:
            started = time.monotonic()
            for i in range(len(framed)):  # byte by byte, pausing midway: still whole within the query timeout
                sock.sendall(framed[i : i + 1])
                if i == len(framed) // 2:
                    time.sleep(0.2)
            reply = dns.message.from_wire(_recv_frame(sock))
            assert rdata_of(reply) == {"127.10.0.10"}
            # A query completed: the connection stays for the idle timeout, then closes.
            time.sleep(1.0)
            assert not _is_closed(sock)
            sock.settimeout(3)
            assert sock.recv(1) == b""
            assert 1.4 < time.monotonic() - started < 2.5
    finally:
        running.close()


def _recv_frame(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
        chunk = sock.recv(65535)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data[2:]


def test_an_external_name_that_cannot_be_encoded_is_servfail_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="emulator.dns")
    events = [
        make.service("long", external_name=f"{LONG_LABEL}.example.com"),
        make.service("empty", external_name="foo..example.com"),
        make.service("alias", external_name=f"long.default.svc.{Z}"),  # an in-zone CNAME leading to it
        make.service("fine", external_name="www.example.org"),
    ]
    running = RunningDns(DnsSettings(port=0, upstreams=[]), events)
    try:
        for name, rdtypes in (
            (f"long.default.svc.{Z}", ("A", "AAAA", "TXT", "CNAME", "SRV")),
            (f"empty.default.svc.{Z}", ("A", "TXT")),
            ("long", ("A", "TXT")),  # the short form
            (f"alias.default.svc.{Z}", ("A", "AAAA")),  # followed in the zone to the broken one
        ):
            for rdtype in rdtypes:
                for tcp in (False, True):
                    for _ in range(2):  # the second time from the cache
                        reply = running.query(name, rdtype, tcp=tcp)
                        assert reply.rcode() == dns.rcode.SERVFAIL, (name, rdtype, tcp)
        # Not followed for other types: the alias's own CNAME can be written, so it is the answer.
        assert rdata_of(running.query(f"alias.default.svc.{Z}", "TXT")) == {f"long.default.svc.{Z}."}
        assert rdata_of(running.query(f"fine.default.svc.{Z}")) == {"www.example.org."}
        # Fixing the service fixes its name at once.
        running.apply(make.service("long", external_name="www.example.org", type=MODIFIED))
        assert rdata_of(running.query(f"long.default.svc.{Z}")) == {"www.example.org."}
    finally:
        running.close()
    records = [r for r in caplog.records if r.name.startswith("emulator.dns")]
    assert not [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one line per stored service, none per query
    assert all("\n" not in w and len(w) < 300 for w in warnings)


def test_external_name_lookups_are_bounded_like_forwards() -> None:
    silent = FakeUpstream(silent=True)
    settings = DnsSettings(port=0, upstreams=[f"127.0.0.1:{silent.port}"], upstream_timeout=1.0, max_pending_forwards=2)
    running = RunningDns(settings, [make.service("ext", external_name="www.example.org")])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(2):  # two forwards hang on the silent upstream: the bound is reached
                sock.sendto(dns.message.make_query(f"host{i}.example.test", "A").to_wire(), ("127.0.0.1", running.port))
            time.sleep(0.1)
            assert running.call(lambda: len(running.server._pending)) == 2
            started = time.monotonic()
            reply = running.query(f"ext.default.svc.{Z}")  # would start a third upstream lookup
            assert reply.rcode() == dns.rcode.SERVFAIL
            assert time.monotonic() - started < 0.5  # at once, not after the upstream timeout
            assert running.call(lambda: len(running.server._pending)) == 2
        time.sleep(1.2)  # the two forwards time out; lookups may start again
        reply = running.query(f"ext.default.svc.{Z}")
        assert reply.rcode() == dns.rcode.NOERROR and rdata_of(reply) == {"www.example.org."}
    finally:
        running.close()
        silent.close()


def test_close_ends_open_tcp_connections(server: RunningDns) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        query = dns.message.make_query("web", "A").to_wire()
        sock.sendall(struct.pack("!H", len(query)) + query)
        assert rdata_of(dns.message.from_wire(_recv_frame(sock))) == {"127.10.0.10"}
        started = time.monotonic()
        server.run(server.server.close())
        assert time.monotonic() - started < 1
        sock.settimeout(2)  # well within the idle timeout (10 s): the server closed it
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
        assert server.call(lambda: server.server.tcp_connections) == 0
