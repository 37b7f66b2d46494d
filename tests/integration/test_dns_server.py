"""The DNS server against the SEMANTICS.md table, queried for real with dnspython and with `dig`."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest

from emulator.dns import DnsSettings
from emulator.dns import synthetic as make
from emulator.store.events import DELETED, MODIFIED
from tests.integration.test_dns_harness import RunningDns, has_soa, rdata_of

Z = "cluster.local"
SOA_NONE = "-"  # no SOA expected


def cluster_events() -> list:
    return [
        make.namespace("default"),
        make.namespace("team"),
        make.namespace("empty"),
        make.service(
            "web",
            cluster_ip="127.10.0.10",
            ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        ),
        make.endpoints("web", ready=["127.20.0.1", "127.20.0.2"]),
        make.service("lonely", cluster_ip="127.10.0.11"),  # no endpoints at all
        make.service("db", "team", cluster_ip="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        make.endpoints(
            "db",
            "team",
            ready=[("127.20.1.1", "db-0"), "127.20.1.2"],
            not_ready=["127.20.1.3"],
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
        ),
        make.service("idle", "team", cluster_ip="None"),
        make.endpoints("idle", "team", not_ready=["127.20.2.1"]),
        make.service("noeps", "team", cluster_ip="None"),
        make.service("ext", external_name="example.org"),
        make.service("alias", external_name=f"web.default.svc.{Z}"),
        make.service("big", cluster_ip="None"),
        make.endpoints("big", ready=[f"127.30.0.{i}" for i in range(1, 61)]),
        make.service("huge", cluster_ip="None"),
        make.endpoints("huge", ready=[f"127.31.0.{i}" for i in range(1, 201)]),
    ]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RunningDns]:
    running = RunningDns(DnsSettings(port=0, upstreams=[], tcp_idle_timeout=1.0), cluster_events())
    yield running
    running.close()


# name, type, rcode, expected answer rdata, SOA in authority?
TABLE = [
    # ClusterIP A: its cluster IP, even with zero endpoints
    (f"web.default.svc.{Z}", "A", "NOERROR", {"127.10.0.10"}, False),
    (f"lonely.default.svc.{Z}", "A", "NOERROR", {"127.10.0.11"}, False),
    # headless: one A per ready endpoint; none ready / none at all → NXDOMAIN
    (f"db.team.svc.{Z}", "A", "NOERROR", {"127.20.1.1", "127.20.1.2"}, False),
    (f"idle.team.svc.{Z}", "A", "NXDOMAIN", set(), True),
    (f"noeps.team.svc.{Z}", "A", "NXDOMAIN", set(), True),
    # endpoint hostnames: the hostname, else the dashed IP
    (f"db-0.db.team.svc.{Z}", "A", "NOERROR", {"127.20.1.1"}, False),
    (f"127-20-1-2.db.team.svc.{Z}", "A", "NOERROR", {"127.20.1.2"}, False),
    (f"127-20-1-1.db.team.svc.{Z}", "A", "NXDOMAIN", set(), True),  # has a hostname, so not the dashed form
    (f"127-20-0-1.web.default.svc.{Z}", "A", "NOERROR", {"127.20.0.1"}, False),
    # ExternalName: CNAME (outside the zone, no upstream here: the CNAME alone), followed inside the zone
    (f"ext.default.svc.{Z}", "A", "NOERROR", {"example.org."}, False),
    (f"ext.default.svc.{Z}", "CNAME", "NOERROR", {"example.org."}, False),
    # ...and the CNAME answers every other type too (the client follows it), SRV excepted
    (f"ext.default.svc.{Z}", "TXT", "NOERROR", {"example.org."}, False),
    (f"ext.default.svc.{Z}", "MX", "NOERROR", {"example.org."}, False),
    (f"ext.default.svc.{Z}", "HTTPS", "NOERROR", {"example.org."}, False),
    (f"alias.default.svc.{Z}", "A", "NOERROR", {f"web.default.svc.{Z}.", "127.10.0.10"}, False),
    # SRV for named ports
    (f"_http._tcp.web.default.svc.{Z}", "SRV", "NOERROR", {f"0 100 80 web.default.svc.{Z}."}, False),
    (f"_dns._udp.web.default.svc.{Z}", "SRV", "NOERROR", {f"0 100 53 web.default.svc.{Z}."}, False),
    (
        f"_pg._tcp.db.team.svc.{Z}",
        "SRV",
        "NOERROR",
        {f"0 50 5432 db-0.db.team.svc.{Z}.", f"0 50 5432 127-20-1-2.db.team.svc.{Z}."},
        False,
    ),
    (f"_nope._tcp.web.default.svc.{Z}", "SRV", "NXDOMAIN", set(), True),
    (f"_http._udp.web.default.svc.{Z}", "SRV", "NXDOMAIN", set(), True),
    # PTR: cluster IP → service, endpoint → hostname.service
    ("10.0.10.127.in-addr.arpa", "PTR", "NOERROR", {f"web.default.svc.{Z}."}, False),
    ("1.1.20.127.in-addr.arpa", "PTR", "NOERROR", {f"db-0.db.team.svc.{Z}."}, False),
    ("2.0.20.127.in-addr.arpa", "PTR", "NOERROR", {f"127-20-0-2.web.default.svc.{Z}."}, False),
    # pods: a-b-c-d.ns.pod
    (f"127-0-0-5.default.pod.{Z}", "A", "NOERROR", {"127.0.0.5"}, False),
    (f"127-0-0-5.nosuchns.pod.{Z}", "A", "NXDOMAIN", set(), True),
    (f"not-an-ip.default.pod.{Z}", "A", "NXDOMAIN", set(), True),
    # dns-version
    (f"dns-version.{Z}", "TXT", "NOERROR", {'"1.1.0"'}, False),
    # NODATA: existing name, other type
    (f"web.default.svc.{Z}", "AAAA", "NOERROR", set(), True),
    (f"web.default.svc.{Z}", "TXT", "NOERROR", set(), True),
    (f"db.team.svc.{Z}", "MX", "NOERROR", set(), True),
    (f"ext.default.svc.{Z}", "SRV", "NOERROR", set(), True),
    # NODATA: namespace, svc root, apex
    (f"team.svc.{Z}", "A", "NOERROR", set(), True),
    (f"empty.svc.{Z}", "A", "NOERROR", set(), True),
    (f"svc.{Z}", "A", "NOERROR", set(), True),
    (f"{Z}", "A", "NOERROR", set(), True),
    (f"{Z}", "SOA", "NOERROR", {f"ns.dns.{Z}. hostmaster.{Z}."}, False),
    # NXDOMAIN: unknown service or namespace, wrong second label, too many labels
    (f"nope.default.svc.{Z}", "A", "NXDOMAIN", set(), True),
    (f"web.nosuchns.svc.{Z}", "A", "NXDOMAIN", set(), True),
    (f"nosuchns.svc.{Z}", "A", "NXDOMAIN", set(), True),
    (f"web.default.foo.{Z}", "A", "NXDOMAIN", set(), True),
    (f"a.b.c.web.default.svc.{Z}", "A", "NXDOMAIN", set(), True),
    # short forms (extension): svc, svc.ns, svc.ns.svc
    ("web", "A", "NOERROR", {"127.10.0.10"}, False),
    ("web.default", "A", "NOERROR", {"127.10.0.10"}, False),
    ("db.team", "A", "NOERROR", {"127.20.1.1", "127.20.1.2"}, False),
    ("web.default.svc", "A", "NOERROR", {"127.10.0.10"}, False),
    ("web", "AAAA", "NOERROR", set(), True),  # exists: NODATA, not forwarded
    ("nope", "A", "REFUSED", set(), False),  # not in the cluster, and forwarding is off here
]


def _soa_prefix(values: set[str]) -> set[str]:
    # SOA rdata has a serial; compare its first two fields only
    return {" ".join(v.split()[:2]) if len(v.split()) == 7 else v for v in values}


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answers", "soa"), TABLE, ids=[f"{r[0]} {r[1]}" for r in TABLE])
def test_table_with_dnspython(cluster: RunningDns, name: str, rdtype: str, rcode: str, answers: set, soa: bool) -> None:
    reply = cluster.query(name, rdtype)
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert _soa_prefix(rdata_of(reply)) == answers
    assert has_soa(reply) == soa
    if rcode != "REFUSED":
        assert reply.flags & dns.flags.AA


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answers", "soa"), TABLE, ids=[f"{r[0]} {r[1]}" for r in TABLE])
def test_table_with_dig(cluster: RunningDns, name: str, rdtype: str, rcode: str, answers: set, soa: bool) -> None:
    result = cluster.dig(name, rdtype)
    assert result.status == rcode, result.text
    assert _soa_prefix(result.rdata("ANSWER")) == answers, result.text
    assert bool(result.rdata("AUTHORITY", "SOA")) == soa, result.text


def test_srv_puts_addresses_in_additional(cluster: RunningDns) -> None:
    reply = cluster.query(f"_pg._tcp.db.team.svc.{Z}", "SRV")
    assert rdata_of(reply, "additional", "A") == {"127.20.1.1", "127.20.1.2"}
    result = cluster.dig(f"_http._tcp.web.default.svc.{Z}", "SRV")
    assert result.sections["ADDITIONAL"] == [(f"web.default.svc.{Z}.", "A", "127.10.0.10")]


def test_question_case_is_echoed(cluster: RunningDns) -> None:
    for _ in range(2):  # the second time from the packed-answer cache
        result = cluster.dig(f"WeB.DeFault.svc.{Z.upper()}", "A")
        assert result.status == "NOERROR"
        assert result.sections["ANSWER"] == [(f"WeB.DeFault.svc.{Z.upper()}.", "A", "127.10.0.10")]
        assert f";WeB.DeFault.svc.{Z.upper()}." in result.text


def test_truncated_over_udp_then_whole_over_tcp(cluster: RunningDns) -> None:
    name = f"big.default.svc.{Z}"
    udp = cluster.query(name, "A", use_edns=False)
    assert udp.flags & dns.flags.TC and not udp.answer
    assert len(rdata_of(cluster.query(name, "A", tcp=True))) == 60
    assert len(rdata_of(cluster.query(name, "A", use_edns=0, payload=4096))) == 60  # EDNS0 size honoured
    # however large a buffer a client claims, UDP answers stop at 1232 bytes (no amplification)
    huge = f"huge.default.svc.{Z}"
    assert cluster.query(huge, "A", use_edns=0, payload=65535).flags & dns.flags.TC
    assert len(rdata_of(cluster.query(huge, "A", tcp=True))) == 200
    result = cluster.dig("+noedns", name)  # dig retries over TCP by itself
    assert "Truncated, retrying in TCP mode" in result.text
    assert len(result.rdata()) == 60


def _frame(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    return struct.pack("!H", len(wire)) + wire


def _read_frame(sock: socket.socket) -> dns.message.Message:
    size = struct.unpack("!H", _recv_exactly(sock, 2))[0]
    return dns.message.from_wire(_recv_exactly(sock, size))


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_tcp_several_queries_per_connection_and_idle_drop(cluster: RunningDns) -> None:
    queries = [dns.message.make_query(n, "A") for n in ("web", f"db.team.svc.{Z}", f"nope.default.svc.{Z}")]
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=3) as sock:
        sock.sendall(b"".join(_frame(q) for q in queries))  # pipelined in one write
        replies = [_read_frame(sock) for _ in queries]
        assert [r.id for r in replies] == [q.id for q in queries]
        assert [dns.rcode.to_text(r.rcode()) for r in replies] == ["NOERROR", "NOERROR", "NXDOMAIN"]
        sock.sendall(_frame(queries[0]))  # still open for more
        assert _read_frame(sock).id == queries[0].id
        start = time.monotonic()
        assert sock.recv(1) == b""  # the idle timeout (1 s here) closes it
        assert time.monotonic() - start < 3


def test_other_opcodes_are_not_implemented(cluster: RunningDns) -> None:
    for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.IQUERY):
        query = dns.message.make_query(f"web.default.svc.{Z}", "A")
        query.set_opcode(opcode)
        reply = dns.query.udp(query, "127.0.0.1", port=cluster.port, timeout=3, ignore_unexpected=True)
        assert reply.rcode() == dns.rcode.NOTIMP and reply.id == query.id


def test_malformed_gets_formerr_or_silence(cluster: RunningDns) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07broken", ("127.0.0.1", cluster.port))
        reply = sock.recv(512)
        assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
        for silent in (b"\x12", b"\x12\x34\x81\x80" + bytes(8)):  # too short; a response, not a query
            sock.sendto(silent, ("127.0.0.1", cluster.port))
            with pytest.raises(TimeoutError):
                sock.recv(512)
    assert cluster.query("web").rcode() == dns.rcode.NOERROR


def test_changes_are_visible_on_the_next_query(cluster: RunningDns) -> None:
    name = f"fresh.default.svc.{Z}"
    assert cluster.query(name).rcode() == dns.rcode.NXDOMAIN
    assert cluster.query("fresh").rcode() == dns.rcode.REFUSED  # a short form that misses goes upstream
    cluster.apply(make.service("fresh", cluster_ip="127.10.0.50"))
    assert rdata_of(cluster.query(name)) == {"127.10.0.50"}
    assert rdata_of(cluster.query("fresh")) == {"127.10.0.50"}
    assert rdata_of(cluster.query("50.0.10.127.in-addr.arpa", "PTR")) == {f"fresh.default.svc.{Z}."}
    cluster.apply(make.service("fresh", cluster_ip="127.10.0.51", type=MODIFIED))
    assert rdata_of(cluster.query(name)) == {"127.10.0.51"}
    assert cluster.query("50.0.10.127.in-addr.arpa", "PTR").rcode() == dns.rcode.REFUSED  # not ours any more
    cluster.apply(make.service("fresh", cluster_ip="127.10.0.51", type=DELETED))
    assert cluster.query(name).rcode() == dns.rcode.NXDOMAIN

    # headless: endpoints becoming ready, then going away
    cluster.apply(make.service("hl", "team", cluster_ip="None"))
    assert cluster.query(f"hl.team.svc.{Z}").rcode() == dns.rcode.NXDOMAIN
    cluster.apply(make.endpoints("hl", "team", ready=["127.20.9.1"]))
    assert rdata_of(cluster.query(f"hl.team.svc.{Z}")) == {"127.20.9.1"}
    cluster.apply(make.endpoints("hl", "team", ready=["127.20.9.1", "127.20.9.2"], type=MODIFIED))
    assert rdata_of(cluster.query(f"hl.team.svc.{Z}")) == {"127.20.9.1", "127.20.9.2"}
    cluster.apply(make.endpoints("hl", "team", not_ready=["127.20.9.1"], type=MODIFIED))
    assert cluster.query(f"hl.team.svc.{Z}").rcode() == dns.rcode.NXDOMAIN

    # a namespace appearing turns its NXDOMAIN into NODATA
    assert cluster.query(f"later.svc.{Z}").rcode() == dns.rcode.NXDOMAIN
    cluster.apply(make.namespace("later"))
    reply = cluster.query(f"later.svc.{Z}")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer


def test_https_and_other_letter_valued_types_are_cached(cluster: RunningDns) -> None:
    # Type 65 (HTTPS) is the byte pair 0x00 'A': lower-casing the whole question made it a miss forever.
    for rdtype, number in (("HTTPS", 65), ("A", 1)):
        reply = cluster.query(f"WEB.default.svc.{Z}", rdtype)
        assert reply.rcode() == dns.rcode.NOERROR
        key = b"\x03web\x07default\x03svc\x07cluster\x05local\x00" + struct.pack("!HH", number, 1)
        assert cluster.call(lambda key=key: key in cluster.index.cache), rdtype
        again = cluster.query(f"WEB.default.svc.{Z}", rdtype)  # now from the cache, with the client's case
        assert again.rcode() == dns.rcode.NOERROR and again.question[0].name.to_text() == f"WEB.default.svc.{Z}."
    # type 97 is 0x00 'a': it must not be answered with the cached HTTPS answer's question
    reply = cluster.query(f"web.default.svc.{Z}", 97)
    assert reply.question[0].rdtype == 97


def test_tcp_refuses_what_udp_refuses(cluster: RunningDns) -> None:
    name = f"web.default.svc.{Z}"
    assert cluster.query(name).rcode() == dns.rcode.NOERROR  # cached now
    plain = dns.message.make_query(name, "A", use_edns=False).to_wire()
    no_opt = plain[:10] + b"\x00\x01" + plain[12:]  # claims an additional record, carries none
    with_opt = dns.message.make_query(name, "A", use_edns=0).to_wire()
    garbage = with_opt + b"\x00\x00"  # bytes after the OPT record
    for packet in (no_opt, garbage):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(2)
            udp.sendto(packet, ("127.0.0.1", cluster.port))
            udp_reply = udp.recv(65535)
        with socket.create_connection(("127.0.0.1", cluster.port), timeout=2) as tcp:
            tcp.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", _recv_exactly(tcp, 2))[0]
            tcp_reply = _recv_exactly(tcp, size)
        assert udp_reply[3] & 0x0F == tcp_reply[3] & 0x0F, (packet, udp_reply, tcp_reply)
        assert udp_reply[6:12] == tcp_reply[6:12]  # the same sections
    # the no-OPT packet is malformed: FORMERR both ways
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=2) as tcp:
        tcp.sendall(struct.pack("!H", len(no_opt)) + no_opt)
        size = struct.unpack("!H", _recv_exactly(tcp, 2))[0]
        assert _recv_exactly(tcp, size)[3] & 0x0F == dns.rcode.FORMERR
