"""CustomResourceDefinitions and custom resources without a server: the schema functions (pruning,
defaulting, validation) as tables, the definition's validation errors, and the write path of a
registered custom resource (a real Store, Registry and CrdController, no event loop: each write is
delivered before it returns)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from api import discovery, openapi, tables
from emulator import errors
from emulator.controllers.crd import CrdController
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import (
    BY_KEY,
    BY_KIND,
    BY_PATH,
    CUSTOM_RESOURCE_DEFINITIONS,
    KINDS,
    OTHER_VERSIONS,
    RESOURCE_TYPES,
    generation,
    register,
    unregister,
)
from emulator.kinds.custom import apply_defaults, json_path, prune, served_kinds, validate_value, version_priority
from emulator.kinds.customresourcedefinition import CLEANUP_FINALIZER, validate_crd, validate_schema
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Cluster, Registry, WriteOptions
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

CRDS = CUSTOM_RESOURCE_DEFINITIONS

SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^\S+( \S+){4}$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["Fast", "Slow"]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "minLength": 2}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {"spec": {"type": "object"}}},
                "options": {"type": "object", "default": {}, "properties": {"debug": {"type": "boolean", "default": False}}},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}},
    },
}


def crontab_crd(**changes: Any) -> dict[str, Any]:
    crd: dict[str, Any] = {
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": copy.deepcopy(SPEC_SCHEMA)},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                                         "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                ],
            }],
        },
    }  # fmt: skip
    crd["spec"].update(changes)
    return crd


# -- pruning -------------------------------------------------------------------------------------------

PRUNE_CASES = [
    ({"spec": {"cronSpec": "x", "bogus": 1}}, {"spec": {"cronSpec": "x"}}, ["spec.bogus"]),
    ({"spec": {"extra": {"anything": {"deep": [1]}}}}, {"spec": {"extra": {"anything": {"deep": [1]}}}}, []),
    ({"spec": {"labels": {"a": "b"}}}, {"spec": {"labels": {"a": "b"}}}, []),
    ({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "junk": 1}}},
     {"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}}, ["spec.template.junk"]),
    ({"top": 1, "status": {"replicas": 1, "why": "x"}}, {"status": {"replicas": 1}}, ["top", "status.why"]),
]  # fmt: skip


@pytest.mark.parametrize(("value", "kept", "unknown"), PRUNE_CASES)
def test_prune(value: dict[str, Any], kept: dict[str, Any], unknown: list[str]) -> None:
    found: list[str] = []
    assert prune(SPEC_SCHEMA, value, "", found) == kept
    assert found == unknown


def test_defaults_fill_absent_fields_at_every_depth() -> None:
    obj: dict[str, Any] = {"spec": {"cronSpec": "* * * * *"}}
    apply_defaults(SPEC_SCHEMA, obj)
    assert obj["spec"] == {"cronSpec": "* * * * *", "replicas": 1, "options": {"debug": False}}
    kept: dict[str, Any] = {"spec": {"replicas": 4, "options": {"debug": True}}}
    apply_defaults(SPEC_SCHEMA, kept)
    assert kept["spec"] == {"replicas": 4, "options": {"debug": True}}


# -- validation ----------------------------------------------------------------------------------------

VALID = {"spec": {"cronSpec": "* * * * *"}}
VALIDATE_CASES = [
    ({"spec": {}}, "spec.cronSpec: Required value"),
    ({"spec": {"cronSpec": 5}}, 'spec.cronSpec: Invalid value: "integer": spec.cronSpec in body must be of type string: "integer"'),
    ({"spec": {"cronSpec": "nope"}}, 'spec.cronSpec: Invalid value: "nope": spec.cronSpec in body should match \'^\\S+( \\S+){4}$\''),
    ({"spec": {**VALID["spec"], "replicas": 0}}, "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
    ({"spec": {**VALID["spec"], "replicas": 11}}, "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
    ({"spec": {**VALID["spec"], "replicas": True}}, 'spec.replicas: Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"'),
    ({"spec": {**VALID["spec"], "mode": "Medium"}}, 'spec.mode: Unsupported value: "Medium": supported values: "Fast", "Slow"'),
    ({"spec": {**VALID["spec"], "port": 1.5}}, 'spec.port: Invalid value: "number": spec.port in body must be of type integer or string: "number"'),
    ({"spec": {**VALID["spec"], "tags": ["ab", "cd", "ef"]}}, "spec.tags: Too many: 3: must have at most 2 items"),
    ({"spec": {**VALID["spec"], "tags": ["a"]}}, 'spec.tags[0]: Invalid value: "a": spec.tags[0] in body should be at least 2 chars long'),
    ({"spec": {**VALID["spec"], "labels": {"a": 1}}}, 'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"'),
    ({"spec": {**VALID["spec"], "template": {"spec": {}}}}, "spec.template.apiVersion: Required value"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "message"), VALIDATE_CASES)
def test_validate_value(value: dict[str, Any], message: str) -> None:
    described = [e.describe() for e in validate_value(SPEC_SCHEMA, value, "")]
    assert message in described


def test_valid_values_have_no_errors() -> None:
    value = {"spec": {"cronSpec": "* * * * *", "port": "http", "tags": ["ab"], "extra": {"x": None}, "labels": {"a": "b"},
                      "template": {"apiVersion": "v1", "kind": "Pod"}}}  # fmt: skip
    assert validate_value(SPEC_SCHEMA, value, "") == []
    assert validate_value(SPEC_SCHEMA, {"spec": {"cronSpec": "* * * * *", "port": 80}}, "") == []


def test_json_paths() -> None:
    obj = {"status": {"conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]}}
    assert json_path(obj, ".status.conditions[1].type") == "Ready"
    assert json_path(obj, '.status.conditions[?(@.type=="Ready")].status') == "True"
    assert json_path(obj, ".status.missing.deeper") is None


def test_version_priority_puts_the_preferred_version_first() -> None:
    names = ["v1alpha1", "v1", "foo", "v2beta1", "v1beta2", "v2"]
    assert sorted(names, key=version_priority) == ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]


# -- the definition's own validation ---------------------------------------------------------------------

CRD_ERRORS = [
    ({"group": "example"}, "spec.group: Invalid value: \"example\": should be a domain with at least one dot"),
    ({"scope": "Galaxy"}, 'spec.scope: Unsupported value: "Galaxy": supported values: "Cluster", "Namespaced"'),
    ({"names": {"plural": "crontabs", "kind": "Cron_Tab"}}, "spec.names.kind: Invalid value"),
    ({"names": {"plural": "CronTabs", "kind": "CronTab"}}, "spec.names.plural: Invalid value"),
    ({"versions": []}, "spec.versions: Required value"),
    ({"conversion": {"strategy": "Webhook"}}, "webhook conversion is not supported by the emulator"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), CRD_ERRORS)
def test_definition_errors(change: dict[str, Any], message: str) -> None:
    described = " | ".join(e.describe() for e in validate_crd(crontab_crd(**change)))
    assert message in described


def test_exactly_one_storage_version() -> None:
    crd = crontab_crd()
    second = {**crd["spec"]["versions"][0], "name": "v2"}
    crd["spec"]["versions"].append(second)
    described = [e.describe() for e in validate_crd(crd)]
    assert any("must have exactly one version marked as storage version" in d for d in described)
    second["storage"] = False
    assert validate_crd(crd) == []


def test_a_spec_validated_again_gives_the_same_answer() -> None:
    """What a definition's versions and schemas get is remembered by the spec's JSON (its controller's
    status writes carry the same spec): the same problems again, in a list of its own each time."""
    crd = crontab_crd()
    crd["spec"]["versions"].append({**crd["spec"]["versions"][0], "name": "v2"})  # two storage versions
    first = validate_crd(crd)
    assert any("exactly one version marked as storage version" in e.describe() for e in first)
    first.clear()
    assert [e.describe() for e in validate_crd(copy.deepcopy(crd))] == [e.describe() for e in validate_crd(crd)] != []


def test_the_name_is_plural_dot_group() -> None:
    crd = crontab_crd()
    crd["metadata"]["name"] = "other.stable.example.com"
    assert ['metadata.name: Invalid value: "other.stable.example.com": must be spec.names.plural+"."+spec.group'] == [
        e.describe() for e in validate_crd(crd)
    ]


STRUCTURAL = [
    ({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}},
     "x.properties[spec].type: Required value: must not be empty for specified object fields"),
    ({"type": "array", "items": {"type": "string"}}, 'x.type: Invalid value: "array": must be object at the root'),
    ({"properties": {}}, "x.type: Required value: must not be empty at the root"),
    ({"type": "object", "properties": {"a": {"type": "array", "items": {}}}}, "x.properties[a].items.type: Required value: must not be empty for specified array items"),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}},
     "x.properties[metadata]: Forbidden: must not specify anything other than name and generateName"),
    ({"type": "object", "properties": {"a": {"type": "thing"}}}, 'x.properties[a].type: Unsupported value: "thing"'),
    ({"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": True}}},
     'x.properties[a].type: Invalid value: "string": must be empty if x-kubernetes-int-or-string is true'),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "message"), STRUCTURAL)
def test_structural_schema_rules(schema: dict[str, Any], message: str) -> None:
    described = " | ".join(e.describe() for e in validate_schema(schema, "x"))
    assert message in described


def test_the_documentation_schema_is_structural() -> None:
    assert validate_schema(SPEC_SCHEMA, "x") == []
    assert validate_crd(crontab_crd()) == []


# -- registered and served -------------------------------------------------------------------------------


@pytest.fixture
def world() -> Iterator[tuple[Registry, CrdController]]:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    namespaces = NamespaceController(registry)
    namespaces.bootstrap("127.0.0.1", 6443)
    controller = CrdController(registry)
    store.subscribe(controller.apply)
    store.subscribe(namespaces.apply)
    yield registry, controller
    for name in list(controller._served):
        controller._stop_serving(name)
    assert len(RESOURCE_TYPES) == len(KINDS) + len(OTHER_VERSIONS)


def test_a_definition_is_established_and_served(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    before = generation()
    registry.create(CRDS, "", crontab_crd())
    crd = registry.get(CRDS, "", "crontabs.stable.example.com")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]} == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "CronTab" and crd["status"]["storedVersions"] == ["v1"]
    assert crd["spec"]["names"]["listKind"] == "CronTabList" and crd["spec"]["conversion"] == {"strategy": "None"}
    assert generation() > before
    rt = BY_PATH[("stable.example.com", "v1", "crontabs")]
    assert rt.short_names == ("ct",) and rt.namespaced and {s.name for s in rt.subresources} == {"status", "scale"}
    resources = discovery.api_resource_list("stable.example.com", "v1")
    assert resources is not None and [r["name"] for r in resources["resources"]] == ["crontabs", "crontabs/status", "crontabs/scale"]
    assert [c["name"] for c in tables.column_definitions(rt)] == ["Name", "Spec", "Replicas"]
    doc = openapi.openapi_v3_doc("apis/stable.example.com/v1")
    assert doc is not None and "com.example.stable.v1.CronTab" in doc["components"]["schemas"]
    patch = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
    assert STRATEGIC_MERGE_PATCH not in patch["requestBody"]["content"]
    assert "com.example.stable.v1.CronTab" in openapi.openapi_v2()["definitions"]
    openapi.v2_protobuf()  # every keyword left in v2 can be encoded


def test_custom_resource_write_path(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    registry.create(CRDS, "", crontab_crd())
    rt = BY_PATH[("stable.example.com", "v1", "crontabs")]
    body = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c"},
            "spec": {"cronSpec": "* * * * *", "bogus": 1}, "status": {"replicas": 9}}  # fmt: skip
    with pytest.raises(errors.StatusError) as refused:
        registry.create(rt, "default", body, WriteOptions(field_validation="Strict"))
    assert refused.value.code == 400 and 'unknown field "spec.bogus"' in refused.value.message
    result = registry.create(rt, "default", body)
    assert result.warnings == ['unknown field "spec.bogus"']
    obj = result.obj
    assert obj["spec"] == {"cronSpec": "* * * * *", "replicas": 1, "options": {"debug": False}}
    assert "status" not in obj and obj["metadata"]["generation"] == 1
    with pytest.raises(errors.StatusError) as invalid:
        registry.create(rt, "default", {**body, "metadata": {"name": "d"}, "spec": {"cronSpec": "x", "replicas": 0}})
    assert invalid.value.code == 422 and invalid.value.message.startswith('CronTab "d" is invalid: [')
    # status only through /status; the main resource keeps it
    registry.update(rt, "default", "c", {**obj, "status": {"replicas": 2, "selector": "a=b"}}, subresource="status")
    updated = registry.patch(rt, "default", "c", MERGE_PATCH, {"spec": {"replicas": 3}, "status": {"replicas": 5}}).obj
    assert updated["status"] == {"replicas": 2, "selector": "a=b"} and updated["metadata"]["generation"] == 2
    with pytest.raises(errors.StatusError) as smp:
        registry.patch(rt, "default", "c", STRATEGIC_MERGE_PATCH, {"spec": {"replicas": 4}})
    assert smp.value.code == 415
    assert registry.get_scale(rt, "default", "c")["spec"] == {"replicas": 3}
    assert registry.get_scale(rt, "default", "c")["status"] == {"replicas": 2, "selector": "a=b"}
    registry.update(rt, "default", "c", {"spec": {"replicas": 6}}, subresource="scale")
    assert registry.get(rt, "default", "c")["spec"]["replicas"] == 6
    assert tables.table(rt, [registry.get(rt, "default", "c")], "1")["rows"][0]["cells"][:3] == ["c", "* * * * *", 6]


def test_deleting_the_definition_deletes_its_resources_then_its_routes(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    registry.create(CRDS, "", crontab_crd())
    rt = BY_PATH[("stable.example.com", "v1", "crontabs")]
    registry.create(rt, "default", {"metadata": {"name": "c"}, "spec": {"cronSpec": "* * * * *"}})
    registry.delete(CRDS, "", "crontabs.stable.example.com")
    with pytest.raises(errors.StatusError):
        registry.get(CRDS, "", "crontabs.stable.example.com")
    assert ("stable.example.com", "v1", "crontabs") not in BY_PATH
    assert "crontabs.stable.example.com" not in BY_KEY
    assert list(registry.store.entries(rt.key)) == []


def test_deletion_marks_with_the_cleanup_finalizer() -> None:
    from emulator.kinds.customresourcedefinition import CustomResourceDefinitionStrategy

    crd = crontab_crd()
    CustomResourceDefinitionStrategy.prepare_delete(None, crd)  # type: ignore[arg-type]
    assert crd["metadata"]["finalizers"] == [CLEANUP_FINALIZER]


def test_multi_version_answers_in_the_version_asked_for(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    crd = crontab_crd(scope="Cluster")
    v1 = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [{**v1, "name": "v1beta1", "storage": False}, v1]
    registry.create(CRDS, "", crd)
    assert [k.resource.version for k, _ in served_kinds(registry.get(CRDS, "", "crontabs.stable.example.com"))] == ["v1", "v1beta1"]
    beta = BY_PATH[("stable.example.com", "v1beta1", "crontabs")]
    stable = BY_PATH[("stable.example.com", "v1", "crontabs")]
    created = registry.create(beta, "", {"apiVersion": "stable.example.com/v1beta1", "metadata": {"name": "c"}, "spec": {"cronSpec": "* * * * *"}})
    assert created.obj["apiVersion"] == "stable.example.com/v1beta1"
    assert registry.get(stable, "", "c")["apiVersion"] == "stable.example.com/v1"
    assert registry.store.get(stable.key, "", "c")["apiVersion"] == "stable.example.com/v1"  # type: ignore[index]
    assert discovery.api_group("stable.example.com")["preferredVersion"]["version"] == "v1"  # type: ignore[index]


def test_a_kind_taken_in_the_group_is_not_accepted(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    registry.create(CRDS, "", crontab_crd())
    other = crontab_crd()
    other["metadata"]["name"] = "crontabz.stable.example.com"
    other["spec"]["names"] = {"plural": "crontabz", "kind": "CronTab"}
    registry.create(CRDS, "", other)
    stored = registry.get(CRDS, "", "crontabz.stable.example.com")
    accepted = {c["type"]: (c["status"], c["reason"]) for c in stored["status"]["conditions"]}
    assert accepted == {"NamesAccepted": ("False", "KindConflict"), "Established": ("False", "NotAccepted")}
    assert ("stable.example.com", "v1", "crontabz") not in BY_PATH


def test_a_short_name_is_free_again_once_the_definition_that_took_it_lets_it_go(world: tuple[Registry, CrdController]) -> None:
    """The controller reads the names other definitions took once per version of theirs: a change to one
    (its acceptedNames, written by the controller) is seen by the next definition of the group."""
    registry, _ = world
    registry.create(CRDS, "", crontab_crd())

    def definition(plural: str, kind: str) -> dict[str, Any]:
        crd = crontab_crd()
        crd["metadata"]["name"] = f"{plural}.stable.example.com"
        crd["spec"]["names"] = {"plural": plural, "kind": kind, "shortNames": ["ct"]}
        return crd

    def accepted(name: str) -> tuple[str, str]:
        conditions = {c["type"]: c for c in registry.get(CRDS, "", name)["status"]["conditions"]}
        return conditions["NamesAccepted"]["status"], conditions["NamesAccepted"]["reason"]

    registry.create(CRDS, "", definition("timers", "Timer"))
    assert accepted("timers.stable.example.com") == ("False", "ShortNamesConflict")
    crontabs = registry.get(CRDS, "", "crontabs.stable.example.com")
    crontabs["spec"]["names"]["shortNames"] = ["cron"]
    registry.update(CRDS, "", "crontabs.stable.example.com", crontabs)
    assert registry.get(CRDS, "", "crontabs.stable.example.com")["status"]["acceptedNames"]["shortNames"] == ["cron"]
    registry.create(CRDS, "", definition("alarms", "Alarm"))
    assert accepted("alarms.stable.example.com") == ("True", "NoConflicts")


def test_stored_definitions_are_served_at_start() -> None:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(registry).bootstrap("127.0.0.1", 6443)
    registry.create(CRDS, "", crontab_crd())  # no controller: stored, not served
    assert ("stable.example.com", "v1", "crontabs") not in BY_PATH
    controller = CrdController(registry)
    controller.start()
    try:
        assert ("stable.example.com", "v1", "crontabs") in BY_PATH
    finally:
        controller._stop_serving("crontabs.stable.example.com")


def test_an_updated_definition_is_served_as_updated(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    registry.create(CRDS, "", crontab_crd())
    crd = registry.get(CRDS, "", "crontabs.stable.example.com")
    v1 = crd["spec"]["versions"][0]
    v1["additionalPrinterColumns"] = [{"name": "Schedule", "type": "string", "jsonPath": ".spec.cronSpec"}]
    crd["spec"]["versions"] = [{**v1, "storage": False}, {**v1, "name": "v2", "storage": True}]
    registry.update(CRDS, "", "crontabs.stable.example.com", crd)
    stored = registry.get(CRDS, "", "crontabs.stable.example.com")
    assert stored["status"]["storedVersions"] == ["v1", "v2"] and stored["metadata"]["generation"] == 2
    assert [c["name"] for c in tables.column_definitions(BY_PATH[("stable.example.com", "v1", "crontabs")])] == ["Name", "Schedule"]
    assert BY_KEY["crontabs.stable.example.com"].resource.version == "v2"
    crd = registry.get(CRDS, "", "crontabs.stable.example.com")
    crd["spec"]["versions"][0]["served"] = False
    registry.update(CRDS, "", "crontabs.stable.example.com", crd)
    assert ("stable.example.com", "v1", "crontabs") not in BY_PATH and ("stable.example.com", "v2", "crontabs") in BY_PATH
    crd = registry.get(CRDS, "", "crontabs.stable.example.com")
    with pytest.raises(errors.StatusError) as immutable:
        registry.update(CRDS, "", "crontabs.stable.example.com", {**crd, "spec": {**crd["spec"], "scope": "Cluster"}})
    assert "spec.scope" in immutable.value.message


# -- patterns: RE2 as the API server (Go's regexp) ---------------------------------------------------------


def test_a_pattern_is_matched_in_linear_time() -> None:
    import time

    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}
    started = time.monotonic()
    problems = validate_value(schema, {"name": "a" * 27 + "!"}, "spec")  # (Python's re: seconds; more a's: hours)
    assert time.monotonic() - started < 0.2
    assert [p.describe() for p in problems] == [f'spec.name: Invalid value: "{"a" * 27}!": spec.name in body should match \'^(a+)+$\'']


def test_a_pattern_has_go_syntax() -> None:
    schema = {"type": "object", "properties": {"word": {"type": "string", "pattern": r"^\p{L}+$"}}}
    assert validate_value(schema, {"word": "héllo"}, "spec") == []
    assert [p.describe() for p in validate_value(schema, {"word": "abc1"}, "spec")] == [
        "spec.word: Invalid value: \"abc1\": spec.word in body should match '^\\p{L}+$'"
    ]


INVALID_PATTERNS = [
    ({"type": "object", "properties": {"foo": {"type": "string", "pattern": "+"}}},
     "x.properties[foo].pattern: Invalid value: \"+\": must be a valid regular expression, but isn't: "
     "error parsing regexp: missing argument to repetition operator: `+`"),
    ({"type": "object", "properties": {"foo": {"type": "array", "items": {"type": "string", "pattern": "(a"}}}},
     "x.properties[foo].items.pattern: Invalid value: \"(a\": must be a valid regular expression, but isn't: "
     "error parsing regexp: missing closing ): `(a`"),
    ({"type": "object", "properties": {"foo": {"type": "string"}}, "anyOf": [{"properties": {"foo": {"pattern": "(?=a)"}}}]},
     "x.anyOf[0].properties[foo].pattern: Invalid value: \"(?=a)\": must be a valid regular expression, but isn't: "
     "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ({"type": "object", "properties": {"foo": {"type": "string", "pattern": "a**"}}},
     "error parsing regexp: invalid nested repetition operator: `**`"),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "message"), INVALID_PATTERNS)
def test_a_pattern_go_cannot_compile_is_refused(schema: dict[str, Any], message: str) -> None:
    described = [e.describe() for e in validate_schema(schema, "x")]
    assert len(described) == 1 and message in described[0]


# -- null: kept where nullable, pruned (or defaulted) elsewhere ---------------------------------------------

NULLABLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "maybe": {"type": "string", "nullable": True},
        "never": {"type": "string"},
        "dflt": {"type": "string", "default": "d"},
        "nullableDefault": {"type": "string", "nullable": True, "default": "d"},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "list": {"type": "array", "items": {"type": "string"}},
    },
}


def test_nulls_are_kept_only_where_nullable() -> None:
    value = {"maybe": None, "never": None, "dflt": None, "nullableDefault": None, "map": {"a": None}, "list": [None]}
    unknown: list[str] = []
    pruned = prune(NULLABLE_SCHEMA, value, "spec", unknown)
    assert pruned == {"maybe": None, "dflt": None, "nullableDefault": None, "map": {}, "list": [None]} and unknown == []
    apply_defaults(NULLABLE_SCHEMA, pruned)
    assert pruned == {"maybe": None, "dflt": "d", "nullableDefault": None, "map": {}, "list": [None]}
    # a null list item is not pruned: it is an error, as in the API server
    assert [p.describe() for p in validate_value(NULLABLE_SCHEMA, pruned, "spec")] == [
        'spec.list[0]: Invalid value: "null": spec.list[0] in body must be of type string: "null"'
    ]


def test_a_nullable_null_is_stored(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    crd = crontab_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].update(
        {k: v for k, v in NULLABLE_SCHEMA["properties"].items() if k in ("maybe", "never", "dflt")}
    )
    registry.create(CRDS, "", crd)
    rt = BY_PATH[("stable.example.com", "v1", "crontabs")]
    body = {"metadata": {"name": "c"}, "spec": {"cronSpec": "* * * * *", "maybe": None, "never": None, "dflt": None}}
    created = registry.create(rt, "default", body).obj
    assert created["spec"]["maybe"] is None and "never" not in created["spec"] and created["spec"]["dflt"] == "d"
    assert registry.store.get(rt.key, "default", "c")["spec"]["maybe"] is None  # type: ignore[index]
    updated = registry.update(rt, "default", "c", {**created, "spec": {**created["spec"], "never": None, "dflt": None}}).obj
    assert "maybe" in updated["spec"] and "never" not in updated["spec"] and updated["spec"]["dflt"] == "d"


# -- protected groups and built-in resources ----------------------------------------------------------------

APPROVAL = "api-approved.kubernetes.io"


def ingress_crd(
    plural: str = "fakeingresses", approval: str | None = "https://github.com/kubernetes/kubernetes/pull/1", kind: str = "Ingress"
) -> dict[str, Any]:
    """A definition in networking.k8s.io (a protected group, with built-in resources)."""
    crd = crontab_crd(group="networking.k8s.io", names={"plural": plural, "kind": kind})
    crd["metadata"] = {"name": f"{plural}.networking.k8s.io", **({"annotations": {APPROVAL: approval}} if approval is not None else {})}
    return crd


APPROVALS = [
    (None, 'metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation '
           '"api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111'),
    ("bad value", 'metadata.annotations[api-approved.kubernetes.io]: Invalid value: "bad value": protected groups must have approval '
                  'annotation "api-approved.kubernetes.io" with either a URL or a reason starting with "unapproved", '
                  "see https://github.com/kubernetes/enhancements/pull/1111"),
    ("unapproved, experimental", None),
    ("https://github.com/kubernetes/kubernetes/pull/79724", None),
]  # fmt: skip


@pytest.mark.parametrize(("approval", "message"), APPROVALS)
def test_protected_groups_need_the_approval_annotation(approval: str | None, message: str | None) -> None:
    assert [e.describe() for e in validate_crd(ingress_crd(approval=approval))] == ([message] if message else [])
    other = ingress_crd(approval=approval)
    other["spec"]["group"] = "example.com"
    other["metadata"]["name"] = "fakeingresses.example.com"
    assert validate_crd(other) == []


def test_the_approval_condition_and_unchanged_approval_on_update(world: tuple[Registry, CrdController]) -> None:
    registry, _ = world
    with pytest.raises(errors.StatusError) as refused:
        registry.create(CRDS, "", ingress_crd("widgets", approval=None, kind="Widget"))
    assert refused.value.code == 422 and "protected groups must have approval annotation" in refused.value.message
    registry.create(CRDS, "", ingress_crd("widgets", approval="unapproved, testing", kind="Widget"))
    stored = registry.get(CRDS, "", "widgets.networking.k8s.io")
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in stored["status"]["conditions"]}
    assert conditions["KubernetesAPIApprovalPolicyConformant"] == ("False", "UnapprovedAnnotation", 'not approved: "unapproved, testing"')
    assert conditions["Established"][0] == "True"
    stored["metadata"]["annotations"][APPROVAL] = "https://example.com/approved"
    registry.update(CRDS, "", "widgets.networking.k8s.io", stored)
    approved = {c["type"]: (c["status"], c["message"]) for c in registry.get(CRDS, "", "widgets.networking.k8s.io")["status"]["conditions"]}
    assert approved["KubernetesAPIApprovalPolicyConformant"] == ("True", "approved in https://example.com/approved")
    stored = registry.get(CRDS, "", "widgets.networking.k8s.io")
    del stored["metadata"]["annotations"][APPROVAL]
    with pytest.raises(errors.StatusError):
        registry.update(CRDS, "", "widgets.networking.k8s.io", stored)
    # a definition stored without the annotation (before it was required) still takes updates that leave it alone
    registry.store.update(CRDS.key, "", "widgets.networking.k8s.io", stored)
    world[1].sync("widgets.networking.k8s.io")
    legacy = registry.get(CRDS, "", "widgets.networking.k8s.io")
    assert {c["type"]: c["reason"] for c in legacy["status"]["conditions"]}["KubernetesAPIApprovalPolicyConformant"] == "MissingAnnotation"
    legacy["metadata"]["labels"] = {"a": "b"}
    registry.update(CRDS, "", "widgets.networking.k8s.io", legacy)


@pytest.mark.parametrize(("plural", "reason"), [("fakeingresses", "SingularConflict"), ("ingresses", "PluralConflict")])
def test_a_definition_never_takes_over_a_built_in_resource(world: tuple[Registry, CrdController], plural: str, reason: str) -> None:
    registry, _ = world
    ingresses = BY_PATH[("networking.k8s.io", "v1", "ingresses")]
    before = (dict(BY_PATH), dict(BY_KIND), dict(BY_KEY))
    registry.create(ingresses, "default", {"metadata": {"name": "real"}, "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}})
    registry.create(CRDS, "", ingress_crd(plural))
    stored = registry.get(CRDS, "", f"{plural}.networking.k8s.io")
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in stored["status"]["conditions"]}
    assert conditions["NamesAccepted"][:2] == ("False", reason)
    assert "is already in use by the built-in resource ingresses.networking.k8s.io" in conditions["NamesAccepted"][2]
    assert conditions["Established"][0] == "False"
    assert (dict(BY_PATH), dict(BY_KIND), dict(BY_KEY)) == before
    registry.create(ingresses, "default", {"metadata": {"name": "second"}, "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}})
    registry.delete(CRDS, "", f"{plural}.networking.k8s.io")
    with pytest.raises(errors.StatusError):
        registry.get(CRDS, "", f"{plural}.networking.k8s.io")
    assert sorted(name for _, name, _, _ in registry.store.entries(ingresses.key)) == ["real", "second"]
    assert (dict(BY_PATH), dict(BY_KIND), dict(BY_KEY)) == before


def test_register_and_unregister_leave_built_in_kinds_alone() -> None:
    crd = ingress_crd()
    kind, _ = served_kinds(crd)[0]
    before = (dict(BY_PATH), dict(BY_KIND), dict(BY_KEY), list(RESOURCE_TYPES))
    with pytest.raises(ValueError, match="built-in kind"):
        register(kind)
    same_key, _ = served_kinds(ingress_crd("ingresses"))[0]
    with pytest.raises(ValueError, match="built-in resource"):
        register(same_key)
    unregister("ingresses.networking.k8s.io")
    assert (dict(BY_PATH), dict(BY_KIND), dict(BY_KEY), list(RESOURCE_TYPES)) == before
