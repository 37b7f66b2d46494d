"""The WebSocket channel protocols (api/channels.py): framing, negotiation, the error channel's Status,
resize messages and port-forward's port prefix."""

from __future__ import annotations

import json

import pytest

from api import channels


def test_a_message_is_its_channel_byte_then_data() -> None:
    assert channels.frame(channels.STDOUT, b"hi") == b"\x01hi"
    assert channels.unframe(b"\x00abc") == (channels.STDIN, b"abc")
    assert channels.unframe(b"\xff\x00") == (channels.CLOSE, b"\x00")
    assert channels.unframe(b"") == (-1, b"")


def test_negotiation_takes_the_clients_first_supported_protocol() -> None:
    assert channels.negotiate(["v5.channel.k8s.io,v4.channel.k8s.io"], channels.EXEC_PROTOCOLS) == channels.V5
    assert channels.negotiate(["v9.channel.k8s.io", "v4.channel.k8s.io"], channels.EXEC_PROTOCOLS) == channels.V4
    assert channels.negotiate(["nope"], channels.EXEC_PROTOCOLS) is None
    assert [channels.version_of(p) for p in (channels.V5, channels.V4, channels.V2, channels.V1, None)] == [5, 4, 2, 1, 1]


def test_exit_codes_are_statuses_kubectl_reads() -> None:
    assert channels.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    failed = channels.exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert json.loads(channels.status_bytes(failed, 4)) == failed
    assert channels.status_bytes(channels.exit_status(0, ["true"]), 2) == b""
    assert channels.status_bytes(failed, 3).startswith(b"command terminated with non-zero exit code")


def test_resize_messages_decode_in_pieces() -> None:
    decoder = channels.ResizeDecoder()
    assert decoder.feed(b'{"Width":80,') == []
    assert decoder.feed(b'"Height":24}{"Width":100,"Height":40}\n') == [(80, 24), (100, 40)]
    assert decoder.feed(b'{"Width":-1,"Height":5}') == []
    assert decoder.feed(b'[1]{"Width":1,"Height":2}') == [(1, 2)]


def test_port_forward_ports_and_prefix() -> None:
    assert channels.port_prefix(8080) == b"\x90\x1f"
    assert channels.parse_ports(["8080,9090", "80"]) == [8080, 9090, 80]
    with pytest.raises(ValueError, match='invalid port "0"'):
        channels.parse_ports(["0"])
    with pytest.raises(ValueError):
        channels.parse_ports(["http"])
