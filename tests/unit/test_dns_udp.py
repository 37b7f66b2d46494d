"""The UDP hot path (emulator/dns/server.py `_Udp`): many datagrams per wake-up, the reply cache keyed by the
query past its ID, and that cache never outliving the index cache's answer it was made from."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from dnslib import EDNS0, QTYPE, DNSRecord

from emulator.dns import DnsIndex, DnsSettings
from emulator.dns import synthetic as make
from emulator.dns.server import DnsServer, _Udp, udp_socket
from emulator.dns.upstream import Upstreams
from emulator.store.events import MODIFIED

NAME = "web.shop.svc.cluster.local"


class Harness:
    """A `_Udp` on a real loopback socket, driven by hand: send datagrams, then one wake-up."""

    def __init__(self, index: DnsIndex, settings: DnsSettings) -> None:
        self.udp = _Udp(DnsServer(settings, index, Upstreams([], 1.0)), udp_socket("127.0.0.1", 0))
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.settimeout(2)
        self.address = self.udp.sock.getsockname()

    def ask(self, *queries: bytes) -> list[DNSRecord]:
        for query in queries:
            self.client.sendto(query, self.address)
        self.udp._readable()  # what the loop calls when the socket is readable: reads all of them
        return [DNSRecord.parse(self.client.recv(65535)) for _ in queries]

    def close(self) -> None:
        self.client.close()
        self.udp.close()


def run(scenario: Callable[[Harness, DnsIndex], Awaitable[None] | None], **settings: object) -> None:
    async def main() -> None:
        dns_settings = DnsSettings(port=0, upstreams=[], **settings)  # type: ignore[arg-type]
        index = DnsIndex(dns_settings)
        index.apply(make.namespace("shop"))
        index.apply(make.service("web", "shop", cluster_ip="127.96.0.10"))
        harness = Harness(index, dns_settings)
        try:
            result = scenario(harness, index)
            if result is not None:
                await result
        finally:
            harness.close()

    asyncio.run(main())


def question(name: str = NAME, qtype: str = "A", id: int = 1, edns: int | None = None) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = id
    if edns is not None:
        record.add_ar(EDNS0(udp_len=edns))
    return bytes(record.pack())


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def test_a_burst_is_answered_in_one_wake_up_each_with_its_id() -> None:
    def scenario(h: Harness, index: DnsIndex) -> None:
        replies = h.ask(*(question(id=i) for i in range(1, 41)))
        assert [r.header.id for r in replies] == list(range(1, 41))
        assert all(addresses(r) == ["127.96.0.10"] for r in replies)
        assert len(h.udp.replies) == 1  # one entry however many IDs: the key is the query past its ID

    run(scenario)


def test_a_cached_reply_does_not_outlive_the_answer_it_came_from() -> None:
    def scenario(h: Harness, index: DnsIndex) -> None:
        for _ in range(3):  # slow path, index cache, reply cache
            assert addresses(h.ask(question())[0]) == ["127.96.0.10"]
        assert h.udp.replies
        index.apply(make.service("web", "shop", cluster_ip="127.96.0.11", type=MODIFIED))
        for _ in range(3):
            assert addresses(h.ask(question())[0]) == ["127.96.0.11"]
        index.cache.clear()  # the index starting over (full, or the gateway's names changed)
        assert addresses(h.ask(question())[0]) == ["127.96.0.11"]

    run(scenario)


def test_each_variant_of_a_query_gets_its_own_reply() -> None:
    def scenario(h: Harness, index: DnsIndex) -> None:
        for _ in range(3):
            plain, edns, mixed = h.ask(question(), question(edns=4096), question("Web.SHOP.svc.cluster.local"))
            assert not plain.ar and [rr.rtype for rr in edns.ar] == [QTYPE.OPT]
            assert str(mixed.q.qname) == "Web.SHOP.svc.cluster.local."  # the question as asked
            assert addresses(plain) == addresses(edns) == addresses(mixed) == ["127.96.0.10"]
            no_rd = DNSRecord.parse(question(id=7))
            no_rd.header.rd = 0
            assert h.ask(bytes(no_rd.pack()))[0].header.rd == 0

    run(scenario)


def test_too_big_for_the_client_is_truncated_every_time() -> None:
    def scenario(h: Harness, index: DnsIndex) -> None:
        ready = [f"127.20.{i // 200}.{i % 200 + 1}" for i in range(60)]  # 60 A records: over 512 bytes
        index.apply(make.service("many", "shop", cluster_ip="None"))
        index.apply(make.endpoints("many", "shop", ready=ready))
        for _ in range(3):
            plain, edns = h.ask(question("many.shop.svc.cluster.local"), question("many.shop.svc.cluster.local", edns=1232))
            assert plain.header.tc and not plain.rr
            assert not edns.header.tc and len(edns.rr) == 60

    run(scenario)


def test_what_is_not_a_plain_query_goes_the_slow_way_and_the_cache_stays_bounded() -> None:
    def scenario(h: Harness, index: DnsIndex) -> None:
        h.client.sendto(b"\x00\x01\x01", h.address)  # too short for a header: silence
        h.client.sendto(question(id=3)[:-2], h.address)  # cut short: FORMERR
        h.udp._readable()
        reply = DNSRecord.parse(h.client.recv(512))
        assert reply.header.id == 3 and reply.header.rcode == 1
        for n in range(5):  # distinct questions (letter case) past the bound: the cache starts over
            h.ask(question(NAME.upper()[: n + 1] + NAME[n + 1 :]))
            h.ask(question(NAME.upper()[: n + 1] + NAME[n + 1 :]))
            assert len(h.udp.replies) <= 2

    run(scenario, max_cached_answers=2)
