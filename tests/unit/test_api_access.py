"""In-cluster credentials, as a cluster gives them: the ServiceAccount admission plugin's `kube-api-access-*`
volume on new pods (emulator/kinds/serviceaccount.py `mount_api_access`) and the root-CA publisher's
`kube-root-ca.crt` ConfigMap in every namespace (emulator/controllers/namespaces.py), both only when the API
speaks HTTPS (`Cluster.root_ca`). A real in-memory store, registry and namespace controller, wired as
emulator/runtime.py wires them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from emulator import errors
from emulator.controllers.namespaces import DESCRIPTION_ANNOTATION, NamespaceController
from emulator.kinds import CONFIG_MAPS, NAMESPACES, PODS, SERVICE_ACCOUNTS
from emulator.kinds.serviceaccount import (
    API_ACCESS_MOUNT_PATH,
    MIRROR_POD_ANNOTATION,
    ROOT_CA_CONFIG_MAP,
    ROOT_CA_KEY,
    api_access_volume,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH, Cluster, Registry
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store
from tests.unit.test_controllers import API_ADDRESS, API_PORT, World

NS = "apps"
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
MOUNT = {"readOnly": True, "mountPath": API_ACCESS_MOUNT_PATH}


def wire(store: Store, root_ca: str | None) -> World:
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099"),
                                "127.0.0.1", API_ADDRESS, API_PORT, root_ca=root_ca))
    namespaces = NamespaceController(registry, 0.01)
    store.subscribe(namespaces.apply)
    namespaces.bootstrap(API_ADDRESS, API_PORT)
    return World(store, registry.cluster.plan, registry, namespaces, None)  # type: ignore[arg-type]


async def world_with(root_ca: str | None) -> World:
    world = wire(Store(MemoryBackend()), root_ca)
    world.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await world.settle()
    return world


def get(world: World, rt: Any, name: str, namespace: str = NS) -> dict[str, Any] | None:
    return world.store.get(rt.key, namespace if rt.namespaced else "", name)


def root_ca(world: World, namespace: str = NS) -> Any:
    return (get(world, CONFIG_MAPS, ROOT_CA_CONFIG_MAP, namespace) or {}).get("data")


def container(name: str, *mounts: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "image": "busybox", **({"volumeMounts": list(mounts)} if mounts else {})}


def create_pod(world: World, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return world.registry.create(PODS, NS, {"metadata": {"name": "p", **meta}, "spec": spec}).obj


def api_access(pod: dict[str, Any]) -> list[str]:
    return [v["name"] for v in pod["spec"].get("volumes") or [] if v["name"].startswith("kube-api-access-")]


async def test_every_container_of_a_new_pod_mounts_one_api_access_volume() -> None:
    world = await world_with(CA)
    made = create_pod(world, {"initContainers": [container("init")], "containers": [container("a"), container("b")]})
    [name] = api_access(made)
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    assert next(v for v in made["spec"]["volumes"] if v["name"] == name) == api_access_volume(name)
    for c in [*made["spec"]["initContainers"], *made["spec"]["containers"]]:
        assert c["volumeMounts"] == [{"name": name, **MOUNT}]
    # the volume as the API server writes it: token (3607 s), the CA from kube-root-ca.crt, the namespace
    sources = api_access_volume(name)["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"expirationSeconds": 3607, "path": "token"}
    assert sources[1]["configMap"]["name"] == ROOT_CA_CONFIG_MAP
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"


@pytest.mark.parametrize("opt_out", ["pod", "service account"])
async def test_automount_false_on_the_pod_or_else_its_service_account_mounts_nothing(opt_out: str) -> None:
    world = await world_with(CA)
    spec: dict[str, Any] = {"containers": [container("a")], "serviceAccountName": "quiet"}
    world.registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "quiet"}, "automountServiceAccountToken": opt_out == "pod"})
    if opt_out == "pod":
        spec["automountServiceAccountToken"] = False
    made = create_pod(world, spec)
    assert api_access(made) == [] and "volumeMounts" not in made["spec"]["containers"][0]


async def test_the_pod_says_true_where_its_service_account_says_false() -> None:
    world = await world_with(CA)
    world.registry.create(SERVICE_ACCOUNTS, NS, {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False})
    made = create_pod(world, {"containers": [container("a")], "serviceAccountName": "quiet", "automountServiceAccountToken": True})
    assert len(api_access(made)) == 1


async def test_a_container_with_its_own_mount_there_keeps_it_and_a_volume_of_that_name_is_reused() -> None:
    world = await world_with(CA)
    own = {"name": "mine", "mountPath": API_ACCESS_MOUNT_PATH}
    spec = {"containers": [container("a", own), container("b")],
            "volumes": [{"name": "mine", "emptyDir": {}}, api_access_volume("kube-api-access-given")]}
    made = create_pod(world, spec)
    assert made["spec"]["containers"][0]["volumeMounts"] == [own]
    assert made["spec"]["containers"][1]["volumeMounts"] == [{"name": "kube-api-access-given", **MOUNT}]
    assert api_access(made) == ["kube-api-access-given"]
    # every container mounts something there already: no volume is added
    made = world.registry.create(PODS, NS, {"metadata": {"name": "q"}, "spec": {
        "containers": [container("a", own)], "volumes": [{"name": "mine", "emptyDir": {}}]}}).obj
    assert api_access(made) == []


async def test_mirror_pods_and_a_plain_http_api_get_no_volume() -> None:
    world = await world_with(CA)
    assert api_access(create_pod(world, {"containers": [container("a")]}, annotations={MIRROR_POD_ANNOTATION: "x"})) == []
    plain = await world_with(None)
    assert api_access(create_pod(plain, {"containers": [container("a")]})) == []
    assert get(plain, CONFIG_MAPS, ROOT_CA_CONFIG_MAP) is None


async def test_updates_do_not_add_the_volume() -> None:
    world = await world_with(CA)
    made = create_pod(world, {"containers": [container("a")], "automountServiceAccountToken": False})
    world.registry.patch(PODS, NS, "p", MERGE_PATCH, {"metadata": {"labels": {"x": "y"}}})
    assert api_access(get(world, PODS, "p") or {}) == [] and api_access(made) == []


async def test_every_namespace_has_the_root_ca_kept_as_the_publisher_keeps_it() -> None:
    world = await world_with(CA)
    for namespace in ("default", "kube-system", "kube-public", "kube-node-lease", NS):
        found = get(world, CONFIG_MAPS, ROOT_CA_CONFIG_MAP, namespace) or {}
        assert found.get("data") == {ROOT_CA_KEY: CA}, namespace
        assert "kube-apiserver" in found["metadata"]["annotations"][DESCRIPTION_ANNOTATION]
    world.registry.delete(CONFIG_MAPS, NS, ROOT_CA_CONFIG_MAP)
    await world.eventually(lambda: root_ca(world) == {ROOT_CA_KEY: CA})
    # changed data goes back; what else someone added stays
    world.registry.patch(CONFIG_MAPS, NS, ROOT_CA_CONFIG_MAP, MERGE_PATCH,
                         {"metadata": {"labels": {"mine": "yes"}}, "data": {ROOT_CA_KEY: "x", "extra": "y"}})
    await world.eventually(lambda: root_ca(world) == {ROOT_CA_KEY: CA})
    assert (get(world, CONFIG_MAPS, ROOT_CA_CONFIG_MAP) or {})["metadata"]["labels"] == {"mine": "yes"}


async def test_a_new_ca_is_written_to_the_stored_namespaces_at_start() -> None:
    store = Store(MemoryBackend())
    first = wire(store, CA)
    first.registry.create(NAMESPACES, "", {"metadata": {"name": NS}})
    await first.settle()
    store.unsubscribe(first.namespaces.apply)
    newer = CA.replace("MIIB", "MIIC")
    second = wire(store, newer)
    await second.settle()
    assert root_ca(second) == {ROOT_CA_KEY: newer}


async def test_a_terminating_namespace_does_not_get_it_back() -> None:
    world = await world_with(CA)
    world.registry.delete(NAMESPACES, "", NS)
    await world.eventually(lambda: get(world, NAMESPACES, NS) is None)
    with pytest.raises(errors.StatusError):
        world.registry.get(CONFIG_MAPS, NS, ROOT_CA_CONFIG_MAP)
    assert root_ca(world, "default") == {ROOT_CA_KEY: CA}
