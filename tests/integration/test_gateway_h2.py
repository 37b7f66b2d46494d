"""HTTP/2 through `emulator serve`'s gateway, with real kubectl manifests and real clients: a GRPCRoute
that matches methods routes a grpcio client to a grpcio server (h2c upstream), in clear text (h2c prior
knowledge) and over TLS (ALPN h2, the certificate from a Secret chosen by SNI); curl with HTTP/2 prior
knowledge reaches an HTTP/1.1 backend through an HTTPRoute and its filters; a service port with
appProtocol kubernetes.io/h2c is reached over h2c by service name."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from tests.conftest import Emulator, require_tool
from tests.integration.gateway_support import (
    Backend,
    apply,
    eventually,
    gateway_emulator,
    https_port,
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
    emulator = gateway_emulator(tmp_path_factory.mktemp("gateway-h2"))
    yield emulator
    emulator.stop()


@pytest.fixture
def grpc_port() -> Iterator[int]:
    """A grpcio server on loopback: grpc.health.v1 and a raw-bytes echo (test.Echo/Say)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))

    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"echo:" + request + b":" + dict(context.invocation_metadata()).get("x-added", "").encode()

    echo = grpc.method_handlers_generic_handler("test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})
    server.add_generic_rpc_handlers((echo,))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


def grpc_service_yaml(name: str, ns: str, port: int, app_protocol: str = "") -> str:
    app = f", appProtocol: {app_protocol}" if app_protocol else ""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  ports: [{{name: grpc, port: 50051, targetPort: {port}{app}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {name}, namespace: {ns}}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: grpc, port: {port}}}]
"""


def gateway_yaml(ns: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: emulator}}
spec: {{controllerName: emulator.local/gateway}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: emulator
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
"""


def channel(emu: Emulator, authority: str) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{emu.gateway_port}", options=[("grpc.default_authority", authority)])


def test_grpcroute_routes_matching_methods_to_a_grpc_server(emu: Emulator, kubectl: Kubectl, ns: str, grpc_port: int) -> None:
    host = f"grpc.{ns}.example"
    apply(kubectl, grpc_service_yaml("grpc", ns, grpc_port) + "---" + gateway_yaml(ns) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{host}]
  rules:
  - matches: [{{method: {{service: grpc.health.v1.Health, method: Check}}}}]
    backendRefs: [{{name: grpc, port: 50051}}]
  - matches: [{{method: {{service: test.Echo}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-added, value: by-grpcroute}}]}}
    backendRefs: [{{name: grpc, port: 50051}}]
""")
    with channel(emu, host) as ch:
        stub = health_pb2_grpc.HealthStub(ch)

        def check() -> bool:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.RpcError as exc:
                raise AssertionError(exc.code()) from exc
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        eventually(check, timeout=10)
        assert ch.unary_unary("/test.Echo/Say")(b"hi", timeout=5) == b"echo:hi:by-grpcroute"
        for _ in range(20):  # a streaming call the gateway answers itself: its status every time
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Watch(health_pb2.HealthCheckRequest(), timeout=5))  # no rule matches Watch
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, info.value
            assert info.value.details() == f'no route for POST /grpc.health.v1.Health/Watch on host "{host}"'


def test_a_grpc_call_the_gateway_answers_itself_gets_a_grpc_status(emu: Emulator, kubectl: Kubectl, ns: str) -> None:
    host = f"empty.{ns}.example"
    apply(kubectl, f"""
apiVersion: v1
kind: Service
metadata: {{name: empty, namespace: {ns}}}
spec:
  ports: [{{name: grpc, port: 50051, appProtocol: kubernetes.io/h2c}}]
---""" + gateway_yaml(ns) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{host}]
  rules:
  - backendRefs: [{{name: empty, port: 50051}}]
""")
    with channel(emu, host) as ch:
        say = ch.unary_unary("/test.Echo/Say")

        def unavailable() -> bool:
            with pytest.raises(grpc.RpcError) as info:
                say(b"hi", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
            return True

        eventually(unavailable, timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            say(b"hi", timeout=5)
        assert info.value.details() == f'no endpoints available for service "{ns}/empty" (port 50051)'
    with channel(emu, f"empty.{ns}:50051") as ch:  # by service name: the same answer
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/test.Echo/Say")(b"\xff" * 10, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with channel(emu, "nosuch.example") as ch:  # no route, a message with what percent-encoding keeps
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary("/test.Echo/Say")(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details().startswith('no service for Host "nosuch.example": use <service>.<namespace>')
    with emu.client() as api:  # the flow keeps the HTTP status and the reason

        def flow() -> dict[str, Any] | None:
            items = api.get("/emulator/v1/flows", params={"kind": "http"}).json()["items"]
            return next((f for f in items if f["http"]["host"] == "nosuch.example"), None)

        found = eventually(flow)
        assert found["http"]["status"] == 404 and found["verdict"] == "error", found
        assert found["error"].startswith('no service for Host "nosuch.example"'), found


def test_h2c_service_port_reached_by_service_name(emu: Emulator, kubectl: Kubectl, ns: str, grpc_port: int) -> None:
    apply(kubectl, grpc_service_yaml("grpc", ns, grpc_port, app_protocol="kubernetes.io/h2c"))
    with channel(emu, f"grpc.{ns}:50051") as ch:
        stub = health_pb2_grpc.HealthStub(ch)

        def check() -> bool:
            try:
                return bool(stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING)
            except grpc.RpcError as exc:
                raise AssertionError(exc.code()) from exc

        eventually(check, timeout=10)


def test_curl_h2c_through_an_httproute_to_an_http1_backend(emu: Emulator, kubectl: Kubectl, ns: str, backends: Start) -> None:
    curl = require_tool("curl")
    host = f"web.{ns}.example"
    apply(kubectl, service_yaml("web", ns, backends("web")) + "---" + gateway_yaml(ns) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{host}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /app}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{add: [{{name: x-via, value: h2}}]}}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{remove: [x-remove-me]}}
    backendRefs: [{{name: web, port: 80}}]
""")
    wait_routed(emu, host, "/app")
    done = subprocess.run(
        [curl, "-sS", "-i", "--http2-prior-knowledge", "-H", f"Host: {host}", "--data-binary", "payload",
         f"http://127.0.0.1:{emu.gateway_port}/app/x?y=1"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("HTTP/2 200"), head
    assert "x-remove-me" not in head.lower() and "x-backend: web" in head.lower()
    seen = json.loads(body)
    assert seen["method"] == "POST" and seen["path"] == "/app/x?y=1" and seen["body"] == "payload"
    assert seen["headers"]["x-via"] == "h2" and seen["host"] == host



def test_grpcroute_over_tls_alpn_h2_with_a_certificate_from_a_secret(emu: Emulator, kubectl: Kubectl, ns: str, grpc_port: int) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization

    from emulator.security.tls import _new_key, self_signed_certificate

    host = f"grpc.{ns}.example"
    key = _new_key()
    cert = self_signed_certificate(key, [host]).encode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    apply(kubectl, grpc_service_yaml("grpc", ns, grpc_port) + f"""---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {{name: grpc-tls, namespace: {ns}}}
data: {{tls.crt: {base64.b64encode(cert).decode()}, tls.key: {base64.b64encode(key_pem).decode()}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: emulator}}
spec: {{controllerName: emulator.local/gateway}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: emulator
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: {host}
    tls: {{certificateRefs: [{{name: grpc-tls}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{method: {{service: test.Echo, method: Say}}}}]
    backendRefs: [{{name: grpc, port: 50051}}]
""")
    creds = grpc.ssl_channel_credentials(root_certificates=cert)
    target = f"127.0.0.1:{https_port(emu)}"
    with grpc.secure_channel(target, creds, options=[("grpc.default_authority", host)]) as ch:
        say = ch.unary_unary("/test.Echo/Say")

        def check() -> bool:
            try:
                return bool(say(b"tls", timeout=2) == b"echo:tls:")
            except grpc.RpcError as exc:
                raise AssertionError(exc.code(), exc.details()) from exc

        eventually(check, timeout=10)
