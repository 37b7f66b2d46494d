"""A real app nobody here wrote, applied the way its README says: Online Boutique's release manifests
(GoogleCloudPlatform/microservices-demo: 12 Deployments, 12 Services with one LoadBalancer, 11
ServiceAccounts, vendored unchanged in manifests/) with plain `kubectl apply -f` — no flags, kubectl's own
client-side validation on — then what a user checks next: every rollout completes, every Service has
endpoints and a DNS name, the LoadBalancer an address, events tell what the controllers did, an image
change rolls out and rolls back, and configuration from a ConfigMap and a Secret reaches a pod's
environment.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
import yaml

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest

T = TypeVar("T")
BOUTIQUE = Path(__file__).parent / "manifests" / "microservices-demo.yaml"


@pytest.fixture(scope="module")
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


def eventually(check: Callable[[], T], timeout: float = 15, why: str = "condition not met") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def as_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl.out("get", *args, "-o", "json"))


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(BOUTIQUE.read_text()) if d]


def a_record(emu: Emulator, name: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=emu.dns_port, timeout=3)
    return sorted(item.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for item in rrset)


def test_online_boutique_applies_rolls_out_and_is_reachable_by_name(kubectl: Kubectl, emu: Emulator, ns: str) -> None:
    docs = documents()
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["Deployment", "Service", "ServiceAccount"] and len(docs) == 35

    applied = kubectl.out("apply", "-n", ns, "-f", str(BOUTIQUE)).splitlines()
    expected = {f"{d['kind'].lower()}{'.apps' if d['kind'] == 'Deployment' else ''}/{d['metadata']['name']} created" for d in docs}
    assert sorted(applied) == sorted(expected)

    deployments = [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"]
    for name in deployments:
        # the ReplicaSet retries pods refused while the ServiceAccount after it in the file did not exist yet
        out = kubectl.run("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=30s", timeout=40).stdout
        assert f'deployment "{name}" successfully rolled out' in out

    pods = as_json(kubectl, "pods", "-n", ns)["items"]
    assert len(pods) == 12 and all(p["status"]["phase"] == "Running" for p in pods)
    ip_of = {p["metadata"]["labels"]["app"]: p["status"]["podIP"] for p in pods}

    for svc in (d for d in docs if d["kind"] == "Service"):
        name, app = svc["metadata"]["name"], svc["spec"]["selector"]["app"]
        endpoints = as_json(kubectl, "endpoints", name, "-n", ns)
        addresses = [a["ip"] for subset in endpoints.get("subsets") or [] for a in subset.get("addresses") or []]
        assert addresses == [ip_of[app]], name
        cluster_ip = as_json(kubectl, "service", name, "-n", ns)["spec"]["clusterIP"]
        assert a_record(emu, f"{name}.{ns}.svc.cluster.local.") == [cluster_ip], name

    external = eventually(lambda: as_json(kubectl, "service", "frontend-external", "-n", ns)["status"].get("loadBalancer", {}).get("ingress"))
    assert external[0]["ip"]

    # applying the same file again changes nothing
    assert sorted(kubectl.out("apply", "-n", ns, "-f", str(BOUTIQUE)).splitlines()) == sorted(e.replace(" created", " unchanged") for e in expected)

    events = kubectl.out("get", "events", "-n", ns)
    for name in deployments:
        assert f"deployment/{name}" in events and "ScalingReplicaSet" in events
    described = kubectl.out("describe", "deployment", "frontend", "-n", ns)
    assert "Scaled up replica set frontend-" in described


def test_an_image_change_rolls_out_and_back(kubectl: Kubectl, ns: str) -> None:
    kubectl.out("apply", "-n", ns, "-f", str(BOUTIQUE))
    kubectl.run("rollout", "status", "deployment/frontend", "-n", ns, "--timeout=30s", timeout=40)
    original = as_json(kubectl, "deployment", "frontend", "-n", ns)["spec"]["template"]["spec"]["containers"][0]["image"]
    kubectl.out("set", "image", "deployment/frontend", "server=frontend:dev", "-n", ns)
    kubectl.run("rollout", "status", "deployment/frontend", "-n", ns, "--timeout=30s", timeout=40)
    sets = as_json(kubectl, "rs", "-n", ns, "-l", "app=frontend")["items"]
    by_image = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"] for rs in sets}
    assert by_image == {original: 0, "frontend:dev": 1}
    [pod] = as_json(kubectl, "pods", "-n", ns, "-l", "app=frontend")["items"]
    assert pod["spec"]["containers"][0]["image"] == "frontend:dev"

    kubectl.out("rollout", "undo", "deployment/frontend", "-n", ns)
    kubectl.run("rollout", "status", "deployment/frontend", "-n", ns, "--timeout=30s", timeout=40)
    image = as_json(kubectl, "deployment", "frontend", "-n", ns)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == original
    history = kubectl.out("rollout", "history", "deployment/frontend", "-n", ns)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]


CONFIGURED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  CURRENCY: EUR
  log.level: debug
---
apiVersion: v1
kind: Secret
metadata:
  name: shop-secret
type: Opaque
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
spec:
  replicas: 2
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
      - name: app
        image: checkout:1
        envFrom:
        - configMapRef: {name: shop-config}
          prefix: SHOP_
        env:
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef: {name: shop-secret, key: password}
        - name: LOG_LEVEL
          valueFrom:
            configMapKeyRef: {name: shop-config, key: log.level}
        - name: MY_POD
          valueFrom:
            fieldRef: {fieldPath: metadata.name}
"""


def test_configuration_from_a_config_map_and_a_secret_reaches_the_pods(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CONFIGURED)).splitlines()
    assert out == ["configmap/shop-config created", "secret/shop-secret created", "deployment.apps/checkout created"]
    kubectl.run("rollout", "status", "deployment/checkout", "-n", ns, "--timeout=30s", timeout=40)
    secret = as_json(kubectl, "secret", "shop-secret", "-n", ns)
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret" and "stringData" not in secret
    for pod in as_json(kubectl, "pods", "-n", ns, "-l", "app=checkout")["items"]:
        name = pod["metadata"]["name"]
        env = api.get(f"/emulator/v1/namespaces/{ns}/pods/{name}/env").json()
        values = env.get("env", env) if isinstance(env, dict) else {}
        assert values.get("SHOP_CURRENCY") == "EUR"
        assert values.get("SHOP_log.level") == "debug"  # 1.32 allows any printable name but "=" (RelaxedEnvironmentVariableValidation)
        assert values.get("DB_PASSWORD") == "s3cret"
        assert values.get("LOG_LEVEL") == "debug"
        assert values.get("MY_POD") == name
