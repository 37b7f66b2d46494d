"""In-cluster credentials for the kubelet's pods, as a cluster gives them: a pod of an emulator whose API
requires tokens finds its service account's token, the API's CA and its namespace at
/var/run/secrets/kubernetes.io/serviceaccount, and the official Python client's load_incluster_config()
reaches the API through the `kubernetes` service's cluster IP, verified by that CA, as the service account
(RBAC decides what it may do)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import Emulator, require_tool
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_kubelet import start_kubelet, wait_for

pytestmark = pytest.mark.timeout(120)

# The in-cluster client: what it may list in its own namespace, and what RBAC refuses it elsewhere.
CLIENT = """
import json
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
api = client.CoreV1Api()
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
pods = [p.metadata.name for p in api.list_namespaced_pod(namespace).items]
try:
    api.list_namespaced_secret("kube-system")
    refused = None
except ApiException as exc:
    refused = exc.status
print(json.dumps({"namespace": namespace, "pods": pods, "refused": refused}))
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    # a service range of its own: another test's emulator may hold the default `kubernetes` address
    emulator = start_kubelet(tmp_path_factory.mktemp("incluster"), "--service-cidr", "127.112.0.0/16")
    yield emulator
    emulator.stop(timeout=30)


def test_a_pod_uses_the_api_with_its_service_account_from_inside(secured: Emulator, tmp_path: Path) -> None:
    admin = Kubectl(require_tool("kubectl"), Path(secured.faces["kubeconfig"]), tmp_path / "cache")
    admin.run("create", "namespace", "inside")
    admin.run("-n", "inside", "create", "rolebinding", "view", "--clusterrole=view", "--serviceaccount=inside:default")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "inside"},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "python:3", "command": [sys.executable, "-c", CLIENT]}]}}
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    admin.run("apply", "-f", str(tmp_path / "pod.yaml"))
    wait_for(lambda: admin.out("-n", "inside", "get", "pod", "client", "-o", "jsonpath={.status.phase}") in ("Succeeded", "Failed"),
             60, "the client to finish")
    log = admin.out("-n", "inside", "logs", "client")
    assert json.loads(log.strip().splitlines()[-1]) == {"namespace": "inside", "pods": ["client"], "refused": 403}, log
    # what it read: the volume ServiceAccount admission added, and the CA the kubeconfig trusts
    made = json.loads(admin.out("-n", "inside", "get", "pod", "client", "-o", "json"))
    [volume] = [v for v in made["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert made["spec"]["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    kubeconfig = yaml.safe_load(Path(secured.faces["kubeconfig"]).read_text())
    trusted = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    published = json.loads(admin.out("-n", "inside", "get", "configmap", "kube-root-ca.crt", "-o", "json"))
    assert published["data"]["ca.crt"].strip() == trusted.strip()


def test_automount_false_mounts_nothing(secured: Emulator, tmp_path: Path) -> None:
    admin = Kubectl(require_tool("kubectl"), Path(secured.faces["kubeconfig"]), tmp_path / "cache")
    admin.run("create", "namespace", "quiet")
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet", "namespace": "quiet"},
               "automountServiceAccountToken": False}
    admin.run("apply", "-f", "-", stdin=json.dumps(account))
    admin.run("-n", "quiet", "run", "p", "--image=busybox", "--restart=Never", '--overrides={"spec": {"serviceAccountName": "quiet"}}',
              "--command", "--",
              "sh", "-c", "test -e /var/run/secrets/kubernetes.io/serviceaccount/token && echo mounted || echo none")
    wait_for(lambda: admin.out("-n", "quiet", "get", "pod", "p", "-o", "jsonpath={.status.phase}") == "Succeeded", 60, "the pod to end")
    assert admin.out("-n", "quiet", "logs", "p").strip() == "none"
    assert "kube-api-access" not in admin.out("-n", "quiet", "get", "pod", "p", "-o", "json")
