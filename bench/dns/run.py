"""Benchmark the emulator's DNS against dnsmasq with dnsperf, side by side, in one run.

Both serve the same 1,000 names (`svcN.bench.svc.cluster.local`): dnsmasq from a hosts file, the
emulator from a DnsIndex fed 1,000 Service events (in its own process, on uvloop). Each is run flat
out for throughput (rounds interleaved, best kept), and at a fixed 5,000 queries/s for latency (p99 from dnsperf's per-query log).
Then the emulator again with 10 and with 100,000 services, to show lookups do not scan.

    .venv/bin/python bench/dns/run.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ZONE = "cluster.local"
NAMESPACE = "bench"


def name(i: int) -> str:
    return f"svc{i}.{NAMESPACE}.svc.{ZONE}"


def address(i: int) -> str:
    return f"127.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def free_port() -> int:
    # A port free for both UDP and TCP, as both servers bind both.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_ready(port: int, qname: str, timeout: float = 60.0) -> None:
    from dnslib import DNSRecord

    query = DNSRecord.question(qname).pack()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(query, ("127.0.0.1", port))
            try:
                reply = DNSRecord.parse(s.recv(4096))
                if reply.rr:
                    return
            except (TimeoutError, OSError):
                pass
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {qname}")


def dnsperf(port: int, queries: Path, seconds: float, qps: int | None = None) -> dict[str, float]:
    command = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds), "-t", "2"]
    if qps:
        command += ["-Q", str(qps), "-v"]  # -v: one line per query with its latency
    else:
        command += ["-q", "200"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    result = {
        "qps": float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "lost": float(re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out).group(1)),  # type: ignore[union-attr]
        "avg_ms": 1000 * float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
    }
    latencies = sorted(float(m) for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M))
    if latencies:
        result["p99_ms"] = 1000 * latencies[int(len(latencies) * 0.99) - 1]
    return result


def start_dnsmasq(workdir: Path, port: int, count: int) -> subprocess.Popen[bytes]:
    hosts = workdir / "hosts"
    hosts.write_text("".join(f"{address(i)} {name(i)}\n" for i in range(count)))
    command = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
        f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
        "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local-ttl=5",
        f"--user={getpass.getuser()}",  # as root it would switch to nobody, who cannot read our temp dir
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    wait_ready(port, name(0))
    return process


def start_emulator(port: int, count: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", str(count), "--port", str(port)]
    process = subprocess.Popen(command)
    wait_ready(port, name(0), timeout=300)
    return process


def serve(count: int, port: int) -> None:
    """The emulator side: a DnsIndex fed `count` services, served on uvloop until killed."""
    import uvloop

    from emulator.dns import DnsIndex, DnsSettings, start_dns
    from emulator.dns import synthetic as make

    settings = DnsSettings(port=port, upstreams=[], max_cached_answers=max(200_000, 2 * count))
    index = DnsIndex(settings)
    index.apply(make.namespace(NAMESPACE))
    for i in range(count):
        index.apply(make.service(f"svc{i}", NAMESPACE, cluster_ip=address(i)))
    # The index is long-lived: keep the cyclic GC from walking it again and again (a full collection
    # over 100,000 services is a latency spike).
    gc.collect()
    gc.freeze()

    async def run() -> None:
        await start_dns(settings, index)
        await asyncio.Event().wait()

    uvloop.run(run())


def write_queries(path: Path, names: list[str]) -> Path:
    path.write_text("".join(f"{n} A\n" for n in names))
    return path


def report(label: str, runs: list[dict[str, float]], paced: list[dict[str, float]]) -> dict[str, float]:
    best = max(runs, key=lambda r: r["qps"])
    p99s = sorted(r.get("p99_ms", float("nan")) for r in paced)
    qps_runs = ", ".join(f"{r['qps']:,.0f}" for r in runs)
    p99_runs = ", ".join(f"{p:.3f}" for p in p99s)
    print(
        f"  {label:<28} {best['qps']:>9,.0f} q/s (runs: {qps_runs})   "
        f"p99@5k {p99s[0]:.3f} ms (runs: {p99_runs})   lost {best['lost']:.2f}%",
        flush=True,
    )
    return {**best, "p99_ms": p99s[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each flat-out dnsperf run")
    parser.add_argument("--rounds", type=int, default=3, help="flat-out runs per server")
    parser.add_argument("--names", type=int, default=1000, help="names served by both")
    parser.add_argument("--large", type=int, default=100_000, help="services in the large-index run")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return
    for tool in ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install {tool})")

    with tempfile.TemporaryDirectory(prefix="dns-bench-") as tmp:
        workdir = Path(tmp)
        rng = random.Random(1)
        servers = [  # label, start, query file
            (f"dnsmasq {args.names} names", lambda p: start_dnsmasq(workdir, p, args.names), range(args.names)),
            (f"emulator {args.names} services", lambda p: start_emulator(p, args.names), range(args.names)),
            ("emulator 10 services", lambda p: start_emulator(p, 10), range(10)),
            (
                f"emulator {args.large:,} services",
                lambda p: start_emulator(p, args.large),
                [rng.randrange(args.large) for _ in range(10_000)],
            ),
        ]
        running: list[tuple[str, int, Path, subprocess.Popen[bytes]]] = []
        try:
            for n, (label, start, indices) in enumerate(servers):
                port = free_port()
                queries = write_queries(workdir / f"queries{n}", [name(i) for i in indices])
                running.append((label, port, queries, start(port)))
            for _, port, queries, _ in running:
                dnsperf(port, queries, 1)  # warm-up: fills the emulator's answer cache, as steady traffic would
            print(
                f"dnsperf: {args.rounds} rounds of {args.seconds:g} s flat out per server, interleaved (best shown), "
                f"and 3 s at 5,000 q/s for p99 each round; A queries"
            )
            runs: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in running}
            paced: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in running}
            for _ in range(args.rounds):
                # Interleaved so that a noisy neighbour on the machine hurts every server alike.
                for label, port, queries, _ in running:
                    runs[label].append(dnsperf(port, queries, args.seconds))
                    paced[label].append(dnsperf(port, queries, 3, qps=5000))
            results = {label: report(label, runs[label], paced[label]) for label in runs}
        finally:
            for *_, process in running:
                process.terminate()
                process.wait()

    emulator, dnsmasq = results[f"emulator {args.names} services"], results[f"dnsmasq {args.names} names"]
    small, large = results["emulator 10 services"], results[f"emulator {args.large:,} services"]
    print(f"emulator / dnsmasq queries/s: {emulator['qps'] / dnsmasq['qps']:.2f}  (target >= 0.7)")
    print(f"emulator p99 at 5,000 q/s: {emulator['p99_ms']:.3f} ms  (target < 1 ms)")
    print(f"emulator {args.large:,} / 10 services queries/s: {large['qps'] / small['qps']:.2f}  (target ~1.0)")
    if os.environ.get("BENCH_STRICT") == "1":
        ok = emulator["qps"] >= 0.7 * dnsmasq["qps"] and emulator["p99_ms"] < 1 and large["qps"] >= 0.85 * small["qps"]
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
