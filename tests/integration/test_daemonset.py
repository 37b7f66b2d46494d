"""DaemonSets with the real kubectl 1.32: the docs' fluentd-elasticsearch DaemonSet gets one pod on the
emulator's node, rolls on a template change (rollout status, history, undo, restart), honours a node
selector that matches no node, and takes its pods with it when deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.kubectl_support import Kubectl, manifest
from tests.integration.test_statefulset import eventually

# https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/ (controllers/daemonset.yaml)
FLUENTD = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd-elasticsearch
  labels:
    k8s-app: fluentd-logging
spec:
  selector:
    matchLabels:
      name: fluentd-elasticsearch
  template:
    metadata:
      labels:
        name: fluentd-elasticsearch
    spec:
      tolerations:
      - key: node-role.kubernetes.io/control-plane
        operator: Exists
        effect: NoSchedule
      - key: node-role.kubernetes.io/master
        operator: Exists
        effect: NoSchedule
      containers:
      - name: fluentd-elasticsearch
        image: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
        resources:
          limits:
            memory: 200Mi
          requests:
            cpu: 100m
            memory: 200Mi
        volumeMounts:
        - name: varlog
          mountPath: /var/log
      terminationGracePeriodSeconds: 30
      volumes:
      - name: varlog
        hostPath:
          path: /var/log
"""
SELECTOR = "name=fluentd-elasticsearch"


def pods(kubectl: Kubectl, ns: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(kubectl.out("get", "pods", "-n", ns, "-l", SELECTOR, "-o", "json"))["items"]
    return listed


def rollout(kubectl: Kubectl, ns: str) -> str:
    return kubectl.out("rollout", "status", "ds/fluentd-elasticsearch", "-n", ns, "--timeout=20s").strip()


def test_one_pod_on_the_node_and_a_rolling_update(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, FLUENTD)).strip()
    assert out == "daemonset.apps/fluentd-elasticsearch created"
    assert rollout(kubectl, ns) == 'daemon set "fluentd-elasticsearch" successfully rolled out'
    table = [line.split() for line in kubectl.out("get", "ds", "-n", ns).splitlines()]
    assert table[0] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    assert table[1][:7] == ["fluentd-elasticsearch", "1", "1", "1", "1", "1", "<none>"]
    [first] = pods(kubectl, ns)
    assert first["metadata"]["name"].startswith("fluentd-elasticsearch-") and first["spec"]["nodeName"] == "emulator"
    assert first["metadata"]["labels"]["pod-template-generation"] == "1"
    assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"} in first["spec"]["tolerations"]
    kubectl.out("set", "image", "ds/fluentd-elasticsearch", "fluentd-elasticsearch=quay.io/fluentd_elasticsearch/fluentd:v2.6.0", "-n", ns)
    assert rollout(kubectl, ns).endswith("successfully rolled out")
    [second] = eventually(lambda: [p for p in pods(kubectl, ns) if p["metadata"]["labels"]["pod-template-generation"] == "2"])
    assert second["spec"]["containers"][0]["image"] == "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
    assert [p["metadata"]["name"] for p in pods(kubectl, ns)] == [second["metadata"]["name"]]
    history = kubectl.out("rollout", "history", "ds/fluentd-elasticsearch", "-n", ns)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert kubectl.out("rollout", "undo", "ds/fluentd-elasticsearch", "-n", ns).strip() == "daemonset.apps/fluentd-elasticsearch rolled back"
    rollout(kubectl, ns)
    [back] = eventually(lambda: [p for p in pods(kubectl, ns) if p["spec"]["containers"][0]["image"].endswith("v2.5.2")])
    assert back["metadata"]["labels"]["controller-revision-hash"] == first["metadata"]["labels"]["controller-revision-hash"]
    assert kubectl.out("rollout", "restart", "ds/fluentd-elasticsearch", "-n", ns).strip() == "daemonset.apps/fluentd-elasticsearch restarted"
    rollout(kubectl, ns)
    eventually(lambda: [p for p in pods(kubectl, ns) if "kubectl.kubernetes.io/restartedAt" in (p["metadata"].get("annotations") or {})])


def test_a_node_selector_that_matches_no_node_and_deletion(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, FLUENTD))
    rollout(kubectl, ns)
    kubectl.out("patch", "ds", "fluentd-elasticsearch", "-n", ns, "-p", '{"spec":{"template":{"spec":{"nodeSelector":{"disk":"ssd"}}}}}')
    eventually(lambda: pods(kubectl, ns) == [])
    row = kubectl.out("get", "ds", "-n", ns, "--no-headers").split()
    assert row[1:7] == ["0", "0", "0", "0", "0", "disk=ssd"]
    kubectl.out("patch", "ds", "fluentd-elasticsearch", "-n", ns, "--type=json", "-p", '[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]')
    eventually(lambda: len(pods(kubectl, ns)) == 1)
    assert kubectl.out("delete", "ds", "fluentd-elasticsearch", "-n", ns).strip() == 'daemonset.apps "fluentd-elasticsearch" deleted'
    eventually(lambda: pods(kubectl, ns) == [])
