"""Benchmark: DNS and the service proxy while the cluster changes, against the same cluster standing still.

One bounded run (about 80 s; two rounds alternating still and churn) of `emulator serve --in-memory` on CPU 0,
everything else on CPU 1:
  - still: dnsperf flat out (queries/s) and paced (per-query p99) on 1,000 cached service names, and wrk
    --latency (keep-alive) through a cluster IP whose 2 ready endpoints are haproxy frontends answering 200;
  - the same under churn: 500 acknowledged API writes per second, paced, over aiohttp keep-alive
    connections (pod label patches, service creates and deletes, pod readiness flips of pods that churn
    services select), with the achieved rate and the p99 acknowledgement latency;
  - correctness, still and under churn: a DNS probe checks every answer for the created/deleted names
    against the acknowledged create/delete times, an HTTP probe checks that no request sent after an
    endpoint's removal was acknowledged is answered by that endpoint (each backend names itself);
  - for scale, dnsmasq and haproxy `mode http` (the C peers), still only, in the same run.

    .venv/bin/python bench/churn/run.py               # about 80 s
    .venv/bin/python bench/churn/run.py --profile     # also py-spy 10 s into the churn: the top frames

Exit status 1 when any answer was wrong (also when BENCH_STRICT=1 and a ratio misses the target).
Every process is started here and stopped here, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import getpass
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
ZONE = "cluster.local"
STILL_NS = "bench"  # the 1,000 services dnsperf asks for
NS = "churn"  # everything that changes, and the proxied service
# The proxied service `web`: two endpoints always ready, two whose readiness the churn flips (not ready
# while still, so that still and churn both start from the 2 backends haproxy balances over).
BACKENDS = {"web-0": "127.77.1.2", "web-1": "127.77.1.3", "web-2": "127.77.1.4", "web-3": "127.77.1.5"}
STABLE = ("web-0", "web-1")
FLIPPERS = ("web-2", "web-3")
FLIP_SERVICES = 10  # flipK selects flipK-0..9: label patches and readiness flips land on these pods
FLIP_PODS = 10
CHURN_NAMES = 40  # tmp-0..39: created and deleted over and over (what the DNS probe asks for)
TARGET = 0.2  # the issue: under churn within 20 % of the still figures
INF = float("inf")


def fail(message: str) -> NoReturn:
    raise SystemExit(f"error: {message}")


# -- processes ----------------------------------------------------------------------------------------


@dataclass
class Children:
    """Every process this run started, so that any exit path stops them all."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, cmd: list[str], log: Path, cpu: str | None, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]  # taskset execs: the pid is the program's own
        with log.open("ab") as out:
            # A session of its own: Ctrl-C reaches only this script, which then stops the children.
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
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
            self.stop(proc)


async def finish(children: Children, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a bounded tool (dnsperf, wrk, py-spy) without a thread, so that Ctrl-C never waits on it."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            children.stop(proc)
            fail(f"{proc.args!r} did not finish in {timeout:.0f}s")
        await asyncio.sleep(0.05)
    if proc in children.procs:
        children.procs.remove(proc)


def free_port(ip: str = "127.0.0.1", udp_too: bool = False) -> int:
    for _ in range(50):
        with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind((ip, 0))
            port = int(t.getsockname()[1])
            if not udp_too:
                return port
            try:
                u.bind((ip, port))
            except OSError:
                continue
            return port
    fail("no free port")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def wait_tcp(ip: str, port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(ip, port)
            writer.close()
            return
        except OSError:
            if proc.poll() is not None:
                fail(f"{log.stem} exited with status {proc.returncode}; its log:\n{tail(log)}")
            if time.monotonic() > deadline:
                fail(f"nothing listens on {ip}:{port} after {timeout:.0f}s; log:\n{tail(log)}")
            await asyncio.sleep(0.05)


# -- DNS on the wire (the probe builds and reads its own packets: cheap enough for thousands a second) ------


def dns_question(name: str) -> bytes:
    """A query for `name` A, recursion desired, with id 0 (the probe puts its id in front)."""
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += length + 1


def dns_reply(data: bytes) -> tuple[int, int, tuple[str, ...]]:
    """(id, rcode, A addresses) of a reply."""
    qid, flags, questions, answers = struct.unpack_from("!HHHH", data)
    pos = 12
    for _ in range(questions):
        pos = _skip_name(data, pos) + 4
    ips = []
    for _ in range(answers):
        pos = _skip_name(data, pos)
        rtype, _class, _ttl, length = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        if rtype == 1 and length == 4:
            ips.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += length
    return qid, flags & 0xF, tuple(ips)


@dataclass(slots=True)
class DnsAnswer:
    name: str
    sent: float
    received: float
    rcode: int
    ips: tuple[str, ...]


class DnsProbe(asyncio.DatagramProtocol):
    """Paced A queries for the churned names (and a tenth for still names), every answer kept with the
    time its query was sent and the time it was read, for the check afterwards."""

    def __init__(self, churn_names: list[str], still: dict[str, str]) -> None:
        self.names = [*churn_names * 9, *list(still)[: len(churn_names)]]
        random.Random(2).shuffle(self.names)
        self.questions = {n: dns_question(n) for n in self.names}
        self.pending: dict[int, tuple[str, float]] = {}
        self.answers: list[DnsAnswer] = []
        self.lost = 0
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        received = time.monotonic()
        try:
            qid, rcode, ips = dns_reply(data)
        except (struct.error, IndexError):
            return
        query = self.pending.pop(qid, None)
        if query is not None:
            self.answers.append(DnsAnswer(query[0], query[1], received, rcode, ips))

    async def run(self, port: int, rate: float, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=("127.0.0.1", port))
        self.transport = transport
        began, sent, qid = time.monotonic(), 0, 0
        try:
            while not stop.is_set():
                due = int((time.monotonic() - began) * rate)
                while sent < due:
                    name = self.names[sent % len(self.names)]
                    qid = (qid + 1) & 0xFFFF
                    if self.pending.pop(qid, None) is not None:
                        self.lost += 1  # unanswered for a whole turn of the ids
                    self.pending[qid] = (name, time.monotonic())
                    transport.sendto(struct.pack("!H", qid) + self.questions[name])
                    sent += 1
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.5)  # the last answers
        finally:
            transport.close()
        self.lost += len(self.pending)


# -- the HTTP probe -------------------------------------------------------------------------------------


@dataclass
class HttpProbe:
    """Paced GETs over a few keep-alive connections through the cluster IP; every answer is kept with the
    time it was sent, the time it was read and the backend that answered (its body names it)."""

    results: list[tuple[float, float, str]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    async def connection(self, ip: str, port: int, interval: float, stop: asyncio.Event) -> None:
        request = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(ip, port)
                sent = time.monotonic()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
                status = int(head.split(b" ", 2)[1])
                found = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                body = await asyncio.wait_for(reader.readexactly(int(found.group(1)) if found else 0), 5.0)
                received = time.monotonic()
                if status != 200:
                    self.failures[f"HTTP {status}"] += 1
                else:
                    self.results.append((sent, received, body.decode(errors="replace").strip()))
                if re.search(rb"(?i)\r\nconnection:\s*close", head):
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as e:
                self.failures[type(e).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if writer is not None:
            writer.close()


# -- the churn ------------------------------------------------------------------------------------------


@dataclass
class Incarnation:
    """One life of a churned service: create sent/acknowledged (with its cluster IP), delete sent/acknowledged."""

    create_sent: float
    create_ack: float | None = None
    ip: str | None = None
    delete_sent: float = INF
    delete_ack: float = INF


@dataclass
class Write:
    kind: str
    sent: float
    acked: float | None = None
    status: int = 0  # -1: no answer (the outcome is unknown)
    body: bytes = b""


class Churn:
    """500 API writes a second (by default), paced open-loop: each write leaves at its time whether or not
    the earlier ones were acknowledged (up to `max_in_flight`), so a slow server shows as a lower achieved
    rate and a longer acknowledgement latency, not as a politer client."""

    # per 10 writes: 4 label patches, 3 service creates/deletes, 3 readiness flips
    PATTERN = "LSFLSFLSFL"

    def __init__(self, session: aiohttp.ClientSession, base: str, rate: float, web_flips: float) -> None:
        self.session, self.base, self.rate = session, base, rate
        self.rng = random.Random(3)
        self.writes: list[Write] = []
        self.skipped = 0
        self.max_in_flight = 256
        self.tasks: set[asyncio.Task[None]] = set()
        self.lives: dict[str, list[Incarnation]] = {f"tmp-{i}": [] for i in range(CHURN_NAMES)}
        self.busy: set[str] = set()
        self.pods = [f"flip{k}-{j}" for k in range(FLIP_SERVICES) for j in range(FLIP_PODS)]
        self.ready = dict.fromkeys(self.pods, True)
        # The endpoints of `web` whose readiness flips: (op, sent, acknowledged) per pod, oldest first.
        self.flips: dict[str, list[tuple[str, float, float]]] = {p: [] for p in FLIPPERS}
        self.web_ready = dict.fromkeys(FLIPPERS, False)
        self.web_every = max(1, round(rate * 0.3 / web_flips)) if web_flips > 0 else 0
        self.counter = 0
        self.flip_counter = 0

    async def run(self, stop: asyncio.Event) -> tuple[float, float]:
        began = time.monotonic()
        issued = 0
        while not stop.is_set():
            due = int((time.monotonic() - began) * self.rate)
            while issued < due:
                if len(self.tasks) >= self.max_in_flight:
                    self.skipped += 1
                else:
                    task = asyncio.create_task(self._one(self.PATTERN[issued % len(self.PATTERN)]))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                issued += 1
            await asyncio.sleep(0.001)
        ended = time.monotonic()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10.0)
        return began, ended

    async def _one(self, op: str) -> None:
        self.counter += 1
        if op == "L":
            pod = self.pods[self.counter % len(self.pods)]
            await self._send("label patch", "PATCH", f"pods/{pod}", {"metadata": {"labels": {"tick": str(self.counter)}}},
                             "application/merge-patch+json")
        elif op == "S":
            await self._service_op()
        else:
            self.flip_counter += 1
            flips = self.flip_counter
            if self.web_every and flips % self.web_every == 0:
                await self._web_flip(FLIPPERS[(flips // self.web_every) % len(FLIPPERS)])
            else:
                await self._pod_flip()

    async def settle(self) -> None:
        """Leave web's flipping endpoints not ready, as the still rounds have them."""
        for pod in FLIPPERS:
            if self.web_ready[pod]:
                await self._web_flip(pod)

    async def _send(self, kind: str, method: str, path: str, body: Any, ctype: str = "application/json") -> Write:
        write = Write(kind, time.monotonic())
        self.writes.append(write)
        try:
            async with self.session.request(method, f"{self.base}/api/v1/namespaces/{NS}/{path}",
                                            data=orjson.dumps(body) if body is not None else None,
                                            headers={"Content-Type": ctype}) as resp:
                write.status = resp.status
                payload = await resp.read()
            write.acked = time.monotonic()
            write.body = payload
        except (aiohttp.ClientError, TimeoutError):
            write.status = -1
        return write

    async def _service_op(self) -> None:
        idle = [n for n in self.lives if n not in self.busy]
        live = [n for n in idle if self.lives[n] and self.lives[n][-1].delete_sent == INF and self.lives[n][-1].create_ack]
        gone = [n for n in idle if not self.lives[n] or self.lives[n][-1].delete_ack != INF]
        create = bool(gone) and (len(live) < CHURN_NAMES // 2 or not live)
        if not live and not gone:
            return
        name = self.rng.choice(gone) if create else min(live, key=lambda n: self.lives[n][-1].create_ack or 0.0)
        self.busy.add(name)
        if create:
            life = Incarnation(time.monotonic())
            self.lives[name].append(life)
            body = {
                "metadata": {"name": name, "labels": {"churn": "tmp"}},
                "spec": {"selector": {"app": f"flip{self.rng.randrange(FLIP_SERVICES)}"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }
            write = await self._send("service create", "POST", "services", body)
            life.create_sent = write.sent
            if write.status == 201:
                life.create_ack = write.acked
                life.ip = orjson.loads(write.body)["spec"]["clusterIP"]
            elif write.status > 0:
                self.lives[name].pop()  # refused: it never existed
        else:
            life = self.lives[name][-1]
            life.delete_sent = time.monotonic()
            write = await self._send("service delete", "DELETE", f"services/{name}", None)
            life.delete_sent = write.sent
            if write.status == 200 and write.acked is not None:
                life.delete_ack = write.acked
            elif write.status > 0:
                life.delete_sent = INF  # refused: it still exists
        if write.status > 0:
            self.busy.discard(name)  # else the outcome is unknown: the name is left alone from now on

    async def _pod_flip(self) -> None:
        idle = [p for p in self.pods if p not in self.busy]
        if not idle:
            return
        pod = self.rng.choice(idle)
        self.busy.add(pod)
        try:
            ready = not self.ready[pod]
            write = await self._send("readiness flip", "PATCH", f"pods/{pod}/status", _readiness(ready),
                                     "application/strategic-merge-patch+json")
            if write.status == 200:
                self.ready[pod] = ready
        finally:
            self.busy.discard(pod)

    async def _web_flip(self, pod: str) -> None:
        if pod in self.busy:
            return
        self.busy.add(pod)
        try:
            ready = not self.web_ready[pod]
            write = await self._send("readiness flip", "PATCH", f"pods/{pod}/status", _readiness(ready),
                                     "application/strategic-merge-patch+json")
            if write.status == 200 and write.acked is not None:
                self.web_ready[pod] = ready
                self.flips[pod].append(("up" if ready else "down", write.sent, write.acked))
            else:
                # Unknown or refused: count it as possibly up from its sending on (never a false alarm).
                self.flips[pod].append(("up", write.sent, INF))
        finally:
            self.busy.discard(pod)


def _readiness(ready: bool) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


# -- the checks -----------------------------------------------------------------------------------------


def check_dns(answers: list[DnsAnswer], lives: dict[str, list[Incarnation]], still: dict[str, str]) -> tuple[int, Counter[str], list[str]]:
    """(answers checked, wrong answers by why, a few examples). An answer is right when it is a state the name
    had at some moment within [query sent, answer read]: an address of a life that may have existed then
    (create sent before the answer, delete not acknowledged before the query), or no address while the name
    may have been absent then (not a life whose create was acknowledged before the query and whose delete
    was sent only after the answer)."""
    wrong: Counter[str] = Counter()
    examples: list[str] = []
    short = {f"{n}.{NS}.svc.{ZONE}": n for n in lives}
    for a in answers:
        why = ""
        if a.name in still:
            if a.rcode != 0 or a.ips != (still[a.name],):
                why = "still name answered wrong"
        elif a.rcode not in (0, 3):
            why = f"rcode {a.rcode}"
        else:
            name = short[a.name]
            if a.ips:
                possible = [life for life in lives[name] if life.create_sent <= a.received and life.delete_ack >= a.sent]
                addresses = {life.ip for life in possible}
                if not possible:
                    why = "address for a name deleted (acknowledged) before the query"
                elif None not in addresses and not set(a.ips) <= addresses:
                    why = "an address the service did not have"
            else:
                existed = any(
                    life.create_ack is not None and life.create_ack <= a.sent and life.delete_sent >= a.received
                    for life in lives[name]
                )
                if existed:
                    why = "NXDOMAIN for a name created (acknowledged) before the query"
        if why:
            wrong[why] += 1
            if len(examples) < 3:
                examples.append(f"{a.name} rcode {a.rcode} {list(a.ips)}: {why}")
    return len(answers), wrong, examples


def check_http(results: list[tuple[float, float, str]], flips: dict[str, list[tuple[str, float, float]]],
               down_since: dict[str, float]) -> tuple[int, int, Counter[str], list[str]]:
    """(requests checked, answered by a removed endpoint, answers per backend, examples). An endpoint is
    surely removed from the acknowledgement of its NotReady flip until its next Ready flip is sent; a request
    sent inside such a window and answered before it ends, by that endpoint, went to a removed endpoint."""
    windows: dict[str, list[tuple[float, float]]] = {}
    for pod, since in down_since.items():
        spans: list[tuple[float, float]] = []
        start: float | None = since
        for op, sent, acked in flips.get(pod, []):
            if op == "up" and start is not None:
                spans.append((start, sent))
                start = None
            elif op == "down" and start is None:
                start = acked
        if start is not None:
            spans.append((start, INF))
        windows[pod] = spans
    starts = {pod: [s for s, _ in spans] for pod, spans in windows.items()}
    per_backend: Counter[str] = Counter()
    wrong, examples = 0, list[str]()
    for sent, received, backend in results:
        per_backend[backend] += 1
        if backend not in BACKENDS:
            wrong += 1
            continue
        if backend not in windows:
            continue
        i = bisect.bisect_right(starts[backend], sent) - 1
        if i >= 0 and received <= windows[backend][i][1]:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"sent {sent - windows[backend][i][0]:.4f}s after {backend} was acknowledged not ready")
    return len(results), wrong, per_backend, examples


# -- measuring tools ------------------------------------------------------------------------------------


@dataclass
class Rate:
    per_s: float
    p99_ms: float
    note: str = ""
    cpu: float = 0.0  # CPU seconds the servers used during the run
    seconds: float = 0.0  # its wall time

    def cpu_per_answer(self, background: float) -> float:
        """Seconds of server CPU per query or request, net of `background` (a share of one core)."""
        answered = self.per_s * self.seconds
        return (self.cpu - background * self.seconds) / answered if answered else float("nan")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


async def dnsperf(children: Children, tmp: Path, port: int, queries: Path, seconds: float, cpu: str | None,
                  qps: int | None = None) -> Rate:
    command = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds), "-t", "2"]
    command += ["-Q", str(qps), "-v"] if qps else ["-q", "200"]  # -v: one line per query with its latency
    out = tmp / f"dnsperf-{time.monotonic_ns()}.out"
    await finish(children, children.spawn(command, out, cpu), seconds + 30)
    text = out.read_text(errors="replace")
    found = re.search(r"Queries per second:\s+([\d.]+)", text)
    if not found:
        fail(f"could not read dnsperf's output:\n{text[-2000:]}")
    lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", text)
    latencies = sorted(float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.M))
    p99 = 1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan")
    out.unlink()
    return Rate(float(found.group(1)), p99, f"lost {lost.group(1)}%" if lost and float(lost.group(1)) else "")


async def wrk(children: Children, tmp: Path, url: str, seconds: int, connections: int, cpu: str | None) -> Rate:
    out = tmp / f"wrk-{time.monotonic_ns()}.out"
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    await finish(children, children.spawn(cmd, out, cpu), seconds + 30)
    text = out.read_text(errors="replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if not (rps and p99):
        fail(f"could not read wrk's output:\n{text}")
    errors = re.findall(r"Non-2xx or 3xx responses: \d+|Socket errors: .*", text)
    return Rate(float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], "; ".join(errors))


# -- the run --------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    base: str
    dns_port: int
    web: tuple[str, int]  # cluster IP, port
    still: dict[str, str]  # DNS name → cluster IP
    down_since: dict[str, float]  # flipper → when its NotReady create was acknowledged


async def api(session: aiohttp.ClientSession, method: str, url: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
    for _ in range(100):  # a new namespace's default service account comes a moment after the namespace
        async with session.request(method, url, data=orjson.dumps(body) if body is not None else None,
                                   headers={"Content-Type": "application/json"}) as resp:
            payload = await resp.read()
            if resp.status in expect:
                return dict(orjson.loads(payload)) if payload else {}
            if resp.status != 403 or b"serviceaccount" not in payload.lower():
                fail(f"{method} {url}: {resp.status} {payload[:300]!r}")
        await asyncio.sleep(0.05)
    fail(f"{method} {url}: still refused after 5 s")


def _pod(name: str, app: str, ip: str | None, ready: bool, port: int) -> dict[str, Any]:
    status: dict[str, Any] = {} if ready else {"conditions": [{"type": "Ready", "status": "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": port}]}]},
            "status": status}


async def populate(session: aiohttp.ClientSession, base: str, dns_port: int, names: int, backend_port: int) -> Cluster:
    v1 = f"{base}/api/v1"
    for ns in (STILL_NS, NS):
        await api(session, "POST", f"{v1}/namespaces", {"metadata": {"name": ns}})
    still: dict[str, str] = {}
    todo = iter(range(names))

    async def create_still() -> None:
        for i in todo:
            svc = await api(session, "POST", f"{v1}/namespaces/{STILL_NS}/services",
                            {"metadata": {"name": f"svc{i}"}, "spec": {"ports": [{"name": "tcp", "port": 80}]}})
            still[f"svc{i}.{STILL_NS}.svc.{ZONE}"] = svc["spec"]["clusterIP"]

    await asyncio.gather(*(create_still() for _ in range(16)))
    web = await api(session, "POST", f"{v1}/namespaces/{NS}/services", {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": backend_port}]},
    })
    down_since = {}
    for pod, ip in BACKENDS.items():
        await api(session, "POST", f"{v1}/namespaces/{NS}/pods", _pod(pod, "web", ip, pod in STABLE, backend_port))
        if pod in FLIPPERS:
            down_since[pod] = time.monotonic()
    for k in range(FLIP_SERVICES):
        await api(session, "POST", f"{v1}/namespaces/{NS}/services", {
            "metadata": {"name": f"flip{k}"},
            "spec": {"selector": {"app": f"flip{k}"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        })
        await asyncio.gather(*(api(session, "POST", f"{v1}/namespaces/{NS}/pods", _pod(f"flip{k}-{j}", f"flip{k}", None, True, 8080))
                               for j in range(FLIP_PODS)))
    return Cluster(base, dns_port, (web["spec"]["clusterIP"], 80), still, down_since)


def backend_config(port: int) -> str:
    fronts = "".join(
        f"frontend {pod}\n  bind {ip}:{port}\n  http-request return status 200 content-type text/plain string {pod}\n"
        for pod, ip in BACKENDS.items()
    )
    return f"global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n{fronts}"


def haproxy_config(port: int, backend_port: int) -> str:
    servers = "".join(f"  server {pod} {BACKENDS[pod]}:{backend_port}\n" for pod in STABLE)
    return (f"global\n  nbthread 1\ndefaults\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            f"frontend http_in\n  mode http\n  bind 127.0.0.1:{port}\n  default_backend web\n"
            f"backend web\n  mode http\n  balance roundrobin\n  http-reuse always\n  option forwardfor\n{servers}")


@dataclass
class Phase:
    dns: Rate
    dns_paced: Rate
    proxy: Rate
    server_busy: float  # share of one core the emulator used while measured
    client_busy: float  # the same for this script (probes, churn writer)
    neighbours: float  # the share of the server's CPU other processes took meanwhile (other work on the machine)


async def measure(children: Children, tmp: Path, args: argparse.Namespace, dns_port: int, queries: Path, url: str,
                  cpu: str | None, servers: list[int], server_cpu: str | None) -> Phase:
    """dnsperf flat out, dnsperf paced, wrk; with the CPU the servers (pinned to `server_cpu`), this script
    and everything else on the server's CPU used meanwhile."""
    core = int(server_cpu) if server_cpu is not None else None
    cpu0, own0, core0, wall0 = sum(map(cpu_seconds, servers)), cpu_seconds(os.getpid()), core_busy(core), time.monotonic()
    flat = await dnsperf(children, tmp, dns_port, queries, args.seconds, cpu)
    cpu1, wall1 = sum(map(cpu_seconds, servers)), time.monotonic()
    flat.cpu, flat.seconds = cpu1 - cpu0, wall1 - wall0
    paced = await dnsperf(children, tmp, dns_port, queries, args.paced_seconds, cpu, qps=args.dns_rate)
    cpu2, wall2 = sum(map(cpu_seconds, servers)), time.monotonic()
    proxy = await wrk(children, tmp, url, int(args.seconds), args.connections, cpu)
    proxy.cpu, proxy.seconds = sum(map(cpu_seconds, servers)) - cpu2, time.monotonic() - wall2
    wall = time.monotonic() - wall0
    used = sum(map(cpu_seconds, servers)) - cpu0
    core1 = core_busy(core)
    others = ((core1[0] - core0[0]) / (core1[1] - core0[1]) - used / wall) if core1[1] > core0[1] else float("nan")
    return Phase(flat, paced, proxy, used / wall, (cpu_seconds(os.getpid()) - own0) / wall, max(0.0, others))


def core_busy(core: int | None) -> tuple[float, float]:
    """(busy, total) jiffies of one CPU so far, from /proc/stat; (0, 0) for None."""
    if core is None:
        return 0.0, 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in line.split()[1:9])
            busy = user + nice + system + irq + softirq + steal
            return float(busy), float(busy + idle + iowait)
    return 0.0, 0.0


@dataclass
class Probes:
    """The two correctness probes, running beside the load until `stop()`: DNS answers for the churned
    names, HTTP requests through the web service's cluster IP (four connections)."""

    dns: DnsProbe
    http: HttpProbe
    stopped: asyncio.Event
    tasks: list[asyncio.Task[Any]]

    @classmethod
    def start(cls, args: argparse.Namespace, dns_port: int, cluster: Cluster) -> Probes:
        dns, http, stopped = DnsProbe([f"tmp-{i}.{NS}.svc.{ZONE}" for i in range(CHURN_NAMES)], cluster.still), HttpProbe(), asyncio.Event()
        per_conn = args.http_probe_rate / 4
        tasks = [asyncio.create_task(dns.run(dns_port, args.dns_probe_rate, stopped))]
        tasks += [asyncio.create_task(http.connection(*cluster.web, 1 / per_conn, stopped)) for _ in range(4)]
        return cls(dns, http, stopped, tasks)

    async def stop(self) -> None:
        self.stopped.set()
        await asyncio.gather(*self.tasks)


async def cpu_only(args: argparse.Namespace, children: Children, tmp: Path, pid: int, load_cpu: str | None, session: aiohttp.ClientSession,
                   base: str, dns_port: int, cluster: Cluster, load_before: tuple[float, ...]) -> int:
    """`--cpu-only`: no dnsperf, wrk or peers; the churn for a while beside the two probes, and what each
    acknowledged write cost the emulator in CPU (steadier than the rates on a shared machine)."""
    probes = Probes.start(args, dns_port, cluster)
    dns_probe, http_probe = probes.dns, probes.http
    probes_only = await busy(pid, 1.0)
    churn = Churn(session, base, args.rate, args.web_flips)
    churn_stop = asyncio.Event()
    churn_task = asyncio.create_task(churn.run(churn_stop))
    await asyncio.sleep(0.5)
    spy = asyncio.create_task(profile(children, tmp, pid, int(args.cpu_only), load_cpu)) if args.profile else None
    cpu, began = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(args.cpu_only)
    used, ended = cpu_seconds(pid) - cpu, time.monotonic()
    churn_stop.set()
    window = await churn_task
    await churn.settle()
    await probes.stop()
    acked = [w for w in churn.writes if w.acked is not None and 200 <= w.status < 300 and began <= w.acked <= ended]
    kinds = Counter(w.kind for w in acked)
    latencies = [w.acked - w.sent for w in acked if w.acked is not None]
    share = used / (ended - began)
    cost = (used - probes_only * (ended - began)) / max(len(acked), 1)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}, after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"churn {ended - began:.1f}s: {len(acked) / (ended - began):,.0f} acknowledged/s ("
          + ", ".join(f"{k} {n / (ended - began):,.0f}/s" for k, n in sorted(kinds.items()))
          + f"); ack p50 {1000 * pct(latencies, 50):.1f} ms, p99 {1000 * pct(latencies, 99):.1f} ms")
    print(f"emulator {100 * share:.0f}% of one core against {100 * probes_only:.0f}% with the probes only: "
          f"{1000 * cost:.3f} ms of emulator CPU per acknowledged write")
    dns_checked, dns_wrong, dns_examples = check_dns(dns_probe.answers, churn.lives, cluster.still)
    http_checked, http_wrong, _, http_examples = check_http(http_probe.results, churn.flips, cluster.down_since)
    print(f"correctness: DNS {dns_checked:,} checked, {sum(dns_wrong.values())} wrong, {dns_probe.lost} unanswered; "
          f"HTTP {http_checked:,} checked, {http_wrong} wrong")
    for example in [*dns_examples, *http_examples]:
        print(f"    e.g. {example}")
    del window
    for line in await spy if spy else []:
        print(line)
    return 1 if sum(dns_wrong.values()) or http_wrong else 0


async def busy(pid: int, seconds: float) -> float:
    """The share of one core `pid` uses over the next `seconds`."""
    cpu, began = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - began)


def best(phases: list[Phase]) -> Phase:
    """Each figure at its best over the rounds (highest rate, lowest p99); CPU shares as their mean."""

    def top(rates: list[Rate]) -> Rate:
        notes = "; ".join(sorted({r.note for r in rates if r.note}))
        return Rate(max(r.per_s for r in rates), min(r.p99_ms for r in rates), notes)

    return Phase(top([p.dns for p in phases]), top([p.dns_paced for p in phases]), top([p.proxy for p in phases]),
                 *(sum(getattr(p, f) for p in phases) / len(phases) for f in ("server_busy", "client_busy", "neighbours")))


async def profile(children: Children, tmp: Path, pid: int, seconds: int, cpu: str | None) -> list[str]:
    if not PY_SPY.exists():
        return ["py-spy is not in .venv (.venv/bin/pip install py-spy)"]
    out = tmp / "profile.txt"
    cmd = [str(PY_SPY), "record", "-p", str(pid), "-d", str(seconds), "-r", "100", "--nonblocking", "-f", "raw", "-o", str(out)]
    await finish(children, children.spawn(cmd, tmp / "py-spy.log", cpu), seconds + 30)
    if not out.exists():
        return [f"py-spy wrote nothing: {tail(tmp / 'py-spy.log', 5)}"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    entries: Counter[str] = Counter()  # what the event loop was running: the first frame below it
    total = 0
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]  # without line numbers
        if frames:
            own[frames[-1]] += n
        below = [f for f in frames if not _TRUNK.search(f)]
        entries[below[0] if below else "(the event loop itself)"] += n
        for f in set(below):
            if re.search(r"\((?:\S*/)?(?:emulator|api)/", f):
                inclusive[f] += n
    lines = [f"py-spy {seconds}s at 100 Hz during the churn, {total:,} samples; top 10 by own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(10)]
    lines += ["what the event loop ran (the first frame below it), top 8:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in entries.most_common(8)]
    lines += ["top 10 emulator/api frames by time inside them (inclusive):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(10)]
    return [_shorten(line) for line in lines]


_TRUNK = re.compile(r"\((?:<frozen runpy>|emulator/__main__\.py|emulator/cli/|\S*asyncio/|\S*uvloop/)")


def _shorten(line: str) -> str:
    return re.sub(r"\(/[^()]*?/((?:emulator|api|site-packages|python3\.\d+)/)", r"(\1", line)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


async def run(args: argparse.Namespace, children: Children, tmp: Path) -> int:
    ncpu = os.cpu_count() or 1
    pin = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    server_cpu, load_cpu = ("0", "1" if ncpu == 2 else f"1-{ncpu - 1}") if pin else (None, None)
    if pin:
        os.sched_setaffinity(0, set(range(1, ncpu)))  # this script (churn writer, probes) too
    load_before = os.getloadavg()
    started = time.monotonic()

    # the backends, the peers, the emulator
    backend_port = free_port(BACKENDS["web-0"])
    (tmp / "backends.cfg").write_text(backend_config(backend_port))
    backends = children.spawn(["haproxy", "-db", "-f", str(tmp / "backends.cfg")], tmp / "backends.log", load_cpu)
    haproxy_port = free_port()
    (tmp / "haproxy.cfg").write_text(haproxy_config(haproxy_port, backend_port))
    haproxy = children.spawn(["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")], tmp / "haproxy.log", server_cpu)
    dnsmasq_port = free_port(udp_too=True)
    api_port, dns_port = free_port(), free_port(udp_too=True)
    emu_log = tmp / "emulator.log"
    emulator = children.spawn([PYTHON, "-m", "emulator", "serve", "--in-memory", "--api-port", str(api_port),
                               "--dns-port", str(dns_port), "--gateway-port", "-1", "--gateway-https-port", "-1",
                               "--log-level", "WARNING"], emu_log, server_cpu, Path(args.source or ROOT))
    for ip in BACKENDS.values():
        await wait_tcp(ip, backend_port, backends, tmp / "backends.log")
    await wait_tcp("127.0.0.1", haproxy_port, haproxy, tmp / "haproxy.log")
    await wait_tcp("127.0.0.1", api_port, emulator, emu_log)
    base = f"http://127.0.0.1:{api_port}"
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for _ in range(600):
            try:
                async with session.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        cluster = await populate(session, base, dns_port, args.names, backend_port)
        hosts = tmp / "hosts"
        hosts.write_text("".join(f"{ip} {name}\n" for name, ip in cluster.still.items()))
        dnsmasq = children.spawn(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
                                  f"--port={dnsmasq_port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                                  "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local-ttl=5",
                                  f"--user={getpass.getuser()}"], tmp / "dnsmasq.log", server_cpu)
        await wait_tcp("127.0.0.1", dnsmasq_port, dnsmasq, tmp / "dnsmasq.log")
        queries = tmp / "queries"
        queries.write_text("".join(f"{name} A\n" for name in cluster.still))
        web_url = f"http://{cluster.web[0]}:{cluster.web[1]}/"
        await wait_tcp(*cluster.web, emulator, emu_log)
        setup = time.monotonic() - started

        print(f"emulator `serve --in-memory` (flows on, as by default) on {'CPU ' + server_cpu if server_cpu else 'any CPU'}; "
              f"dnsperf, wrk, the haproxy backends, the probes and the churn writer on {'CPU ' + load_cpu if load_cpu else 'any CPU'}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)} on {ncpu} CPUs; setup took {setup:.1f}s")
        print(f"cluster: {args.names:,} services in `{STILL_NS}` (the names dnsperf asks for, cached after a warm-up); "
              f"in `{NS}`: service web (2 ready backends + 2 whose readiness flips), {FLIP_SERVICES} services × "
              f"{FLIP_PODS} pods, {CHURN_NAMES} names created and deleted over and over")

        if args.cpu_only:
            return await cpu_only(args, children, tmp, emulator.pid, load_cpu, session, base, dns_port, cluster, load_before)

        # warm-up: the answer caches, the proxy's pooled connections
        await dnsperf(children, tmp, dns_port, queries, 1, load_cpu)
        await dnsperf(children, tmp, dnsmasq_port, queries, 1, load_cpu)
        await wrk(children, tmp, web_url, 1, args.connections, load_cpu)
        await wrk(children, tmp, f"http://127.0.0.1:{haproxy_port}/", 1, args.connections, load_cpu)

        # the peers, still only
        peer = await measure(children, tmp, args, dnsmasq_port, queries, f"http://127.0.0.1:{haproxy_port}/", load_cpu,
                             [haproxy.pid, dnsmasq.pid], server_cpu)

        # the emulator still, then under churn; the probes run through both
        probes = Probes.start(args, dns_port, cluster)
        dns_probe, http_probe = probes.dns, probes.http
        churn = Churn(session, base, args.rate, args.web_flips)
        stills: list[Phase] = []
        churns: list[Phase] = []
        windows: list[tuple[float, float]] = []
        spy: asyncio.Task[list[str]] | None = None
        quiet = [time.monotonic()]
        probes_only = await busy(emulator.pid, 1.0)
        quiet.append(time.monotonic())
        calm: list[tuple[float, float]] = []  # the churn alone, before each round's figures
        alone: list[float] = []
        for n in range(args.rounds):  # still and churn alternate, so that a noisy neighbour hurts both alike
            stills.append(await measure(children, tmp, args, dns_port, queries, web_url, load_cpu, [emulator.pid], server_cpu))
            churn_stop = asyncio.Event()
            churn_task = asyncio.create_task(churn.run(churn_stop))
            calm_start = time.monotonic() + 0.5
            alone.append(await busy(emulator.pid, 2.0))  # the writes reach their pace; what they cost alone
            calm.append((calm_start, time.monotonic()))
            if args.profile and n == 0:
                spy = asyncio.create_task(profile(children, tmp, emulator.pid, 10, load_cpu))
            churns.append(await measure(children, tmp, args, dns_port, queries, web_url, load_cpu, [emulator.pid], server_cpu))
            churn_stop.set()
            began, ended = await churn_task
            windows.append((began, ended))
            await churn.settle()  # web-2 and web-3 not ready again, as in every still round
        await probes.stop()
        profile_lines = await spy if spy else []
        still, churned = best(stills), best(churns)

    # -- report --
    def row(label: str, unit: str, s: float, c: float, p: float, higher_better: bool) -> tuple[str, float, bool]:
        ratio = c / s if s else float("nan")
        ok = ratio >= 1 - TARGET if higher_better else ratio <= 1 + TARGET
        goal = f">= {1 - TARGET:.1f}" if higher_better else f"<= {1 + TARGET:.1f}"
        print(f"  {label:<34} {s:>11,.{3 if unit == 'ms' else 0}f} {c:>11,.{3 if unit == 'ms' else 0}f} {unit:<4}"
              f" {ratio:>6.2f} ({goal}: {'met' if ok else 'NOT met'})   peer still {p:,.{3 if unit == 'ms' else 0}f}")
        return label, ratio, ok

    print()
    rounds = f"best of {args.rounds} rounds" if args.rounds > 1 else "1 round"
    print(f"{rounds}, still and churn alternating (the emulator one process; the peers once, still)")
    print(f"{'':<36} {'still':>11} {'churn':>11}      churn/still (target)")
    rows = [
        row(f"DNS queries/s (dnsperf -q200 {args.seconds:g}s)", "q/s", still.dns.per_s, churned.dns.per_s, peer.dns.per_s, True),
        row(f"DNS p99 (dnsperf -Q{args.dns_rate} -v {args.paced_seconds:g}s)", "ms", still.dns_paced.p99_ms, churned.dns_paced.p99_ms, peer.dns_paced.p99_ms, False),
        row(f"proxy requests/s (wrk -c{args.connections} {args.seconds:g}s)", "r/s", still.proxy.per_s, churned.proxy.per_s, peer.proxy.per_s, True),
        row("proxy p99 (wrk --latency, keep-alive)", "ms", still.proxy.p99_ms, churned.proxy.p99_ms, peer.proxy.p99_ms, False),
    ]
    print(f"  CPU while measured, % of one core: emulator still {100 * still.server_busy:.0f}, churn {100 * churned.server_busy:.0f}; "
          f"this script (probes; churn writer) still {100 * still.client_busy:.0f}, churn {100 * churned.client_busy:.0f}")
    if server_cpu is not None:
        print(f"  other processes on CPU {server_cpu} (not this run's): {100 * peer.neighbours:.0f}% while the peers ran, "
              f"{100 * still.neighbours:.0f}% still, {100 * churned.neighbours:.0f}% churn: above a few %, the figures are "
              f"the machine's, not the emulator's")
    for label, phases in (("still", stills), ("churn", churns)):
        print(f"  {label} rounds: DNS " + ", ".join(f"{p.dns.per_s:,.0f}" for p in phases) + " q/s, p99 "
              + ", ".join(f"{p.dns_paced.p99_ms:.3f}" for p in phases) + " ms; proxy "
              + ", ".join(f"{p.proxy.per_s:,.0f}" for p in phases) + " r/s, p99 "
              + ", ".join(f"{p.proxy.p99_ms:.3f}" for p in phases) + " ms")
    for label, phase in (("still", still), ("churn", churned), ("peers", peer)):
        notes = [n for n in (phase.dns.note, phase.dns_paced.note, phase.proxy.note) if n]
        if notes:
            print(f"  {label}: {'; '.join(notes)}")
    print(f"  peers (still only, same run{', on the server CPU' if server_cpu is not None else ''}): dnsmasq with the same {args.names:,} names in a hosts file; "
          f"haproxy {subprocess.run(['haproxy', '-v'], capture_output=True, text=True).stdout.split()[2]} `mode http` nbthread 1 "
          f"over web-0/web-1. emulator still / peer: DNS {still.dns.per_s / peer.dns.per_s:.2f}, proxy {still.proxy.per_s / peer.proxy.per_s:.2f}")

    dns_cpu = sum(p.dns.cpu_per_answer(probes_only) for p in stills) / len(stills)
    proxy_cpu = sum(p.proxy.cpu_per_answer(probes_only) for p in stills) / len(stills)
    print(f"  CPU per answer, still, flat out (steadier than rates on a busy machine): emulator DNS {1e6 * dns_cpu:.1f} us/query "
          f"(dnsmasq {1e6 * peer.dns.cpu_per_answer(0.0):.1f}), proxy {1e6 * proxy_cpu:.1f} us/request "
          f"(haproxy {1e6 * peer.proxy.cpu_per_answer(0.0):.1f}); the probes' own share subtracted")

    window = sum(end - start for start, end in windows)
    acked = [w for w in churn.writes if w.acked is not None and 200 <= w.status < 300]
    kinds = Counter(w.kind for w in acked)
    failed = Counter(f"{w.kind} {w.status}" for w in churn.writes if not (200 <= w.status < 300))
    latencies = [w.acked - w.sent for w in acked if w.acked is not None]
    print()
    print(f"churn: {args.rate:g} writes/s asked for {window:.1f}s (aiohttp, keep-alive, <= 64 connections): "
          f"{len(acked) / window:,.0f} acknowledged/s — " + ", ".join(f"{k} {n / window:,.0f}/s" for k, n in sorted(kinds.items())))
    print(f"  acknowledgement latency p50 {1000 * pct(latencies, 50):.1f} ms, p99 {1000 * pct(latencies, 99):.1f} ms, "
          f"max {1000 * max(latencies, default=0.0):.1f} ms; failed {sum(failed.values())}"
          + (f" ({', '.join(f'{k}: {n}' for k, n in failed.items())})" if failed else "")
          + (f"; {churn.skipped} not sent (256 in flight)" if churn.skipped else ""))
    cost = (sum(alone) / len(alone) - probes_only) / args.rate
    print(f"  the churn alone (2 s before each churn round, probes on, no dnsperf/wrk): emulator {100 * sum(alone) / len(alone):.0f}% "
          f"of one core against {100 * probes_only:.0f}% with the probes only: about {1000 * cost:.2f} ms of emulator CPU per write")


    dns_checked, dns_wrong, dns_examples = check_dns(dns_probe.answers, churn.lives, cluster.still)
    http_checked, http_wrong, per_backend, http_examples = check_http(http_probe.results, churn.flips, cluster.down_since)
    flips = sum(len(v) for v in churn.flips.values())
    print()
    def churning(t: float) -> bool:
        return any(start <= t <= end for start, end in windows)

    def spread(pairs: list[tuple[float, float]]) -> str:
        """p50/p99/max of the probe's answers alone (no dnsperf/wrk), without churn and with it."""
        out = []
        for label, spans in (("no churn", [(quiet[0], quiet[1])]), ("churn", calm)):
            inside = [(1000 * (r - t), t - a) for t, r in pairs for a, b in spans if a <= t <= b]
            ms = [m for m, _ in inside]
            worst = max(inside, default=(0.0, 0.0))
            out.append(f"{label} {pct(ms, 50):.2f}/{pct(ms, 99):.2f}/{worst[0]:.1f}"
                       + (f" (the max sent {worst[1] + 0.5:.2f}s into the churn)" if label == "churn" else ""))
        return ", ".join(out)

    print(f"the probes alone (no dnsperf, no wrk), p50/p99/max ms: DNS ({args.dns_probe_rate:g} q/s) "
          f"{spread([(a.sent, a.received) for a in dns_probe.answers])}; "
          f"HTTP ({args.http_probe_rate:g} r/s) {spread([(t, r) for t, r, _ in http_probe.results])}")
    print(f"correctness, every answer of two probes running beside the load through all rounds "
          f"({sum(churning(a.sent) for a in dns_probe.answers):,} DNS and {sum(churning(r[0]) for r in http_probe.results):,} "
          f"HTTP answers sent while churning):")
    print(f"  DNS: {dns_checked:,} answers checked ({args.dns_probe_rate:g}/s, 90 % for the {CHURN_NAMES} churned names) against the "
          f"acknowledged creates/deletes: {sum(dns_wrong.values())} wrong" + (f" {dict(dns_wrong)}" if dns_wrong else "")
          + f"; {dns_probe.lost} unanswered")
    for example in dns_examples:
        print(f"    e.g. {example}")
    print(f"  HTTP: {http_checked:,} answers checked ({args.http_probe_rate:g}/s through the cluster IP, {flips} readiness "
          f"flips of web-2/web-3): {http_wrong} from an endpoint after its removal was acknowledged; per backend "
          + ", ".join(f"{b} {n:,}" for b, n in sorted(per_backend.items()))
          + (f"; failed {dict(http_probe.failures)}" if http_probe.failures else "; none failed"))
    for example in http_examples:
        print(f"    e.g. {example}")
    for line in profile_lines:
        print(line)
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; the run took {time.monotonic() - started:.0f}s")

    wrong = sum(dns_wrong.values()) + http_wrong
    if wrong:
        print(f"WRONG ANSWERS: {wrong}")
        return 1
    if os.environ.get("BENCH_STRICT") == "1" and not all(ok for _, _, ok in rows):
        return 1
    return 0


@contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the run through main()'s cleanup (SIGINT is set even when a shell
    started the run in the background with it ignored)."""

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
    ap.add_argument("--rate", type=float, default=500, help="churn: API writes per second [500]")
    ap.add_argument("--web-flips", type=float, default=10, help="of which readiness flips of web's endpoints per second [10]")
    ap.add_argument("--rounds", type=int, default=2, help="still and churn rounds, alternating; the best of each figure [2]")
    ap.add_argument("--seconds", type=float, default=5, help="dnsperf flat-out and wrk run length [5]")
    ap.add_argument("--paced-seconds", type=float, default=3, help="paced dnsperf run length (p99) [3]")
    ap.add_argument("--dns-rate", type=int, default=20_000, help="queries/s of the paced dnsperf run [20000]")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    ap.add_argument("--names", type=int, default=1000, help="still services (dnsperf's names) [1000]")
    ap.add_argument("--dns-probe-rate", type=float, default=1000, help="checked DNS queries/s [1000]")
    ap.add_argument("--http-probe-rate", type=float, default=500, help="checked HTTP requests/s [500]")
    ap.add_argument("--profile", action="store_true", help="py-spy the emulator for 10 s under churn: top frames")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the emulator to CPU 0 and the rest to the others")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) and print it")
    ap.add_argument("--cpu-only", type=float, default=0, metavar="SECONDS",
                    help="only the churn (and the probes) for SECONDS: the emulator's CPU per write, no dnsperf/wrk/peers")
    ap.add_argument("--source", help="run the emulator from this tree (a copy, for before/after back to back)")
    args = ap.parse_args()
    for tool in ("dnsperf", "dnsmasq", "wrk", "haproxy"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (Debian: apt-get install {tool})")
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="bench-churn-"))
    status = 1
    try:
        with stopped_on_signals():
            status = asyncio.run(run(args, children, tmp))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process and removing the temp dir", file=sys.stderr)
        status = 130
    finally:
        children.stop_all()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
