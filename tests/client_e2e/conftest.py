"""The official Python client's own end-to-end suite (kubernetes-client/python, `kubernetes/e2e_test`),
vendored unchanged under `kubernetes/e2e_test/` here, run against the emulator.

Their `base.get_e2e_configuration()` loads the kubeconfig at `kube_config.KUBE_CONFIG_DEFAULT_LOCATION`
(else it probes 127.0.0.1:8443 and :8080). This conftest adapts the environment, never their files:

- the package `kubernetes.e2e_test` they import is this directory's vendored copy (the PyPI client does
  not ship it);
- one emulator serves the whole suite, and the kubeconfig location points at a kubeconfig for it;
- each test runs from this directory, because `test_utils.py` opens `kubernetes/e2e_test/test_yaml/...`
  relative to the working directory (upstream runs from the client's checkout);
- the kubelet runs the suite's pods: `busybox` as the image behaves (`sh`), `nginx` as a stand-in serving
  its welcome page (`nginx_stand_in.py`); a test that cannot pass here is skipped with its reason
  (`NOT_EMULATED`: port 80 when not root).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.config import kube_config

from emulator.security import kubeconfig
from tests.client_e2e.kubernetes import e2e_test
from tests.client_e2e.kubernetes.e2e_test import base
from tests.conftest import start_emulator

HERE = Path(__file__).resolve().parent

# `from kubernetes.e2e_test import base` in the vendored modules resolves to the vendored package.
sys.modules.setdefault("kubernetes.e2e_test", e2e_test)
sys.modules.setdefault("kubernetes.e2e_test.base", base)

# Test id (relative to kubernetes/e2e_test/) -> why it cannot pass against the emulator.
NOT_EMULATED: dict[str, str] = {}
if os.geteuid() != 0:
    # the nginx stand-in listens on port 80, as nginx does; below 1024 that takes root (CI runs as root)
    NOT_EMULATED["test_client.py::TestClient::test_portforward_http"] = "nginx's port 80 needs root to bind here"

SUITE = HERE / "kubernetes" / "e2e_test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent != SUITE:
            continue
        reason = NOT_EMULATED.get(item.path.name + "::" + item.nodeid.split("::", 1)[1])
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="package", autouse=True)
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One emulator for the suite, and the kubeconfig location the suite reads pointed at it."""
    # The kubelet runs the suite's pods that have a command (exec, port-forward), anonymous as before.
    # busybox is mapped as the image is: no entrypoint, `sh` by default, so a container's args are its command.
    images = tmp_path_factory.mktemp("client-e2e-images") / "images.yaml"
    # nginx is a stand-in serving its welcome page (nginx_stand_in.py), on port 80 of the pod's address.
    images.write_text(
        "images:\n  busybox: {args: [sh]}\n"
        f"  nginx: {{command: [{sys.executable}, {HERE / 'nginx_stand_in.py'}]}}\n"
    )
    emu = start_emulator(tmp_path_factory.mktemp("client-e2e-data"), "--image-map", str(images), "--allow-anonymous")
    try:
        config = tmp_path_factory.mktemp("client-e2e-home") / "kubeconfig"
        kubeconfig.write(config, emu.api_url, use=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
            yield emu.api_url
    finally:
        emu.stop()


@pytest.fixture(autouse=True)
def suite_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's relative paths (`kubernetes/e2e_test/test_yaml/...`) resolve from here."""
    monkeypatch.chdir(HERE)
