"""Ingress through the gateway, with real kubectl manifests, real backends and real clients (httpx, curl, raw
sockets): the docs' minimal Ingress, host and path precedence, wildcard hosts, defaultBackend, class
handling, ports by name, broken backends (500), `*.localhost` as a browser sends it, WebSocket upgrades,
keep-alive across hosts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Emulator, require_tool
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

Start = Callable[[str], Backend]


@pytest.fixture
def backends() -> Iterator[Start]:
    yield from running_backends()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = gateway_emulator(tmp_path_factory.mktemp("gateway-ingress"))
    yield emulator
    emulator.stop()


def ingress(name: str, ns: str, spec: str, annotations: str = "") -> str:
    meta = f"{{name: {name}, namespace: {ns}{', annotations: ' + annotations if annotations else ''}}}"
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {meta}
spec:
{spec}
"""


def test_minimal_ingress_from_the_docs(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    test = backends("test")
    apply(kubectl, service_yaml("test", ns, test))
    # the minimal Ingress of the Kubernetes documentation (rewrite-target annotation and all)
    apply(kubectl, ingress("minimal-ingress", ns, """
  ingressClassName: emulator
  rules:
  - http:
      paths:
      - path: /testpath
        pathType: Prefix
        backend:
          service:
            name: test
            port:
              number: 80
""", annotations="{nginx.ingress.kubernetes.io/rewrite-target: /}"))
    response = wait_routed(emu, "anything.example", "/testpath/x?q=1")
    seen = response.json()
    assert seen["backend"] == "test" and seen["path"] == "/testpath/x?q=1"
    assert seen["host"] == "anything.example"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-host"] == "anything.example"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert get(emu, "anything.example", "/testpathology").status_code == 404
    # the gateway's address in the Ingress' status
    status = eventually(lambda: kubectl.out("get", "ingress", "-n", ns, "minimal-ingress", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"))
    assert status == "127.0.0.1"
    kubectl.run("delete", "ingress", "-n", ns, "minimal-ingress")
    eventually(lambda: get(emu, "anything.example", "/testpath").status_code == 404)


def test_host_and_path_precedence(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    for name in ("exact", "api", "v2", "root", "late"):
        apply(kubectl, service_yaml(name, ns, backends(name)))
    host = f"shop-{ns}.example.com"

    def path(p: str, kind: str, svc: str) -> str:
        return f"      - {{path: {p}, pathType: {kind}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"

    apply(kubectl, ingress("first", ns, f"""
  rules:
  - host: {host}
    http:
      paths:
{path("/", "Prefix", "root")}{path("/api", "Prefix", "api")}{path("/api/v2", "Prefix", "v2")}{path("/exact", "Exact", "exact")}"""))
    wait_routed(emu, host, "/", "root")
    # a later Ingress for the same host and path loses to the older one; its other paths are served
    apply(kubectl, ingress("second", ns, f"""
  rules:
  - host: {host}
    http:
      paths:
{path("/", "Prefix", "late")}{path("/late", "ImplementationSpecific", "late")}"""))
    wait_routed(emu, host, "/late/x", "late")
    expected = {
        "/": "root", "/exact": "exact", "/exact/": "root", "/exactly": "root", "/api": "api", "/api/": "api",
        "/api/v1": "api", "/apix": "root", "/api/v2": "v2", "/api/v2/items": "v2", "/api/v20": "api", "/late": "late",
    }
    got = {p: backend_of(get(emu, host, p)) for p in expected}
    assert got == expected
    # the host is matched without its port and case
    assert backend_of(get(emu, f"{host.upper()}:{emu.gateway_port}", "/api/v2")) == "v2"


def test_wildcard_hosts(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    for name in ("wild", "tame"):
        apply(kubectl, service_yaml(name, ns, backends(name)))
    domain = f"{ns}.test"
    apply(kubectl, ingress("hosts", ns, f"""
  rules:
  - host: "*.{domain}"
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: wild, port: {{number: 80}}}}}}}}]}}
  - host: "tame.{domain}"
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: tame, port: {{number: 80}}}}}}}}]}}
"""))
    wait_routed(emu, f"a.{domain}", "/", "wild")
    assert backend_of(get(emu, f"tame.{domain}")) == "tame"
    assert backend_of(get(emu, f"b.{domain}.")) == "wild"
    assert get(emu, f"a.b.{domain}").status_code == 404  # a wildcard covers one label
    assert get(emu, domain).status_code == 404


def test_default_backend_and_service_names(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    for name in ("fallback", "web"):
        apply(kubectl, service_yaml(name, ns, backends(name)))
    apply(kubectl, ingress("fallback", ns, """
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
"""))
    wait_routed(emu, f"nowhere-{ns}.example", "/any/path", "fallback")
    # a service's own name still reaches it (service names come before hosts no rule names)
    assert backend_of(get(emu, f"web.{ns}")) == "web"
    assert backend_of(get(emu, f"web.{ns}.svc.cluster.local:80")) == "web"
    assert backend_of(get(emu, f"web.{ns}.localhost")) == "web"
    kubectl.run("delete", "ingress", "-n", ns, "fallback")
    response = eventually(lambda: (r := get(emu, f"nowhere-{ns}.example")).status_code == 404 and r)
    assert "<service>.<namespace>" in response.text


def test_class_handling(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    apply(kubectl, service_yaml("app", ns, backends("app")))
    rule = "  rules:\n  - host: {host}\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}]}}\n"
    apply(kubectl, ingress("classless", ns, rule.format(host=f"none-{ns}.example")))
    apply(kubectl, ingress("legacy", ns, rule.format(host=f"legacy-{ns}.example"), annotations="{kubernetes.io/ingress.class: emulator}"))
    apply(kubectl, ingress("other", ns, "  ingressClassName: nginx\n" + rule.format(host=f"other-{ns}.example")))
    wait_routed(emu, f"none-{ns}.example", "/", "app")  # no class: ours is the default class
    wait_routed(emu, f"legacy-{ns}.example", "/", "app")
    assert get(emu, f"other-{ns}.example").status_code == 404  # another controller's Ingress is left alone
    out = kubectl.out("get", "ingress", "-n", ns, "other", "-o", "jsonpath={.status.loadBalancer}")
    assert out in ("", "{}")


def test_port_by_name_and_broken_backends(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    apply(kubectl, service_yaml("named", ns, backends("named"), port=8080, port_name="web"))
    apply(kubectl, ingress("ports", ns, f"""
  rules:
  - host: ports-{ns}.example
    http:
      paths:
      - {{path: /named, pathType: Prefix, backend: {{service: {{name: named, port: {{name: web}}}}}}}}
      - {{path: /missing, pathType: Prefix, backend: {{service: {{name: nosuch, port: {{number: 80}}}}}}}}
      - {{path: /badport, pathType: Prefix, backend: {{service: {{name: named, port: {{number: 81}}}}}}}}
"""))
    wait_routed(emu, f"ports-{ns}.example", "/named", "named")
    missing = get(emu, f"ports-{ns}.example", "/missing")
    assert missing.status_code == 500 and "nosuch" in missing.text, missing.text
    badport = get(emu, f"ports-{ns}.example", "/badport")
    assert badport.status_code == 500 and "81" in badport.text, badport.text
    # fixing the reference fixes the route, with nothing else changed
    apply(kubectl, service_yaml("nosuch", ns, backends("nosuch")))
    wait_routed(emu, f"ports-{ns}.example", "/missing", "nosuch")


def expose_on_localhost(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start, name: str) -> None:
    """Service `name` and an Ingress that routes the host `<name>.localhost` to it, routed."""
    apply(kubectl, service_yaml(name, ns, backends(name)))
    apply(kubectl, ingress(name, ns, f"""
  rules:
  - host: {name}.localhost
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}]}}
"""))
    wait_routed(emu, f"{name}.localhost", "/", name)


def test_browser_style_localhost_names(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    curl = require_tool("curl")
    apply(kubectl, service_yaml("web", ns, backends("web")))
    expose_on_localhost(emu, kubectl, ns, backends, "app")
    # curl resolves *.localhost to loopback by itself, as browsers do: no Host header, no resolver set-up
    for url, name in ((f"http://app.localhost:{emu.gateway_port}/", "app"), (f"http://web.{ns}.localhost:{emu.gateway_port}/page", "web")):
        done = subprocess.run([curl, "-s", "-H", "User-Agent: Mozilla/5.0", "-H", "Accept: text/html", url], capture_output=True, text=True, timeout=10)
        assert json.loads(done.stdout)["backend"] == name, (url, done.stdout, done.stderr)


def test_a_real_browser_reaches_an_app_by_its_localhost_name(
    emu: Emulator, kubectl: Kubectl, ns: str, backends: Start, tmp_path: Path
) -> None:
    """Headless Chromium resolves `*.localhost` to loopback by itself (no hosts file, no resolver flag):
    the Ingress host `shop.localhost` answers it through the gateway."""
    chromium = require_tool("chromium")
    expose_on_localhost(emu, kubectl, ns, backends, "shop")
    done = subprocess.run(
        [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"http://shop.localhost:{emu.gateway_port}/in/the/shop",
        ],
        capture_output=True, text=True, timeout=90,
    )
    assert '"backend": "shop"' in done.stdout or '"backend":"shop"' in done.stdout, (done.stdout[-2000:], done.stderr[-2000:])
    assert "/in/the/shop" in done.stdout


def test_websocket_upgrade_through_an_ingress(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    apply(kubectl, service_yaml("ws", ns, backends("ws")))
    host = f"ws-{ns}.example"
    apply(kubectl, ingress("ws", ns, f"""
  rules:
  - host: {host}
    http: {{paths: [{{path: /socket, pathType: Prefix, backend: {{service: {{name: ws, port: {{number: 80}}}}}}}}]}}
"""))
    wait_routed(emu, host, "/socket", "ws")
    with raw_connection(emu.gateway_port) as sock:
        sock.sendall(
            f"GET /socket HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(b"hello frames")
        got = b""
        while len(got) < len(b"echo:hello frames"):
            got += sock.recv(4096)
        assert got == b"echo:hello frames"
    # an upgrade the gateway refuses ends the connection after the answer
    with raw_connection(emu.gateway_port) as sock:
        sock.sendall(f"GET /elsewhere HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 404") and b"Connection: close" in data


def test_keep_alive_across_two_hosts(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    for name in ("one", "two", "three"):
        apply(kubectl, service_yaml(name, ns, backends(name)))
    apply(kubectl, ingress("two-hosts", ns, f"""
  rules:
  - host: one-{ns}.example
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: one, port: {{number: 80}}}}}}}}]}}
  - host: two-{ns}.example
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: two, port: {{number: 80}}}}}}}}]}}
"""))
    wait_routed(emu, f"two-{ns}.example", "/", "two")
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{emu.gateway_port}", timeout=5) as client:
        order = ["one", "two", "three", "one", "two"]
        seen = []
        for name in order:
            host = f"three.{ns}" if name == "three" else f"{name}-{ns}.example"
            response = client.get("/", headers={"Host": host})
            seen.append(backend_of(response))
        assert seen == order
        assert client.get("/", headers={"Host": f"nobody-{ns}.example"}).status_code == 404
        assert backend_of(client.get("/", headers={"Host": f"one-{ns}.example"})) == "one"  # still usable after the 404
    # a client that asks for close is told so, and the connection ends after the response
    with raw_connection(emu.gateway_port) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: one-{ns}.example\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 200") and b"\r\nconnection: close" in head
    # the 404 names the hosts that are routed
    assert f"one-{ns}.example" in get(emu, "nobody.example").text or "routed hosts" in get(emu, "nobody.example").text


def test_the_dns_server_answers_ingress_hosts_in_its_domains_with_the_gateway(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    import dns.exception
    import dns.message
    import dns.query

    apply(kubectl, service_yaml("named", ns, backends("named")))
    apply(kubectl, ingress("named", ns, f"""
  rules:
  - host: named-{ns}.localhost
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: named, port: {{number: 80}}}}}}}}]}}
  - host: "*.apps-{ns}.localhost"
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: named, port: {{number: 80}}}}}}}}]}}
  - host: named-{ns}.example.com
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: named, port: {{number: 80}}}}}}}}]}}
"""))

    def answers(name: str) -> tuple[int, list[str]]:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=emu.dns_port, timeout=2)
        return reply.rcode(), [item.address for rrset in reply.answer for item in rrset]

    assert eventually(lambda: answers(f"named-{ns}.localhost") == (0, ["127.0.0.1"]))
    assert answers(f"a.apps-{ns}.localhost") == (0, ["127.0.0.1"])  # the Ingress wildcard: one label
    # outside the cluster zone and the gateway domains a host is the user's own: not answered as the gateway's
    try:  # forwarded upstream (none may answer here: a timeout is as good)
        assert "127.0.0.1" not in answers(f"named-{ns}.example.com")[1]
    except dns.exception.Timeout:
        pass
    kubectl.run("delete", "ingress", "named", "-n", ns)
    assert eventually(lambda: answers(f"named-{ns}.localhost")[1] != ["127.0.0.1"])


def test_post_bodies_and_head_requests(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start, tmp_path: Path) -> None:
    apply(kubectl, service_yaml("body", ns, backends("body")))
    host = f"body-{ns}.example"
    apply(kubectl, ingress("body", ns, f"""
  rules:
  - host: {host}
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: body, port: {{number: 80}}}}}}}}]}}
"""))
    wait_routed(emu, host, "/", "body")
    posted = get(emu, host, "/upload", method="POST", content=b"x" * 200_000)
    assert posted.json()["body"] == "x" * 200_000
    chunked = get(emu, host, "/upload", method="POST", content=iter([b"ab", b"cd"]))
    assert chunked.json()["body"] == "abcd"
    head = get(emu, host, "/", method="HEAD")
    assert head.status_code == 200 and head.content == b""


# -- the Proxy itself, fed store events (no emulator): the policy hook and a burst of changes ---------


async def test_routed_requests_pass_the_network_policy_hook() -> None:
    from emulator.kinds.ingress import INGRESSES
    from emulator.proxy import Proxy, ProxySettings
    from tests.integration.test_proxy_support import (
        HttpConn,
        added,
        endpoints,
        free_port,
        http_backend,
        loopback_ip,
        service,
    )

    class Deny:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, int]] = []

        def check(self, src_ip: str, dst_ip: str, dst_port: int, protocol: str) -> tuple[bool, str]:
            self.calls.append((src_ip, dst_ip, dst_port))
            return False, "default-deny in namespace default"

    ip = loopback_ip("127.97")
    bport = free_port(ip)
    runner = await http_backend(ip, bport)
    policy = Deny()
    gport = free_port()
    proxy = Proxy(ProxySettings(gateway_port=gport, sweep_interval=0.1), policy=policy)
    await proxy.start()
    try:
        proxy.apply(added("services", service("web", loopback_ip(), [{"name": "http", "port": 80}])))
        proxy.apply(added("endpoints", endpoints("web", [ip], [{"name": "http", "port": bport}])))
        for i in range(20):  # a burst: compiled once, on the next turn of the loop
            proxy.apply(added(INGRESSES.key, {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": f"web{i}", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"ingressClassName": "emulator", "rules": [{"host": f"app{i}.example", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                ]}}]},
            }))
        await proxy.sync()
        conn = await HttpConn.open("127.0.0.1", gport)
        status, _, body = await conn.request("GET", "/", host="app19.example")  # sync() waited for the routing
        assert status == 403 and b"denied by network policy: default-deny" in body, (status, body)
        assert policy.calls[-1] == ("127.0.0.1", ip, bport)
        assert proxy.gateway_listening() == [{
            "address": "127.0.0.1", "port": gport, "protocol": "HTTP", "listener": "80/HTTP", "serviceNames": True, "hosts": 20,
        }]
        proxy.policy = None
        status, _, body = await conn.request("GET", "/", host="app3.example")
        assert status == 200 and b'"backend"' in body
        conn.close()
    finally:
        await proxy.close()
        await runner.cleanup()
