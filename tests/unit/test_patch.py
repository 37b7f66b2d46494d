"""Unit tests for api.patch: merge patch, JSON patch, strategic merge patch, server-side apply."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.kinds import KINDS
from emulator.registry.patch import (
    ListRules,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    find_conflicts,
    list_rule,
    server_side_apply,
)

# ---------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# ---------------------------------------------------------------------------------------------

# The test cases of RFC 7386 appendix A whose target and result are objects.
RFC7386_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


def rules(kind: str) -> ListRules:
    """The list rules of a served kind by name; a kind the emulator does not serve has none."""
    return next((k.merge_rules for k in KINDS if k.resource.kind == kind), {})


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_CASES)
def test_merge_patch_follows_rfc7386_examples(target: dict, patch: dict, expected: dict) -> None:
    assert apply_merge_patch(target, patch) == expected


def test_merge_patch_replaces_lists_and_leaves_inputs_alone() -> None:
    target = {"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}, {"port": 81}]}}
    patch = {"metadata": {"labels": {"b": "2"}}, "spec": {"ports": [{"port": 90}]}}
    before = copy.deepcopy((target, patch))
    result = apply_merge_patch(target, patch)
    assert result == {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [{"port": 90}]}}
    assert (target, patch) == before
    result["metadata"]["labels"]["c"] = "3"
    assert "c" not in target["metadata"]["labels"]


@pytest.mark.parametrize("patch", [[], "x", 3, None])
def test_merge_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(PatchError, match="must be a JSON object"):
        apply_merge_patch({"a": 1}, patch)


def _merge_diff(source: Any, target: Any) -> Any:
    """The merge patch that turns source into target (valid when target holds no nulls)."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return target
    patch: dict[str, Any] = {key: None for key in source if key not in target}
    for key, value in target.items():
        if key not in source:
            patch[key] = value
        elif source[key] != value or type(source[key]) is not type(value):
            patch[key] = _merge_diff(source[key], value)
    return patch


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)
_nonnull_values = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)


@given(
    source=st.dictionaries(st.text(max_size=3), _json_values, max_size=4),
    target=st.dictionaries(st.text(max_size=3), _nonnull_values, max_size=4),
)
def test_merge_patch_of_a_diff_round_trips(source: dict, target: dict) -> None:
    assert apply_merge_patch(source, _merge_diff(source, target)) == target


@given(target=st.dictionaries(st.text(max_size=3), _json_values, max_size=4))
def test_empty_merge_patch_is_identity(target: dict) -> None:
    assert apply_merge_patch(target, {}) == target


# ---------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)
# ---------------------------------------------------------------------------------------------


def test_json_patch_rfc6902_examples() -> None:
    # Appendix A.1-A.8 and A.10 of RFC 6902.
    assert apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == {
        "foo": "bar",
        "baz": "qux",
    }
    assert apply_json_patch({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]) == {
        "foo": ["bar", "qux", "baz"]
    }
    assert apply_json_patch({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]) == {"foo": "bar"}
    assert apply_json_patch({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]) == {
        "foo": ["bar", "baz"]
    }
    assert apply_json_patch({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]) == {
        "baz": "boo",
        "foo": "bar",
    }
    moved = apply_json_patch(
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
    )
    assert moved == {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}
    assert apply_json_patch(
        {"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}]
    ) == {"foo": ["all", "cows", "eat", "grass"]}
    doc = {"baz": "qux", "foo": ["a", 2, "c"]}
    ops = [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]
    assert apply_json_patch(doc, ops) == doc
    assert apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}]) == {
        "foo": "bar",
        "child": {"grandchild": {}},
    }


def test_json_patch_test_failure_and_missing_target() -> None:
    with pytest.raises(PatchError, match="test failed"):
        apply_json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
    with pytest.raises(PatchError, match="does not exist"):
        apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])


def test_json_patch_pointer_escapes() -> None:
    doc = {"/": 9, "~1": 10, "metadata": {"labels": {"app.kubernetes.io/name": "web"}}}
    assert apply_json_patch(doc, [{"op": "test", "path": "/~01", "value": 10}]) == doc
    assert apply_json_patch(doc, [{"op": "test", "path": "/~1", "value": 9}]) == doc
    result = apply_json_patch(doc, [{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}])
    assert result["metadata"]["labels"] == {}
    with pytest.raises(PatchError, match="'~' not followed"):
        apply_json_patch(doc, [{"op": "remove", "path": "/~2"}])


def test_json_patch_append_with_dash_and_copy() -> None:
    doc = {"spec": {"containers": [{"name": "a"}]}}
    ops = [
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "b"}},
        {"op": "copy", "from": "/spec/containers/0", "path": "/spec/first"},
        {"op": "replace", "path": "/spec/first/name", "value": "z"},
    ]
    result = apply_json_patch(doc, ops)
    assert result == {"spec": {"containers": [{"name": "a"}, {"name": "b"}], "first": {"name": "z"}}}
    assert doc == {"spec": {"containers": [{"name": "a"}]}}


def test_json_patch_test_is_strict_about_json_types() -> None:
    doc = {"a": True, "b": 1, "c": 1.0}
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "test", "path": "/a", "value": 1}])
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "test", "path": "/b", "value": "1"}])
    assert apply_json_patch(doc, [{"op": "test", "path": "/c", "value": 1}]) == doc
    assert apply_json_patch(doc, [{"op": "test", "path": "", "value": {"a": True, "b": 1, "c": 1}}]) == doc


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add"}, "JSON array"),
        ([1], "must be an object"),
        ([{"op": "frobnicate", "path": "/a"}], "unknown op"),
        ([{"op": "add", "path": "/a"}], "'value'"),
        ([{"op": "move", "path": "/a"}], "'from'"),
        ([{"op": "add", "value": 1}], "'path'"),
        ([{"op": "add", "path": "a", "value": 1}], "must be empty or start with '/'"),
        ([{"op": "add", "path": 5, "value": 1}], "must be a string"),
        ([{"op": "remove", "path": "/missing"}], "does not exist"),
        ([{"op": "replace", "path": "/missing", "value": 1}], "does not exist"),
        ([{"op": "remove", "path": "/list/5"}], "out of range"),
        ([{"op": "add", "path": "/list/4", "value": 1}], "out of range"),
        ([{"op": "remove", "path": "/list/01"}], "not a valid array index"),
        ([{"op": "remove", "path": "/list/-"}], "not a valid array index"),
        ([{"op": "add", "path": "/obj/x/y", "value": 1}], "does not exist"),
        ([{"op": "add", "path": "/scalar/x", "value": 1}], "not an object or array"),
        ([{"op": "move", "from": "/obj", "path": "/obj/inner"}], "its own children"),
        ([{"op": "remove", "path": ""}], "whole object"),
        ([{"op": "replace", "path": "", "value": [1]}], "non-object"),
    ],
)
def test_json_patch_errors_are_patch_errors(ops: Any, message: str) -> None:
    doc = {"list": [1, 2, 3], "obj": {"k": "v"}, "scalar": 3}
    with pytest.raises(PatchError, match=message):
        apply_json_patch(doc, ops)


def test_json_patch_is_all_or_nothing_and_names_the_failing_operation() -> None:
    doc = {"a": 1}
    with pytest.raises(PatchError, match=r"operation 1 \('remove' '/b'\)"):
        apply_json_patch(doc, [{"op": "add", "path": "/c", "value": 2}, {"op": "remove", "path": "/b"}])
    assert doc == {"a": 1}


def test_json_patch_whole_document_replace() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {"b": 2}
    assert apply_json_patch({"a": 1}, []) == {"a": 1}


# ---------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _service(ports: list[dict], labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": labels or {},
            "annotations": {LAST_APPLIED: "old"},
        },
        "spec": {"clusterIP": "127.0.100.1", "selector": {"app": "web"}, "ports": ports, "type": "ClusterIP"},
    }


def test_smp_kubectl_apply_adds_a_service_port_and_a_label() -> None:
    live = _service([{"port": 80, "protocol": "TCP", "targetPort": 8080}])
    patch = json.loads(
        '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{...}\\n"},"labels":{"tier":"fe"}},'
        ' "spec":{"$setElementOrder/ports":[{"port":80},{"port":9090}],"ports":[{"name":"metrics","port":9090}]}}'
    )
    result = apply_strategic_merge_patch(live, patch, rules("Service"))
    assert result["metadata"]["labels"] == {"tier": "fe"}
    assert result["metadata"]["annotations"][LAST_APPLIED] == "{...}\n"
    assert result["spec"]["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "metrics", "port": 9090},
    ]
    assert result["spec"]["clusterIP"] == "127.0.100.1"


def test_smp_kubectl_apply_removes_a_label_and_a_port() -> None:
    live = _service(
        [{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"name": "metrics", "port": 9090, "protocol": "TCP"}],
        labels={"tier": "fe", "app": "web"},
    )
    patch = json.loads(
        '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new"},"labels":{"tier":null}},'
        ' "spec":{"$setElementOrder/ports":[{"port":80}],"ports":[{"$patch":"delete","port":9090}]}}'
    )
    result = apply_strategic_merge_patch(live, patch, rules("Service"))
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 8080}]


def test_smp_kubectl_apply_changes_a_container_image_and_env() -> None:
    live = {
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {LAST_APPLIED: "old"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                }
            ],
            "restartPolicy": "Always",
        },
    }
    patch = json.loads(
        '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new"}},'
        ' "spec":{"$setElementOrder/containers":[{"name":"app"}],'
        ' "containers":[{"$setElementOrder/env":[{"name":"B"}],'
        ' "env":[{"name":"B","value":"2"},{"$patch":"delete","name":"A"}],'
        ' "image":"nginx:1.26","name":"app"}]}}'
    )
    result = apply_strategic_merge_patch(live, patch, rules("Pod"))
    assert result["spec"]["containers"] == [
        {
            "name": "app",
            "image": "nginx:1.26",
            "env": [{"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
        }
    ]
    assert result["spec"]["restartPolicy"] == "Always"
    assert live["spec"]["containers"][0]["image"] == "nginx:1.25"  # input untouched


def test_smp_ports_merge_key_depends_on_the_kind() -> None:
    assert list_rule(rules("Pod"), ("spec", "containers", "ports")).merge_key == "containerPort"  # type: ignore[union-attr]
    assert list_rule(rules("Service"), ("spec", "ports")).merge_key == "port"  # type: ignore[union-attr]
    pod = {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}}
    patch = {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}
    assert apply_strategic_merge_patch(pod, patch, rules("Pod"))["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "name": "http", "hostPort": 8080}
    ]
    # Keyed by "port" in a Service, so a containerPort-only item is an error there.
    with pytest.raises(PatchError, match="merge key 'port'"):
        apply_strategic_merge_patch({"spec": {"ports": []}}, {"spec": {"ports": [{"containerPort": 1}]}}, rules("Service"))


def test_smp_adds_new_container_and_merges_existing_by_name() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "x"}]}}
    patch = {"spec": {"containers": [{"name": "b", "image": "y"}, {"name": "a", "command": ["sh"]}]}}
    result = apply_strategic_merge_patch(pod, patch, rules("Pod"))
    assert result["spec"]["containers"] == [{"name": "a", "image": "x", "command": ["sh"]}, {"name": "b", "image": "y"}]


def test_smp_lists_without_merge_strategy_are_replaced() -> None:
    endpoints = {"subsets": [{"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 80}]}]}
    patch = {"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}
    assert apply_strategic_merge_patch(endpoints, patch, rules("Endpoints")) == patch

    policy = {"spec": {"ingress": [{"from": [{"podSelector": {}}]}], "policyTypes": ["Ingress"]}}
    assert apply_strategic_merge_patch(policy, {"spec": {"policyTypes": ["Egress"]}}, rules("NetworkPolicy")) == {
        "spec": {"ingress": [{"from": [{"podSelector": {}}]}], "policyTypes": ["Egress"]}
    }

    slice_ = {"endpoints": [{"addresses": ["1.1.1.1"]}], "ports": [{"port": 80}]}
    assert apply_strategic_merge_patch(slice_, {"ports": [{"port": 81}]}, rules("EndpointSlice"))["ports"] == [{"port": 81}]

    pod = {"spec": {"containers": [{"name": "a", "command": ["a", "b"], "args": ["1"]}]}}
    patch = {"spec": {"containers": [{"name": "a", "command": ["c"]}]}}
    assert apply_strategic_merge_patch(pod, patch, rules("Pod"))["spec"]["containers"][0] == {
        "name": "a",
        "command": ["c"],
        "args": ["1"],
    }


def test_smp_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    ns = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    assert apply_strategic_merge_patch(ns, {"metadata": {"finalizers": ["b", "c"]}}, rules("Namespace"))["metadata"][
        "finalizers"
    ] == ["a", "b", "c"]
    removed = apply_strategic_merge_patch(ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, rules("Namespace"))
    assert removed["metadata"]["finalizers"] == ["b"]
    emptied = apply_strategic_merge_patch(
        ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "b"]}}, rules("Namespace")
    )
    assert "finalizers" not in emptied["metadata"]
    ordered = apply_strategic_merge_patch(
        ns, {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}}, rules("Namespace")
    )
    assert ordered["metadata"]["finalizers"] == ["c", "b", "a"]


def test_smp_patch_replace_on_a_map_and_on_a_list() -> None:
    svc = {"spec": {"selector": {"app": "web", "tier": "fe"}, "ports": [{"port": 80}, {"port": 81}]}}
    result = apply_strategic_merge_patch(svc, {"spec": {"selector": {"$patch": "replace", "app": "api"}}}, rules("Service"))
    assert result["spec"]["selector"] == {"app": "api"}
    result = apply_strategic_merge_patch(
        svc, {"spec": {"ports": [{"$patch": "replace"}, {"port": 90, "name": "x"}]}}, rules("Service")
    )
    assert result["spec"]["ports"] == [{"port": 90, "name": "x"}]
    # $patch: replace on a single keyed element replaces just that element.
    pod = {"spec": {"containers": [{"name": "a", "image": "x", "command": ["c"]}, {"name": "b"}]}}
    result = apply_strategic_merge_patch(
        pod, {"spec": {"containers": [{"$patch": "replace", "name": "a", "image": "y"}]}}, rules("Pod")
    )
    assert result["spec"]["containers"] == [{"name": "a", "image": "y"}, {"name": "b"}]


def test_smp_patch_delete_on_a_map_removes_it() -> None:
    svc = {"spec": {"selector": {"app": "web"}, "type": "ClusterIP"}}
    result = apply_strategic_merge_patch(svc, {"spec": {"selector": {"$patch": "delete"}}}, rules("Service"))
    assert result == {"spec": {"type": "ClusterIP"}}
    assert apply_strategic_merge_patch(svc, {"$patch": "delete"}, rules("Service")) == {}


def test_smp_retain_keys_drops_unlisted_volume_source() -> None:
    pod = {"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}]}}
    patch = {
        "spec": {
            "volumes": [{"$retainKeys": ["name", "hostPath"], "name": "data", "hostPath": {"path": "/tmp"}}],
        }
    }
    result = apply_strategic_merge_patch(pod, patch, rules("Pod"))
    assert result["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/tmp"}},
        {"name": "other", "emptyDir": {}},
    ]
    with pytest.raises(PatchError, match=r"\$retainKeys"):
        apply_strategic_merge_patch(
            pod, {"spec": {"volumes": [{"$retainKeys": ["name"], "name": "data", "x": 1}]}}, rules("Pod")
        )


def test_smp_set_element_order_reorders_and_keeps_unmentioned_items_in_place() -> None:
    pod = {"spec": {"containers": [{"name": "a"}, {"name": "sidecar"}, {"name": "b"}]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}
    assert [c["name"] for c in apply_strategic_merge_patch(pod, patch, rules("Pod"))["spec"]["containers"]] == [
        "b",
        "sidecar",
        "a",
    ]


def test_smp_owner_references_merge_by_uid_and_other_metadata() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}], "labels": {"a": "1"}}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}], "labels": {"b": "2"}}}
    result = apply_strategic_merge_patch(obj, patch, rules("ConfigMap"))
    assert result["metadata"]["ownerReferences"] == [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]
    assert result["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_smp_service_account_secrets_and_conditions_merge() -> None:
    sa = {"secrets": [{"name": "t1"}]}
    assert apply_strategic_merge_patch(sa, {"secrets": [{"name": "t2"}]}, rules("ServiceAccount")) == {
        "secrets": [{"name": "t1"}, {"name": "t2"}]
    }
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert apply_strategic_merge_patch(pod, patch, rules("Pod"))["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_smp_into_missing_fields_still_applies_directives() -> None:
    result = apply_strategic_merge_patch(
        {}, {"spec": {"ports": [{"port": 80}, {"$patch": "delete", "port": 81}], "x": {"y": None}}}, rules("Service")
    )
    assert result == {"spec": {"ports": [{"port": 80}], "x": {}}}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"$patch": "explode"}, "unknown \\$patch directive"),
        ({"spec": {"ports": ["80"]}}, "merge key 'port'"),
        ({"metadata": {"finalizers": [{"a": 1}]}}, "list of scalars"),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "must be a list"),
        ({"spec": {"$setElementOrder/ports": "x"}}, "must be a list"),
    ],
)
def test_smp_errors(patch: dict, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_strategic_merge_patch({"spec": {"ports": [{"port": 1}]}}, patch, rules("Service"))


def test_smp_rejects_non_object_patch() -> None:
    with pytest.raises(PatchError, match="must be a JSON object"):
        apply_strategic_merge_patch({}, [], rules("Pod"))  # type: ignore[arg-type]


_plain_keys = st.text(alphabet="abc", max_size=3)
_plain_patch_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_plain_keys, children, max_size=3),
    max_leaves=12,
)


@given(
    target=st.dictionaries(st.text(max_size=3), _json_values, max_size=4),
    patch=st.dictionaries(_plain_keys, _plain_patch_values, max_size=4),
)
def test_smp_without_lists_or_directives_equals_merge_patch(target: dict, patch: dict) -> None:
    # For a kind with no keyed lists and a patch without "$" keys, SMP is a merge patch.
    assert apply_strategic_merge_patch(target, patch, rules("Event")) == apply_merge_patch(target, patch)


# ---------------------------------------------------------------------------------------------
# Server-side apply
# ---------------------------------------------------------------------------------------------


def test_ssa_creates_from_applied_when_nothing_is_live() -> None:
    applied = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    result = server_side_apply(None, applied, None, rules("Service"))
    assert result == applied
    assert result is not applied


def test_ssa_drops_fields_the_manager_no_longer_applies_and_keeps_others() -> None:
    previous = {
        "metadata": {"name": "web", "labels": {"tier": "fe", "app": "web"}},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 9090, "name": "metrics"}]},
    }
    live = {
        "metadata": {"name": "web", "labels": {"tier": "fe", "app": "web", "owner": "someone-else"}, "uid": "u1"},
        "spec": {
            "clusterIP": "127.0.100.1",
            "ports": [
                {"port": 80, "protocol": "TCP", "targetPort": 8080},
                {"port": 9090, "protocol": "TCP", "name": "metrics"},
            ],
        },
    }
    applied = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"ports": [{"port": 80, "targetPort": 8081}]},
    }
    result = server_side_apply(live, applied, previous, rules("Service"))
    assert result["metadata"] == {"name": "web", "labels": {"app": "web", "owner": "someone-else"}, "uid": "u1"}
    assert result["spec"] == {
        "clusterIP": "127.0.100.1",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8081}],
    }
    assert live["spec"]["ports"][0]["targetPort"] == 8080  # input untouched


def test_ssa_service_ports_are_keyed_by_port_and_protocol() -> None:
    live = {"spec": {"ports": [{"port": 53, "protocol": "TCP", "name": "dns-tcp"}]}}
    applied = {"spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}, {"port": 53, "name": "dns-tcp2"}]}}
    result = server_side_apply(live, applied, None, rules("Service"))
    assert result["spec"]["ports"] == [
        {"port": 53, "protocol": "UDP", "name": "dns"},
        {"port": 53, "protocol": "TCP", "name": "dns-tcp2"},
    ]


def test_ssa_containers_and_env_merge_by_name_and_removed_env_goes() -> None:
    previous = {"spec": {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]}]}}
    live = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "a:1",
                    "env": [{"name": "A", "value": "1"}],
                    "imagePullPolicy": "IfNotPresent",
                },
                {"name": "injected", "image": "proxy"},
            ]
        }
    }
    applied = {"spec": {"containers": [{"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}]}]}}
    result = server_side_apply(live, applied, previous, rules("Pod"))
    assert result["spec"]["containers"] == [
        {"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}], "imagePullPolicy": "IfNotPresent"},
        {"name": "injected", "image": "proxy"},
    ]


def test_ssa_atomic_lists_are_replaced_and_nulls_remove() -> None:
    live = {"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}], "metadata": {"labels": {"a": "1"}}}
    applied = {"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}], "metadata": {"labels": {"a": None}}}
    assert server_side_apply(live, applied, None, rules("Endpoints")) == {
        "subsets": [{"addresses": [{"ip": "2.2.2.2"}]}],
        "metadata": {"labels": {}},
    }


def test_ssa_finalizers_previously_applied_are_removed_others_kept() -> None:
    live = {"metadata": {"finalizers": ["mine", "theirs"]}}
    result = server_side_apply(live, {"metadata": {"finalizers": []}}, {"metadata": {"finalizers": ["mine"]}}, rules("Pod"))
    assert result["metadata"]["finalizers"] == ["theirs"]


def test_ssa_reapplying_the_same_config_is_a_no_op() -> None:
    applied = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}
    live = server_side_apply(None, applied, None, rules("Service"))
    live["spec"]["ports"][0]["protocol"] = "TCP"  # what defaulting adds
    assert server_side_apply(live, applied, applied, rules("Service")) == live


def test_ssa_rejects_non_object_config() -> None:
    with pytest.raises(PatchError):
        server_side_apply({}, [], None, rules("Pod"))  # type: ignore[arg-type]


def test_find_conflicts_reports_fields_set_differently_by_other_managers() -> None:
    applied = {
        "metadata": {"labels": {"app": "web", "tier": "fe"}},
        "spec": {"ports": [{"port": 80, "targetPort": 8081}], "selector": {"app": "web"}, "clusterIPs": ["a"]},
    }
    others = {
        "kubectl-client-side-apply": {
            "metadata": {"labels": {"app": "web", "tier": "be"}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"port": 90, "targetPort": 1}]},
        },
        "controller": {"spec": {"selector": {"app": "web"}, "clusterIPs": ["b"]}},
    }
    assert find_conflicts(applied, others, rules("Service")) == [
        ("controller", ".spec.clusterIPs"),
        ("kubectl-client-side-apply", ".metadata.labels.tier"),
        ("kubectl-client-side-apply", '.spec.ports[port=80,protocol="TCP"].targetPort'),
    ]
    assert find_conflicts(applied, {"same": applied}, rules("Service")) == []
    assert find_conflicts(applied, {}, rules("Service")) == []


def test_ssa_stopping_a_map_removes_only_what_the_manager_set() -> None:
    previous = {"metadata": {"labels": {"a": "1"}}}
    live = {"metadata": {"name": "x", "labels": {"a": "1", "b": "from someone else"}}}
    result = server_side_apply(live, {"metadata": {"name": "x"}}, previous, rules("Pod"))
    assert result["metadata"] == {"name": "x", "labels": {"b": "from someone else"}}
    # and when nothing else is left, the map goes too
    alone = server_side_apply({"metadata": {"name": "x", "labels": {"a": "1"}}}, {"metadata": {"name": "x"}}, previous, rules("Pod"))
    assert "labels" not in alone["metadata"]


def test_ssa_stopping_a_keyed_list_keeps_other_managers_items() -> None:
    previous = {"spec": {"ports": [{"port": 80}]}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 90, "protocol": "TCP"}], "type": "ClusterIP"}}
    result = server_side_apply(live, {"spec": {"type": "ClusterIP"}}, previous, rules("Service"))
    assert result["spec"]["ports"] == [{"port": 90, "protocol": "TCP"}]
