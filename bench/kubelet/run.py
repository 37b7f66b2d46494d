"""Benchmark: the local kubelet (emulator/kubelet/) — pods that really run — through the real server, in one
bounded run, beside the kubelet's pod-startup SLO (p99 ≤ 5 s, stateless pods, no image pulls):

  1. pod startup: N pods created at a fixed pace, each `sh -c 'date > mark; exec python3 server.py'` with an
     httpGet readinessProbe (periodSeconds 1); p50/p99 of create → process started (the timestamp the
     container itself wrote as its first action), create → `running` seen by a watch, create → Ready;
  2. a Deployment of 100 replicas of that small Python HTTP server behind a Service: time until all 100
     pods are Ready (and each pod's own startup, p50/p99; DNS answer times meanwhile, which show event-loop
     stalls), and until the Service's cluster IP (the proxy listens on it) has answered from all 100
     (distinct pod names in the answers); the emulator's RSS and open file descriptors per running pod;
  3. one container writing 50,000 log lines/s for 10 s: DNS p99 (dnsperf at a fixed rate, or dnspython)
     before and during; the rate the writer achieved; the log's last line read back through pods/log.

    .venv/bin/python bench/kubelet/run.py            # the full run, about 45 s
    .venv/bin/python bench/kubelet/run.py --quick    # 20 pods, 30 replicas, 5 s of logs (~25 s)

Each step starts its own `python -m emulator serve --in-memory --kubelet --allow-anonymous` (API and DNS on
free loopback ports, the proxy on, no gateway) and waits for /readyz. Every server is stopped here (SIGTERM:
it stops its containers), also on Ctrl-C or an error; then psutil checks that no container process survived
(any that did is SIGKILLed by pid and reported). See bench/kubelet/README.md for how each number is taken.
Linux only (/proc, user namespaces for the sandbox). Exit status 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
# The containers' interpreter: the real binary behind the venv (not a shim such as pyenv's, a shell script
# that would cost each container start ~60 ms more), as a user's service would run.
CONTAINER_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
NS = "bench"
DNS_NAME = "kubernetes.default.svc.cluster.local"

SLO_STARTUP_P99 = 5.0  # seconds: the kubelet's pod-startup SLO (stateless pods, images present)
TARGET_ALL_ANSWER = 30.0  # seconds for 100 replicas: Ready and answering through the Service
LOG_RATE = 50_000  # lines/s
DNS_QPS = 2000  # dnsperf's fixed rate while measuring p99
DNS_MOVE_FACTOR = 2.0  # the DNS p99 "moved" when it is more than twice the baseline ...
DNS_MOVE_FLOOR = 0.001  # ... and more than 1 ms above it
STOP_GRACE = 20.0  # seconds the server gets to stop its containers (it gives them 5 s) before SIGKILL
DEFAULT_TIMEOUT = 120.0

# The container of steps 1 and 2: answers every GET with its pod's name (HOSTNAME is the pod's hostname).
SERVER_PY = """\
import http.server, os
NAME = os.environ["HOSTNAME"].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(NAME)))
        self.end_headers()
        self.wfile.write(NAME)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""

# The container of step 3: RATE lines/s in batches every 10 ms for SECONDS, on an absolute schedule; then
# writes what it achieved to OUT and exits.
WRITER_PY = """\
import json, os, sys, time
rate, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
tick = 0.01
per_tick = max(1, int(rate * tick))
began = time.time()
with open(out + ".started", "w") as f:
    f.write(repr(began))
n = 0
t = began
while time.time() - began < seconds:
    batch = "".join(f"log line {i:09d} from the bench's writer, a little padding to look real\\n" for i in range(n, n + per_tick))
    os.write(1, batch.encode())
    n += per_tick
    t += tick
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)
elapsed = time.time() - began
with open(out, "w") as f:
    json.dump({"lines": n, "seconds": elapsed, "began": began}, f)
"""


def fail(message: str) -> NoReturn:
    raise SystemExit(f"error: {message}")


def free_port() -> int:
    """A loopback port free for both TCP and UDP (the DNS server binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    fail("no free loopback port")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(len(ordered) * q)) - 1))]


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- the server, and the processes it runs ----------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    api_port: int
    dns_port: int
    log: Path
    tmp: Path
    seen: dict[int, float] = field(default_factory=dict)  # pid → create_time of every container process seen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def containers(self) -> list[psutil.Process]:
        """The server's descendants that run a container (their command line names this run's temp dir);
        remembered, so that stop() can check each one is gone."""
        found = []
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    if any(str(self.tmp) in part for part in child.cmdline()):
                        found.append(child)
                        self.seen[child.pid] = child.create_time()
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        return found

    def stop(self) -> int:
        """SIGTERM (the server stops its containers), SIGKILL after STOP_GRACE; then every container process
        ever seen, and any process naming the temp dir, must be gone: leftovers are SIGKILLed by pid. Returns
        how many there were."""
        self.containers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        leftovers: list[psutil.Process] = []
        deadline = time.monotonic() + 5.0
        while True:
            leftovers = []
            for pid, created in self.seen.items():
                try:
                    p = psutil.Process(pid)
                    if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                        leftovers.append(p)
                except psutil.Error:
                    continue
            for p in psutil.process_iter(["pid", "cmdline"]):
                try:
                    if p.pid not in self.seen and p.pid != os.getpid() and any(str(self.tmp) in a for a in p.info["cmdline"] or []):
                        if p.status() != psutil.STATUS_ZOMBIE:
                            leftovers.append(p)
                except psutil.Error:
                    continue
            if not leftovers or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for p in leftovers:
            try:
                p.kill()
            except psutil.Error:
                pass
        return len(leftovers)


def start_server(tmp: Path, name: str) -> Server:
    api_port, dns_port = free_port(), free_port()
    while dns_port == api_port:
        dns_port = free_port()
    data = tmp / name
    data.mkdir()
    log = tmp / f"{name}.log"
    cmd = [PYTHON, "-m", "emulator", "serve", "--in-memory", "--kubelet", "--allow-anonymous",
           "--api-port", str(api_port), "--dns-port", str(dns_port), "--gateway-port", "-1",
           "--data-dir", str(data), "--log-level", "WARNING"]
    with log.open("ab") as out:
        # A session of its own: a Ctrl-C on the terminal reaches only this script, which then stops it.
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = Server(proc, api_port, dns_port, log, tmp)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", api_port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if b" 200 " in s.recv(4096).split(b"\r\n", 1)[0]:
                    return server
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            fail(f"the server did not become ready; its log:\n{tail(log)}")
        time.sleep(0.01)


# -- API helpers ------------------------------------------------------------------------------------


async def call(session: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               content_type: str = "application/json") -> Any:
    data = None if body is None else json.dumps(body)
    async with session.request(method, path, data=data, headers={"Content-Type": content_type}) as response:
        text = await response.text()
        if response.status >= 300:
            fail(f"{method} {path}: {response.status} {text[:300]}")
        return json.loads(text) if text and response.content_type == "application/json" else text


class PodWatch:
    """List + watch of the namespace's pods (resumed when the server ends it): the wall-clock time (time.time(),
    the clock the containers' timestamps use) at which each pod was first seen (created), seen running and
    seen Ready."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.seen: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.opened = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    def _see(self, pod: dict[str, Any]) -> None:
        now = time.time()
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        self.seen.setdefault(name, now)
        if name not in self.running and any("running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []):
            self.running[name] = now
        if name not in self.ready and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            self.ready[name] = now
        self.changed.set()

    async def _run(self) -> None:
        path = f"/api/v1/namespaces/{NS}/pods"
        while True:
            listed = await call(self.session, "GET", path)
            for pod in listed["items"]:
                self._see(pod)
            url = f"{path}?watch=1&allowWatchBookmarks=false&resourceVersion={listed['metadata']['resourceVersion']}"
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
                    self.opened.set()
                    async for line in response.content:
                        if line.strip():
                            event = json.loads(line)
                            if event["type"] in ("ADDED", "MODIFIED"):
                                self._see(event["object"])
            except aiohttp.ClientPayloadError:
                continue

    async def until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.monotonic()))

    def close(self) -> None:
        self.task.cancel()


def server_container(tmp: Path) -> dict[str, Any]:
    """sh writes the time (its first action), then execs the Python server; Ready through httpGet."""
    marks = tmp / "marks"
    return {
        "name": "web", "image": "bench/web",
        "command": ["sh", "-c", f'date +%s.%N > {marks}/"$HOSTNAME"; exec {CONTAINER_PYTHON} {tmp / "server.py"}'],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }


def pod_body(tmp: Path, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "startup"}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [server_container(tmp)]}}


class DnsProber(threading.Thread):
    """An A query for DNS_NAME every 5 ms, one in flight (dnspython): the DNS server shares the API's event
    loop, so its answer time shows how long the loop was busy (a query unanswered for 2 s counts as 2 s)."""

    def __init__(self, port: int) -> None:
        super().__init__(name="dns-prober", daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self.stopping.is_set():
                query = dns.message.make_query(DNS_NAME, dns.rdatatype.A)
                sent = time.perf_counter()
                try:
                    dns.query.udp(query, "127.0.0.1", port=self.port, timeout=2.0, sock=sock, ignore_unexpected=True)
                    self.latencies.append(time.perf_counter() - sent)
                except (dns.exception.Timeout, OSError):
                    self.latencies.append(2.0)
                self.stopping.wait(0.005)

    def stop(self) -> list[float]:
        self.stopping.set()
        self.join(3.0)
        return self.latencies


def read_marks(tmp: Path) -> dict[str, float]:
    marks = {}
    for path in (tmp / "marks").iterdir():
        text = path.read_text().strip()
        if text:
            marks[path.name] = float(text)
    return marks


def rss_and_fds(pid: int) -> tuple[int, int]:
    p = psutil.Process(pid)
    return p.memory_info().rss, p.num_fds()


# -- the steps --------------------------------------------------------------------------------------


@dataclass
class Row:
    step: str
    value: str
    anchor: str
    target: str
    met: bool | None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


async def startup(server: Server, tmp: Path, pods: int, rate: float, timeout: float) -> list[Row]:
    async with aiohttp.ClientSession(server.base) as session:
        await call(session, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        watch = PodWatch(session)
        await asyncio.wait_for(watch.opened.wait(), 10)
        created: dict[str, float] = {}
        began = time.monotonic()
        for i in range(pods):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            name = f"start-{i:03}"
            created[name] = time.time()
            await call(session, "POST", f"/api/v1/namespaces/{NS}/pods", pod_body(tmp, name))
        try:
            await watch.until(lambda: len(watch.ready) >= pods, timeout)
        finally:
            watch.close()
        server.containers()
    marks = read_marks(tmp)
    started = [marks[n] - created[n] for n in created if n in marks]
    running = [watch.running[n] - created[n] for n in created if n in watch.running]
    ready = [watch.ready[n] - created[n] for n in created]
    if len(started) < pods:
        fail(f"only {len(started)} of {pods} containers wrote their start mark")
    anchor = f"SLO p99 ≤ {SLO_STARTUP_P99:.0f} s"

    def row(label: str, values: list[float], judged: bool) -> Row:
        p99 = percentile(values, 0.99)
        return Row(label, f"p50 {ms(statistics.median(values))}, p99 {ms(p99)}, max {ms(max(values))}",
                   anchor if judged else "", f"p99 ≤ {SLO_STARTUP_P99:.0f} s" if judged else "reported",
                   p99 <= SLO_STARTUP_P99 if judged else None)

    return [
        row(f"1a. create → process started ({pods} pods, {rate:g}/s)", started, True),
        row("1b. create → `running` seen by a watch", running, False),
        row("1c. create → Ready (httpGet probe, period 1 s)", ready, True),
    ]


async def replicas_behind_service(server: Server, tmp: Path, replicas: int, timeout: float) -> list[Row]:
    apps = f"/apis/apps/v1/namespaces/{NS}/deployments"
    async with aiohttp.ClientSession(server.base) as session:
        await call(session, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        svc = await call(session, "POST", f"/api/v1/namespaces/{NS}/services", {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})
        cluster_ip = svc["spec"]["clusterIP"]
        await asyncio.sleep(1.0)
        rss_before, fds_before = rss_and_fds(server.proc.pid)
        emulator = psutil.Process(server.proc.pid)
        cpu_before = sum(emulator.cpu_times()[:2])
        watch = PodWatch(session)
        await asyncio.wait_for(watch.opened.wait(), 10)
        labels = {"app": "web"}
        prober = DnsProber(server.dns_port)
        prober.start()
        began = time.time()
        await call(session, "POST", apps, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [server_container(tmp)]}}}})
        try:
            await watch.until(lambda: len(watch.ready) >= replicas, timeout)
        finally:
            watch.close()
            dns_during = prober.stop()
        all_ready = max(watch.ready.values()) - began
        cpu_burst = sum(emulator.cpu_times()[:2]) - cpu_before
        answered, requests, errors = await distinct_responders(cluster_ip, replicas, timeout)
        all_answered = time.time() - began
    await asyncio.sleep(2.0)
    rss_after, fds_after = rss_and_fds(server.proc.pid)
    containers = server.containers()
    container_rss = [p.memory_info().rss for p in containers if p.is_running()]
    per_container = statistics.median(container_rss) if container_rss else 0.0
    marks = read_marks(tmp)
    # Each pod's own startup, from the moment the watch saw it created (the ReplicaSet controller's POST).
    started = [marks[n] - watch.seen[n] for n in watch.ready if n in marks]
    ready = [watch.ready[n] - watch.seen[n] for n in watch.ready]
    return [
        Row(f"2a. Deployment of {replicas} Python servers: all Ready", f"{ms(all_ready)} after the create "
            f"(emulator CPU {cpu_burst:.1f} s meanwhile)", "", "reported", None),
        Row("    each pod: created → process started", f"p50 {ms(statistics.median(started))}, p99 {ms(percentile(started, 0.99))}",
            f"SLO p99 ≤ {SLO_STARTUP_P99:.0f} s", f"p99 ≤ {SLO_STARTUP_P99:.0f} s", percentile(started, 0.99) <= SLO_STARTUP_P99),
        Row("    each pod: created → Ready", f"p50 {ms(statistics.median(ready))}, p99 {ms(percentile(ready, 0.99))}",
            f"SLO p99 ≤ {SLO_STARTUP_P99:.0f} s", f"p99 ≤ {SLO_STARTUP_P99:.0f} s", percentile(ready, 0.99) <= SLO_STARTUP_P99),
        Row("    DNS answer time meanwhile (the API's event loop)",
            f"p50 {statistics.median(dns_during) * 1000:.1f} ms, p99 {percentile(dns_during, 0.99) * 1000:.0f} ms, "
            f"max {max(dns_during) * 1000:.0f} ms ({len(dns_during):,} queries)", "", "reported", None),
        Row(f"2b. … and the Service answered from all {replicas}",
            f"{ms(all_answered)} after the create ({len(answered)} distinct in {requests:,} GETs, {errors} errors)",
            "", f"≤ {TARGET_ALL_ANSWER:.0f} s", len(answered) >= replicas and all_answered <= TARGET_ALL_ANSWER),
        Row("2c. emulator RSS per running pod",
            f"{(rss_after - rss_before) / replicas / 1024:,.0f} KiB ({rss_before / 2**20:.0f} → {rss_after / 2**20:.0f} MiB)",
            "", "reported", None),
        Row("2d. emulator open fds per running pod",
            f"{(fds_after - fds_before) / replicas:.2f} ({fds_before} → {fds_after})", "", "reported", None),
        Row("    (each container process's own RSS, median)", f"{per_container / 2**20:.1f} MiB ({len(container_rss)} processes)",
            "", "reported", None),
    ]


async def distinct_responders(cluster_ip: str, wanted: int, timeout: float, workers: int = 16) -> tuple[set[str], int, int]:
    """GET http://<cluster IP>/ on new connections (16 at a time) until `wanted` pod names answered."""
    answered: set[str] = set()
    counts = {"requests": 0, "errors": 0}
    deadline = time.monotonic() + timeout
    connector = aiohttp.TCPConnector(force_close=True, limit=workers)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session:
        async def worker() -> None:
            while len(answered) < wanted and time.monotonic() < deadline:
                counts["requests"] += 1
                try:
                    async with session.get(f"http://{cluster_ip}/") as response:
                        answered.add(await response.text())
                except (TimeoutError, aiohttp.ClientError):
                    counts["errors"] += 1
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return answered, counts["requests"], counts["errors"]


# -- step 3: a noisy logger and the DNS ---------------------------------------------------------------


def dns_p99(port: int, seconds: float, tmp: Path) -> tuple[float, float, int, str]:
    """(p50, p99, queries, tool) of A queries for DNS_NAME at DNS_QPS for `seconds`."""
    if shutil.which("dnsperf"):
        queries = tmp / "queries.txt"
        queries.write_text(f"{DNS_NAME} A\n")
        out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
                              "-t", "2", "-Q", str(DNS_QPS), "-v"], capture_output=True, text=True, timeout=seconds + 30).stdout
        latencies = [float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M)]
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        latencies += [2.0] * int(lost.group(1) if lost else 0)  # a lost query counts as the 2 s timeout
        tool = f"dnsperf -Q {DNS_QPS}"
    else:  # one query in flight at a time, as bench/hardening's prober
        latencies = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                query = dns.message.make_query(DNS_NAME, dns.rdatatype.A)
                sent = time.perf_counter()
                try:
                    dns.query.udp(query, "127.0.0.1", port=port, timeout=2.0, sock=sock, ignore_unexpected=True)
                    latencies.append(time.perf_counter() - sent)
                except (dns.exception.Timeout, OSError):
                    latencies.append(2.0)
                time.sleep(0.0005)
        tool = "dnspython, one in flight"
    if not latencies:
        fail("no DNS answer at all")
    return statistics.median(latencies), percentile(latencies, 0.99), len(latencies), tool


async def noisy_logger(server: Server, tmp: Path, seconds: float, dns_seconds: float, timeout: float) -> list[Row]:
    loop = asyncio.get_running_loop()
    base50, base99, base_n, tool = await loop.run_in_executor(None, dns_p99, server.dns_port, dns_seconds, tmp)
    out = tmp / "marks" / "writer.json"
    cpu = psutil.Process(server.proc.pid)
    async with aiohttp.ClientSession(server.base) as session:
        await call(session, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        await call(session, "POST", f"/api/v1/namespaces/{NS}/pods", {
            "metadata": {"name": "writer"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "writer", "image": "bench/writer",
                "command": [CONTAINER_PYTHON, str(tmp / "writer.py"), str(LOG_RATE), str(seconds), str(out)]}]}})
        started = out.with_name(out.name + ".started")
        deadline = time.monotonic() + timeout
        while not started.exists():
            if time.monotonic() > deadline:
                fail("the log writer did not start")
            await asyncio.sleep(0.02)
        await asyncio.sleep(min(1.0, seconds / 5))  # into the steady state
        times_before = cpu.cpu_times()
        wall_before = time.monotonic()
        during50, during99, during_n, _ = await loop.run_in_executor(None, dns_p99, server.dns_port, dns_seconds, tmp)
        times_after = cpu.cpu_times()
        busy = (times_after.user + times_after.system - times_before.user - times_before.system) / (time.monotonic() - wall_before)
        while not out.exists():
            if time.monotonic() > deadline:
                fail("the log writer did not finish")
            await asyncio.sleep(0.05)
        written = json.loads(out.read_text())
        last = ""
        for _ in range(100):  # the emulator may still be draining the pipe
            last = str(await call(session, "GET", f"/api/v1/namespaces/{NS}/pods/writer/log?tailLines=1")).strip()
            if last.startswith(f"log line {written['lines'] - 1:09d}"):
                break
            await asyncio.sleep(0.1)
    server.containers()
    achieved = written["lines"] / written["seconds"]
    whole = last.startswith(f"log line {written['lines'] - 1:09d}")
    moved_limit = max(base99 * DNS_MOVE_FACTOR, base99 + DNS_MOVE_FLOOR)
    return [
        Row(f"3a. DNS before the log writer ({tool}, {dns_seconds:g} s)", f"p50 {base50 * 1000:.2f} ms, p99 {base99 * 1000:.2f} ms ({base_n:,} queries)",
            "", "reported", None),
        Row(f"3b. DNS while a container logs {LOG_RATE:,} lines/s", f"p50 {during50 * 1000:.2f} ms, p99 {during99 * 1000:.2f} ms ({during_n:,} queries)",
            "p99 before", f"p99 ≤ {moved_limit * 1000:.2f} ms (2× or +1 ms)", during99 <= moved_limit),
        Row("3c. the writer's achieved rate (blocked if not drained)", f"{achieved:,.0f} lines/s ({written['lines']:,} in {written['seconds']:.1f} s)",
            f"{LOG_RATE:,}/s asked", f"≥ {LOG_RATE * 0.95:,.0f}/s", achieved >= LOG_RATE * 0.95),
        Row("3d. emulator CPU while it logs; last line via pods/log", f"{busy * 100:.0f} % of a core; last line {'found' if whole else 'MISSING: ' + last[:40]}",
            "", "last line found", whole),
    ]


# -- the run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, tmp: Path) -> tuple[list[Row], int]:
    pods, rate = (20, 5.0) if args.quick else (60, 5.0)
    replicas = 30 if args.quick else 100
    log_seconds, dns_seconds = (5.0, 3.0) if args.quick else (10.0, 6.0)
    (tmp / "marks").mkdir()
    (tmp / "server.py").write_text(SERVER_PY)
    (tmp / "writer.py").write_text(WRITER_PY)
    rows: list[Row] = []
    leftovers = 0

    def step(name: str, title: str, body: Callable[[Server], Any]) -> None:
        nonlocal leftovers
        print(title, flush=True)
        for mark in (tmp / "marks").iterdir():
            mark.unlink()
        server = start_server(tmp, name)
        try:
            found = asyncio.run(body(server))
        except TimeoutError:
            found = [Row(f"   {title}", f"did not finish within {args.timeout:.0f} s", "", "", False)]
        finally:
            left = server.stop()
            leftovers += left
            if left:
                print(f"   {left} container process(es) survived the server: SIGKILLed", flush=True)
        for row in found:
            rows.append(row)
            print(f"   {row.step.strip()}: {row.value}", flush=True)

    wanted = set(args.only.split(",")) if args.only else {"1", "2", "3"}
    if "1" in wanted:
        step("startup", f"step 1: {pods} pods created at {rate:g}/s, create → started → Ready",
             lambda s: startup(s, tmp, pods, rate, args.timeout))
    if "2" in wanted:
        step("replicas", f"step 2: a Deployment of {replicas} Python HTTP servers behind a Service",
             lambda s: replicas_behind_service(s, tmp, replicas, args.timeout))
    if "3" in wanted:
        step("logs", f"step 3: DNS p99 before and while a container writes {LOG_RATE:,} lines/s for {log_seconds:g} s",
             lambda s: noisy_logger(s, tmp, log_seconds, dns_seconds, args.timeout))
    rows.append(Row("container processes left after the servers stopped", str(leftovers), "", "0", leftovers == 0))
    return rows, leftovers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 20 pods, 30 replicas, 5 s of logs")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server logs) and print it")
    ap.add_argument("--only", metavar="STEPS", help="run only these steps, e.g. 1,3")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds a step may wait [{DEFAULT_TIMEOUT:.0f}]")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-kubelet-"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # ends the run through the cleanup below
    try:
        load = os.getloadavg()[0]
        rows, _ = run(args, tmp)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temp dir removed", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    width = max((len(r.step) for r in rows), default=4)
    print(f"\nkubelet ({'--quick' if args.quick else 'full'}; "
          f"load average {load:.2f} → {os.getloadavg()[0]:.2f})")
    print(f"{'step':<{width}}  {'measured':<64}  {'anchor':<18}  target")
    for r in rows:
        mark = "" if r.met is None else ("  ok" if r.met else "  MISSED")
        print(f"{r.step:<{width}}  {r.value:<64}  {r.anchor:<18}  {r.target}{mark}")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
