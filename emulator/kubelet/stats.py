"""What the containers and the node use, from the real processes: CPU as a rate over a window, memory as
the working set (≈ resident memory), as the kubelet's summary API gives metrics-server.

A container is its process and every descendant (a shell's children, the sandbox launcher's program).
CPU is the change of their CPU time (user + system, and what their reaped children used) between two
samples, divided by the time between them; the first time a container is asked about there is no earlier
sample, and the rate is its average since it started. Samples are taken when asked (`kubectl top`), not
in the background, and kept a minute: the window reported is the one the rate was measured over.

Reading /proc for every process costs milliseconds per hundred processes: `collect` is meant to run in
a worker thread (api/metrics.py calls it through `asyncio.to_thread`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

MIN_WINDOW = 1.0  # seconds: a rate over less says little (metrics-server's windows are 10-30 s)
KEEP_SAMPLES = 60.0  # seconds of samples kept per container
NODE_KEY = ("", "", "")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_nanocores: int
    memory_bytes: int
    timestamp: float  # when measured (epoch seconds)
    window: float  # seconds the CPU rate was measured over


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float  # monotonic
    cpu_seconds: float


class Stats:
    """Per-container and node usage. Thread-safe: `collect` runs in worker threads."""

    def __init__(self) -> None:
        self._samples: dict[tuple[object, ...], deque[_Sample]] = {}
        self._lock = threading.Lock()

    def collect(self, containers: dict[tuple[str, str, str], int]) -> dict[tuple[str, str, str], Usage]:
        """Usage of each container ((namespace, pod, container) → its process id) that still runs."""
        children = _children_by_parent() if containers else {}
        now, wall = time.monotonic(), time.time()
        found: dict[tuple[str, str, str], Usage] = {}
        seen: set[tuple[object, ...]] = set()
        for key, pid in containers.items():
            measured = _tree_usage(pid, children)
            if measured is None:
                continue
            cpu_seconds, memory, started = measured
            sample_key = (*key, pid, started)  # a new process (restart, reused pid) starts a new series
            seen.add(sample_key)
            rate, window = self._rate(sample_key, _Sample(now, cpu_seconds), started_ago=wall - started)
            found[key] = Usage(int(rate * 1e9), memory, wall, window)
        with self._lock:
            for stale in [k for k in self._samples if k not in seen and k[:3] != NODE_KEY]:
                del self._samples[stale]
        return found

    def node(self) -> Usage:
        """The whole machine: busy CPU time of every core, memory in use (total - available)."""
        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        memory = psutil.virtual_memory()
        rate, window = self._rate((*NODE_KEY, 0, 0.0), _Sample(time.monotonic(), busy), started_ago=time.time() - psutil.boot_time())
        return Usage(int(rate * 1e9), int(memory.total - memory.available), time.time(), window)

    def _rate(self, key: tuple[object, ...], sample: _Sample, started_ago: float) -> tuple[float, float]:
        with self._lock:
            series = self._samples.setdefault(key, deque())
            while series and sample.at - series[0].at > KEEP_SAMPLES and len(series) > 1 and sample.at - series[1].at >= MIN_WINDOW:
                series.popleft()
            base = next((s for s in reversed(series) if sample.at - s.at >= MIN_WINDOW), None)
            series.append(sample)
        if base is None:  # first look: the average since the process (or the machine) started
            window = max(started_ago, 1e-3)
            return max(0.0, sample.cpu_seconds / window), window
        window = sample.at - base.at
        return max(0.0, (sample.cpu_seconds - base.cpu_seconds) / window), window


def _children_by_parent() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid"]):
        ppid = process.info.get("ppid")
        if ppid is not None:
            found.setdefault(ppid, []).append(process.pid)
    return found


def _tree(pid: int, children: dict[int, list[int]]) -> Iterable[int]:
    stack = [pid]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(children.get(current, ()))


def _tree_usage(pid: int, children: dict[int, list[int]]) -> tuple[float, int, float] | None:
    """(CPU seconds, resident bytes, start time of `pid`) of a process and its descendants; None when gone."""
    cpu, memory, started = 0.0, 0, 0.0
    for member in _tree(pid, children):
        try:
            process = psutil.Process(member)
            with process.oneshot():
                times = process.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                memory += process.memory_info().rss
                if member == pid:
                    started = process.create_time()
        except psutil.Error:
            if member == pid:
                return None
    return cpu, memory, started


# -- as metrics.k8s.io writes them ------------------------------------------------------------------


def cpu_quantity(nanocores: int) -> str:
    """metrics-server's CPU quantity: nanocores (`12345n`)."""
    return f"{nanocores}n"


def memory_quantity(size: int) -> str:
    """The memory quantity in kibibytes (`1234Ki`), as metrics-server's usually read (resident memory is
    whole pages)."""
    return f"{size // 1024}Ki"


def go_duration(seconds: float) -> str:
    """A window as Go's Duration.String() writes it: `10.5s`, `1m0.2s`, `2h0m0s`, `150ms`."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{_trim(ns / size)}{unit}"
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    secs = _trim(rest / 1e9)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
