"""The real kubectl 1.32 against the emulator: every everyday flow, asserted on kubectl's own output.

One emulator serves the whole module; each test works in its own namespace so that tests do not see
each other's objects. kubectl gets a kubeconfig and a discovery cache inside the test's temporary
directory, so nothing is read from or written to the user's ~/.kube.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest

SERVICE_AND_POD = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web}
spec:
  containers:
  - name: app
    image: nginx:1.25
    env:
    - {name: A, value: "1"}
    ports:
    - containerPort: 8080
"""


@pytest.fixture(scope="module")
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


def pod_body(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {"app": name}, **meta},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }


def rv(api: httpx.Client, path: str) -> str:
    return api.get(path).json()["metadata"]["resourceVersion"]


# -- discovery ---------------------------------------------------------------------------------------


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    assert "Server Version: v1.32.0" in kubectl.out("version")
    lines = kubectl.out("api-resources").splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in reversed(lines[1:])}  # the first `pods`: metrics.k8s.io has one too
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["services"] == ["services", "svc", "v1", "true", "Service"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert rows["endpointslices"] == ["endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"]
    assert rows["networkpolicies"] == ["networkpolicies", "netpol", "networking.k8s.io/v1", "true", "NetworkPolicy"]
    assert {"endpoints", "events", "serviceaccounts"} <= rows.keys()


# -- apply -------------------------------------------------------------------------------------------


def test_apply_create_change_unchanged(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    first = manifest(tmp_path, SERVICE_AND_POD)
    assert kubectl.out("apply", "-n", ns, "-f", first).splitlines() == ["service/web created", "pod/web-1 created"]
    svc_path = f"/api/v1/namespaces/{ns}/services/web"
    before = rv(api, svc_path)
    # the GET alone decides "unchanged": the last-applied annotation must round-trip byte for byte
    assert kubectl.out("apply", "-n", ns, "-f", first).splitlines() == ["service/web unchanged", "pod/web-1 unchanged"]
    assert rv(api, svc_path) == before

    changed = SERVICE_AND_POD.replace(
        "labels: {app: web}\nspec:\n  selector", "labels: {app: web, tier: fe}\nspec:\n  selector"
    )
    changed = changed.replace("    targetPort: 8080\n", "    targetPort: 8080\n  - name: metrics\n    port: 9090\n")
    changed = changed.replace("nginx:1.25", "nginx:1.26")  # of a pod's spec, only images may change
    changed = changed.replace("  - port: 80\n", "  - name: http\n    port: 80\n")
    second = manifest(tmp_path, changed, "m2.yaml")
    assert kubectl.out("apply", "-n", ns, "-f", second).splitlines() == [
        "service/web configured",
        "pod/web-1 configured",
    ]
    svc = api.get(svc_path).json()
    assert svc["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert [(p.get("name"), p["port"]) for p in svc["spec"]["ports"]] == [("http", 80), ("metrics", 9090)]
    container = api.get(f"/api/v1/namespaces/{ns}/pods/web-1").json()["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26"
    assert kubectl.out("apply", "-n", ns, "-f", second).splitlines() == ["service/web unchanged", "pod/web-1 unchanged"]
    # anything else of a pod's spec (its env here) is refused, as by Kubernetes' ValidatePodUpdate
    env_changed = manifest(tmp_path, changed.replace('{name: A, value: "1"}', '{name: B, value: "2"}'), "m3.yaml")
    refused = kubectl.run("apply", "-n", ns, "-f", env_changed, ok=False)
    assert refused.returncode != 0
    assert 'The Pod "web-1" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`' in refused.stderr
    assert api.get(f"/api/v1/namespaces/{ns}/pods/web-1").json()["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]

    # back to the first manifest: the label and the port it no longer mentions are removed
    assert kubectl.out("apply", "-n", ns, "-f", first).splitlines()[0] == "service/web configured"
    svc = api.get(svc_path).json()
    assert svc["metadata"]["labels"] == {"app": "web"}
    assert [p["port"] for p in svc["spec"]["ports"]] == [80]


def test_apply_server_side(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    text = """\
apiVersion: v1
kind: Service
metadata:
  name: api
  labels: {tier: be}
spec:
  selector: {app: api}
  ports:
  - port: 80
    targetPort: 8080
"""
    path = manifest(tmp_path, text)
    svc_path = f"/api/v1/namespaces/{ns}/services/api"
    assert kubectl.out("apply", "--server-side", "-n", ns, "-f", path).strip() == "service/api serverside-applied"
    before = rv(api, svc_path)
    assert kubectl.out("apply", "--server-side", "-n", ns, "-f", path).strip() == "service/api serverside-applied"
    assert rv(api, svc_path) == before  # a no-op apply leaves the object alone

    # another field manager changing a field kubectl owns: a conflict, unless forced
    other = manifest(tmp_path, text.replace("targetPort: 8080", "targetPort: 9090"), "other.yaml")
    refused = kubectl.run("apply", "--server-side", "--field-manager", "other", "-n", ns, "-f", other, ok=False)
    assert refused.returncode != 0
    assert 'conflict with "kubectl"' in refused.stderr and "targetPort" in refused.stderr
    assert api.get(svc_path).json()["spec"]["ports"][0]["targetPort"] == 8080
    forced = kubectl.out(
        "apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-n", ns, "-f", other
    )
    assert forced.strip() == "service/api serverside-applied"
    assert api.get(svc_path).json()["spec"]["ports"][0]["targetPort"] == 9090


def test_strict_field_validation(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    bad = manifest(
        tmp_path,
        """\
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: app
    image: nginx
    bogusField: 1
""",
    )
    refused = kubectl.run("apply", "-n", ns, "-f", bad, ok=False)
    assert refused.returncode == 1
    assert 'Error from server (BadRequest): error when creating "' in refused.stderr
    assert 'strict decoding error: unknown field "spec.containers[0].bogusField"' in refused.stderr
    assert api.get(f"/api/v1/namespaces/{ns}/pods/bad").status_code == 404
    warned = kubectl.run("apply", "--validate=warn", "-n", ns, "-f", bad)
    assert 'Warning: unknown field "spec.containers[0].bogusField"' in warned.stderr
    assert warned.stdout.strip() == "pod/bad created"


# -- get ---------------------------------------------------------------------------------------------


def test_get_columns_and_formats(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, SERVICE_AND_POD))
    pod = api.get(f"/api/v1/namespaces/{ns}/pods/web-1").json()
    svc = api.get(f"/api/v1/namespaces/{ns}/services/web").json()
    pod_ip, cluster_ip = pod["status"]["podIP"], svc["spec"]["clusterIP"]

    lines = kubectl.out("get", "pods", "-n", ns).splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["web-1", "1/1", "Running", "0"]

    wide = kubectl.out("get", "pods", "-n", ns, "-o", "wide").splitlines()
    assert re.split(r"\s{2,}", wide[0]) == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ]
    assert pod_ip in wide[1].split()

    everywhere = kubectl.out("get", "svc", "-A").splitlines()
    assert everywhere[0].split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert [ns, "web", "ClusterIP", cluster_ip, "<none>", "80/TCP"] in [line.split()[:6] for line in everywhere]
    assert any(line.split()[:2] == ["default", "kubernetes"] for line in everywhere)

    svc_wide = kubectl.out("get", "svc", "-n", ns, "-o", "wide", "--show-labels").splitlines()
    assert svc_wide[0].split()[-2:] == ["SELECTOR", "LABELS"]
    assert svc_wide[1].split()[-2:] == ["app=web", "app=web"]
    labelled = kubectl.out("get", "pods", "-A", "--show-labels").splitlines()
    assert [ns, "web-1", "1/1", "Running", "0"] in [line.split()[:5] for line in labelled]
    assert any(line.startswith(ns) and line.split()[-1] == "app=web" for line in labelled)

    as_yaml = kubectl.out("get", "pod", "web-1", "-n", ns, "-o", "yaml")
    assert as_yaml.startswith("apiVersion: v1\nkind: Pod\n") and f"podIP: {pod_ip}" in as_yaml
    listed = kubectl.out("get", "pods", "-n", ns, "-o", "yaml")
    assert "kind: List" in listed and "name: web-1" in listed
    assert kubectl.out("get", "svc", "-n", ns, "-o", "name").split() == ["service/web"]
    single = kubectl.out("get", "svc", "web", "-n", ns).splitlines()
    assert len(single) == 2 and single[1].split()[:2] == ["web", "ClusterIP"]

    endpoints = kubectl.out("get", "ep", "-n", ns).splitlines()
    assert endpoints[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert endpoints[1].split()[:2] == ["web", f"{pod_ip}:8080"]
    slices = kubectl.out("get", "endpointslices", "-n", ns).splitlines()
    assert slices[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert slices[1].split()[1:4] == ["IPv4", "8080", pod_ip] and slices[1].startswith("web-")  # generateName web-
    namespaces = kubectl.out("get", "ns").splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert [ns, "Active"] in [line.split()[:2] for line in namespaces]
    accounts = kubectl.out("get", "sa", "-n", ns).splitlines()
    assert accounts[0].split() == ["NAME", "SECRETS", "AGE"]

    missing = kubectl.run("get", "pods", "-n", "no-such-namespace")
    assert missing.stderr.strip() == "No resources found in no-such-namespace namespace."
    gone = kubectl.run("get", "pod", "nope", "-n", ns, ok=False)
    assert gone.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_get_network_policies(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    policy = manifest(
        tmp_path,
        """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
""",
    )
    assert kubectl.out("apply", "-n", ns, "-f", policy).strip() == "networkpolicy.networking.k8s.io/deny-web created"
    assert kubectl.out("apply", "-n", ns, "-f", policy).strip() == "networkpolicy.networking.k8s.io/deny-web unchanged"
    lines = kubectl.out("get", "netpol", "-n", ns).splitlines()
    assert lines[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    assert lines[1].split()[:2] == ["deny-web", "app=web"]


def test_get_all(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, SERVICE_AND_POD))
    names = [line.split()[0] for line in kubectl.out("get", "all", "-n", ns).splitlines() if line.strip()]
    assert "pod/web-1" in names and "service/web" in names


class LineReader:
    """The lines of a running process's stdout, read on a thread so the test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream], daemon=True).start()

    def wait_for(self, wanted: Callable[[list[str]], bool], timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.seen.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())).rstrip("\n"))
            except queue.Empty:
                raise AssertionError("timed out; kubectl printed:\n" + "\n".join(self.seen)) from None
            fields = self.seen[-1].split()
            if wanted(fields):
                return fields


def test_get_watch_sees_add_and_delete(kubectl: Kubectl, api: httpx.Client, ns: str) -> None:
    api.post(f"/api/v1/namespaces/{ns}/pods", json=pod_body("before")).raise_for_status()
    proc = subprocess.Popen(
        kubectl.argv("get", "pods", "-n", ns, "-w", "--output-watch-events"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = LineReader(proc)
        assert out.wait_for(lambda f: f[:1] == ["EVENT"]) == ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        out.wait_for(lambda f: f[:2] == ["ADDED", "before"])
        api.post(f"/api/v1/namespaces/{ns}/pods", json=pod_body("watched")).raise_for_status()
        assert out.wait_for(lambda f: f[:2] == ["ADDED", "watched"])[2:4] == ["1/1", "Running"]
        api.delete(f"/api/v1/namespaces/{ns}/pods/watched").raise_for_status()
        out.wait_for(lambda f: f[:2] == ["DELETED", "watched"])
        # the list's resourceVersion was honoured: no row was printed twice, and only one header
        assert [line.split()[:2] for line in out.seen].count(["ADDED", "before"]) == 1
        assert sum(line.startswith("EVENT") for line in out.seen) == 1
    finally:
        proc.terminate()
        proc.wait(5)


# -- describe ----------------------------------------------------------------------------------------


def test_describe_pod_and_service(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, SERVICE_AND_POD))
    pod_ip = api.get(f"/api/v1/namespaces/{ns}/pods/web-1").json()["status"]["podIP"]
    service = kubectl.out("describe", "svc", "web", "-n", ns)
    fields = dict(re.findall(r"^([A-Za-z ]+):\s+(.*)$", service, re.M))
    assert fields["Name"] == "web" and fields["Namespace"] == ns
    assert fields["Selector"] == "app=web" and fields["Type"] == "ClusterIP"
    assert fields["TargetPort"] == "8080/TCP"
    assert fields["Endpoints"] == f"{pod_ip}:8080"  # from the EndpointSlice
    assert fields["Events"] == "<none>"
    pod = kubectl.out("describe", "pod", "web-1", "-n", ns)
    fields = dict(re.findall(r"^\s*([A-Za-z ]+?):\s+(.*)$", pod, re.M))
    assert fields["Name"] == "web-1" and fields["Status"] == "Running" and fields["IP"] == pod_ip
    assert fields["Image"] == "nginx:1.25"
    assert fields["Events"] == "<none>"

    # describe finds a pod's events by involvedObject uid/name/namespace/kind
    uid = api.get(f"/api/v1/namespaces/{ns}/pods/web-1").json()["metadata"]["uid"]
    event = {
        "metadata": {"name": "web-1.started"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": ns, "uid": uid},
        "reason": "Started",
        "message": "Started container app",
        "type": "Normal",
        "count": 1,
        "source": {"component": "kubelet"},
    }
    api.post(f"/api/v1/namespaces/{ns}/events", json=event).raise_for_status()
    described = kubectl.out("describe", "pod", "web-1", "-n", ns)
    assert described.splitlines()[-1].split() == [
        "Normal",
        "Started",
        "<unknown>",
        "kubelet",
        "Started",
        "container",
        "app",
    ]
    events = kubectl.out("get", "events", "-n", ns).splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1].split()[1:] == ["Normal", "Started", "pod/web-1", "Started", "container", "app"]


# -- delete ------------------------------------------------------------------------------------------


def test_delete_f(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    path = manifest(tmp_path, SERVICE_AND_POD)
    kubectl.out("apply", "-n", ns, "-f", path)
    started = time.monotonic()
    assert kubectl.out("delete", "-n", ns, "-f", path).splitlines() == ['service "web" deleted', 'pod "web-1" deleted']
    assert time.monotonic() - started < 5
    assert api.get(f"/api/v1/namespaces/{ns}/services/web").status_code == 404
    assert api.get(f"/api/v1/namespaces/{ns}/pods/web-1").status_code == 404
    assert api.get(f"/api/v1/namespaces/{ns}/endpoints/web").status_code == 404


def test_delete_waits_for_finalizers(kubectl: Kubectl, api: httpx.Client, ns: str) -> None:
    api.post(f"/api/v1/namespaces/{ns}/pods", json=pod_body("held", finalizers=["example.com/hold"])).raise_for_status()
    proc = subprocess.Popen(
        kubectl.argv("delete", "pod", "held", "-n", ns, "--timeout=20s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "kubectl delete returned while the pod was still there"
        assert api.get(f"/api/v1/namespaces/{ns}/pods/held").json()["metadata"].get("deletionTimestamp")
        released = api.patch(
            f"/api/v1/namespaces/{ns}/pods/held",
            content=b'[{"op":"remove","path":"/metadata/finalizers"}]',
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert released.status_code == 200, released.text
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.strip() == 'pod "held" deleted'


# -- create generators (protobuf bodies) -------------------------------------------------------------


def test_create_namespace_serviceaccount_service(kubectl: Kubectl, api: httpx.Client) -> None:
    assert kubectl.out("create", "namespace", "made-by-kubectl").strip() == "namespace/made-by-kubectl created"
    again = kubectl.run("create", "namespace", "made-by-kubectl", ok=False)
    assert again.stderr.strip() == 'Error from server (AlreadyExists): namespaces "made-by-kubectl" already exists'
    assert (
        kubectl.out("create", "serviceaccount", "bot", "-n", "made-by-kubectl").strip() == "serviceaccount/bot created"
    )
    created = kubectl.out("create", "service", "clusterip", "s1", "--tcp=80:8080", "-n", "made-by-kubectl")
    assert created.strip() == "service/s1 created"
    assert api.get("/api/v1/namespaces/made-by-kubectl/serviceaccounts/bot").status_code == 200
    svc = api.get("/api/v1/namespaces/made-by-kubectl/services/s1").json()
    assert svc["metadata"]["labels"] == {"app": "s1"}
    assert svc["spec"]["selector"] == {"app": "s1"}
    assert svc["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert svc["spec"]["clusterIP"]
    assert kubectl.out("delete", "namespace", "made-by-kubectl").strip() == 'namespace "made-by-kubectl" deleted'


# -- label, annotate, patch, replace -----------------------------------------------------------------


def test_label_and_annotate(kubectl: Kubectl, api: httpx.Client, ns: str) -> None:
    api.post(f"/api/v1/namespaces/{ns}/pods", json=pod_body("p")).raise_for_status()
    path = f"/api/v1/namespaces/{ns}/pods/p"
    assert kubectl.out("label", "pod", "p", "env=dev", "-n", ns).strip() == "pod/p labeled"
    refused = kubectl.run("label", "pod", "p", "env=prod", "-n", ns, ok=False)
    assert "already has a value (dev)" in refused.stderr
    assert kubectl.out("label", "pod", "p", "env=prod", "--overwrite", "-n", ns).strip() == "pod/p labeled"
    assert api.get(path).json()["metadata"]["labels"] == {"app": "p", "env": "prod"}
    assert kubectl.out("label", "pod", "p", "env-", "-n", ns).strip() == "pod/p unlabeled"
    assert api.get(path).json()["metadata"]["labels"] == {"app": "p"}
    assert kubectl.out("annotate", "pod", "p", "owner=team-a", "-n", ns).strip() == "pod/p annotated"
    assert api.get(path).json()["metadata"]["annotations"] == {"owner": "team-a"}
    assert kubectl.out("get", "pods", "-n", ns, "-l", "app=p", "-o", "name").strip() == "pod/p"


def test_patch_strategic_merge_and_json(kubectl: Kubectl, api: httpx.Client, ns: str) -> None:
    body = pod_body("p")
    body["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    api.post(f"/api/v1/namespaces/{ns}/pods", json=body).raise_for_status()
    path = f"/api/v1/namespaces/{ns}/pods/p"

    # strategic (the default): containers merge by name, so the sidecar stays
    out = kubectl.out(
        "patch", "pod", "p", "-n", ns, "-p", '{"spec":{"containers":[{"name":"app","image":"busybox:2"}]}}'
    )
    assert out.strip() == "pod/p patched"
    containers = api.get(path).json()["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "busybox:2"), ("sidecar", "envoy:1")]

    out = kubectl.out(
        "patch", "pod", "p", "-n", ns, "--type", "merge", "-p", '{"metadata":{"labels":{"merged":"yes"}}}'
    )
    assert out.strip() == "pod/p patched"
    out = kubectl.out(
        "patch",
        "pod",
        "p",
        "-n",
        ns,
        "--type",
        "json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/json","value":"yes"}]',
    )
    assert out.strip() == "pod/p patched"
    assert api.get(path).json()["metadata"]["labels"] == {"app": "p", "merged": "yes", "json": "yes"}

    before = rv(api, path)
    out = kubectl.out("patch", "pod", "p", "-n", ns, "-p", '{"metadata":{"labels":{"merged":"yes"}}}')
    assert out.strip() == "pod/p patched (no change)"
    assert rv(api, path) == before
    bad = kubectl.run(
        "patch",
        "pod",
        "p",
        "-n",
        ns,
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/metadata/labels/nope"}]',
        ok=False,
    )
    # the real API server answers 422 Invalid for a JSON patch that cannot be applied
    assert (
        bad.returncode == 1
        and bad.stderr.startswith("The request is invalid: ")
        and "/metadata/labels/nope" in bad.stderr
    )


def test_replace(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, SERVICE_AND_POD))
    live = kubectl.out("get", "svc", "web", "-n", ns, "-o", "yaml")
    edited = manifest(
        tmp_path,
        live.replace("  labels:\n    app: web\n", '  labels:\n    app: web\n    replaced: "yes"\n'),
        "svc.yaml",
    )
    assert kubectl.out("replace", "-f", edited).strip() == "service/web replaced"
    assert api.get(f"/api/v1/namespaces/{ns}/services/web").json()["metadata"]["labels"] == {
        "app": "web",
        "replaced": "yes",
    }
    # the file still carries the old resourceVersion: optimistic concurrency refuses it
    stale = kubectl.run("replace", "-f", edited, ok=False)
    assert 'Error from server (Conflict): error when replacing "' in stale.stderr
    assert 'Operation cannot be fulfilled on services "web": the object has been modified' in stale.stderr


# -- the rest of a day's work ------------------------------------------------------------------------


def test_diff_and_server_dry_run(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, SERVICE_AND_POD))
    changed = manifest(tmp_path, SERVICE_AND_POD.replace("nginx:1.25", "nginx:1.27"), "changed.yaml")
    diff = kubectl.run("diff", "-n", ns, "-f", changed, ok=False)
    assert diff.returncode == 1, diff.stderr  # 1 = differences found
    assert "-    image: nginx:1.25\n+    image: nginx:1.27\n" in diff.stdout
    dry = kubectl.out("apply", "--dry-run=server", "-n", ns, "-f", changed).splitlines()
    assert dry == ["service/web unchanged (server dry run)", "pod/web-1 configured (server dry run)"]
    assert api.get(f"/api/v1/namespaces/{ns}/pods/web-1").json()["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_run_wait_expose(kubectl: Kubectl, api: httpx.Client, ns: str) -> None:
    assert kubectl.out("run", "box", "--image=busybox", "--labels=app=box", "-n", ns).strip() == "pod/box created"
    assert (
        kubectl.out("wait", "--for=condition=Ready", "pod/box", "-n", ns, "--timeout=10s").strip()
        == "pod/box condition met"
    )
    out = kubectl.out("expose", "pod", "box", "--name", "box-svc", "--port", "80", "--target-port", "8080", "-n", ns)
    assert out.strip() == "service/box-svc exposed"
    assert api.get(f"/api/v1/namespaces/{ns}/services/box-svc").json()["spec"]["selector"] == {"app": "box"}
    assert kubectl.out("delete", "pods", "-l", "app=box", "-n", ns).strip() == 'pod "box" deleted'


def test_apply_namespace_with_its_contents(kubectl: Kubectl, tmp_path: Path) -> None:
    path = manifest(
        tmp_path,
        """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: cart, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  type: NodePort
  selector: {app: cart}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  ports: [{port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-manual, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints: [{addresses: [10.1.2.3]}]
ports: [{port: 5432}]
""",
    )
    assert kubectl.out("apply", "-f", path).splitlines() == [
        "namespace/shop created",
        "serviceaccount/cart created",
        "service/cart created",
        "service/db created",
        "endpointslice.discovery.k8s.io/db-manual created",
    ]
    rows = [line.split() for line in kubectl.out("get", "svc", "-n", "shop").splitlines()]
    assert ["cart", "NodePort"] == rows[1][:2] and rows[1][4] == "80:30080/TCP"
    # a selector-less service's endpoints come from the slice the user wrote (its port name defaulted to "")
    described = kubectl.out("describe", "svc", "db", "-n", "shop")
    assert re.search(r"^Endpoints:\s+10\.1\.2\.3:5432$", described, re.M)
    # the namespace turns Terminating first, so deleting the file's objects in order finds each of them
    deleted = kubectl.run("delete", "-f", path)
    assert deleted.stdout.splitlines() == [
        'namespace "shop" deleted',
        'serviceaccount "cart" deleted',
        'service "cart" deleted',
        'service "db" deleted',
        'endpointslice.discovery.k8s.io "db-manual" deleted',
    ], deleted.stderr
    assert "NotFound" in kubectl.run("get", "namespace", "shop", ok=False).stderr
