"""What recording flows costs: DNS queries/s (dnsperf) and proxied HTTP requests/s (wrk) through two real
`emulator serve` processes, one recording flows (and so the DNS and proxy metrics) and one with
`--no-flows`, measured in one run, rounds interleaved, best of each kept; then the ratios on / off.

    .venv/bin/python bench/flows/run.py [--seconds 5] [--rounds 3] [--flow-buffer 10000]

Needs dnsperf, wrk and haproxy (the HTTP backend: a frontend answering 200 itself). Target: each ratio
at least 0.95; BENCH_STRICT=1 makes a miss exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.95
BACKEND_IP = "127.0.79.2"
NAMESPACE = "bench"


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


class Emulator:
    """One `emulator serve` on its own ports and address ranges."""

    def __init__(self, label: str, flags: list[str], ranges: int, workdir: Path) -> None:
        self.label = label
        command = [
            sys.executable, "-m", "emulator", "serve", "--in-memory", "--data-dir", str(workdir / label),
            "--api-port", "0", "--dns-port", "0", "--gateway-port", "0", "--gateway-https-port", "-1",
            "--log-level", "WARNING", "--dns-upstream", "none",
            "--service-cidr", f"127.{ranges}.0.0/16", "--pod-cidr", f"127.{ranges + 1}.0.0/16",
            "--lb-cidr", f"127.{ranges + 2}.0.0/16", *flags,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        faces: dict[str, str] = {}
        for line in self.process.stdout:
            match = re.match(r"\s+(\S+)\s+(\S+)", line)
            if match:
                faces[match.group(1)] = match.group(2)
            elif faces and not line.strip():
                break
        self.api = faces["API"]
        self.dns_port = int(faces["DNS"].rsplit(":", 1)[1])
        self.service_ip = ""

    def populate(self, services: int, backend_port: int) -> None:
        call(self.api, "POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        for i in range(services):
            created = call(self.api, "POST", f"/api/v1/namespaces/{NAMESPACE}/services", {
                "metadata": {"name": f"svc{i}"},
                "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": backend_port}]},
            })
            if i == 0:
                self.service_ip = created["spec"]["clusterIP"]
        call(self.api, "POST", f"/api/v1/namespaces/{NAMESPACE}/endpoints", {
            "metadata": {"name": "svc0"},
            "subsets": [{"addresses": [{"ip": BACKEND_IP}], "ports": [{"name": "http", "port": backend_port}]}],
        })
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.service_ip}:8080/", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.label}: the proxy never served {self.service_ip}:8080")
            time.sleep(0.1)

    def flows_recorded(self) -> int | None:
        try:
            return int(call(self.api, "GET", "/emulator/v1/flows?limit=1")["lastId"])
        except OSError:
            return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run: Any, seconds: float) -> tuple[float, float]:
    """(operations per second, CPU microseconds the emulator spent per operation) of one run."""
    before = cpu_seconds(pid)
    rate = run()
    spent = cpu_seconds(pid) - before
    return rate, (spent / (rate * seconds) * 1e6 if rate else 0.0)


def dnsperf(port: int, queries: Path, seconds: float) -> float:
    command = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds), "-q", "200", "-t", "2"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    found = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(found.group(1)) if found else 0.0


def wrk(url: str, seconds: float, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each dnsperf and wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved on/off (best kept)")
    parser.add_argument("--flow-buffer", type=int, default=10000, help="the recording emulator's --flow-buffer")
    parser.add_argument("--services", type=int, default=100, help="services (and DNS names) in each emulator")
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections")
    args = parser.parse_args()
    for tool in ("dnsperf", "wrk", "haproxy"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is needed: apt-get install dnsperf wrk haproxy")
    backend_port = free_port(BACKEND_IP)
    running: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as tmp:
        workdir = Path(tmp)
        config = workdir / "backend.cfg"
        config.write_text(
            "global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            f"frontend b\n  bind {BACKEND_IP}:{backend_port}\n  http-request return status 200 content-type text/plain string ok\n"
        )
        try:
            backend = subprocess.Popen(["haproxy", "-db", "-f", str(config)])
            running.append(backend)
            on = Emulator("flows-on", ["--flow-buffer", str(args.flow_buffer)], 150, workdir)
            running.append(on)
            off = Emulator("flows-off", ["--no-flows"], 160, workdir)
            running.append(off)
            for emulator in (on, off):
                emulator.populate(args.services, backend_port)
            queries = workdir / "queries"
            queries.write_text("".join(f"svc{i}.{NAMESPACE}.svc.cluster.local A\n" for i in range(args.services)))
            for emulator in (on, off):  # warm-up: fills DNS answer caches and the proxy's connection pool
                dnsperf(emulator.dns_port, queries, 1)
                wrk(f"http://{emulator.service_ip}:8080/", 1, args.connections)
            print(
                f"{args.rounds} rounds of {args.seconds:g} s per emulator, interleaved (best shown): dnsperf -q 200 over "
                f"{args.services} names, wrk -t1 -c{args.connections} through an HTTP-mode service port "
                f"(backend: haproxy answering 200); recording with --flow-buffer {args.flow_buffer}"
            )
            results: dict[str, dict[str, list[tuple[float, float]]]] = {e.label: {"dns": [], "http": []} for e in (on, off)}
            for round_ in range(args.rounds):
                order = (on, off) if round_ % 2 == 0 else (off, on)
                for e in order:
                    results[e.label]["dns"].append(measured(
                        e.process.pid, lambda e=e: dnsperf(e.dns_port, queries, args.seconds), args.seconds))
                for e in order:
                    results[e.label]["http"].append(measured(
                        e.process.pid, lambda e=e: wrk(f"http://{e.service_ip}:8080/", args.seconds, args.connections), args.seconds))
            recorded = on.flows_recorded()
            missed = False
            for what, unit in (("dns", "queries/s"), ("http", "requests/s")):
                best_on, best_off = max(results[on.label][what]), max(results[off.label][what])
                ratio = best_on[0] / best_off[0] if best_off[0] else 0.0
                cpu_on = min(cpu for _, cpu in results[on.label][what] if cpu)
                cpu_off = min(cpu for _, cpu in results[off.label][what] if cpu)
                missed |= ratio < TARGET
                print(f"  {what.upper():<5} flows on {best_on[0]:>10,.0f} {unit:<11} off {best_off[0]:>10,.0f}   "
                      f"on/off {ratio:.3f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'});  "
                      f"CPU per {'query' if what == 'dns' else 'request'}: on {cpu_on:.2f} us, off {cpu_off:.2f} us, off/on {cpu_off / cpu_on:.3f}")
            print(f"  flows recorded by the recording emulator: {recorded:,} (ring of {args.flow_buffer:,})" if recorded else "")
        finally:
            for process in reversed(running):
                if isinstance(process, Emulator):
                    process.stop()
                else:
                    process.terminate()
                    process.wait(10)
    if missed and os.environ.get("BENCH_STRICT") == "1":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
