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
