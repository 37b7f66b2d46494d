"""StatefulSets with the real kubectl 1.32: the Kubernetes StatefulSet tutorial (a headless Service `nginx`
and a StatefulSet `web` with volumeClaimTemplates `www`) applied as it is, its pods resolved through the
emulator's DNS, scaled, rolled (image change, partition, history, undo, restart), and deleted with its
claims kept — asserted on kubectl's own output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rcode
from kubernetes import client

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest

T = TypeVar("T")

# https://kubernetes.io/docs/tutorials/stateful-application/basic-stateful-set/ (web.yaml)
WEB = """\
apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  ports:
  - port: 80
    name: web
  clusterIP: None
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: "nginx"
  replicas: 2
  minReadySeconds: 0
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.21
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      resources:
        requests:
          storage: 1Gi
"""


def eventually(check: Callable[[], T], timeout: float = 10, why: str = "condition not met") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def rows(kubectl: Kubectl, *args: str) -> list[list[str]]:
    return [line.split() for line in kubectl.out("get", *args).splitlines()]


def as_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl.out("get", *args, "-o", "json"))


def revisions(kubectl: Kubectl, ns: str) -> dict[str, str]:
    """pod -> controller-revision-hash"""
    return {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"] for p in as_json(kubectl, "pods", "-n", ns, "-l", "app=nginx")["items"]}


def resolve(emu: Emulator, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=emu.dns_port, timeout=3)
    assert reply.rcode() == dns.rcode.NOERROR, f"{name}: {dns.rcode.to_text(reply.rcode())}"
    return {item.to_text() for answer in reply.answer for item in answer}


def deploy_web(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, WEB))
    assert out.splitlines() == ["service/nginx created", "statefulset.apps/web created"]
    status = kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    assert status.strip().endswith("partitioned roll out complete: 2 new pods have been updated...")


def test_api_resources_list_the_kinds(kubectl: Kubectl) -> None:
    found = {line.split()[0]: line.split() for line in kubectl.out("api-resources").splitlines()[1:]}
    assert found["statefulsets"] == ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"]
    assert found["daemonsets"] == ["daemonsets", "ds", "apps/v1", "true", "DaemonSet"]
    assert found["controllerrevisions"] == ["controllerrevisions", "apps/v1", "true", "ControllerRevision"]


def test_the_tutorial_applies_and_its_pods_resolve(emu: Emulator, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    deploy_web(kubectl, ns, tmp_path)
    assert rows(kubectl, "sts", "-n", ns)[1][:2] == ["web", "2/2"]
    wide = rows(kubectl, "sts", "-n", ns, "-o", "wide")
    assert wide[0] == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"] and wide[1][3:] == ["nginx", "registry.k8s.io/nginx-slim:0.21"]
    pods = as_json(kubectl, "pods", "-n", ns, "-l", "app=nginx")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["web-0", "web-1"]
    for pod in pods:
        name = pod["metadata"]["name"]
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (name, "nginx")
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == name[-1]
        assert pod["spec"]["volumes"][0] == {"name": "www", "persistentVolumeClaim": {"claimName": f"www-{name}"}}
    claims = rows(kubectl, "pvc", "-n", ns, "--no-headers")
    assert [(c[0], c[1]) for c in claims] == [("www-web-0", "Bound"), ("www-web-1", "Bound")]
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    assert resolve(emu, f"web-0.nginx.{ns}.svc.cluster.local") == {ips["web-0"]}
    assert resolve(emu, f"web-1.nginx.{ns}.svc.cluster.local") == {ips["web-1"]}
    assert resolve(emu, f"nginx.{ns}.svc.cluster.local") == set(ips.values())
    events = kubectl.out("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=StatefulSet")
    assert "create Pod web-0 in StatefulSet web successful" in events
    assert "create Claim www-web-0 Pod web-0 in StatefulSet web success" in events


def test_scale_up_and_down_keeps_the_claims(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    deploy_web(kubectl, ns, tmp_path)
    assert kubectl.out("scale", "sts/web", "--replicas=5", "-n", ns).strip() == "statefulset.apps/web scaled"
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    assert [r[0] for r in rows(kubectl, "pods", "-n", ns, "--no-headers")] == [f"web-{i}" for i in range(5)]
    kubectl.out("patch", "sts", "web", "-n", ns, "-p", '{"spec":{"replicas":3}}')
    eventually(lambda: [r[0] for r in rows(kubectl, "pods", "-n", ns, "--no-headers")] == ["web-0", "web-1", "web-2"])
    assert [r[0] for r in rows(kubectl, "pvc", "-n", ns, "--no-headers")] == [f"www-web-{i}" for i in range(5)]
    assert rows(kubectl, "sts", "web", "-n", ns, "--no-headers")[0][1] == "3/3"


def test_an_image_change_rolls_and_history_undo_and_restart_work(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    deploy_web(kubectl, ns, tmp_path)
    first = set(revisions(kubectl, ns).values())
    kubectl.out("set", "image", "sts/web", "nginx=registry.k8s.io/nginx-slim:0.24", "-n", ns)
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    second = set(revisions(kubectl, ns).values())
    assert len(first) == len(second) == 1 and first != second
    images = {p["spec"]["containers"][0]["image"] for p in as_json(kubectl, "pods", "-n", ns, "-l", "app=nginx")["items"]}
    assert images == {"registry.k8s.io/nginx-slim:0.24"}
    status = as_json(kubectl, "sts", "web", "-n", ns)["status"]
    assert status["currentRevision"] == status["updateRevision"] == second.pop()
    history = kubectl.out("rollout", "history", "sts/web", "-n", ns)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert kubectl.out("rollout", "undo", "sts/web", "-n", ns).strip() == "statefulset.apps/web rolled back"
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    assert set(revisions(kubectl, ns).values()) == first
    undone = kubectl.out("rollout", "undo", "sts/web", "-n", ns, "--to-revision=3").strip()
    assert undone == "statefulset.apps/web skipped rollback (current template already matches revision 3)"
    revision_rows = rows(kubectl, "controllerrevisions", "-n", ns)
    assert revision_rows[0] == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert sorted(r[2] for r in revision_rows[1:]) == ["2", "3"] and {r[1] for r in revision_rows[1:]} == {"statefulset.apps/web"}
    assert kubectl.out("rollout", "restart", "sts/web", "-n", ns).strip() == "statefulset.apps/web restarted"
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    pods = as_json(kubectl, "pods", "-n", ns, "-l", "app=nginx")["items"]
    assert all("kubectl.kubernetes.io/restartedAt" in p["metadata"].get("annotations", {}) for p in pods)


def test_a_partition_holds_the_lower_ordinals_back(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    deploy_web(kubectl, ns, tmp_path)
    kubectl.out("scale", "sts/web", "--replicas=3", "-n", ns)
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    old = revisions(kubectl, ns)["web-0"]
    kubectl.out("patch", "sts", "web", "-n", ns, "-p", '{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}')
    kubectl.out("patch", "sts", "web", "-n", ns, "--type=json", "-p",
                '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.k8s.io/nginx-slim:0.24"}]')
    status = kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s").strip()
    assert status.endswith("partitioned roll out complete: 1 new pods have been updated...")
    by_pod = revisions(kubectl, ns)
    assert by_pod["web-0"] == by_pod["web-1"] == old != by_pod["web-2"]
    kubectl.out("patch", "sts", "web", "-n", ns, "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    assert len(set(revisions(kubectl, ns).values())) == 1 and revisions(kubectl, ns)["web-0"] != old


def test_deleting_the_set_deletes_its_pods_but_not_its_claims(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    deploy_web(kubectl, ns, tmp_path)
    assert kubectl.out("delete", "sts", "web", "-n", ns).strip() == 'statefulset.apps "web" deleted'
    eventually(lambda: not kubectl.out("get", "pods", "-n", ns, "-o", "name").strip())
    assert [r[0] for r in rows(kubectl, "pvc", "-n", ns, "--no-headers")] == ["www-web-0", "www-web-1"]
    # the set comes back to the same claims
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, WEB))
    kubectl.out("rollout", "status", "sts/web", "-n", ns, "--timeout=20s")
    volumes = {p["metadata"]["name"]: p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] for p in as_json(kubectl, "pods", "-n", ns)["items"]}
    assert volumes == {"web-0": "www-web-0", "web-1": "www-web-1"}


def test_an_invalid_set_is_refused_with_the_api_servers_message(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    bad = WEB.split("---\n")[1].replace('serviceName: "nginx"', 'serviceName: "nginx"\n  podManagementPolicy: Sometimes')
    done = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, bad), ok=False)
    assert done.returncode != 0
    assert "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'" in done.stderr


def test_the_kubernetes_client_reads_the_sets_their_scale_and_revisions(emu: Emulator, ns: str) -> None:
    with client.ApiClient(client.Configuration(host=emu.api_url)) as api_client:
        apps: Any = client.AppsV1Api(api_client)  # (its answers are read as JSON-ish objects here)
        body = client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                service_name="db", replicas=2, selector=client.V1LabelSelector(match_labels={"app": "db"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "db"}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="db", image="postgres:17")]),
                ),
            ),
        )
        apps.create_namespaced_stateful_set(ns, body)
        created = eventually(lambda: (s := apps.read_namespaced_stateful_set("db", ns)).status.ready_replicas == 2 and s)
        assert created.spec.pod_management_policy == "OrderedReady" and created.status.current_revision.startswith("db-")
        apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 3}})
        scale = eventually(lambda: (s := apps.read_namespaced_stateful_set_scale("db", ns)).status.replicas == 3 and s)
        assert (scale.spec.replicas, scale.status.selector) == (3, "app=db")
        [revision] = apps.list_namespaced_controller_revision(ns).items
        assert revision.revision == 1 and revision.data["spec"]["template"]["$patch"] == "replace"
        ds = client.V1DaemonSet(
            metadata=client.V1ObjectMeta(name="agent"),
            spec=client.V1DaemonSetSpec(
                selector=client.V1LabelSelector(match_labels={"app": "agent"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "agent"}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="agent", image="busybox")]),
                ),
            ),
        )
        apps.create_namespaced_daemon_set(ns, ds)
        status = eventually(lambda: (d := apps.read_namespaced_daemon_set_status("agent", ns)).status.number_ready == 1 and d.status)
        assert (status.desired_number_scheduled, status.current_number_scheduled, status.number_misscheduled) == (1, 1, 0)
