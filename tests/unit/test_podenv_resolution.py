"""A container's envFrom and valueFrom resolved as the kubelet does (kubelet_pods.go makeEnvironmentVariables),
and the status of a pod whose container cannot be configured (CreateContainerConfigError)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulator import podenv
from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.podconfig import PodConfigController
from emulator.kinds import CONFIG_MAPS, EVENTS, NAMESPACES, PODS, SECRETS
from emulator.kinds.service import ServiceView
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster as RegistryCluster
from emulator.registry.registry import Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "app"
ALLOCATABLE = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("configmaps", "settings"): {"data": {"MODE": "fast", "LEVEL": "3", "bad=key": "x", "tab\tkey": "y"}},
    ("configmaps", "extra"): {"data": {"MODE": "slow", "URL": "http://$(HOST)"}, "binaryData": {"BLOB": b64("b")}},
    ("secrets", "creds"): {"data": {"PASSWORD": b64("s3cr3t"), "TOKEN": b64("t\u00e9")}},
}


def lookup(resource: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((resource, name))


def pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web", "namespace": NS, "uid": "u-1", "labels": {"app": "web"}, "annotations": {"a/b": "c"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "main", "image": "i", **container}], "nodeName": "emulator",
                 "serviceAccountName": "default", **spec},
        "status": {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "hostIP": "127.0.0.1",
                   "hostIPs": [{"ip": "127.0.0.1"}]},
    }


def env_of(container: dict[str, Any], services: list[ServiceView] | None = None, **spec: Any) -> dict[str, str]:
    env, _ = podenv.container_environment(pod(container, **spec), "main", services or [], None, lookup, ALLOCATABLE)
    return env


def error_of(container: dict[str, Any]) -> str:
    with pytest.raises(podenv.ConfigError) as caught:
        env_of(container)
    return caught.value.message


# -- envFrom and env ------------------------------------------------------------------------------


def test_env_from_a_config_map_and_a_secret_with_prefix() -> None:
    env = env_of({"envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}, "prefix": "DB_"}]})
    assert env == {"LEVEL": "3", "MODE": "fast", "DB_PASSWORD": "s3cr3t", "DB_TOKEN": "t\u00e9"}


def test_invalid_names_are_skipped_and_reported() -> None:
    env, skipped = podenv.container_environment(
        pod({"envFrom": [{"configMapRef": {"name": "settings"}}]}), "main", [], None, lookup, ALLOCATABLE
    )
    assert "bad=key" not in env and "tab\tkey" not in env
    assert [s.message for s in skipped] == [
        "Keys [bad=key, tab\tkey] from the EnvFrom configMap app/settings were skipped since they are considered invalid "
        "environment variable names."
    ]


def test_names_are_checked_as_relaxed_in_1_32() -> None:
    # RelaxedEnvironmentVariableValidation (on by default in 1.32): any printable ASCII but `=`
    OBJECTS[("configmaps", "relaxed")] = {"data": {"1st": "a", "my.var": "b"}}
    assert env_of({"envFrom": [{"configMapRef": {"name": "relaxed"}, "prefix": "X-"}]}) == {"X-1st": "a", "X-my.var": "b"}


def test_later_env_from_wins_then_env_wins_over_env_from() -> None:
    env = env_of({
        "envFrom": [{"configMapRef": {"name": "settings"}}, {"configMapRef": {"name": "extra"}}],
        "env": [{"name": "LEVEL", "value": "9"}, {"name": "LEVEL", "value": "$(LEVEL)0"}],
    })
    assert env["MODE"] == "slow"  # the later envFrom
    assert env["LEVEL"] == "90"  # env over envFrom, later env over earlier, $(VAR) from what came before
    assert "BLOB" not in env  # binaryData is never an env source


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ({"configMapKeyRef": {"name": "settings", "key": "MODE"}}, "fast"),
        ({"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}, "s3cr3t"),
        ({"fieldRef": {"fieldPath": "metadata.name"}}, "web"),
        ({"fieldRef": {"fieldPath": "metadata.namespace"}}, NS),
        ({"fieldRef": {"fieldPath": "metadata.uid"}}, "u-1"),
        ({"fieldRef": {"fieldPath": "metadata.labels['app']"}}, "web"),
        ({"fieldRef": {"fieldPath": "metadata.annotations['a/b']"}}, "c"),
        ({"fieldRef": {"fieldPath": "spec.nodeName"}}, "emulator"),
        ({"fieldRef": {"fieldPath": "spec.serviceAccountName"}}, "default"),
        ({"fieldRef": {"fieldPath": "status.podIP"}}, "10.244.0.5"),
        ({"fieldRef": {"fieldPath": "status.podIPs"}}, "10.244.0.5"),
        ({"fieldRef": {"fieldPath": "status.hostIP"}}, "127.0.0.1"),
        ({"fieldRef": {"fieldPath": "status.hostIPs"}}, "127.0.0.1"),
    ],
)
def test_value_from(source: dict[str, Any], value: str) -> None:
    assert env_of({"env": [{"name": "V", "valueFrom": source}]}) == {"V": value}


def test_a_value_wins_over_value_from_and_values_refer_to_value_from() -> None:
    env = env_of({"env": [
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
        {"name": "DSN", "value": "user:$(P)@db"},
    ]})
    assert env == {"P": "s3cr3t", "DSN": "user:s3cr3t@db"}


def test_service_variables_come_last_and_lose() -> None:
    web = ServiceView.of({"metadata": {"name": "web", "namespace": NS}, "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}})
    env = env_of({"envFrom": [{"configMapRef": {"name": "settings"}}],
                  "env": [{"name": "WEB_SERVICE_PORT", "value": "8080"}]}, [web])
    assert list(env)[:3] == ["LEVEL", "MODE", "WEB_SERVICE_PORT"]
    assert env["WEB_SERVICE_PORT"] == "8080" and env["WEB_SERVICE_HOST"] == "10.96.0.9"


# -- resourceFieldRef -----------------------------------------------------------------------------

RESOURCES = {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}}


@pytest.mark.parametrize(
    ("resources", "ref", "value"),
    [
        (RESOURCES, {"resource": "limits.cpu"}, "1"),  # 0.5 core rounded up
        (RESOURCES, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
        (RESOURCES, {"resource": "requests.cpu", "divisor": "1m"}, "250"),
        (RESOURCES, {"resource": "requests.cpu", "divisor": "100m"}, "3"),  # 2.5 rounded up
        (RESOURCES, {"resource": "limits.memory"}, str(128 * 1024 * 1024)),
        (RESOURCES, {"resource": "limits.memory", "divisor": "1Mi"}, "128"),
        (RESOURCES, {"resource": "requests.memory", "divisor": "1M"}, "68"),  # 67.1 MB rounded up
        (None, {"resource": "limits.cpu"}, "4"),  # no limit: the node's allocatable
        (None, {"resource": "limits.memory", "divisor": "1Gi"}, "8"),
        (None, {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}, "100"),
        (None, {"resource": "requests.cpu"}, "0"),
        ({"limits": {"cpu": "2"}}, {"resource": "requests.cpu"}, "2"),  # requests default to limits
        (RESOURCES, {"resource": "limits.cpu", "divisor": "0"}, "1"),  # a zero divisor means 1
    ],
)
def test_resource_field_ref(resources: dict[str, Any] | None, ref: dict[str, Any], value: str) -> None:
    container: dict[str, Any] = {"env": [{"name": "R", "valueFrom": {"resourceFieldRef": ref}}]}
    if resources:
        container["resources"] = resources
    assert env_of(container) == {"R": value}


def test_resource_field_ref_of_another_container() -> None:
    p = pod({"env": [{"name": "R", "valueFrom": {"resourceFieldRef": {"containerName": "side", "resource": "limits.memory", "divisor": "1Mi"}}}]})
    p["spec"]["containers"].append({"name": "side", "resources": {"limits": {"memory": "1Gi"}}})
    env, _ = podenv.container_environment(p, "main", [], None, lookup, ALLOCATABLE)
    assert env == {"R": "1024"}


# -- what cannot be resolved ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
        ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
        ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}, 'configmap "nope" not found'),
        ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]},
         "couldn't find key k in ConfigMap app/settings"),
        ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
         "couldn't find key k in Secret app/creds"),
        ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}, 'secret "nope" not found'),
        # envFrom is read before env, whatever the order in the manifest
        ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}],
          "envFrom": [{"configMapRef": {"name": "first"}}]}, 'configmap "first" not found'),
    ],
)
def test_missing_sources_are_the_kubelets_errors(container: dict[str, Any], message: str) -> None:
    assert error_of(container) == message


def test_optional_missing_sources_are_left_out() -> None:
    env = env_of({
        "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}, {"secretRef": {"name": "nope", "optional": True}}],
        "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k", "optional": True}}},
            {"name": "C", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k", "optional": True}}},
            {"name": "D", "value": "d"},
        ],
    })
    assert env == {"D": "d"}


# -- the pod's status -----------------------------------------------------------------------------


def test_config_failures_of_every_app_container() -> None:
    p = pod({"envFrom": [{"configMapRef": {"name": "nope"}}]})
    p["spec"]["containers"].append({"name": "ok", "image": "i"})
    p["spec"]["containers"].append({"name": "bad", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]})
    assert podenv.config_failures(p, lookup) == [
        podenv.Failure("main", False, 'configmap "nope" not found'),
        podenv.Failure("bad", False, "couldn't find key k in Secret app/creds"),
    ]
    assert podenv.config_failures(pod({"envFrom": [{"configMapRef": {"name": "settings"}}]}), lookup) == []


def test_a_failing_init_container_holds_the_rest() -> None:
    p = pod({"envFrom": [{"configMapRef": {"name": "nope"}}]},
            initContainers=[{"name": "setup", "image": "i", "envFrom": [{"secretRef": {"name": "nope"}}]}])
    failures = podenv.config_failures(p, lookup)
    assert failures == [podenv.Failure("setup", True, 'secret "nope" not found')]
    status = podenv.held_status(p, failures, "T")
    assert status["initContainerStatuses"][0]["state"] == {"waiting": {"reason": podenv.CONFIG_ERROR, "message": 'secret "nope" not found'}}
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and initialized["reason"] == "ContainersNotInitialized"


def test_held_then_started_status() -> None:
    p = pod({"envFrom": [{"configMapRef": {"name": "nope"}}]})
    p["spec"]["containers"].append({"name": "ok", "image": "i"})
    p["status"]["phase"] = "Running"
    p["status"]["conditions"] = [{"type": t, "status": "True", "lastTransitionTime": "T0"} for t in ("Ready", "ContainersReady", "PodScheduled")]
    held = podenv.held_status(p, podenv.config_failures(p, lookup), "T1")
    assert held["phase"] == "Pending"
    conditions = {c["type"]: c for c in held["conditions"]}
    assert conditions["Ready"] == {
        "type": "Ready", "status": "False", "lastTransitionTime": "T1", "reason": "ContainersNotReady",
        "message": "containers with unready status: [main]",
    }
    assert conditions["PodScheduled"]["lastTransitionTime"] == "T0"
    main, ok = held["containerStatuses"]
    assert main["state"] == {"waiting": {"reason": podenv.CONFIG_ERROR, "message": 'configmap "nope" not found'}}
    assert (main["ready"], main["started"], ok["ready"], ok["started"]) == (False, False, True, True)
    assert podenv.is_held({**p, "status": held})
    assert p["status"]["phase"] == "Running"  # the given pod is left alone

    started = podenv.started_status({**p, "status": held}, "T2")
    assert started["phase"] == "Running" and not podenv.is_held({**p, "status": started})
    conditions = {c["type"]: c for c in started["conditions"]}
    assert conditions["Ready"] == {"type": "Ready", "status": "True", "lastTransitionTime": "T2"}
    assert [s["state"] for s in started["containerStatuses"]] == [{"running": {"startedAt": "T2"}}] * 2


# -- in process: the pod strategy and the controller (as emulator/runtime.py wires it) -------------


class Cluster:
    def __init__(self) -> None:
        self.store = Store(MemoryBackend())
        self.registry = Registry(RegistryCluster(self.store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
        self.controller = PodConfigController(self.registry)
        self.store.subscribe(self.controller.apply)

    async def settle(self) -> None:
        for _ in range(3):
            await self.store.settled(self.store.rv)
            await asyncio.sleep(0.02)

    def pod(self, name: str = "web") -> dict[str, Any]:
        found = self.store.get(PODS.key, NS, name)
        assert found is not None
        return found

    def events(self) -> list[tuple[str, str, str, str]]:
        return [
            (e["type"], e["reason"], e["source"]["component"], e["message"])
            for e in sorted(self.store.objects(EVENTS.key, NS), key=lambda e: e["metadata"]["name"])
        ]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    namespaces = NamespaceController(c.registry, 0.01)
    c.store.subscribe(namespaces.apply)
    namespaces.bootstrap("127.0.0.1", 6443)
    c.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    c.controller.queue.start()
    await c.settle()
    yield c
    await c.controller.queue.stop()


def phase_ready(p: dict[str, Any]) -> tuple[str, str]:
    return p["status"]["phase"], next(c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready")


async def test_a_pod_is_born_waiting_and_starts_when_its_config_map_appears(cluster: Cluster) -> None:
    cluster.registry.create(PODS, NS, {"metadata": {"name": "web"}, "spec": {"containers": [
        {"name": "app", "image": "i", "env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}]},
    ]}})
    held = cluster.pod()
    assert phase_ready(held) == ("Pending", "False") and podenv.is_held(held)
    await cluster.settle()
    assert cluster.events() == [("Warning", "Failed", "kubelet", 'Error: configmap "cfg" not found')]

    cluster.registry.create(CONFIG_MAPS, NS, {"metadata": {"name": "cfg"}, "data": {"other": "x"}})
    await cluster.settle()
    assert cluster.pod()["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == f"couldn't find key mode in ConfigMap {NS}/cfg"
    cluster.registry.create(CONFIG_MAPS, NS, {"metadata": {"name": "unrelated"}})  # no change: no new event
    await cluster.settle()
    assert len(cluster.events()) == 2

    cm = cluster.store.get(CONFIG_MAPS.key, NS, "cfg")
    assert cm is not None
    cluster.registry.replace_object(CONFIG_MAPS, cm, {**cm, "data": {"mode": "fast"}})
    await cluster.settle()
    assert phase_ready(cluster.pod()) == ("Running", "True") and not podenv.is_held(cluster.pod())
    assert cluster.events()[-1] == ("Normal", "Started", "kubelet", "Started container app")
    assert cluster.registry.pod_environment(NS, "web", None)[1]["M"] == "fast"

    cluster.registry.delete(CONFIG_MAPS, NS, "cfg")  # a running container keeps its environment
    await cluster.settle()
    assert phase_ready(cluster.pod()) == ("Running", "True")


async def test_a_waiting_pod_is_picked_up_again_after_a_restart(cluster: Cluster) -> None:
    cluster.registry.create(PODS, NS, {"metadata": {"name": "web"}, "spec": {"containers": [
        {"name": "app", "image": "i", "envFrom": [{"secretRef": {"name": "creds"}}]},
    ]}})
    await cluster.controller.queue.stop()
    cluster.store.unsubscribe(cluster.controller.apply)
    cluster.registry.create(SECRETS, NS, {"metadata": {"name": "creds"}, "stringData": {"TOKEN": "t"}})
    restarted = PodConfigController(cluster.registry)
    cluster.controller = restarted
    cluster.store.subscribe(restarted.apply)
    cluster.store.replay(restarted.apply, (PODS.key,))
    restarted.queue.start()
    await cluster.settle()
    assert phase_ready(cluster.pod()) == ("Running", "True")
    assert cluster.registry.pod_environment(NS, "web", None)[1]["TOKEN"] == "t"


async def restart(cluster: Cluster) -> PodConfigController:
    """A new controller, nothing kept in memory, fed the stored pods as emulator/runtime.py does."""
    await cluster.controller.queue.stop()
    cluster.store.unsubscribe(cluster.controller.apply)
    restarted = PodConfigController(cluster.registry)
    cluster.controller = restarted
    cluster.store.subscribe(restarted.apply)
    cluster.store.replay(restarted.apply, (PODS.key,))
    restarted.queue.start()
    await cluster.settle()
    return restarted


async def test_a_restart_does_not_record_the_same_failed_event_again(cluster: Cluster) -> None:
    cluster.registry.create(PODS, NS, {"metadata": {"name": "web"}, "spec": {"containers": [
        {"name": "app", "image": "i", "envFrom": [{"configMapRef": {"name": "cfg"}}]},
    ]}})
    await cluster.settle()
    await restart(cluster)
    failed = [e for e in cluster.store.objects(EVENTS.key, NS) if e["reason"] == "Failed"]
    assert len(failed) == 1 and failed[0]["message"] == 'Error: configmap "cfg" not found'  # bumped, not repeated
    assert failed[0]["count"] == 2


async def test_the_controller_forgets_pods_that_wait_no_more(cluster: Cluster) -> None:
    for name in ("a", "b"):
        cluster.registry.create(PODS, NS, {"metadata": {"name": name}, "spec": {"containers": [
            {"name": "app", "image": "i", "envFrom": [{"configMapRef": {"name": "cfg"}}]},
        ]}})
    await cluster.settle()
    uid_a = cluster.pod("a")["metadata"]["uid"]
    assert cluster.controller._held == {NS: {"a", "b"}} and set(cluster.controller._reported) >= {uid_a}
    cluster.registry.delete(PODS, NS, "a")
    await cluster.settle()
    assert uid_a not in cluster.controller._reported and cluster.controller._held == {NS: {"b"}}
    cluster.registry.create(CONFIG_MAPS, NS, {"metadata": {"name": "cfg"}})
    await cluster.settle()
    assert phase_ready(cluster.pod("b")) == ("Running", "True")
    assert cluster.controller._held == {} and cluster.controller._reported == {}
