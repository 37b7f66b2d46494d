"""`kubectl exec` on the node: one command run in a container's context (its environment, working
directory and, through the sandbox, its mounts and names), with pipes or a terminal.

The command runs in its own session (process group), so that a client going away kills all of it, as the
container runtime ends an exec whose stream is gone. With a terminal (`-t`) the command's stdin, stdout and
stderr are one pty (it is the session's controlling terminal, so Ctrl-C reaches the foreground job), and
resizes are TIOCSWINSZ on it; without, three pipes. The API layer (api/exec.py) only moves bytes between
this object and the client's protocol.

Spawned with `subprocess.Popen` (close_fds, in a thread: the sandbox's set-up and the exec take
milliseconds), not asyncio's subprocesses: under uvloop those inherit duplicates of their own stdio, so a
job the command backgrounds (`x >/dev/null 2>&1 &`) would hold the client's streams open. Each command's
group is one of its container's companions (process.py `Companions`): killed when the container ends,
known to the `--in-memory` reaper. `run_command` is the same for exec hooks and exec probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
from typing import Any

from emulator.kubelet.context import ContainerContext
from emulator.kubelet.process import (
    Companions,
    companions_of,
    resolve_command,
    set_size,
    tty_wrapper,
    working_directory,
    wrap,
    write_all,
)

log = logging.getLogger(__name__)

OUTPUT_CHUNK = 65536
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecError(Exception):
    """The command could not be started (not found, not executable...): the message says why."""


def exit_code(returncode: int) -> int:
    """As Kubernetes reports it: a command killed by signal N exits 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _environment(ctx: ContainerContext, env: dict[str, str], tty: bool) -> dict[str, str]:
    out = dict(env)
    out.setdefault("PATH", os.environ.get("PATH", DEFAULT_PATH))  # a local process finds its programs on it
    if tty:
        out.setdefault("TERM", "xterm")  # what container runtimes give an exec with a terminal
    return out


class Child:
    """A command spawned by `spawn`: its pipes as asyncio streams, its exit seen through a pidfd."""

    def __init__(self, popen: subprocess.Popen[bytes], companions: Companions | None) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.companions = companions
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._exited = asyncio.Event()
        self._watch()

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        for name in ("stdout", "stderr"):
            pipe = getattr(self.popen, name)
            if pipe is not None:
                reader = asyncio.StreamReader(limit=OUTPUT_CHUNK)
                transport, _ = await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)  # type: ignore[misc]
                self._transports.append(transport)
                setattr(self, name, reader)
        if self.popen.stdin is not None:
            writing, protocol = await loop.connect_write_pipe(lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), self.popen.stdin)
            self._transports.append(writing)
            self.stdin = asyncio.StreamWriter(writing, protocol, None, loop)

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.pid)  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, OSError):
            self._poller = loop.create_task(self._poll())
            return

        def ready() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._reap()

        loop.add_reader(pidfd, ready)

    async def _poll(self) -> None:
        while self.popen.poll() is None:
            await asyncio.sleep(0.2)
        self._reap()

    def _reap(self) -> None:
        self.popen.wait()
        if self.companions is not None:
            self.companions.ended(self.pid)
        self._exited.set()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self._exited.is_set() else None

    async def wait(self) -> int:
        await self._exited.wait()
        return self.popen.returncode

    def kill_group(self) -> None:
        """SIGKILL the command's whole group, whether or not its first process has exited (what it left
        behind goes too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports.clear()


async def spawn(ctx: ContainerContext, argv: list[str], **popen: Any) -> Child:
    """Start `argv` (already wrapped for the sandbox) in its own session, tied to the container of `ctx`
    (one of its companions); from a thread, so that the event loop keeps answering meanwhile."""
    companions = companions_of(ctx.uid, ctx.container)
    if companions is not None and companions.closed:
        raise ExecError(f'container "{ctx.container}" is not running')
    loop = asyncio.get_running_loop()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, bufsize=0, start_new_session=True, close_fds=True, **popen)

    future = loop.run_in_executor(None, start)
    try:
        process = await asyncio.shield(future)
    except asyncio.CancelledError:  # nobody will watch it: it is killed as soon as it exists
        future.add_done_callback(_abandon)
        raise
    if companions is not None:
        companions.add(process.pid)
    child = Child(process, companions)
    await child.connect()
    return child


def _abandon(future: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    process = future.result()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


EXEC_OUTPUT_LIMIT = 10 * 1024  # the kubelet keeps this much of an exec probe's or hook's output
DRAIN_AFTER_EXIT = 0.5  # seconds output is still read after the command exited (a job it left may hold the pipe)


async def run_command(ctx: ContainerContext, argv: list[str], timeout: float) -> tuple[int, bytes]:
    """An exec hook or probe: `argv` beside the container, stdout and stderr together; (exit code, the
    output's last EXEC_OUTPUT_LIMIT bytes). TimeoutError (its group killed) after `timeout` seconds; what
    it backgrounds lives on with the container. ExecError when it cannot start."""
    wrapped, env = wrap(ctx, argv)
    env = _environment(ctx, env, False)
    try:
        child = await spawn(
            ctx, wrapped, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=working_directory(ctx),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExecError(f'exec: "{argv[0]}": {getattr(exc, "strerror", None) or exc}') from exc
    output = bytearray()

    async def read() -> None:
        assert child.stdout is not None
        while data := await child.stdout.read(OUTPUT_CHUNK):
            output.extend(data)
            del output[:-EXEC_OUTPUT_LIMIT]

    reader = asyncio.ensure_future(read())
    try:
        code = await asyncio.wait_for(child.wait(), timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_AFTER_EXIT)
    except BaseException:
        child.kill_group()
        await asyncio.shield(child.wait())
        raise
    finally:
        reader.cancel()
        child.close()
    return exit_code(code), bytes(output)


class ExecSession:
    """A running command: write its stdin, read its output, resize its terminal, wait for its exit code."""

    def __init__(self, process: Child, tty: bool, master: int | None) -> None:
        self.process = process
        self.tty = tty
        self._master = master
        self._pty_output: asyncio.Queue[bytes] | None = None
        if master is not None:
            self._pty_output = asyncio.Queue(maxsize=16)
            os.set_blocking(master, False)
            asyncio.get_running_loop().add_reader(master, self._pty_readable)

    @classmethod
    async def start(
        cls, ctx: ContainerContext, argv: list[str], *, stdin: bool, tty: bool, size: tuple[int, int] | None = None
    ) -> ExecSession:
        """Spawn `argv` in the container's context (with a terminal of `size`, width and height, for tty);
        ExecError when it cannot start."""
        if not argv:
            raise ExecError("no command given")
        wrapped, env = wrap(ctx, argv)
        env = _environment(ctx, env, tty)
        cwd = working_directory(ctx)  # (inside the sandbox the launcher changes to workingDir itself)
        master: int | None = None
        try:
            if tty:
                master, slave = os.openpty()
                if size is not None:
                    set_size(master, *size)
                try:
                    resolve_command(wrapped, env)  # "not found" is the command's, not the Python step's
                    process = await spawn(
                        ctx, tty_wrapper(wrapped, env),
                        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                    )
                finally:
                    os.close(slave)
            else:
                process = await spawn(
                    ctx, wrapped, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            if master is not None:
                os.close(master)
            if isinstance(exc, FileNotFoundError) and exc.filename == cwd:
                raise ExecError(f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory') from exc
            if isinstance(exc, FileNotFoundError):
                raise ExecError(f'exec: "{argv[0]}": executable file not found in $PATH') from exc
            raise ExecError(f'exec: "{argv[0]}": {getattr(exc, "strerror", None) or exc}') from exc
        return cls(process, tty, master)

    # -- output ----------------------------------------------------------------------------------------

    def _pty_readable(self) -> None:
        assert self._master is not None and self._pty_output is not None
        try:
            data = os.read(self._master, OUTPUT_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every holder of the terminal's other side is gone
            if exc.errno not in (errno.EIO, errno.EBADF):
                log.debug("pty read: %s", exc)
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._master)
        try:
            self._pty_output.put_nowait(data)
        except asyncio.QueueFull:  # the client reads slower than the command writes: stop reading meanwhile
            asyncio.get_running_loop().remove_reader(self._master)
            asyncio.ensure_future(self._put_then_resume(data))

    async def _put_then_resume(self, data: bytes) -> None:
        assert self._pty_output is not None and self._master is not None
        await self._pty_output.put(data)
        if data:
            asyncio.get_running_loop().add_reader(self._master, self._pty_readable)

    async def read_stdout(self) -> bytes:
        """The next piece of the command's output (its terminal's, with -t); b"" at the end."""
        if self._pty_output is not None:
            data = await self._pty_output.get()
            if not data:
                self._pty_output.put_nowait(b"")  # the end stays the end for later reads
            return data
        assert self.process.stdout is not None
        return await self.process.stdout.read(OUTPUT_CHUNK)

    async def read_stderr(self) -> bytes:
        if self.tty or self.process.stderr is None:
            return b""  # with a terminal, stderr is the terminal
        return await self.process.stderr.read(OUTPUT_CHUNK)

    # -- input -----------------------------------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        if not data:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            if self._master is not None:
                await write_all(self._master, data)
            elif self.process.stdin is not None and not self.process.stdin.is_closing():
                self.process.stdin.write(data)
                await self.process.stdin.drain()

    def close_stdin(self) -> None:
        """The client has no more input: EOF for the command (Ctrl-D on a terminal)."""
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")  # Ctrl-D: the terminal's end of input
        elif self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._master is not None:
            set_size(self._master, width, height)

    # -- the end ---------------------------------------------------------------------------------------

    async def wait(self) -> int:
        return exit_code(await self.process.wait())

    def finished(self) -> bool:
        return self.process.returncode is not None

    def kill(self) -> None:
        """End the whole command (its process group), e.g. when the client went away, and what it left
        running in its group once it exited."""
        self.process.kill_group()

    def close(self) -> None:
        """Release the pipes and the terminal (after wait)."""
        self.process.close()
        if self._master is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None

