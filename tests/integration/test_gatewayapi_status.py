"""The Gateway API with the real kubectl 1.32: the kinds served built in (api-resources, explain, the API
server's 422 for a manifest the schema or a CEL rule refuses), the GatewayClass `emulator` there from the
start, and the statuses the emulator writes as a conformant implementation: a Gateway Programmed with
the gateway's ADDRESS, a route's parent Accepted and ResolvedRefs, a cross-namespace backendRef refused
(RefNotPermitted) until a ReferenceGrant allows it — asserted on kubectl's own output.

One emulator serves the module; each test works in its own namespace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Emulator
from tests.integration.kubectl_support import Kubectl, manifest

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: emulator
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
    targetPort: 8080
"""


def route(backend_namespace: str | None = None, gateway_namespace: str | None = None) -> str:
    namespace = f"\n      namespace: {backend_namespace}" if backend_namespace else ""
    parent_namespace = f"\n    namespace: {gateway_namespace}" if gateway_namespace else ""
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
  - name: gw{parent_namespace}
  hostnames: [web.example.com]
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /}}
    backendRefs:
    - name: web{namespace}
      port: 80
"""


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, "condition not met in time"
            return result
        time.sleep(0.1)


def parent_conditions(kubectl: Kubectl, ns: str, name: str = "web") -> dict[str, dict[str, Any]]:
    status = json.loads(kubectl.out("get", "httproute", name, "-n", ns, "-o", "jsonpath={.status}") or "{}")
    parents = status.get("parents") or []
    return {c["type"]: c for c in parents[0]["conditions"]} if parents else {}


def test_the_kinds_are_listed_and_explained(kubectl: Kubectl) -> None:
    listed = kubectl.out("api-resources", "--api-group=gateway.networking.k8s.io")
    lines = {line.split()[0]: line.split() for line in listed.splitlines()[1:]}
    assert set(lines) == {"gatewayclasses", "gateways", "grpcroutes", "httproutes", "referencegrants"}
    assert lines["gateways"][1:] == ["gtw", "gateway.networking.k8s.io/v1", "true", "Gateway"]
    assert lines["referencegrants"][2] == "gateway.networking.k8s.io/v1"
    explained = kubectl.out("explain", "httproute.spec.rules.backendRefs")
    assert "weight\t<integer>" in explained and "BackendRefs defines the backend(s)" in explained


def test_the_emulator_gateway_class_is_accepted(kubectl: Kubectl) -> None:
    eventually(lambda: "True" in kubectl.out("get", "gatewayclass", "emulator"))
    out = kubectl.out("get", "gatewayclass", "emulator")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "CONTROLLER", "ACCEPTED", "AGE"]
    assert row.split()[:3] == ["emulator", "emulator.local/gateway", "True"]


def test_a_gateway_is_programmed_and_its_route_accepted(kubectl: Kubectl, ns: str, tmp_path: Path, emu: Emulator) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, "---\n".join([SERVICE, GATEWAY, route()])))
    kubectl.out("wait", "-n", ns, "--for=condition=Programmed", "gateway/gw", "--timeout=20s")
    header, row = kubectl.out("get", "gateway", "gw", "-n", ns).splitlines()[:2]
    assert header.split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert row.split()[:4] == ["gw", "emulator", "127.0.0.1", "True"]
    listeners = json.loads(kubectl.out("get", "gateway", "gw", "-n", ns, "-o", "jsonpath={.status.listeners}"))
    eventually(lambda: json.loads(kubectl.out("get", "gateway", "gw", "-n", ns, "-o", "jsonpath={.status.listeners}"))[0]["attachedRoutes"] == 1)
    assert {c["type"]: c["status"] for c in listeners[0]["conditions"]} == {"Accepted": "True", "Conflicted": "False", "Programmed": "True", "ResolvedRefs": "True"}
    conditions = eventually(lambda: parent_conditions(kubectl, ns))
    assert (conditions["Accepted"]["status"], conditions["ResolvedRefs"]["status"]) == ("True", "True")
    assert conditions["Accepted"]["observedGeneration"] == 1
    # nothing changes: no status write, the resourceVersion stays
    version = kubectl.out("get", "httproute", "web", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
    time.sleep(0.5)
    assert kubectl.out("get", "httproute", "web", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}") == version
    # a spec change: the conditions follow the new generation
    kubectl.out("patch", "httproute", "web", "-n", ns, "--type=merge", "-p", '{"spec": {"hostnames": ["other.example.com"]}}')
    assert eventually(lambda: parent_conditions(kubectl, ns)["Accepted"]["observedGeneration"] == 2)


def test_a_cross_namespace_backend_needs_a_reference_grant(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    backends = f"{ns}-backends"
    kubectl.out("create", "namespace", backends)
    kubectl.out("apply", "-n", backends, "-f", manifest(tmp_path, SERVICE, "svc.yaml"))
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, "---\n".join([GATEWAY, route(backends)])))
    refused = eventually(lambda: (c := parent_conditions(kubectl, ns)) and c["ResolvedRefs"]["status"] == "False" and c)
    assert refused["ResolvedRefs"]["reason"] == "RefNotPermitted"
    assert refused["Accepted"]["status"] == "True"
    grant = f"""\
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: from-{ns}
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: {ns}
  to:
  - group: ""
    kind: Service
"""
    kubectl.out("apply", "-n", backends, "-f", manifest(tmp_path, grant, "grant.yaml"))
    allowed = eventually(lambda: (c := parent_conditions(kubectl, ns)) and c["ResolvedRefs"]["status"] == "True" and c)
    assert allowed["ResolvedRefs"]["reason"] == "ResolvedRefs"
    # Accepted did not change: its lastTransitionTime is kept
    assert allowed["Accepted"]["lastTransitionTime"] == refused["Accepted"]["lastTransitionTime"]
    kubectl.out("delete", "namespace", backends, "--wait=false")


def test_a_route_in_another_namespace_than_a_same_namespace_listener_is_not_allowed(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    other = f"{ns}-routes"
    kubectl.out("create", "namespace", other)
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, GATEWAY.replace("from: All", "from: Same")))
    kubectl.out("apply", "-n", other, "-f", manifest(tmp_path, "---\n".join([SERVICE, route(gateway_namespace=ns)]), "route.yaml"))
    conditions = eventually(lambda: parent_conditions(kubectl, other))
    assert (conditions["Accepted"]["status"], conditions["Accepted"]["reason"]) == ("False", "NotAllowedByListeners")
    kubectl.out("delete", "namespace", other, "--wait=false")


def test_an_invalid_gateway_is_refused_with_the_rules_message(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    bad = GATEWAY + "  - name: http\n    port: 8080\n    protocol: HTTP\n"
    done = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, bad), ok=False)
    assert done.returncode != 0
    assert 'spec.listeners: Invalid value: "array": Listener name must be unique within the Gateway' in done.stderr


def test_an_https_listener_is_programmed_once_its_secret_exists(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from emulator.security import tls

    https = GATEWAY.replace("name: http\n    port: 80\n    protocol: HTTP", "name: https\n    port: 443\n    protocol: HTTPS\n    hostname: secure.example.com\n"
                            "    tls:\n      certificateRefs:\n      - name: secure-cert")
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, https))

    def listener() -> dict[str, Any]:
        found = json.loads(kubectl.out("get", "gateway", "gw", "-n", ns, "-o", "jsonpath={.status.listeners}") or "[]")
        return {c["type"]: (c["status"], c["reason"]) for c in found[0]["conditions"]} if found else {}

    assert eventually(lambda: listener().get("ResolvedRefs") == ("False", "InvalidCertificateRef"))
    assert listener()["Programmed"] == ("False", "Invalid")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "tls.crt").write_text(tls.self_signed_certificate(key, ["secure.example.com"]))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    kubectl.out("create", "secret", "tls", "secure-cert", "-n", ns, f"--cert={tmp_path / 'tls.crt'}", f"--key={tmp_path / 'tls.key'}")
    assert eventually(lambda: listener().get("ResolvedRefs") == ("True", "ResolvedRefs"))
    assert listener()["Programmed"] == ("True", "Programmed")
