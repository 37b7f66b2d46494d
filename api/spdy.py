"""SPDY/3.1, as kubectl and client-go speak it to the API server: the framing (sans-I/O) and a small server
session that hands out the streams a client opens.

kubectl 1.32 falls back to SPDY for exec/attach when a WebSocket upgrade is refused, and speaks SPDY for
port-forward (tunneled in WebSocket binary messages, `SPDY/3.1+portforward.k8s.io`, or after a plain
`Upgrade: SPDY/3.1`). No maintained Python library speaks SPDY/3.1 (browsers dropped it for HTTP/2), so the
framing is written here, after the SPDY/3.1 draft (draft-mbelshe-httpbis-spdy-00 plus the 3.1 session
window): control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE,
and data frames. Header blocks are zlib-compressed with the spec's fixed dictionary, one zlib stream per
direction for the whole connection, each block ending with a sync flush.

client-go's SPDY stack (moby/spdystream) does no flow control of its own, so the session ignores windows
(it still parses WINDOW_UPDATE) and answers PINGs, which kubectl sends to keep port-forwards alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

log = logging.getLogger("emulator.api.spdy")

SPDY_VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6

MAX_FRAME = 1 << 24  # the length field has 24 bits
MAX_DATA_CHUNK = 32 * 1024  # what the session puts in one data frame
MAX_HEADER_BLOCK = 256 * 1024  # decompressed; kubectl's are a few dozen bytes
STREAM_PROTOCOL_HEADER = "X-Stream-Protocol-Version"
HIGH_WATER = 4 * 1024 * 1024  # unread bytes a session holds before it stops reading its connection

# The SPDY/3 header compression dictionary, from the SPDY/3 specification (section 2.6.10.1): data, 1423 bytes.
HEADER_DICTIONARY = b"".join([
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04p'
    b'ost\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05'
    b'trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccep'
    b't-charset\x00\x00\x00\x0faccept-enco'
    b'ding\x00\x00\x00\x0faccept-language\x00'
    b'\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00'
    b'\x00\x00\x05allow\x00\x00\x00\rauthorizatio'
    b'n\x00\x00\x00\rcache-control\x00\x00\x00\nco'
    b'nnection\x00\x00\x00\x0ccontent-base'
    b'\x00\x00\x00\x10content-encoding\x00\x00\x00\x10'
    b'content-language\x00\x00\x00\x0econt'
    b'ent-length\x00\x00\x00\x10content-lo'
    b'cation\x00\x00\x00\x0bcontent-md5\x00\x00\x00'
    b'\rcontent-range\x00\x00\x00\x0cconten'
    b't-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00'
    b'\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04f'
    b'rom\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00'
    b'\x00\x00\x11if-modified-since\x00\x00\x00\r'
    b'if-none-match\x00\x00\x00\x08if-rang'
    b'e\x00\x00\x00\x13if-unmodified-since'
    b'\x00\x00\x00\rlast-modified\x00\x00\x00\x08loc'
    b'ation\x00\x00\x00\x0cmax-forwards\x00\x00\x00'
    b'\x06pragma\x00\x00\x00\x12proxy-authent'
    b'icate\x00\x00\x00\x13proxy-authoriza'
    b'tion\x00\x00\x00\x05range\x00\x00\x00\x07referer'
    b'\x00\x00\x00\x0bretry-after\x00\x00\x00\x06serve'
    b'r\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11tr'
    b'ansfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary'
    b'\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10ww'
    b'w-authenticate\x00\x00\x00\x06method'
    b'\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200'
    b' OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1'
    b'.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\ns'
    b'et-cookie\x00\x00\x00\nkeep-alive\x00'
    b'\x00\x00\x06origin100101201202205'
    b'206300302303304305306307'
    b'402405406407408409410411'
    b'412413414415416417502504'
    b'505203 Non-Authoritative'
    b' Information204 No Conte'
    b'nt301 Moved Permanently4'
    b'00 Bad Request401 Unauth'
    b'orized403 Forbidden404 N'
    b'ot Found500 Internal Ser'
    b'ver Error501 Not Impleme'
    b'nted503 Service Unavaila'
    b'bleJan Feb Mar Apr May J'
    b'un Jul Aug Sept Oct Nov '
    b'Dec 00:00:00 Mon, Tue, W'
    b'ed, Thu, Fri, Sat, Sun, '
    b'GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/g'
    b'if,application/xml,appli'
    b'cation/xhtml+xml,text/pl'
    b'ain,text/javascript,publ'
    b'icprivatemax-age=gzip,de'
    b'flate,sdchcharset=utf-8c'
    b'harset=iso-8859-1,utf-,*'
    b',enq=0.'
])


class ProtocolError(Exception):
    """The peer broke the framing: the connection cannot go on."""


# -- frames -------------------------------------------------------------------------------------------------

Headers = dict[str, list[str]]  # lower-case name -> values (SPDY joins several values with NUL)


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0
    associated_to: int = 0
    priority: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_stream_id: int
    status: int = 0


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: a count, then length-prefixed names and NUL-joined values."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        raw_name, raw_value = name.lower().encode(), b"\x00".join(v.encode() for v in values)
        out += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + size].decode()
            pos += 4 + size
            (size,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + size].decode()
            pos += 4 + size
            if pos > len(block):
                raise ProtocolError("header block shorter than its lengths")
            headers.setdefault(name.lower(), []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad header block: {exc}") from exc
    return headers


class FrameEncoder:
    """Frames to bytes; owns the sending direction's header compressor."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)

    def _headers(self, headers: Headers) -> bytes:
        return self._zlib.compress(encode_header_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF, (frame.flags << 24) | len(frame.data)) + frame.data
        flags = 0
        if isinstance(frame, SynStream):
            kind, flags = SYN_STREAM, frame.flags
            body = struct.pack(">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, 0) + self._headers(frame.headers)
        elif isinstance(frame, SynReply):
            kind, flags = SYN_REPLY, frame.flags
            body = struct.pack(">I", frame.stream_id) + self._headers(frame.headers)
        elif isinstance(frame, RstStream):
            kind, body = RST_STREAM, struct.pack(">II", frame.stream_id, frame.status)
        elif isinstance(frame, Settings):
            kind, flags = SETTINGS, frame.flags
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | i, v) for f, i, v in frame.entries
            )
        elif isinstance(frame, Ping):
            kind, body = PING, struct.pack(">I", frame.ping_id)
        elif isinstance(frame, GoAway):
            kind, body = GOAWAY, struct.pack(">II", frame.last_stream_id, frame.status)
        elif isinstance(frame, HeadersFrame):
            kind, flags = HEADERS, frame.flags
            body = struct.pack(">I", frame.stream_id) + self._headers(frame.headers)
        else:
            kind, body = WINDOW_UPDATE, struct.pack(">II", frame.stream_id, frame.delta)
        return struct.pack(">HHI", 0x8000 | SPDY_VERSION, kind, (flags << 24) | len(body)) + body


class FrameDecoder:
    """Bytes to frames, as they arrive in pieces; owns the receiving direction's header decompressor."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._zlib = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, flags_length = struct.unpack_from(">II", self._buffer, 0)
            length, flags = flags_length & 0xFFFFFF, flags_length >> 24
            if length > self.max_frame:
                raise ProtocolError(f"frame of {length} bytes is over the limit of {self.max_frame}")
            if len(self._buffer) < 8 + length:
                break
            body = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            if first & 0x80000000:
                frame = self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, body)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, body, flags))
        return frames

    def _headers(self, compressed: bytes) -> Headers:
        try:
            block = self._zlib.decompress(compressed, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not decompress: {exc}") from exc
        if self._zlib.unconsumed_tail:
            raise ProtocolError(f"header block over {MAX_HEADER_BLOCK} bytes")
        return decode_header_block(block)

    def _control(self, version: int, kind: int, flags: int, body: bytes) -> Frame | None:
        if version != SPDY_VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported (only {SPDY_VERSION})")
        try:
            if kind == SYN_STREAM:
                stream_id, associated, priority, _slot = struct.unpack_from(">IIBB", body, 0)
                return SynStream(stream_id & 0x7FFFFFFF, self._headers(body[10:]), flags, associated & 0x7FFFFFFF, priority >> 5)
            if kind == SYN_REPLY:
                (stream_id,) = struct.unpack_from(">I", body, 0)
                return SynReply(stream_id & 0x7FFFFFFF, self._headers(body[4:]), flags)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", body, 0)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", body, 0)
                entries = []
                for n in range(count):
                    id_flags, value = struct.unpack_from(">II", body, 4 + 8 * n)
                    entries.append((id_flags >> 24, id_flags & 0xFFFFFF, value))
                return Settings(tuple(entries), flags)
            if kind == PING:
                return Ping(struct.unpack_from(">I", body, 0)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", body, 0) if len(body) >= 8 else (*struct.unpack_from(">I", body, 0), 0)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == HEADERS:
                (stream_id,) = struct.unpack_from(">I", body, 0)
                return HeadersFrame(stream_id & 0x7FFFFFFF, self._headers(body[4:]), flags)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", body, 0)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise ProtocolError(f"control frame {kind} too short") from exc
        return None  # unknown control frames are ignored, as the spec says


# -- a server session ---------------------------------------------------------------------------------------

class Stream:
    """One stream a client opened: its headers, what it sent (read until b"" at its FIN), what we send.

    Once both sides are done (FIN each way, or a reset either way) the session forgets it: its id leaves
    `by_id` and what it still holds unread no longer counts toward the session's pause (a reset discards it;
    after two FINs the consumer may still read it)."""

    def __init__(self, session: Session, stream_id: int, headers: Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.unread = 0  # bytes received and not yet read
        self.counted = True  # whether `unread` is part of the session's; False once forgotten

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else default

    def _received(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return
        if data:
            self._chunks.put_nowait(data)
            self.unread += len(data)
            if self.counted:
                self.session._buffered(len(data))
        if fin:
            self.remote_closed = True
            self._chunks.put_nowait(b"")
            self._settle()

    def _discard(self) -> None:
        """A reset: nothing more arrives, and what arrived is dropped (readers get b"")."""
        while not self._chunks.empty():
            self._chunks.get_nowait()
        if self.counted:
            self.session._buffered(-self.unread)
        self.unread = 0
        self.remote_closed = self.local_closed = True
        self._chunks.put_nowait(b"")
        self._settle()

    def _settle(self) -> None:
        if self.remote_closed and self.local_closed:
            self.session._forget(self)

    async def read(self) -> bytes:
        """The next piece of what the client sent on this stream; b"" once it closed its side."""
        if self._chunks.empty() and self.remote_closed:
            return b""
        data = await self._chunks.get()
        self.unread -= len(data)
        if self.counted:
            self.session._buffered(-len(data))
        return data

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_DATA_CHUNK):
            if self.local_closed:
                return
            await self.session.send(DataFrame(self.id, data[start:start + MAX_DATA_CHUNK]))

    async def close(self) -> None:
        """Our side is done (a data frame with FIN)."""
        if not self.local_closed:
            self.local_closed = True
            self._settle()
            await self.session.send(DataFrame(self.id, b"", FLAG_FIN))

    async def reset(self, status: int = CANCEL) -> None:
        """Abandon the stream both ways (RST_STREAM, unless both sides were already done)."""
        done = self.local_closed and self.remote_closed
        self._discard()
        if not done:
            await self.session.send(RstStream(self.id, status))


class Session:
    """The server end of a SPDY connection. Feed it the bytes that arrive (`data_received`, `eof_received`);
    it writes through `write`. Every stream a client opens is answered with SYN_REPLY and put on `streams`."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        self._write = write
        # received but not yet read by the streams' consumers: past HIGH_WATER the connection stops being read
        # (client-go sends without windows), until they catch up; `pause`/`resume` are the connection's
        self.unread = 0
        self.paused = False
        self.pause: Callable[[], None] = lambda: None
        self.resume: Callable[[], None] = lambda: None
        self._decoder = FrameDecoder()
        self._encoder = FrameEncoder()
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
        self.streams: asyncio.Queue[Stream | None] = asyncio.Queue()
        self.by_id: dict[int, Stream] = {}
        self.closed = False
        self.last_stream_id = 0
        self.reader: asyncio.Future[None] | None = None  # what feeds the session, when it is a task
        self.gone = asyncio.Event()  # set when the connection ended (the client went away, or we closed it)
        self._writer = asyncio.ensure_future(self._write_loop())

    def _forget(self, stream: Stream) -> None:
        """Both sides of `stream` are done: its id is free and its unread bytes stop counting."""
        if self.by_id.get(stream.id) is stream:
            del self.by_id[stream.id]
        if stream.counted:
            stream.counted = False
            self._buffered(-stream.unread)

    def _buffered(self, change: int) -> None:
        self.unread += change
        if not self.paused and self.unread > HIGH_WATER:
            self.paused = True
            self.pause()
        elif self.paused and self.unread < HIGH_WATER // 4:
            self.paused = False
            self.resume()

    async def _write_loop(self) -> None:
        try:
            while (chunk := await self._outgoing.get()) is not None:
                await self._write(chunk)
        except (ConnectionError, OSError, RuntimeError) as exc:  # the peer went away
            log.debug("spdy write failed: %s", exc)
            self._shutdown()

    async def send(self, frame: Frame) -> None:
        if self.closed:
            return
        await self._outgoing.put(self._encoder.encode(frame))

    def _send_now(self, frame: Frame) -> None:
        if not self.closed:
            with contextlib.suppress(asyncio.QueueFull):
                self._outgoing.put_nowait(self._encoder.encode(frame))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            log.info("spdy: %s", exc)
            self._send_now(GoAway(self.last_stream_id, PROTOCOL_ERROR))
            self._shutdown()
            return
        for frame in frames:
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self.by_id.get(frame.stream_id)
            if stream is None:
                self._send_now(RstStream(frame.stream_id, INVALID_STREAM))
            else:
                stream._received(frame.data, frame.fin)
        elif isinstance(frame, SynStream):
            if frame.stream_id % 2 == 0 or frame.stream_id <= self.last_stream_id:
                self._send_now(RstStream(frame.stream_id, PROTOCOL_ERROR))
                return
            self.last_stream_id = frame.stream_id
            stream = Stream(self, frame.stream_id, frame.headers)
            self.by_id[frame.stream_id] = stream
            # the reply must not wait behind queued data: client-go blocks creating the next stream until it comes
            self._send_now(SynReply(frame.stream_id))
            if frame.fin:
                stream._received(b"", True)
            self.streams.put_nowait(stream)
        elif isinstance(frame, RstStream):
            stream = self.by_id.get(frame.stream_id)
            if stream is not None:
                stream._discard()
        elif isinstance(frame, Ping):
            self._send_now(frame)  # the same id back
        elif isinstance(frame, GoAway):
            self._shutdown()
        elif isinstance(frame, HeadersFrame):
            stream = self.by_id.get(frame.stream_id)
            if stream is not None:
                for name, values in frame.headers.items():
                    stream.headers.setdefault(name, []).extend(values)
                if frame.flags & FLAG_FIN:
                    stream._received(b"", True)
        # SETTINGS, WINDOW_UPDATE and SYN_REPLY (we open no streams) need nothing

    def eof_received(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.gone.set()
        for stream in list(self.by_id.values()):
            stream._received(b"", True)
        self.streams.put_nowait(None)

    async def close(self) -> None:
        """Say goodbye (GOAWAY) and let the writer finish what is queued."""
        if not self.closed:
            await self.send(GoAway(self.last_stream_id))
        self._shutdown()
        with contextlib.suppress(asyncio.QueueFull):
            self._outgoing.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._writer), 5)
        self._writer.cancel()
        if self.reader is not None:
            self.reader.cancel()

    async def next_stream(self) -> Stream | None:
        """The next stream the client opens; None once the connection is gone."""
        if self.closed and self.streams.empty():
            return None
        stream = await self.streams.get()
        if stream is None:
            self.streams.put_nowait(None)  # for every later caller too
        return stream


# -- the two ways a SPDY connection reaches the API (aiohttp) -----------------------------------------------

class _Feed:
    """Stands where aiohttp puts a WebSocket reader after an upgrade: the connection's bytes go to the session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.session.data_received(data)
        return False, b""

    def feed_eof(self) -> None:
        self.session.eof_received()


async def upgrade(request: web.Request, protocol: str) -> tuple[Session, web.StreamResponse]:
    """Answer `Upgrade: SPDY/3.1` (101, with the negotiated X-Stream-Protocol-Version) and serve SPDY on the
    connection. aiohttp switches protocols only for websocket and tcp, so the session takes over the bytes
    the same way aiohttp's WebSocket support does (the protocol's payload parser)."""
    response = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", STREAM_PROTOCOL_HEADER: protocol,
    })
    response._length_check = False  # as aiohttp's WebSocketResponse: the body is the new protocol, unframed
    response.force_close()
    await response.prepare(request)

    async def write(data: bytes) -> None:
        await response.write(data)

    session = Session(write)
    transport = request.transport
    if transport is not None:
        session.pause, session.resume = transport.pause_reading, transport.resume_reading
    request.protocol.set_parser(_Feed(session))  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    return session, response


async def tunnel(request: web.Request, protocols: tuple[str, ...]) -> tuple[Session | None, web.WebSocketResponse]:
    """kubectl's SPDY inside WebSocket binary messages: the session, once the client chose the tunnel
    protocol (None when it chose another of `protocols`: the caller speaks that one on the WebSocket)."""
    ws = web.WebSocketResponse(protocols=protocols, max_msg_size=MAX_FRAME + 8)
    await ws.prepare(request)
    if ws.ws_protocol is None or not ws.ws_protocol.startswith("SPDY/3.1"):
        return None, ws
    session = Session(ws.send_bytes)
    readable = asyncio.Event()
    readable.set()
    session.pause, session.resume = readable.clear, readable.set

    async def pump() -> None:
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    session.data_received(message.data)
                await readable.wait()
        finally:
            session.eof_received()

    session.reader = asyncio.ensure_future(pump())
    return session, ws
