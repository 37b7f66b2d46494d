"""APIService (apiregistration.k8s.io/v1) on the write path: defaults, the status the emulator reports,
kube-aggregator's validation (messages and field paths), the `kubectl get apiservices` columns; and the
shape of a Status error (Go's field order, which clients such as the Python client's utils echo verbatim)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from api.http import status_response
from api.tables import table
from emulator import errors
from emulator.kinds import BY_KIND
from emulator.kinds.apiservice import API_SERVICES
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import MERGE_PATCH, Cluster, Registry, WriteOptions
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

STRICT = WriteOptions(field_validation="Strict")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def registry() -> Registry:
    store = Store(MemoryBackend())
    return Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099"), node_address="127.0.0.9"))


def api_service(name: str = "v1alpha1.wardle.k8s.io", **spec: Any) -> dict[str, Any]:
    base = {"group": "wardle.k8s.io", "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15}
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name}, "spec": {**base, **spec}}


def refused(call: Callable[[], object]) -> errors.StatusError:
    with pytest.raises(errors.StatusError) as caught:
        call()
    return caught.value


def causes(error: errors.StatusError) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in error.details.get("causes", [])]


def cells(obj: dict[str, Any]) -> dict[str, Any]:
    doc = table(API_SERVICES, [obj], "1", now=NOW)
    return {c["name"]: cell for c, cell in zip(doc["columnDefinitions"], doc["rows"][0]["cells"], strict=True)}


def test_the_kind_is_served_cluster_wide_with_a_status_subresource() -> None:
    assert BY_KIND[("apiregistration.k8s.io/v1", "APIService")] is API_SERVICES
    assert not API_SERVICES.namespaced
    assert [s.name for s in API_SERVICES.subresources] == ["status"]


def test_a_service_backed_api_service_is_stored_with_its_port_defaulted_and_not_available(registry: Registry) -> None:
    created = registry.create(API_SERVICES, "", api_service(service={"name": "api", "namespace": "wardle"}, insecureSkipTLSVerify=True), STRICT).obj
    assert created["spec"]["service"] == {"name": "api", "namespace": "wardle", "port": 443}
    [condition] = created["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Available", "False", "FailedDiscoveryCheck")
    assert cells(created) | {"Age": ""} == {"Name": "v1alpha1.wardle.k8s.io", "Service": "wardle/api", "Available": "False (FailedDiscoveryCheck)", "Age": ""}
    again = refused(lambda: registry.create(API_SERVICES, "", api_service(service={"name": "api", "namespace": "wardle"}), STRICT))
    assert (again.code, again.message) == (409, 'apiservices.apiregistration.k8s.io "v1alpha1.wardle.k8s.io" already exists')


def test_a_local_api_service_is_available_and_its_status_survives_spec_updates(registry: Registry) -> None:
    created = registry.create(API_SERVICES, "", api_service(), STRICT).obj
    assert cells(created)["Service"] == "Local"
    assert cells(created)["Available"] == "True"
    patched = registry.patch(API_SERVICES, "", "v1alpha1.wardle.k8s.io", MERGE_PATCH, {"spec": {"versionPriority": 20}}).obj
    assert patched["spec"]["versionPriority"] == 20
    assert patched["status"] == created["status"]


CA = base64.b64encode(b"0123456789").decode()


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("v1.wardle.k8s.io", {}, [("metadata.name", 'Invalid value: "v1.wardle.k8s.io": must be `spec.version+"."+spec.group`: "v1alpha1.wardle.k8s.io"')]),
        ("v1alpha1.", {"group": ""}, [("metadata.name", "Invalid value: \"v1alpha1.\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"), ("spec.group", "Required value: only v1 may have an empty group and it better be legacy kube")]),
        (None, {"groupPriorityMinimum": 0, "versionPriority": 1001}, [("spec.groupPriorityMinimum", "Invalid value: 0: must be positive and less than 20000"), ("spec.versionPriority", "Invalid value: 1001: must be positive and less than 1000")]),
        (None, {"caBundle": CA, "insecureSkipTLSVerify": True}, [("spec.caBundle", 'Invalid value: "10 bytes": local APIServices may not have a caBundle'), ("spec.insecureSkipTLSVerify", "Invalid value: true: local APIServices may not have insecureSkipTLSVerify")]),
        (None, {"service": {"port": 70000}}, [("spec.service.namespace", "Required value"), ("spec.service.name", "Required value"), ("spec.service.port", "Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive")]),
        (None, {"service": {"name": "a", "namespace": "b"}, "caBundle": CA, "insecureSkipTLSVerify": True}, [("spec.insecureSkipTLSVerify", "Invalid value: true: may not be true if caBundle is present")]),
    ],
    ids=["name", "empty-group", "priorities", "local-tls", "service-ref", "ca-and-skip"],
)
def test_api_services_are_validated(registry: Registry, name: str | None, spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    body = api_service(name or "v1alpha1.wardle.k8s.io", **spec)
    error = refused(lambda: registry.create(API_SERVICES, "", body, STRICT))
    assert (error.code, causes(error)) == (422, expected)


def test_a_status_error_has_gos_field_order_and_ends_with_a_newline() -> None:
    response = status_response(errors.already_exists("deployments.apps", "web"))
    assert response.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"web\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"web","group":"apps","kind":"deployments"},"code":409}\n'
    )
    invalid = errors.invalid_object("Service", "", "web", [errors.required("spec.ports")]).status()
    assert list(invalid) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert list(invalid["details"]) == ["name", "kind", "causes"]
    assert list(orjson.loads(status_response(errors.bad_request("no")).body)) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "code"]
