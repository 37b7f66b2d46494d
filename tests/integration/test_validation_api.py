"""What the Kubernetes 1.32 API server refuses, refused over real HTTP with its status, reason, causes and
words — and nothing stored, allocated or changed by the refusal.

One emulator serves the whole module (each refusal leaves it as it was: that is what is checked). Before and
after every refused request the test lists the namespace's services and pods: the list's resourceVersion
(the store's last write) and every object must be the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Emulator, start_emulator

NS = "validation"
SERVICES = f"/api/v1/namespaces/{NS}/services"
PODS = f"/api/v1/namespaces/{NS}/pods"
LONG_NODE = "n" * 300


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(Path(tmp_path_factory.mktemp("validation")) / "data")
    try:
        with emu.client() as client:
            made = client.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
            assert made.status_code == 201, made.text
            settle(client)
        yield emu
    finally:
        emu.stop()


def settle(client: httpx.Client, timeout: float = 10) -> None:
    """Wait for the writes a fresh emulator still makes on its own: the status of its GatewayClass (the
    Gateway API status controller writes it on a short timer armed at start) and anything after it, until
    the store's resourceVersion stays put. The tests compare it before and after each refusal: a write of
    a controller in between is not theirs (CI once saw 45 then 46)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        gateway_class = client.get("/apis/gateway.networking.k8s.io/v1/gatewayclasses/emulator").json()
        accepted = any(
            c.get("type") == "Accepted" and c.get("status") == "True" for c in (gateway_class.get("status") or {}).get("conditions") or ()
        )
        now = client.get(SERVICES).json()["metadata"]["resourceVersion"]
        if accepted and now == last:
            return
        last = now
        time.sleep(0.2)
    raise AssertionError(f"the emulator still writes on its own after {timeout} s")


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with emulator.client() as client:
        yield client


def service(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], **spec}}


def pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "nginx", **(container or {})}], **spec},
    }


def state(api: httpx.Client) -> dict[str, Any]:
    """The namespace's services and pods, and the store's resourceVersion, as a client lists them."""
    out: dict[str, Any] = {}
    for path in (SERVICES, PODS):
        listed = api.get(path)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        out[path] = (body["metadata"]["resourceVersion"], body["items"])
    return out


# (id, path, body, code, reason, [(cause field, cause reason)], what the message says)
REFUSED: list[tuple[str, str, dict[str, Any], int, str, list[tuple[str, str]], str]] = [
    (
        "ip-families", SERVICES, service(ipFamilies=["IPv7"]), 422, "Invalid",
        [("spec.ipFamilies[0]", "FieldValueNotSupported")],
        'Service "web" is invalid: spec.ipFamilies[0]: Unsupported value: "IPv7": supported values: "IPv4", "IPv6"',
    ),
    (
        "ip-family-policy", SERVICES, service(ipFamilyPolicy="Maybe"), 422, "Invalid",
        [("spec.ipFamilyPolicy", "FieldValueNotSupported")],
        'Service "web" is invalid: spec.ipFamilyPolicy: Unsupported value: "Maybe": supported values: '
        '"PreferDualStack", "RequireDualStack", "SingleStack"',
    ),
    (
        "external-traffic-policy", SERVICES, service(type="NodePort", externalTrafficPolicy="Nope"), 422, "Invalid",
        [("spec.externalTrafficPolicy", "FieldValueNotSupported")],
        'Service "web" is invalid: spec.externalTrafficPolicy: Unsupported value: "Nope": supported values: "Cluster", "Local"',
    ),
    (
        "external-traffic-policy-on-a-cluster-ip-service", SERVICES, service(externalTrafficPolicy="Nope"), 422, "Invalid",
        [("spec.externalTrafficPolicy", "FieldValueInvalid")],
        'Service "web" is invalid: spec.externalTrafficPolicy: Invalid value: "Nope": may only be set for externally-accessible services',
    ),
    (
        "internal-traffic-policy", SERVICES, service(internalTrafficPolicy="Nope"), 422, "Invalid",
        [("spec.internalTrafficPolicy", "FieldValueNotSupported")],
        'Service "web" is invalid: spec.internalTrafficPolicy: Unsupported value: "Nope": supported values: "Cluster", "Local"',
    ),
    (
        "load-balancer-ip", SERVICES, service(type="LoadBalancer", loadBalancerIP="x"), 422, "Invalid",
        [("spec.loadBalancerIP", "FieldValueInvalid")],
        'Service "web" is invalid: spec.loadBalancerIP: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
    ),
    (
        "two-ipv4-cluster-ips", SERVICES, service(clusterIP="127.96.0.10", clusterIPs=["127.96.0.10", "127.96.0.11"]),
        422, "Invalid", [("spec.clusterIPs", "FieldValueInvalid")],
        'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"127.96.0.10", "127.96.0.11"}: '
        "may specify no more than one IP for each IP family",
    ),
    (
        "two-ipv4-cluster-ips-without-cluster-ip", SERVICES, service(clusterIPs=["127.96.0.10", "127.96.0.11"]),
        422, "Invalid", [("spec.clusterIPs", "FieldValueInvalid"), ("spec.clusterIPs", "FieldValueInvalid")],
        'Service "web" is invalid: [spec.clusterIPs: Invalid value: []string{"127.96.0.10", "127.96.0.11"}: must be empty '
        "when `clusterIP` is not specified, spec.clusterIPs: Invalid value: []string{\"127.96.0.10\", \"127.96.0.11\"}: "
        "may specify no more than one IP for each IP family]",
    ),
    (
        "second-family-with-a-single-stack-policy", SERVICES,
        service(clusterIP="127.96.0.10", clusterIPs=["127.96.0.10", "fd00::10"]), 422, "Invalid",
        [("spec.ipFamilyPolicy", "FieldValueInvalid"), ("spec.clusterIPs[1]", "FieldValueInvalid")],
        "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when "
        'multiple cluster IPs are specified, spec.clusterIPs[1]: Invalid value: []string{"127.96.0.10", "fd00::10"}: '
        "IPv6 is not configured on this cluster",
    ),
    (
        "second-family-the-emulator-does-not-serve", SERVICES,
        service(clusterIP="127.96.0.10", clusterIPs=["127.96.0.10", "fd00::10"], ipFamilyPolicy="PreferDualStack"),
        422, "Invalid", [("spec.clusterIPs[1]", "FieldValueInvalid")],
        'spec.clusterIPs[1]: Invalid value: []string{"127.96.0.10", "fd00::10"}: IPv6 is not configured on this cluster',
    ),
    (
        "require-dual-stack", SERVICES, service(ipFamilyPolicy="RequireDualStack"), 422, "Invalid",
        [("spec.ipFamilyPolicy", "FieldValueInvalid")],
        'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services',
    ),
    (
        "external-ip-not-an-address", SERVICES, service(externalIPs=["x"]), 422, "Invalid",
        [("spec.externalIPs[0]", "FieldValueInvalid")],
        'spec.externalIPs[0]: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
    ),
    (
        "external-ips-unspecified", SERVICES, service(externalIPs=["0.0.0.0", "::"]), 422, "Invalid",
        [("spec.externalIPs[0]", "FieldValueInvalid"), ("spec.externalIPs[1]", "FieldValueInvalid")],
        'spec.externalIPs[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0), '
        'spec.externalIPs[1]: Invalid value: "::": may not be unspecified (::)',
    ),
    (
        "external-ips-link-local", SERVICES, service(externalIPs=["169.254.169.254", "fe80::1"]), 422, "Invalid",
        [("spec.externalIPs[0]", "FieldValueInvalid"), ("spec.externalIPs[1]", "FieldValueInvalid")],
        'spec.externalIPs[0]: Invalid value: "169.254.169.254": may not be in the link-local range (169.254.0.0/16, fe80::/10)',
    ),
    (
        "external-ips-link-local-multicast", SERVICES, service(externalIPs=["224.0.0.251", "ff02::fb"]), 422, "Invalid",
        [("spec.externalIPs[0]", "FieldValueInvalid"), ("spec.externalIPs[1]", "FieldValueInvalid")],
        'spec.externalIPs[1]: Invalid value: "ff02::fb": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)',
    ),
    (
        "external-name-label-over-63", SERVICES,
        {"metadata": {"name": "web"}, "spec": {"type": "ExternalName", "externalName": "a" * 64 + ".example.com"}},
        422, "Invalid", [("spec.externalName", "FieldValueInvalid")],
        f'spec.externalName: Invalid value: "{"a" * 64}.example.com": must be a valid DNS name: each label must be no more than 63 characters',
    ),
    (
        "port-as-a-string", SERVICES, service(ports=[{"port": "80"}]), 400, "BadRequest", [],
        'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field '
        "ServicePort.spec.ports.port of type int32",
    ),
    (
        "container-port-as-a-string", PODS, pod({"ports": [{"containerPort": "80"}]}), 400, "BadRequest", [],
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field '
        "ContainerPort.spec.containers.ports.containerPort of type int32",
    ),
    (
        "host-network-as-a-string", PODS, pod(hostNetwork="yes"), 400, "BadRequest", [],
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field '
        "PodSpec.spec.hostNetwork of type bool",
    ),
    (
        "node-name-over-253", PODS, pod(nodeName=LONG_NODE), 422, "Invalid", [("spec.nodeName", "FieldValueInvalid")],
        f'Pod "web" is invalid: spec.nodeName: Invalid value: "{LONG_NODE}": must be no more than 253 characters',
    ),
    (
        "volume-mount-of-a-missing-volume", PODS, pod({"volumeMounts": [{"name": "x", "mountPath": "/x"}]}), 422, "Invalid",
        [("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound")],
        'Pod "web" is invalid: spec.containers[0].volumeMounts[0].name: Not found: "x"',
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "code", "reason", "causes", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refused_with_the_api_servers_status_and_nothing_changes(
    api: httpx.Client, path: str, body: dict[str, Any], code: int, reason: str, causes: list[tuple[str, str]], message: str
) -> None:
    before = state(api)
    response = api.post(path, json=body)
    assert response.status_code == code, response.text
    status = response.json()
    assert (status["kind"], status["status"], status["reason"], status["code"]) == ("Status", "Failure", reason, code)
    assert message in status["message"]
    assert [(c["field"], c["reason"]) for c in status.get("details", {}).get("causes", [])] == causes
    if code == 422:
        assert status["details"]["kind"] == body.get("kind", "Service") and status["details"]["name"] == "web"
    assert state(api) == before
    # the same manifest as YAML (what kubectl sends) gets the same answer
    as_yaml = api.post(path, content=yaml.safe_dump(body).encode(), headers={"Content-Type": "application/yaml"})
    assert (as_yaml.status_code, as_yaml.json()["message"]) == (code, status["message"])
    assert state(api) == before


def test_a_refused_update_changes_nothing(api: httpx.Client) -> None:
    created = api.post(SERVICES, json=service(type="NodePort"))
    assert created.status_code == 201, created.text
    try:
        before = state(api)
        for change in (
            {"externalTrafficPolicy": "Nope"}, {"ipFamilyPolicy": "Maybe"}, {"externalIPs": ["0.0.0.0"]},
            {"clusterIPs": [created.json()["spec"]["clusterIP"], "127.96.0.99"]},
        ):
            body = created.json()
            body["spec"].update(change)
            refused = api.put(f"{SERVICES}/web", json=body)
            assert (refused.status_code, refused.json()["reason"]) == (422, "Invalid"), refused.text
            assert state(api) == before
        # a patch whose result does not decode (the API server answers 422 on the field "patch" here)
        patched = api.patch(
            f"{SERVICES}/web", json={"spec": {"ports": [{"port": 80, "nodePort": "30080"}]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code in (400, 422) and "of type int32" in patched.json()["message"], patched.text
        assert state(api) == before
    finally:
        api.delete(f"{SERVICES}/web")


@pytest.mark.parametrize(
    "spec",
    [
        {"externalIPs": ["127.0.0.42", "198.51.100.7"]},  # loopback stays allowed: every emulator address is in 127/8
        {"ipFamilyPolicy": "PreferDualStack"},
        {"clusterIP": "127.96.0.77", "clusterIPs": ["127.96.0.77"], "ipFamilies": ["IPv4"]},
        {"type": "NodePort", "externalTrafficPolicy": "Local"},
    ],
)
def test_what_the_api_server_accepts_is_accepted(api: httpx.Client, spec: dict[str, Any]) -> None:
    created = api.post(SERVICES, json=service(**spec))
    try:
        assert created.status_code == 201, created.text
        stored = created.json()["spec"]
        assert stored["ipFamilies"] == ["IPv4"] and stored["clusterIPs"] == [stored["clusterIP"]]
    finally:
        api.delete(f"{SERVICES}/web")


@pytest.mark.parametrize("selector", ["a in ()", "a in (b,,c)", "a notin ()"])
def test_empty_entries_in_a_set_selector_select_the_empty_value_as_in_kubernetes(api: httpx.Client, selector: str) -> None:
    # apimachinery parses these (its own example of valid syntax is "x in (foo,,baz),y,z notin ()"),
    # so the API server answers them with a list, not a 400
    made = [api.post(PODS, json={**pod(), "metadata": {"name": name, "labels": {"a": value}}}) for name, value in (("empty", ""), ("dee", "d"))]
    try:
        assert [m.status_code for m in made] == [201, 201], [m.text for m in made]
        listed = api.get(PODS, params={"labelSelector": selector})
        assert listed.status_code == 200, listed.text
        names = {p["metadata"]["name"] for p in listed.json()["items"]}
        assert names == ({"dee"} if "notin" in selector else {"empty"})
    finally:
        for name in ("empty", "dee"):
            api.delete(f"{PODS}/{name}", params={"gracePeriodSeconds": "0"})
