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
from collections.abc import Callable, Sequence
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


def dnsperf(
    port: int, queries: Path, seconds: float, qps: int | None = None, cpus: set[int] | None = None
) -> dict[str, float]:
    """One dnsperf run; on `cpus` if given (else where this process may run)."""
    command = [
        *(["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []),
        "dnsperf",
        "-s",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(queries),
        "-l",
        str(seconds),
        "-t",
        "2",
    ]
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


def start_emulator(port: int, count: int, flows: bool = False) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", str(count), "--port", str(port), *(["--flows"] if flows else [])]
    process = subprocess.Popen(command)
    wait_ready(port, name(0), timeout=300)
    return process


def serve(count: int, port: int, flows: bool = False) -> None:
    """The emulator side: a DnsIndex fed `count` services, served on uvloop until killed; with `flows`,
    recording every query in a FlowLog counted for /metrics, as `emulator serve` does by default."""
    import uvloop

    from emulator.dns import DnsIndex, DnsSettings, start_dns
    from emulator.dns import synthetic as make
    from emulator.flows.log import FlowLog
    from emulator.observability.stats import DataPathStats

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
        log = None
        if flows:
            log = FlowLog(stats=DataPathStats())
            log.start(asyncio.get_running_loop())
        await start_dns(settings, index, log)
        await asyncio.Event().wait()

    uvloop.run(run())


def write_queries(path: Path, names: list[str]) -> Path:
    path.write_text("".join(f"{n} A\n" for n in names))
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(label: str, runs: list[dict[str, float]], paced: list[dict[str, float]], qps: int) -> dict[str, float]:
    best = max(runs, key=lambda r: r["qps"])
    p99s = sorted(r.get("p99_ms", float("nan")) for r in paced)
    cpu = min(r["cpu_us"] for r in runs)
    qps_runs = ", ".join(f"{r['qps']:,.0f}" for r in runs)
    p99_runs = ", ".join(f"{p:.3f}" for p in p99s)
    cpu_runs = ", ".join(f"{r['cpu_us']:.2f}" for r in runs)
    print(
        f"  {label:<28} {best['qps']:>9,.0f} q/s (runs: {qps_runs})   CPU {cpu:.2f} us/query (runs: {cpu_runs})   "
        f"p99@{qps // 1000}k {p99s[0]:.3f} ms (runs: {p99_runs})   lost {best['lost']:.2f}%",
        flush=True,
    )
    return {**best, "p99_ms": p99s[0], "cpu_us": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each flat-out dnsperf run")
    parser.add_argument("--rounds", type=int, default=3, help="flat-out runs per server")
    parser.add_argument("--names", type=int, default=1000, help="names served by both")
    parser.add_argument("--large", type=int, default=100_000, help="services in the large-index run")
    parser.add_argument("--paced", type=int, default=20_000, help="queries/s of the paced run that gives the p99")
    parser.add_argument(
        "--quick", action="store_true", help="dnsmasq and the emulator on --names only (no 10 / large rows)"
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin servers to CPU 1, dnsperf to CPU 0"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flows", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port, args.flows)
        return
    for tool in ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install {tool})")
    pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    load, server_cpu = sorted(os.sched_getaffinity(0))[:2] if pin else (0, 0)

    with tempfile.TemporaryDirectory(prefix="dns-bench-") as tmp:
        workdir = Path(tmp)
        rng = random.Random(1)
        main_rows = [f"dnsmasq {args.names} names", f"emulator {args.names} +flows", f"emulator {args.names} no flows"]
        servers: list[tuple[str, Callable[[int], subprocess.Popen[bytes]], Sequence[int]]] = [  # label, start, queries
            (main_rows[0], lambda p: start_dnsmasq(workdir, p, args.names), range(args.names)),
            (main_rows[1], lambda p: start_emulator(p, args.names, flows=True), range(args.names)),
            (main_rows[2], lambda p: start_emulator(p, args.names), range(args.names)),
        ]
        if not args.quick:
            servers += [
                ("emulator 10 services", lambda p: start_emulator(p, 10), range(10)),
                (
                    f"emulator {args.large:,} services",
                    lambda p: start_emulator(p, args.large),
                    [rng.randrange(args.large) for _ in range(10_000)],
                ),
            ]
        running: list[tuple[str, int, Path, subprocess.Popen[bytes]]] = []
        try:
            everywhere = os.sched_getaffinity(0)
            # Flat out, dnsperf gets the other core to itself; paced, it may use both (its sender and
            # receiver threads on one core add their own milliseconds to the p99 at 20,000 q/s).
            flat_out = {load} if pin else None
            for n, (label, start, indices) in enumerate(servers):
                port = free_port()
                queries = write_queries(workdir / f"queries{n}", [name(i) for i in indices])
                process = start(port)
                if pin:
                    os.sched_setaffinity(process.pid, {server_cpu})
                running.append((label, port, queries, process))
            for _, port, queries, _ in running:
                dnsperf(port, queries, 1)  # warm-up: fills the emulator's answer cache, as steady traffic would
            print(
                f"dnsperf -q 200: {args.rounds} rounds of {args.seconds:g} s flat out per server, interleaved (best shown), "
                f"and 3 s at {args.paced:,} q/s for p99 each round; A queries; "
                + (f"servers pinned to CPU {server_cpu}, dnsperf flat out to CPU {load}" if pin else "not pinned")
                + f"; load average {os.getloadavg()[0]:.2f}"
            )
            runs: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in running}
            paced: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in running}
            for _ in range(args.rounds):
                # Interleaved so that a noisy neighbour on the machine hurts every server alike.
                for label, port, queries, process in running:
                    before = cpu_seconds(process.pid)
                    result = dnsperf(port, queries, args.seconds, cpus=flat_out)
                    spent = cpu_seconds(process.pid) - before
                    result["cpu_us"] = spent / max(1.0, result["qps"] * args.seconds) * 1e6
                    runs[label].append(result)
                    paced[label].append(dnsperf(port, queries, 3, qps=args.paced, cpus=everywhere))
            results = {label: report(label, runs[label], paced[label], args.paced) for label in runs}
        finally:
            for *_, process in running:
                process.terminate()
                process.wait()
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    dnsmasq, flows, bare = (results[row] for row in main_rows)
    print(
        f"emulator (flows on) / dnsmasq queries/s: {flows['qps'] / dnsmasq['qps']:.2f}  (target >= 1.0);  "
        f"CPU per query dnsmasq / emulator: {dnsmasq['cpu_us'] / flows['cpu_us']:.2f}"
    )
    print(
        f"emulator (no flows) / dnsmasq queries/s: {bare['qps'] / dnsmasq['qps']:.2f};  "
        f"flows on / off: {flows['qps'] / bare['qps']:.3f} (target >= 0.95)"
    )
    print(f"emulator (flows on) p99 at {args.paced:,} q/s: {flows['p99_ms']:.3f} ms  (target < 0.5 ms)")
    ok = flows["qps"] >= dnsmasq["qps"] and flows["p99_ms"] < 0.5
    if not args.quick:
        small, large = results["emulator 10 services"], results[f"emulator {args.large:,} services"]
        print(f"emulator {args.large:,} / 10 services queries/s: {large['qps'] / small['qps']:.2f}  (target ~1.0)")
        ok = ok and large["qps"] >= 0.85 * small["qps"]
    if os.environ.get("BENCH_STRICT") == "1":
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
