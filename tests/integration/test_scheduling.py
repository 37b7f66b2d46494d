"""Scheduling with real kubectl 1.32 against the real server (a module of its own: it cordons and taints the
emulator's one node): a cordoned or tainted node, a nodeSelector that matches nothing and scheduling gates
keep new pods Pending with kube-scheduler's FailedScheduling event; uncordon, a label, or the gates removed
place them, and they run."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_kubelet import wait_for

pytestmark = pytest.mark.timeout(60)


def pods(kubectl: Kubectl, ns: str) -> dict[str, tuple[str, str]]:
    """name -> (what kubectl get shows as STATUS, node)."""
    rows = kubectl.out("get", "pods", "-n", ns, "--no-headers", "-o", "custom-columns=N:.metadata.name,NODE:.spec.nodeName")
    shown = kubectl.out("get", "pods", "-n", ns, "--no-headers")
    status = {line.split()[0]: line.split()[2] for line in shown.splitlines()}
    return {line.split()[0]: (status[line.split()[0]], line.split()[1]) for line in rows.splitlines()}


def test_cordon_taints_and_selectors_hold_new_pods_back_until_the_node_fits(kubectl: Kubectl, ns: str) -> None:
    try:
        kubectl.run("cordon", "emulator")
        kubectl.run("run", "held", "-n", ns, "--image=nginx")
        kubectl.run("run", "picky", "-n", ns, "--image=nginx", '--overrides={"spec": {"nodeSelector": {"disk": "ssd"}}}')
        gated = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated", "namespace": ns},
                 "spec": {"schedulingGates": [{"name": "example.com/wait"}], "containers": [{"name": "c", "image": "nginx"}]}}
        kubectl.run("apply", "-f", "-", stdin=json.dumps(gated))
        assert pods(kubectl, ns) == {"held": ("Pending", "<none>"), "picky": ("Pending", "<none>"), "gated": ("SchedulingGated", "<none>")}
        def failed_scheduling() -> list[dict[str, Any]]:
            items = json.loads(kubectl.out("get", "events", "-n", ns, "-o", "json"))["items"]
            return [e for e in items if e["reason"] == "FailedScheduling"]

        events = wait_for(failed_scheduling)
        assert "0/1 nodes are available: 1 node(s) were unschedulable." in events[0]["message"]
        assert events[0]["source"]["component"] == "default-scheduler"
        kubectl.run("uncordon", "emulator")
        wait_for(lambda: pods(kubectl, ns)["held"] == ("Running", "emulator"))
        kubectl.run("taint", "node", "emulator", "dedicated=db:NoSchedule")
        kubectl.run("label", "node", "emulator", "disk=ssd")  # picky now matches, but does not tolerate the taint
        wait_for(lambda: "untolerated taint {dedicated: db}" in kubectl.out("describe", "pod", "picky", "-n", ns))
        assert pods(kubectl, ns)["picky"] == ("Pending", "<none>")
        kubectl.run("taint", "node", "emulator", "dedicated-")
        kubectl.run("patch", "pod", "gated", "-n", ns, "--type=json", "-p", '[{"op": "remove", "path": "/spec/schedulingGates"}]')
        wait_for(lambda: pods(kubectl, ns) == {"held": ("Running", "emulator"), "picky": ("Running", "emulator"), "gated": ("Running", "emulator")})
        assert kubectl.out("get", "pod", "picky", "-n", ns, "-o", "jsonpath={.status.podIP}").startswith("127.244.")
    finally:
        kubectl.run("uncordon", "emulator", ok=False)
        kubectl.run("taint", "node", "emulator", "dedicated-", ok=False)
        kubectl.run("label", "node", "emulator", "disk-", ok=False)


def test_a_pod_for_another_scheduler_waits_for_its_binding(kubectl: Kubectl, emu: Emulator, ns: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "custom", "namespace": ns},
                "spec": {"schedulerName": "my-scheduler", "containers": [{"name": "c", "image": "nginx"}]}}
    kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))
    time.sleep(0.3)  # the default scheduler leaves it alone, even though the node fits
    waiting = json.loads(kubectl.out("get", "pod", "custom", "-n", ns, "-o", "json"))
    assert waiting["status"]["phase"] == "Pending" and "nodeName" not in waiting["spec"]
    assert "PodScheduled" not in [c["type"] for c in waiting["status"].get("conditions") or []]
    # what a custom scheduler does: the official client's create_namespaced_pod_binding (its answer is a Status)
    api = client.CoreV1Api(client.ApiClient(client.Configuration(host=emu.api_url)))
    body = client.V1Binding(metadata=client.V1ObjectMeta(name="custom"), target=client.V1ObjectReference(kind="Node", name="emulator"))
    answer = api.create_namespaced_pod_binding("custom", ns, body, _preload_content=False)
    assert answer.status == 201 and json.loads(answer.data)["status"] == "Success"
    wait_for(lambda: pods(kubectl, ns)["custom"] == ("Running", "emulator"))
    with pytest.raises(ApiException) as again:
        api.create_namespaced_pod_binding("custom", ns, body, _preload_content=False)
    assert again.value.status == 409 and 'already assigned to node \\"emulator\\"' in again.value.body
