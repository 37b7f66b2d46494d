"""Benchmark: the emulator's proxy against haproxy, same backends, same client, one run.

Two fast backends (haproxy frontends answering a fixed 200 via `http-request return`, so that the
backends are not what is measured) sit behind:
  - haproxy `mode tcp` and `mode http`, round-robin, pinned to one thread (`nbthread 1`);
  - the emulator's Proxy (uvloop) in its own process, a TCP-mode port and an HTTP-mode port, fed the
    same Service/Endpoints events the store would deliver.
wrk (bounded by -d) drives each in turn and the requests/s and ratios are printed side by side.

    .venv/bin/python bench/proxy/run.py [--duration 5] [--connections 64] [--pin]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("127.0.77.2", "127.0.77.3")
TARGETS = {"tcp": 0.9, "http": 0.35}  # the goals: emulator / haproxy


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def wait_port(ip: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {ip}:{port} after {timeout}s")


def backend_config(port: int) -> str:
    fronts = "\n".join(
        f"frontend b{i}\n  bind {ip}:{port}\n  http-request return status 200 content-type text/plain string ok\n"
        for i, ip in enumerate(BACKENDS)
    )
    return f"global\n  nbthread 2\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n{fronts}"


def haproxy_config(tcp_port: int, http_port: int, backend_port: int) -> str:
    servers = "\n".join(f"  server s{i} {ip}:{backend_port}" for i, ip in enumerate(BACKENDS))
    return f"""global
  nbthread 1
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tcp_in
  mode tcp
  bind 127.0.0.1:{tcp_port}
  default_backend tcp_b
backend tcp_b
  mode tcp
  balance roundrobin
{servers}
frontend http_in
  mode http
  bind 127.0.0.1:{http_port}
  default_backend http_b
backend http_b
  mode http
  balance roundrobin
  http-reuse always
  option forwardfor
{servers}
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def wrk(url: str, duration: int, connections: int, cpu: str | None, pid: int | None = None) -> tuple[float, float]:
    """(requests/s, microseconds of CPU the process `pid` spent per request)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before if pid else 0.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        print(f"    wrk reported: {errors.group(0)}")
    rps = float(m.group(1)) if m else 0.0
    return rps, (used / (rps * duration) * 1e6 if rps else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="runs per proxy and mode, interleaved; the best counts")
    ap.add_argument(
        "--pin", action="store_true", help="pin the proxy under test to CPU 0, wrk and backends to the others"
    )
    args = ap.parse_args()
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {tool})")
    ncpu = os.cpu_count() or 1
    pin = args.pin and ncpu >= 2
    rest = f"1-{ncpu - 1}" if pin else None

    def pinned(cmd: list[str], cpu: str | None) -> list[str]:
        return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd

    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bport = free_port(BACKENDS[0])
        (tmp / "backends.cfg").write_text(backend_config(bport))
        procs.append(subprocess.Popen(pinned(["haproxy", "-db", "-f", str(tmp / "backends.cfg")], rest)))
        for ip in BACKENDS:
            wait_port(ip, bport)

        h_tcp, h_http = free_port("127.0.0.1"), free_port("127.0.0.1")
        (tmp / "haproxy.cfg").write_text(haproxy_config(h_tcp, h_http, bport))
        procs.append(subprocess.Popen(pinned(["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")], "0" if pin else None)))
        wait_port("127.0.0.1", h_tcp)

        e_ip = "127.0.77.10"
        e_tcp, e_http = free_port(e_ip), free_port(e_ip)
        serve = [
            sys.executable,
            str(Path(__file__).with_name("serve.py")),
            e_ip,
            str(e_tcp),
            str(e_http),
            str(bport),
            *BACKENDS,
        ]
        procs.append(subprocess.Popen(pinned(serve, "0" if pin else None), cwd=ROOT, stdin=subprocess.PIPE))
        wait_port(e_ip, e_tcp)
        wait_port(e_ip, e_http)

        print(
            f"wrk -t1 -c{args.connections} -d{args.duration}s, best of {args.repeat}; backends: 2 haproxy frontends answering 200 'ok'"
        )
        version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()[2]
        print(
            f"haproxy {version} pinned to one thread (nbthread 1): one core against the emulator's one core (one asyncio process, uvloop)"
        )
        print(
            "CPU pinning: "
            + (
                f"proxy under test on CPU 0, wrk and backends on {rest}"
                if pin
                else f"none ({ncpu} CPUs shared by wrk, backends and the proxy; --pin separates them)"
            )
        )
        print()
        direct, _ = wrk(f"http://{BACKENDS[0]}:{bport}/", args.duration, args.connections, rest)
        print(f"  {'direct to one backend':<24} {direct:>10,.0f} req/s   (the ceiling of this machine and client)")
        haproxy_pid, emulator_pid = procs[1].pid, procs[2].pid
        results: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        for mode, h_port, e_port in (("tcp", h_tcp, e_tcp), ("http", h_http, e_http)):
            h_runs, e_runs = [], []
            for _ in range(args.repeat):  # interleaved, so that a noisy neighbour hurts both sides alike
                h_runs.append(wrk(f"http://127.0.0.1:{h_port}/", args.duration, args.connections, rest, haproxy_pid))
                e_runs.append(wrk(f"http://{e_ip}:{e_port}/", args.duration, args.connections, rest, emulator_pid))
            h, e = max(h_runs), max(e_runs)
            results[mode] = (h, e)
            print(f"  {'haproxy mode ' + mode:<24} {h[0]:>10,.0f} req/s   {h[1]:6.1f} us CPU/request")
            print(f"  {'emulator ' + mode.upper() + ' mode':<24} {e[0]:>10,.0f} req/s   {e[1]:6.1f} us CPU/request")
        print()
        ok = True
        for mode, (h, e) in results.items():
            ratio = e[0] / h[0] if h[0] else 0.0
            per_cpu = h[1] / e[1] if e[1] else 0.0
            goal = TARGETS[mode]
            ok &= ratio >= goal
            print(
                f"  {mode.upper():<5} emulator/haproxy: {ratio:.2f} in req/s (target >= {goal}: {'met' if ratio >= goal else 'NOT met'}), {per_cpu:.2f} in requests per CPU-second"
            )
        sys.exit(0 if ok else 1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
