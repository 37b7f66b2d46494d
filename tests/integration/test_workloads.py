"""Deployments, ReplicaSets and ReplicationControllers with the real kubectl 1.32: create, rollout (status,
history, undo, restart, pause, resume), scale, set image, delete with each cascade, a guestbook
ReplicationController behind its Service, and a 1,000-replica scale-up — asserted on kubectl's own output.

One emulator serves the module; each test works in its own namespace. No `--validate=false` is needed:
the server publishes the 1.32 OpenAPI schemas kubectl validates manifests against.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest

T = TypeVar("T")

GUESTBOOK_REDIS_MASTER = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: redis-master
  labels:
    app: redis
    role: master
    tier: backend
spec:
  replicas: 1
  template:
    metadata:
      labels:
        app: redis
        role: master
        tier: backend
    spec:
      containers:
      - name: master
        image: redis
        resources:
          requests:
            cpu: 100m
            memory: 100Mi
        ports:
        - containerPort: 6379
---
apiVersion: v1
kind: Service
metadata:
  name: redis-master
  labels:
    app: redis
    role: master
    tier: backend
spec:
  ports:
  - port: 6379
    targetPort: 6379
  selector:
    app: redis
    role: master
    tier: backend
"""


@pytest.fixture(scope="module")
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


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


def pods(kubectl: Kubectl, ns: str, selector: str) -> list[list[str]]:
    return rows(kubectl, "pods", "-n", ns, "-l", selector, "--no-headers")


def as_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl.out("get", *args, "-o", "json"))


def replica_sets(kubectl: Kubectl, ns: str, selector: str) -> dict[str, tuple[str, str]]:
    """name -> (revision, desired replicas)"""
    listed = as_json(kubectl, "rs", "-n", ns, "-l", selector)["items"]
    return {
        rs["metadata"]["name"]: (rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision", ""), str(rs["spec"]["replicas"]))
        for rs in listed
    }


def test_api_resources_list_the_workload_kinds(kubectl: Kubectl) -> None:
    found = {line.split()[0]: line.split() for line in kubectl.out("api-resources").splitlines()[1:]}
    assert found["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert found["replicasets"] == ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"]
    assert found["replicationcontrollers"] == ["replicationcontrollers", "rc", "v1", "true", "ReplicationController"]


def test_create_scale_and_roll_out_a_deployment(kubectl: Kubectl, ns: str) -> None:
    assert kubectl.out("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", ns).strip() == "deployment.apps/web created"
    assert kubectl.out("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s").strip().endswith('deployment "web" successfully rolled out')
    running = pods(kubectl, ns, "app=web")
    assert len(running) == 3 and all(row[1:3] == ["1/1", "Running"] for row in running)
    table = rows(kubectl, "deployments", "-n", ns)
    assert table[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1][:4] == ["web", "3/3", "3", "3"]
    wide = kubectl.out("get", "deploy", "web", "-n", ns, "-o", "wide").splitlines()
    assert re.split(r"\s{2,}", wide[0]) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["nginx", "nginx", "app=web"]
    rs_table = rows(kubectl, "rs", "-n", ns)
    assert rs_table[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    [first_rs] = [row[0] for row in rs_table[1:]]
    pod_hash = first_rs.removeprefix("web-")
    assert rs_table[1][1:4] == ["3", "3", "3"]
    assert all(row[0].startswith(f"web-{pod_hash}-") for row in running)

    assert kubectl.out("scale", "deployment", "web", "--replicas=5", "-n", ns).strip() == "deployment.apps/web scaled"
    eventually(lambda: len(pods(kubectl, ns, "app=web")) == 5, why="5 pods")
    kubectl.out("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    assert rows(kubectl, "rs", "-n", ns, "--no-headers")[0][:4] == [first_rs, "5", "5", "5"]

    assert kubectl.out("set", "image", "deployment/web", "nginx=nginx:1.27", "-n", ns).strip() == "deployment.apps/web image updated"
    assert kubectl.out("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s").strip().endswith("successfully rolled out")
    sets = replica_sets(kubectl, ns, "app=web")
    assert sets[first_rs] == ("1", "0")
    [second_rs] = [name for name in sets if name != first_rs]
    assert sets[second_rs] == ("2", "5")
    images = {row[0]: row for row in rows(kubectl, "pods", "-n", ns, "-l", "app=web", "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image", "--no-headers")}
    assert len(images) == 5 and {row[1] for row in images.values()} == {"nginx:1.27"}

    history = kubectl.out("rollout", "history", "deployment/web", "-n", ns).splitlines()
    assert history[0].strip() == "deployment.apps/web"
    assert [line.split() for line in history[1:] if line.strip()] == [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"], ["2", "<none>"]]
    assert "Image:\tnginx:1.27" in kubectl.out("rollout", "history", "deployment/web", "-n", ns, "--revision=2")

    assert kubectl.out("rollout", "undo", "deployment/web", "-n", ns).strip() == "deployment.apps/web rolled back"
    kubectl.out("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    sets = replica_sets(kubectl, ns, "app=web")
    assert sets[first_rs] == ("3", "5") and sets[second_rs] == ("2", "0")
    history = kubectl.out("rollout", "history", "deployment/web", "-n", ns).splitlines()
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["2", "3"]
    described = kubectl.out("describe", "deployment", "web", "-n", ns)
    assert re.search(r"Replicas:\s+5 desired \| 5 updated \| 5 total \| 5 available \| 0 unavailable", described)
    assert re.search(r"Available\s+True\s+MinimumReplicasAvailable", described)
    assert re.search(r"Progressing\s+True\s+NewReplicaSetAvailable", described)
    assert f"NewReplicaSet:   {first_rs} (5/5 replicas created)" in described
    assert f"Scaled up replica set {second_rs} from 0 to 2" in described


def test_restart_pause_and_resume(kubectl: Kubectl, ns: str) -> None:
    kubectl.out("create", "deployment", "api", "--image=nginx", "--replicas=2", "-n", ns)
    kubectl.out("rollout", "status", "deployment/api", "-n", ns, "--timeout=20s")
    assert kubectl.out("rollout", "restart", "deployment/api", "-n", ns).strip() == "deployment.apps/api restarted"
    kubectl.out("rollout", "status", "deployment/api", "-n", ns, "--timeout=20s")
    deployment = as_json(kubectl, "deploy", "api", "-n", ns)
    assert "kubectl.kubernetes.io/restartedAt" in deployment["spec"]["template"]["metadata"]["annotations"]
    assert sorted(replica_sets(kubectl, ns, "app=api").values()) == [("1", "0"), ("2", "2")]

    assert kubectl.out("rollout", "pause", "deployment/api", "-n", ns).strip() == "deployment.apps/api paused"
    kubectl.out("set", "image", "deployment/api", "nginx=nginx:2", "-n", ns)
    time.sleep(0.3)
    assert len(replica_sets(kubectl, ns, "app=api")) == 2  # paused: nothing rolls out
    refused = kubectl.run("rollout", "undo", "deployment/api", "-n", ns, ok=False)
    assert "you cannot rollback a paused deployment" in refused.stderr
    paused = as_json(kubectl, "deploy", "api", "-n", ns)["status"]["conditions"]
    assert ("Progressing", "Unknown", "DeploymentPaused") in [(c["type"], c["status"], c["reason"]) for c in paused]
    assert kubectl.out("rollout", "resume", "deployment/api", "-n", ns).strip() == "deployment.apps/api resumed"
    kubectl.out("rollout", "status", "deployment/api", "-n", ns, "--timeout=20s")
    assert sorted(replica_sets(kubectl, ns, "app=api").values()) == [("1", "0"), ("2", "0"), ("3", "2")]


def test_an_invalid_deployment_is_refused_with_the_api_servers_message(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    bad = manifest(tmp_path, """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: c, image: nginx}]
""")
    refused = kubectl.run("apply", "-n", ns, "-f", bad, ok=False)
    assert refused.stderr.strip() == (
        'The Deployment "bad" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
        "`selector` does not match template `labels`"
    )
    kubectl.out("create", "deployment", "web", "--image=nginx", "-n", ns)
    changed = kubectl.run("patch", "deployment", "web", "-n", ns, "-p", '{"spec":{"selector":{"matchLabels":{"app":"x"}}}}', ok=False)
    assert "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable" in changed.stderr


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_delete_a_deployment_with_each_cascade(kubectl: Kubectl, ns: str, cascade: str) -> None:
    kubectl.out("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
    kubectl.out("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    [rs_name] = replica_sets(kubectl, ns, "app=web")
    # kubectl waits until the Deployment is gone (for foreground: after its ReplicaSet and pods)
    done = kubectl.run("delete", "deployment", "web", "-n", ns, f"--cascade={cascade}", timeout=30)
    assert done.stdout.strip() == 'deployment.apps "web" deleted'
    assert kubectl.run("get", "deployment", "web", "-n", ns, ok=False).returncode != 0
    if cascade == "orphan":
        time.sleep(0.3)
        rs = as_json(kubectl, "rs", rs_name, "-n", ns)
        assert "ownerReferences" not in rs["metadata"]
        assert len(pods(kubectl, ns, "app=web")) == 2
        assert rows(kubectl, "rs", "-n", ns, "--no-headers")[0][:4] == [rs_name, "2", "2", "2"]
    else:
        eventually(lambda: not pods(kubectl, ns, "app=web") and not kubectl.out("get", "rs", "-n", ns).strip(), why="dependents gone")


def test_the_guestbook_replication_controller_gets_its_pods_and_endpoints(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    path = manifest(tmp_path, GUESTBOOK_REDIS_MASTER)
    assert kubectl.out("apply", "-n", ns, "-f", path).splitlines() == [
        "replicationcontroller/redis-master created", "service/redis-master created",
    ]
    [pod] = eventually(lambda: pods(kubectl, ns, "app=redis,role=master"), why="the redis-master pod")
    assert pod[0].startswith("redis-master-") and pod[1:3] == ["1/1", "Running"]
    table = rows(kubectl, "rc", "-n", ns)
    assert table[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    eventually(lambda: rows(kubectl, "rc", "-n", ns, "--no-headers")[0][:4] == ["redis-master", "1", "1", "1"], why="rc status")
    ip = as_json(kubectl, "pod", pod[0], "-n", ns)["status"]["podIP"]
    eventually(lambda: rows(kubectl, "endpoints", "redis-master", "-n", ns, "--no-headers")[0][1] == f"{ip}:6379", why="endpoints")
    assert kubectl.out("apply", "-n", ns, "-f", path).splitlines() == [
        "replicationcontroller/redis-master unchanged", "service/redis-master unchanged",
    ]
    assert kubectl.out("scale", "rc", "redis-master", "--replicas=3", "-n", ns).strip() == "replicationcontroller/redis-master scaled"
    eventually(lambda: len(rows(kubectl, "endpoints", "redis-master", "-n", ns, "--no-headers")[0][1].split(",")) == 3, why="3 endpoints")
    kubectl.out("delete", "rc", "redis-master", "-n", ns)
    eventually(lambda: not pods(kubectl, ns, "app=redis"), why="the pods go with their controller")


def test_a_thousand_replicas(kubectl: Kubectl, ns: str) -> None:
    kubectl.out("create", "deployment", "big", "--image=nginx", "--replicas=1", "-n", ns)
    kubectl.out("rollout", "status", "deployment/big", "-n", ns, "--timeout=20s")
    began = time.monotonic()
    kubectl.out("scale", "deployment", "big", "--replicas=1000", "-n", ns)
    kubectl.run("rollout", "status", "deployment/big", "-n", ns, "--timeout=60s", timeout=70)
    elapsed = time.monotonic() - began
    assert rows(kubectl, "deploy", "big", "-n", ns, "--no-headers")[0][:4] == ["big", "1000/1000", "1000", "1000"]
    assert len(pods(kubectl, ns, "app=big")) == 1000
    assert elapsed < 15, f"1,000 replicas took {elapsed:.1f}s"
    kubectl.run("delete", "deployment", "big", "-n", ns, timeout=30)
    eventually(lambda: not pods(kubectl, ns, "app=big"), timeout=30, why="the 1,000 pods are deleted")


def test_delete_options_and_the_scale_endpoints_over_http(api: httpx.Client, ns: str) -> None:
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }
    assert api.post(base, json=body).status_code == 201
    scale = api.get(f"{base}/web/scale").json()
    assert (scale["kind"], scale["apiVersion"], scale["spec"], scale["status"]["selector"]) == ("Scale", "autoscaling/v1", {"replicas": 1}, "app=web")
    patched = api.patch(f"{base}/web/scale", content=b'{"spec":{"replicas":2}}', headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200 and patched.json()["spec"] == {"replicas": 2}
    stale = api.put(f"{base}/web/scale", json={**scale, "spec": {"replicas": 3}})
    assert stale.status_code == 409
    assert api.get(f"{base}/web").json()["spec"]["replicas"] == 2

    bad = api.request("DELETE", f"{base}/web", json={"propagationPolicy": "Sideways"})
    assert bad.status_code == 422 and bad.json()["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": '
        'supported values: "Foreground", "Background", "Orphan", "nil"'
    )
    both = api.request("DELETE", f"{base}/web", json={"propagationPolicy": "Orphan", "orphanDependents": True})
    assert both.status_code == 422
    # the deprecated orphanDependents, and the policy as a query parameter
    orphaned = api.request("DELETE", f"{base}/web", json={"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": True})
    assert orphaned.status_code == 200 and orphaned.json()["metadata"]["finalizers"] == ["orphan"]
    eventually(lambda: api.get(f"{base}/web").status_code == 404, why="the orphaning finishes")
    sets = api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets").json()["items"]
    assert len(sets) == 1 and "ownerReferences" not in sets[0]["metadata"]
    rs = sets[0]["metadata"]["name"]
    pending = api.delete(f"/apis/apps/v1/namespaces/{ns}/replicasets/{rs}", params={"propagationPolicy": "Foreground"})
    assert pending.status_code == 200 and pending.json()["metadata"]["finalizers"] == ["foregroundDeletion"]
    eventually(lambda: not api.get(f"/api/v1/namespaces/{ns}/pods").json()["items"], why="pods deleted first")
    eventually(lambda: api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/{rs}").status_code == 404, why="then the ReplicaSet")
