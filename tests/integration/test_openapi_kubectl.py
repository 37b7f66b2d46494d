"""The real kubectl 1.32 reading the emulator's OpenAPI: `explain` prints the 1.32 fields, types and
descriptions (v3); `apply` of a correct multi-kind manifest needs no flag; a typo'd field is refused naming
the field, by the server (kubectl sends fieldValidation=Strict, as the v3 PATCH operations offer it) or by
kubectl itself from the v2 protobuf document (a `kind: List` manifest, which kubectl always validates
client-side). Also the first `/openapi/v2` request's time and the memory the schemas add.

One emulator serves the module; each test works in its own namespace, with a kubeconfig and a discovery
cache inside the test's temporary directory.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator.kinds import RESOURCE_TYPES
from tests.conftest import Emulator, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

V2_PROTOBUF_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # what kubectl sends

@pytest.fixture(scope="module")
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


def field_line(output: str, name: str) -> str:
    """The `  name\t<type>` line of explain's FIELDS list."""
    match = re.search(rf"^  {re.escape(name)}\t<[^\n]*$", output, re.M)
    assert match, f"no field {name!r} in:\n{output}"
    return match.group(0).strip()


# -- explain -----------------------------------------------------------------------------------------


def test_explain_pod_spec_containers(kubectl: Kubectl) -> None:
    out = kubectl.out("explain", "pod.spec.containers")
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n")
    assert "FIELD: containers <[]Container>" in out
    assert "List of containers belonging to the pod." in out  # the 1.32 description
    assert field_line(out, "name") == "name\t<string> -required-"
    assert field_line(out, "image") == "image\t<string>"
    assert field_line(out, "ports") == "ports\t<[]ContainerPort>"
    assert field_line(out, "resources") == "resources\t<ResourceRequirements>"
    assert field_line(out, "livenessProbe") == "livenessProbe\t<Probe>"
    limits = kubectl.out("explain", "pod.spec.containers.resources.limits")
    assert "FIELD: limits <map[string]Quantity>" in limits
    assert "FIELD: targetPort <IntOrString>" in kubectl.out("explain", "service.spec.ports.targetPort")
    assert "finalizers\t<[]string>" in kubectl.out("explain", "namespace.spec")


def test_explain_a_field_that_does_not_exist(kubectl: Kubectl) -> None:
    missing = kubectl.run("explain", "pod.spec.containerz", ok=False)
    assert missing.returncode != 0
    assert 'field "containerz" does not exist' in missing.stderr


@pytest.mark.skipif(not any(r.kind == "Deployment" for r in RESOURCE_TYPES), reason="Deployment is not served yet")
def test_explain_deployment_spec_strategy(kubectl: Kubectl) -> None:
    out = kubectl.out("explain", "deployment.spec.strategy")
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n")
    assert "FIELD: strategy <DeploymentStrategy>" in out
    assert "The deployment strategy to use to replace existing pods with new ones." in out
    assert field_line(out, "rollingUpdate") == "rollingUpdate\t<RollingUpdateDeployment>"
    assert field_line(out, "type").startswith("type\t<string>")


# -- apply -------------------------------------------------------------------------------------------

SHOP = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}-shop
  labels: {{team: shop}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: cart, namespace: {ns}-shop}}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Service
metadata:
  name: cart
  namespace: {ns}-shop
  labels: {{app: cart}}
  annotations: {{example.com/owner: shop}}
spec:
  type: ClusterIP
  selector: {{app: cart}}
  ports:
  - {{name: http, port: 80, targetPort: http, protocol: TCP}}
  - {{name: metrics, port: 9090, targetPort: 9090}}
  sessionAffinity: None
---
apiVersion: v1
kind: Pod
metadata:
  name: cart-1
  namespace: {ns}-shop
  labels: {{app: cart}}
spec:
  serviceAccountName: cart
  restartPolicy: Always
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: nginx:1.25
    imagePullPolicy: IfNotPresent
    args: ["--port", "8080"]
    env:
    - {{name: MODE, value: prod}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    ports:
    - {{name: http, containerPort: 8080, protocol: TCP}}
    resources:
      requests: {{cpu: 100m, memory: 64Mi}}
      limits: {{memory: 128Mi}}
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 5
"""


def test_apply_a_multi_kind_manifest_with_no_flags(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    path = manifest(tmp_path, SHOP.format(ns=ns))
    assert kubectl.out("apply", "-f", path).splitlines() == [
        f"namespace/{ns}-shop created",
        "serviceaccount/cart created",
        "service/cart created",
        "pod/cart-1 created",
    ]
    assert kubectl.out("apply", "-f", path).splitlines() == [
        f"namespace/{ns}-shop unchanged",
        "serviceaccount/cart unchanged",
        "service/cart unchanged",
        "pod/cart-1 unchanged",
    ]
    # a change: kubectl computes the strategic merge patch from the served schemas' merge keys
    changed = SHOP.format(ns=ns).replace("  - {name: metrics, port: 9090, targetPort: 9090}\n", "")
    changed = changed.replace("image: nginx:1.25", "image: nginx:1.26")  # what a pod's spec may change
    path = manifest(tmp_path, changed, "m2.yaml")
    assert kubectl.out("apply", "-f", path).splitlines() == [
        f"namespace/{ns}-shop unchanged",
        "serviceaccount/cart unchanged",
        "service/cart configured",
        "pod/cart-1 configured",
    ]
    service = api.get(f"/api/v1/namespaces/{ns}-shop/services/cart").json()
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    container = api.get(f"/api/v1/namespaces/{ns}-shop/pods/cart-1").json()["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26"
    assert container["env"][0] == {"name": "MODE", "value": "prod"} and container["env"][1]["name"] == "POD_NAME"
    kubectl.run("delete", "namespace", f"{ns}-shop", "--wait=false")


TYPO_POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: typo, namespace: {ns}}}
spec:
  containers:
  - name: app
    image: nginx
    imagePullPolicyy: Always
"""

TYPO_LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {{name: listed, namespace: {ns}}}
- apiVersion: v1
  kind: Pod
  metadata: {{name: typo, namespace: {ns}}}
  spec:
    containers:
    - name: app
      image: nginx
      imagee: nginx
"""


def test_a_typo_is_refused_naming_the_field(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    # kubectl leaves the check to the server (the v3 PATCH operation takes fieldValidation)
    refused = kubectl.run("apply", "-f", manifest(tmp_path, TYPO_POD.format(ns=ns)), ok=False)
    assert refused.returncode == 1
    assert 'strict decoding error: unknown field "spec.containers[0].imagePullPolicyy"' in refused.stderr
    # a List is validated by kubectl itself, against the v2 protobuf document
    listed = kubectl.run("apply", "-f", manifest(tmp_path, TYPO_LIST.format(ns=ns), "list.yaml"), ok=False)
    assert listed.returncode == 1
    assert (
        'error validating data: ValidationError(Pod.spec.containers[0]): unknown field "imagee" in '
        "io.k8s.api.core.v1.Container" in listed.stderr
    ), listed.stderr
    assert "turn validation off with --validate=false" in listed.stderr
    # nothing of either file was written
    assert api.get(f"/api/v1/namespaces/{ns}/pods/typo").status_code == 404
    assert api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/listed").status_code == 404


def test_apply_validate_strict(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    correct_list = TYPO_LIST.format(ns=ns).replace("imagee: nginx", "imagePullPolicy: Always")
    path = manifest(tmp_path, correct_list, "list.yaml")
    assert kubectl.out("apply", "--validate=strict", "-f", path).splitlines() == [
        "serviceaccount/listed created",
        "pod/typo created",
    ]
    assert api.get(f"/api/v1/namespaces/{ns}/pods/typo").json()["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    typo = manifest(tmp_path, TYPO_POD.format(ns=ns).replace("name: typo", "name: other"), "typo.yaml")
    refused = kubectl.run("apply", "--validate=strict", "-f", typo, ok=False)
    assert 'unknown field "spec.containers[0].imagePullPolicyy"' in refused.stderr
    # --validate=false: no check, the unknown field is dropped
    assert kubectl.out("apply", "--validate=false", "-f", typo).strip() == "pod/other created"


# -- the documents over HTTP -------------------------------------------------------------------------


def test_openapi_v2_answers_json_or_protobuf(api: httpx.Client) -> None:
    as_json = api.get("/openapi/v2")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    doc = as_json.json()
    assert doc["swagger"] == "2.0"
    assert doc["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}
    ]
    as_protobuf = api.get("/openapi/v2", headers={"Accept": V2_PROTOBUF_ACCEPT})
    assert as_protobuf.status_code == 200
    assert as_protobuf.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert as_protobuf.content.startswith(b"\n\x032.0")  # field 1 (swagger) = "2.0"
    root = api.get("/openapi/v3").json()
    for path, entry in root["paths"].items():
        served = api.get(entry["serverRelativeURL"])
        assert served.status_code == 200, path
        assert served.json()["components"]["schemas"]
    assert api.get("/openapi/v3/apis/example.com/v1").status_code == 404


def test_first_openapi_request_time_and_memory(tmp_path: Path) -> None:
    """Measured on a fresh emulator: start-up loads no schema; the first /openapi/v2 request loads them."""
    emulator = start_emulator(tmp_path / "data")
    try:
        with emulator.client() as client:
            before = client.get("/emulator/v1/process").json()["rssBytes"]
            started = time.perf_counter()
            first = client.get("/openapi/v2", headers={"Accept": V2_PROTOBUF_ACCEPT})
            first_seconds = time.perf_counter() - started
            assert first.status_code == 200
            started = time.perf_counter()
            assert client.get("/openapi/v2", headers={"Accept": V2_PROTOBUF_ACCEPT}).content == first.content
            again_seconds = time.perf_counter() - started
            added = client.get("/emulator/v1/process").json()["rssBytes"] - before
    finally:
        emulator.stop()
    print(f"\nfirst /openapi/v2: {first_seconds * 1000:.0f} ms, then {again_seconds * 1000:.1f} ms; "
          f"RSS added by the schemas: {added / 2**20:.1f} MiB")  # fmt: skip
    assert first_seconds < 5  # about 0.1 s on a laptop: generous bounds, for slow CI machines
    assert added < 100 * 2**20


NESTED = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: nested, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: nested}}}}
  template:
    metadata: {{labels: {{app: nested}}}}
    spec:
      hostUsers: false
      containers:
      - name: app
        image: nginx
        livenessProbe: {{httpGet: {{pathh: /healthz, port: 8080}}}}
      volumes: [{{name: v, emptyDir: {{bogus: true}}}}]
"""
AFFINITY_AS_LIST = """
apiVersion: v1
kind: Pod
metadata: {{name: affinity, namespace: {ns}}}
spec:
  containers: [{{name: c, image: nginx}}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {{weight: 5, preference: {{matchExpressions: [{{key: zone, operator: In, values: [a]}}]}}}}
"""


def test_fields_kept_as_they_come_are_decoded_as_the_api_server_does(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    # unknown fields deep in a pod template (volumes, probes): refused by kubectl's strict apply ...
    refused = kubectl.run("apply", "-f", manifest(tmp_path, NESTED.format(ns=ns)), ok=False)
    assert refused.returncode == 1
    assert ('strict decoding error: unknown field "spec.template.spec.containers[0].livenessProbe.httpGet.pathh", '
            'unknown field "spec.template.spec.volumes[0].emptyDir.bogus"') in refused.stderr
    # ... and dropped, not stored, when the client does not validate; a feature-gated 1.32 field (hostUsers) too
    kubectl.run("apply", "--validate=false", "-f", manifest(tmp_path, NESTED.format(ns=ns)))
    spec = api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/nested").json()["spec"]["template"]["spec"]
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert "pathh" not in spec["containers"][0]["livenessProbe"]["httpGet"]
    assert "hostUsers" not in spec
    # a value of the wrong JSON type: the decoder's 400, naming the Go struct field and type
    wrong = kubectl.run("apply", "-f", manifest(tmp_path, AFFINITY_AS_LIST.format(ns=ns)), ok=False)
    assert wrong.returncode == 1
    assert ('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal array into Go struct field '
            "NodeAffinity.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution of type v1.NodeSelector") in wrong.stderr
    assert api.get(f"/api/v1/namespaces/{ns}/pods/affinity").status_code == 404


def test_kubectl_prints_the_servers_warnings_about_a_pod_template(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    done = kubectl.run("apply", "-f", manifest(tmp_path, f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: warned, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: warned}}}}
  template:
    metadata:
      labels: {{app: warned}}
      annotations: {{container.apparmor.security.beta.kubernetes.io/app: runtime/default}}
    spec:
      nodeSelector: {{beta.kubernetes.io/os: linux}}
      containers:
      - name: app
        image: nginx
        env: [{{name: MODE, value: a}}, {{name: MODE, value: b}}]
"""))
    assert "deployment.apps/warned created" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        'Warning: spec.template.spec.nodeSelector[beta.kubernetes.io/os]: deprecated since v1.14; use "kubernetes.io/os" instead',
        'Warning: spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]: deprecated since v1.30; use the "appArmorProfile" field instead',
        'Warning: spec.template.spec.containers[0].env[1]: hides previous definition of "MODE", which may be dropped when using apply',
    ]
