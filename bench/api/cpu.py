"""CPU per pod create, from /proc: the steady figure beside creates/s, which moves with the machine's load.

Starts `emulator serve` (durable SQLite store, fsync full) from one or more source trees, pinned to CPU 0
with wrk on the others, and runs wrk rounds of POSTs (bench/api/create_pods.lua). Per round it prints
creates/s, p50/p99 and the server's CPU time (user + system, every thread: /proc/PID/stat) divided by the
creates acknowledged. With several sources the rounds alternate between them, back to back, so that the
machine's load falls on each alike. The bare aiohttp handler (bench/api/bare.py) runs first as the ceiling.

    .venv/bin/python bench/api/cpu.py                                # the working tree, 3 rounds of 5 s
    .venv/bin/python bench/api/cpu.py --source /tmp/base --source .  # two trees, alternating
    .venv/bin/python bench/api/cpu.py --grow 40                      # + 40 s more of rounds, the stores growing

Every process is started here and stopped here; the temp dir is removed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import HERE, PYTHON, Children, WrkRun, WrkSettings, free_port, start_emulator, wait_ready, wrk_creates  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measured(children: Children, settings: WrkSettings, pid: int, url: str, prefix: str, log: Path) -> tuple[WrkRun, float]:
    before = cpu_seconds(pid)
    run = wrk_creates(children, settings, url, prefix, log)
    time.sleep(0.3)  # the last commits finish
    spent = cpu_seconds(pid) - before
    return run, spent / run.ok if run.ok else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", default=[], help="a source tree to measure (repeatable) [the working tree]")
    ap.add_argument("--rounds", type=int, default=3, help="wrk rounds per source [3]")
    ap.add_argument("--duration", type=int, default=5, help="seconds per round [5]")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--grow", type=int, default=0, metavar="SECONDS", help="after --rounds, alternating rounds go on this long, the stores growing")
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--server-arg", action="append", default=[])
    args = ap.parse_args()
    sources = [Path(s).resolve() for s in args.source] or [HERE.parents[1]]
    ncpu = os.cpu_count() or 1
    server_cpu, client_cpu = ("0", "1" if ncpu == 2 else f"1-{ncpu - 1}") if ncpu >= 2 else (None, None)
    settings = WrkSettings(1, args.connections, args.duration, client_cpu)
    children = Children()
    print(settings.describe())
    print(f"load average before: {load()}")
    rows: dict[Path, list[tuple[WrkRun, float]]] = {s: [] for s in sources}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            bare_rate = 0.0
            if not args.no_bare:
                port = free_port()
                bare = children.spawn([PYTHON, str(HERE / "bare.py"), str(port)], tmp / "bare.log", server_cpu)
                wait_ready(bare, port, tmp / "bare.log")
                run, cpu = measured(children, settings, bare.pid, f"http://127.0.0.1:{port}/api/v1/namespaces/default/pods", "bare", tmp / "bare.log")
                children.stop(bare)
                bare_rate = run.ok_per_s
                print(f"bare: {run.ok_per_s:,.0f} req/s  p99 {run.p99 * 1000:.1f} ms  CPU {cpu * 1e6:.0f} us/request")
            emus = {}
            for i, source in enumerate(sources):
                log = tmp / f"server{i}.log"
                emus[source] = (start_emulator(children, source, tmp / f"data{i}", log, server_cpu, list(args.server_arg)), log)
            stored = dict.fromkeys(sources, 0)

            def one_round(r: int) -> None:
                for i, source in enumerate(sources):
                    emu, log = emus[source]
                    run, cpu = measured(children, settings, emu.proc.pid, f"{emu.base}/api/v1/namespaces/default/pods", f"s{i}r{r}", log)
                    rows[source].append((run, cpu))
                    stored[source] += run.ok
                    ratio = f"  {run.ok_per_s / bare_rate:.2f}x bare" if bare_rate else ""
                    print(f"  [{i}] round {r:<2} {stored[source]:>8,} pods {run.ok_per_s:>7,.0f} creates/s{ratio}  p50 {run.p50 * 1000:5.1f} ms  "
                          f"p99 {run.p99 * 1000:5.1f} ms  CPU {cpu * 1e6:4.0f} us/create   load {load()}")

            for r in range(args.rounds):
                one_round(r)
            if args.grow:
                print(f"the stores growing, rounds go on for {args.grow}s:")
                ends, r = time.monotonic() + args.grow, args.rounds
                while time.monotonic() + args.duration * len(sources) <= ends:
                    one_round(r)
                    r += 1
            for i, source in enumerate(sources):
                runs = rows[source]
                rate = statistics.median(run.ok_per_s for run, _ in runs)
                cpu = statistics.median(c for _, c in runs)
                ratio = f" = {rate / bare_rate:.2f}x bare" if bare_rate else ""
                print(f"[{i}] {source}: median {rate:,.0f} creates/s{ratio}, CPU {cpu * 1e6:.0f} us/create, "
                      f"p99 median {statistics.median(run.p99 for run, _ in runs) * 1000:.1f} ms, worst {max(run.p99 for run, _ in runs) * 1000:.1f} ms "
                      f"({stored[source]:,} pods stored)")
        finally:
            children.stop_all()
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
