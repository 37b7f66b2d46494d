"""Benchmark: what hostile requests and abandoned or stalled watchers cost the emulator, in one bounded run.

Starts the real server (`python -m emulator serve --in-memory`, API and DNS on free loopback ports; a fresh
one for each step) and measures the protections of api/http.py, emulator/limits.py, api/watch.py and api/slowclients.py:
  1. event-loop stalls per hostile request: the worst answer time of a DNS query sent every 2 ms (the DNS
     server shares the API's event loop) while each request runs, with the request's status and duration;
  2. 3,000 watches opened and abandoned: tasks, RSS and store listeners before, while open and after they
     are closed (no event ever happens); /healthz latency while they are open;
  3. 200 watchers of a 5,000-pod namespace that never read (SO_RCVBUF 4096): /healthz latency and the
     process status every 0.5 s for 15 s, the peak RSS, then RSS and tasks once they are closed.

    .venv/bin/python bench/hardening/run.py            # the full run, under a minute
    .venv/bin/python bench/hardening/run.py --quick    # 300 and 50 watches, 1,000 pods: a smoke test

See bench/hardening/README.md for how each number is taken.

Every server is started here and stopped here (the temp dir removed), also on Ctrl-C or an error.
The exit status is 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
DNS_NAME = "kubernetes.default.svc.cluster.local"
POD_BODY = '{{"metadata":{{"name":"{}"}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}}}}'

TARGET_DNS_WORST = 0.100  # seconds: the worst DNS answer while one hostile request runs
TARGET_HEALTHZ = 0.050  # seconds: the worst /healthz while thousands of watches are open
TARGET_DRIFT = 0.10  # tasks and RSS after the watches are gone, relative to before

DNS_INTERVAL = 0.002  # seconds between DNS probes
DNS_TIMEOUT = 2.0  # a probe unanswered this long counts as this long (and as lost)
WINDOW_TAIL = 0.050  # a request's window: start → its response + this
SETTLE_MAX = 30.0  # seconds to wait for store listeners (and tasks) to come back after closing
GIVE_BACK_WAIT = 6.0  # then this long before reading RSS: the server looks every 2 s and trims its heap twice after a mass release


# -- processes (as bench/api/run.py) ----------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """The soft RLIMIT_NOFILE raised to the hard limit; returns (soft, hard) as they are now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


@dataclass
class Children:
    """Every process this run started, so that any exit path can stop them all."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, cmd: list[str], log: Path, preexec: Callable[[], Any] | None = None) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            # A session of its own: a Ctrl-C on the terminal reaches only this script, which then stops it.
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=preexec)  # preexec only calls setrlimit
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
            self.stop(proc, timeout=5.0)


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


def answers_ready(port: int) -> bool:
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
        time.sleep(0.01)


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def fail(message: str) -> NoReturn:
    raise SystemExit(f"error: {message}")


# -- the server and plain HTTP ----------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    api_port: int
    dns_port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 60.0) -> tuple[int | str, bytes]:
        """One request on a connection of its own; (status, body), or ("error: ...", b"") when the
        connection broke (a server may answer 413 and close while the body is still being sent)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"error: {type(exc).__name__}", b""
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, body = self.request("GET", "/emulator/v1/process", timeout=10.0)
        if code != 200:
            fail(f"GET /emulator/v1/process: {code} {body[:300]!r}")
        result: dict[str, Any] = json.loads(body)
        return result


def start_server(children: Children, tmp: Path) -> Server:
    tmp.mkdir(parents=True)
    api_port, dns_port = free_port(), free_port()
    while dns_port == api_port:
        dns_port = free_port()
    log = tmp / "server.log"
    cmd = [PYTHON, "-m", "emulator", "serve", "--in-memory", "--api-port", str(api_port), "--dns-port", str(dns_port),
           "--gateway-port", "-1", "--data-dir", str(tmp / "data"), "--log-level", "WARNING"]
    proc = children.spawn(cmd, log, preexec=raise_nofile)
    wait_ready(proc, api_port, log)
    return Server(proc, api_port, dns_port, log)


class KeepAlive:
    """GETs on one keep-alive connection (reopened if it breaks), timed from sending to the whole body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str = "/healthz") -> tuple[float, bytes]:
        began = time.perf_counter()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30.0)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    fail(f"GET {path} answered {resp.status} {body[:200]!r}")
                return time.perf_counter() - began, body
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
                began = time.perf_counter()  # a kept-alive connection the server closed: time the retry only
        raise AssertionError("unreachable")

    def healthz(self) -> float:
        return self.get("/healthz")[0]

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.get("/emulator/v1/process")[1])
        return result

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def new_connection_healthz(port: int) -> float:
    """One GET /healthz on a new connection, connect included."""
    client = KeepAlive(port)
    try:
        return client.healthz()
    finally:
        client.close()


class Every(threading.Thread):
    """Calls `fn` every `interval` seconds until `seconds` have passed (or stop()); keeps (time, result)."""

    def __init__(self, name: str, interval: float, seconds: float, fn: Callable[[], Any]) -> None:
        super().__init__(name=name, daemon=True)
        self.interval, self.seconds, self.fn = interval, seconds, fn
        self.results: list[tuple[float, Any]] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        began = next_at = time.perf_counter()
        while not self.stopping.is_set() and time.perf_counter() - began < self.seconds:
            at = time.perf_counter()
            try:
                self.results.append((at, self.fn()))
            except BaseException as exc:  # reported by the caller
                self.error = exc
                return
            next_at = max(next_at + self.interval, time.perf_counter())
            self.stopping.wait(max(0.0, next_at - time.perf_counter()))

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(35.0)


# -- the DNS prober ---------------------------------------------------------------------------------


class DnsProber(threading.Thread):
    """An A query every DNS_INTERVAL on one UDP socket, one at a time; records (sent, seconds to answer)."""

    def __init__(self, port: int) -> None:
        super().__init__(name="dns-prober", daemon=True)
        self.port = port
        self.samples: list[tuple[float, float]] = []
        self.lost = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            next_at = time.perf_counter()
            while not self.stopping.is_set():
                query = dns.message.make_query(DNS_NAME, dns.rdatatype.A)
                sent = time.perf_counter()
                try:
                    dns.query.udp(query, "127.0.0.1", port=self.port, timeout=DNS_TIMEOUT, sock=sock, ignore_unexpected=True)
                    took = time.perf_counter() - sent
                except (dns.exception.Timeout, OSError):
                    took = max(DNS_TIMEOUT, time.perf_counter() - sent)
                    self.lost += 1
                with self.lock:
                    self.samples.append((sent, took))
                next_at = max(next_at + DNS_INTERVAL, time.perf_counter())  # fallen behind: no burst to catch up
                time.sleep(max(0.0, next_at - time.perf_counter()))
        finally:
            sock.close()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(DNS_TIMEOUT + 1.0)

    def overlapping(self, start: float, end: float) -> list[float]:
        """Answer times of the probes in flight at any moment of [start, end]; waits (bounded) until a probe
        sent after `end` has answered, so that every probe overlapping the window is complete."""
        deadline = time.perf_counter() + DNS_TIMEOUT + 2.0
        while time.perf_counter() < deadline:
            with self.lock:
                if self.samples and self.samples[-1][0] > end:
                    break
            time.sleep(0.005)
        with self.lock:
            return [took for sent, took in self.samples if sent <= end and sent + took >= start]


def check_dns(port: int) -> None:
    query = dns.message.make_query(DNS_NAME, dns.rdatatype.A)
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=5.0)
    except dns.exception.Timeout:
        fail(f"no DNS answer for {DNS_NAME} on 127.0.0.1:{port}")
    if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
        fail(f"the DNS answer for {DNS_NAME} is {dns.rcode.to_text(reply.rcode())} with {len(reply.answer)} records")


# -- reporting (as bench/api/run.py) ----------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def drift(after: float, before: float) -> float:
    return (after - before) / before if before else 0.0


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
        print(line.format("metric", "measured", "target", "").rstrip())
        print(line.format(*("-" * w for w in widths)).rstrip())
        for row in self.rows:
            print(line.format(*row).rstrip())


# -- 1. hostile requests ----------------------------------------------------------------------------


@dataclass
class Hostile:
    label: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    expect: str  # what the status should be, as text for the table


def yaml_pod(name: str, extra_spec: str = "", annotation: str | None = None) -> str:
    head = f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n"
    if annotation is not None:
        head += f"  annotations:\n    big: {annotation}\n"
    return head + "spec:\n  containers:\n  - name: c\n    image: x\n" + extra_spec


def hostile_requests(namespace: str, size: int) -> list[Hostile]:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    as_json = {"Content-Type": "application/json"}
    as_yaml = {"Content-Type": "application/yaml"}

    doubling = [{"op": "add", "path": "/spec/volumes", "value": [{"name": "v", "emptyDir": {}}]}]
    doubling += [{"op": "copy", "from": "/spec/volumes", "path": "/spec/volumes/-"}] * 30

    laughs = ["  l0: &a0 [" + ",".join(['"lol"'] * 10) + "]\n"]
    laughs += [f"  l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 7)]
    aliases = yaml_pod("laughs", "  x:\n" + "".join("  " + line for line in laughs))

    # A body just under the API server's 3 MiB limit, so that it is read and parsed, not refused unread.
    fixed = len(yaml_pod("big-yaml", annotation=""))
    big_yaml = yaml_pod("big-yaml", annotation="x" * (size - fixed))
    big_json = json.dumps({"metadata": {"name": "big-json", "annotations": {"big": ""}},
                           "spec": {"containers": [{"name": "c", "image": "x"}]}})
    big_json = big_json.replace('"big": ""', '"big": "' + "x" * (size - len(big_json)) + '"')
    # The same size as some 170,000 small entries of a free-form map (a CSI volume's attributes), and as
    # as many unknown fields (each one a warning, or in a strict decoding error).
    entry = "        k{:07d}: v\n"
    count = (size - 200) // len(entry.format(0))
    attrs = "".join(entry.format(i) for i in range(count))
    many_yaml = yaml_pod("many-yaml", "  volumes:\n  - name: v\n    csi:\n      driver: d\n      volumeAttributes:\n" + attrs)
    unknown_yaml = yaml_pod("unknown-yaml", "  volumes:\n  - name: v\n    csi:\n      driver: d\n" + attrs.replace("        k", "      k"))

    # a merge patch of 60,000 annotations (over the 256 KiB they may take: refused once applied and validated)
    annotations = json.dumps({"metadata": {"annotations": {f"k{i:06d}": "v" for i in range(60_000)}}})
    deep = yaml_pod("deep", "  x: " + "[" * 1500 + "]" * 1500 + "\n")
    bomb = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)
    object_16 = json.dumps({"metadata": {"name": "big-object", "annotations": {"big": "x" * (1600 * 1000)}},
                            "spec": {"containers": [{"name": "c", "image": "x"}]}})
    return [
        Hostile("(a) JSON patch, 30 doubling copies", "PATCH", f"{pods}/patchme", json.dumps(doubling).encode(),
                {"Content-Type": "application/json-patch+json"}, "413/422"),
        Hostile("(b) YAML aliases, 6 levels of 10x", "POST", pods, aliases.encode(), as_yaml, "400"),
        Hostile("(c) 3 MB YAML, one huge annotation", "POST", pods, big_yaml.encode(), as_yaml, "201 or 413/422"),
        Hostile("(c2) 3 MB YAML, 170k-entry volume map", "POST", pods, many_yaml.encode(), as_yaml, "201 or 413/422"),
        Hostile("(c3) 3 MB YAML, 170k unknown fields", "POST", pods, unknown_yaml.encode(), as_yaml, "201 or 413/422"),
        Hostile("(d) 3 MB JSON, one huge annotation", "POST", pods, big_json.encode(), as_json, "201 or 413/422"),
        Hostile("(e) YAML nested 1,500 levels", "POST", pods, deep.encode(), as_yaml, "400"),
        Hostile("(f) gzip bomb, 64 MiB of zeros", "POST", pods, bomb, {**as_json, "Content-Encoding": "gzip"}, "413"),
        Hostile("(g) 1.6 MB object", "POST", pods, object_16.encode(), as_json, "413"),
        Hostile("(h) merge patch, 60,000 annotations", "PATCH", f"{pods}/patchme", annotations.encode(),
                {"Content-Type": "application/merge-patch+json"}, "413/422"),
    ]


def reason(body: bytes) -> str:
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body[:80].decode(errors="replace")
    message = " ".join(message.split())  # one line in the table
    return message if len(message) <= 90 else message[:87] + "..."


def measure_requests(server: Server, prober: DnsProber, summary: Summary, baseline_s: float) -> None:
    namespace = "bench-hostile"
    ok, body = server.request("POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": namespace}}).encode(),
                              {"Content-Type": "application/json"})
    if ok != 201:
        fail(f"creating namespace {namespace}: {ok} {body[:300]!r}")
    ok, body = server.request("POST", f"/api/v1/namespaces/{namespace}/pods", POD_BODY.format("patchme").encode(),
                              {"Content-Type": "application/json"})
    if ok != 201:
        fail(f"creating pod patchme: {ok} {body[:300]!r}")
    requests = hostile_requests(namespace, 3_000_000)

    # the baseline: nothing running but the prober
    began = time.perf_counter()
    time.sleep(baseline_s)
    base = prober.overlapping(began, time.perf_counter())
    b50, b99, bmax = percentile(base, 50), percentile(base, 99), max(base)
    print(f"1. DNS A {DNS_NAME} every {DNS_INTERVAL * 1000:.0f} ms (UDP, one in flight), {baseline_s:.0f} s baseline with no "
          f"request running: {len(base)} answers, p50 {ms(b50)}  p99 {ms(b99)}  max {ms(bmax)}")
    summary.add("DNS answer, baseline p50 / p99 / max", f"{ms(b50)} / {ms(b99)} / {ms(bmax)}")
    print("   each request on a connection of its own; window = request sent → response read + 50 ms; worst = the slowest")
    print("   DNS probe in flight at any moment of the window")
    print(f"   {'request':<40} {'body':>9} {'status':>7} {'took':>10} {'probes':>6} {'worst DNS':>10}  server's reason")
    for item in requests:
        time.sleep(0.3)  # windows apart, and a quiet moment before each
        lost_before = prober.lost
        start = time.perf_counter()
        status, reply = server.request(item.method, item.path, item.body, item.headers)
        end = time.perf_counter()
        probes = prober.overlapping(start, end + WINDOW_TAIL)
        worst = max(probes) if probes else float("inf")
        lost = prober.lost - lost_before
        size = f"{len(item.body) / 1e6:.2f} MB" if len(item.body) >= 100_000 else f"{len(item.body):,} B"
        print(f"   {item.label:<40} {size:>9} {status!s:>7} {ms(end - start):>10} {len(probes):>6} {ms(worst):>10}  "
              f"{reason(reply)}{f' ({lost} DNS probes lost)' if lost else ''}")
        refused = isinstance(status, int) and 400 <= status < 500
        accepted = status == 201 and item.expect.startswith("201")
        summary.add(f"{item.label}: status, took", f"{status}, {ms(end - start)}", item.expect, refused or accepted)
        summary.add(f"{item.label}: worst DNS", ms(worst), f"< {ms(TARGET_DNS_WORST)}", worst < TARGET_DNS_WORST)


# -- 2. abandoned watches ---------------------------------------------------------------------------


def read_head(sock: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("no end of the response head")
    return data.split(b"\r\n\r\n", 1)[0]


def open_watches(port: int, path: str, count: int, rcvbuf: int | None, read: bool, socks: list[socket.socket],
                 batch: int = 200) -> float:
    """`count` raw-socket watches on `path`, appended to `socks` (the caller closes them); with `read`, each
    response head is read and checked. Returns the seconds it took."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n".encode()
    began = time.perf_counter()
    for first in range(0, count, batch):
        opened = []
        for _ in range(min(batch, count - first)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window follows it
            sock.settimeout(10.0)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            opened.append(sock)
        if read:
            for sock in opened:
                head = read_head(sock)
                if not head.startswith(b"HTTP/1.1 200"):
                    first_line = head.split(b"\r\n", 1)[0]
                    fail(f"a watch on {path} answered {first_line!r}")
    return time.perf_counter() - began


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with suppress(OSError):
            sock.close()
    socks.clear()


def settle(server: Server, before: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Polls the process status until the store listeners are back to `before` and the tasks within the
    target (or SETTLE_MAX passes); returns the last status and the seconds it took."""
    began = time.perf_counter()
    while True:
        now = server.status()
        waited = time.perf_counter() - began
        back = now["storeListeners"] <= before["storeListeners"] and now["tasks"] <= before["tasks"] * (1 + TARGET_DRIFT)
        if back or waited > SETTLE_MAX:
            # the server hands freed heap back to the system within its housekeeping interval (5 s)
            time.sleep(GIVE_BACK_WAIT)
            return server.status(), waited
        time.sleep(0.1)


def describe(status: dict[str, Any]) -> str:
    return (f"tasks {status['tasks']:>5}  storeListeners {status['storeListeners']:>5}  openFiles {status['openFiles']!s:>5}  "
            f"threads {status['threads']:>3}  rss {mb(status['rssBytes'])}")


def worst(prober: DnsProber, start: float, end: float) -> str:
    return ms(max(prober.overlapping(start, end) or [0.0]))


def measure_abandoned(server: Server, prober: DnsProber, summary: Summary, count: int, healthz_gets: int) -> None:
    path = "/api/v1/namespaces/default/pods?watch=1"
    socks: list[socket.socket] = []
    healthz = KeepAlive(server.api_port)
    try:
        before = server.status()
        print(f"2. {count:,} watches (GET {path}, raw sockets, response head read), then closed with no event")
        print(f"   before          {describe(before)}")
        t_open = time.perf_counter()
        took = open_watches(server.api_port, path, count, None, True, socks)
        t_opened = time.perf_counter()
        opened = server.status()
        d_opening = worst(prober, t_open, t_opened)
        print(f"   all open        {describe(opened)}   (opened in {took:.2f}s; worst DNS answer meanwhile {d_opening})")
        if opened["storeListeners"] < before["storeListeners"] + count:
            print(f"   note: only {opened['storeListeners'] - before['storeListeners']} new store listeners for {count} watches")
        times = []
        for _ in range(healthz_gets):
            times.append(healthz.healthz())
            time.sleep(0.005)
        h50, hmax = percentile(times, 50), max(times)
        t_close = time.perf_counter()
        d_open = worst(prober, t_opened, t_close)
        print(f"   /healthz while open, {len(times)} GETs on one keep-alive connection, 5 ms apart: p50 {ms(h50)}  "
              f"p99 {ms(percentile(times, 99))}  max {ms(hmax)}; worst DNS answer meanwhile {d_open}")
        healthz.close()  # its connection is a task of the server's too
        close_all(socks)
        after, waited = settle(server, before)
        d_closing = worst(prober, t_close, time.perf_counter())
        print(f"   closed, {waited:.1f}s later {describe(after)}   (worst DNS answer while closing {d_closing})")
        # the same again: RSS that stays where round 1 left it is the allocator keeping its high-water mark,
        # RSS that grows again is something kept per watch
        open_watches(server.api_port, path, count, None, True, socks)
        close_all(socks)
        again, _ = settle(server, before)
        print(f"   a 2nd round of {count:,} opened and closed: {describe(again)}")
        listeners_ok = after["storeListeners"] <= before["storeListeners"]
        task_drift, rss_drift = drift(after["tasks"], before["tasks"]), drift(after["rssBytes"], before["rssBytes"])
        again_drift = drift(again["rssBytes"], after["rssBytes"])
        if abs(rss_drift) > TARGET_DRIFT:
            print(f"   RSS did not come back within 10% ({rss_drift:+.0%}) although tasks ({task_drift:+.0%}) and storeListeners did; "
                  f"the 2nd round moved it {again_drift:+.0%} from there: "
                  + ("memory freed but kept by the allocator (its high-water mark), not held per watch" if abs(again_drift) <= TARGET_DRIFT
                     else "it grows with every round: something is kept per watch"))
        summary.add(f"{count:,} watches: storeListeners open / after", f"{opened['storeListeners']} / {after['storeListeners']} "
                    f"(back in {waited:.1f}s)", f"{before['storeListeners']} after", listeners_ok)
        summary.add(f"{count:,} watches: tasks before / open / after", f"{before['tasks']} / {opened['tasks']} / {after['tasks']} "
                    f"({task_drift:+.0%})", "within 10%", abs(task_drift) <= TARGET_DRIFT)
        summary.add(f"{count:,} watches: RSS before / open / after",
                    f"{mb(before['rssBytes'])} / {mb(opened['rssBytes'])} / {mb(after['rssBytes'])} ({rss_drift:+.0%})",
                    "within 10%", abs(rss_drift) <= TARGET_DRIFT)
        summary.add(f"{count:,} watches: RSS after a 2nd round", f"{mb(again['rssBytes'])} ({again_drift:+.0%} from round 1)")
        summary.add(f"{count:,} watches open: /healthz p50 / max", f"{ms(h50)} / {ms(hmax)}", f"max < {ms(TARGET_HEALTHZ)}",
                    hmax < TARGET_HEALTHZ)
        summary.add(f"{count:,} watches: worst DNS opening / open / closing",
                    f"{d_opening} / {d_open} / {d_closing}")
    finally:
        close_all(socks)
        healthz.close()


# -- 3. watchers that do not read -------------------------------------------------------------------


async def fill_namespace(base: str, namespace: str, count: int, concurrency: int) -> float:
    url = f"{base}/api/v1/namespaces/{namespace}/pods"
    headers = {"Content-Type": "application/json"}
    names = iter(range(count))
    began = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
        async with session.post(f"{base}/api/v1/namespaces", data=json.dumps({"metadata": {"name": namespace}}),
                                headers=headers) as resp:
            if resp.status not in (201, 409):
                fail(f"creating namespace {namespace}: {resp.status} {await resp.text()}")

        async def worker() -> None:
            for i in names:
                async with session.post(url, data=POD_BODY.format(f"pod-{i:05d}"), headers=headers) as resp:
                    if resp.status != 201:
                        fail(f"creating pod-{i:05d} in {namespace}: {resp.status} {await resp.text()}")
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


def measure_stalled(server: Server, prober: DnsProber, summary: Summary, count: int, pods: int, seconds: float) -> None:
    namespace = "bench-stalled"
    fill_s = asyncio.run(fill_namespace(server.base, namespace, pods, 32))
    path = f"/api/v1/namespaces/{namespace}/pods?watch=1"
    socks: list[socket.socket] = []
    healthz, status = KeepAlive(server.api_port), KeepAlive(server.api_port)
    threads: list[Every] = []
    try:
        time.sleep(1.0)  # the fill's connections close (keep-alive ends with the client session)
        before = server.status()
        healthz.healthz()  # both keep-alive connections are open before the watchers come
        status.status()
        print(f"3. {count} watches of a namespace of {pods:,} pods (filled in {fill_s:.1f}s) that never read (SO_RCVBUF 4096)")
        print(f"   before          {describe(before)}")
        began = time.perf_counter()
        took = open_watches(server.api_port, path, count, 4096, False, socks)
        # samplers on connections opened before, and a client that connects right behind the watch requests
        threads = [Every("healthz", 0.1, seconds, healthz.healthz), Every("status", 0.5, seconds, status.status),
                   Every("newcomer", 1.0, 0.5, lambda: new_connection_healthz(server.api_port))]
        for thread in threads:
            thread.start()
        print(f"   sent {count} watch requests in {took:.2f}s; then, each in a thread of its own for {seconds:.0f} s: /healthz every "
              "0.1 s and the process status every 0.5 s, each on a keep-alive connection opened before the watchers; "
              "and one /healthz on a new connection right behind the watch requests")
        for thread in threads:
            thread.join(seconds + 35.0)
            if thread.error is not None:
                fail(f"the {thread.name} sampler failed: {thread.error!r}")
        t_end = time.perf_counter()
        times = [(at - began, took) for at, took in threads[0].results]
        samples = [(at - began, s) for at, s in threads[1].results]
        first = threads[2].results[0][1] if threads[2].results else float("inf")
        shown = 0.0
        for at, sample in samples:
            if at >= shown:  # every 2 s on screen, all of them in the peak
                print(f"   t={at:5.1f}s     {describe(sample)}")
                shown = at + 2.0
        peak_rss = max(s["rssBytes"] for _, s in samples)
        peak_tasks = max(s["tasks"] for _, s in samples)
        last = samples[-1][1]
        values = [took for _, took in times]
        h50, hmax = percentile(values, 50), max(values)
        worst_at = max(times, key=lambda x: x[1])[0]
        print(f"   /healthz, kept-alive, {len(values)} GETs: p50 {ms(h50)}  p99 {ms(percentile(values, 99))}  max {ms(hmax)} "
              f"(sent at t={worst_at:.1f}s); the new connection's first /healthz: {ms(first)}")
        print(f"   peak rss {mb(peak_rss)}, peak tasks {peak_tasks}; store listeners at the end {last['storeListeners']} "
              f"(cut off by the server: {count - (last['storeListeners'] - before['storeListeners'])}); "
              f"worst DNS answer {worst(prober, began, t_end)}")
        healthz.close()  # their connections are tasks of the server's too
        status.close()
        close_all(socks)
        after, waited = settle(server, before)
        print(f"   closed, {waited:.1f}s later {describe(after)}")
        # the same again, unsampled: RSS that stays where round 1 left it is the allocator keeping its high-water
        # mark, RSS that grows again is something kept per watcher
        open_watches(server.api_port, path, count, 4096, False, socks)
        time.sleep(1.0)
        if last["storeListeners"] <= before["storeListeners"]:
            settle(server, before)  # as in round 1: until the server has cut them off (or SETTLE_MAX)
        else:
            time.sleep(2.0)
        close_all(socks)
        again, _ = settle(server, before)
        print(f"   a 2nd round of {count} opened and closed: {describe(again)}")
        task_drift, rss_drift = drift(after["tasks"], before["tasks"]), drift(after["rssBytes"], before["rssBytes"])
        again_drift = drift(again["rssBytes"], after["rssBytes"])
        if abs(rss_drift) > TARGET_DRIFT:
            print(f"   RSS did not come back within 10% ({rss_drift:+.0%}) although tasks ({task_drift:+.0%}) and storeListeners did; "
                  f"the 2nd round moved it {again_drift:+.0%} from there: "
                  + ("memory freed but kept by the allocator (its high-water mark), not held per watcher" if abs(again_drift) <= TARGET_DRIFT
                     else "it grows with every round: something is kept per watcher"))
        summary.add(f"{count} stalled watchers: /healthz p50 / max, kept-alive", f"{ms(h50)} / {ms(hmax)}",
                    f"max < {ms(TARGET_HEALTHZ)}", hmax < TARGET_HEALTHZ)
        summary.add(f"{count} stalled watchers: /healthz, new connection", ms(first), f"< {ms(TARGET_HEALTHZ)}",
                    first < TARGET_HEALTHZ)
        summary.add(f"{count} stalled watchers: RSS before / peak / after",
                    f"{mb(before['rssBytes'])} / {mb(peak_rss)} / {mb(after['rssBytes'])} ({rss_drift:+.0%})", "within 10%",
                    abs(rss_drift) <= TARGET_DRIFT)
        summary.add(f"{count} stalled watchers: RSS after a 2nd round", f"{mb(again['rssBytes'])} ({again_drift:+.0%} from round 1)")
        summary.add(f"{count} stalled watchers: tasks before / peak / after",
                    f"{before['tasks']} / {peak_tasks} / {after['tasks']} ({task_drift:+.0%})", "within 10%",
                    abs(task_drift) <= TARGET_DRIFT)
        summary.add(f"{count} stalled watchers: storeListeners end / after",
                    f"{last['storeListeners']} / {after['storeListeners']} (back in {waited:.1f}s)",
                    f"{before['storeListeners']} after", after["storeListeners"] <= before["storeListeners"])
        summary.add(f"{count} stalled watchers: worst DNS answer", worst(prober, began, t_end))
    finally:
        for thread in threads:
            thread.stop()
        close_all(socks)
        healthz.close()
        status.close()


# -- the run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, children: Children, tmp: Path, probers: list[DnsProber]) -> Summary:
    watches, stalled, pods = (300, 50, 1_000) if args.quick else (args.watches, args.stalled, args.pods)
    soft, hard = raise_nofile()
    need = watches + 200
    print(f"RLIMIT_NOFILE of this script: soft {soft}, hard {hard} (soft raised to hard; {need:,} needed); the server's "
          "soft limit is raised to its hard limit too (preexec_fn)")
    if soft < need:
        fail(f"RLIMIT_NOFILE {soft} is too low for {watches:,} watches: raise the hard limit (ulimit -Hn) or use --watches")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
          "(other work on the machine shows up in every number)")
    print("each step runs against a fresh server (so that one step's memory high-water mark does not hide the next "
          "one's growth), with a DNS probe every 2 ms throughout")
    print()
    started = time.monotonic()
    summary = Summary()
    steps: list[Callable[[Server, DnsProber], None]] = [
        lambda server, prober: measure_requests(server, prober, summary, args.baseline),
        lambda server, prober: measure_abandoned(server, prober, summary, watches, args.healthz_gets),
        lambda server, prober: measure_stalled(server, prober, summary, stalled, pods, args.seconds),
    ]
    for number, step in enumerate(steps, 1):
        server = start_server(children, tmp / f"step{number}")
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text().splitlines()
        server_nofile = next((" ".join(line.split()[3:5]) for line in limits if line.startswith("Max open files")), "?")
        print(f"[server: pid {server.proc.pid}, API 127.0.0.1:{server.api_port}, DNS 127.0.0.1:{server.dns_port}, "
              f"RLIMIT_NOFILE soft/hard {server_nofile}; serve --in-memory --gateway-port -1 --log-level WARNING]")
        check_dns(server.dns_port)
        prober = DnsProber(server.dns_port)
        probers.append(prober)
        prober.start()
        step(server, prober)
        prober.stop()
        if prober.lost:
            print(f"   DNS probes unanswered within {DNS_TIMEOUT:.0f}s in this step: {prober.lost} (each counted as {DNS_TIMEOUT:.0f}s)")
        alive = server.proc.poll() is None
        children.stop(server.proc)
        if not alive:
            fail(f"the server died during step {number}; its log:\n{tail(server.log)}")
        print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; the run took {time.monotonic() - started:.0f}s")
    return summary


@contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP all end the run through the cleanup in main()."""

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
    ap.add_argument("--quick", action="store_true", help="a smoke test: 300 abandoned and 50 stalled watches, 1,000 pods")
    ap.add_argument("--watches", type=int, default=3_000, help="abandoned watches in step 2 [3000]")
    ap.add_argument("--stalled", type=int, default=200, help="watchers that never read in step 3 [200]")
    ap.add_argument("--pods", type=int, default=5_000, help="pods in the namespace the stalled watchers watch [5000]")
    ap.add_argument("--seconds", type=float, default=15.0, help="how long step 3 samples while they stall [15]")
    ap.add_argument("--baseline", type=float, default=3.0, help="seconds of DNS probes with no request running [3]")
    ap.add_argument("--healthz-gets", type=int, default=200, help="GET /healthz count while the watches are open [200]")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server log) and print it")
    args = ap.parse_args()
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hardening-"))
    probers: list[DnsProber] = []
    summary = None
    try:
        with stopped_on_signals():
            summary = run(args, children, tmp, probers)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and removing the temp dir", file=sys.stderr)
        return 130
    finally:
        for prober in probers:
            prober.stop()
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
