"""`kubectl exec` on the node: one command run in a container's context (its environment, working
directory and, through the sandbox, its mounts and names), with pipes or a terminal.

The command runs in its own session (process group), so that a client going away kills all of it, as the
container runtime ends an exec whose stream is gone. With a terminal (`-t`) the command's stdin, stdout and
stderr are one pty (it is the session's controlling terminal, so Ctrl-C reaches the foreground job), and
resizes are TIOCSWINSZ on it; without, three pipes. The API layer (api/exec.py) only moves bytes between
this object and the client's protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

from emulator.kubelet.context import ContainerContext
from emulator.kubelet.process import wrap

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


def _working_dir(ctx: ContainerContext) -> str | None:
    if ctx.working_dir:
        return ctx.working_dir
    return str(ctx.pod_dir) if Path(ctx.pod_dir).is_dir() else None


# The terminal becomes the command's controlling terminal in a small Python step before the command: a
# preexec_fn cannot do it under uvloop (it runs before the child's stdio is the terminal).
CONTROLLING_TTY = "import fcntl,os,sys,termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp(sys.argv[1], sys.argv[1:])"


def _set_size(fd: int, width: int, height: int) -> None:
    if width > 0 and height > 0:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _resolve(argv: list[str], env: dict[str, str]) -> None:
    if "/" not in argv[0] and shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(errno.ENOENT, "not found", argv[0])


class ExecSession:
    """A running command: write its stdin, read its output, resize its terminal, wait for its exit code."""

    def __init__(self, process: asyncio.subprocess.Process, tty: bool, master: int | None) -> None:
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
        cwd = _working_dir(ctx)
        master: int | None = None
        try:
            if tty:
                master, slave = os.openpty()
                if size is not None:
                    _set_size(master, *size)
                try:
                    _resolve(wrapped, env)  # "not found" is the command's, not the Python step's
                    process = await asyncio.create_subprocess_exec(
                        sys.executable, "-I", "-S", "-c", CONTROLLING_TTY, *wrapped,
                        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True,
                    )
                finally:
                    os.close(slave)
            else:
                process = await asyncio.create_subprocess_exec(
                    *wrapped, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
                    start_new_session=True,
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
                await asyncio.get_running_loop().run_in_executor(None, _write_all, self._master, data)
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
            _set_size(self._master, width, height)

    # -- the end ---------------------------------------------------------------------------------------

    async def wait(self) -> int:
        return exit_code(await self.process.wait())

    def finished(self) -> bool:
        return self.process.returncode is not None

    def kill(self) -> None:
        """End the whole command (its process group), e.g. when the client went away."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Release the terminal (after wait)."""
        if self._master is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]
