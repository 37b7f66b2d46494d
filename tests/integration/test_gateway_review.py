"""What the review of issue 14 found on the gateway's wire, pinned with a real server, real backends and raw
sockets: a filter cannot remove the header that frames the body (smuggling), values with CR/LF are refused
on write, an absolute-form target's authority is the host and the origin form goes upstream, header matches
see every header, the gateway is the edge for X-Forwarded-*, a mirror copy carries only the rule's filters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Emulator
from tests.integration.gateway_support import (
    Backend,
    apply,
    backend_of,
    eventually,
    gateway_emulator,
    get,
    raw_connection,
    running_backends,
    service_yaml,
    wait_routed,
)
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_gateway_httproute import backend, gateway, route

Start = Callable[[str], Backend]


@pytest.fixture
def backends() -> Iterator[Start]:
    yield from running_backends()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = gateway_emulator(tmp_path_factory.mktemp("gateway-review"))
    yield emulator
    emulator.stop()


def exchange(emu: Emulator, data: bytes) -> bytes:
    """Send raw bytes, read until the gateway closes (the requests say Connection: close)."""
    with raw_connection(emu.gateway_port) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_removing_content_length_does_not_smuggle(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    web = backends("web")
    apply(kubectl, service_yaml("web", ns, web))
    host = f"smuggle-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "remove", host, f"""
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{remove: [Content-Length, Transfer-Encoding, Host, Connection]}}
    backendRefs: [{backend("web")}]
"""))
    wait_routed(emu, host, "/", "web")
    web.seen.clear()
    smuggled = f"GET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    head = f"POST /first HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(smuggled)}\r\nConnection: close\r\n\r\n".encode()
    answer = exchange(emu, head + smuggled)
    assert answer.startswith(b"HTTP/1.1 200")
    eventually(lambda: web.seen)
    assert [(s["path"], s["body"]) for s in web.seen] == [("/first", smuggled.decode())]


def test_values_with_cr_or_lf_are_refused_on_write(kubectl: Kubectl, ns: str) -> None:
    bad = route(ns, "inject", f"inject-{ns}.example", """
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-A, value: "v\\r\\nX-Injected: 1\\r\\n\\r\\nGET /smuggled"}]}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /r}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: "/x HTTP/1.1\\r\\nHost: evil"}}
    backendRefs: [{name: web, port: 80}]
""")
    done = kubectl.run("apply", "-f", "-", stdin=bad, ok=False)
    message = done.stderr
    assert done.returncode != 0
    assert "spec.rules[0].filters[0].requestHeaderModifier.set[0].value" in message
    assert "spec.rules[1].filters[0].urlRewrite.path.replaceFullPath" in message


def test_an_absolute_form_target_routes_by_its_authority(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    web, other = backends("web"), backends("other")
    apply(kubectl, service_yaml("web", ns, web) + "---" + service_yaml("other", ns, other))
    host, decoy = f"abs-{ns}.example", f"decoy-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "abs", host, f"  - backendRefs: [{backend('web')}]")
          + "---" + route(ns, "decoy", decoy, f"  - backendRefs: [{backend('other')}]"))
    wait_routed(emu, host, "/", "web")
    wait_routed(emu, decoy, "/", "other")
    web.seen.clear()
    answer = exchange(emu, f"GET http://{host}/x?q=1 HTTP/1.1\r\nHost: {decoy}\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200") and b'"backend": "web"' in answer
    assert [(s["path"], s["host"]) for s in web.seen] == [("/x?q=1", host)]
    # the service-name form too: the authority names the service
    web.seen.clear()
    answer = exchange(emu, f"GET http://web.{ns}/y HTTP/1.1\r\nHost: {decoy}\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200") and [s["path"] for s in web.seen] == ["/y"]


def test_header_matches_see_every_header_and_the_gateway_is_the_edge(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    root, xff, upgrade = backends("root"), backends("xff"), backends("upgrade")
    apply(kubectl, "---".join(service_yaml(b.name, ns, b) for b in (root, xff, upgrade)))
    host = f"apart-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "apart", host, f"""
  - backendRefs: [{backend("root")}]
  - matches: [{{headers: [{{name: X-Forwarded-For, value: 10.0.0.1}}]}}]
    backendRefs: [{backend("xff")}]
  - matches: [{{headers: [{{name: TE, value: trailers}}]}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: X-Forwarded-For, value: 6.6.6.6}}]}}
    backendRefs: [{backend("upgrade")}]
"""))
    wait_routed(emu, host, "/", "root")
    assert backend_of(get(emu, host, "/", headers={"X-Forwarded-For": "10.0.0.1"})) == "xff"
    seen = get(emu, host, "/", headers={"TE": "trailers"}).json()
    assert seen["backend"] == "upgrade" and "6.6.6.6" not in seen["headers"]["x-forwarded-for"]
    # what a client says of the original request is not believed: the gateway is the edge
    seen = get(emu, host, "/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}).json()
    assert seen["headers"]["x-forwarded-proto"] == "http" and seen["headers"]["x-forwarded-host"] == host


def test_a_mirror_copy_carries_the_rules_filters_not_the_backends(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    web, mirror = backends("web"), backends("mirror")
    apply(kubectl, service_yaml("web", ns, web) + "---" + service_yaml("mirror", ns, mirror))
    host = f"mirror-filters-{ns}.example"
    apply(kubectl, gateway(ns) + "---" + route(ns, "mirror", host, f"""
  - filters:
    - type: RequestMirror
      requestMirror: {{backendRef: {backend("mirror")}}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: X-Rule, value: "yes"}}]}}
    backendRefs:
    - name: web
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {{set: [{{name: X-Primary, value: "only"}}]}}
"""))
    wait_routed(emu, host, "/", "web")
    seen = get(emu, host, "/copied").json()["headers"]
    assert seen["x-rule"] == "yes" and seen["x-primary"] == "only"
    copy = eventually(lambda: next((s for s in mirror.seen if s["path"] == "/copied"), None))
    assert copy["headers"]["x-rule"] == "yes" and "x-primary" not in copy["headers"]


def test_six_hundred_routes_in_one_apply(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    web = backends("web")
    apply(kubectl, service_yaml("web", ns, web) + "---" + gateway(ns))
    n = 600
    routes = "---".join(route(ns, f"r{i}", f"r{i}-{ns}.example", f"  - backendRefs: [{backend('web')}]") for i in range(n))
    started = time.monotonic()
    apply(kubectl, routes)
    took = time.monotonic() - started
    # ~5 s here, as long as 600 ConfigMaps take: the API server's pace, no longer the routing's (110 s before)
    assert took < 15, f"kubectl apply of {n} routes took {took:.1f}s"
    wait_routed(emu, f"r{n - 1}-{ns}.example", "/", "web")

    def all_accepted() -> bool:
        out = kubectl.out("get", "httproutes", "-n", ns, "-o", "jsonpath={range .items[*]}{.status.parents[0].conditions[0].status}{\"\\n\"}{end}")
        return out.split() == ["True"] * n

    eventually(all_accepted, timeout=20, interval=0.5)
