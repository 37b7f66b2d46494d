"""Endpoints and EndpointSlices past their capacities, through the real server: 1,200 pods behind one
headless service (Endpoints truncated to 1,000 and annotated, slices of at most 100 holding all 1,200,
DNS answering from the slices), pods leaving their slice, and the acknowledgement of a pod create
already covering its Endpoints, its slice and DNS."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest

from tests.conftest import Emulator, start_emulator

NS = "default"
PODS = f"/api/v1/namespaces/{NS}/pods"
SERVICES = f"/api/v1/namespaces/{NS}/services"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
COUNT = 1200


def pod_body(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def slices_of(api: httpx.Client, service: str) -> list[dict[str, Any]]:
    found = ok(api.get(SLICES, params={"labelSelector": f"kubernetes.io/service-name={service}"}))
    return list(found["items"])


def slice_ips(api: httpx.Client, service: str) -> list[str]:
    return [a for s in slices_of(api, service) for e in s["endpoints"] for a in e["addresses"]]


def a_records(emu: Emulator, name: str) -> set[str]:
    reply = dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=emu.dns_port, timeout=5)
    return {r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("endpoints-scale"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def crowd(emu: Emulator) -> dict[str, str]:
    """A headless service `web` and 1,200 pods it selects (8 clients at a time); pod name → IP."""
    with emu.client() as api:
        ok(api.post(SERVICES, json={"metadata": {"name": "web"}, "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}}), 201)

    def create(names: list[str]) -> dict[str, str]:
        created = {}
        with emu.client() as api:
            for n, name in enumerate(names):
                created[name] = ok(api.post(PODS, json=pod_body(name)), 201)["status"]["podIP"]
                if n % 50 == 0:  # concurrent creates are coalesced: each acknowledgement still covers its own
                    assert created[name] in slice_ips(api, "web")
        return created

    names = [f"p{i:04}" for i in range(COUNT)]
    ips: dict[str, str] = {}
    with ThreadPoolExecutor(8) as pool:
        for part in pool.map(create, [names[i::8] for i in range(8)]):
            ips.update(part)
    return ips


def test_endpoints_are_truncated_to_1000_and_annotated(emu: Emulator, crowd: dict[str, str]) -> None:
    with emu.client() as api:
        endpoints = ok(api.get(f"/api/v1/namespaces/{NS}/endpoints/web"))
    listed = [a["ip"] for s in endpoints["subsets"] for a in s.get("addresses", [])]
    assert len(listed) == 1000 and set(listed) <= set(crowd.values())
    annotations = endpoints["metadata"]["annotations"]
    assert annotations["endpoints.kubernetes.io/over-capacity"] == "truncated"
    assert annotations["endpoints.kubernetes.io/last-change-trigger-time"]


def test_slices_of_at_most_100_cover_all_1200(emu: Emulator, crowd: dict[str, str]) -> None:
    with emu.client() as api:
        slices = slices_of(api, "web")
    assert len(slices) == 12 and all(len(s["endpoints"]) <= 100 for s in slices)
    assert sorted(a for s in slices for e in s["endpoints"] for a in e["addresses"]) == sorted(crowd.values())
    for s in slices:
        meta = s["metadata"]
        assert meta["generateName"] == "web-" and meta["name"].startswith("web-")
        assert meta["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        assert meta["labels"]["service.kubernetes.io/headless"] == ""
        assert meta["ownerReferences"][0]["kind"] == "Service" and meta["ownerReferences"][0]["name"] == "web"


def test_dns_answers_every_endpoint_of_a_headless_service(emu: Emulator, crowd: dict[str, str]) -> None:
    # past the 1,000 the Endpoints hold: DNS reads the slices (over TCP: 1,200 A records do not fit UDP)
    assert a_records(emu, f"web.{NS}.svc.cluster.local") == set(crowd.values())


def test_an_acknowledged_pod_is_in_the_endpoints_its_slice_and_dns(emu: Emulator, crowd: dict[str, str]) -> None:
    with emu.client() as api:
        ok(api.post(SERVICES, json={"metadata": {"name": "nginx"}, "spec": {"clusterIP": "None", "selector": {"app": "sts"}, "ports": [{"port": 80}]}}), 201)
        body = pod_body("web-0", hostname="web-0", subdomain="nginx")
        body["metadata"]["labels"] = {"app": "sts"}
        ip = ok(api.post(PODS, json=body), 201)["status"]["podIP"]
        # no waiting: the acknowledgement came after the Endpoints, the slice and DNS had it
        endpoints = ok(api.get(f"/api/v1/namespaces/{NS}/endpoints/nginx"))
        assert endpoints["subsets"][0]["addresses"][0]["ip"] == ip
        assert endpoints["subsets"][0]["addresses"][0]["hostname"] == "web-0"
        [slice_] = slices_of(api, "nginx")
        assert slice_["endpoints"][0]["addresses"] == [ip] and slice_["endpoints"][0]["hostname"] == "web-0"
    assert a_records(emu, f"web-0.nginx.{NS}.svc.cluster.local") == {ip}


def test_a_deleted_pod_leaves_its_slice_and_dns(emu: Emulator, crowd: dict[str, str]) -> None:
    gone = crowd["p0042"]
    with emu.client() as api:
        before = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices_of(api, "web")}
        ok(api.delete(f"{PODS}/p0042"))
        after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices_of(api, "web")}
        ips = slice_ips(api, "web")
    assert gone not in ips and len(ips) == COUNT - 1
    assert sum(before[name] != after.get(name) for name in before) == 1  # only the slice that held it
    assert gone not in a_records(emu, f"web.{NS}.svc.cluster.local")


def test_on_disk_each_acknowledged_pod_is_in_a_slice_and_deleting_the_service_deletes_them(tmp_path: Path) -> None:
    emulator = start_emulator(tmp_path / "data", in_memory=False)  # SQLite: the commit runs off the event loop
    try:
        with emulator.client() as api:
            ok(api.post(SERVICES, json={"metadata": {"name": "api"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}), 201)
            for i in range(120):
                ip = ok(api.post(PODS, json=pod_body(f"a{i:03}")), 201)["status"]["podIP"]
                if i % 20 == 0:
                    assert ip in slice_ips(api, "api")
            assert len(slices_of(api, "api")) == 2
            ok(api.delete(f"{SERVICES}/api"))
            assert slices_of(api, "api") == []
            assert api.get(f"/api/v1/namespaces/{NS}/endpoints/api").status_code == 404
    finally:
        emulator.stop()


def test_a_slice_over_1000_endpoints_is_refused(emu: Emulator) -> None:
    body = {"metadata": {"name": "huge"}, "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.9.{i // 250}.{i % 250 + 1}"]} for i in range(1001)]}
    with emu.client() as api:
        response = api.post(SLICES, json=body)
    assert response.status_code == 422, response.text
    cause = response.json()["details"]["causes"][0]
    assert cause == {"reason": "FieldValueTooMany", "message": "Too many: 1001: must have at most 1000 items", "field": "endpoints"}
