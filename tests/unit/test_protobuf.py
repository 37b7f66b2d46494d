"""Unit tests for api.protobuf, with real protobuf bytes built by a tiny encoder in this file."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.protobuf import ProtobufError, decode_k8s_protobuf
from emulator import schemas
from emulator.kinds import PROTOBUF_LAYOUTS
from emulator.kinds.protobuf_layout import Message

# the core/v1 kinds kubectl's protobuf generators create
CORE_KINDS = [kind for api_version, kind in PROTOBUF_LAYOUTS if api_version == "v1"]

# ---------------------------------------------------------------------------------------------
# A minimal protobuf encoder, enough to produce what kubectl's gogo-proto marshalling sends
# ---------------------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64 negatives are sign-extended to ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def vint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def blob(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return blob(number, value.encode())


def msg(number: int, *parts: bytes) -> bytes:
    return blob(number, b"".join(parts))


def map_entry(number: int, key: str, value: str) -> bytes:
    return msg(number, text(1, key), text(2, value))


def object_meta(name: str, *extra: bytes) -> bytes:
    """ObjectMeta as gogo-proto writes it: every non-pointer field, even when empty."""
    return msg(
        1,
        text(1, name),
        text(2, ""),  # generateName
        text(3, ""),  # namespace
        text(4, ""),  # selfLink
        text(5, ""),  # uid
        text(6, ""),  # resourceVersion
        vint(7, 0),  # generation
        msg(8, vint(1, 0), vint(2, 0)),  # creationTimestamp: the zero Time
        *extra,
    )


def envelope(kind: str, raw: bytes, api_version: str = "v1", content_encoding: str = "") -> bytes:
    unknown = msg(1, text(1, api_version), text(2, kind)) + blob(2, raw) + text(3, content_encoding) + text(4, "")
    return b"k8s\x00" + unknown


# What `kubectl create namespace x` sends.
NAMESPACE_X = envelope("Namespace", object_meta("x") + msg(2) + msg(3, text(1, "")))

# What `kubectl create serviceaccount sa1` sends.
SERVICE_ACCOUNT_SA1 = envelope("ServiceAccount", object_meta("sa1"))

# What `kubectl create service clusterip s1 --tcp=80:8080` sends.
SERVICE_S1 = envelope(
    "Service",
    object_meta("s1", map_entry(11, "app", "s1"))
    + msg(
        2,
        msg(
            1,
            text(1, "80-8080"),
            text(2, "TCP"),
            vint(3, 80),
            msg(4, vint(1, 0), vint(2, 8080), text(3, "")),
            vint(5, 0),
        ),
        map_entry(2, "app", "s1"),
        text(3, ""),
        text(4, "ClusterIP"),
        text(7, ""),
        text(8, ""),
        text(10, ""),
        text(11, ""),
        vint(12, 0),
        vint(13, 0),
    )
    + msg(3, msg(1)),  # status.loadBalancer: not modelled, skipped
)


def test_kubectl_create_namespace() -> None:
    assert decode_k8s_protobuf(NAMESPACE_X) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}


def test_kubectl_create_serviceaccount() -> None:
    assert decode_k8s_protobuf(SERVICE_ACCOUNT_SA1) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "sa1"},
    }


def test_kubectl_create_service_clusterip() -> None:
    assert decode_k8s_protobuf(SERVICE_S1) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s1", "labels": {"app": "s1"}},
        "spec": {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "s1"},
            "type": "ClusterIP",
        },
    }


def test_object_meta_fields() -> None:
    meta = object_meta(
        "web",
        map_entry(11, "app", "web"),
        map_entry(11, "tier", "fe"),
        map_entry(12, "note", ""),
        msg(13, text(1, "ReplicaSet"), text(3, "rs"), text(4, "u-1"), text(5, "apps/v1"), vint(6, 1)),
        text(14, "example.com/a"),
        text(14, "example.com/b"),
    )
    decoded = decode_k8s_protobuf(envelope("Namespace", meta))["metadata"]
    assert decoded == {
        "name": "web",
        "labels": {"app": "web", "tier": "fe"},
        "annotations": {"note": ""},
        "ownerReferences": [
            {"kind": "ReplicaSet", "name": "rs", "uid": "u-1", "apiVersion": "apps/v1", "controller": True}
        ],
        "finalizers": ["example.com/a", "example.com/b"],
    }


def test_creation_timestamp_and_namespace_and_generate_name() -> None:
    raw = msg(1, text(2, "web-"), text(3, "team"), msg(8, vint(1, 1_700_000_000), vint(2, 5)), vint(7, 3))
    assert decode_k8s_protobuf(envelope("ServiceAccount", raw))["metadata"] == {
        "generateName": "web-",
        "namespace": "team",
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "generation": 3,
    }


def test_pointer_fields_keep_zero_values() -> None:
    raw = object_meta("sa") + vint(4, 0) + msg(3, text(1, "regcred")) + msg(2, text(3, "token"), text(1, ""))
    assert decode_k8s_protobuf(envelope("ServiceAccount", raw)) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "sa"},
        "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "regcred"}],
        "secrets": [{"name": "token"}],
    }


def test_service_spec_extras() -> None:
    spec = msg(
        2,
        msg(1, text(1, "http"), vint(3, 80), msg(4, vint(1, 1), text(3, "web")), vint(5, 30080)),
        text(4, "NodePort"),
        text(5, "1.2.3.4"),
        text(17, "SingleStack"),
        text(18, "127.0.100.9"),
        text(19, "IPv4"),
        vint(20, 0),
        msg(14, msg(1, vint(1, 10800))),
        text(10, ""),
    )
    assert decode_k8s_protobuf(envelope("Service", object_meta("s") + spec))["spec"] == {
        "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080}],
        "type": "NodePort",
        "externalIPs": ["1.2.3.4"],
        "ipFamilyPolicy": "SingleStack",
        "clusterIPs": ["127.0.100.9"],
        "ipFamilies": ["IPv4"],
        "allocateLoadBalancerNodePorts": False,
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
    }


def test_pod_metadata_and_containers() -> None:
    container = msg(
        2,
        text(1, "app"),
        text(2, "nginx:1.26"),
        text(3, "sh"),
        text(3, "-c"),
        text(4, "echo hi"),
        msg(6, text(1, "http"), vint(3, 8080), text(4, "TCP")),
        msg(7, text(1, "A"), text(2, "1")),
        text(14, "IfNotPresent"),
        msg(8),  # resources: not modelled
    )
    spec = msg(2, container, text(3, "Always"), vint(4, -1), map_entry(7, "disk", "ssd"), text(16, "h"))
    decoded = decode_k8s_protobuf(envelope("Pod", object_meta("p", map_entry(11, "run", "p")) + spec))
    assert decoded == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"run": "p"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.26",
                    "command": ["sh", "-c"],
                    "args": ["echo hi"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}],
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": -1,
            "nodeSelector": {"disk": "ssd"},
            "hostname": "h",
        },
    }


def quantity_entry(number: int, key: str, value: str) -> bytes:
    return msg(number, text(1, key), msg(2, text(1, value)))


def test_pod_spec_tree_is_decoded_whole() -> None:
    # what `kubectl debug node/emulator` and `kubectl debug --copy-to` send, and more: inline structs (a
    # Volume's source, a Probe's handler, a key selector's name), quantities, pointers kept at zero
    container = msg(
        2,
        text(1, "app"),
        text(2, "busybox"),
        msg(7, text(1, "CFG"), msg(3, msg(3, msg(1, text(1, "cfg")), text(2, "a"), vint(3, 0)))),
        msg(7, text(1, "POD"), msg(3, msg(1, text(1, "v1"), text(2, "metadata.name")))),
        msg(8, quantity_entry(1, "cpu", "500m"), quantity_entry(2, "memory", "64Mi"), msg(3, text(1, "gpu"))),
        msg(9, text(1, "root"), vint(2, 1), text(3, "/host"), text(4, "sub"), text(5, "HostToContainer"), text(6, "$(POD)"), text(7, "Disabled")),
        msg(11, msg(1, msg(2, text(1, "/ready"), msg(2, vint(1, 1), text(3, "http")), text(4, "HTTP"))), vint(4, 5), vint(7, 0)),
        msg(12, msg(2, msg(4, vint(1, 5)))),  # lifecycle.preStop.sleep
        msg(15, msg(1, text(1, "NET_ADMIN")), vint(2, 0), vint(5, 0), text(9, "Default")),
        vint(16, 1),  # stdin
        vint(18, 1),  # tty
    )
    spec = msg(
        2,
        msg(1, text(1, "root"), msg(2, msg(1, text(1, "/")))),
        msg(1, text(1, "cache"), msg(2, msg(2, text(1, "Memory"), msg(2, text(1, "64Mi"))))),
        msg(1, text(1, "scratch"), msg(2, msg(2))),
        container,
        msg(34, msg(1, text(1, "dbg"), text(2, "busybox")), text(2, "app")),
        text(3, "Never"),
        vint(11, 1), vint(12, 1), vint(13, 1),
        msg(22, text(2, "Exists")),
        msg(22, text(1, "k"), text(2, "Equal"), text(3, "v"), text(4, "NoExecute"), vint(5, 0)),
        vint(30, 0),  # enableServiceLinks: false, a pointer
        quantity_entry(32, "cpu", "10m"),
    )
    status = msg(
        3,
        text(1, "Failed"),
        msg(8, text(1, "app"), msg(2, msg(3, vint(1, 0), text(3, "Completed"))), vint(4, 0), vint(5, 0), text(6, "busybox"), text(7, "")),
    )
    decoded = decode_k8s_protobuf(envelope("Pod", object_meta("p") + spec + status))
    assert decoded["spec"] == {
        "volumes": [
            {"name": "root", "hostPath": {"path": "/"}},
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "scratch", "emptyDir": {}},
        ],
        "containers": [{
            "name": "app",
            "image": "busybox",
            "env": [
                {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a", "optional": False}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            ],
            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}, "claims": [{"name": "gpu"}]},
            "volumeMounts": [{
                "name": "root", "readOnly": True, "mountPath": "/host", "subPath": "sub",
                "mountPropagation": "HostToContainer", "subPathExpr": "$(POD)", "recursiveReadOnly": "Disabled",
            }],
            "readinessProbe": {
                "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5,
                "terminationGracePeriodSeconds": 0,
            },
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
            "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}, "privileged": False, "runAsNonRoot": False, "procMount": "Default"},
            "stdin": True,
            "tty": True,
        }],
        "ephemeralContainers": [{"name": "dbg", "image": "busybox", "targetContainerName": "app"}],
        "restartPolicy": "Never",
        "hostNetwork": True,
        "hostPID": True,
        "hostIPC": True,
        "tolerations": [{"operator": "Exists"}, {"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 0}],
        "enableServiceLinks": False,
        "overhead": {"cpu": "10m"},
    }
    # a status: the fields Go's JSON always writes keep their zero values (an exit code 0, ready: false)
    assert decoded["status"] == {
        "phase": "Failed",
        "containerStatuses": [{
            "name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "ready": False,
            "restartCount": 0, "image": "busybox", "imageID": "",
        }],
    }


def test_pointer_int_or_string_keeps_zero() -> None:
    strategy = msg(4, text(1, "RollingUpdate"), msg(2, msg(1, vint(1, 0), vint(2, 0)), msg(2, vint(1, 1), text(3, "25%"))))
    decoded = decode_k8s_protobuf(envelope("Deployment", object_meta("d") + msg(2, strategy), api_version="apps/v1"))
    assert decoded["spec"] == {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}}


def test_managed_fields_carry_their_json() -> None:
    entry = msg(17, text(1, "kubectl"), text(2, "Apply"), text(3, "v1"), text(6, "FieldsV1"), msg(7, blob(1, b'{"f:data":{}}')))
    decoded = decode_k8s_protobuf(envelope("ConfigMap", object_meta("c", entry)))
    assert decoded["metadata"]["managedFields"] == [
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}},
    ]
    with pytest.raises(ProtobufError, match="not JSON"):
        decode_k8s_protobuf(envelope("ConfigMap", object_meta("c", msg(17, msg(7, blob(1, b"{"))))))


def test_unknown_fields_are_kept_as_unknown_keys_for_field_validation() -> None:
    # a field number no 1.32 layout has (a later release's field) is not dropped without a trace: it becomes
    # an unknown key the write path names in a warning and drops (refused by nothing, as a real server drops it)
    unknown_fields = vint(99, 7) + tag(98, 1) + (5).to_bytes(8, "little") + text(96, "future") + msg(95, vint(1, 1))
    raw = object_meta("x", unknown_fields) + unknown_fields
    assert decode_k8s_protobuf(envelope("Namespace", raw)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "x", "protobuf field 99": "varint 7", "protobuf field 98": "fixed64 5",
            "protobuf field 96": "6 bytes", "protobuf field 95": "2 bytes",
        },
        "protobuf field 99": "varint 7", "protobuf field 98": "fixed64 5",
        "protobuf field 96": "6 bytes", "protobuf field 95": "2 bytes",
    }


def test_unknown_fields_that_carry_nothing_are_skipped() -> None:
    # what gogo-proto writes for an unset non-pointer field of a later release: zeros, empty bytes, a message
    # of nothing else (an empty struct holding an empty struct)
    empty = vint(99, 0) + tag(98, 1) + bytes(8) + tag(97, 5) + bytes(4) + text(96, "") + msg(95, msg(1, vint(2, 0)))
    raw = object_meta("x", empty) + empty
    assert decode_k8s_protobuf(envelope("Namespace", raw)) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}


def test_unknown_field_deep_in_a_pod_template_is_named_where_it_is() -> None:
    container = msg(2, text(1, "app"), text(2, "busybox"), vint(99, 1), msg(9, text(1, "v"), text(3, "/v"), text(98, "x")))
    template = msg(6, msg(1), msg(2, container))
    decoded = decode_k8s_protobuf(envelope("Job", object_meta("j") + msg(2, template), api_version="batch/v1"))
    assert decoded["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "busybox", "protobuf field 99": "varint 1",
         "volumeMounts": [{"name": "v", "mountPath": "/v", "protobuf field 98": "1 bytes"}]},
    ]


def test_accepts_bytearray_and_memoryview() -> None:
    assert decode_k8s_protobuf(bytearray(NAMESPACE_X))["metadata"] == {"name": "x"}
    assert decode_k8s_protobuf(memoryview(NAMESPACE_X))["metadata"] == {"name": "x"}


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_unsupported_kind_names_the_supported_ones() -> None:
    with pytest.raises(ProtobufError) as error:
        decode_k8s_protobuf(envelope("ControllerRevision", object_meta("d"), api_version="apps/v1"))
    message = error.value.message
    assert "apps/v1 ControllerRevision" in message
    for api_version, kind in PROTOBUF_LAYOUTS:
        assert f"{api_version} {kind}" in message
    assert "application/json" in message


def test_supported_kind_in_another_group_version_is_rejected() -> None:
    with pytest.raises(ProtobufError, match="v2 Namespace"):
        decode_k8s_protobuf(envelope("Namespace", object_meta("x"), api_version="v2"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "magic"),
        (b'{"kind":"Namespace"}', "magic"),
        (b"k8s\x00", "which kind"),
        (b"k8s\x00" + msg(1, text(1, "v1")), "which kind"),
        (envelope("Namespace", b"", content_encoding="gzip"), "contentEncoding"),
        (b"k8s\x00\x0a", "truncated"),  # a tag with no length
        (b"k8s\x00\x0a\x05ab", "truncated"),  # a length past the end
        (b"k8s\x00\x08\xff", "truncated"),  # a varint cut off
        (b"k8s\x00\x08" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"k8s\x00\x08" + b"\xff" * 9 + b"\x7f", "larger than 64 bits"),
        (b"k8s\x00\x0b", "wire type 3"),  # a group start
        (b"k8s\x00\x00\x00", "field number 0"),
        (b"k8s\x00\x09\x00", "truncated"),  # fixed64 with one byte
        (b"k8s\x00\x0d\x00\x00", "truncated"),  # fixed32 with two bytes
        (b"k8s\x00" + vint(1, 5), "typeMeta should be length-delimited, got varint"),
        (envelope("Namespace", msg(1, vint(1, 3))), r"Namespace\.metadata\.name should be length-delimited"),
        (envelope("Namespace", msg(1, blob(1, b"\xff\xfe"))), "not valid UTF-8"),
        (envelope("Service", msg(2, msg(1, text(3, "80")))), "port should be varint"),
        (envelope("Namespace", msg(1, msg(8, vint(1, 1 << 62)))), "out of range"),
    ],
)
def test_malformed_bodies_raise_protobuf_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message):
        decode_k8s_protobuf(body)


def test_non_bytes_input_is_rejected() -> None:
    with pytest.raises(ProtobufError, match="bytes"):
        decode_k8s_protobuf("k8s\x00")  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [NAMESPACE_X, SERVICE_ACCOUNT_SA1, SERVICE_S1])
def test_every_truncation_either_decodes_or_raises_protobuf_error(body: bytes) -> None:
    for length in range(len(body)):
        try:
            result = decode_k8s_protobuf(body[:length])
        except ProtobufError:
            continue
        assert isinstance(result, dict)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash_differently(tail: bytes) -> None:
    try:
        result = decode_k8s_protobuf(b"k8s\x00" + tail)
    except ProtobufError:
        return
    assert isinstance(result, dict)


@given(st.binary(max_size=120))
def test_random_object_bytes_in_a_valid_envelope_never_crash_differently(raw: bytes) -> None:
    for kind in CORE_KINDS:
        try:
            result = decode_k8s_protobuf(envelope(kind, raw))
        except ProtobufError:
            continue
        assert result["kind"] == kind


@given(st.text(min_size=1, max_size=30), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_names_and_labels_round_trip(name: str, labels: dict[str, str]) -> None:
    raw = object_meta(name, *(map_entry(11, k, v) for k, v in labels.items()))
    meta = decode_k8s_protobuf(envelope("Namespace", raw))["metadata"]
    assert meta.get("name") == name
    assert meta.get("labels", {}) == labels


def test_delete_options_of_any_group_version_decode_with_a_zero_grace_period_kept() -> None:
    # what a typed client's DELETE carries (kubectl drain deletes pods so): every field a pointer
    raw = vint(1, 0) + msg(2, text(1, "u-1"), text(2, "42")) + text(4, "Foreground") + text(5, "All")
    for api_version in ("v1", "apps/v1", "meta.k8s.io/v1"):
        decoded = decode_k8s_protobuf(envelope("DeleteOptions", raw, api_version=api_version))
        assert decoded == {
            "apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": "u-1", "resourceVersion": "42"}, "propagationPolicy": "Foreground", "dryRun": ["All"],
        }
    assert decode_k8s_protobuf(envelope("DeleteOptions", b"")) == {"apiVersion": "v1", "kind": "DeleteOptions"}
    with pytest.raises(ProtobufError, match="DeleteOptions \\(any version\\)"):
        decode_k8s_protobuf(envelope("ListOptions", b""))


# ---------------------------------------------------------------------------------------------
# The layouts against 1.32's schema: nothing a client sends is lost
# ---------------------------------------------------------------------------------------------

# Fields the layouts still lack: the statuses of kinds whose status no client writes in protobuf (the
# reviews' are the server's answer), and the SubjectAccessReview parts kubectl never sends. Whatever of
# these a body carries is reported as an unknown field, not dropped quietly. A StatefulSet's
# volumeClaimTemplates have no TypeMeta in protobuf.
NOT_DECLARED = {
    "apps/v1 StatefulSet": {"spec.volumeClaimTemplates.apiVersion", "spec.volumeClaimTemplates.kind"},
    "authentication.k8s.io/v1 SelfSubjectReview": {"status"},
    "authentication.k8s.io/v1 TokenRequest": {"status"},
    "authentication.k8s.io/v1 TokenReview": {"status"},
    "authorization.k8s.io/v1 LocalSubjectAccessReview": {
        "spec.extra", "spec.resourceAttributes.fieldSelector", "spec.resourceAttributes.labelSelector", "status",
    },
    "authorization.k8s.io/v1 SelfSubjectAccessReview": {
        "spec.resourceAttributes.fieldSelector", "spec.resourceAttributes.labelSelector", "status",
    },
    "authorization.k8s.io/v1 SelfSubjectRulesReview": {"status"},
    "authorization.k8s.io/v1 SubjectAccessReview": {
        "spec.extra", "spec.resourceAttributes.fieldSelector", "spec.resourceAttributes.labelSelector", "status",
    },
    "autoscaling/v1 HorizontalPodAutoscaler": {"status"},
    "networking.k8s.io/v1 Ingress": {"status"},
    "policy/v1 PodDisruptionBudget": {"status"},
}


def _json_fields(layout: Message) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in layout.values():
        if field.inline:  # an embedded struct: its fields are the object's own
            assert field.message is not None
            fields.update(_json_fields(field.message))
        else:
            fields[field.name] = field
    return fields


def _undeclared(layout: Message, schema: dict[str, Any], path: str, found: list[str], seen: set[tuple[int, int]]) -> None:
    schema = schemas._resolve(schema)
    if (id(layout), id(schema)) in seen:
        return
    seen.add((id(layout), id(schema)))
    fields, properties = _json_fields(layout), schema.get("properties") or {}
    found += [f"{path}{name} (not in 1.32)" for name in fields if name not in properties]
    for name, sub in properties.items():
        if not path and name in ("apiVersion", "kind"):
            continue  # the envelope's typeMeta
        field = fields.get(name)
        if field is None:
            found.append(f"{path}{name}")
            continue
        sub = schemas._resolve(sub)
        if field.repeated:
            sub = schemas._resolve(sub.get("items") or {})
        if field.type == "message" and field.message is not None and sub.get("properties"):
            _undeclared(field.message, sub, f"{path}{name}.", found, seen)


@pytest.mark.parametrize(("api_version", "kind"), sorted(PROTOBUF_LAYOUTS))
def test_layouts_declare_every_field_of_the_1_32_schema(api_version: str, kind: str) -> None:
    name = schemas.definition_name(*schemas.split_api_version(api_version), kind)
    assert name is not None
    found: list[str] = []
    _undeclared(PROTOBUF_LAYOUTS[(api_version, kind)], schemas.definitions()[name], "", found, set())
    assert set(found) == NOT_DECLARED.get(f"{api_version} {kind}", set())


def test_every_pod_template_kind_shares_the_whole_pod_spec() -> None:
    pod_spec = PROTOBUF_LAYOUTS[("v1", "Pod")][2].message
    for (api_version, kind), layout in PROTOBUF_LAYOUTS.items():
        spec = layout[2].message if 2 in layout else None
        if spec is None or kind == "Pod":
            continue
        if kind == "CronJob":
            spec = spec[5].message[2].message  # jobTemplate.spec
        template = next((f.message for f in spec.values() if f.name == "template"), None)
        if template is not None:
            assert template[2].message is pod_spec, f"{api_version} {kind}"
