"""ConfigMaps, Secrets, the downward API and resources in a pod's environment, with real kubectl: the env
endpoint and `emulator env` show what the kubelet would set, and a pod whose ConfigMap/Secret/key is
missing waits (CreateContainerConfigError, an event from the kubelet) until it appears."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, Emulator
from tests.integration.kubectl_support import Kubectl, manifest

ENV = "/emulator/v1/namespaces/{ns}/pods/{name}/env"

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: shop}}
spec:
  containers:
  - name: app
    image: busybox
    resources:
      limits: {{cpu: 500m, memory: 128Mi}}
      requests: {{cpu: 250m}}
    envFrom:
    - configMapRef: {{name: settings}}
    - secretRef: {{name: creds}}
      prefix: DB_
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: APP
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    - name: MY_NODE
      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
    - name: CPU_MILLIS
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: 1m}}}}
    - name: MEMORY_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    - name: CPU_REQUEST
      valueFrom: {{resourceFieldRef: {{resource: requests.cpu}}}}
    - name: DSN
      value: "postgres://user:$(PASSWORD)@db/$(mode)"
"""


def pod_json(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl.out("get", "pod", name, "-n", ns, "-o", "json"))
    return result


def ready(pod: dict[str, Any]) -> str:
    return next((c["status"] for c in pod["status"].get("conditions") or [] if c["type"] == "Ready"), "")


def waiting(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod["status"].get("containerStatuses") or [{}]
    return ((statuses[0].get("state") or {}).get("waiting")) or {}


def wait_for(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def emulator_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_config_maps_secrets_fields_and_resources_reach_the_environment(
    emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl.run("create", "configmap", "settings", "-n", ns, "--from-literal=mode=fast", "--from-literal=LEVEL=3")
    kubectl.run("create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=s3cr3t", "--from-literal=USER=admin")
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, POD.format(name="shop")))
    pod = pod_json(kubectl, ns, "shop")
    assert pod["status"]["phase"] == "Running" and ready(pod) == "True"

    with emu.client() as api:
        env = api.get(ENV.format(ns=ns, name="shop")).json()["env"]
    node_cpus = json.loads(kubectl.out("get", "node", "emulator", "-o", "json"))["status"]["allocatable"]["cpu"]
    assert node_cpus
    assert {k: env[k] for k in (
        "LEVEL", "mode", "DB_USER", "DB_password", "MODE", "PASSWORD", "APP", "MY_NODE", "CPU_MILLIS", "MEMORY_MI",
        "CPU_REQUEST", "DSN",
    )} == {
        "LEVEL": "3", "mode": "fast", "DB_USER": "admin", "DB_password": "s3cr3t", "MODE": "fast", "PASSWORD": "s3cr3t",
        "APP": "shop", "MY_NODE": "emulator", "CPU_MILLIS": "500", "MEMORY_MI": "128", "CPU_REQUEST": "1",
        "DSN": "postgres://user:s3cr3t@db/fast",
    }
    assert "KUBERNETES_SERVICE_HOST" in env  # the service variables come with them

    printed = emulator_cli("env", "shop", "-n", ns, "--server", emu.api_url)
    assert printed.returncode == 0, printed.stderr
    assert "PASSWORD=s3cr3t\n" in printed.stdout and "CPU_MILLIS=500\n" in printed.stdout


def test_a_missing_config_map_holds_the_pod_until_it_is_created(
    emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    kubectl.run("create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=s3cr3t")
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, POD.format(name="shop")))

    pod = pod_json(kubectl, ns, "shop")  # born waiting: never Ready for a moment
    assert pod["status"]["phase"] == "Pending" and ready(pod) == "False"
    assert waiting(pod) == {"reason": "CreateContainerConfigError", "message": 'configmap "settings" not found'}
    assert "CreateContainerConfigError" in kubectl.out("get", "pod", "shop", "-n", ns)

    def failed_events() -> list[str]:
        out = kubectl.out("get", "events", "-n", ns, "--field-selector", "involvedObject.name=shop,reason=Failed", "-o", "json")
        return [f"{e['type']} {e['source']['component']} {e['message']}" for e in json.loads(out)["items"]]

    assert wait_for(failed_events) == ['Warning kubelet Error: configmap "settings" not found']
    described = kubectl.out("describe", "pod", "shop", "-n", ns)
    assert "CreateContainerConfigError" in described
    assert 'Error: configmap "settings" not found' in described

    with emu.client() as api:
        response = api.get(ENV.format(ns=ns, name="shop"))
    assert response.status_code == 404
    assert response.json()["message"] == (
        'container "app" of pod "shop" cannot start (CreateContainerConfigError): configmap "settings" not found'
    )

    printed = emulator_cli("env", "shop", "-n", ns, "--server", emu.api_url)
    assert printed.returncode == 1 and printed.stdout == ""
    assert printed.stderr == f"error: {response.json()['message']}\n"

    # the ConfigMap appears without the key: still waiting, now for the key
    kubectl.run("create", "configmap", "settings", "-n", ns, "--from-literal=LEVEL=3")
    assert wait_for(lambda: waiting(pod_json(kubectl, ns, "shop")).get("message") == f"couldn't find key mode in ConfigMap {ns}/settings")
    assert f"Warning kubelet Error: couldn't find key mode in ConfigMap {ns}/settings" in wait_for(
        lambda: len(failed_events()) == 2 and failed_events()
    )

    kubectl.run("patch", "configmap", "settings", "-n", ns, "-p", '{"data": {"mode": "fast"}}')
    assert wait_for(lambda: ready(pod_json(kubectl, ns, "shop")) == "True")
    pod = pod_json(kubectl, ns, "shop")
    assert pod["status"]["phase"] == "Running" and waiting(pod) == {}
    assert "Running" in kubectl.out("get", "pod", "shop", "-n", ns)
    with emu.client() as api:
        assert api.get(ENV.format(ns=ns, name="shop")).json()["env"]["MODE"] == "fast"

    # the kubelet reads the environment when it creates a container: deleting the ConfigMap now changes nothing
    kubectl.run("delete", "configmap", "settings", "-n", ns)
    time.sleep(0.3)
    assert ready(pod_json(kubectl, ns, "shop")) == "True"


def test_a_missing_secret_key_and_a_deployment_waiting_for_its_secret(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("create", "configmap", "settings", "-n", ns, "--from-literal=mode=fast")
    kubectl.run("create", "secret", "generic", "creds", "-n", ns, "--from-literal=other=x")
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, POD.format(name="shop")))
    assert waiting(pod_json(kubectl, ns, "shop"))["message"] == f"couldn't find key password in Secret {ns}/creds"

    kubectl.run("create", "deployment", "web", "-n", ns, "--image=busybox", "--replicas=2")
    # (`kubectl set env --from` reads the Secret itself, so it cannot name one that does not exist yet)
    kubectl.run("patch", "deployment", "web", "-n", ns, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/spec/template/spec/containers/0/envFrom", "value": [{"secretRef": {"name": "later"}}]}]
    ))
    deployment_pods = "app=web"

    def waiting_pods() -> list[str]:
        out = json.loads(kubectl.out("get", "pods", "-n", ns, "-l", deployment_pods, "-o", "json"))["items"]
        return [waiting(p).get("message", "") for p in out if not p["metadata"].get("deletionTimestamp")]

    # the rollout stalls as in a cluster: one surge pod waits, the old pods keep serving (maxUnavailable 0)
    assert wait_for(lambda: sorted(waiting_pods()) == ["", "", 'secret "later" not found'])
    kubectl.run("create", "secret", "generic", "later", "-n", ns, "--from-literal=TOKEN=t")
    kubectl.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")


def test_optional_references_that_are_missing_are_left_out(emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, """
apiVersion: v1
kind: Pod
metadata: {name: relaxed}
spec:
  containers:
  - name: app
    image: busybox
    envFrom:
    - configMapRef: {name: nope, optional: true}
    env:
    - name: A
      valueFrom: {secretKeyRef: {name: nope, key: k, optional: true}}
    - name: B
      value: b
"""))
    pod = pod_json(kubectl, ns, "relaxed")
    assert pod["status"]["phase"] == "Running" and ready(pod) == "True"
    with emu.client() as api:
        env = api.get(ENV.format(ns=ns, name="relaxed")).json()["env"]
    assert env["B"] == "b" and "A" not in env


def test_emulator_run_with_a_missing_key_fails_and_names_it(emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.run("create", "configmap", "settings", "-n", ns, "--from-literal=mode=fast")
    marker = tmp_path / "started"
    command = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"]
    failed = emulator_cli("run", "--name", "job", "-n", ns, "--server", emu.api_url, "--env-ref", "LEVEL=configmap/settings/level", *command)
    assert failed.returncode == 1
    assert f"error: container \"job\" of pod \"job\" cannot start (CreateContainerConfigError): couldn't find key level in ConfigMap {ns}/settings" in failed.stderr
    assert not marker.exists()  # CMD never started
    assert kubectl.run("get", "pod", "job", "-n", ns, ok=False).returncode != 0  # and the pod is gone

    report = tmp_path / "env.json"
    dump = ["--", sys.executable, "-c", f"import json, os; json.dump(dict(os.environ), open({str(report)!r}, 'w'))"]
    ran = emulator_cli(
        "run", "--name", "job", "-n", ns, "--server", emu.api_url, "--env-ref", "MODE=configmap/settings/mode",
        "--env-from", "configmap/settings", "-e", "GREETING=hi $(MODE)", *dump,
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(report.read_text())
    assert (seen["MODE"], seen["mode"], seen["GREETING"]) == ("fast", "fast", "hi fast")
