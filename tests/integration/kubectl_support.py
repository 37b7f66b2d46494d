"""Real kubectl against a real emulator: the `Kubectl` runner and `manifest`. The fixtures that go with
them (`emu`, `kubectl`, `ns`) are in tests/integration/conftest.py."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from emulator.security import kubeconfig


@dataclass
class Kubectl:
    binary: str
    config: Path
    cache: Path

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--kubeconfig", str(self.config), "--context", kubeconfig.NAME, "--cache-dir", str(self.cache), *args]

    def run(
        self, *args: str, stdin: str | None = None, ok: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args), input=stdin, capture_output=True, text=True, timeout=timeout,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
        if ok and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def out(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout


def manifest(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)
