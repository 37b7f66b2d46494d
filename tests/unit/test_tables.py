"""Table documents: columns and cells as a real 1.32 API server prints them (KUBECTL.md §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.tables import table, table_row
from emulator.kinds import (
    ENDPOINT_SLICES,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    NETWORK_POLICIES,
    PODS,
    RESOURCE_TYPES,
    SERVICE_ACCOUNTS,
    SERVICES,
    ResourceType,
)
from emulator.kinds.endpoints import format_endpoints
from emulator.kinds.printing import format_label_selector, human_duration

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": "7",
        "creationTimestamp": ago(minutes=5),
    }
    if namespace:
        out["namespace"] = namespace
    return out | extra


def cells(resource: ResourceType, obj: dict[str, Any]) -> list[Any]:
    return table_row(resource, obj, now=NOW)["cells"]


def columns(resource: ResourceType) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in table(resource, [], "1", now=NOW)["columnDefinitions"]]


# --- Age --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),  # up to 2 s of clock skew reads as now
        (0, "0s"),
        (5, "5s"),
        (119.9, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 25 * 60, "3h25m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        (3 * 365 * 86400 + 100 * 86400, "3y100d"),
        (8 * 365 * 86400 + 100 * 86400, "8y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# --- Table envelope ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", RESOURCE_TYPES, ids=lambda r: r.key)
def test_empty_table_keeps_columns_and_resource_version(resource: ResourceType) -> None:
    doc = table(resource, [], "109", now=NOW)
    assert doc["kind"] == "Table" and doc["apiVersion"] == "meta.k8s.io/v1"
    assert doc["metadata"] == {"resourceVersion": "109"}
    assert doc["rows"] == []
    assert doc["columnDefinitions"]
    for column in doc["columnDefinitions"]:
        assert set(column) == {"name", "type", "format", "description", "priority"}


def test_rows_carry_partial_object_metadata_by_default() -> None:
    pod = {"metadata": meta("web", labels={"app": "web"}), "spec": {"containers": [{"name": "c"}]}}
    row = table(PODS, [pod], "12", now=NOW)["rows"][0]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pod["metadata"],
    }


def test_include_object_none_and_object() -> None:
    pod = {"metadata": meta("web"), "spec": {"containers": []}}
    assert "object" not in table_row(PODS, pod, "None", NOW)
    full = table_row(PODS, pod, "Object", NOW)["object"]
    assert full["kind"] == "Pod" and full["apiVersion"] == "v1" and full["spec"] == pod["spec"]
    with pytest.raises(ValueError):
        table_row(PODS, pod, "Everything", NOW)


def test_continue_token_and_v1beta1() -> None:
    doc = table(SERVICES, [], 5, now=NOW, continue_token="abc", version="v1beta1")  # type: ignore[arg-type]
    assert doc["metadata"] == {"resourceVersion": "5", "continue": "abc"}
    assert doc["apiVersion"] == "meta.k8s.io/v1beta1"


# --- Pods -------------------------------------------------------------------------------------------------


def test_pod_columns() -> None:
    assert columns(PODS) == [
        ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0),
        ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1),
    ]  # fmt: skip
    assert table(PODS, [], "1")["columnDefinitions"][0]["format"] == "name"


def test_running_pod_from_ready_condition() -> None:
    pod = {
        "metadata": meta("seed-pod", creationTimestamp=ago(seconds=1)),
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "emulator"},
        "status": {"phase": "Running", "podIP": "10.244.0.108", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert cells(PODS, pod) == ["seed-pod", "2/2", "Running", "0", "1s", "10.244.0.108", "emulator", "<none>", "<none>"]


def test_pending_pod_without_status() -> None:
    pod = {"metadata": meta("new"), "spec": {"containers": [{"name": "a"}]}}
    assert cells(PODS, pod) == ["new", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"]


def test_pod_from_container_statuses() -> None:
    pod = {
        "metadata": meta("crash"),
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "readinessGates": [{"conditionType": "x/ready"}]},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "127.1.0.5"}],
            "conditions": [{"type": "x/ready", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 1, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"finishedAt": ago(minutes=3)}},
                },
            ],
        },
    }
    assert cells(PODS, pod) == [
        "crash",
        "1/2",
        "CrashLoopBackOff",
        "4 (3m ago)",
        "5m",
        "127.1.0.5",
        "<none>",
        "<none>",
        "1/1",
    ]


def test_terminating_and_finished_pods() -> None:
    pod = {
        "metadata": meta("bye", deletionTimestamp=ago(seconds=3)),
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert cells(PODS, pod)[1:3] == ["1/1", "Terminating"]
    done = {"metadata": meta("job"), "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded"}}
    row = table_row(PODS, done, now=NOW)
    assert row["cells"][2] == "Succeeded"
    assert row["conditions"][0]["type"] == "Completed"
    # a finished pod being deleted keeps its final phase
    done["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert cells(PODS, done)[2] == "Succeeded"


# --- Services ---------------------------------------------------------------------------------------------


def service(name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta(name), "spec": spec, "status": status or {}}


def test_service_columns() -> None:
    assert columns(SERVICES) == [
        ("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0), ("Age", 0), ("Selector", 1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (
            {
                "type": "ClusterIP",
                "clusterIP": "127.0.96.10",
                "clusterIPs": ["127.0.96.10"],
                "selector": {"tier": "fe", "app": "web"},
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}],
            },
            None,
            ["ClusterIP", "127.0.96.10", "<none>", "80/TCP,9090/TCP", "5m", "app=web,tier=fe"],
        ),
        (
            {
                "type": "NodePort",
                "clusterIPs": ["127.0.96.11"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            },
            None,
            ["NodePort", "127.0.96.11", "<none>", "80:30080/TCP", "5m", "<none>"],
        ),
        (
            {
                "type": "LoadBalancer",
                "clusterIPs": ["127.0.96.12"],
                "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
            },
            {"loadBalancer": {"ingress": [{"ip": "127.2.0.2"}, {"ip": "127.2.0.1"}]}},
            ["LoadBalancer", "127.0.96.12", "127.2.0.1,127.2.0.2", "443:31443/TCP", "5m", "<none>"],
        ),
        (
            {"type": "LoadBalancer", "clusterIPs": ["127.0.96.13"], "ports": [{"port": 53, "protocol": "UDP"}]},
            None,
            ["LoadBalancer", "127.0.96.13", "<pending>", "53/UDP", "5m", "<none>"],
        ),
        (
            {"type": "ExternalName", "externalName": "example.com"},
            None,
            ["ExternalName", "<none>", "example.com", "<none>", "5m", "<none>"],
        ),
        (
            {
                "type": "ClusterIP",
                "clusterIP": "None",
                "clusterIPs": ["None"],
                "externalIPs": ["192.0.2.1"],
                "ports": [{"port": 80}],
            },
            None,
            ["ClusterIP", "None", "192.0.2.1", "80/TCP", "5m", "<none>"],
        ),
    ],
    ids=["clusterip", "nodeport", "loadbalancer", "lb-pending", "externalname", "headless-externalips"],
)
def test_service_cells(spec: dict[str, Any], status: dict[str, Any] | None, expected: list[str]) -> None:
    assert cells(SERVICES, service("web", spec, status)) == ["web", *expected]


# --- Endpoints and slices ---------------------------------------------------------------------------------


def test_endpoints_cells_and_truncation() -> None:
    ep = {
        "metadata": meta("web"),
        "subsets": [
            {
                "addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)],
                "notReadyAddresses": [{"ip": "10.0.0.9"}],
                "ports": [{"port": 80}],
            },
        ],
    }
    assert cells(ENDPOINTS, ep) == ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...", "5m"]
    assert columns(ENDPOINTS) == [("Name", 0), ("Endpoints", 0), ("Age", 0)]


@pytest.mark.parametrize(
    ("subsets", "text"),
    [
        (None, "<none>"),
        ([], "<none>"),
        ([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 9090}]}], "10.0.0.1:80,10.0.0.1:9090"),
        ([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}], "10.0.0.1,10.0.0.2"),  # headless, no ports
        ([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}], "[fd00::1]:80"),
        ([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}], ""),
    ],
)
def test_format_endpoints(subsets: list[dict[str, Any]] | None, text: str) -> None:
    assert format_endpoints({"subsets": subsets}) == text


def test_endpointslice_cells() -> None:
    eps = {
        "metadata": meta("web-abc12"),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "named"}],
        "endpoints": [{"addresses": [f"10.244.0.{i}"]} for i in range(1, 5)],
    }
    assert cells(ENDPOINT_SLICES, eps) == [
        "web-abc12",
        "IPv4",
        "8080,named",
        "10.244.0.1,10.244.0.2,10.244.0.3 + 1 more...",
        "5m",
    ]
    empty = {"metadata": meta("none"), "addressType": "IPv4"}
    assert cells(ENDPOINT_SLICES, empty) == ["none", "IPv4", "<unset>", "<unset>", "5m"]
    assert columns(ENDPOINT_SLICES) == [("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0)]


# --- the rest ---------------------------------------------------------------------------------------------


def test_namespace_serviceaccount_networkpolicy_cells() -> None:
    ns = {
        "metadata": meta("team", namespace=None, creationTimestamp=ago(days=2, hours=3)),
        "status": {"phase": "Active"},
    }
    assert cells(NAMESPACES, ns) == ["team", "Active", "2d3h"]
    assert columns(NAMESPACES) == [("Name", 0), ("Status", 0), ("Age", 0)]

    sa = {"metadata": meta("default"), "secrets": [{"name": "t"}]}
    assert cells(SERVICE_ACCOUNTS, sa) == ["default", 1, "5m"]
    assert table(SERVICE_ACCOUNTS, [], "1")["columnDefinitions"][1]["type"] == "integer"

    np = {"metadata": meta("deny"), "spec": {"podSelector": {}}}
    assert cells(NETWORK_POLICIES, np) == ["deny", "<none>", "5m"]
    np["spec"]["podSelector"] = {"matchLabels": {"role": "db"}}
    assert cells(NETWORK_POLICIES, np)[1] == "role=db"
    assert columns(NETWORK_POLICIES) == [("Name", 0), ("Pod-Selector", 0), ("Age", 0)]


def test_format_label_selector() -> None:
    selector = {
        "matchLabels": {"tier": "fe"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zone", "operator": "DoesNotExist"},
            {"key": "canary", "operator": "Exists"},
        ],
    }
    assert format_label_selector(selector) == "canary,env in (dev,prod),tier=fe,!zone"
    assert format_label_selector(None) == "<none>"


def test_event_cells() -> None:
    ev = {
        "metadata": meta("web.1"),
        "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"},
        "type": "Normal",
        "reason": "Created",
        "message": "created service \n",
        "firstTimestamp": ago(minutes=30),
        "lastTimestamp": ago(seconds=40),
        "count": 3,
        "source": {"component": "emulator"},
    }
    assert cells(EVENTS, ev) == [
        "40s",
        "Normal",
        "Created",
        "service/web",
        "",
        "emulator",
        "created service",
        "30m",
        3,
        "web.1",
    ]
    assert [name for name, priority in columns(EVENTS) if priority == 0] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    # events.k8s.io-style: only eventTime, no count
    new_style = {"metadata": meta("x"), "involvedObject": {"kind": "Pod"}, "eventTime": ago(minutes=2)}
    row = cells(EVENTS, new_style)
    assert row[0] == row[7] == "2m" and row[3] == "pod" and row[8] == 1


def test_unknown_kind_prints_name_and_age() -> None:
    other = ResourceType("example.com", "v1", "widgets", "Widget", True, "widget")
    assert columns(other) == [("Name", 0), ("Age", 0)]
    assert cells(other, {"metadata": meta("w", creationTimestamp=ago(days=400))}) == ["w", "400d"]
    assert cells(other, {"metadata": {"name": "w"}}) == ["w", "<unknown>"]
