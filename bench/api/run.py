"""Benchmark: the emulator's registry API beside a bare aiohttp handler, in one bounded run.

Measures what issue 2's "Done when" asks for and prints it side by side with the targets:
  1. a bare aiohttp POST handler (bench/api/bare.py, uvloop, orjson) under wrk: the ceiling;
  2. pod creates/s and p50/p99 under the same wrk settings, in 5 s rounds while the durable SQLite
     store (fsync full) grows past 50,000 pods;
  3. the time to list a namespace of exactly 10,000 pods, as JSON and as kubectl's Table;
  4. watch latency: from sending a POST to reading its ADDED line on an open watch;
  5. start-to-ready time, empty and with 100,000 pods stored (SIGTERM, restart on the same data dir);
  6. RSS per stored pod while growing, and after the restart (the compact loaded form).

    .venv/bin/python bench/api/run.py            # the full run, about 3-4 minutes
    .venv/bin/python bench/api/run.py --quick    # 10,000 pods, under a minute: a smoke test

Every server and wrk process is started here and stopped here, temp dirs are removed, also on Ctrl-C.
The exit status is 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
# /12 holds a million pod IPs: the default /16 (65,534) would run out before 100,000 pods.
POD_CIDR = "127.128.0.0/12"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
POD_BODY = '{{"metadata":{{"name":"{}"}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}}}}'

TARGET_RATIO = 0.3  # emulator creates/s ÷ bare requests/s
TARGET_P99 = 0.050  # seconds, every growth round
TARGET_START_EMPTY = 0.5
TARGET_START_FULL = 2.0
TARGET_RSS_PER_POD = 2.5 * 1024  # bytes


# -- processes --------------------------------------------------------------------------------------


@dataclass
class Children:
    """Every process this run started, so that any exit path can stop them all."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, cmd: list[str], log: Path, cpu: str | None, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]  # taskset execs: the pid is the program's own
        with log.open("ab") as out:
            # A session of its own: a Ctrl-C on the terminal reaches only this script, which then
            # stops the children in order instead of them racing it.
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc, timeout=3.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_ready(port: int) -> bool:
    """One raw GET /readyz; a raw socket keeps the poll itself from adding milliseconds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            reply = s.recv(4096)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] and reply.endswith(b"ok")


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not answers_ready(port):
        if proc.poll() is not None:
            fail(f"the server exited with status {proc.returncode} before answering /readyz; its log:\n{tail(log)}")
        if time.monotonic() > deadline:
            fail(f"no /readyz answer on port {port} after {timeout:.0f}s; its log:\n{tail(log)}")
        time.sleep(0.002)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` so far (/proc/PID/stat): steadier than a rate on a
    machine that does other work too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def fail(message: str) -> NoReturn:
    raise SystemExit(f"error: {message}")


# -- the emulator -----------------------------------------------------------------------------------


@dataclass
class Emulator:
    """One `emulator serve` process on a data dir, with how long it took to become ready."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    wall: float  # spawn → /readyz answers, interpreter and imports included
    banner: float | None  # the emulator's own "ready in" number

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)


def start_emulator(children: Children, source: Path, data_dir: Path, log: Path, cpu: str | None, extra: list[str]) -> Emulator:
    port = free_port()
    offset = log.stat().st_size if log.exists() else 0
    cmd = [PYTHON, "-m", "emulator", "serve", "--api-port", str(port), "--dns-port", "-1", "--gateway-port", "-1",
           "--no-proxy", "--data-dir", str(data_dir), "--pod-cidr", POD_CIDR, *extra]
    began = time.perf_counter()
    proc = children.spawn(cmd, log, cpu, cwd=source)  # `python -m` imports from the working directory first
    wait_ready(proc, port, log)
    wall = time.perf_counter() - began
    banner = None
    for _ in range(100):  # the banner is printed right after the socket starts serving
        text = log.read_bytes()[offset:].decode(errors="replace")
        found = re.search(r"emulator ready in ([\d.]+)s", text)
        if found:
            banner = float(found.group(1))
            break
        time.sleep(0.01)
    return Emulator(proc, port, log, wall, banner)


# -- wrk --------------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    requests: int
    non_2xx: int
    socket_errors: str
    seconds: float
    p50: float
    p99: float
    cpu_per_ok: float = 0.0  # seconds of server CPU per 2xx answer, when measured

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _duration(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not found:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_wrk(out: str) -> WrkRun:
    done = re.search(r"(\d+) requests in ([\d.]+\w+),", out)
    # the "Latency Distribution" lines; anchored, since "+/- Stdev" columns also end in "%"
    p50 = re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M)
    if not (done and p50 and p99):
        fail(f"could not read wrk's output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return WrkRun(int(done.group(1)), int(non_2xx.group(1)) if non_2xx else 0, sock.group(1) if sock else "",
                  _duration(done.group(2)), _duration(p50.group(1)), _duration(p99.group(1)))


@dataclass
class WrkSettings:
    threads: int
    connections: int
    seconds: int
    cpu: str | None

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections} -d{self.seconds}s --latency, POSTing uniquely named pods (create_pods.lua)"


def wrk_creates(children: Children, settings: WrkSettings, url: str, prefix: str, log: Path) -> WrkRun:
    cmd = ["wrk", f"-t{settings.threads}", f"-c{settings.connections}", f"-d{settings.seconds}s", "--latency",
           "-s", str(HERE / "create_pods.lua"), url, "--", prefix]
    out_path = log.with_name(f"wrk-{prefix}.out")
    proc = children.spawn(cmd, out_path, settings.cpu)
    proc.wait(settings.seconds + 30)
    children.procs.remove(proc)
    run = parse_wrk(out_path.read_text())
    if run.non_2xx or run.socket_errors:
        print(f"      wrk saw {run.non_2xx} non-2xx responses; socket errors: {run.socket_errors or 'none'}")
    return run


# -- HTTP clients (list, watch, exact fills) --------------------------------------------------------


async def create_namespace(session: aiohttp.ClientSession, base: str, name: str) -> None:
    async with session.post(f"{base}/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": name}}),
                            headers={"Content-Type": "application/json"}) as resp:
        if resp.status not in (201, 409):
            fail(f"creating namespace {name}: {resp.status} {await resp.text()}")


async def fill_namespace(base: str, namespace: str, count: int, concurrency: int) -> float:
    """Exactly `count` pods in a new namespace; returns the seconds it took."""
    url = f"{base}/api/v1/namespaces/{namespace}/pods"
    headers = {"Content-Type": "application/json"}
    names = iter(range(count))
    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await create_namespace(session, base, namespace)

        async def worker() -> None:
            for i in names:
                async with session.post(url, data=POD_BODY.format(f"pod-{i:05d}"), headers=headers) as resp:
                    if resp.status != 201:
                        fail(f"creating pod-{i:05d} in {namespace}: {resp.status} {await resp.text()}")
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


async def time_lists(base: str, namespace: str, expected: int, repeats: int) -> dict[str, tuple[float, int]]:
    """Median seconds (request sent → whole body read) and body size, for JSON and for Table."""
    url = f"{base}/api/v1/namespaces/{namespace}/pods"
    results: dict[str, tuple[float, int]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for form, accept, key in (("JSON", "application/json", "items"), ("Table", TABLE_ACCEPT, "rows")):
            times, size = [], 0
            for i in range(repeats):
                began = time.perf_counter()
                async with session.get(url, headers={"Accept": accept}) as resp:
                    body = await resp.read()
                times.append(time.perf_counter() - began)
                if resp.status != 200:
                    fail(f"listing {namespace} as {form}: {resp.status} {body[:300]!r}")
                if i == 0:
                    got = len(orjson.loads(body).get(key) or [])
                    if got != expected:
                        fail(f"listing {namespace} as {form} returned {got} {key}, expected {expected}")
                size = len(body)
            results[form] = (statistics.median(times), size)
    return results


async def watch_latencies(base: str, namespace: str, count: int) -> list[float]:
    """Seconds from sending each POST to reading its ADDED event on a watch opened just before."""
    url = f"{base}/api/v1/namespaces/{namespace}/pods"
    headers = {"Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[float]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
        await create_namespace(session, base, namespace)
        async with session.get(url) as resp:
            rv = (await resp.json(loads=orjson.loads))["metadata"]["resourceVersion"]
        async with session.get(f"{url}?watch=1&resourceVersion={rv}") as stream:
            if stream.status != 200:
                fail(f"opening a watch: {stream.status} {await stream.text()}")

            async def read_events() -> None:
                async for line in stream.content:
                    arrived = time.perf_counter()
                    event = orjson.loads(line)
                    if event.get("type") == "ADDED":
                        future = waiting.pop(event["object"]["metadata"]["name"], None)
                        if future is not None and not future.done():
                            future.set_result(arrived)

            reader = asyncio.create_task(read_events())
            latencies = []
            try:
                for i in range(count):
                    name = f"w-{i:05d}"
                    arrived = waiting[name] = loop.create_future()
                    sent = time.perf_counter()
                    async with session.post(url, data=POD_BODY.format(name), headers=headers) as resp:
                        if resp.status != 201:
                            fail(f"creating {name}: {resp.status} {await resp.text()}")
                        await resp.read()
                    latencies.append(await asyncio.wait_for(arrived, 10.0) - sent)
            finally:
                reader.cancel()
    return latencies


# -- reporting --------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def kib(n: float) -> str:
    return f"{n / 1024:.2f} KB"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


@dataclass
class Summary:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, metric: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append((metric, measured, target or "-", "" if ok is None else ("ok" if ok else "MISS")))

    @property
    def all_ok(self) -> bool:
        return all(row[3] != "MISS" for row in self.rows)

    def print(self) -> None:
        widths = [max(len(r[i]) for r in [("metric", "measured", "target", ""), *self.rows]) for i in range(4)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print(line.format("metric", "measured", "target", ""))
        print(line.format(*("-" * w for w in widths)))
        for row in self.rows:
            print(line.format(*row))


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    grow_to: int  # growth rounds go on until the store holds at least this many pods
    list_size: int
    watch_events: int
    restart_at: int
    budget: float  # seconds: after this, filling stops where it is (and says so)


def grow(children: Children, emu: Emulator, settings: WrkSettings, stored: int, until: int, label: str,
         deadline: float, log: Path) -> tuple[int, list[WrkRun]]:
    """wrk rounds into namespace default until `until` pods are stored (or the deadline passes); each
    run's `cpu_per_ok` is the server's CPU time (every thread) per acknowledged create."""
    url = f"{emu.base}/api/v1/namespaces/default/pods"
    runs: list[WrkRun] = []
    while stored < until and time.monotonic() < deadline:
        before = cpu_seconds(emu.proc.pid)
        run = wrk_creates(children, settings, url, f"{label}{len(runs)}", log)
        run.cpu_per_ok = (cpu_seconds(emu.proc.pid) - before) / run.ok if run.ok else 0.0
        stored += run.ok
        runs.append(run)
        print(f"  {label}{len(runs):<3} {stored:>9,} {run.ok_per_s:>11,.0f} {ms(run.p50):>10} {ms(run.p99):>10} "
              f"{run.cpu_per_ok * 1e6:>8,.0f} us   rss {emu.rss() / 2**20:,.0f} MB")
    return stored, runs


def run(args: argparse.Namespace, children: Children, tmp: Path) -> Summary:
    plan = (Plan(10_000, 2_000, 50, 10_000, 90.0) if args.quick
            else Plan(args.pods, 10_000, args.watch_events, args.restart_at, args.budget))
    ncpu = os.cpu_count() or 1
    pin = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    server_cpu, client_cpu = ("0", "1" if ncpu == 2 else f"1-{ncpu - 1}") if pin else (None, None)
    settings = WrkSettings(1, args.connections, args.duration, client_cpu)
    summary = Summary()
    started = time.monotonic()
    deadline = started + plan.budget
    log = tmp / "server.log"
    extra = list(args.server_arg)
    source = export(args.ref, tmp / "source") if args.ref else ROOT

    print(f"emulator: {'git ' + args.ref + ' (exported)' if args.ref else 'the working tree at ' + str(ROOT)}")
    print(f"{settings.describe()}")
    print("CPU pinning: " + (f"server on CPU {server_cpu}, wrk and this script on CPUs {client_cpu}" if pin else "none"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {ncpu} CPUs (other work on the machine shows up in every number)")
    print()

    # 1. the bare handler
    bare_port = free_port()
    bare = children.spawn([PYTHON, str(HERE / "bare.py"), str(bare_port)], tmp / "bare.log", server_cpu)
    wait_ready(bare, bare_port, tmp / "bare.log")
    bare_run = wrk_creates(children, settings, f"http://127.0.0.1:{bare_port}/api/v1/namespaces/default/pods", "bare", log)
    children.stop(bare)
    print(f"1. bare aiohttp handler (bench/api/bare.py): {bare_run.ok_per_s:,.0f} req/s   p50 {ms(bare_run.p50)}   p99 {ms(bare_run.p99)}")
    summary.add("bare handler requests/s", f"{bare_run.ok_per_s:,.0f} (p99 {ms(bare_run.p99)})")
    print()

    # 5a. start-to-ready, empty; 6a. RSS before growth
    data = tmp / "data"
    emu = start_emulator(children, source, data, log, server_cpu, extra)
    rss_empty = emu.rss()
    empty_wall, empty_banner = emu.wall, emu.banner

    # 2. creates while the store grows
    fsync = next((a.split("=", 1)[1] for a in extra if a.startswith("--fsync=")), "full")
    print(f"2. pod creates, durable SQLite store (fsync {fsync}), rounds of {settings.seconds}s into namespace default")
    print(f"  {'round':<5} {'pods':>9} {'creates/s':>11} {'p50':>10} {'p99':>10} {'CPU/create':>11}")
    stored, growth = grow(children, emu, settings, 0, plan.grow_to, "g", deadline, log)
    rss_grown = emu.rss()
    grown = stored
    rate = statistics.median(r.ok_per_s for r in growth)
    worst_p99 = max(r.p99 for r in growth)
    ratio = rate / bare_run.ok_per_s if bare_run.ok_per_s else 0.0
    reached = stored >= plan.grow_to
    print(f"  median {rate:,.0f} creates/s = {ratio:.2f}x bare (target >= {TARGET_RATIO}x); p99 worst round {ms(worst_p99)}, "
          f"median round {ms(statistics.median(r.p99 for r in growth))} (target < {ms(TARGET_P99)})")
    if not reached:
        print(f"  the time budget ran out at {stored:,} pods, before {plan.grow_to:,}")
    summary.add(f"creates/s ÷ bare req/s (growth to {stored:,})", f"{rate:,.0f}/s = {ratio:.2f}x", f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO and reached)
    summary.add("create p99, worst 5 s round", ms(worst_p99), f"< {ms(TARGET_P99)}", worst_p99 < TARGET_P99)
    summary.add("server CPU per create (median round, /proc)", f"{statistics.median(r.cpu_per_ok for r in growth) * 1e6:,.0f} us")
    print()

    # 3. list a namespace of exactly list_size pods
    fill_s = asyncio.run(fill_namespace(emu.base, "bench-list", plan.list_size, args.connections))
    stored += plan.list_size
    lists = asyncio.run(time_lists(emu.base, "bench-list", plan.list_size, args.list_repeats))
    print(f"3. list a namespace of {plan.list_size:,} pods (filled in {fill_s:.1f}s; store holds {stored:,}), median of {args.list_repeats}:")
    for form, (seconds, size) in lists.items():
        print(f"  {form:<6} {ms(seconds):>10}   {size / 2**20:.1f} MB")
        summary.add(f"list {plan.list_size:,} pods, {form}", ms(seconds))
    print()

    # 4. watch latency
    latencies = asyncio.run(watch_latencies(emu.base, "bench-watch", plan.watch_events))
    stored += plan.watch_events
    w50, w99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"4. watch: POST sent → ADDED read, {len(latencies)} pods one by one: p50 {ms(w50)}  p99 {ms(w99)}  max {ms(max(latencies))}")
    summary.add("watch event latency p50 / p99", f"{ms(w50)} / {ms(w99)}")
    print()

    # 6. RSS per pod while growing (before any restart: a restart loads the compact form)
    per_pod = (rss_grown - rss_empty) / grown if grown else 0.0
    print(f"6. RSS: {rss_empty / 2**20:.0f} MB empty, {rss_grown / 2**20:.0f} MB after {grown:,} creates → {kib(per_pod)} per pod; "
          f"{emu.rss() / 2**20:.0f} MB at {stored:,} pods")
    summary.add(f"RSS per pod, growing to {grown:,}", kib(per_pod), f"<= {kib(TARGET_RSS_PER_POD)}", per_pod <= TARGET_RSS_PER_POD)

    # Fill on to restart_at so that the timed restart reads a store of that size. This part is not a
    # measurement, so it runs with --fsync normal to keep the whole run within its bounds.
    if stored < plan.restart_at:
        children.stop(emu.proc, timeout=30.0)
        emu = start_emulator(children, source, data, log, server_cpu, [*extra, "--fsync", "normal"])
        print(f"  filling on to {plan.restart_at:,} pods for the restart, with --fsync normal (not a measurement; "
              f"this restart at {stored:,} pods took {emu.wall:.2f}s [{fmt_banner(emu.banner)}]):")
        stored, _ = grow(children, emu, settings, stored, plan.restart_at, "f", deadline, log)
        if stored < plan.restart_at:
            print(f"  the time budget ran out at {stored:,} pods, before {plan.restart_at:,}")
    print()

    # 5b. restart on the grown store
    children.stop(emu.proc, timeout=30.0)
    emu = start_emulator(children, source, data, log, server_cpu, extra)
    found = re.findall(r"\((\d+) objects\)", log.read_text(errors="replace"))
    objects = int(found[-1]) if found else stored
    rss_loaded = emu.rss()
    loaded_per_pod = (rss_loaded - rss_empty) / stored if stored else 0.0
    print(f"   after a restart with {objects:,} objects stored: {rss_loaded / 2**20:.0f} MB → {kib(loaded_per_pod)} per pod")
    summary.add(f"RSS per pod, restarted with {stored:,}", kib(loaded_per_pod), f"<= {kib(TARGET_RSS_PER_POD)}", loaded_per_pod <= TARGET_RSS_PER_POD)
    print()
    print("5. start-to-ready (spawn → /readyz answers; the banner's own number in brackets):")
    print(f"  empty store       {empty_wall:.2f}s  [{fmt_banner(empty_banner)}]")
    print(f"  {objects:>7,} objects   {emu.wall:.2f}s  [{fmt_banner(emu.banner)}]")
    full_ok = stored >= plan.restart_at
    for label, value, target, ok_size in (
        ("start, empty store, wall", empty_wall, TARGET_START_EMPTY, True),
        ("start, empty store, banner", empty_banner, TARGET_START_EMPTY, True),
        (f"start, {stored:,} pods, wall", emu.wall, TARGET_START_FULL, full_ok),
        (f"start, {stored:,} pods, banner", emu.banner, TARGET_START_FULL, full_ok),
    ):
        summary.add(label, f"{value:.2f} s" if value is not None else "no banner", f"<= {target} s", value is not None and value <= target and ok_size)
    children.stop(emu.proc)
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; the run took {time.monotonic() - started:.0f}s")
    return summary


def export(ref: str, into: Path) -> Path:
    """A committed revision as plain files, so that edits in progress in the working tree are not measured."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=False)
    if archive.returncode != 0:
        fail(f"git archive {ref}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def fmt_banner(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "no banner"


@contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP all end the run through the cleanup in main(). SIGINT is set too because
    a shell starting the run in the background leaves it ignored, and Ctrl-C must still work then."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 10,000 pods, a 2,000-pod list, 50 watch events")
    ap.add_argument("--pods", type=int, default=50_000, help="growth rounds go on until the store holds this many pods [50000]")
    ap.add_argument("--restart-at", type=int, default=100_000, help="pods stored when the restart is timed [100000]")
    ap.add_argument("--watch-events", type=int, default=200)
    ap.add_argument("--list-repeats", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk round [5]")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    ap.add_argument("--budget", type=float, default=200.0, help="seconds of filling after which the run goes on with what it has [200]")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the server to CPU 0 and wrk to the others")
    ap.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `emulator serve`, repeatable (e.g. --server-arg=--log-level=WARNING)")
    ap.add_argument("--ref", metavar="REV", help="measure a committed revision (git archive REV) instead of the working tree, e.g. HEAD")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server log, wrk outputs, store) and print it")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        fail("wrk is not installed (Debian: apt-get install wrk)")
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    summary = None
    try:
        with stopped_on_signals():
            summary = run(args, children, tmp)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers and removing the temp dir", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    summary.print()
    return 0 if summary.all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
