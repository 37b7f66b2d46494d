"""CustomResourceDefinitions and their custom resources with the real kubectl 1.32 and the `kubernetes`
client: the documentation's CronTab applied with client-side validation on, get/describe/explain/watch,
patches (merge yes, strategic merge 415), server-side apply, the status and scale subresources,
multi-version definitions, cluster-scoped resources, deletion (of the definition, of a namespace),
discovery refreshing, a restart, and a multi-object apply holding a kind nobody serves yet.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import Emulator, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

T = TypeVar("T")

CRONTAB_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              description: What the cron job runs, and when.
              properties:
                cronSpec:
                  type: string
                  description: The schedule, in cron format.
                  pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'
                image:
                  type: string
                replicas:
                  type: integer
                  minimum: 1
                  maximum: 10
                  default: 1
              required: [cronSpec]
            status:
              type: object
              properties:
                replicas:
                  type: integer
                labelSelector:
                  type: string
      subresources:
        status: {}
        scale:
          specReplicasPath: .spec.replicas
          statusReplicasPath: .status.replicas
          labelSelectorPath: .status.labelSelector
      additionalPrinterColumns:
        - name: Spec
          type: string
          description: The cron spec defining the interval a CronJob is run
          jsonPath: .spec.cronSpec
        - name: Replicas
          type: integer
          description: The number of jobs launched by the CronJob
          jsonPath: .spec.replicas
        - name: Image
          type: string
          priority: 1
          jsonPath: .spec.image
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
"""

CRONTAB = """\
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
"""


def _wait(check: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture(scope="module")
def crontabs(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = manifest(tmp_path_factory.mktemp("crd"), CRONTAB_CRD)
    out = kubectl.out("apply", "-f", path)
    assert "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created" in out
    return path


def test_crd_is_established_and_listed_by_api_resources(kubectl: Kubectl, crontabs: str) -> None:
    crd = json.loads(kubectl.out("get", "crd", "crontabs.stable.example.com", "-o", "json"))
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ct"]
    assert crd["status"]["storedVersions"] == ["v1"]
    resources = kubectl.out("api-resources", "--api-group", "stable.example.com")
    assert "crontabs" in resources and "ct" in resources and "CronTab" in resources
    assert "crontabs.stable.example.com" in kubectl.out("get", "crds")


def test_apply_get_describe_and_wide_columns(kubectl: Kubectl, crontabs: str, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CRONTAB))
    assert "crontab.stable.example.com/my-new-cron-object created" in out
    table = kubectl.out("get", "ct", "-n", ns)
    assert table.split("\n")[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert "my-new-cron-object" in table and "* * * * */5" in table
    assert table.split("\n")[1].split()[6] == "1"  # the schema's default
    wide = kubectl.out("get", "crontabs", "-n", ns, "-o", "wide")
    assert "IMAGE" in wide and "my-awesome-cron-image" in wide
    described = kubectl.out("describe", "crontab", "my-new-cron-object", "-n", ns)
    assert "Cron Spec:" in described and "my-awesome-cron-image" in described
    # applying the same file again changes nothing
    assert "unchanged" in kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CRONTAB))


def test_schema_violations_and_unknown_fields(kubectl: Kubectl, crontabs: str, ns: str, tmp_path: Path) -> None:
    bad = CRONTAB.replace('cronSpec: "* * * * */5"', 'cronSpec: "nope"\n  replicas: 20')
    done = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, bad), ok=False)
    assert done.returncode != 0
    assert "spec.cronSpec in body should match" in done.stderr
    assert "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10" in done.stderr
    unknown = CRONTAB.replace("  image: my-awesome-cron-image", "  image: x\n  imagePullPolicy: Always")
    done = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, unknown), ok=False)
    assert done.returncode != 0 and 'unknown field "spec.imagePullPolicy"' in done.stderr
    # without validation the field is pruned
    kubectl.out("apply", "-n", ns, "--validate=false", "-f", manifest(tmp_path, unknown))
    stored = json.loads(kubectl.out("get", "ct", "my-new-cron-object", "-n", ns, "-o", "json"))
    assert "imagePullPolicy" not in stored["spec"]


def test_patches_and_server_side_apply(kubectl: Kubectl, crontabs: str, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CRONTAB))
    kubectl.out("patch", "ct", "my-new-cron-object", "-n", ns, "--type", "merge", "-p", '{"spec":{"image":"v2"}}')
    done = kubectl.run("patch", "ct", "my-new-cron-object", "-n", ns, "-p", '{"spec":{"image":"v3"}}', ok=False)
    assert done.returncode != 0 and "UnsupportedMediaType" in done.stderr or "unknown format" in done.stderr
    kubectl.out("patch", "ct", "my-new-cron-object", "-n", ns, "--type", "json", "-p", '[{"op":"replace","path":"/spec/replicas","value":3}]')
    out = kubectl.out("apply", "--server-side", "-n", ns, "-f", manifest(tmp_path, CRONTAB.replace("my-awesome-cron-image", "ssa")))
    assert "serverside-applied" in out
    stored = json.loads(kubectl.out("get", "ct", "my-new-cron-object", "-n", ns, "-o", "json"))
    assert stored["spec"]["image"] == "ssa" and stored["spec"]["replicas"] == 3
    assert stored["metadata"]["generation"] >= 3


def test_status_and_scale_subresources(kubectl: Kubectl, crontabs: str, ns: str, tmp_path: Path, emu: Emulator) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CRONTAB))
    base = f"/apis/stable.example.com/v1/namespaces/{ns}/crontabs/my-new-cron-object"
    with emu.client() as api:
        current = api.get(base).json()
        # the main resource ignores status
        sent = {**current, "status": {"replicas": 7}}
        assert "status" not in api.put(base, json=sent).json()
        # /status changes only status
        current = api.get(base).json()
        changed = {**current, "spec": {**current["spec"], "image": "ignored"}, "status": {"replicas": 2, "labelSelector": "app=cron"}}
        written = api.put(base + "/status", json=changed).json()
        assert written["status"] == {"replicas": 2, "labelSelector": "app=cron"}
        assert written["spec"]["image"] == "my-awesome-cron-image"
        scale = api.get(base + "/scale").json()
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
        assert scale["status"] == {"replicas": 2, "selector": "app=cron"}
    assert "scaled" in kubectl.out("scale", "ct", "my-new-cron-object", "-n", ns, "--replicas", "4")
    stored = json.loads(kubectl.out("get", "ct", "my-new-cron-object", "-n", ns, "-o", "json"))
    assert stored["spec"]["replicas"] == 4


def test_watch_receives_events(kubectl: Kubectl, crontabs: str, ns: str, tmp_path: Path) -> None:
    watcher = subprocess.Popen(kubectl.argv("get", "ct", "-n", ns, "-w", "--request-timeout", "8s"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1.0)
        kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CRONTAB))
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    assert "my-new-cron-object" in out


def test_explain(kubectl: Kubectl, crontabs: str) -> None:
    out = kubectl.out("explain", "crontab.spec")
    assert "cronSpec" in out and "The schedule, in cron format." in out
    assert "What the cron job runs" in out


def test_kubernetes_client_custom_objects(emu: Emulator, crontabs: str, ns: str) -> None:
    client = pytest.importorskip("kubernetes.client")
    configuration = client.Configuration()
    configuration.host = emu.api_url
    with client.ApiClient(configuration) as api_client:
        api = client.CustomObjectsApi(api_client)
        body = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "from-client"},
                "spec": {"cronSpec": "*/5 * * * *"}}  # fmt: skip
        created = api.create_namespaced_custom_object("stable.example.com", "v1", ns, "crontabs", body)
        assert created["spec"]["replicas"] == 1
        listed = api.list_namespaced_custom_object("stable.example.com", "v1", ns, "crontabs")
        assert [i["metadata"]["name"] for i in listed["items"]] == ["from-client"]
        patched = api.patch_namespaced_custom_object("stable.example.com", "v1", ns, "crontabs", "from-client", {"spec": {"image": "x"}})
        assert patched["spec"]["image"] == "x"
        status = api.patch_namespaced_custom_object_status(
            "stable.example.com", "v1", ns, "crontabs", "from-client", {"status": {"replicas": 1}}
        )
        assert status["status"] == {"replicas": 1}
        api.delete_namespaced_custom_object("stable.example.com", "v1", ns, "crontabs", "from-client")
        assert api.list_namespaced_custom_object("stable.example.com", "v1", ns, "crontabs")["items"] == []


MULTI_VERSION_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.org
spec:
  group: example.org
  scope: Cluster
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_multi_version_cluster_scoped(kubectl: Kubectl, emu: Emulator, tmp_path: Path) -> None:
    kubectl.out("apply", "-f", manifest(tmp_path, MULTI_VERSION_CRD))
    widget = "apiVersion: example.org/v1beta1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  anything: [1, 2]\n"
    assert "widget.example.org/w1 created" in kubectl.out("apply", "-f", manifest(tmp_path, widget, "w.yaml"))
    with emu.client() as api:
        v1 = api.get("/apis/example.org/v1/widgets/w1").json()
        beta = api.get("/apis/example.org/v1beta1/widgets/w1").json()
        assert v1["apiVersion"] == "example.org/v1" and beta["apiVersion"] == "example.org/v1beta1"
        assert v1["spec"] == {"anything": [1, 2]}
        listed = api.get("/apis/example.org/v1beta1/widgets").json()
        assert [i["apiVersion"] for i in listed["items"]] == ["example.org/v1beta1"]
        group = api.get("/apis/example.org").json()
        assert group["preferredVersion"]["version"] == "v1"
        watched = api.get("/apis/example.org/v1beta1/widgets", params={"watch": "1", "timeoutSeconds": "1"})
        first = json.loads(watched.text.splitlines()[0])
        assert first["type"] == "ADDED" and first["object"]["apiVersion"] == "example.org/v1beta1"
    assert "w1" in kubectl.out("get", "widgets")
    kubectl.out("delete", "crd", "widgets.example.org")


def test_webhook_conversion_is_refused(kubectl: Kubectl, tmp_path: Path) -> None:
    webhook = MULTI_VERSION_CRD.replace("  scope: Cluster\n", "  scope: Cluster\n  conversion:\n    strategy: Webhook\n"
                                        "    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig:\n"
                                        "        url: https://example.org/convert\n")  # fmt: skip
    done = kubectl.run("apply", "-f", manifest(tmp_path, webhook), ok=False)
    assert done.returncode != 0 and "webhook conversion is not supported by the emulator" in done.stderr


def test_invalid_definitions(kubectl: Kubectl, tmp_path: Path) -> None:
    two_storage = MULTI_VERSION_CRD.replace("storage: false", "storage: true")
    done = kubectl.run("apply", "-f", manifest(tmp_path, two_storage), ok=False)
    assert "must have exactly one version marked as storage version" in done.stderr
    wrong_name = MULTI_VERSION_CRD.replace("name: widgets.example.org", "name: gadgets.example.org")
    done = kubectl.run("apply", "-f", manifest(tmp_path, wrong_name), ok=False)
    assert 'must be spec.names.plural+"."+spec.group' in done.stderr


def test_namespace_deletion_deletes_custom_resources(kubectl: Kubectl, crontabs: str, emu: Emulator, tmp_path: Path) -> None:
    kubectl.out("create", "namespace", "crons-going")
    kubectl.out("apply", "-n", "crons-going", "-f", manifest(tmp_path, CRONTAB))
    kubectl.out("delete", "namespace", "crons-going")
    with emu.client() as api:
        def left() -> list[str]:
            items = api.get("/apis/stable.example.com/v1/crontabs").json()["items"]
            return [i["metadata"]["name"] for i in items if i["metadata"]["namespace"] == "crons-going"]

        gone = _wait(lambda: not left())
    assert gone


def test_unknown_kind_in_a_multi_object_apply(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    mixed = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: stable.example.net/v1
kind: Gizmo
metadata: {name: g1}
spec: {size: 3}
"""
    done = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, mixed), ok=False)
    assert done.returncode != 0
    assert 'resource mapping not found for name: "g1"' in done.stderr
    assert "ensure CRDs are installed first" in done.stderr
    assert "service/web created" in done.stdout and "configmap/settings created" in done.stdout
    # once its definition exists, the same kubectl (its discovery cache holds the miss) finds the kind
    gizmos = MULTI_VERSION_CRD.replace("widgets.example.org", "gizmos.stable.example.net").replace("group: example.org", "group: stable.example.net")
    gizmos = gizmos.replace("{plural: widgets, singular: widget, kind: Widget}", "{plural: gizmos, singular: gizmo, kind: Gizmo}")
    gizmos = gizmos.replace("scope: Cluster", "scope: Namespaced")
    kubectl.out("apply", "-f", manifest(tmp_path, gizmos, "gizmos.yaml"))
    again = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, mixed))
    assert "gizmo.stable.example.net/g1 created" in again and "service/web unchanged" in again
    kubectl.out("delete", "crd", "gizmos.stable.example.net")


def test_tokenreview_created_with_client_side_validation(kubectl: Kubectl, tmp_path: Path) -> None:
    review = "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: not-a-token\n"
    out = kubectl.out("create", "-f", manifest(tmp_path, review), "-o", "json")
    assert json.loads(out)["status"].get("authenticated") in (None, False)


def test_deleting_the_definition_deletes_resources_and_routes(kubectl: Kubectl, emu: Emulator, tmp_path: Path) -> None:
    crd = CRONTAB_CRD.replace("crontabs", "gonetabs").replace("CronTab", "GoneTab").replace("crontab", "gonetab")
    crd = crd.replace("- ct", "- gt")
    kubectl.out("apply", "-f", manifest(tmp_path, crd, "crd.yaml"))
    kubectl.out("apply", "-n", "default", "-f", manifest(tmp_path, CRONTAB.replace("CronTab", "GoneTab"), "cr.yaml"))
    assert "my-new-cron-object" in kubectl.out("get", "gt", "-n", "default")
    kubectl.out("delete", "crd", "gonetabs.stable.example.com")
    with emu.client() as api:
        assert api.get("/apis/stable.example.com/v1/namespaces/default/gonetabs").status_code == 404
        assert api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gonetabs.stable.example.com").status_code == 404
    # created again: empty
    kubectl.out("apply", "-f", manifest(tmp_path, crd, "crd.yaml"))
    assert "No resources found" in kubectl.run("get", "gt", "-n", "default").stderr
    kubectl.out("delete", "crd", "gonetabs.stable.example.com")


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def test_definitions_and_resources_survive_a_restart(durable: Path, tmp_path: Path) -> None:
    from emulator.security import kubeconfig
    from tests.conftest import require_tool

    durable.mkdir()
    emu = start_emulator(durable, in_memory=False)
    try:
        config = tmp_path / "config"
        kubeconfig.write(config, emu.api_url, use=True)
        k = Kubectl(require_tool("kubectl"), config, tmp_path / "cache")
        k.out("apply", "-f", manifest(tmp_path, CRONTAB_CRD, "crd.yaml"))
        k.out("apply", "-n", "default", "-f", manifest(tmp_path, CRONTAB, "cr.yaml"))
    finally:
        emu.stop()
    emu = start_emulator(durable, in_memory=False)
    try:
        kubeconfig.write(config, emu.api_url, use=True)
        assert "my-new-cron-object" in k.out("get", "ct", "-n", "default")
    finally:
        emu.stop()


def test_dependents_of_a_custom_resource_are_collected(kubectl: Kubectl, crontabs: str, ns: str, emu: Emulator, tmp_path: Path) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CRONTAB))
    owner = json.loads(kubectl.out("get", "ct", "my-new-cron-object", "-n", ns, "-o", "json"))
    reference = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "name": "my-new-cron-object", "uid": owner["metadata"]["uid"]}
    with emu.client() as api:
        created = api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "owned", "ownerReferences": [reference]}})
        assert created.status_code == 201, created.text
        kubectl.out("delete", "ct", "my-new-cron-object", "-n", ns)
        assert _wait(lambda: api.get(f"/api/v1/namespaces/{ns}/configmaps/owned").status_code == 404)


# the shape controller-gen writes (prometheus-operator's, cert-manager's definitions): apiVersion, kind and
# `metadata: {type: object}` in the schema, int-or-string as anyOf, list and map types, formats, defaults
MONITOR_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: monitors.monitoring.example.com
spec:
  group: monitoring.example.com
  names: {categories: [monitoring], kind: Monitor, listKind: MonitorList, plural: monitors, shortNames: [mon], singular: monitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        description: Monitor selects services to scrape.
        type: object
        required: [spec]
        properties:
          apiVersion: {type: string, description: APIVersion of the object.}
          kind: {type: string, description: Kind of the object.}
          metadata: {type: object}
          spec:
            type: object
            required: [endpoints, selector]
            properties:
              endpoints:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: string}
                    targetPort:
                      anyOf: [{type: integer}, {type: string}]
                      x-kubernetes-int-or-string: true
                    interval: {type: string, pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$'}
                    scheme: {type: string, enum: [http, https]}
                    params:
                      type: object
                      additionalProperties: {type: array, items: {type: string}}
                    relabelings:
                      type: array
                      items:
                        type: object
                        properties:
                          action: {type: string, default: replace}
                          modulus: {type: integer, format: int64}
              selector:
                type: object
                x-kubernetes-map-type: atomic
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
              sampleLimit: {type: integer, format: int64}
          status:
            type: object
            properties:
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  x-kubernetes-validations: [{rule: "self.status != ''"}]
                  properties:
                    type: {type: string}
                    status: {type: string}
"""

MONITOR = """\
apiVersion: monitoring.example.com/v1
kind: Monitor
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  endpoints:
  - port: http
    targetPort: 8080
    interval: 30s
    relabelings: [{modulus: 3}]
  - targetPort: metrics
    params: {module: [http_2xx]}
"""


def test_a_controller_gen_style_definition(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-f", manifest(tmp_path, MONITOR_CRD, "crd.yaml"))
    assert "monitor.monitoring.example.com/web created" in kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, MONITOR))
    stored = json.loads(kubectl.out("get", "mon", "web", "-n", ns, "-o", "json"))
    assert stored["spec"]["endpoints"][0]["relabelings"] == [{"action": "replace", "modulus": 3}]
    assert "web" in kubectl.out("get", "monitoring", "-n", ns)  # by category
    assert "targetPort" in kubectl.out("explain", "monitor.spec.endpoints")
    bad = MONITOR.replace("interval: 30s", "interval: soon")
    done = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, bad), ok=False)
    assert done.returncode != 0 and "spec.endpoints[0].interval" in done.stderr
    kubectl.out("delete", "crd", "monitors.monitoring.example.com")


WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.shapes.example.com
spec:
  group: shapes.example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              name: {type: string, pattern: '^(a+)+$'}
              letters: {type: string, pattern: '^\\p{L}+$'}
              maybe: {type: string, nullable: true}
              never: {type: string}
              fallback: {type: string, default: chosen}
"""


def test_patterns_are_re2_and_nulls_follow_nullable(kubectl: Kubectl, emu: Emulator, ns: str, tmp_path: Path) -> None:
    kubectl.out("apply", "-f", manifest(tmp_path, WIDGET_CRD, "crd.yaml"))
    slow = f"apiVersion: shapes.example.com/v1\nkind: Widget\nmetadata: {{name: slow}}\nspec: {{name: {'a' * 27}!}}\n"
    with emu.client() as api:
        started = time.monotonic()
        # (with a backtracking matcher this value held the server for about 20 s, every further "a" doubling it)
        api.get("/version")
        done = kubectl.run("create", "-n", ns, "-f", manifest(tmp_path, slow.replace("a" * 27, "a" * 30)), ok=False)
        assert time.monotonic() - started < 5
        assert done.returncode != 0 and "spec.name in body should match '^(a+)+$'" in done.stderr
        assert api.get("/version").status_code == 200
    letters = "apiVersion: shapes.example.com/v1\nkind: Widget\nmetadata: {name: %s}\nspec: {letters: %s}\n"
    assert "created" in kubectl.out("create", "-n", ns, "-f", manifest(tmp_path, letters % ("word", "héllo")))
    done = kubectl.run("create", "-n", ns, "-f", manifest(tmp_path, letters % ("digits", "abc1")), ok=False)
    assert done.returncode != 0 and "spec.letters in body should match" in done.stderr
    # nullable keeps its null; a non-nullable null is pruned, or defaulted when the field has a default
    nulls = "apiVersion: shapes.example.com/v1\nkind: Widget\nmetadata: {name: nulls}\nspec: {maybe: null, never: null, fallback: null}\n"
    kubectl.out("create", "-n", ns, "-f", manifest(tmp_path, nulls))
    stored = json.loads(kubectl.out("get", "widget", "nulls", "-n", ns, "-o", "json"))
    assert stored["spec"] == {"maybe": None, "fallback": "chosen"}
    kubectl.out("delete", "crd", "widgets.shapes.example.com")


def test_a_pattern_go_cannot_compile_refuses_the_definition(kubectl: Kubectl, tmp_path: Path) -> None:
    bad = WIDGET_CRD.replace("'^(a+)+$'", "'(?=lookahead)'")
    done = kubectl.run("apply", "-f", manifest(tmp_path, bad, "crd.yaml"), ok=False)
    assert done.returncode != 0
    assert (
        'spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[name].pattern: Invalid value: "(?=lookahead)": '
        "must be a valid regular expression, but isn't: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
    ) in done.stderr
    assert kubectl.run("get", "crd", "widgets.shapes.example.com", ok=False).returncode != 0


FAKE_INGRESS_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.networking.k8s.io
{annotations}spec:
  group: networking.k8s.io
  scope: Namespaced
  names: {{plural: {plural}, kind: Ingress}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: %s}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


@pytest.mark.parametrize("plural", ["fakeingresses", "ingresses"])
def test_a_definition_cannot_take_over_a_built_in_kind(kubectl: Kubectl, ns: str, tmp_path: Path, plural: str) -> None:
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, INGRESS % "before", "ing.yaml"))
    unapproved = FAKE_INGRESS_CRD.format(plural=plural, annotations="")
    done = kubectl.run("apply", "-f", manifest(tmp_path, unapproved, "crd.yaml"), ok=False)
    assert done.returncode != 0 and (
        'metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation '
        '"api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111'
    ) in done.stderr
    approved = FAKE_INGRESS_CRD.format(plural=plural, annotations="  annotations: {api-approved.kubernetes.io: 'unapproved, testing'}\n")
    kubectl.out("apply", "-f", manifest(tmp_path, approved, "crd.yaml"))
    crd = json.loads(kubectl.out("get", "crd", f"{plural}.networking.k8s.io", "-o", "json"))
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in crd["status"]["conditions"]}
    assert conditions["KubernetesAPIApprovalPolicyConformant"] == ("False", "UnapprovedAnnotation", 'not approved: "unapproved, testing"')
    assert conditions["NamesAccepted"][0] == "False" and "already in use by the built-in resource ingresses.networking.k8s.io" in conditions["NamesAccepted"][2]
    assert conditions["Established"][0] == "False"
    # real Ingresses keep working: written, listed, described, and still there once the definition is gone
    assert "ingress.networking.k8s.io/after created" in kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, INGRESS % "after", "ing.yaml"))
    listed = json.loads(kubectl.out("get", "ingresses", "-n", ns, "-o", "json"))
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["after", "before"]
    assert all(i["spec"]["defaultBackend"]["service"]["name"] == "web" for i in listed["items"])
    kinds = kubectl.out("api-resources", "--api-group", "networking.k8s.io", "-o", "name")
    assert plural == "ingresses" or plural not in kinds
    kubectl.out("delete", "crd", f"{plural}.networking.k8s.io")
    assert kubectl.out("get", "ingresses", "-n", ns, "-o", "name").split() == ["ingress.networking.k8s.io/after", "ingress.networking.k8s.io/before"]
