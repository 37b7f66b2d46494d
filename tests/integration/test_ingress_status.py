"""The emulator as the Ingress controller of its class, seen through the real kubectl 1.32: the ADDRESS
`kubectl get ingress` shows (the gateway's), Ingresses of another class left alone, Warning Events for a
missing Service. (Requests through the gateway are tested with the proxy's data path.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.integration.kubectl_support import Kubectl, manifest

T = TypeVar("T")

# the documentation's minimal Ingress (concepts/services-networking/ingress, minimal-ingress.yaml)
MINIMAL_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: minimal-ingress
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: nginx-example
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
"""

TEST_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: test
spec:
  selector:
    app: test
  ports:
  - port: 80
    targetPort: 8080
"""


def eventually(check: Callable[[], T | None], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def address(kubectl: Kubectl, ns: str, name: str) -> str:
    return kubectl.out("get", "ingress", name, "-n", ns, "--no-headers", "-o", "custom-columns=A:.status.loadBalancer.ingress[*].ip").strip()


def test_the_minimal_ingress_gets_the_gateway_address(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    ours = MINIMAL_INGRESS.replace("  ingressClassName: nginx-example\n", "")  # the default class: the emulator's
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, TEST_SERVICE + "---\n" + ours))
    line = eventually(lambda: next((x for x in kubectl.out("get", "ingress", "-n", ns).splitlines() if "127.0.0.1" in x), None), 20.0)
    assert line.split()[:5] == ["minimal-ingress", "emulator", "*", "127.0.0.1", "80"]
    status = kubectl.out("get", "ingress", "minimal-ingress", "-n", ns, "-o", "jsonpath={.status.loadBalancer}")
    assert status == '{"ingress":[{"ip":"127.0.0.1"}]}'
    # a correct Ingress has no warnings
    assert "Warning" not in kubectl.out("get", "events", "-n", ns, "--field-selector", "involvedObject.name=minimal-ingress")


def test_an_ingress_of_another_class_is_left_alone(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, MINIMAL_INGRESS))  # class nginx-example: not ours
    marker = MINIMAL_INGRESS.replace("minimal-ingress", "ours").replace("  ingressClassName: nginx-example\n", "  ingressClassName: emulator\n")
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, marker, "ours.yaml"))
    eventually(lambda: address(kubectl, ns, "ours") == "127.0.0.1")  # by then the other would have one too
    assert address(kubectl, ns, "minimal-ingress") == "<none>"
    assert kubectl.out("get", "events", "-n", ns, "--field-selector", "involvedObject.name=minimal-ingress", "-o", "name") == ""
    # switched to our class: served; switched away: the address goes
    kubectl.out("patch", "ingress", "minimal-ingress", "-n", ns, "--type=merge", "-p", '{"spec":{"ingressClassName":"emulator"}}')
    eventually(lambda: address(kubectl, ns, "minimal-ingress") == "127.0.0.1")
    kubectl.out("patch", "ingress", "minimal-ingress", "-n", ns, "--type=merge", "-p", '{"spec":{"ingressClassName":"nginx-example"}}')
    eventually(lambda: address(kubectl, ns, "minimal-ingress") == "<none>")


def test_a_missing_service_is_a_warning_event(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    ours = MINIMAL_INGRESS.replace("  ingressClassName: nginx-example\n", "")
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, ours))  # no Service "test"
    events = eventually(lambda: kubectl.out(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=minimal-ingress,type=Warning",
        "-o", "custom-columns=REASON:.reason,MESSAGE:.message,COUNT:.count", "--no-headers",
    ).strip())
    reason, rest = events.split(None, 1)
    assert reason == "BackendNotFound"
    assert rest.split() == ["service", f'"{ns}/test"', "not", "found", "1"]
    described = kubectl.out("describe", "ingress", "minimal-ingress", "-n", ns)
    assert "BackendNotFound" in described
    assert "127.0.0.1" in address(kubectl, ns, "minimal-ingress")  # served all the same (the gateway answers 500)
