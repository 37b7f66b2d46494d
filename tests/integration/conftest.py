"""Fixtures of the modules that drive real kubectl: one emulator per module (`emu`; a module that needs
other flags defines its own), a `kubectl` configured for it, and a fresh namespace per test (`ns`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from emulator.security import kubeconfig
from tests.conftest import Emulator, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("kubectl-data"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def kubectl(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    binary = require_tool("kubectl")
    home = tmp_path_factory.mktemp("kubectl-home")
    config = home / "config"
    kubeconfig.write(config, emu.api_url, use=True)
    return Kubectl(binary, config, home / "cache")


@pytest.fixture
def ns(emu: Emulator, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test."""
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower().removeprefix("test_"))[:50].strip("-")
    with emu.client() as api:
        response = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name
