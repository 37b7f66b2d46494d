"""Gateway API HTTPRoutes through the gateway, with real kubectl manifests and real backends: matches on path,
headers, query and method; every filter (request and response header modifiers, redirect, URL rewrite,
mirror); a 90/10 weighted split measured over 1,000 requests; ReferenceGrant allowing and denying; a
Gateway listener on a port of its own."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import Emulator, free_port
from tests.integration.gateway_support import (
    Backend,
    apply,
    backend_of,
    eventually,
    gateway_emulator,
    get,
    running_backends,
    service_yaml,
    wait_routed,
)
from tests.integration.kubectl_support import Kubectl

Start = Callable[[str], Backend]


@pytest.fixture
def backends() -> Iterator[Start]:
    yield from running_backends()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = gateway_emulator(tmp_path_factory.mktemp("gateway-httproute"))
    yield emulator
    emulator.stop()


GATEWAY_CLASS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: emulator}
spec: {controllerName: emulator.local/gateway}
"""


def gateway(ns: str, name: str = "gw", port: int = 80, extra: str = "") -> str:
    return GATEWAY_CLASS + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  gatewayClassName: emulator
  listeners:
  - {{name: http, port: {port}, protocol: HTTP{extra}}}
"""


def route(ns: str, name: str, host: str, rules: str, parent: str = "gw") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: [{{name: {parent}}}]
  hostnames: [{host}]
  rules:
{rules}
"""


def backend(name: str, weight: int | None = None, ns: str | None = None) -> str:
    extra = (f", weight: {weight}" if weight is not None else "") + (f", namespace: {ns}" if ns else "")
    return f"{{name: {name}, port: 80{extra}}}"


def test_matches(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    for name in ("root", "exact", "header", "query", "method"):
        apply(kubectl, service_yaml(name, ns, backends(name)))
    host = f"match-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "matches", host, f"""
  - backendRefs: [{backend("root")}]
  - matches: [{{path: {{type: Exact, value: /exact}}}}]
    backendRefs: [{backend("exact")}]
  - matches: [{{headers: [{{name: X-Env, value: canary}}]}}]
    backendRefs: [{backend("header")}]
  - matches: [{{queryParams: [{{name: v, value: "2"}}]}}]
    backendRefs: [{backend("query")}]
  - matches: [{{method: POST, path: {{type: PathPrefix, value: /m}}}}]
    backendRefs: [{backend("method")}]
"""))
    wait_routed(emu, host, "/exact", "exact")
    cases = [
        (get(emu, host, "/"), "root"),
        (get(emu, host, "/exact/more"), "root"),
        (get(emu, host, "/x", headers={"X-Env": "canary"}), "header"),
        (get(emu, host, "/x", headers={"X-Env": "prod"}), "root"),
        (get(emu, host, "/x?v=2"), "query"),
        (get(emu, host, "/x?v=3"), "root"),
        (get(emu, host, "/m/1", method="POST"), "method"),
        (get(emu, host, "/m/1"), "root"),
    ]
    assert [backend_of(r) for r, _ in cases] == [name for _, name in cases]
    assert get(emu, f"other-{ns}.example").status_code == 404


def test_header_filters_redirect_and_rewrite(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    apply(kubectl, service_yaml("web", ns, backends("web")))
    host = f"filters-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "filters", host, f"""
  - matches: [{{path: {{type: PathPrefix, value: /headers}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: X-Set, value: set-value}}]
        add: [{{name: X-Add, value: added}}]
        remove: [X-Gone]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{{name: X-Backend, value: hidden}}]
        add: [{{name: X-Response-Add, value: "added"}}]
        remove: [X-Remove-Me]
    backendRefs: [{backend("web")}]
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{scheme: https, hostname: new.example, statusCode: 301, path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}}}
  - matches: [{{path: {{type: PathPrefix, value: /moved}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{port: 8080}}
  - matches: [{{path: {{type: PathPrefix, value: /prefix}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{hostname: rewritten.example, path: {{type: ReplacePrefixMatch, replacePrefixMatch: /replaced}}}}
    backendRefs: [{backend("web")}]
  - matches: [{{path: {{type: PathPrefix, value: /full}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /whole}}}}
    backendRefs: [{backend("web")}]
"""))
    wait_routed(emu, host, "/headers", "web")
    response = get(emu, host, "/headers", headers={"X-Add": "sent", "X-Gone": "bye", "X-Set": "old"})
    seen = response.json()["headers"]
    assert seen["x-set"] == "set-value" and seen["x-add"] == "sent,added" and "x-gone" not in seen
    assert response.headers["x-backend"] == "hidden" and response.headers["x-response-add"] == "added"
    assert "x-remove-me" not in response.headers
    # a request without response filters gets the backend's headers as they are
    plain = get(emu, host, "/prefix")
    assert plain.headers["x-backend"] == "web" and plain.headers["x-remove-me"] == "yes"
    redirect = get(emu, host, "/old/page?q=1")
    assert redirect.status_code == 301 and redirect.headers["location"] == f"https://new.example:{https_port_of(emu)}/new/page?q=1"
    moved = get(emu, f"{host}:{emu.gateway_port}", "/moved/x")
    assert moved.status_code == 302 and moved.headers["location"] == f"http://{host}:8080/moved/x"
    rewritten = get(emu, host, "/prefix/rest?x=y").json()
    assert rewritten["host"] == "rewritten.example" and rewritten["path"] == "/replaced/rest?x=y"
    assert rewritten["headers"]["x-forwarded-host"] == host
    assert get(emu, host, "/full/a/b").json()["path"] == "/whole"


def https_port_of(emu: Emulator) -> int:
    return int(emu.faces["gateway-https"].rsplit(":", 1)[1])


def test_request_mirror(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    web, mirror = backends("web"), backends("mirror")
    apply(kubectl, service_yaml("web", ns, web) + "---" + service_yaml("mirror", ns, mirror))
    host = f"mirror-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "mirror", host, f"""
  - filters:
    - type: RequestMirror
      requestMirror: {{backendRef: {backend("mirror")}}}
    backendRefs: [{backend("web")}]
"""))
    wait_routed(emu, host, "/", "web")
    response = get(emu, host, "/copied", method="POST", content=b"payload")
    assert backend_of(response) == "web"
    eventually(lambda: any(s["path"] == "/copied" and s["body"] == "payload" for s in mirror.seen))
    assert [s["path"] for s in web.seen].count("/copied") == 1
    # over HTTP/2 (h2c with prior knowledge) too: the copy goes to the mirror as HTTP/1.1
    with httpx.Client(http1=False, http2=True, timeout=5) as h2c:
        answer = h2c.post(f"http://127.0.0.1:{emu.gateway_port}/copied-h2", headers={"Host": host}, content=b"over h2")
    assert answer.http_version == "HTTP/2" and backend_of(answer) == "web"
    eventually(lambda: any(s["path"] == "/copied-h2" and s["body"] == "over h2" for s in mirror.seen))
    # a mirror that is down changes nothing for the request itself
    mirror.stop()
    for _ in range(3):
        assert backend_of(get(emu, host, "/while-down")) == "web"


def test_weighted_split_90_10(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    for name in ("stable", "canary"):
        apply(kubectl, service_yaml(name, ns, backends(name)))
    host = f"split-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "split", host, f"""
  - backendRefs: [{backend("stable", 90)}, {backend("canary", 10)}]
"""))
    wait_routed(emu, host, "/")
    n = 1000
    counts = {"stable": 0, "canary": 0}
    with httpx.Client(base_url=f"http://127.0.0.1:{emu.gateway_port}", headers={"Host": host}, timeout=5) as client:
        for _ in range(n):
            counts[backend_of(client.get("/"))] += 1
    sigma = math.sqrt(n * 0.1 * 0.9)  # binomial: 9.5 requests
    assert abs(counts["canary"] - n * 0.1) <= 4 * sigma, counts


def test_reference_grant(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    other = f"{ns}-b"[:63]
    kubectl.run("create", "namespace", other)
    apply(kubectl, service_yaml("remote", other, backends("remote")))
    host = f"grant-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "cross", host, f"""
  - backendRefs: [{backend("remote", ns=other)}]
"""))
    denied = eventually(lambda: (r := get(emu, host)).status_code == 500 and r)
    assert "ReferenceGrant" in denied.text or "not permitted" in denied.text.lower() or "refnotpermitted" in denied.text.lower(), denied.text
    apply(kubectl, f"""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: allow, namespace: {other}}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {ns}}}]
  to: [{{group: "", kind: Service}}]
""")
    wait_routed(emu, host, "/", "remote")
    kubectl.run("delete", "referencegrant", "-n", other, "allow")
    eventually(lambda: get(emu, host).status_code == 500)
    kubectl.run("delete", "namespace", other, "--wait=false")


def test_listener_on_its_own_port(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    apply(kubectl, service_yaml("web", ns, backends("web")))
    port = free_port()
    host = f"port-{ns}.example"
    apply(kubectl, gateway(ns, "ported", port) + "---" + route(ns, "ported", host, f"""
  - backendRefs: [{backend("web")}]
""", parent="ported"))

    def routed() -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=2)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.json()["backend"] == "web"

    eventually(routed)
    # only its own routes: no service names there, and the shared port does not serve it
    assert httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": f"web.{ns}"}, timeout=2).status_code == 404
    assert get(emu, host).status_code == 404
    kubectl.run("delete", "gateway", "-n", ns, "ported")

    def unbound() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.ConnectError:
            return True
        return False

    eventually(unbound)


def test_a_listener_port_that_is_taken_is_a_problem_with_a_fix(emu: Emulator, kubectl: Kubectl, ns: str) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        apply(kubectl, gateway(ns, "taken", port))

        def problem() -> dict[str, str] | None:
            with emu.client() as api:
                found = [p for p in api.get("/emulator/v1/proxy").json()["problems"] if p["port"] == port]
            return found[0] if found else None

        found = eventually(problem)
        assert found["reason"] == "AddressInUse" and "Gateway HTTP listener" in found["for"] and found["fix"]

        # ... and the Gateway's status says it: the listener is PortUnavailable, nothing is programmed
        def listener_conditions() -> dict[str, tuple[str, str]]:
            status = json.loads(kubectl.out("get", "gateway", "-n", ns, "taken", "-o", "json")).get("status") or {}
            items = status.get("listeners") or [{}]
            return {c["type"]: (c["status"], c["reason"]) for c in items[0].get("conditions") or []}

        eventually(lambda: listener_conditions().get("Accepted") == ("False", "PortUnavailable"))
        assert listener_conditions()["Programmed"] == ("False", "Invalid")
        listener = json.loads(kubectl.out("get", "gateway", "-n", ns, "taken", "-o", "json"))["status"]["listeners"][0]
        accepted = next(c for c in listener["conditions"] if c["type"] == "Accepted")
        assert str(port) in accepted["message"] and "fix:" in accepted["message"]  # why, and what to do
        gw_conditions = {c["type"]: c["status"] for c in json.loads(kubectl.out("get", "gateway", "-n", ns, "taken", "-o", "json"))["status"]["conditions"]}
        assert gw_conditions["Programmed"] == "False"
    finally:
        holder.close()
    # once the port is free, the retry binds it and the listener is programmed again
    eventually(lambda: listener_conditions().get("Programmed") == ("True", "Programmed"), timeout=15)
    assert listener_conditions()["Accepted"] == ("True", "Accepted")
    kubectl.run("delete", "gateway", "-n", ns, "taken")
