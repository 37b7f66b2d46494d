"""The WebSocket channel protocols of the streaming subresources (pods/exec, attach, portforward), sans-I/O.

`channel.k8s.io` and its versions frame every binary message as one byte naming the channel, then the
data. Exec and attach use stdin 0, stdout 1, stderr 2, error 3 (how the command ended) and resize 4
(`{"Width":..,"Height":..}`); `v5.channel.k8s.io` adds channel 255, whose message names a channel the client
will not write to again (kubectl closes stdin so). What the error channel carries depends on the version:
v4 and v5 a `Status` with the exit code (kubectl exits with it), older versions only a message on failure.

Port-forward over WebSocket (`v4.channel.k8s.io`, the Python client's `portforward()`) gives each port of
the `ports` query two channels, data 2i and error 2i+1; the server's first message on each names the port,
2 bytes little-endian. kubectl instead tunnels SPDY in binary messages (`SPDY/3.1+portforward.k8s.io`,
api/spdy.py), or upgrades to SPDY directly; the SPDY streams carry the same roles in headers.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

from aiohttp import WSMessage, WSMsgType

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255  # v5: "the client closed this channel"

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4, V3, V2, V1)  # WebSocket subprotocols, preferred first
# SPDY exec/attach (X-Stream-Protocol-Version): the same names; v5 adds nothing over SPDY (a stream has its FIN)
SPDY_EXEC_PROTOCOLS = (V5, V4, V3, V2, V1)
PORT_FORWARD = "portforward.k8s.io"  # SPDY port-forward's X-Stream-Protocol-Version
PORT_FORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"  # kubectl's SPDY tunneled in a WebSocket
PORT_FORWARD_PROTOCOLS = (PORT_FORWARD_TUNNEL, V4, V1)  # WebSocket subprotocols for pods/portforward


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes((channel,)) + data


def unframe(message: bytes) -> tuple[int, bytes]:
    """(channel, data) of a binary message; an empty message is channel -1 (ignored by callers)."""
    if not message:
        return -1, b""
    return message[0], message[1:]


def message_bytes(message: WSMessage) -> bytes | None:
    """A WebSocket message's bytes: binary as is, text as UTF-8 (the Python client sends str input as text
    messages, which the API server reads alike); None for control messages."""
    if message.type == WSMsgType.BINARY:
        return bytes(message.data)
    if message.type == WSMsgType.TEXT:
        return str(message.data).encode()
    return None


def negotiate(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """The first protocol the client offered that the server speaks (as apimachinery's httpstream picks)."""
    served = set(supported)
    for entry in offered:
        for name in entry.split(","):
            if name.strip() in served:
                return name.strip()
    return None


def version_of(protocol: str | None) -> int:
    """5 for v5.channel.k8s.io ... 1 for channel.k8s.io (and no protocol at all)."""
    if protocol and protocol.startswith("v") and protocol[1:2].isdigit():
        return int(protocol[1])
    return 1


# -- how the command ended (the error channel or stream) ------------------------------------------------

def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    """The kubelet's v4 Status for a finished command: Success for 0; else NonZeroExitCode with the code
    as the ExitCode cause, which kubectl turns into its own exit code."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {_go_list(argv)}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def status_bytes(status: dict[str, Any], version: int) -> bytes:
    """What the error channel carries: the Status as JSON for v4+, only a failure's message before."""
    if version >= 4:
        return json.dumps(status, separators=(",", ":")).encode()
    return b"" if status.get("status") == "Success" else str(status.get("message", "")).encode()


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


# -- resize ----------------------------------------------------------------------------------------------

class ResizeDecoder:
    """Terminal sizes from the resize channel or stream: JSON objects one after another, in any pieces."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """(width, height) of each complete size received."""
        self._buffer += data.decode("utf-8", "replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return sizes
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                self._buffer = text if len(text) <= 4096 else ""  # the rest of an object may follow; garbage may not grow
                return sizes
            self._buffer = text[end:]
            if isinstance(value, dict):
                width, height = value.get("Width", 0), value.get("Height", 0)
                if isinstance(width, int) and isinstance(height, int) and 0 <= width < 65536 and 0 <= height < 65536:
                    sizes.append((width, height))


# -- port-forward over WebSocket -------------------------------------------------------------------------

def port_prefix(port: int) -> bytes:
    """The first message's payload on each of a port's channels: the port, 2 bytes little-endian."""
    return struct.pack("<H", port)


def parse_ports(values: Iterable[str]) -> list[int]:
    """The `ports` query (repeated or comma-separated) as port numbers; ValueError naming the bad one."""
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or not 0 < int(part) < 65536:
                raise ValueError(f'invalid port "{part}"')
            ports.append(int(part))
    return ports
