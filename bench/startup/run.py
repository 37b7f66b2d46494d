"""Benchmark: how long an empty `emulator serve` takes to answer, and where the time goes.

Measures what issue 16's start item asks for ("empty start ≤ 0.25 s wall"):
  1. wall time from spawning `emulator serve --in-memory` (all other faces on port 0) until
     `GET /readyz` answers 200, polled every 5 ms, over N runs (median, min, max), with the CPU time
     the server used until then (steadier on a busy machine) and the emulator's own `ready in`
     number (`Runtime.started_in`) from its banner;
  2. the first `kubectl get pods` against a fresh server (discovery, OpenAPI-free) and a second
     one, so the cost that laziness moves onto the first request is visible;
  3. `python -X importtime` of the same start, the 15 modules with the largest cumulative time, and the
     15 with the largest self time.

    .venv/bin/python bench/startup/run.py            # 10 runs
    .venv/bin/python bench/startup/run.py --runs 20  # more runs

Every server is started here and stopped here (SIGTERM, then SIGKILL), temp dirs are removed.
The exit status is 0 only when the median start meets the target.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
TARGET_WALL = 0.25  # seconds, spawn → /readyz 200, median
POLL = 0.005  # seconds between /readyz polls
READY_RE = re.compile(rb"emulator ready in ([0-9.]+)s")
TOP = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_ready(port: int) -> bool:
    """One raw GET /readyz; a raw socket keeps the poll itself cheap."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            reply = s.recv(4096)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def serve_command(port: int, data_dir: str, python_flags: tuple[str, ...] = (), source: Path = ROOT) -> list[str]:
    # an older tree (a baseline from before the gateway served HTTPS) is started without the option it lacks
    https = ["--gateway-https-port", "0"] if "gateway_https_port" in (source / "emulator" / "config.py").read_text() else []
    return [
        PYTHON, *python_flags, "-m", "emulator", "serve", "--in-memory", "--api-port", str(port),
        "--dns-port", "0", "--gateway-port", "0", *https,
        "--data-dir", data_dir, "--log-level", "WARNING",
    ]


def export(ref: str, into: Path) -> Path:
    """The tree of a committed revision (`git archive`, read-only on the repository), to measure it."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


class Server:
    """One `emulator serve` in its own session and temp dir, stopped on every exit path. `source` is the
    tree it runs from (`python -m` puts the working directory first on the path)."""

    def __init__(self, source: Path = ROOT, python_flags: tuple[str, ...] = ()) -> None:
        self.source = source
        self.dir = tempfile.mkdtemp(prefix="emu-startup-")
        self.port = free_port()
        self.out = Path(self.dir) / "out.log"
        self.err = Path(self.dir) / "err.log"
        self.python_flags = python_flags
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        return self

    def start(self, timeout: float = 30.0) -> float:
        """Spawns the server; returns the wall seconds until /readyz answered 200."""
        data = os.path.join(self.dir, "data")
        with self.out.open("wb") as out, self.err.open("wb") as err:
            began = time.perf_counter()
            self.proc = subprocess.Popen(
                serve_command(self.port, data, self.python_flags, self.source), cwd=self.source, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = began + timeout
        while not answers_ready(self.port):
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with {self.proc.returncode}:\n{self.err.read_text()[-2000:]}")
            if time.perf_counter() > deadline:
                raise SystemExit(f"no /readyz answer after {timeout:.0f}s")
            time.sleep(POLL)
        return time.perf_counter() - began

    def cpu_seconds(self) -> float:
        """CPU the server used so far (/proc): steadier than wall time on a busy machine. The scheduler's
        own count of every thread's time on a CPU (schedstat, nanoseconds) where the kernel keeps it; else
        user + system from stat, in clock ticks (10 ms: too coarse to tell two trees 10 ms apart)."""
        assert self.proc is not None
        tasks = Path(f"/proc/{self.proc.pid}/task")
        try:
            return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks.iterdir()) / 1e9
        except (OSError, ValueError, IndexError):
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def started_in(self) -> float | None:
        """The emulator's own `ready in` figure from its banner (may lag /readyz by a moment)."""
        for _ in range(100):
            found = READY_RE.search(self.out.read_bytes())
            if found:
                return float(found.group(1))
            time.sleep(0.01)
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *_: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def kubectl_seconds(port: int) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["kubectl", "--server", f"http://127.0.0.1:{port}", "get", "pods", "-A"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "KUBECONFIG": "/dev/null", "HOME": tempfile.gettempdir()},
    )
    return time.perf_counter() - began


def import_times(stderr: str) -> list[tuple[int, int, str]]:
    """`-X importtime` lines as (cumulative µs, self µs, module), largest cumulative first."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|", 2))
        rows.append((int(cumulative), int(self_us), name))
    return sorted(rows, reverse=True)


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f}s  min {min(values):.3f}s  max {max(values):.3f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--ref", metavar="REV", help="measure a committed revision (git archive REV), e.g. HEAD")
    parser.add_argument("--source", metavar="DIR", type=Path, help="measure another copy of the tree (e.g. a baseline)")
    parser.add_argument("--no-kubectl", action="store_true", help="skip the first-request measurement")
    args = parser.parse_args()
    exported = Path(tempfile.mkdtemp(prefix="emu-startup-src-")) if args.ref else None
    try:
        return measure(args, export(args.ref, exported / "source") if exported else (args.source or ROOT).resolve())
    finally:
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)


def measure(args: argparse.Namespace, source: Path) -> int:
    print(f"emulator: {'git ' + args.ref + ' (exported)' if args.ref else 'the tree at ' + str(source)}")
    # bytecode compiled first, as an installed package has it: a file edited since its .pyc (or a run under
    # PYTHONDONTWRITEBYTECODE) would otherwise be compiled again on every start and counted in it
    subprocess.run([PYTHON, "-m", "compileall", "-q", "emulator", "api"], cwd=source, check=True, stdout=subprocess.DEVNULL)
    print(f"load average before: {os.getloadavg()[0]:.2f}")

    walls: list[float] = []
    cpus: list[float] = []
    own: list[float] = []
    firsts: list[float] = []
    seconds: list[float] = []
    kubectl = not args.no_kubectl and shutil.which("kubectl") is not None
    for _ in range(args.runs):
        with Server(source) as server:
            walls.append(server.start())
            cpus.append(server.cpu_seconds())
            started = server.started_in()
            if started is not None:
                own.append(started)
            if kubectl:
                firsts.append(kubectl_seconds(server.port))
                seconds.append(kubectl_seconds(server.port))

    with Server(source, ("-X", "importtime")) as server:
        server.start()
        server.stop()  # its stderr is complete once it exited
        rows = import_times(server.err.read_text(errors="replace")) if server.err.exists() else []

    print(f"\n1. spawn → /readyz 200 (poll {POLL * 1000:.0f} ms), {args.runs} runs: {summary(walls)}"
          f"   target ≤ {TARGET_WALL:.2f}s")
    print(f"   CPU (its threads' run time, /proc schedstat) to ready: {summary(cpus)}")
    if own:
        print(f"   the emulator's own `ready in` (Runtime.started_in): {summary(own)}")
    if firsts:
        print(f"2. kubectl get pods -A on a fresh server: first {summary(firsts)}")
        print(f"                                          second {summary(seconds)}")
    print(f"3. -X importtime, top {TOP} by cumulative time (µs):")
    print(f"   {'cumulative':>10} {'self':>8}  module")
    for cumulative, self_us, name in rows[:TOP]:
        print(f"   {cumulative:>10} {self_us:>8}  {name}")
    # the chain above charges everything to whoever imported it first; by self time, where it is spent
    print(f"   top {TOP} by self time (µs), of {sum(r[1] for r in rows)} in {len(rows)} modules:")
    for cumulative, self_us, name in sorted(rows, key=lambda r: r[1], reverse=True)[:TOP]:
        print(f"   {cumulative:>10} {self_us:>8}  {name}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0 if statistics.median(walls) <= TARGET_WALL else 1


if __name__ == "__main__":
    sys.exit(main())
