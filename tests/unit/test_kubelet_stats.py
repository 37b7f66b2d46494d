"""Usage from real processes (emulator/kubelet/stats.py): CPU as a rate over a window, memory as the
resident set of a container's process tree, and the quantities and windows as metrics-server writes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from emulator.kubelet.stats import Stats, cpu_quantity, go_duration, memory_quantity

SPIN = "import time\nx = bytearray(30 * 1024 * 1024)\nend = time.time() + 30\nwhile time.time() < end: pass"


def test_quantities_and_windows_as_go_writes_them() -> None:
    assert cpu_quantity(12345) == "12345n"
    assert memory_quantity(5 * 1024 * 1024) == "5120Ki"
    assert [go_duration(s) for s in (10.5, 0.15, 75.25, 3600, 0, 20.042)] == ["10.5s", "150ms", "1m15.25s", "1h0m0s", "0s", "20.042s"]


def test_a_busy_child_counts_for_its_container_and_the_rate_has_a_window() -> None:
    # the container's process is a shell; the busy one is its child
    shell = subprocess.Popen(["sh", "-c", f'{sys.executable} -c "$0"; true', SPIN], start_new_session=True)
    try:
        stats = Stats()
        key = ("ns", "pod", "c")
        time.sleep(0.5)
        first = stats.collect({key: shell.pid})[key]
        assert first.window > 0 and first.memory_bytes > 30 * 1024 * 1024
        time.sleep(1.2)
        second = stats.collect({key: shell.pid})[key]
        assert 1.0 <= second.window < 2.0  # measured since the previous sample
        assert 0.6e9 < second.cpu_nanocores < 1.3e9  # one busy core
        assert stats.collect({("ns", "gone", "c"): 999_999_999}) == {}
        node = stats.node()
        assert node.cpu_nanocores > 0 and node.memory_bytes > 0
    finally:
        os.killpg(shell.pid, signal.SIGKILL)  # the shell and its child: their own process group
        shell.wait()
