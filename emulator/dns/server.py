"""The DNS server: asyncio UDP and TCP on one address, answering the cluster zone and forwarding the rest.

The hot path (a question already answered since the last relevant change) is, over UDP, one dict lookup
by the query's bytes past its ID and one slice and concatenation: no parsing, no objects; the UDP socket
is read directly, every queued datagram in one wake-up of the loop (`_Udp`). A query seen for the first
time in that form (ID aside) takes the header check and the lookup by the lower-cased question in the
index's cache; everything else — the first query for a name, malformed packets, EDNS oddities,
forwarding — goes through dnslib on the slow path, which packs the answer once and leaves it in the
index's cache for the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from dnslib import QTYPE, RCODE, DNSRecord

from emulator.dns.index import DnsIndex
from emulator.dns.records import Answer
from emulator.dns.settings import DnsSettings
from emulator.dns.sources import forward_allowed, source_key
from emulator.dns.upstream import Upstreams, resolve_upstreams
from emulator.dns.wire import (
    MAX_MESSAGE,
    ONE_QUESTION,
    OPT_RR,
    RCODE_BADVERS,
    UDP_MAX,
    UDP_PLAIN,
    Packed,
    error_reply,
    pack_answer,
    reply_from,
    truncated_reply,
)

if TYPE_CHECKING:
    from emulator.flows.log import FlowLog

__all__ = ["DnsServer", "DnsSettings", "start_dns"]

log = logging.getLogger("emulator.dns")

Send = Callable[[bytes], None]


class DnsServer:
    def __init__(self, settings: DnsSettings, index: DnsIndex, upstreams: Upstreams, flows: FlowLog | None = None) -> None:
        self.settings = settings
        # every answered query becomes one flow record (emulator/flows/log.py), decoded only when read
        self.record = flows.record if flows is not None else None
        self.record_cached = flows.record_cached if flows is not None else None  # a cache answer: (t, client, answer)
        self.dns_class = flows.dns_class if flows is not None else None  # what a cache answer is counted by
        self.clock = flows.clock if flows is not None else time.monotonic
        self.index = index
        self.upstreams = upstreams
        self.addresses: list[str] = []
        self.port = settings.port
        self._udp: list[_Udp] = []
        self._tcp_server: asyncio.AbstractServer | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._forward_allowed: dict[str, bool] = {}
        self._tcp: set[_Tcp] = set()  # open TCP connections
        self._tcp_per_source: dict[str, int] = {}  # open TCP connections by sources.source_key

    @property
    def tcp_connections(self) -> int:
        return len(self._tcp)

    async def close(self) -> None:
        for udp in self._udp:
            udp.close()
        if self._tcp_server is not None:
            self._tcp_server.close()  # no new connections
            # Then the open ones: from Python 3.12 on, wait_closed waits until every connection has ended.
            for connection in list(self._tcp):
                connection.drop()
            await self._tcp_server.wait_closed()
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # -- the slow path -------------------------------------------------------------------------------

    def handle(self, data: bytes, client: str, udp: bool, send: Send) -> None:
        """Answer one query that the hot path could not; never raises."""
        if len(data) < 12 or data[2] & 0x80:
            return  # too short to carry an ID, or itself a response: silence (answering answers makes loops)
        if self.record is not None:
            send = self._recorded(send, client, udp)
        try:
            self._handle(data, client, udp, send)
        except Exception:
            log.exception("failed to answer a query from %s", client)
            send(error_reply(data, RCODE.SERVFAIL))

    def _recorded(self, send: Send, client: str, udp: bool) -> Send:
        """`send` that also records the query's flow, with how long the answer took (slow path only)."""
        record, clock, started = self.record, self.clock, time.perf_counter()
        assert record is not None

        def recording(reply: bytes) -> None:
            send(reply)
            record((clock(), "dns", client, "udp" if udp else "tcp", bytes(reply[2:]), time.perf_counter() - started))

        return recording

    def _handle(self, data: bytes, client: str, udp: bool, send: Send) -> None:
        try:
            record = DNSRecord.parse(data)
        except Exception:
            send(error_reply(data, RCODE.FORMERR))
            return
        if record.header.opcode != 0:
            send(error_reply(data, RCODE.NOTIMP))
            return
        if len(record.questions) != 1 or record.rr or record.auth:
            send(error_reply(data, RCODE.FORMERR))
            return
        raw_question = _plain_question(data)
        opt = next((rr for rr in record.ar if rr.rtype == QTYPE.OPT), None)
        edns = int(opt is not None)
        if opt is not None and (opt.ttl >> 16) & 0xFF:
            send(error_reply(data, RCODE_BADVERS, raw_question or b"", edns=True))
            return
        limit = MAX_MESSAGE if not udp else min(UDP_MAX, max(UDP_PLAIN, opt.rclass)) if opt is not None else UDP_PLAIN
        question = record.questions[0]
        if question.qclass != 1:
            send(error_reply(data, RCODE.REFUSED, raw_question or b""))
            return
        byte_labels = tuple(label.lower() for label in question.qname.label)
        if sum(len(label) + 1 for label in byte_labels) > 254:
            send(error_reply(data, RCODE.FORMERR))  # longer than a name may be written (253 characters)
            return
        labels = tuple(label.decode("latin-1") for label in byte_labels)
        answer, reads = self.index.answer(labels, question.qtype)
        if answer is None:
            self._forward(data, client, udp, send, raw_question or b"", edns, limit)
            return
        rd = data[2] & 1
        if answer.chase and self.upstreams and self._may_forward(client):
            if len(self._pending) >= self.settings.max_pending_forwards:
                send(error_reply(data, RCODE.SERVFAIL, raw_question or b""))  # as _forward: never queue
                return
            self._spawn(self._chase(data, byte_labels, question.qtype, answer, raw_question, rd, edns, limit, send))
            return
        packed = pack_answer(byte_labels, question.qtype, answer, bool(self.upstreams))
        if raw_question is not None and question_key(raw_question) == packed.question:
            # Keyed exactly as the hot path looks it up: the question's bytes with the name lower-cased.
            self.index.remember(packed.question, packed, reads)
        send(reply_from(packed, data, raw_question or packed.question, rd, edns, limit))

    def _forward(self, data: bytes, client: str, udp: bool, send: Send, question: bytes, edns: int, limit: int) -> None:
        if not self.upstreams or not self._may_forward(client):
            send(error_reply(data, RCODE.REFUSED, question))
            return
        if len(self._pending) >= self.settings.max_pending_forwards:
            send(error_reply(data, RCODE.SERVFAIL, question))
            return
        self._spawn(self._forward_async(data, udp, send, question, edns, limit))

    async def _forward_async(self, data: bytes, udp: bool, send: Send, question: bytes, edns: int, limit: int) -> None:
        reply = await self.upstreams.query(data, tcp=not udp)
        if reply is None:
            send(error_reply(data, RCODE.SERVFAIL, question))
        elif udp and len(reply) > limit:
            # The upstream's answer is bigger than this UDP client may get (its EDNS size, and never
            # more than 1232 bytes): the same truncated reply as for our own answers, so it asks over TCP.
            send(truncated_reply(reply, question, edns))
        else:
            send(reply)

    async def _chase(
        self,
        data: bytes,
        byte_labels: tuple[bytes, ...],
        qtype: int,
        answer: Answer,
        raw_question: bytes | None,
        rd: int,
        edns: int,
        limit: int,
        send: Send,
    ) -> None:
        """An ExternalName outside the zone: the CNAME, then what the upstream says about its target."""
        assert answer.chase is not None
        try:
            query = DNSRecord.question(answer.chase, QTYPE.get(qtype, "A"))
            reply = await self.upstreams.query(query.pack())
            if reply is not None:
                try:
                    answer.answer.extend(DNSRecord.parse(reply).rr)
                except Exception:
                    log.debug("unreadable upstream reply while following %s", answer.chase)
            packed = pack_answer(byte_labels, qtype, answer, True)
        except Exception:  # a task's exception would otherwise surface only when it is collected
            log.exception("failed to follow %s", answer.chase)
            send(error_reply(data, RCODE.SERVFAIL, raw_question or b""))
            return
        send(reply_from(packed, data, raw_question or packed.question, rd, edns, limit))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _may_forward(self, client: str) -> bool:
        """No open resolver: only the clients `forward_from` allows may use us to forward (decided once
        per client address, then a dict lookup)."""
        allowed = self._forward_allowed.get(client)
        if allowed is None:
            allowed = forward_allowed(client, self.settings.forward_from)
            if len(self._forward_allowed) > 4096:
                self._forward_allowed.clear()
            self._forward_allowed[client] = allowed
        return allowed


def _plain_question(data: bytes) -> bytes | None:
    """The question's bytes when its name is written out plainly (no compression), else None."""
    i = 12
    n = len(data)
    while i < n:
        length = data[i]
        if length == 0:
            return data[12 : i + 5] if i + 5 <= n else None
        if length > 63:
            return None
        i += 1 + length
    return None


def question_key(question: bytes) -> bytes:
    """How the answer cache is keyed: the question's bytes with only the name lower-cased (type and
    class bytes kept as they are: type 65, HTTPS, is the byte pair 0x00 'A')."""
    return question[:-4].lower() + question[-4:]


_COUNTS_PLAIN = ONE_QUESTION + b"\x00\x00"  # QDCOUNT 1, nothing else
_COUNTS_EDNS = ONE_QUESTION + b"\x00\x01"  # QDCOUNT 1, ARCOUNT 1 (the OPT record)


def plain_query(data: bytes) -> tuple[bytes, bytes, int, int] | None:
    """For a plain query the hot path may answer from the cache: (cache key, the question as the client
    wrote it, 1 with EDNS else 0, the largest UDP answer it takes); None for anything else, which the
    slow path judges. Plain: QR 0, opcode QUERY, one question, no answer or authority records, and
    either nothing after the question or exactly one EDNS version 0 OPT record that ends the packet.
    The name is not checked here: only questions that came through the slow path are in the cache.
    Never raises (slices, not indexes, past the header)."""
    end = data.find(0, 12) + 5
    if end < 17 or data[2] & 0xF8:
        return None
    counts = data[4:12]
    if counts == _COUNTS_PLAIN:
        if len(data) != end:
            return None
        edns, limit = 0, UDP_PLAIN
    elif (
        counts == _COUNTS_EDNS
        and data[end : end + 3] == b"\x00\x00\x29"  # root owner, type OPT
        and data[end + 6 : end + 7] == b"\x00"  # EDNS version 0
        and len(data) == end + 11 + int.from_bytes(data[end + 9 : end + 11], "big")
    ):
        edns, limit = 1, min(UDP_MAX, max(UDP_PLAIN, int.from_bytes(data[end + 3 : end + 5], "big")))
    else:
        return None
    question = data[12:end]
    return question[:-4].lower() + question[-4:], question, edns, limit  # question_key, inlined: hot path


UDP_BATCH = 128  # datagrams read per wake-up at most, so that the other faces on the loop keep their turn
RECV_SIZE = 65535  # any datagram whole: a query cut short would read as malformed


class _Udp:
    """DNS over UDP on a plain non-blocking socket: one wake-up of the loop (`add_reader`) reads every queued
    datagram (up to UDP_BATCH) with `recvfrom` and answers each with `sendto`, no transport or protocol call
    between. Under load a wake-up finds tens of queries waiting, so the loop's own cost (epoll, callbacks) and
    the flow clock (read once per wake-up) are shared by them; idle, it is one query per wake-up as before.

    The hottest path is one dict lookup: `replies` maps a query past its ID (flags, counts, the question as
    the client wrote it, its OPT record), which decides everything about the reply but the ID, to that reply
    past its ID, with the cached `Packed` it was made from. The index cache stays the authority: a reply is
    used only while the index still holds that very `Packed` (`is`, one more lookup by an already hashed key),
    so an event that drops an answer drops its replies with it. The dict is filled from the index cache by
    the second query of a kind, and bounded like it.

    A reply the kernel cannot take at once (a full send buffer) is dropped, as a router would: the client
    asks again. Errors the socket reports (an ICMP unreachable from a client gone) are dropped too."""

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.cache = server.index.cache
        # query past its ID -> (reply past its ID, the Packed it came from, the index cache's key, what a flow
        # record of it holds: (that reply with the question as cached, its class for the counters), see
        # emulator/flows/log.py). The flow part holds only bytes and ints, so that records (a million
        # every few seconds) are left alone by the cyclic GC instead of piling up in its oldest generation.
        self.replies: dict[bytes, tuple[bytes, Packed, bytes, tuple[bytes, int] | None]] = {}
        self.max_replies = server.settings.max_cached_answers
        self.record = server.record_cached  # flows: (time, client, answer) per answer, the wake-up's loop time
        self.dns_class = server.dns_class
        self.clock = server.clock
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _readable(self) -> None:
        # The hot path, inlined (a Python call costs as much as a lookup).
        recvfrom, sendto, record = self.sock.recvfrom, self.sock.sendto, self.record
        get, replies = self.cache.get, self.replies
        reply_for = replies.get
        now = self.clock() if record is not None else 0.0
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(RECV_SIZE)
                key = data[2:]
                hit = reply_for(key)
                if hit is not None and get(hit[2]) is hit[1]:
                    sendto(data[:2] + hit[0], addr)
                    if record is not None:  # a flow: the loop's time, who asked, the cached reply
                        record((now, addr, hit[3]))
                    continue
                query = plain_query(data)
                if query is None:
                    self._slow(data, addr)
                    continue
                packed: Packed | None = get(query[0])
                if packed is None:
                    self._slow(data, addr)
                    continue
                _, question, edns, limit = query
                v = (data[2] & 1) | edns << 1  # Packed is flat: heads 0-3, TC heads 4-7, tails 8-9, sizes 10-11
                # Constant indexes type as exactly int / bytes; a computed one as bytes | int, hence the cast.
                if (packed[11] if edns else packed[10]) <= limit:
                    tail = cast(bytes, packed[v]) + question + (packed[9] if edns else packed[8])
                else:
                    v += 4  # the truncated head
                    tail = cast(bytes, packed[v]) + question + (OPT_RR if edns else b"")
                sendto(data[:2] + tail, addr)
                flow = None
                if record is not None and self.dns_class is not None:
                    head = cast(bytes, packed[v])
                    as_cached = head + packed[12] + tail[len(head) + len(question) :]
                    flow = (as_cached, self.dns_class(int.from_bytes(question[-4:-2], "big"), packed[0][1] & 0x0F))
                    record((now, addr, flow))
                if len(replies) >= self.max_replies:
                    replies.clear()  # bounded, as the index cache is: starting over is cheaper than LRU upkeep
                replies[key] = (tail, packed, query[0], flow)
            except (BlockingIOError, InterruptedError):
                return  # nothing more queued (or, from sendto, no room: that reply is dropped)
            except OSError as exc:
                if self.closed:
                    return
                log.debug("udp error %r", exc)

    def _slow(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.handle(data, addr[0], True, lambda reply: self._send(reply, addr))

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if not self.closed:
            try:
                self.sock.sendto(reply, addr)
            except OSError as exc:  # no room, or the client is gone: UDP, it asks again
                log.debug("udp send to %s failed: %r", addr[0], exc)


class _Tcp(asyncio.Protocol):
    """DNS over TCP: length-prefixed messages, several per connection, pipelining allowed.

    So that no client can hold the others out: at most `tcp_max_per_source` connections per client
    address (IPv6: per /64) and `tcp_max_connections` in all, a connection past either is closed at once;
    a query must be complete `tcp_query_timeout` after its first byte; a connection closes
    `tcp_idle_timeout` after its last complete query (bytes trickling in do not keep it open).

    One timer per connection, moved lazily: a complete query only writes the new deadline, and the timer,
    when it fires early, waits on until it. Only a query left incomplete moves the timer forward.
    """

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.source = ""
        self.counted = False
        self.deadline = 0.0  # loop time when the connection is dropped, unless a query completes first
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # loop.create_server hands a stream protocol a Transport (the stubs say BaseTransport).
        self.transport = tcp = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        server, settings = self.server, self.server.settings
        self.source = source = source_key(self.client)
        count = server._tcp_per_source.get(source, 0)
        if count >= settings.tcp_max_per_source or len(server._tcp) >= settings.tcp_max_connections:
            log.debug("tcp connection from %s refused: %d open from it, %d in all", self.client, count, len(server._tcp))
            tcp.abort()
            return
        server._tcp.add(self)
        server._tcp_per_source[source] = count + 1
        self.counted = True
        self.deadline = self.loop.time() + settings.tcp_idle_timeout
        self.timer = self.loop.call_at(self.deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.deadline > self.loop.time() + 0.001:  # a query completed since: wait on
            self.timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        self.drop()

    def drop(self) -> None:
        tcp = self.transport
        if tcp is None:
            return
        if tcp.get_write_buffer_size():
            tcp.abort()  # answers it does not read: close() would wait for them forever
        elif not tcp.is_closing():
            tcp.close()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        starts = not buffer  # these bytes begin a query
        buffer += data
        completed = False
        while len(buffer) >= 2:
            size = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2 : 2 + size])
            del buffer[: 2 + size]
            completed = True
            self._query(message)
        if completed or starts:
            if buffer:  # a query began with these bytes: it has tcp_query_timeout to arrive whole
                self.deadline = deadline = self.loop.time() + self.server.settings.tcp_query_timeout
                if self.timer is None or self.timer.when() > deadline:
                    if self.timer is not None:
                        self.timer.cancel()
                    self.timer = self.loop.call_at(deadline, self._on_timer)
            else:  # idle from now on; the timer finds the later deadline when it fires
                self.deadline = self.loop.time() + self.server.settings.tcp_idle_timeout

    def _query(self, data: bytes) -> None:
        query = plain_query(data)  # the same test as over UDP: TCP must not accept what UDP refuses
        if query is not None:
            packed: Packed | None = self.server.index.cache.get(query[0])
            if packed is not None:
                reply = reply_from(packed, data, query[1], data[2] & 1, query[2], MAX_MESSAGE)
                self._send(reply)
                server = self.server
                if server.record is not None:
                    server.record((server.clock(), "dns", self.client, "tcp", reply[2:], 0.0))
                return
        self.server.handle(data, self.client, False, self._send)

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    def pause_writing(self) -> None:
        # A client that does not read its answers gets no more of its queries read either.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.counted:
            self.counted = False
            server = self.server
            server._tcp.discard(self)
            left = server._tcp_per_source.get(self.source, 1) - 1
            if left > 0:
                server._tcp_per_source[self.source] = left
            else:
                server._tcp_per_source.pop(self.source, None)


def udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to host:port (as create_datagram_endpoint would bind it)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        try:  # room for bursts while the slow path packs an answer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_dns(settings: DnsSettings, index: DnsIndex, flows: FlowLog | None = None) -> DnsServer:
    """Listen on settings.host:port (UDP and TCP; port 0 picks a free one) and serve from `index`; record
    every answer in `flows` when given."""
    loop = asyncio.get_running_loop()
    server = DnsServer(settings, index, Upstreams([], settings.upstream_timeout), flows)
    attempts = 20 if settings.port == 0 else 1
    for attempt in range(attempts):
        udp = _Udp(server, udp_socket(settings.host, settings.port))
        port = udp.sock.getsockname()[1]
        try:
            # Same port for TCP: clients retry a truncated answer over TCP at the address they asked.
            tcp = await loop.create_server(lambda: _Tcp(server), settings.host, port, reuse_address=True)
        except OSError:
            udp.close()
            if attempt + 1 == attempts:
                raise
            continue
        break
    server.port = port
    server._udp.append(udp)
    server._tcp_server = tcp
    server.upstreams = Upstreams(
        resolve_upstreams(settings.upstreams, (settings.host, port)), settings.upstream_timeout
    )
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    server.addresses = [f"{host}:{port}/udp", f"{host}:{port}/tcp"]
    log.info(
        "serving %s on %s, upstreams %s",
        settings.zone,
        ", ".join(server.addresses),
        [f"{h}:{p}" for h, p in server.upstreams.servers] or "none",
    )
    return server
