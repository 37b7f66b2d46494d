"""Shared test fixtures: the real emulator started as a subprocess on free loopback ports.

`start_emulator()` runs `python -m emulator serve` exactly as a user would and reads the ports it
chose from its banner, so every integration test talks to the real server over real sockets.

The session leaves no process behind: at its end, any process it started (directly or not) that still
runs is named, killed, and fails the session (`pytest_sessionfinish` below).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool; skip when missing, except under CI=true where a missing tool fails."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true but is not installed (.ci/run installs it with apt-get)")
    pytest.skip(f"{name} is not installed")


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Emulator:
    proc: subprocess.Popen[str]
    data_dir: Path
    args: list[str]
    faces: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.faces["API"]

    @property
    def api_port(self) -> int:
        return int(self.api_url.rsplit(":", 1)[1])

    @property
    def dns_port(self) -> int:
        return int(self.faces["DNS"].split()[0].rsplit(":", 1)[1])

    @property
    def gateway_port(self) -> int:
        return int(self.faces["gateway"].rsplit(":", 1)[1])

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_emulator(data_dir: Path, *extra: str, in_memory: bool = True, timeout: float = 20) -> Emulator:
    args = [
        sys.executable, "-m", "emulator", "serve",
        "--api-port", "0", "--dns-port", "0", "--gateway-port", "0", "--gateway-https-port", "0",
        "--data-dir", str(data_dir), "--log-level", "WARNING",
    ]
    if in_memory:
        args.append("--in-memory")
    args += list(extra)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    emu = Emulator(proc, data_dir, args)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        emu.output.append(line)
        if line.startswith("emulator ready"):
            # the banner: one "  NAME  WHERE" line per face, ended by an empty line
            while True:
                face = proc.stdout.readline()
                emu.output.append(face)
                match = re.match(r"\s+(\S+)\s+(.*)", face)
                if not match:
                    break
                emu.faces[match.group(1)] = match.group(2).strip()
            _drain(proc)
            return emu
    proc.kill()
    raise RuntimeError("emulator did not start:\n" + "".join(emu.output) + (proc.stdout.read() or ""))


def _drain(proc: subprocess.Popen[str]) -> None:
    """Keep reading the server's output so that it never blocks on a full pipe."""
    import threading

    def pump() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    threading.Thread(target=pump, daemon=True).start()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path / "data")
    yield emu
    emu.stop()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with emulator.client() as client:
        yield client


# --- no process left behind ---------------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
# How long the processes still running when the session ends get to exit by themselves.
LEFTOVER_GRACE_SECONDS = float(os.environ.get("TESTS_LEFTOVER_GRACE_SECONDS", "5"))


def pytest_configure(config: pytest.Config) -> None:
    """On Linux the session adopts the orphans of what it started (a child subreaper): a process whose
    parent died (say, `emulator run` killed with SIGKILL) is still among its descendants at the end,
    instead of escaping to init."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap_adopted_zombies(me: psutil.Process) -> None:
    for child in me.children():
        with contextlib.suppress(psutil.NoSuchProcess, ChildProcessError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


def leftover_processes(grace: float = LEFTOVER_GRACE_SECONDS) -> list[psutil.Process]:
    """The descendants of this process still running once `grace` seconds passed (or none is left)."""
    me = psutil.Process()
    deadline = time.monotonic() + grace
    while True:
        _reap_adopted_zombies(me)
        left = [p for p in me.children(recursive=True) if _running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid} (parent {process.ppid()}): {' '.join(' '.join(process.cmdline()).split())[:300]}"
    except psutil.Error:
        return f"pid {process.pid}: (gone meanwhile)"


@pytest.hookimpl(trylast=True)  # after the runner's own sessionfinish, which tears down the session's fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = leftover_processes()
    if not left:
        return
    lines = [_describe(p) for p in left]
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(left, timeout=5)
    _reap_adopted_zombies(psutil.Process())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    title = f"{len(left)} process(es) the tests started still ran at the end of the session (now killed)"
    if reporter is not None:
        reporter.write_sep("=", title, red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print(title + "\n" + "\n".join(lines), file=sys.stderr)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
