"""20,000 random and mutated packets at the running server: no crash, no stall, never a reply with
another query's ID, and correct answers afterwards."""

from __future__ import annotations

import random
import socket
import struct

import dns.rcode
from dnslib import EDNS0, DNSRecord

from emulator.dns import DnsSettings
from emulator.dns import synthetic as make
from tests.integration.test_dns_harness import RunningDns, rdata_of

Z = "cluster.local"
SENTINEL_ID = 0xFFFF
WINDOW = 200


def seeds() -> list[bytes]:
    names = ["web", f"web.default.svc.{Z}", f"db.default.svc.{Z}", f"_http._tcp.web.default.svc.{Z}",
             "10.0.10.127.in-addr.arpa", f"127-0-0-1.default.pod.{Z}", f"dns-version.{Z}", "example.org", Z]  # fmt: skip
    found = []
    for name in names:
        for qtype in ("A", "AAAA", "SRV", "PTR", "TXT", "ANY"):
            query = DNSRecord.question(name, qtype)
            found.append(bytes(query.pack()))
            query.add_ar(EDNS0(udp_len=4096))
            found.append(bytes(query.pack()))
    return found


def mutate(rng: random.Random, packet: bytes) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        if choice < 0.4 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.55 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif choice < 0.7:
            del data[rng.randrange(len(data) + 1) :]
        elif choice < 0.85:
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.randbytes(rng.randint(1, 20))
        else:
            i = rng.randrange(2, 12) if len(data) >= 12 else 0  # header fields: flags, counts
            data[i : i + 1] = bytes([rng.randrange(256)])
    return bytes(data)


def packet(rng: random.Random, seed: list[bytes]) -> bytes:
    kind = rng.random()
    if kind < 0.2:
        return rng.randbytes(rng.randint(0, 600))
    if kind < 0.3:  # a plausible header with garbage after it
        return struct.pack("!HHHHHH", 0, rng.randrange(65536), 1, 0, 0, rng.randint(0, 1)) + rng.randbytes(
            rng.randint(0, 80)
        )
    return mutate(rng, rng.choice(seed))


def test_twenty_thousand_bad_packets() -> None:
    events = [make.namespace("default"), make.service("web", cluster_ip="127.10.0.10")]
    running = RunningDns(DnsSettings(port=0, upstreams=[]), events)
    rng = random.Random(20240601)
    seed = seeds()
    sentinel = bytearray(DNSRecord.question(f"web.default.svc.{Z}").pack())
    sentinel[:2] = SENTINEL_ID.to_bytes(2, "big")
    replies = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.settimeout(5)
            address = ("127.0.0.1", running.port)
            for window in range(20_000 // WINDOW):
                sent: set[bytes] = set()
                for i in range(WINDOW):
                    data = packet(rng, seed)
                    if len(data) >= 2:
                        query_id = (window * WINDOW + i) % SENTINEL_ID
                        data = query_id.to_bytes(2, "big") + data[2:]
                        sent.add(data[:2])
                    sock.sendto(data, address)
                sock.sendto(bytes(sentinel), address)
                # The server answers in order (nothing is forwarded here), so the sentinel's reply ends the window.
                while True:
                    reply = sock.recv(65535)
                    assert len(reply) >= 12, reply
                    if reply[:2] == sentinel[:2]:
                        assert DNSRecord.parse(reply).rr, "the sentinel query must be answered"
                        break
                    assert reply[:2] in sent, "a reply with an ID nobody sent"
                    replies += 1
        assert replies > 1000  # most packets get FORMERR/NOTIMP/answers; some are silently dropped
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as tcp:
            for _ in range(300):  # garbage frames over TCP too
                data = packet(rng, seed)
                tcp.sendall(len(data).to_bytes(2, "big") + data)
        assert rdata_of(running.query(f"web.default.svc.{Z}")) == {"127.10.0.10"}
        assert rdata_of(running.query("web", tcp=True)) == {"127.10.0.10"}
        assert running.query(f"nope.default.svc.{Z}").rcode() == dns.rcode.NXDOMAIN
    finally:
        running.close()
