"""The registry API over real HTTP: verbs, selectors, watches, errors, allocation and endpoints."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml

from tests.conftest import Emulator, start_emulator

PODS = "/api/v1/namespaces/default/pods"
SERVICES = "/api/v1/namespaces/default/services"


def pod(name: str, labels: dict[str, str] | None = None, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "example"}
    if ports:
        container["ports"] = ports
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"containers": [container], **spec}}


def service(name: str, selector: dict[str, str] | None, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"ports": ports, **spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def ok(response: httpx.Response, code: int = 200) -> dict[str, Any]:
    assert response.status_code == code, response.text
    return response.json()


def status_of(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == reason and body["code"] == code
    return body


# -- basics --------------------------------------------------------------------------------------------

def test_builtin_objects_and_health(api: httpx.Client) -> None:
    names = {n["metadata"]["name"] for n in ok(api.get("/api/v1/namespaces"))["items"]}
    assert {"default", "kube-system", "kube-public"} <= names
    default_ns = ok(api.get("/api/v1/namespaces/default"))
    assert default_ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "default"
    kubernetes = ok(api.get(f"{SERVICES}/kubernetes"))
    assert kubernetes["spec"]["clusterIP"] == "127.96.0.1"
    for ns in ("default", "kube-system"):
        ok(api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"))
    for path in ("/healthz", "/readyz", "/livez"):
        assert api.get(path).text == "ok"
    version = ok(api.get("/version"))
    assert version["major"] == "1" and version["minor"] == "32"


def test_pod_lifecycle_and_defaults(api: httpx.Client) -> None:
    created = ok(api.post(PODS, json=pod("web-1", {"app": "web"})), 201)
    meta, status = created["metadata"], created["status"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    assert status["phase"] == "Running"
    assert {"type": "Ready", "status": "True"}.items() <= next(c for c in status["conditions"] if c["type"] == "Ready").items()
    assert status["podIP"].startswith("127.244.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert ok(api.get(f"{PODS}/web-1"))["status"]["podIP"] == status["podIP"]
    gone = ok(api.delete(f"{PODS}/web-1"))
    assert gone["metadata"]["name"] == "web-1"
    status_of(api.get(f"{PODS}/web-1"), 404, "NotFound")


def test_generate_name_yaml_body_and_own_pod_ip(api: httpx.Client) -> None:
    manifest = yaml.safe_dump({"metadata": {"generateName": "worker-"}, "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": "127.0.0.42"}})
    created = ok(api.post(PODS, content=manifest, headers={"Content-Type": "application/yaml"}), 201)
    assert created["metadata"]["name"].startswith("worker-") and len(created["metadata"]["name"]) == len("worker-") + 5
    assert created["status"]["podIP"] == "127.0.0.42"  # a pod may bring its own address
    dated = "metadata:\n  name: dated\n  annotations:\n    released: 2024-01-01\nspec:\n  containers: [{name: c}]\n"
    assert ok(api.post(PODS, content=dated, headers={"Content-Type": "application/yaml"}), 201)["metadata"]["annotations"] == {"released": "2024-01-01"}


def test_list_selectors(api: httpx.Client) -> None:
    for name, labels in (("a", {"app": "web", "tier": "fe"}), ("b", {"app": "web", "tier": "be"}), ("c", {"app": "db"})):
        ok(api.post(PODS, json=pod(name, labels)), 201)

    def names(**params: str) -> set[str]:
        return {p["metadata"]["name"] for p in ok(api.get(PODS, params=params))["items"]}

    assert names(labelSelector="app=web") == {"a", "b"}
    assert names(labelSelector="app in (web,db),tier notin (be)") == {"a", "c"}
    assert names(labelSelector="!tier") == {"c"}
    assert names(labelSelector="tier") == {"a", "b"}
    assert names(labelSelector="app!=web") == {"c"}
    assert names(fieldSelector="metadata.name=b") == {"b"}
    assert names(fieldSelector="status.phase=Running,metadata.name!=a") == {"b", "c"}
    ip = ok(api.get(f"{PODS}/c"))["status"]["podIP"]
    assert names(fieldSelector=f"status.podIP={ip}") == {"c"}
    everywhere = ok(api.get("/api/v1/pods", params={"fieldSelector": "metadata.namespace=default"}))
    assert len(everywhere["items"]) == 3 and everywhere["kind"] == "PodList"
    assert ok(api.get("/api/v1/namespaces/nope/pods"))["items"] == []  # like kubectl expects: empty, not 404
    status_of(api.get(PODS, params={"labelSelector": "app in (web"}), 400, "BadRequest")
    unsupported = status_of(api.get(PODS, params={"fieldSelector": "spec.containers=x"}), 400, "BadRequest")
    assert "field label not supported: spec.containers" in unsupported["message"] and "status.podIP" in unsupported["message"]
    assert ok(api.get(SERVICES, params={"fieldSelector": "spec.type=ClusterIP"}))["items"]
    assert names(fieldSelector="spec.hostNetwork=false") == {"a", "b", "c"}  # absent means false, as the API server reads it


def test_update_conflict_and_noop(api: httpx.Client) -> None:
    created = ok(api.post(SERVICES, json=service("web", {"app": "web"}, [{"port": 80}])), 201)
    stale = json.loads(json.dumps(created))
    created["metadata"]["labels"] = {"v": "2"}
    updated = ok(api.put(f"{SERVICES}/web", json=created))
    assert int(updated["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    status_of(api.put(f"{SERVICES}/web", json=stale), 409, "Conflict")
    again = ok(api.put(f"{SERVICES}/web", json=updated))
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]  # no-op: no new version
    updated["spec"]["clusterIP"] = "127.96.0.200"
    body = status_of(api.put(f"{SERVICES}/web", json=updated), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.clusterIP"


def test_patch_types(api: httpx.Client) -> None:
    ok(api.post(PODS, json=pod("p", {"app": "x"}, ports=[{"containerPort": 80, "name": "http"}])), 201)
    merge = ok(api.patch(f"{PODS}/p", content=json.dumps({"metadata": {"labels": {"extra": "1"}}}), headers={"Content-Type": "application/merge-patch+json"}))
    assert merge["metadata"]["labels"] == {"app": "x", "extra": "1"}
    # a strategic merge patch merges containers by name: the image changes (what a pod may change), the ports stay
    smp = {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}
    patched = ok(api.patch(f"{PODS}/p", content=json.dumps(smp), headers={"Content-Type": "application/strategic-merge-patch+json"}))
    assert patched["spec"]["containers"][0]["image"] == "nginx:2"
    assert [p["containerPort"] for p in patched["spec"]["containers"][0]["ports"]] == [80]
    more = {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 81, "name": "alt"}]}]}}
    status_of(api.patch(f"{PODS}/p", content=json.dumps(more), headers={"Content-Type": "application/strategic-merge-patch+json"}), 422, "Invalid")
    ops = [{"op": "replace", "path": "/metadata/labels/app", "value": "y"}, {"op": "remove", "path": "/metadata/labels/extra"}]
    jp = ok(api.patch(f"{PODS}/p", json=ops, headers={"Content-Type": "application/json-patch+json"}))
    assert jp["metadata"]["labels"] == {"app": "y"}
    stale = json.dumps({"metadata": {"resourceVersion": merge["metadata"]["resourceVersion"], "labels": {"late": "1"}}})
    status_of(api.patch(f"{PODS}/p", content=stale, headers={"Content-Type": "application/merge-patch+json"}), 409, "Conflict")
    before = jp["metadata"]["resourceVersion"]
    same = ok(api.patch(f"{PODS}/p", content=b"{}", headers={"Content-Type": "application/merge-patch+json"}))
    assert same["metadata"]["resourceVersion"] == before
    status_of(api.patch(f"{PODS}/p", content=b"{}", headers={"Content-Type": "text/plain"}), 415, "UnsupportedMediaType")
    bad = [{"op": "remove", "path": "/metadata/nothing"}]
    status_of(api.patch(f"{PODS}/p", json=bad, headers={"Content-Type": "application/json-patch+json"}), 422, "Invalid")
    assert ok(api.get(f"{PODS}/p"))["metadata"]["resourceVersion"] == before  # a failed patch changes nothing


def test_server_side_apply_creates_then_updates(api: httpx.Client) -> None:
    manifest = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ssa", "labels": {"a": "1"}}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    headers = {"Content-Type": "application/apply-patch+yaml"}
    created = api.patch(f"{SERVICES}/ssa", params={"fieldManager": "me"}, content=json.dumps(manifest), headers=headers)
    assert created.status_code == 201, created.text
    manifest["metadata"]["labels"] = {"b": "2"}
    updated = ok(api.patch(f"{SERVICES}/ssa", params={"fieldManager": "me"}, content=yaml.safe_dump(manifest), headers=headers))
    assert updated["metadata"]["labels"] == {"b": "2"}  # the manager dropped label a
    rv = updated["metadata"]["resourceVersion"]
    again = ok(api.patch(f"{SERVICES}/ssa", params={"fieldManager": "me"}, content=yaml.safe_dump(manifest), headers=headers))
    assert again["metadata"]["resourceVersion"] == rv


def test_status_subresource_only_changes_status(api: httpx.Client) -> None:
    ok(api.post(PODS, json=pod("s", {"app": "s"})), 201)
    body = {"metadata": {"labels": {"ignored": "yes"}}, "status": {"phase": "Failed"}}
    changed = ok(api.patch(f"{PODS}/s/status", content=json.dumps(body), headers={"Content-Type": "application/merge-patch+json"}))
    assert changed["status"]["phase"] == "Failed" and "ignored" not in changed["metadata"]["labels"]
    # and the main resource ignores status
    current = ok(api.get(f"{PODS}/s"))
    current["status"]["phase"] = "Running"
    assert ok(api.put(f"{PODS}/s", json=current))["status"]["phase"] == "Failed"


def test_delete_collection(api: httpx.Client) -> None:
    for i in range(4):
        ok(api.post(PODS, json=pod(f"d{i}", {"batch": "yes" if i % 2 else "no"})), 201)
    would = ok(api.delete(PODS, params={"labelSelector": "batch=yes", "dryRun": "All"}))
    assert len(would["items"]) == 2 and len(ok(api.get(PODS))["items"]) == 4  # a dry run deletes nothing
    status_of(api.request("DELETE", f"{PODS}/d0", json={"preconditions": "uid"}), 400, "BadRequest")
    deleted = ok(api.delete(PODS, params={"labelSelector": "batch=yes"}))
    assert {p["metadata"]["name"] for p in deleted["items"]} == {"d1", "d3"}
    assert {p["metadata"]["name"] for p in ok(api.get(PODS))["items"]} == {"d0", "d2"}


def test_finalizers_delay_deletion(api: httpx.Client) -> None:
    body = pod("fin")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    ok(api.post(PODS, json=body), 201)
    marked = ok(api.delete(f"{PODS}/fin"))
    assert marked["metadata"]["deletionTimestamp"]
    still = ok(api.get(f"{PODS}/fin"))
    ops = [{"op": "remove", "path": "/metadata/finalizers"}]
    api.patch(f"{PODS}/fin", json=ops, headers={"Content-Type": "application/json-patch+json"})
    status_of(api.get(f"{PODS}/fin"), 404, "NotFound")
    assert still["metadata"]["finalizers"] == ["example.com/hold"]


# -- errors --------------------------------------------------------------------------------------------

def test_every_error_class(api: httpx.Client) -> None:
    status_of(api.get(f"{PODS}/missing"), 404, "NotFound")
    status_of(api.get("/api/v1/nothings"), 404, "NotFound")
    status_of(api.post("/api/v1/namespaces/nope/pods", json=pod("x")), 404, "NotFound")
    ok(api.post(PODS, json=pod("twice")), 201)
    body = status_of(api.post(PODS, json=pod("twice")), 409, "AlreadyExists")
    assert body["message"] == 'pods "twice" already exists'
    status_of(api.post(PODS, content=b'{"metadata": ', headers={"Content-Type": "application/json"}), 400, "BadRequest")
    status_of(api.post(PODS, content=b"metadata: [unclosed", headers={"Content-Type": "application/yaml"}), 400, "BadRequest")
    # a body the API server does not decode is 415 before it is read (a web page's text/plain included)
    status_of(api.post(PODS, content=b"<pod/>", headers={"Content-Type": "application/xml"}), 415, "UnsupportedMediaType")
    status_of(api.patch(f"{PODS}/twice", content=b"<pod/>", headers={"Content-Type": "application/xml"}), 415, "UnsupportedMediaType")
    status_of(api.patch(f"{PODS}/twice", content=b"{}", headers={"Content-Type": "application/xml"}), 415, "UnsupportedMediaType")
    big = pod("big")
    big["metadata"]["annotations"] = {"blob": "x" * (3 * 1024 * 1024 + 10)}
    status_of(api.post(PODS, json=big), 413, "RequestEntityTooLarge")
    large = pod("large")  # 1.4 MiB arrives in many reads: all of them make the body
    large["spec"]["containers"][0]["args"] = ["y" * 1024] * 1400
    assert len(ok(api.post(PODS, json=large), 201)["spec"]["containers"][0]["args"]) == 1400
    status_of(api.put(PODS, json=pod("x")), 405, "MethodNotAllowed")
    mismatch = pod("ns-mismatch")
    mismatch["metadata"]["namespace"] = "kube-system"
    status_of(api.post(PODS, json=mismatch), 400, "BadRequest")
    strict = pod("strict")
    strict["spec"]["bogus"] = 1
    message = status_of(api.post(PODS, params={"fieldValidation": "Strict"}, json=strict), 400, "BadRequest")["message"]
    assert 'unknown field "spec.bogus"' in message
    warned = api.post(PODS, params={"fieldValidation": "Warn"}, json=strict)
    assert warned.status_code == 201 and 'unknown field \\"spec.bogus\\"' in warned.headers["Warning"]
    assert "bogus" not in warned.json()["spec"]
    assert {p["metadata"]["name"] for p in ok(api.get(PODS))["items"]} == {"twice", "strict", "large"}  # failures changed nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (pod("Bad_Name"), "metadata.name"),
        ({"metadata": {}, "spec": {"containers": [{"name": "c"}]}}, "metadata.name"),
        ({"metadata": {"name": "x", "labels": {"bad key!": "v"}}, "spec": {"containers": [{"name": "c"}]}}, "metadata.labels"),
        ({"metadata": {"name": "x"}, "spec": {"containers": []}}, "spec.containers"),
        ({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}, {"name": "a"}]}}, "spec.containers[1].name"),
        ({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}, {"name": "b", "ports": [{"containerPort": 80}]}]}}, "spec.containers[1].ports[0].containerPort"),
        ({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 70000}]}]}}, "spec.containers[0].ports[0].containerPort"),
        ({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "env": [{"name": "A\nEVIL", "value": "1"}]}]}}, "spec.containers[0].env[0].name"),
    ],
)
def test_invalid_pods_get_field_causes(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    result = status_of(api.post(PODS, json=body), 422, "Invalid")
    assert field in {c["field"] for c in result["details"]["causes"]}, result


def test_a_value_of_the_wrong_type_is_a_decode_error(api: httpx.Client) -> None:
    body = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "eighty"}]}]}}
    result = status_of(api.post(PODS, json=body), 400, "BadRequest")  # the API server's decoder refuses it
    assert "containerPort" in result["message"]


def test_sidecar_ports_share_the_pod_port_space(api: httpx.Client) -> None:
    body = {"metadata": {"name": "side"}, "spec": {
        "containers": [{"name": "app", "ports": [{"containerPort": 8080}]}],
        "initContainers": [{"name": "proxy", "restartPolicy": "Always", "ports": [{"containerPort": 8080}]}]}}
    status_of(api.post(PODS, json=body), 422, "Invalid")
    body["spec"]["initContainers"][0]["restartPolicy"] = "OnFailure"  # a plain init container has exited by then
    body["spec"]["initContainers"][0].pop("restartPolicy")
    ok(api.post(PODS, json=body), 201)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}, "spec.ports[1]"),
        ({"ports": [{"port": 80, "nodePort": 30001}]}, "spec.ports[0].nodePort"),
        ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort"),
        ({"type": "ExternalName"}, "spec.externalName"),
        ({"ports": [{"port": 80}], "clusterIP": "10.0.0.1"}, "spec.clusterIP"),
        ({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}, "spec.clusterIP"),
        ({}, "spec.ports"),
    ],
)
def test_invalid_services(api: httpx.Client, spec: dict[str, Any], field: str) -> None:
    result = status_of(api.post(SERVICES, json={"metadata": {"name": "bad"}, "spec": spec}), 422, "Invalid")
    assert field in {c["field"] for c in result["details"]["causes"]}, result
    status_of(api.post(SERVICES, json=service("Upper", None, [{"port": 80}])), 422, "Invalid")


# -- services and addresses ----------------------------------------------------------------------------

def test_service_types_and_allocation(api: httpx.Client) -> None:
    cip = ok(api.post(SERVICES, json=service("cip", {"a": "b"}, [{"port": 80}])), 201)["spec"]
    assert cip["clusterIP"].startswith("127.") and cip["clusterIPs"] == [cip["clusterIP"]]
    headless = ok(api.post(SERVICES, json=service("hl", {"a": "b"}, [{"port": 80}], clusterIP="None")), 201)["spec"]
    assert headless["clusterIP"] == "None"
    node = ok(api.post(SERVICES, json=service("np", {"a": "b"}, [{"port": 80}], type="NodePort")), 201)["spec"]
    assert 30000 <= node["ports"][0]["nodePort"] <= 32767
    lb = ok(api.post(SERVICES, json=service("lb", {"a": "b"}, [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}], type="LoadBalancer")), 201)
    assert lb["status"]["loadBalancer"]["ingress"][0]["ip"].startswith("127.250.")
    assert all(30000 <= p["nodePort"] <= 32767 for p in lb["spec"]["ports"])
    ext = ok(api.post(SERVICES, json={"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}), 201)["spec"]
    assert "clusterIP" not in ext
    wanted = ok(api.post(SERVICES, json=service("fixed", None, [{"port": 80}], clusterIP="127.96.0.10")), 201)
    assert wanted["spec"]["clusterIP"] == "127.96.0.10"
    taken = status_of(api.post(SERVICES, json=service("again", None, [{"port": 80}], clusterIP="127.96.0.10")), 422, "Invalid")
    assert "already allocated" in taken["message"]
    requested_port = node["ports"][0]["nodePort"]
    status_of(api.post(SERVICES, json=service("np2", None, [{"port": 80, "nodePort": requested_port}], type="NodePort")), 422, "Invalid")
    ok(api.delete(f"{SERVICES}/fixed"))
    assert ok(api.post(SERVICES, json=service("again", None, [{"port": 80}], clusterIP="127.96.0.10")), 201)  # released on delete
    ips = [s["spec"].get("clusterIP") for s in ok(api.get(SERVICES))["items"] if s["spec"].get("clusterIP") not in (None, "None")]
    assert len(ips) == len(set(ips))


def test_exhausted_ranges_are_clear_errors(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path, "--service-cidr", "127.96.0.0/29", "--pod-cidr", "127.244.0.0/30", "--node-port-range", "30000-30001")
    try:
        with emu.client() as api:
            # /29: 6 addresses, the first is the kubernetes service's
            made = [api.post(SERVICES, json=service(f"s{i}", None, [{"port": 80}])) for i in range(6)]
            assert [r.status_code for r in made] == [201] * 5 + [422]
            assert "range 127.96.0.0/29 is full" in made[-1].json()["message"]
            pods = [api.post(PODS, json=pod(f"p{i}")) for i in range(3)]
            assert [r.status_code for r in pods] == [201, 201, 422]
            ok(api.delete(f"{PODS}/p0"))
            assert api.post(PODS, json=pod("p3")).status_code == 201
            ok(api.delete(f"{SERVICES}/s0"))
            node = api.post(SERVICES, json=service("np", None, [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}, {"port": 82, "name": "c"}], type="NodePort"))
            assert node.status_code == 422 and "30000-30001 is full" in node.json()["message"]
            # the failed write gave back what it took: the cluster IP and the two node ports
            assert api.post(SERVICES, json=service("np", None, [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}], type="NodePort")).status_code == 201
    finally:
        emu.stop()


def test_many_concurrent_pod_creates_get_distinct_ips(emulator: Emulator) -> None:
    async def create_all() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession(emulator.api_url) as session:

            async def create(i: int) -> dict[str, Any]:
                async with session.post(PODS, json=pod(f"c{i}")) as response:
                    assert response.status == 201, await response.text()
                    return await response.json()

            return await asyncio.gather(*(create(i) for i in range(500)))

    created = asyncio.run(create_all())
    ips = {p["status"]["podIP"] for p in created}
    assert len(ips) == 500
    with emulator.client() as api:
        assert len(ok(api.get(PODS))["items"]) == 500


# -- endpoints -----------------------------------------------------------------------------------------

def _endpoints(api: httpx.Client, name: str) -> dict[str, Any]:
    return ok(api.get(f"/api/v1/namespaces/default/endpoints/{name}"))


def test_endpoints_follow_pods_and_readiness(api: httpx.Client) -> None:
    ports = [{"name": "http", "containerPort": 8080}]
    ok(api.post(SERVICES, json=service("web", {"app": "web"}, [{"port": 80, "targetPort": "http", "name": "web"}])), 201)
    a = ok(api.post(PODS, json=pod("a", {"app": "web"}, ports, hostname="a", subdomain="web")), 201)
    ok(api.post(PODS, json=pod("b", {"app": "web"}, [{"name": "http", "containerPort": 9090}])), 201)
    ok(api.post(PODS, json=pod("other", {"app": "db"}, ports)), 201)
    ok(api.post(PODS, json=pod("noport", {"app": "web"})), 201)  # no port named http: left out
    subsets = _endpoints(api, "web")["subsets"]
    by_port = {s["ports"][0]["port"]: s for s in subsets}
    assert set(by_port) == {8080, 9090}
    first = by_port[8080]["addresses"][0]
    assert first["ip"] == a["status"]["podIP"] and first["hostname"] == "a"
    assert first["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": a["metadata"]["uid"]}
    assert by_port[8080]["ports"][0] == {"name": "web", "port": 8080, "protocol": "TCP"}

    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    ok(api.patch(f"{PODS}/a/status", content=json.dumps(not_ready), headers={"Content-Type": "application/strategic-merge-patch+json"}))
    by_port = {s["ports"][0]["port"]: s for s in _endpoints(api, "web")["subsets"]}
    assert "addresses" not in by_port[8080] and by_port[8080]["notReadyAddresses"][0]["ip"] == a["status"]["podIP"]
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    ok(api.patch(f"{PODS}/a/status", content=json.dumps(ready), headers={"Content-Type": "application/strategic-merge-patch+json"}))
    assert {s["ports"][0]["port"] for s in _endpoints(api, "web")["subsets"] if s.get("addresses")} == {8080, 9090}

    ok(api.delete(f"{PODS}/b"))
    assert [s["ports"][0]["port"] for s in _endpoints(api, "web")["subsets"]] == [8080]
    relabel = {"metadata": {"labels": {"app": "gone"}}}
    ok(api.patch(f"{PODS}/a", content=json.dumps(relabel), headers={"Content-Type": "application/merge-patch+json"}))
    assert "subsets" not in _endpoints(api, "web")

    slices = ok(api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", params={"labelSelector": "kubernetes.io/service-name=web"}))
    assert len(slices["items"]) == 1 and slices["items"][0]["endpoints"] == []
    ok(api.delete(f"{SERVICES}/web"))
    status_of(api.get("/api/v1/namespaces/default/endpoints/web"), 404, "NotFound")
    assert ok(api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", params={"labelSelector": "kubernetes.io/service-name=web"}))["items"] == []


def test_publish_not_ready_and_selectorless(api: httpx.Client) -> None:
    body = pod("slow", {"app": "slow"}, [{"containerPort": 80}])
    body["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    ok(api.post(PODS, json=body), 201)
    ok(api.post(SERVICES, json=service("slow", {"app": "slow"}, [{"port": 80}], publishNotReadyAddresses=True)), 201)
    assert _endpoints(api, "slow")["subsets"][0]["addresses"]
    ok(api.post(SERVICES, json=service("manual", None, [{"port": 80}])), 201)
    status_of(api.get("/api/v1/namespaces/default/endpoints/manual"), 404, "NotFound")
    mine = {"metadata": {"name": "manual"}, "subsets": [{"addresses": [{"ip": "127.0.0.5"}], "ports": [{"port": 9999}]}]}
    ok(api.post("/api/v1/namespaces/default/endpoints", json=mine), 201)
    assert _endpoints(api, "manual")["subsets"][0]["addresses"][0]["ip"] == "127.0.0.5"
    mirrored = ok(api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/manual-0"))
    assert mirrored["endpoints"][0]["addresses"] == ["127.0.0.5"]


def test_namespace_deletion_cascades(api: httpx.Client) -> None:
    ok(api.post("/api/v1/namespaces", json={"metadata": {"name": "team"}}), 201)
    ok(api.get("/api/v1/namespaces/team/serviceaccounts/default"))
    base = "/api/v1/namespaces/team"
    ok(api.post(f"{base}/pods", json=pod("p", {"app": "x"}, [{"containerPort": 80}])), 201)
    svc = ok(api.post(f"{base}/services", json=service("s", {"app": "x"}, [{"port": 80}], clusterIP="127.96.0.77")), 201)
    ok(api.get(f"{base}/endpoints/s"))
    terminating = ok(api.delete(f"{base}"))
    assert terminating["status"]["phase"] == "Terminating" and terminating["metadata"]["deletionTimestamp"]
    refused = status_of(api.post(f"{base}/pods", json=pod("late")), 403, "Forbidden")
    assert "being terminated" in refused["message"]
    ok(api.delete(f"{base}/pods/p"))  # what is in it can still be deleted one by one (kubectl delete -f)
    deadline = time.monotonic() + 5
    while api.get(base).status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    status_of(api.get(base), 404, "NotFound")
    for kind in ("pods", "services", "endpoints", "serviceaccounts"):
        assert ok(api.get(f"{base}/{kind}"))["items"] == []
    assert svc["spec"]["clusterIP"] == "127.96.0.77"
    # its addresses were released with it
    ok(api.post(SERVICES, json=service("reuse", None, [{"port": 80}], clusterIP="127.96.0.77")), 201)
    status_of(api.delete("/api/v1/namespaces/default"), 403, "Forbidden")


# -- watch ---------------------------------------------------------------------------------------------

def _watch_lines(
    url: str, params: dict[str, str], count: int, timeout: float = 10, out: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The first `count` events of a watch; appended to `out` (when given) as they come."""
    out = [] if out is None else out
    with httpx.stream("GET", url, params=params, timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                out.append(json.loads(line))
            if len(out) >= count:
                break
    return out


def test_watch_from_resource_version_and_live(emulator: Emulator, api: httpx.Client) -> None:
    rv = ok(api.get(PODS))["metadata"]["resourceVersion"]
    ok(api.post(PODS, json=pod("w1")), 201)
    received: list[dict[str, Any]] = []

    def watch() -> None:
        received.extend(_watch_lines(emulator.api_url + PODS, {"watch": "True", "resourceVersion": rv}, 3))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    ok(api.patch(f"{PODS}/w1", content=b'{"metadata":{"labels":{"x":"y"}}}', headers={"Content-Type": "application/merge-patch+json"}))
    ok(api.delete(f"{PODS}/w1"))
    thread.join(10)
    assert [e["type"] for e in received] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in received]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_watch_without_version_lists_first_and_bookmarks(emulator: Emulator, api: httpx.Client) -> None:
    ok(api.post(PODS, json=pod("present", {"app": "a"})), 201)
    ok(api.post(PODS, json=pod("filtered", {"app": "b"})), 201)
    events = _watch_lines(emulator.api_url + PODS, {"watch": "1", "labelSelector": "app=a", "allowWatchBookmarks": "true"}, 2)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "present"
    assert events[1]["type"] == "BOOKMARK" and events[1]["object"]["metadata"]["resourceVersion"]
    timed = _watch_lines(emulator.api_url + PODS, {"watch": "true", "timeoutSeconds": "1", "fieldSelector": "metadata.name=none"}, 100, timeout=5)
    assert timed == []  # the stream ended by itself after timeoutSeconds


def test_watch_too_old_is_expired(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path, "--watch-history", "5")
    try:
        with emu.client() as api:
            for i in range(10):
                ok(api.post(PODS, json=pod(f"h{i}")), 201)
            events = _watch_lines(emu.api_url + PODS, {"watch": "true", "resourceVersion": "2"}, 1)
            assert events[0]["type"] == "ERROR"
            assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    finally:
        emu.stop()


def test_resumed_watch_sends_only_its_kind_and_follows_selector_membership(emulator: Emulator, api: httpx.Client) -> None:
    rv = ok(api.get(PODS))["metadata"]["resourceVersion"]
    ok(api.post(SERVICES, json=service("other-kind", {"app": "m"}, [{"port": 80}])), 201)
    ok(api.post(PODS, json=pod("m1", {"app": "m"})), 201)
    events = _watch_lines(emulator.api_url + PODS, {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "1"}, 100, timeout=5)
    assert [(e["type"], e["object"]["kind"]) for e in events] == [("ADDED", "Pod")]

    received: list[dict[str, Any]] = []

    def watch() -> None:
        _watch_lines(emulator.api_url + PODS, {"watch": "1", "labelSelector": "app=m"}, 3, out=received)

    thread = threading.Thread(target=watch)
    thread.start()
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:  # the watch is open: its initial ADDED came
        time.sleep(0.02)
    merge = {"Content-Type": "application/merge-patch+json"}
    ok(api.patch(f"{PODS}/m1", content=b'{"metadata":{"labels":{"app":"gone"}}}', headers=merge))  # leaves the selection
    ok(api.patch(f"{PODS}/m1", content=b'{"metadata":{"labels":{"app":"m"}}}', headers=merge))  # and comes back
    thread.join(10)
    assert [e["type"] for e in received] == ["ADDED", "DELETED", "ADDED"]
    assert received[1]["object"]["metadata"]["labels"] == {"app": "gone"}


def test_terminating_namespace_edits_and_a_new_namespace_of_the_same_name(api: httpx.Client) -> None:
    # a label or annotation that happens to be called deletionTimestamp is just a label
    ok(api.post("/api/v1/namespaces", json={"metadata": {"name": "odd", "annotations": {"deletionTimestamp": "x"}}}), 201)
    ok(api.post("/api/v1/namespaces/odd/pods", json=pod("p")), 201)
    time.sleep(0.8)
    assert ok(api.get("/api/v1/namespaces/odd"))["status"]["phase"] == "Active"

    ok(api.post("/api/v1/namespaces", json={"metadata": {"name": "n1"}}), 201)
    ok(api.delete("/api/v1/namespaces/n1"))
    merge = {"Content-Type": "application/merge-patch+json"}
    edited = ok(api.patch("/api/v1/namespaces/n1", content=b'{"metadata":{"labels":{"x":"y"}}}', headers=merge))
    assert edited["status"]["phase"] == "Terminating"  # an edit does not end the termination early
    deadline = time.monotonic() + 5
    while api.get("/api/v1/namespaces/n1").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    ok(api.post("/api/v1/namespaces", json={"metadata": {"name": "n1"}}), 201)
    ok(api.post("/api/v1/namespaces/n1/pods", json=pod("kept")), 201)
    time.sleep(0.8)  # longer than the old namespace's termination delay
    ok(api.get("/api/v1/namespaces/n1/pods/kept"))


def test_service_type_changes_drop_what_the_old_type_held(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path, "--lb-cidr", "127.250.0.0/30", "--no-proxy")  # room for two LB addresses
    merge = {"Content-Type": "application/merge-patch+json"}
    try:
        with emu.client() as api:
            lb = ok(api.post(SERVICES, json=service("lb", None, [{"port": 80}], type="LoadBalancer")), 201)
            ip = lb["status"]["loadBalancer"]["ingress"][0]["ip"]
            node_port = lb["spec"]["ports"][0]["nodePort"]
            # clients cannot move the load-balancer address: the emulator is its controller
            moved = {"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}}
            kept = ok(api.patch(f"{SERVICES}/lb/status", content=json.dumps(moved).encode(), headers=merge))
            assert kept["status"]["loadBalancer"]["ingress"][0]["ip"] == ip
            # LoadBalancer -> ClusterIP: node ports and the LB address are given back
            plain = ok(api.patch(f"{SERVICES}/lb", content=b'{"spec":{"type":"ClusterIP"}}', headers=merge))
            assert "nodePort" not in plain["spec"]["ports"][0] and plain["status"]["loadBalancer"] == {}
            again = [ok(api.post(SERVICES, json=service(f"lb{i}", None, [{"port": 80}], type="LoadBalancer")), 201) for i in range(2)]
            assert ip in {s["status"]["loadBalancer"]["ingress"][0]["ip"] for s in again}
            relabel = ok(api.patch(f"{SERVICES}/lb", content=b'{"metadata":{"labels":{"a":"b"}}}', headers=merge))
            assert relabel["status"]["loadBalancer"] == {}
            status_of(api.post(SERVICES, json=service("lb3", None, [{"port": 80}], type="LoadBalancer")), 422, "Invalid")  # range full: nothing was released twice
            np = ok(api.post(SERVICES, json=service("np", None, [{"port": 80, "nodePort": node_port}], type="NodePort")), 201)
            assert np["spec"]["ports"][0]["nodePort"] == node_port
            # ClusterIP -> ExternalName drops the cluster IP
            ext = ok(api.patch(f"{SERVICES}/lb", content=b'{"spec":{"type":"ExternalName","externalName":"example.com"}}', headers=merge))
            assert "clusterIP" not in ext["spec"]
    finally:
        emu.stop()


def test_endpoint_slices_of_two_services_never_collide(api: httpx.Client) -> None:
    # service "api" gets two slices (two port layouts); service "api-1" exists as well
    ok(api.post(SERVICES, json=service("api", {"app": "api"}, [{"port": 80, "targetPort": "http", "name": "h"}])), 201)
    ok(api.post(SERVICES, json=service("api-1", {"app": "other"}, [{"port": 80}])), 201)
    ok(api.post(PODS, json=pod("a", {"app": "api"}, [{"name": "http", "containerPort": 8080}])), 201)
    ok(api.post(PODS, json=pod("b", {"app": "api"}, [{"name": "http", "containerPort": 9090}])), 201)
    ok(api.post(PODS, json=pod("o", {"app": "other"}, [{"containerPort": 80}])), 201)

    def slices(svc: str) -> dict[str, list[str]]:
        found = ok(api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", params={"labelSelector": f"kubernetes.io/service-name={svc}"}))
        return {s["metadata"]["name"]: [a for e in s["endpoints"] for a in e["addresses"]] for s in found["items"]}

    assert len(slices("api")) == 2 and len(slices("api-1")) == 1
    ok(api.delete(f"{PODS}/b"))  # "api" shrinks back to one slice: the other service's slice stays
    assert len(slices("api")) == 1 and list(slices("api-1").values())[0]


def test_selector_watch_resumed_from_a_list_sees_what_changed_in_between(emulator: Emulator, api: httpx.Client) -> None:
    for name, labels in (("w1", {"a": "1"}), ("w2", {"a": "1"}), ("w3", {"a": "2"})):
        ok(api.post(PODS, json=pod(name, labels)), 201)
    listed = ok(api.get(PODS, params={"labelSelector": "a=1"}))
    assert {p["metadata"]["name"] for p in listed["items"]} == {"w1", "w2"}
    merge = {"Content-Type": "application/merge-patch+json"}
    ok(api.delete(f"{PODS}/w1"))  # held by the client: DELETED
    ok(api.patch(f"{PODS}/w2", content=b'{"metadata":{"labels":{"a":"9"}}}', headers=merge))  # leaves: DELETED
    ok(api.patch(f"{PODS}/w3", content=b'{"metadata":{"labels":{"a":"1"}}}', headers=merge))  # enters: ADDED
    params = {"watch": "1", "labelSelector": "a=1", "resourceVersion": listed["metadata"]["resourceVersion"], "timeoutSeconds": "1"}
    events = _watch_lines(emulator.api_url + PODS, params, 10, timeout=5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "w1"), ("DELETED", "w2"), ("ADDED", "w3")]
    # kubectl delete --wait lists by name, then watches from the list: a deletion in between is seen
    by_name = ok(api.get(PODS, params={"fieldSelector": "metadata.name=w3"}))
    ok(api.delete(f"{PODS}/w3"))
    params = {"watch": "1", "fieldSelector": "metadata.name=w3", "resourceVersion": by_name["metadata"]["resourceVersion"], "timeoutSeconds": "1"}
    assert [e["type"] for e in _watch_lines(emulator.api_url + PODS, params, 10, timeout=5)] == ["DELETED"]


def test_bad_requests_found_in_review_are_clear_errors(api: httpx.Client) -> None:
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    status_of(api.get(PODS, params={"includeObject": "bogus"}, headers=table), 400, "BadRequest")
    # server-side apply to the status of a pod that does not exist creates nothing
    apply = {"Content-Type": "application/apply-patch+yaml"}
    ghost = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ghost"}, "status": {"phase": "Running"}})
    status_of(api.patch(f"{PODS}/ghost/status", params={"fieldManager": "me"}, content=ghost, headers=apply), 404, "NotFound")
    status_of(api.get(f"{PODS}/ghost"), 404, "NotFound")
    # a patch cannot rename an object or change its uid
    ok(api.post(PODS, json=pod("named")), 201)
    merge = {"Content-Type": "application/merge-patch+json"}
    status_of(api.patch(f"{PODS}/named", content=b'{"metadata":{"name":"other"}}', headers=merge), 400, "BadRequest")
    status_of(api.patch(f"{PODS}/named", content=b'{"metadata":{"uid":"not-its-uid"}}', headers=merge), 409, "Conflict")
    # a hand-written managedFields entry of another shape does not break the next apply
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "named", "labels": {"x": "1"}}, "spec": {"containers": [{"name": "app", "image": "example"}]}}
    ok(api.patch(f"{PODS}/named", params={"fieldManager": "me"}, content=json.dumps(manifest), headers=apply))
    odd = {"metadata": {"managedFields": [{"manager": "me", "operation": "Apply", "fieldsV1": ["x"]}]}}
    ok(api.patch(f"{PODS}/named", content=json.dumps(odd), headers=merge))
    ok(api.patch(f"{PODS}/named", params={"fieldManager": "me"}, content=json.dumps(manifest), headers=apply))
