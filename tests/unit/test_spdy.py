"""SPDY/3.1 framing (api/spdy.py): frames round trip, header blocks compress with the spec's dictionary
(one zlib stream per direction), frames arrive in pieces, and the server session answers as client-go expects."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from api import spdy


def test_the_dictionary_is_the_specs() -> None:
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert spdy.HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


ALL_FRAMES: list[spdy.Frame] = [
    spdy.SynStream(1, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}, spdy.FLAG_FIN, 0, 2),
    spdy.SynReply(1, {}),
    spdy.SynReply(3, {"x": ["a", "b"]}, spdy.FLAG_FIN),
    spdy.RstStream(5, spdy.CANCEL),
    spdy.Settings(((0, 7, 65536), (1, 4, 100)), 1),
    spdy.Ping(7),
    spdy.GoAway(9, 0),
    spdy.HeadersFrame(1, {"a": ["1"]}),
    spdy.WindowUpdate(1, 4096),
    spdy.DataFrame(1, b"hello"),
    spdy.DataFrame(3, b"", spdy.FLAG_FIN),
]


def test_every_frame_round_trips_through_one_compression_context() -> None:
    encoder, decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
    wire = b"".join(encoder.encode(f) for f in ALL_FRAMES)
    assert decoder.feed(wire) == ALL_FRAMES


def test_frames_arrive_in_any_pieces() -> None:
    encoder, decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
    wire = b"".join(encoder.encode(f) for f in ALL_FRAMES * 3)
    got: list[spdy.Frame] = []
    for i in range(len(wire)):
        got += decoder.feed(wire[i:i + 1])
    assert got == ALL_FRAMES * 3


def test_control_frame_layout_follows_the_spec() -> None:
    wire = spdy.FrameEncoder().encode(spdy.Ping(0x01020304))
    assert wire == b"\x80\x03\x00\x06" + b"\x00\x00\x00\x04" + b"\x01\x02\x03\x04"
    data = spdy.FrameEncoder().encode(spdy.DataFrame(5, b"ab", spdy.FLAG_FIN))
    assert data == b"\x00\x00\x00\x05" + b"\x01\x00\x00\x02" + b"ab"


def test_header_blocks_are_zlib_with_the_dictionary_and_sync_flushed() -> None:
    encoder = spdy.FrameEncoder()
    first = encoder.encode(spdy.SynReply(1, {"streamtype": ["data"]}))
    second = encoder.encode(spdy.SynReply(3, {"streamtype": ["data"]}))
    inflate = zlib.decompressobj(zdict=spdy.HEADER_DICTIONARY)
    block = inflate.decompress(first[12:])
    assert block == spdy.encode_header_block({"streamtype": ["data"]})
    assert struct.unpack(">I", block[:4]) == (1,)
    # the second block continues the same zlib stream (its window knows the first: it is shorter)
    assert inflate.decompress(second[12:]) == block
    assert len(second) < len(first)


def test_header_names_are_lower_case_and_values_nul_joined() -> None:
    block = spdy.encode_header_block({"StreamType": ["error"], "x": ["a", "b"]})
    assert spdy.decode_header_block(block) == {"streamtype": ["error"], "x": ["a", "b"]}
    assert b"a\x00b" in block


def test_broken_input_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameDecoder().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # SPDY/2
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameDecoder().feed(b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01garbage!")  # not zlib
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameDecoder(max_frame=10).feed(b"\x00\x00\x00\x01\x00\x00\x00\x20")


def test_session_replies_to_streams_and_pings_and_carries_data() -> None:
    async def scenario() -> None:
        sent = bytearray()

        async def write(data: bytes) -> None:
            sent.extend(data)

        session = spdy.Session(write)
        client = spdy.FrameEncoder()
        session.data_received(client.encode(spdy.SynStream(1, {"streamtype": ["error"]})))
        session.data_received(client.encode(spdy.SynStream(3, {"streamtype": ["stdout"]})) + client.encode(spdy.Ping(1)))
        error = await session.next_stream()
        stdout = await session.next_stream()
        assert error is not None and stdout is not None
        assert (error.header("streamType"), stdout.header("streamtype")) == ("error", "stdout")
        session.data_received(client.encode(spdy.DataFrame(1, b"in")) + client.encode(spdy.DataFrame(1, b"", spdy.FLAG_FIN)))
        assert await error.read() == b"in"
        assert await error.read() == b""
        assert await error.read() == b""
        await stdout.write(b"x" * (spdy.MAX_DATA_CHUNK + 1))
        await stdout.close()
        await session.close()
        frames = spdy.FrameDecoder().feed(bytes(sent))
        assert frames[:3] == [spdy.SynReply(1), spdy.SynReply(3), spdy.Ping(1)]
        data = [f for f in frames if isinstance(f, spdy.DataFrame)]
        assert [len(f.data) for f in data] == [spdy.MAX_DATA_CHUNK, 1, 0] and data[-1].fin
        assert isinstance(frames[-1], spdy.GoAway)
        assert await session.next_stream() is None

    asyncio.run(scenario())


def test_session_refuses_even_or_reused_stream_ids() -> None:
    async def scenario() -> None:
        sent = bytearray()

        async def write(data: bytes) -> None:
            sent.extend(data)

        session = spdy.Session(write)
        client = spdy.FrameEncoder()
        session.data_received(client.encode(spdy.SynStream(3)) + client.encode(spdy.SynStream(1)) + client.encode(spdy.SynStream(4)))
        await session.close()
        frames = spdy.FrameDecoder().feed(bytes(sent))
        assert frames[1:3] == [spdy.RstStream(1, spdy.PROTOCOL_ERROR), spdy.RstStream(4, spdy.PROTOCOL_ERROR)]

    asyncio.run(scenario())


def test_a_session_stops_reading_while_its_streams_are_behind() -> None:
    async def scenario() -> None:
        async def write(data: bytes) -> None:
            pass

        session = spdy.Session(write)
        calls: list[str] = []
        session.pause, session.resume = lambda: calls.append("pause"), lambda: calls.append("resume")
        client = spdy.FrameEncoder()
        session.data_received(client.encode(spdy.SynStream(1)))
        stream = await session.next_stream()
        assert stream is not None
        chunk = b"x" * 65536
        for _ in range(spdy.HIGH_WATER // len(chunk) + 1):
            session.data_received(client.encode(spdy.DataFrame(1, chunk)))
        assert calls == ["pause"]
        while calls == ["pause"]:
            assert await stream.read() == chunk
        assert calls == ["pause", "resume"] and session.unread < spdy.HIGH_WATER // 4
        await session.close()

    asyncio.run(scenario())


def test_streams_done_both_ways_are_forgotten_and_their_unread_data_stops_counting() -> None:
    async def scenario() -> None:
        sent = bytearray()

        async def write(data: bytes) -> None:
            sent.extend(data)

        session = spdy.Session(write)
        client = spdy.FrameEncoder()
        session.data_received(client.encode(spdy.SynStream(1)) + client.encode(spdy.SynStream(3)))
        one, three = await session.next_stream(), await session.next_stream()
        assert one is not None and three is not None
        # a FIN each way: forgotten, what it holds is still read but no longer holds the session's reading
        session.data_received(client.encode(spdy.DataFrame(1, b"x" * 1000, spdy.FLAG_FIN)))
        assert session.unread == 1000 and set(session.by_id) == {1, 3}
        await one.close()
        assert session.unread == 0 and set(session.by_id) == {3}
        assert await one.read() == b"x" * 1000 and await one.read() == b""
        assert session.unread == 0
        # a reset by the client: forgotten, its unread data dropped
        session.data_received(client.encode(spdy.DataFrame(3, b"y" * 5000)))
        assert session.unread == 5000
        session.data_received(client.encode(spdy.RstStream(3, spdy.CANCEL)))
        assert session.unread == 0 and session.by_id == {}
        assert await three.read() == b""
        # a reset by us: the same, and the client is told
        session.data_received(client.encode(spdy.SynStream(5)) + client.encode(spdy.DataFrame(5, b"z" * 10)))
        five = await session.next_stream()
        assert five is not None and session.unread == 10
        await five.reset()
        assert session.unread == 0 and session.by_id == {}
        await session.close()
        assert spdy.RstStream(5, spdy.CANCEL) in spdy.FrameDecoder().feed(bytes(sent))

    asyncio.run(scenario())


def test_a_thousand_short_port_forwards_over_one_session_leave_no_streams_behind() -> None:
    """kubectl's way (client-go portforward.go): per local connection an error stream it closes at once and a
    data stream; once the pod's side ended it resets the data stream. Some send on after the pod hung up."""
    from api.portforward import PodAddress, _serve_spdy

    async def scenario() -> None:
        async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"echo:" + await reader.read(100))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(pod, "127.0.0.1", 0)
        port = str(server.sockets[0].getsockname()[1])
        decoder = spdy.FrameDecoder()
        received: dict[int, bytes] = {}
        finished: dict[int, asyncio.Event] = {}

        async def write(data: bytes) -> None:
            for frame in decoder.feed(data):
                if isinstance(frame, spdy.DataFrame):
                    received[frame.stream_id] = received.get(frame.stream_id, b"") + frame.data
                    if frame.fin:
                        finished.setdefault(frame.stream_id, asyncio.Event()).set()

        session = spdy.Session(write)
        serving = asyncio.ensure_future(_serve_spdy(session, PodAddress("web", "uid", "127.0.0.1")))
        client = spdy.FrameEncoder()
        for n in range(1000):
            error_id, data_id = 4 * n + 1, 4 * n + 3
            headers = {"port": [port], "requestid": [str(n)]}
            session.data_received(
                client.encode(spdy.SynStream(error_id, {**headers, "streamtype": ["error"]}))
                + client.encode(spdy.DataFrame(error_id, b"", spdy.FLAG_FIN))
                + client.encode(spdy.SynStream(data_id, {**headers, "streamtype": ["data"]}))
                + client.encode(spdy.DataFrame(data_id, f"hi {n}".encode()))
            )
            await asyncio.wait_for(finished.setdefault(data_id, asyncio.Event()).wait(), 10)
            assert received[data_id] == f"echo:hi {n}".encode()
            if n % 3 == 0:  # more data after the pod hung up, that nobody will read
                session.data_received(client.encode(spdy.DataFrame(data_id, b"late" * 1000)))
            if n % 2 == 0:
                session.data_received(client.encode(spdy.DataFrame(data_id, b"", spdy.FLAG_FIN)))
            session.data_received(client.encode(spdy.RstStream(data_id, spdy.CANCEL)))
            await asyncio.wait_for(finished.setdefault(error_id, asyncio.Event()).wait(), 10)
        for _ in range(100):
            if not session.by_id:
                break
            await asyncio.sleep(0.01)
        assert session.by_id == {} and session.unread == 0 and not session.paused
        session.eof_received()
        await asyncio.wait_for(serving, 10)
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
