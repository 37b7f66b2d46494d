"""One container as one local process group: spawn it, pump its output into its log, learn when and how
it exits, signal and kill the whole group, and adopt it again after the emulator itself was killed.

Output that survives the emulator: stdout and stderr are two pipes, and the container is handed the
*read* end of each as well (an extra inherited fd, never touched by the program). While the emulator
runs it reads the pipes into the log (emulator/kubelet/logs.py's CRI format and rotation). When the
emulator dies the pipes keep a reader, so the container never gets SIGPIPE or EPIPE: what it writes
meanwhile waits in the pipe (its buffer raised to 1 MiB where Linux allows; past that the container
blocks, as a container blocks on a stalled log driver). A restarted emulator reopens the same pipes
through `/proc/<pid>/fd/<n>` (the numbers are in state.py) and goes on reading, so nothing is lost.

Exit codes: a process the emulator spawned is its child and is reaped with its status (watched through
a pidfd: no thread, no polling). An adopted process is not our child: its exit is seen through a pidfd
too, but its status is unknown (reported as the kubelet does for a container it lost: exit code 137,
reason `ContainerStatusUnknown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from emulator.kubelet.context import ContainerContext

log = logging.getLogger(__name__)

F_SETPIPE_SZ = 1031  # <linux/fcntl.h>
PIPE_SIZE = 1 << 20
OUTPUT_READ_SIZE = 65536
UNKNOWN_EXIT = 137  # what the kubelet reports for a container whose status it lost


class LogSink(Protocol):
    def write(self, stream: str, data: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Exit:
    code: int  # as Kubernetes reports it: 128 + signal for a killed process
    signal: int = 0
    known: bool = True


@dataclass(frozen=True)
class ProcessRecord:
    """What state.py keeps to find the process again: pid + start time (pids are reused), and the fd
    numbers of the pipes' read ends inside the process."""

    pid: int
    create_time: float
    stdout_fd: int
    stderr_fd: int


def wrap(ctx: ContainerContext, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment as spawned: through the sandbox (emulator/kubelet/sandbox.py) when there
    is one, as is otherwise."""
    try:
        from emulator.kubelet import sandbox  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return list(argv), dict(ctx.env)
    prepared: tuple[list[str], dict[str, str]] = sandbox.prepare(ctx, argv)
    return prepared


def working_directory(ctx: ContainerContext) -> str:
    """The directory the process starts in: the container's workingDir, created when missing (as the
    container runtime does), else `/` (an image's default WORKDIR)."""
    if ctx.working_dir:
        with contextlib.suppress(OSError):
            os.makedirs(ctx.working_dir, exist_ok=True)
        if os.path.isdir(ctx.working_dir):
            return ctx.working_dir
    return "/"


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(read, F_SETPIPE_SZ, PIPE_SIZE)
    return read, write


class ContainerProcess:
    """A running (or finished) container process and its output pump."""

    def __init__(self, record: ProcessRecord, sink: LogSink, popen: subprocess.Popen[bytes] | None, fds: dict[str, int]) -> None:
        self.record = record
        self.pid = record.pid
        self.sink = sink
        self._popen = popen
        self._fds = fds  # stream -> our read end
        self._exit: Exit | None = None
        self._exited = asyncio.Event()
        self._watch()
        for stream, fd in fds.items():
            os.set_blocking(fd, False)
            asyncio.get_running_loop().add_reader(fd, self._pump, stream)

    # -- spawning and adopting ---------------------------------------------------------------------

    @classmethod
    def spawn(cls, ctx: ContainerContext, argv: list[str], sink: LogSink) -> ContainerProcess:
        """Start `argv` in its own session. Raises OSError (no such file, permission) as exec does."""
        argv, env = wrap(ctx, argv)
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        try:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=env, cwd=working_directory(ctx),
                start_new_session=True, pass_fds=(out_r, err_r), close_fds=True,
            )
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            created = psutil.Process(popen.pid).create_time()
        except psutil.Error:
            created = 0.0
        record = ProcessRecord(popen.pid, created, out_r, err_r)
        return cls(record, sink, popen, {"stdout": out_r, "stderr": err_r})

    @classmethod
    def adopt(cls, record: ProcessRecord, sink: LogSink) -> ContainerProcess | None:
        """The process of `record` if it still runs (same pid and start time), its pipes reopened."""
        if not alive(record):
            return None
        fds: dict[str, int] = {}
        for stream, number in (("stdout", record.stdout_fd), ("stderr", record.stderr_fd)):
            try:
                fds[stream] = os.open(f"/proc/{record.pid}/fd/{number}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:  # not Linux, or the program closed it: its output is not ours any more
                log.debug("cannot reopen %s of pid %d: %s", stream, record.pid, exc)
        return cls(record, sink, None, fds)

    # -- exit ----------------------------------------------------------------------------------------

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.pid)  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ESRCH:
                self._finish()
                return
            self._poller = loop.create_task(self._poll())
            return

        def ready() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._finish()

        loop.add_reader(pidfd, ready)

    async def _poll(self) -> None:
        while alive(self.record) and (self._popen is None or self._popen.poll() is None):
            await asyncio.sleep(0.5)
        self._finish()

    def _finish(self) -> None:
        if self._exit is not None:
            return
        if self._popen is not None:
            try:
                code = self._popen.wait(timeout=1)
            except subprocess.TimeoutExpired:  # pragma: no cover - the pidfd said it exited
                code = -signal.SIGKILL
            self._exit = Exit(128 - code, -code) if code < 0 else Exit(code)
        else:
            self._exit = Exit(UNKNOWN_EXIT, known=False)
        # what is still in the pipes is read before the exit is reported (a grandchild may keep them open)
        for stream in list(self._fds):
            self._pump(stream, final=True)
        self._exited.set()

    @property
    def exit(self) -> Exit | None:
        return self._exit

    async def wait(self) -> Exit:
        await self._exited.wait()
        assert self._exit is not None
        return self._exit

    # -- output --------------------------------------------------------------------------------------

    def _pump(self, stream: str, final: bool = False) -> None:
        fd = self._fds.get(stream)
        if fd is None:
            return
        for _ in range(64 if final else 4):  # bounded per turn: one chatty container cannot starve the loop
            try:
                data = os.read(fd, OUTPUT_READ_SIZE)
            except BlockingIOError:
                return  # nothing more for now (after the exit, a grandchild may still write: read on to EOF)
            except OSError:
                data = b""
            if not data:
                self._close(stream)
                return
            try:
                self.sink.write(stream, data)
            except OSError as exc:
                log.warning("cannot write the log of pid %d: %s", self.pid, exc)

    def _close(self, stream: str) -> None:
        fd = self._fds.pop(stream, None)
        if fd is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        if not self._fds:
            self.sink.close()

    def detach(self) -> None:
        """Stop reading (the emulator stops and leaves the process running for the next one to adopt)."""
        for stream in list(self._fds):
            self._close(stream)
        if self._popen is not None:
            self._popen.returncode = 0  # not ours to reap any more: keep subprocess from trying

    # -- signals -------------------------------------------------------------------------------------

    def signal_group(self, sig: int) -> None:
        """Signal the container's whole process group (its session), the process itself first."""
        if self._exit is not None and not self._group_alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def stop(self, grace: float) -> Exit:
        """SIGTERM the group, give it `grace` seconds, then SIGKILL the group."""
        self.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.wait()), timeout=max(grace, 0.0))
        except TimeoutError:
            pass
        self.signal_group(signal.SIGKILL)
        return await self.wait()


def alive(record: ProcessRecord) -> bool:
    """Whether the process of `record` still runs (not a reused pid, not a zombie)."""
    try:
        process = psutil.Process(record.pid)
        return abs(process.create_time() - record.create_time) < 0.05 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_record(record: ProcessRecord) -> None:
    """SIGKILL the group of a recorded process that still runs (an orphan of a pod that is gone)."""
    if alive(record):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, signal.SIGKILL)


# The reaper: reads "+<pgid>" / "-<pgid>" lines; at EOF (the emulator died, even by SIGKILL) it SIGKILLs
# every group still listed; "x" ends it without killing anything (a clean stop already stopped them).
_REAPER = """
import os, signal, sys
groups = set()
for line in sys.stdin:
    if line.startswith("x"):
        sys.exit(0)
    (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


class GroupReaper:
    """For `--in-memory`, where nothing could adopt a container later: a tiny watchdog process that kills
    the containers' process groups (grandchildren included) when the emulator dies, `kill -9` included."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _REAPER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )

    def _send(self, line: str) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(OSError):
            stdin.write(line.encode() + b"\n")
            stdin.flush()

    def add(self, group: int) -> None:
        self._send(f"+{group}")

    def remove(self, group: int) -> None:
        self._send(f"-{group}")

    def close(self) -> None:
        self._send("x")
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class FileSink:
    """Until emulator/kubelet/logs.py exists: the CRI log format, without rotation."""

    def __init__(self, path: Path, max_bytes: int = 0, max_files: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open while the container runs
        self._partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buffered = self._partial.pop(stream, b"") + data
        *lines, rest = buffered.split(b"\n")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}Z"
        for line in lines:
            self._file.write(f"{stamp} {stream} F ".encode() + line + b"\n")
        if rest:
            self._partial[stream] = rest
        self._file.flush()

    def close(self) -> None:
        for stream, rest in self._partial.items():
            self._file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {stream} P ".encode() + rest + b"\n")
        self._partial.clear()
        self._file.close()


def log_sink(pod_dir: Path, container: str, restart_count: int, max_bytes: int, max_files: int) -> tuple[Path, LogSink]:
    """Where a container instance's output goes, and the writer: logs.py's when it exists."""
    try:
        from emulator.kubelet import logs  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        path = pod_dir / "logs" / container / f"{restart_count}.log"
        return path, FileSink(path)
    path = logs.log_path(pod_dir, container, restart_count)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: Any = logs.LogWriter(path, max_bytes, max_files)
    return path, writer

