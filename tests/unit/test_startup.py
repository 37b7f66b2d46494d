"""What an empty start loads (issue 16: start ≤ 0.25 s; bench/startup measures it): the libraries only a
first request of some kind needs stay unloaded until then, and `serve` reads only its own options yet
answers --help and bad options as the full command line does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]

# What `emulator serve` imports before it starts (emulator/cli/serve.py's imports and the engine's)
SERVE_IMPORTS = """
import sys
sys.argv = ["emulator", "serve"]
import emulator.cli.main, emulator.cli.serve, emulator.runtime, api.app, api.auth, api.authorization, api.connections
import api.flows, api.guard, api.oidc, api.podenv, api.podhosts, api.policycheck, api.processstatus, api.prometheus
import api.proxystatus, api.tokens, api.ui, emulator.registry.tokens
print(" ".join(sorted(sys.modules)))
"""

# each loads with the first request that needs it, and not before
NOT_AT_START = {
    "croniter": "the first CronJob",
    "dateutil": "the first CronJob (croniter's)",
    "psutil": "the first process status or resource metrics (the node's capacity comes from os)",
    "re2": "the first RegularExpression route match or CRD pattern",
    "cryptography": "the first TLS Secret, token or HTTPS handshake on the gateway",
    "h2": "the first HTTP/2 connection",
    "ctypes": "the first `emulator run` (the sandbox), or the first heap trim",
    "emulator.cli.run": "`emulator run` and `env`",
    "emulator.cli.flows": "`emulator flows`",
    "emulator.kubelet.kubelet": "--kubelet",
}


def test_an_empty_start_does_not_load_what_only_a_later_request_needs() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", SERVE_IMPORTS], cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    early = {name: why for name, why in NOT_AT_START.items() if name in loaded}
    assert early == {}, f"loaded at start, though only needed for: {early}"


def test_serve_reads_only_its_options_and_says_so_as_the_full_command_line_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    full_usage = capsys.readouterr().out.splitlines()[0]
    assert full_usage == "usage: emulator [-h] {" + ",".join(cli.COMMANDS) + "} ..."  # COMMANDS is every command
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--no-such-option"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [full_usage, "emulator: error: unrecognized arguments: --no-such-option"]
