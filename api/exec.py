"""pods/exec and pods/attach: a command in a running container, over the protocols kubectl 1.32 and the
Python client speak. The kubelet (emulator/kubelet/) says which container runs and in what context; the
command runs as an `ExecSession` (emulator/kubelet/execsession.py); this module moves bytes between it and
the client, and reports how the command ended as the API server does.

    GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec?command=sh&command=-c&command=...&container=c
             &stdin=true&stdout=true&stderr=true&tty=true

- WebSocket (`Upgrade: websocket`): channel protocols `v5.channel.k8s.io` (kubectl's default) down to
  `channel.k8s.io` (api/channels.py): stdin 0, stdout 1, stderr 2, error 3, resize 4, v5's close 255.
- SPDY/3.1 (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: v4.channel.k8s.io`, ...), kubectl's fallback:
  the client opens one stream per role (header `streamType`: error, stdin, stdout, stderr, resize).

Either way the error channel ends with the command's exit as a Status (v4+), which `kubectl exec` exits
with. Access is `create` on `pods/exec` (api/requestinfo.py: also for a WebSocket's GET, as the API server).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from api import channels, spdy
from api.http import flag
from emulator import errors
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.execsession import ExecError, ExecSession
from emulator.kubelet.logs import LogOptions, log_path, read_log
from emulator.kubelet.process import ContainerProcess

log = logging.getLogger("emulator.api.exec")

Send = Callable[[int, bytes], Awaitable[None]]

STREAMS_TIMEOUT = 30.0  # seconds a SPDY client has to open the streams it asked for (the kubelet allows 30 s)
STREAM_ROLES = {"stdin": channels.STDIN, "stdout": channels.STDOUT, "stderr": channels.STDERR,
                "error": channels.ERROR, "resize": channels.RESIZE}  # fmt: skip


class KubeletAccess(Protocol):
    """What this module needs of the kubelet (emulator/kubelet/kubelet.py's `Kubelet` is one)."""

    def container_context(self, namespace: str, pod: str, container: str | None) -> ContainerContext: ...
    def restart_count(self, namespace: str, pod: str, container: str) -> int: ...
    def running_pids(self) -> dict[tuple[str, str, str], int]: ...
    def attach_target(self, namespace: str, pod: str, container: str) -> tuple[ContainerProcess | None, dict[str, Any], bool]: ...


class Session(Protocol):
    """A command the client is connected to: ExecSession (exec) or AttachSession (attach)."""

    async def read_stdout(self) -> bytes: ...
    async def read_stderr(self) -> bytes: ...
    async def write_stdin(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int: ...
    def finished(self) -> bool: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...


def routes(kubelet: KubeletAccess | None) -> list[web.RouteDef]:
    """`kubelet`: the emulator's kubelet, or None when it runs no containers."""
    handler = ExecHandler(kubelet)
    out: list[web.RouteDef] = []
    for sub, answer in (("exec", handler.exec), ("attach", handler.attach)):
        path = f"/api/v1/namespaces/{{namespace}}/pods/{{name}}/{sub}"
        out += [web.get(path, answer, allow_head=False), web.post(path, answer)]
    return out


@dataclass(frozen=True)
class ExecOptions:
    command: list[str]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def of(cls, request: web.Request, command_required: bool) -> ExecOptions:
        options = cls(
            list(request.query.getall("command", [])), request.query.get("container") or None,
            flag(request, "stdin"), flag(request, "stdout"), flag(request, "stderr"), flag(request, "tty"),
        )
        if command_required and not options.command:
            raise errors.bad_request("you must specify at least 1 command")
        if not (options.stdin or options.stdout or options.stderr):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        return options


def wants_upgrade(request: web.Request, to: str) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == to.lower()


Start = Callable[[ContainerContext, "ExecOptions", "tuple[int, int] | None"], Awaitable[Session]]


class ExecHandler:
    def __init__(self, kubelet: KubeletAccess | None) -> None:
        self.kubelet = kubelet

    def _context(self, request: web.Request, container: str | None) -> tuple[KubeletAccess, ContainerContext]:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if self.kubelet is None:
            raise errors.bad_request(
                f'container not found ("{container or name}"): the emulator runs no containers; '
                "start it with `emulator serve --kubelet` to run pods and exec into them"
            )
        return self.kubelet, self.kubelet.container_context(namespace, name, container)

    async def exec(self, request: web.Request) -> web.StreamResponse:
        options = ExecOptions.of(request, command_required=True)
        _, ctx = self._context(request, options.container)

        async def start(ctx: ContainerContext, options: ExecOptions, size: tuple[int, int] | None) -> Session:
            return await ExecSession.start(ctx, options.command, stdin=options.stdin, tty=options.tty, size=size)

        return await self._serve(request, ctx, options, start)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        """The container's output from now on, until it ends, and its stdin and terminal when its spec has
        them (`stdin`, `tty`: what `kubectl run -it` creates). Without them what the client types goes
        nowhere, and the output is not a terminal's."""
        options = ExecOptions.of(request, command_required=False)
        kubelet, ctx = self._context(request, options.container)
        target = kubelet.attach_target(ctx.namespace, ctx.pod, ctx.container)
        if not target[1].get("tty"):
            options = dataclasses.replace(options, tty=False)

        async def start(ctx: ContainerContext, options: ExecOptions, size: tuple[int, int] | None) -> Session:
            return AttachSession(kubelet, ctx, target, options, size)

        return await self._serve(request, ctx, options, start)

    async def _serve(self, request: web.Request, ctx: ContainerContext, options: ExecOptions, start: Start) -> web.StreamResponse:
        if wants_upgrade(request, "websocket"):
            return await self._websocket(request, ctx, options, start)
        if wants_upgrade(request, "SPDY/3.1"):
            return await self._spdy(request, ctx, options, start)
        raise errors.bad_request("Upgrade request required")

    # -- WebSocket ---------------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request, ctx: ContainerContext, options: ExecOptions, start: Start) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=channels.EXEC_PROTOCOLS)
        await ws.prepare(request)
        version = channels.version_of(ws.ws_protocol)

        async def send(channel: int, data: bytes) -> None:
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(channels.frame(channel, data))

        # the first message tells the client the streams are set up (apimachinery's wsstream does so)
        await send(channels.STDOUT if options.stdout else channels.STDERR if options.stderr else channels.ERROR, b"")
        resizes = channels.ResizeDecoder()
        early: list[bytes] = []  # what the client sent before the command started
        size = await _first_size_ws(ws, resizes, early) if options.tty else None
        try:
            session = await start(ctx, options, size)
        except ExecError as exc:
            await send(channels.ERROR, channels.status_bytes(_start_failure(exc), version))
            await ws.close()
            return ws

        async def received(message: bytes) -> None:
            channel, data = channels.unframe(message)
            if channel == channels.STDIN and options.stdin:
                await session.write_stdin(data)
            elif channel == channels.RESIZE:
                for width, height in resizes.feed(data):
                    session.resize(width, height)
            elif channel == channels.CLOSE and version >= 5 and data[:1] == bytes((channels.STDIN,)):
                session.close_stdin()

        async def client_input() -> None:
            for sent in early:
                await received(sent)
            async for message in ws:
                if (data := channels.message_bytes(message)) is not None:
                    await received(data)

        reader = asyncio.ensure_future(client_input())
        reader.add_done_callback(lambda _: session.kill() if not session.finished() else None)
        code = await _run(session, send, options)
        await send(channels.ERROR, channels.status_bytes(channels.exit_status(code, options.command), version))
        reader.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
        return ws

    # -- SPDY --------------------------------------------------------------------------------------------

    async def _spdy(self, request: web.Request, ctx: ContainerContext, options: ExecOptions, start: Start) -> web.StreamResponse:
        offered = request.headers.getall(spdy.STREAM_PROTOCOL_HEADER, [])
        protocol = channels.negotiate(offered, channels.SPDY_EXEC_PROTOCOLS)
        if protocol is None:
            raise errors.forbidden_request(
                f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server supports {list(channels.SPDY_EXEC_PROTOCOLS)}"
            )
        version = channels.version_of(protocol)
        session, response = await spdy.upgrade(request, protocol)
        try:
            streams = await _spdy_streams(session, options, version)
            if streams is not None:
                await self._spdy_exec(session, ctx, options, version, streams, start)
        finally:
            await session.close()
            if request.transport is not None:
                request.transport.close()
        return response

    async def _spdy_exec(
        self, connection: spdy.Session, ctx: ContainerContext, options: ExecOptions, version: int,
        streams: dict[int, spdy.Stream], start: Start,
    ) -> None:
        error = streams[channels.ERROR]
        resizes = channels.ResizeDecoder()
        size = await _first_size_spdy(streams[channels.RESIZE], resizes) if channels.RESIZE in streams else None
        try:
            session = await start(ctx, options, size)
        except ExecError as exc:
            await error.write(channels.status_bytes(_start_failure(exc), version))
            await error.close()
            return

        async def send(channel: int, data: bytes) -> None:
            stream = streams.get(channel)
            if stream is not None and data:
                await stream.write(data)

        inputs = [asyncio.ensure_future(_spdy_stdin(streams[channels.STDIN], session))] if channels.STDIN in streams else []
        if channels.RESIZE in streams:
            inputs.append(asyncio.ensure_future(_spdy_resize(streams[channels.RESIZE], session, resizes)))
        gone = asyncio.ensure_future(connection.gone.wait())
        gone.add_done_callback(lambda _: session.kill() if not session.finished() else None)
        try:
            code = await _run(session, send, options)
            for channel in (channels.STDOUT, channels.STDERR):
                if channel in streams:
                    await streams[channel].close()
            await error.write(channels.status_bytes(channels.exit_status(code, options.command), version))
            await error.close()
        finally:
            gone.cancel()
            for task in inputs:
                task.cancel()


def _start_failure(exc: ExecError) -> dict[str, object]:
    return channels.failure_status(
        f"Internal error occurred: error executing command in container: failed to exec in container: {exc}"
    )


async def _run(session: Session, send: Send, options: ExecOptions) -> int:
    """Pump the command's output to the client until it ends; its exit code."""

    async def pump(read: Callable[[], Awaitable[bytes]], channel: int, wanted: bool) -> None:
        while data := await read():
            if wanted:
                await send(channel, data)

    try:
        await asyncio.gather(
            pump(session.read_stdout, channels.STDOUT, options.stdout),
            pump(session.read_stderr, channels.STDERR, options.stderr),
        )
        return await session.wait()
    finally:
        session.kill()  # what the command left behind in its group (and all of it, if we were cancelled)
        session.close()


async def _spdy_streams(session: spdy.Session, options: ExecOptions, version: int) -> dict[int, spdy.Stream] | None:
    """The streams kubectl opens (client-go's stream protocols v2-v4), by role; None if they do not come."""
    expected = {channels.ERROR}
    if options.stdin:
        expected.add(channels.STDIN)
    if options.stdout:
        expected.add(channels.STDOUT)
    if options.stderr and not options.tty:
        expected.add(channels.STDERR)
    if options.tty and version >= 3:
        expected.add(channels.RESIZE)
    streams: dict[int, spdy.Stream] = {}

    async def collect() -> None:
        while not expected <= streams.keys():
            stream = await session.next_stream()
            if stream is None:
                raise ConnectionError("the client went away")
            role = STREAM_ROLES.get(stream.header("streamType"))
            if role is None:
                await stream.reset(spdy.REFUSED_STREAM)
                continue
            streams[role] = stream

    try:
        await asyncio.wait_for(collect(), STREAMS_TIMEOUT)
    except (TimeoutError, ConnectionError) as exc:
        log.info("exec: the client did not open its streams: %s", exc)
        return None
    return streams


async def _spdy_stdin(stream: spdy.Stream, session: Session) -> None:
    while data := await stream.read():
        await session.write_stdin(data)
    session.close_stdin()


async def _spdy_resize(stream: spdy.Stream, session: Session, decoder: channels.ResizeDecoder) -> None:
    while data := await stream.read():
        for width, height in decoder.feed(data):
            session.resize(width, height)


# A terminal's first size comes right after the connection; the command should start with it (`stty size`,
# full-screen programs), so a tty exec waits a moment for it.
FIRST_SIZE_WAIT = 0.25


async def _first_size_ws(ws: web.WebSocketResponse, decoder: channels.ResizeDecoder, early: list[bytes]) -> tuple[int, int] | None:
    deadline = asyncio.get_running_loop().time() + FIRST_SIZE_WAIT
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            return None
        if (raw := channels.message_bytes(message)) is None:
            return None
        channel, data = channels.unframe(raw)
        if channel == channels.RESIZE and (sizes := decoder.feed(data)):
            return sizes[-1]
        early.append(raw)
    return None


async def _first_size_spdy(stream: spdy.Stream, decoder: channels.ResizeDecoder) -> tuple[int, int] | None:
    try:
        data = await asyncio.wait_for(stream.read(), FIRST_SIZE_WAIT)
    except TimeoutError:
        return None
    sizes = decoder.feed(data)
    return sizes[-1] if sizes else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class AttachSession:
    """`kubectl attach`: the container's output from now on, until the instance ends, and with `-i` its stdin.

    - Without a terminal the output is read from the container's log as it receives it (the kubelet
      attaches to the runtime's streams; the log carries the same bytes, one line at a time).
    - With `tty: true` it is the terminal's output as it comes (a shell's prompt has no newline), and the
      client's terminal size is the container's.
    - Input goes to the container's stdin when its spec has `stdin: true`, else nowhere. With `stdinOnce`
      the stdin is closed when this attach ends or the client closes its input (EOF for the command).
    - The first attach to a `stdinOnce` container (`kubectl run -i`/`-it`) starts from the instance's
      first output, so what it printed before kubectl attached is not lost."""

    def __init__(
        self, kubelet: KubeletAccess, ctx: ContainerContext, target: tuple[ContainerProcess | None, dict[str, Any], bool],
        options: ExecOptions, size: tuple[int, int] | None,
    ) -> None:
        """`target`: the kubelet's `attach_target` (the process, the container's spec, whether first)."""
        key = (ctx.namespace, ctx.pod, ctx.container)
        instance = kubelet.restart_count(*key)
        process, spec, first = target
        self._process = process if process is not None and (process.tty or process.has_stdin) else None
        self._input = options.stdin and bool(spec.get("stdin")) and self._process is not None and self._process.has_stdin
        self._once = bool(spec.get("stdinOnce"))
        self._terminal: asyncio.Queue[bytes] | None = None
        self._lines: Any = None
        if self._process is not None and self._process.tty:
            self._terminal = self._process.attach(from_start=first)
            if size is not None:
                self._process.resize(*size)
        else:
            path = log_path(ctx.pod_dir, ctx.container, instance)
            running = lambda: key in kubelet.running_pids() and kubelet.restart_count(*key) == instance  # noqa: E731
            # from the start, or from where the log ends now: what the command answers to input sent through
            # this session is never before the reader opens the file
            start = 0 if first else _size(path)
            self._lines = read_log(path, LogOptions(from_offset=start, follow=True), running).__aiter__()
        self._done = False
        self._next: asyncio.Future[bytes] | None = None

    async def read_stdout(self) -> bytes:
        if self._done:
            return b""
        if self._terminal is not None:
            self._next = asyncio.ensure_future(self._terminal.get())
        else:
            self._next = asyncio.ensure_future(self._lines.__anext__())
        try:
            data = await self._next
        except StopAsyncIteration:
            data = b""
        except asyncio.CancelledError:
            if self._done:  # kill(): the client went away
                return b""
            raise
        if not data:
            self._done = True
        return data

    async def read_stderr(self) -> bytes:
        return b""

    async def write_stdin(self, data: bytes) -> None:
        if self._input and self._process is not None:
            await self._process.write_stdin(data)

    def close_stdin(self) -> None:
        if self._input and self._once and self._process is not None:
            self._process.close_stdin()
            self._input = False

    def resize(self, width: int, height: int) -> None:
        if self._terminal is not None and self._process is not None:
            self._process.resize(width, height)

    async def wait(self) -> int:
        return 0

    def finished(self) -> bool:
        return self._done

    def kill(self) -> None:
        self._done = True
        if self._next is not None:
            self._next.cancel()

    def close(self) -> None:
        if self._terminal is not None and self._process is not None:
            self._process.detach_client(self._terminal)
        self.close_stdin()  # a single attach had it (stdinOnce)
