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
reason `ContainerStatusUnknown`). When the main process exits, what is left in its group is SIGKILLed
(a container's processes end with it), before the main process is reaped, so the group id is still ours.

Identity (adoption, and killing what a previous run left): pid + the process' start time in clock ticks
since boot (field 22 of `/proc/<pid>/stat`, immune to clock steps), compared exactly; the pipes reopened
through `/proc/<pid>/fd/<n>` must be FIFOs with the recorded inodes (the program may have closed ours
and opened something else under the same number). Psutil's create_time is the fallback off Linux.

A container with `stdin: true` reads a pipe whose write end the kubelet keeps (`kubectl attach -i` writes
there; `stdinOnce` closes it after the first attach); with `tty: true` it runs on a terminal whose master
the kubelet keeps: its output (stdout and stderr are the terminal) goes to the log as stdout and to the
attached clients as it comes. Neither survives the emulator: its end closes with it (a terminal's
session is hung up), and such a container is not adopted but started again.

Companions (`Companions`): the process groups run beside a container (kubectl exec, exec hooks and
probes) are killed with it, told to the `--in-memory` reaper, and listed under `<pod dir>/companions/`
so that the next start kills those a `kill -9`ed emulator left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping
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
RECENT_TTY_OUTPUT = 64 * 1024  # a terminal's last output, kept for the first attach (kubectl run -it)
ATTACHED_BACKLOG = 256  # chunks of terminal output queued for one attached client before the oldest go

# The terminal becomes the command's controlling terminal in a small Python step before the command: a
# preexec_fn cannot do it under uvloop (it runs before the child's stdio is the terminal). Its first
# argument is the container's LC_CTYPE ("=VALUE", or "-" for none), put back before the exec: Python sets
# it when it starts under the C locale (PEP 538); the command's environment is the container's as given.
CONTROLLING_TTY = (
    "import fcntl,os,sys,termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); a = sys.argv[1]; "
    "os.environ.pop('LC_CTYPE', None) if a == '-' else os.environ.__setitem__('LC_CTYPE', a[1:]); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def tty_wrapper(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """argv behind CONTROLLING_TTY, run by this Python."""
    ctype = env.get("LC_CTYPE")
    return [sys.executable, "-I", "-S", "-c", CONTROLLING_TTY, "-" if ctype is None else f"={ctype}", *argv]


def set_size(fd: int, width: int, height: int) -> None:
    """A terminal's size, set through its master (the program gets SIGWINCH)."""
    if width > 0 and height > 0:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def resolve_command(argv: list[str], env: dict[str, str]) -> None:
    """FileNotFoundError when argv[0] is not found on the environment's PATH (for a command started through
    a Python step, whose own failure would read as the step's)."""
    if "/" not in argv[0] and shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(errno.ENOENT, "not found", argv[0])


def _resolve_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def write_all(fd: int, data: bytes) -> None:
    """All of `data` to a non-blocking fd (a pipe or a terminal's master), waiting on the loop while it is
    full: no thread is held by a command that does not read. It writes through its own duplicate of `fd`,
    closed here whatever happens, so the owner may close `fd` meanwhile (a cancelled write stops; its
    number is never one that something else has since opened)."""
    loop = asyncio.get_running_loop()
    own = os.dup(fd)
    try:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(own, view):]
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(own, _resolve_once, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(own)
    finally:
        os.close(own)


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
    start_ticks: int = 0  # /proc/<pid>/stat field 22 (0: unknown, off Linux or an older state file)
    stdout_inode: int = 0  # the pipes' inodes (0: unknown)
    stderr_inode: int = 0


def start_ticks(pid: int) -> int:
    """The process' start time in clock ticks after boot (field 22 of /proc/<pid>/stat); 0 off Linux or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
        return int(line[line.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _proc_state(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
        return line[line.rindex(b")") + 2:].split()[0]
    except (OSError, ValueError, IndexError):
        return b""


def wrap(ctx: ContainerContext, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment as spawned: through the sandbox (emulator/kubelet/sandbox.py) when there
    is one, as is otherwise; `sh` as the container's shell (ContainerContext.shell)."""
    argv = ctx.as_run(argv)
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


@dataclass(frozen=True)
class Launched:
    record: ProcessRecord
    popen: subprocess.Popen[bytes]
    fds: dict[str, int]  # stream -> the end the kubelet reads
    stdin: int | None = None  # the end the kubelet writes the container's stdin to (a terminal: its master)
    tty: bool = False


def launch(ctx: ContainerContext, argv: list[str], stdin: bool = False, tty: bool = False) -> Launched:
    """Start `argv` in its own session, its output into two pipes whose read ends it also holds (see the
    module's doc); with `tty`, on a terminal instead (stdin, stdout and stderr), and with `stdin` (not
    `tty`) reading a pipe. Touches no event loop: the kubelet calls it from a thread. Raises OSError as
    exec does."""
    if tty:
        return _launch_tty(ctx, argv)
    argv, env = wrap(ctx, argv)
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    in_r, in_w = os.pipe() if stdin else (None, None)
    try:
        popen = subprocess.Popen(
            argv, stdin=in_r if in_r is not None else subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=env,
            cwd=working_directory(ctx), start_new_session=True, pass_fds=(out_r, err_r), close_fds=True,
        )
    except BaseException:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    record = ProcessRecord(
        popen.pid, _created(popen.pid), out_r, err_r, start_ticks(popen.pid), os.fstat(out_r).st_ino, os.fstat(err_r).st_ino,
    )
    if in_w is not None:
        os.set_blocking(in_w, False)
    return Launched(record, popen, {"stdout": out_r, "stderr": err_r}, in_w)


def _created(pid: int) -> float:
    """The process's creation time as psutil tells it (0.0 if it is gone already)."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def _launch_tty(ctx: ContainerContext, argv: list[str]) -> Launched:
    wrapped, env = wrap(ctx, argv)
    env = {"TERM": "xterm", **env}  # as a runtime's terminal (docker and containerd set it)
    resolve_command(wrapped, env)
    master, slave = os.openpty()
    try:
        popen = subprocess.Popen(
            tty_wrapper(wrapped, env), stdin=slave, stdout=slave, stderr=slave,
            env=env, cwd=working_directory(ctx), start_new_session=True, close_fds=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    # no fd inside the process to reopen after a restart of the emulator (-1): not adopted, started again
    record = ProcessRecord(popen.pid, _created(popen.pid), -1, -1, start_ticks(popen.pid))
    return Launched(record, popen, {"stdout": master}, master, tty=True)


def abandon(launched: Launched) -> None:
    """What `launch` started, when nobody will watch it (its worker was cancelled meanwhile): killed, reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(launched.popen.pid, signal.SIGKILL)
    launched.popen.wait()
    for fd in {*launched.fds.values(), *([launched.stdin] if launched.stdin is not None else [])}:
        with contextlib.suppress(OSError):
            os.close(fd)


class ContainerProcess:
    """A running (or finished) container process and its output pump."""

    def __init__(
        self, record: ProcessRecord, sink: LogSink, popen: subprocess.Popen[bytes] | None, fds: dict[str, int],
        stdin: int | None = None, tty: bool = False,
    ) -> None:
        self.record = record
        self.pid = record.pid
        self.sink = sink
        self._popen = popen
        self._fds = fds  # stream -> our read end
        self._stdin = stdin  # our end of its stdin (a terminal's master, also in _fds), None: none or closed
        self._terminal = stdin if tty else None  # the terminal's master while it is open (resizes)
        self.tty = tty
        self.recent = bytearray()  # a terminal's last output (RECENT_TTY_OUTPUT), for the first attach
        self._attached: set[asyncio.Queue[bytes]] = set()  # attached clients' queues of terminal output
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
        return cls.started(launch(ctx, argv), sink)

    @classmethod
    def started(cls, launched: Launched, sink: LogSink) -> ContainerProcess:
        """The ContainerProcess of what `launch` started (on the event loop: it watches the process)."""
        return cls(launched.record, sink, launched.popen, launched.fds, launched.stdin, launched.tty)

    @classmethod
    def adopt(cls, record: ProcessRecord, sink: LogSink) -> ContainerProcess | None:
        """The process of `record` if it still runs (same pid and start time), its pipes reopened.
        The pipes must still be ours (FIFOs of the recorded inodes); when neither is, adoption fails (None)
        and the caller kills what runs (`kill_record`) before it starts the container again."""
        if not alive(record):
            return None
        fds: dict[str, int] = {}
        for stream, number, inode in (("stdout", record.stdout_fd, record.stdout_inode), ("stderr", record.stderr_fd, record.stderr_inode)):
            try:
                fd = os.open(f"/proc/{record.pid}/fd/{number}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:  # not Linux, or the program closed it: its output is not ours any more
                log.debug("cannot reopen %s of pid %d: %s", stream, record.pid, exc)
                continue
            info = os.fstat(fd)
            if not stat.S_ISFIFO(info.st_mode) or (inode and info.st_ino != inode):
                log.warning("fd %d of pid %d is not the %s pipe it was given: not adopted", number, record.pid, stream)
                os.close(fd)
                continue
            fds[stream] = fd
        if not fds:
            return None
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
        # the main process exited (a zombie until reaped below: the group id is still ours): what it left
        # in its group goes with it, as a container's processes do
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
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
        if not self.tty:  # nobody reads its stdin pipe any more
            self.close_stdin()
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
            if self.tty:
                self._to_attached(data)

    def _close(self, stream: str) -> None:
        fd = self._fds.pop(stream, None)
        if fd is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(fd)
        if fd == self._terminal:  # a terminal's master: no more input or resizes (its number may be reused)
            self._stdin = self._terminal = None
        os.close(fd)
        if not self._fds:
            self.sink.close()
            self._to_attached(b"")

    # -- a terminal's output, and stdin: kubectl attach ------------------------------------------------

    def attach(self, from_start: bool = False) -> asyncio.Queue[bytes]:
        """A queue of the terminal's output from now on (b"": the end); `from_start`: the output so far
        first (its last RECENT_TTY_OUTPUT bytes). A client that does not keep up loses the oldest chunks."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(ATTACHED_BACKLOG)
        if from_start and self.recent:
            queue.put_nowait(bytes(self.recent))
        if not self._fds:
            queue.put_nowait(b"")
        else:
            self._attached.add(queue)
        return queue

    def detach_client(self, queue: asyncio.Queue[bytes]) -> None:
        self._attached.discard(queue)

    def _to_attached(self, data: bytes) -> None:
        if data:
            self.recent += data
            del self.recent[:-RECENT_TTY_OUTPUT]
        for queue in self._attached:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(data)
        if not data:
            self._attached.clear()

    @property
    def has_stdin(self) -> bool:
        return self._stdin is not None

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin is None or not data:
            return
        with contextlib.suppress(OSError):
            await write_all(self._stdin, data)

    def close_stdin(self) -> None:
        """The end of its input: the pipe closed (EOF), or on a terminal the end-of-input character."""
        fd, self._stdin = self._stdin, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if self.tty:
                os.write(fd, b"\x04")
            else:
                os.close(fd)

    def resize(self, width: int, height: int) -> None:
        if self._terminal is not None:
            set_size(self._terminal, width, height)

    def detach(self) -> None:
        """Stop reading (the emulator stops and leaves the process running for the next one to adopt)."""
        for stream in list(self._fds):
            self._close(stream)
        self.close_stdin()
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
    if record.start_ticks:
        return start_ticks(record.pid) == record.start_ticks and _proc_state(record.pid) not in (b"Z", b"X", b"")
    try:
        process = psutil.Process(record.pid)
        return abs(process.create_time() - record.create_time) < 0.05 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def same_process(record: ProcessRecord) -> bool:
    """Whether the pid of `record` is still that process (running or a zombie), not a reused number."""
    if record.start_ticks:
        return start_ticks(record.pid) == record.start_ticks
    try:
        return abs(psutil.Process(record.pid).create_time() - record.create_time) < 0.05
    except psutil.Error:
        return False


def kill_record(record: ProcessRecord) -> None:
    """SIGKILL the group of a recorded process (what a previous run left). Its group too when the process
    itself is gone: a pid stays allocated while a group of that id has members, so no other process can
    hold the number then; when another does, the group is gone and nothing is killed."""
    if not same_process(record) and (start_ticks(record.pid) if record.start_ticks else psutil.pid_exists(record.pid)):
        return  # the number belongs to another process now
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


COMPANIONS_DIR = "companions"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Companions:
    """The process groups run beside one container instance (kubectl exec, exec hooks and probes): they
    end with it (`kill_all` when it exits or is stopped). Each is told to the `--in-memory` reaper and
    listed as an empty file `<pod dir>/companions/<pid>-<start ticks>`, for a start after `kill -9`
    (`kill_companions`). A group is forgotten once empty."""

    def __init__(self, pod_dir: Path, track: Callable[[int], None], untrack: Callable[[int], None]) -> None:
        self.directory = pod_dir / COMPANIONS_DIR
        self._track, self._untrack = track, untrack
        self.groups: dict[int, int] = {}  # pgid (its first process' pid) -> start ticks
        self.closed = False

    def add(self, pid: int) -> None:
        """A companion started (in its own session, `pid` its group)."""
        if self.closed:  # the container ended meanwhile: so does this
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            return
        for old in [g for g in self.groups if not group_alive(g)]:
            self.discard(old)
        ticks = start_ticks(pid)
        self.groups[pid] = ticks
        self._track(pid)
        with contextlib.suppress(OSError):
            self.directory.mkdir(exist_ok=True)
            (self.directory / f"{pid}-{ticks}").touch()

    def ended(self, pid: int) -> None:
        """A companion's first process exited: its group is forgotten if nothing is left in it (what it
        left running, a backgrounded job, lives on with the container)."""
        if not group_alive(pid):
            self.discard(pid)

    def discard(self, pid: int) -> None:
        ticks = self.groups.pop(pid, None)
        if ticks is None:
            return
        self._untrack(pid)
        with contextlib.suppress(OSError):
            (self.directory / f"{pid}-{ticks}").unlink()

    def kill_all(self) -> None:
        self.closed = True
        for pid in list(self.groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            self.discard(pid)


# (pod uid, container) -> the companions of the container instance running now: kubectl exec finds its
# container's (emulator/kubelet/execsession.py) through the context it is given
_companions: dict[tuple[str, str], Companions] = {}


def companions_of(uid: str, container: str) -> Companions | None:
    return _companions.get((uid, container))


def set_companions(uid: str, container: str, companions: Companions | None) -> None:
    if companions is None:
        _companions.pop((uid, container), None)
    else:
        _companions[(uid, container)] = companions


def kill_companions(pod_dir: Path) -> None:
    """Kill the companions a previous run listed for the pod (identity checked), and forget them."""
    directory = pod_dir / COMPANIONS_DIR
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            pid, _, ticks = entry.name.partition("-")
            if pid.isdigit() and ticks.isdigit() and int(ticks):
                kill_record(ProcessRecord(int(pid), 0.0, -1, -1, int(ticks)))
            with contextlib.suppress(OSError):
                entry.unlink()


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

