"""The configuration, storage, node, autoscaling, policy and ingress kinds on the write path: what the API
server stores, defaults and refuses (its messages and field paths), what `kubectl get` prints for them,
and the volume controller that binds claims.

Each test wires a real `Store` (in memory), `Registry`, the built-ins (`NamespaceController.bootstrap`,
which also writes the node and the default IngressClass) and the volume controller, the way
emulator/runtime.py does. Without an event loop the store commits and delivers each write before it
returns, so the controller's writes are done when a call returns.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from api.tables import table
from emulator import errors
from emulator.controllers.builtins import KUBELET_VERSION
from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.volumes import VolumeController
from emulator.kinds import (
    BY_KEY,
    CONFIG_MAPS,
    INGRESS_CLASSES,
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    RESOURCE_TYPES,
    SECRETS,
    ResourceType,
)
from emulator.kinds.horizontalpodautoscaler import HORIZONTAL_POD_AUTOSCALERS
from emulator.kinds.ingress import INGRESSES
from emulator.kinds.limitrange import LIMIT_RANGES
from emulator.kinds.poddisruptionbudget import POD_DISRUPTION_BUDGETS
from emulator.kinds.resourcequota import RESOURCE_QUOTAS
from emulator.kinds.storageclass import STORAGE_CLASSES
from emulator.kinds.values import Undecodable, decode_base64, parse_quantity
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH, Cluster, Registry, WriteOptions
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

NS = "default"
NODE_ADDRESS = "127.0.0.9"
STRICT = WriteOptions(field_validation="Strict")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class World:
    store: Store
    registry: Registry
    volumes: VolumeController
    data_dir: Path


@pytest.fixture
def world(tmp_path: Path) -> World:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099"), node_address=NODE_ADDRESS))
    registry.claim_stored()
    volumes = VolumeController(registry, str(tmp_path / "data"))
    namespaces = NamespaceController(registry)
    store.subscribe(namespaces.apply)
    store.subscribe(volumes.apply)
    namespaces.bootstrap("127.0.0.1", 6443)
    return World(store, registry, volumes, tmp_path / "data")


def create(world: World, rt: ResourceType, body: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return world.registry.create(rt, namespace if rt.namespaced else "", body, STRICT).obj


def refused(call: Callable[[], object]) -> errors.StatusError:
    with pytest.raises(errors.StatusError) as caught:
        call()
    return caught.value


def causes(error: errors.StatusError) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in error.details.get("causes", [])]


def stored(world: World, rt: ResourceType, name: str, namespace: str = NS) -> dict[str, Any]:
    found = world.store.get(rt.key, namespace if rt.namespaced else "", name)
    assert found is not None, f"{rt.key} {name} is not stored"
    return found


def cells(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    doc = table(rt, [obj], "1", now=NOW)
    return {c["name"]: cell for c, cell in zip(doc["columnDefinitions"], doc["rows"][0]["cells"], strict=True)}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- resource.Quantity and []byte -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stored_as"),
    [
        ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("0.5Gi", "512Mi"), ("1.5Ki", "1536"),
        ("0.5", "500m"), ("1.5", "1500m"), ("1000m", "1"), ("100m", "100m"), ("1000", "1k"), ("1500", "1500"),
        ("5", "5"), ("1e3", "1e3"), ("12e2", "1200"), ("0.0000000001", "1n"), ("-1", "-1"), ("10Gi", "10Gi"),
        # bounded work whatever the text: capped at int64, or rounded up to a nano unit
        ("1e999999999", "9223372036854775807"), ("9" * 100_000, "9223372036854775807"), ("8Ei", "9223372036854775807"),
        ("0." + "0" * 100_000 + "1", "1n"), ("1e-999999999", "1e-9"),
    ],
    ids=lambda v: v if len(v) < 24 else v[:12] + "...",
)
def test_quantities_are_stored_in_the_api_servers_canonical_form(text: str, stored_as: str) -> None:
    assert str(parse_quantity(text)) == stored_as


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        ("abc", "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        ("1Gb", "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        ("1e", "unable to parse quantity's suffix"),
    ],
)
def test_what_is_no_quantity_is_refused_with_the_decoders_reason(text: str, reason: str) -> None:
    with pytest.raises(Undecodable, match=None) as caught:
        parse_quantity(text)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("text", "decoded", "offset"),
    [
        ("aGVsbG8=", b"hello", None), ("aGVs\nbG8=", b"hello", None), ("", b"", None), ("ab==", b"i", None),
        ("aGVsbG8", None, 4), ("a", None, 0), ("!!!!", None, 0), ("ab=", None, 3), ("ab==x", None, 4), ("not base64!", None, 3),
    ],
)
def test_base64_is_read_as_gos_decoder_reads_it(text: str, decoded: bytes | None, offset: int | None) -> None:
    if offset is None:
        assert decode_base64(text) == decoded
    else:
        with pytest.raises(Undecodable) as caught:
            decode_base64(text)
        assert str(caught.value) == f"illegal base64 data at input byte {offset}"


# -- ConfigMap ---------------------------------------------------------------------------------------


def test_a_config_map_is_stored_with_its_binary_data_and_counted_in_the_data_column(world: World) -> None:
    cm = create(world, CONFIG_MAPS, {"metadata": {"name": "game"}, "data": {"lives": "3", "game.properties": "a=b\n"}, "binaryData": {"logo": "aGk="}})
    assert cm["data"] == {"lives": "3", "game.properties": "a=b\n"} and cm["binaryData"] == {"logo": "aGk="}
    assert cells(CONFIG_MAPS, cm) == {"Name": "game", "Data": 3, "Age": cells(CONFIG_MAPS, cm)["Age"]}


KEY_REGEX = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"a b": "1"}}, [("data[a b]", f'Invalid value: "a b": {KEY_REGEX}')]),
        ({"data": {"..x": "1"}}, [("data[..x]", "Invalid value: \"..x\": must not start with '..'")]),
        ({"data": {".": "1"}}, [("data[.]", "Invalid value: \".\": must not be '.'")]),
        ({"binaryData": {"a/b": "aGk="}}, [("binaryData[a/b]", f'Invalid value: "a/b": {KEY_REGEX}')]),
        ({"data": {"k": "1"}, "binaryData": {"k": "aGk="}}, [("data[k]", 'Invalid value: "k": duplicate of key present in binaryData')]),
        ({"data": {"big": "x" * (1024 * 1024 + 1)}}, [("", "Too long: may not be more than 1048576 bytes")]),
    ],
    ids=["space", "dotdot-prefix", "dot", "binary-slash", "both-maps", "too-large"],
)
def test_config_map_keys_and_size_are_validated(world: World, body: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, CONFIG_MAPS, {"metadata": {"name": "cm"}, **body}))
    assert (error.code, causes(error)) == (422, expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"binaryData": {"b": "aGk"}}, "illegal base64 data at input byte 0"),
        ({"data": {"n": 5}}, "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"),
        ({"binaryData": {"n": 5}}, "json: cannot unmarshal number into Go struct field ConfigMap.binaryData of type []uint8"),
    ],
)
def test_config_map_values_go_cannot_decode_are_400(world: World, body: dict[str, Any], message: str) -> None:
    error = refused(lambda: create(world, CONFIG_MAPS, {"metadata": {"name": "cm"}, **body}))
    assert (error.code, error.message) == (400, f'ConfigMap in version "v1" cannot be handled as a ConfigMap: {message}')


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"data": {"a": "2"}}, [("data", "Forbidden: field is immutable when `immutable` is set")]),
        ({"binaryData": {"b": "aGk="}}, [("binaryData", "Forbidden: field is immutable when `immutable` is set")]),
        ({"immutable": False}, [("immutable", "Forbidden: field is immutable when `immutable` is set")]),
    ],
)
def test_an_immutable_config_map_keeps_its_contents(world: World, patch: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    create(world, CONFIG_MAPS, {"metadata": {"name": "frozen"}, "immutable": True, "data": {"a": "1"}})
    error = refused(lambda: world.registry.patch(CONFIG_MAPS, NS, "frozen", MERGE_PATCH, patch))
    assert (error.code, causes(error)) == (422, expected)
    assert error.message == f'ConfigMap "frozen" is invalid: {expected[0][0]}: {expected[0][1]}'
    # its labels may still change, and an object that is not immutable may change
    world.registry.patch(CONFIG_MAPS, NS, "frozen", MERGE_PATCH, {"metadata": {"labels": {"x": "y"}}})
    create(world, CONFIG_MAPS, {"metadata": {"name": "free"}, "data": {"a": "1"}})
    assert world.registry.patch(CONFIG_MAPS, NS, "free", MERGE_PATCH, {"data": {"a": "2"}}).obj["data"] == {"a": "2"}


def test_config_maps_decode_from_protobuf_with_binary_values(world: World) -> None:
    # what api/protobuf.py makes of kubectl's map<string, bytes>: its entries, values raw
    body = {"metadata": {"name": "pb"}, "data": {"a": "1"}, "binaryData": [{"key": "b", "value": b"\x00\xff"}, {"key": "e", "value": b""}]}
    cm = create(world, CONFIG_MAPS, body)
    assert cm["binaryData"] == {"b": "AP8=", "e": ""}


# -- Secret ------------------------------------------------------------------------------------------


def test_string_data_is_merged_into_data_and_never_stored(world: World) -> None:
    secret = create(world, SECRETS, {"metadata": {"name": "s"}, "data": {"user": b64("old"), "keep": b64("k")}, "stringData": {"user": "admin"}})
    assert secret["data"] == {"user": b64("admin"), "keep": b64("k")}
    assert "stringData" not in secret and "stringData" not in stored(world, SECRETS, "s")
    assert secret["type"] == "Opaque"
    assert cells(SECRETS, secret)["Type"] == "Opaque" and cells(SECRETS, secret)["Data"] == 2
    # a patch with stringData changes data the same way
    patched = world.registry.patch(SECRETS, NS, "s", MERGE_PATCH, {"stringData": {"keep": "new"}}).obj
    assert patched["data"]["keep"] == b64("new") and "stringData" not in patched


def test_secret_data_is_stored_as_canonical_base64(world: World) -> None:
    assert create(world, SECRETS, {"metadata": {"name": "s"}, "data": {"k": "aGVs\nbG8="}})["data"] == {"k": "aGVsbG8="}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"k": "not base64!"}, "illegal base64 data at input byte 3"),
        ({"k": "YWJj="}, "illegal base64 data at input byte 4"),
        ({"k": 1}, "json: cannot unmarshal number into Go struct field Secret.data of type []uint8"),
    ],
)
def test_secret_data_that_is_no_base64_is_400(world: World, data: dict[str, Any], message: str) -> None:
    error = refused(lambda: create(world, SECRETS, {"metadata": {"name": "s"}, "data": data}))
    assert (error.code, error.reason, error.message) == (400, "BadRequest", f'Secret in version "v1" cannot be handled as a Secret: {message}')


TLS_DATA = {"tls.crt": b64("cert"), "tls.key": b64("key")}


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ({"type": "kubernetes.io/tls", "data": {}}, [("data[tls.crt]", "Required value"), ("data[tls.key]", "Required value")]),
        ({"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}, [("data[tls.key]", "Required value")]),
        ({"type": "kubernetes.io/dockerconfigjson"}, [("data[.dockerconfigjson]", "Required value")]),
        ({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{nope"}},
         [("data[.dockerconfigjson]", "Invalid value: \"<secret contents redacted>\": invalid character 'n' looking for beginning of object key string")]),
        ({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "[]"}},
         [("data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>": json: cannot unmarshal array into Go value of type map[string]interface {}')]),
        ({"type": "kubernetes.io/dockercfg", "data": {}}, [("data[.dockercfg]", "Required value")]),
        ({"type": "kubernetes.io/basic-auth"}, [("data[username]", "Required value"), ("data[password]", "Required value")]),
        ({"type": "kubernetes.io/ssh-auth"}, [("data[ssh-privatekey]", "Required value")]),
        ({"type": "kubernetes.io/service-account-token"}, [("metadata.annotations[kubernetes.io/service-account.name]", "Required value")]),
        ({"data": {"bad key": b64("x")}}, [("data[bad key]", f'Invalid value: "bad key": {KEY_REGEX}')]),
    ],
    ids=["tls-empty", "tls-no-key", "dockerconfigjson", "dockerconfigjson-bad-json", "dockerconfigjson-array", "dockercfg",
         "basic-auth", "ssh-auth", "sa-token", "key"],
)
def test_each_secret_type_requires_its_keys(world: World, secret: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, SECRETS, {"metadata": {"name": "s"}, **secret}))
    assert error.code == 422
    assert causes(error) == expected


@pytest.mark.parametrize(
    "secret",
    [
        {"type": "kubernetes.io/tls", "data": TLS_DATA},
        {"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": '{"auths": {}}'}},
        {"type": "kubernetes.io/basic-auth", "stringData": {"password": "p"}},
        {"type": "kubernetes.io/ssh-auth", "stringData": {"ssh-privatekey": "k"}},
        {"type": "kubernetes.io/service-account-token", "metadata": {"annotations": {"kubernetes.io/service-account.name": "default"}}},
        {"type": "example.com/custom", "data": {}},
    ],
    ids=["tls", "dockerconfigjson", "basic-auth", "ssh-auth", "sa-token", "custom"],
)
def test_secrets_of_each_type_with_their_keys_are_stored(world: World, secret: dict[str, Any]) -> None:
    body = {**secret, "metadata": {"name": "s", **secret.get("metadata", {})}}
    assert create(world, SECRETS, body)["type"] == secret["type"]


def test_a_secrets_type_and_immutable_data_do_not_change(world: World) -> None:
    create(world, SECRETS, {"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": TLS_DATA})
    error = refused(lambda: world.registry.patch(SECRETS, NS, "t", MERGE_PATCH, {"type": "Opaque"}))
    assert causes(error) == [("type", 'Invalid value: "Opaque": field is immutable')]
    create(world, SECRETS, {"metadata": {"name": "i"}, "immutable": True, "stringData": {"a": "1"}})
    error = refused(lambda: world.registry.patch(SECRETS, NS, "i", MERGE_PATCH, {"stringData": {"a": "2"}}))
    assert causes(error) == [("data", "Forbidden: field is immutable when `immutable` is set")]


def test_secrets_can_be_selected_by_type(world: World) -> None:
    create(world, SECRETS, {"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": TLS_DATA})
    create(world, SECRETS, {"metadata": {"name": "o"}, "stringData": {"a": "1"}})
    keep = world.registry.make_filter(SECRETS, None, "type=kubernetes.io/tls")
    assert keep is not None
    assert [o["metadata"]["name"] for o in world.store.objects(SECRETS.key, NS) if keep(o)] == ["t"]


# -- Node --------------------------------------------------------------------------------------------


def test_the_emulator_is_one_ready_node_with_this_machines_capacity(world: World) -> None:
    node = stored(world, NODES, "emulator")
    status = node["status"]
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert [(c["status"], c["reason"]) for c in ready] == [("True", "KubeletReady")]
    assert {"type": "InternalIP", "address": NODE_ADDRESS} in status["addresses"]
    assert {"type": "Hostname", "address": "emulator"} in status["addresses"]
    assert status["capacity"]["cpu"] == str(psutil.cpu_count(logical=True))
    assert parse_quantity(status["capacity"]["memory"]).value == psutil.virtual_memory().total // 1024 * 1024
    assert status["allocatable"] == status["capacity"]
    assert status["nodeInfo"]["kubeletVersion"] == KUBELET_VERSION == "v1.32.0"
    assert status["nodeInfo"]["operatingSystem"] == "linux" and status["nodeInfo"]["architecture"]
    row = cells(NODES, node)
    assert (row["Name"], row["Status"], row["Roles"], row["Version"], row["Internal-IP"], row["External-IP"]) == (
        "emulator", "Ready", "control-plane", "v1.32.0", NODE_ADDRESS, "<none>",
    )


def test_a_restart_reports_the_nodes_status_again_and_keeps_user_labels(world: World) -> None:
    world.registry.patch(NODES, "", "emulator", MERGE_PATCH, {"metadata": {"labels": {"disk": "ssd"}}})
    before = stored(world, NODES, "emulator")
    NamespaceController(world.registry).bootstrap("127.0.0.1", 6443)
    after = stored(world, NODES, "emulator")
    assert after["metadata"]["labels"]["disk"] == "ssd"
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    ready = lambda n: next(c for c in n["status"]["conditions"] if c["type"] == "Ready")  # noqa: E731
    assert ready(after)["lastTransitionTime"] == ready(before)["lastTransitionTime"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"taints": [{"key": "k", "effect": "Sometimes"}]}, [("metadata.taints[0].effect", 'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"')]),
        ({"taints": [{"key": "k"}]}, [("metadata.taints[0].effect", "Required value")]),
        ({"taints": [{"key": "bad key", "effect": "NoSchedule"}]}, [("metadata.taints[0].key", "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]),
        ({"podCIDRs": ["10.0.0.0/33"]}, [("spec.podCIDRs[0]", 'Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)')]),
    ],
    ids=["effect", "no-effect", "key", "cidr"],
)
def test_node_specs_are_validated(world: World, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, NODES, {"metadata": {"name": "other"}, "spec": spec}))
    assert causes(error) == expected


def test_a_node_unschedulable_shows_scheduling_disabled(world: World) -> None:
    node = world.registry.patch(NODES, "", "emulator", MERGE_PATCH, {"spec": {"unschedulable": True}}).obj
    assert cells(NODES, node)["Status"] == "Ready,SchedulingDisabled"
    keep = world.registry.make_filter(NODES, None, "spec.unschedulable=true")
    assert keep is not None and keep(node)


def test_a_node_status_is_written_through_its_subresource_only(world: World) -> None:
    node = stored(world, NODES, "emulator")
    node["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    kept = world.registry.update(NODES, "", "emulator", node).obj
    assert cells(NODES, kept)["Status"] == "Ready"  # a main-resource write keeps the status
    changed = world.registry.update(NODES, "", "emulator", node, subresource="status").obj
    assert cells(NODES, changed)["Status"] == "NotReady"


# -- PersistentVolumeClaim and PersistentVolume ---------------------------------------------------------


def claim(name: str = "data", size: str = "1Gi", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


def volume(name: str, size: str = "10Gi", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}, "hostPath": {"path": f"/mnt/{name}"}, **spec}}


def test_a_claim_without_a_class_gets_the_default_one_and_a_volume_of_it(world: World) -> None:
    registry = world.registry
    registry.create(PERSISTENT_VOLUMES, "", volume("classless", "5Gi"))
    pvc = create(world, PERSISTENT_VOLUME_CLAIMS, claim("plain"))
    assert pvc["spec"]["storageClassName"] == "standard"  # the built-in default (DefaultStorageClass admission)
    bound = stored(world, PERSISTENT_VOLUME_CLAIMS, "plain")
    assert bound["spec"]["volumeName"].startswith("pvc-")  # provisioned: the class-less volume is not of its class
    assert registry.get(PERSISTENT_VOLUMES, "", bound["spec"]["volumeName"])["spec"]["storageClassName"] == "standard"
    pvc = create(world, PERSISTENT_VOLUME_CLAIMS, claim("none", storageClassName=""))  # "" asks for no class
    assert pvc["spec"]["storageClassName"] == "" and stored(world, PERSISTENT_VOLUME_CLAIMS, "none")["spec"]["volumeName"] == "classless"


def test_a_provisioned_volume_follows_its_class(world: World) -> None:
    world.registry.create(STORAGE_CLASSES, "", {"metadata": {"name": "keep"}, "provisioner": "example.com/disk",
                                               "reclaimPolicy": "Retain", "mountOptions": ["ro"]})
    create(world, PERSISTENT_VOLUME_CLAIMS, claim("kept", storageClassName="keep"))
    pv = world.registry.get(PERSISTENT_VOLUMES, "", stored(world, PERSISTENT_VOLUME_CLAIMS, "kept")["spec"]["volumeName"])
    assert (pv["spec"]["persistentVolumeReclaimPolicy"], pv["spec"]["mountOptions"]) == ("Retain", ["ro"])


def test_a_claim_is_bound_at_once_to_a_volume_the_emulator_provisions(world: World) -> None:
    uid = create(world, PERSISTENT_VOLUME_CLAIMS, claim(size="1024Mi", storageClassName="fast"))["metadata"]["uid"]
    pvc = stored(world, PERSISTENT_VOLUME_CLAIMS, "data")
    pv = stored(world, PERSISTENT_VOLUMES, f"pvc-{uid}")
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    assert pvc["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert pv["spec"]["capacity"] == {"storage": "1Gi"} and pv["spec"]["storageClassName"] == "fast"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" and pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["uid"] == uid and pv["spec"]["claimRef"]["namespace"] == NS
    path = Path(pv["spec"]["hostPath"]["path"])
    assert path == world.data_dir / "volumes" / f"pvc-{uid}" and path.is_dir()
    assert cells(PERSISTENT_VOLUME_CLAIMS, pvc) | {"Age": ""} == {
        "Name": "data", "Status": "Bound", "Volume": f"pvc-{uid}", "Capacity": "1Gi", "Access Modes": "RWO",
        "StorageClass": "fast", "VolumeAttributesClass": "<unset>", "Age": "", "VolumeMode": "Filesystem",
    }
    assert cells(PERSISTENT_VOLUMES, pv) | {"Age": ""} == {
        "Name": f"pvc-{uid}", "Capacity": "1Gi", "Access Modes": "RWO", "Reclaim Policy": "Delete", "Status": "Bound",
        "Claim": "default/data", "StorageClass": "fast", "VolumeAttributesClass": "<unset>", "Reason": "", "Age": "",
        "VolumeMode": "Filesystem",
    }
    # the claim goes: its volume and the volume's directory go with it
    world.registry.delete(PERSISTENT_VOLUME_CLAIMS, NS, "data")
    assert world.store.get(PERSISTENT_VOLUMES.key, "", f"pvc-{uid}") is None
    assert not path.exists()


def test_a_claim_binds_to_the_smallest_fitting_volume_before_one_is_provisioned(world: World) -> None:
    for name, size in (("big", "20Gi"), ("small", "5Gi"), ("tiny", "1Gi")):
        create(world, PERSISTENT_VOLUMES, volume(name, size, storageClassName="manual"))
    assert stored(world, PERSISTENT_VOLUMES, "tiny")["status"]["phase"] == "Available"
    create(world, PERSISTENT_VOLUME_CLAIMS, claim(size="3Gi", storageClassName="manual"))
    pvc = stored(world, PERSISTENT_VOLUME_CLAIMS, "data")
    assert (pvc["spec"]["volumeName"], pvc["status"]["capacity"]) == ("small", {"storage": "5Gi"})
    assert stored(world, PERSISTENT_VOLUMES, "small")["spec"]["claimRef"]["name"] == "data"
    assert [o["metadata"]["name"] for o in world.store.objects(PERSISTENT_VOLUMES.key)] == ["big", "small", "tiny"]
    # a Retain volume is Released when its claim goes, not deleted
    world.registry.delete(PERSISTENT_VOLUME_CLAIMS, NS, "data")
    assert stored(world, PERSISTENT_VOLUMES, "small")["status"]["phase"] == "Released"


def test_a_claim_naming_a_missing_volume_waits_for_it(world: World) -> None:
    create(world, PERSISTENT_VOLUME_CLAIMS, claim(volumeName="later"))
    assert stored(world, PERSISTENT_VOLUME_CLAIMS, "data")["status"]["phase"] == "Pending"
    assert list(world.store.objects(PERSISTENT_VOLUMES.key)) == []
    create(world, PERSISTENT_VOLUMES, volume("later"))
    assert stored(world, PERSISTENT_VOLUME_CLAIMS, "data")["status"]["phase"] == "Bound"
    assert stored(world, PERSISTENT_VOLUMES, "later")["status"]["phase"] == "Bound"
    world.registry.delete(PERSISTENT_VOLUMES, "", "later")
    assert stored(world, PERSISTENT_VOLUME_CLAIMS, "data")["status"]["phase"] == "Lost"


def test_volumes_of_an_in_memory_emulator_live_in_a_temporary_directory(tmp_path: Path) -> None:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    volumes = VolumeController(registry, None)
    store.subscribe(volumes.apply)
    NamespaceController(registry).bootstrap("127.0.0.1", 6443)
    uid = registry.create(PERSISTENT_VOLUME_CLAIMS, NS, claim()).obj["metadata"]["uid"]
    path = Path(registry.get(PERSISTENT_VOLUMES, "", f"pvc-{uid}")["spec"]["hostPath"]["path"])
    assert path.is_dir() and path.parent == volumes.root and "emulator-volumes-" in str(path)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"accessModes": []}, [("spec.accessModes", "Required value: at least 1 access mode is required")]),
        ({"accessModes": ["ReadWriteSometimes"]}, [("spec.accessModes", 'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"')]),
        ({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}, [("spec.accessModes", "Forbidden: may not use ReadWriteOncePod with other access modes")]),
        ({"resources": {}}, [("spec.resources[storage]", "Required value")]),
        ({"resources": {"requests": {"storage": "0"}}}, [("spec.resources[storage]", 'Invalid value: "0": must be greater than zero')]),
        ({"volumeMode": "Disk"}, [("spec.volumeMode", 'Unsupported value: "Disk": supported values: "Block", "Filesystem"')]),
        ({"storageClassName": "Fast_1"}, [("spec.storageClassName", "Invalid value: \"Fast_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]),
    ],
    ids=["no-modes", "bad-mode", "once-pod-mixed", "no-storage", "zero-storage", "volume-mode", "class"],
)
def test_claims_are_validated(world: World, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    body = claim()
    body["spec"].update(spec)
    error = refused(lambda: create(world, PERSISTENT_VOLUME_CLAIMS, body))
    assert (error.code, causes(error)) == (422, expected)


def test_a_request_that_is_no_quantity_is_400(world: World) -> None:
    error = refused(lambda: create(world, PERSISTENT_VOLUME_CLAIMS, claim(size="1Gb")))
    assert error.code == 400
    assert error.message == (
        'PersistentVolumeClaim in version "v1" cannot be handled as a PersistentVolumeClaim: quantities must match the '
        "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_a_bound_claims_spec_is_frozen_but_for_a_bigger_request(world: World) -> None:
    create(world, PERSISTENT_VOLUME_CLAIMS, claim(size="2Gi"))
    error = refused(lambda: world.registry.patch(PERSISTENT_VOLUME_CLAIMS, NS, "data", MERGE_PATCH, {"spec": {"accessModes": ["ReadWriteMany"]}}))
    assert causes(error) == [("spec", "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims")]
    error = refused(lambda: world.registry.patch(PERSISTENT_VOLUME_CLAIMS, NS, "data", MERGE_PATCH, {"spec": {"resources": {"requests": {"storage": "1Gi"}}}}))
    assert causes(error) == [("spec.resources.requests.storage", "Forbidden: field can not be less than previous value")]
    bigger = world.registry.patch(PERSISTENT_VOLUME_CLAIMS, NS, "data", MERGE_PATCH, {"spec": {"resources": {"requests": {"storage": "3Gi"}}}})
    assert bigger.obj["spec"]["resources"]["requests"]["storage"] == "3Gi"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"accessModes": None}, [("spec.accessModes", "Required value")]),
        ({"capacity": None}, [("spec.capacity", "Required value"), ("spec.capacity", 'Unsupported value: core.ResourceList{}: supported values: "storage"')]),
        ({"capacity": {"storage": "1Gi", "cpu": "1"}}, [("spec.capacity", 'Unsupported value: core.ResourceList{"storage":"1Gi", "cpu":"1"}: supported values: "storage"')]),
        ({"hostPath": None}, [("spec", "Required value: must specify a volume type")]),
        ({"nfs": {"server": "nfs.local", "path": "/x"}}, [("spec.nfs", "Forbidden: may not specify more than 1 volume type")]),
        ({"hostPath": {"path": "/a/../b"}}, [("spec.hostPath.path", "Invalid value: \"/a/../b\": must not contain '..'")]),
        ({"hostPath": {"path": "/a", "type": "Folder"}}, [("spec.hostPath.type", 'Unsupported value: "Folder": supported values: "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"')]),
        ({"persistentVolumeReclaimPolicy": "Keep"}, [("spec.persistentVolumeReclaimPolicy", 'Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"')]),
        ({"hostPath": None, "local": {"path": "/x"}}, [("spec.nodeAffinity", "Required value: Local volume requires node affinity")]),
    ],
    ids=["modes", "capacity", "capacity-extra", "no-source", "two-sources", "backsteps", "host-path-type", "reclaim", "local"],
)
def test_volumes_are_validated(world: World, change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    body = volume("v")
    for key, value in change.items():
        if value is None:
            body["spec"].pop(key)
        else:
            body["spec"][key] = value
    error = refused(lambda: create(world, PERSISTENT_VOLUMES, body))
    assert (error.code, causes(error)) == (422, expected)


def test_a_volume_is_defaulted_and_its_source_is_frozen(world: World) -> None:
    pv = create(world, PERSISTENT_VOLUMES, volume("v"))
    assert (pv["spec"]["persistentVolumeReclaimPolicy"], pv["spec"]["volumeMode"], pv["spec"]["hostPath"]["type"]) == ("Retain", "Filesystem", "")
    assert pv["status"]["phase"] == "Pending" and pv["status"]["lastPhaseTransitionTime"]
    assert stored(world, PERSISTENT_VOLUMES, "v")["status"]["phase"] == "Available"
    error = refused(lambda: world.registry.patch(PERSISTENT_VOLUMES, "", "v", MERGE_PATCH, {"spec": {"hostPath": {"path": "/elsewhere"}}}))
    assert causes(error) == [("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource is immutable after creation")]


# -- LimitRange and ResourceQuota ----------------------------------------------------------------------


def test_a_container_limit_range_gets_the_api_servers_defaults(world: World) -> None:
    lr = create(world, LIMIT_RANGES, {"metadata": {"name": "mem"}, "spec": {"limits": [
        {"type": "Container", "max": {"memory": "1Gi"}, "min": {"memory": "500Mi", "cpu": "100m"}},
        {"type": "Pod", "max": {"cpu": "2"}},
    ]}})
    container, pod = lr["spec"]["limits"]
    assert container["default"] == {"memory": "1Gi"}
    assert container["defaultRequest"] == {"memory": "1Gi", "cpu": "100m"}
    assert "default" not in pod and "defaultRequest" not in pod
    assert cells(LIMIT_RANGES, lr) == {"Name": "mem", "Created At": lr["metadata"]["creationTimestamp"]}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}, [
            ("spec.limits[0].min[cpu]", "Invalid value: 2: min value 2 is greater than max value 1"),
            ("spec.limits[0].defaultRequest[cpu]", "Invalid value: 1: min value 2 is greater than default request value 1"),
            ("spec.limits[0].default[cpu]", "Invalid value: 2: min value 2 is greater than default value 1"),
        ]),
        ({"type": "Pod", "default": {"cpu": "1"}}, [("spec.limits[0].default", "Forbidden: may not be specified when `type` is 'Pod'")]),
        ({"type": "Node", "max": {"cpu": "1"}}, [("spec.limits[0].type", 'Invalid value: "Node": must be a standard limit type or fully qualified')]),
        ({"type": "Container", "max": {"gpu": "1"}}, [
            ("spec.limits[0].max[gpu]", 'Invalid value: "gpu": must be a standard resource type or fully qualified'),
            ("spec.limits[0].max[gpu]", 'Invalid value: "gpu": must be a standard resource for containers'),
            ("spec.limits[0].default[gpu]", 'Invalid value: "gpu": must be a standard resource type or fully qualified'),
            ("spec.limits[0].default[gpu]", 'Invalid value: "gpu": must be a standard resource for containers'),
            ("spec.limits[0].defaultRequest[gpu]", 'Invalid value: "gpu": must be a standard resource type or fully qualified'),
            ("spec.limits[0].defaultRequest[gpu]", 'Invalid value: "gpu": must be a standard resource for containers'),
        ]),
        ({"type": "PersistentVolumeClaim", "max": {"cpu": "1"}}, [("spec.limits[0].limits", "Required value: either minimum or maximum storage value is required, but neither was provided")]),
        ({"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}, [("spec.limits[0].maxLimitRequestRatio[cpu]", "Invalid value: 500m: ratio 500m is less than 1")]),
    ],
    ids=["min-over-max", "pod-default", "type", "resource-name", "pvc-storage", "ratio"],
)
def test_limit_ranges_are_validated(world: World, item: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, LIMIT_RANGES, {"metadata": {"name": "lr"}, "spec": {"limits": [item]}}))
    assert (error.code, causes(error)) == (422, expected)


def test_a_quota_publishes_its_hard_limits_as_status(world: World) -> None:
    quota = create(world, RESOURCE_QUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "requests.cpu": "1000m", "limits.memory": "2048Mi"}}})
    assert quota["spec"]["hard"] == {"pods": "10", "requests.cpu": "1", "limits.memory": "2Gi"}
    assert quota["status"]["hard"] == quota["spec"]["hard"]
    updated = world.registry.patch(RESOURCE_QUOTAS, NS, "q", MERGE_PATCH, {"spec": {"hard": {"pods": "20"}}}).obj
    assert updated["status"]["hard"]["pods"] == "20"
    row = cells(RESOURCE_QUOTAS, updated)
    assert (row["Request"], row["Limit"]) == ("pods: 0/20, requests.cpu: 0/1", "limits.memory: 0/2Gi")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"hard": {"widgets": "1"}}, [("spec.hard[widgets]", 'Invalid value: "widgets": must be a standard resource type or fully qualified'), ("spec.hard[widgets]", 'Invalid value: "widgets": must be a standard resource for quota')]),
        ({"hard": {"pods": "-1"}}, [("spec.hard[pods]", 'Invalid value: "-1": must be greater than or equal to 0')]),
        ({"hard": {"pods": "1.5"}}, [("spec.hard[pods]", "Invalid value: 1500m: must be an integer")]),
        ({"hard": {"cpu": "1"}, "scopes": ["BestEffort"]}, [("spec.scopes", 'Invalid value: []core.ResourceQuotaScope{"BestEffort"}: unsupported scope applied to resource')]),
        ({"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}, [("spec.scopes", 'Invalid value: []core.ResourceQuotaScope{"Terminating", "NotTerminating"}: conflicting scopes')]),
        ({"hard": {"pods": "1"}, "scopes": ["Sometimes"]}, [("spec.scopes", 'Invalid value: []core.ResourceQuotaScope{"Sometimes"}: unsupported scope')]),
    ],
    ids=["name", "negative", "fraction", "scope-resource", "conflicting", "unknown-scope"],
)
def test_quotas_are_validated(world: World, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, RESOURCE_QUOTAS, {"metadata": {"name": "q"}, "spec": spec}))
    assert (error.code, causes(error)) == (422, expected)


# -- HorizontalPodAutoscaler and PodDisruptionBudget ---------------------------------------------------


def hpa(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5, **spec}}


def test_an_autoscaler_gets_the_api_servers_defaults_and_prints_its_targets(world: World) -> None:
    created = create(world, HORIZONTAL_POD_AUTOSCALERS, hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}))
    spec = created["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert spec["behavior"]["scaleUp"]["policies"] == [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]
    row = cells(HORIZONTAL_POD_AUTOSCALERS, created)
    assert (row["Reference"], row["Targets"], row["MinPods"], row["MaxPods"], row["Replicas"]) == ("Deployment/web", "cpu: <unknown>/80%", "1", 5, 0)
    three = create(world, HORIZONTAL_POD_AUTOSCALERS, hpa(metrics=[
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "pps"}, "target": {"type": "AverageValue", "averageValue": "1000"}}},
        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}},
    ]) | {"metadata": {"name": "three"}})
    assert cells(HORIZONTAL_POD_AUTOSCALERS, three)["Targets"] == "memory: <unknown>/500Mi, <unknown>/1k + 1 more..."


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"minReplicas": 0}, [("spec.minReplicas", "Invalid value: 0: must be greater than or equal to 1")]),
        ({"minReplicas": 6}, [("spec.maxReplicas", "Invalid value: 5: must be greater than or equal to `minReplicas`")]),
        ({"maxReplicas": 0}, [("spec.maxReplicas", "Invalid value: 0: must be greater than 0"), ("spec.maxReplicas", "Invalid value: 0: must be greater than or equal to `minReplicas`")]),
        ({"scaleTargetRef": {"kind": "Deployment"}}, [("spec.scaleTargetRef.name", "Required value")]),
        ({"scaleTargetRef": {"kind": "Deployment", "name": "a/b"}}, [("spec.scaleTargetRef.name", "Invalid value: \"a/b\": may not contain '/'")]),
        ({"metrics": [{"type": "Magic"}]}, [("spec.metrics[0].type", 'Unsupported value: "Magic": supported values: "ContainerResource", "External", "Object", "Pods", "Resource"')]),
        ({"metrics": [{"type": "Resource"}]}, [("spec.metrics[0].resource", "Required value: must populate information for the given metric source")]),
        ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]}, [("spec.metrics[0].resource.target.averageUtilization", "Required value: must set either a target raw value or a target utilization")]),
        ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Percent", "averageUtilization": 0}}}]}, [
            ("spec.metrics[0].resource.target.type", 'Invalid value: "Percent": must be either Utilization, Value, or AverageValue'),
            ("spec.metrics[0].resource.target.averageUtilization", "Invalid value: 0: must be greater than 0"),
        ]),
        ({"metrics": [{"type": "Pods", "pods": {"metric": {"name": "x"}, "target": {"type": "AverageValue"}}}]}, [("spec.metrics[0].pods.target.averageValue", "Required value: must specify a positive target averageValue")]),
        ({"behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 4000}]}}}, [
            ("spec.behavior.scaleUp.policies[0].value", "Invalid value: 0: must be greater than zero"),
            ("spec.behavior.scaleUp.policies[0].periodSeconds", "Invalid value: 4000: must be less than or equal to 1800"),
        ]),
        ({"behavior": {"scaleDown": {"selectPolicy": "Often"}}}, [("spec.behavior.scaleDown.selectPolicy", 'Unsupported value: "Often": supported values: "Disabled", "Max", "Min"')]),
    ],
    ids=["min-zero", "max-under-min", "max-zero", "ref-name", "ref-slash", "metric-type", "metric-missing", "no-target",
         "target-type", "pods-target", "policy", "select-policy"],
)
def test_autoscalers_are_validated(world: World, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, HORIZONTAL_POD_AUTOSCALERS, hpa(**spec)))
    assert (error.code, causes(error)) == (422, expected)


def test_a_disruption_budget_is_stored_and_printed(world: World) -> None:
    pdb = create(world, POD_DISRUPTION_BUDGETS, {"metadata": {"name": "zk"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "zk"}}}})
    assert pdb["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    row = cells(POD_DISRUPTION_BUDGETS, pdb)
    assert (row["Min Available"], row["Max Unavailable"], row["Allowed Disruptions"]) == ("2", "N/A", 0)
    percent = create(world, POD_DISRUPTION_BUDGETS, {"metadata": {"name": "p"}, "spec": {"maxUnavailable": "25%"}})
    assert cells(POD_DISRUPTION_BUDGETS, percent)["Max Unavailable"] == "25%"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"minAvailable": 1, "maxUnavailable": 1}, [("spec", "Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and maxUnavailable cannot be both set")]),
        ({"minAvailable": "half"}, [("spec.minAvailable", "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"half\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]),
        ({"maxUnavailable": "120%"}, [("spec.maxUnavailable", 'Invalid value: "120%": must not be greater than 100%')]),
        ({"minAvailable": -1}, [("spec.minAvailable", "Invalid value: -1: must be greater than or equal to 0")]),
        ({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}, [("spec.unhealthyPodEvictionPolicy", 'Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"')]),
    ],
    ids=["both", "not-percent", "over-100", "negative", "eviction-policy"],
)
def test_disruption_budgets_are_validated(world: World, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, POD_DISRUPTION_BUDGETS, {"metadata": {"name": "b"}, "spec": spec}))
    assert (error.code, causes(error)) == (422, expected)


# -- IngressClass and Ingress ---------------------------------------------------------------------------


def test_the_emulator_ingress_class_is_the_default(world: World) -> None:
    ic = stored(world, INGRESS_CLASSES, "emulator")
    assert ic["metadata"]["annotations"] == {"ingressclass.kubernetes.io/is-default-class": "true"}
    assert ic["spec"] == {"controller": "emulator.local/ingress"}
    assert cells(INGRESS_CLASSES, ic) | {"Age": ""} == {"Name": "emulator", "Controller": "emulator.local/ingress", "Parameters": "<none>", "Age": ""}
    # a later start leaves a class the user changed alone
    world.registry.patch(INGRESS_CLASSES, "", "emulator", MERGE_PATCH, {"metadata": {"annotations": None}})
    NamespaceController(world.registry).bootstrap("127.0.0.1", 6443)
    assert "annotations" not in stored(world, INGRESS_CLASSES, "emulator")["metadata"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"controller": ""}, [("spec.controller", "Required value")]),
        ({"controller": "nginx"}, [("spec.controller", 'Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")')]),
        ({"controller": "a.io/x", "parameters": {"kind": "P", "name": "p", "scope": "Namespace"}}, [("spec.parameters.namespace", "Required value: `parameters.scope` is set to 'Namespace'")]),
        ({"controller": "a.io/x", "parameters": {"kind": "P", "name": "p", "namespace": "ns"}}, [("spec.parameters.namespace", "Forbidden: `parameters.scope` is set to 'Cluster'")]),
        ({"controller": "a.io/x", "parameters": {"name": "p", "scope": "Galaxy"}}, [("spec.parameters.kind", "Required value: kind is required"), ("spec.parameters.scope", 'Unsupported value: "Galaxy": supported values: "Cluster", "Namespace"')]),
    ],
    ids=["empty", "no-domain", "namespace-scope", "cluster-scope", "scope"],
)
def test_ingress_classes_are_validated(world: World, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    error = refused(lambda: create(world, INGRESS_CLASSES, {"metadata": {"name": "c"}, "spec": spec}))
    assert (error.code, causes(error)) == (422, expected)


def test_an_ingress_class_controller_never_changes(world: World) -> None:
    error = refused(lambda: world.registry.patch(INGRESS_CLASSES, "", "emulator", MERGE_PATCH, {"spec": {"controller": "other.io/x"}}))
    assert causes(error) == [("spec.controller", 'Invalid value: "other.io/x": field is immutable')]


def ingress(name: str = "web", **spec: Any) -> dict[str, Any]:
    rules = [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]
    return {"metadata": {"name": name}, "spec": {"rules": rules, **spec}}


def test_an_ingress_without_a_class_gets_the_default_one(world: World) -> None:
    created = create(world, INGRESSES, ingress())
    assert created["spec"]["ingressClassName"] == "emulator"
    assert created["status"] == {"loadBalancer": {}}
    assert cells(INGRESSES, created) | {"Age": ""} == {"Name": "web", "Class": "emulator", "Hosts": "web.example.com", "Address": "", "Ports": "80", "Age": ""}
    assert create(world, INGRESSES, ingress("named", ingressClassName="nginx"))["spec"]["ingressClassName"] == "nginx"
    annotated = ingress("annotated")
    annotated["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    assert "ingressClassName" not in create(world, INGRESSES, annotated)["spec"]
    tls = create(world, INGRESSES, ingress("tls", tls=[{"hosts": ["web.example.com"], "secretName": "cert"}]))
    assert cells(INGRESSES, tls)["Ports"] == "80, 443"


PREFIX = "spec.rules[0].http.paths[0]"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rules": []}, [("spec", "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified")]),
        ({"rules": [{"host": "10.0.0.1"}]}, [("spec.rules[0].host", 'Invalid value: "10.0.0.1": must be a DNS name, not an IP address')]),
        ({"rules": [{"host": "*.a.*.com"}]}, [("spec.rules[0].host", "Invalid value: \"*.a.*.com\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]),
        ({"rules": [{"http": {"paths": []}}]}, [("spec.rules[0].http.paths", "Required value")]),
        ({"rules": [{"http": {"paths": [{"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}, [(f"{PREFIX}.pathType", "Required value: pathType must be specified")]),
        ({"rules": [{"http": {"paths": [{"path": "x", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}, [(f"{PREFIX}.path", 'Invalid value: "x": must be an absolute path')]),
        ({"rules": [{"http": {"paths": [{"path": "/a//b", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}, [(f"{PREFIX}.path", "Invalid value: \"/a//b\": must not contain '//'")]),
        ({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}, [(f"{PREFIX}.pathType", 'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"')]),
        ({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}}]}}]}, [(f"{PREFIX}.backend", "Required value: port name or number is required")]),
        ({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}}]}}]}, [(f"{PREFIX}.backend", 'Invalid value: "": cannot set both port name & port number')]),
        ({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {}}]}}]}, [(f"{PREFIX}.backend", 'Invalid value: "": resource or service backend is required')]),
        ({"tls": [{"secretName": "Bad_Cert"}]}, [("spec.tls[0].secretName", "Invalid value: \"Bad_Cert\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]),
    ],
    ids=["nothing", "ip-host", "wildcard", "no-paths", "no-path-type", "relative", "double-slash", "path-type",
         "no-port", "both-ports", "no-backend", "tls-secret"],
)
def test_ingresses_are_validated(world: World, change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    body = ingress()
    body["spec"].update(change)
    error = refused(lambda: create(world, INGRESSES, body))
    assert (error.code, causes(error)) == (422, expected)


def test_ingresses_decode_the_protobuf_form_of_their_rules(world: World) -> None:
    # protobuf carries each rule's http as a message of its own (the inlined IngressRuleValue)
    body = ingress()
    http = body["spec"]["rules"][0]["http"]
    body["spec"]["rules"] = [{"host": "a.example.com", "ingressRuleValue": {"http": http}}]
    created = create(world, INGRESSES, body)
    assert created["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web"


def test_more_than_three_hosts_are_abbreviated(world: World) -> None:
    body = ingress()
    rule = body["spec"]["rules"][0]
    body["spec"]["rules"] = [{**rule, "host": f"h{i}.example.com"} for i in range(5)]
    assert cells(INGRESSES, create(world, INGRESSES, body))["Hosts"] == "h0.example.com,h1.example.com,h2.example.com + 2 more..."


# -- discovery -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "api_version", "namespaced", "short_names", "status"),
    [
        ("configmaps", "v1", True, ("cm",), False),
        ("secrets", "v1", True, (), False),
        ("nodes", "v1", False, ("no",), True),
        ("persistentvolumes", "v1", False, ("pv",), True),
        ("persistentvolumeclaims", "v1", True, ("pvc",), True),
        ("limitranges", "v1", True, ("limits",), False),
        ("resourcequotas", "v1", True, ("quota",), True),
        ("horizontalpodautoscalers.autoscaling", "autoscaling/v2", True, ("hpa",), True),
        ("poddisruptionbudgets.policy", "policy/v1", True, ("pdb",), True),
        ("ingressclasses.networking.k8s.io", "networking.k8s.io/v1", False, (), False),
        ("ingresses.networking.k8s.io", "networking.k8s.io/v1", True, ("ing",), True),
    ],
)
def test_each_kind_is_served_as_on_a_real_server(key: str, api_version: str, namespaced: bool, short_names: tuple[str, ...], status: bool) -> None:
    rt = BY_KEY[key].resource
    assert rt in RESOURCE_TYPES
    assert (rt.api_version, rt.namespaced, rt.short_names) == (api_version, namespaced, short_names)
    assert ("status" in [s.name for s in rt.subresources]) is status
    strategy = BY_KEY[key].strategy
    assert strategy is not None and strategy.has_status is status


def test_a_namespace_going_takes_its_claims_and_their_provisioned_volumes(world: World) -> None:
    world.registry.create(NAMESPACES, "", {"metadata": {"name": "team"}})
    uid = create(world, PERSISTENT_VOLUME_CLAIMS, claim(), namespace="team")["metadata"]["uid"]
    path = world.data_dir / "volumes" / f"pvc-{uid}"
    assert path.is_dir()
    world.registry.delete(NAMESPACES, "", "team")  # without an event loop the contents go at once
    assert world.store.get(PERSISTENT_VOLUME_CLAIMS.key, "team", "data") is None
    assert world.store.get(PERSISTENT_VOLUMES.key, "", f"pvc-{uid}") is None
    assert not path.exists()


def test_claims_stored_before_a_start_are_bound_when_the_controller_starts(tmp_path: Path) -> None:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(registry).bootstrap("127.0.0.1", 6443)
    registry.create(PERSISTENT_VOLUME_CLAIMS, NS, claim(storageClassName=""))  # no controller yet: Pending
    registry.create(PERSISTENT_VOLUMES, "", volume("static", "1Gi"))
    assert registry.get(PERSISTENT_VOLUME_CLAIMS, NS, "data")["status"]["phase"] == "Pending"
    volumes = VolumeController(registry, str(tmp_path))
    store.subscribe(volumes.apply)
    volumes.start()
    assert registry.get(PERSISTENT_VOLUMES, "", "static")["status"]["phase"] == "Bound"
    assert registry.get(PERSISTENT_VOLUME_CLAIMS, NS, "data")["spec"]["volumeName"] == "static"
