"""`emulator serve` refuses a bad configuration with messages that say what to use, before starting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--service-cidr", "10.0.0.0/33"], "--service-cidr '10.0.0.0/33' is not an IPv4 range"),
        (["--pod-cidr", "127.96.0.0/16"], "overlap"),
        (["--node-port-range", "30000:32000"], "must be FIRST-LAST"),
        (["--fsync", "fast"], "use 'full'"),
        (["--watch-history", "0"], "keep at least 1"),
        (["--dns-port", "70000"], "is not a port"),
    ],
)
def test_bad_configuration_is_refused_clearly(flags: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--in-memory", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr


def test_environment_variables_are_checked_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--in-memory"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "EMULATOR_API_PORT": "eighty"},
    )
    assert done.returncode == 1 and "EMULATOR_API_PORT='eighty' is not a number" in done.stderr


def test_one_log_line_per_request_and_a_clean_stop(tmp_path) -> None:
    import re
    import signal
    import time
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--in-memory", "--api-port", "0", "--dns-port", "-1",
         "--gateway-port", "-1", "--no-proxy", "--log-level", "INFO"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    banner = "".join(proc.stdout.readline() for _ in range(3))
    url = re.search(r"API\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
    for _ in range(3):
        urllib.request.urlopen(f"{url}/api/v1/namespaces/default/pods").read()
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert len(re.findall(r"INFO emulator\.api: GET /api/v1/namespaces/default/pods 200 [\d.]+ms", err)) == 3
