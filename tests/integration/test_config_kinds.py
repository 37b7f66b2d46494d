"""The real kubectl 1.32 against the emulator for ConfigMaps, Secrets, the node, volumes and claims, quotas
and limit ranges, autoscalers, disruption budgets, IngressClasses and Ingresses: the Kubernetes docs'
manifests applied as they are, the `kubectl create` shortcuts (they send protobuf), and what `kubectl get`
prints.

One emulator serves the module; each test works in its own namespace. kubectl's client-side validation
passes without `--validate=false` (the emulator's OpenAPI documents list every kind), so none is given.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Emulator, start_emulator
from tests.integration.kubectl_support import Kubectl, manifest

# https://kubernetes.io/docs/concepts/configuration/configmap/
CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: game-demo
data:
  # property-like keys; each key maps to a simple value
  player_initial_lives: "3"
  ui_properties_file_name: "user-interface.properties"

  # file-like keys
  game.properties: |
    enemy.types=aliens,monsters
    player.maximum-lives=5
  user-interface.properties: |
    color.good=purple
    color.bad=yellow
    allow.textmode=true
"""

# https://kubernetes.io/docs/concepts/configuration/secret/ and the tasks that use its types
SECRETS = """\
apiVersion: v1
kind: Secret
metadata:
  name: dotfile-secret
data:
  .secret-file: dmFsdWUtMg0KDQo=
---
apiVersion: v1
kind: Secret
metadata:
  name: secret-basic-auth
type: kubernetes.io/basic-auth
stringData:
  username: admin
  password: t0p-Secret
---
apiVersion: v1
kind: Secret
metadata:
  name: secret-ssh-auth
type: kubernetes.io/ssh-auth
data:
  ssh-privatekey: |
    UG91cmluZzYlRW1vdGljb24lU2N1YmE=
---
apiVersion: v1
kind: Secret
metadata:
  name: test-db-secret
type: Opaque
data:
  username: dGVzdHVzZXI=
  password: aWxvdmVrdWJlcm5ldGVz
"""

# https://kubernetes.io/docs/tasks/configure-pod-container/configure-persistent-volume-storage/
PV_AND_CLAIM = """\
apiVersion: v1
kind: PersistentVolume
metadata:
  name: {pv}
  labels:
    type: local
spec:
  storageClassName: manual
  capacity:
    storage: 10Gi
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: "/mnt/data"
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: task-pv-claim
spec:
  storageClassName: manual
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 3Gi
"""

# https://kubernetes.io/docs/concepts/storage/persistent-volumes/#persistentvolumeclaims
CLAIM = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: myclaim
spec:
  accessModes:
    - ReadWriteOnce
  volumeMode: Filesystem
  resources:
    requests:
      storage: 8Gi
  storageClassName: slow
  selector:
    matchLabels:
      release: "stable"
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: dynamic
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1536Mi
"""

POLICIES = """\
apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-resource-constraint
spec:
  limits:
  - default: # this section defines default limits
      cpu: 500m
    defaultRequest: # this section defines default requests
      cpu: 500m
    max: # max and min define the limit range
      cpu: "1"
    min:
      cpu: 100m
    type: Container
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: mem-cpu-demo
spec:
  hard:
    requests.cpu: "1"
    requests.memory: 1Gi
    limits.cpu: "2"
    limits.memory: 2Gi
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: php-apache
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: php-apache
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: zk-pdb
spec:
  minAvailable: 2
  selector:
    matchLabels:
      app: zookeeper
"""

# https://kubernetes.io/docs/concepts/services-networking/ingress/
INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: minimal-ingress
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
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


@pytest.fixture(scope="module")
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with emu.client() as client:
        yield client


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    # not in memory: provisioned volumes then live under the data directory
    emulator = start_emulator(tmp_path_factory.mktemp("config-kinds-data"), in_memory=False)
    yield emulator
    emulator.stop()


def rows(output: str) -> list[list[str]]:
    """kubectl's table as cells (columns are separated by at least two spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]


def test_the_kinds_are_discovered(kubectl: Kubectl) -> None:
    lines = kubectl.out("api-resources").splitlines()
    found = {line.split()[0]: line.split() for line in reversed(lines[1:])}  # the first `nodes`: metrics.k8s.io has one too
    assert found["configmaps"] == ["configmaps", "cm", "v1", "true", "ConfigMap"]
    assert found["secrets"] == ["secrets", "v1", "true", "Secret"]
    assert found["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    assert found["persistentvolumes"] == ["persistentvolumes", "pv", "v1", "false", "PersistentVolume"]
    assert found["persistentvolumeclaims"] == ["persistentvolumeclaims", "pvc", "v1", "true", "PersistentVolumeClaim"]
    assert found["limitranges"] == ["limitranges", "limits", "v1", "true", "LimitRange"]
    assert found["resourcequotas"] == ["resourcequotas", "quota", "v1", "true", "ResourceQuota"]
    assert found["horizontalpodautoscalers"] == ["horizontalpodautoscalers", "hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"]
    assert found["poddisruptionbudgets"] == ["poddisruptionbudgets", "pdb", "policy/v1", "true", "PodDisruptionBudget"]
    assert found["ingressclasses"] == ["ingressclasses", "networking.k8s.io/v1", "false", "IngressClass"]
    assert found["ingresses"] == ["ingresses", "ing", "networking.k8s.io/v1", "true", "Ingress"]


# -- ConfigMap and Secret -----------------------------------------------------------------------------


def test_config_maps_from_the_docs_and_from_literals(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    assert kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CONFIG_MAP)).strip() == "configmap/game-demo created"
    assert kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CONFIG_MAP)).strip() == "configmap/game-demo unchanged"
    # kubectl create sends the ConfigMap as protobuf
    assert kubectl.out("create", "configmap", "settings", "-n", ns, "--from-literal=mode=fast", "--from-literal=empty=").strip() == "configmap/settings created"
    table = rows(kubectl.out("get", "configmaps", "-n", ns))
    assert table[0] == ["NAME", "DATA", "AGE"]
    assert [r[:2] for r in table[1:]] == [["game-demo", "4"], ["settings", "2"]]
    assert kubectl.out("get", "configmap", "settings", "-n", ns, "-o", "jsonpath={.data.mode}") == "fast"
    assert "enemy.types=aliens,monsters" in kubectl.out("get", "configmap", "game-demo", "-n", ns, "-o", "jsonpath={.data.game\\.properties}")


def test_an_immutable_config_map_refuses_changes(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  a: \"1\"\n"
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, text))
    refused = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, text.replace('"1"', '"2"'), "changed.yaml"), ok=False)
    assert refused.returncode != 0
    assert 'The ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set' in refused.stderr
    assert kubectl.out("get", "configmap", "frozen", "-n", ns, "-o", "jsonpath={.data.a}") == "1"


def test_secrets_from_the_docs_and_from_literals(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    created = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, SECRETS)).splitlines()
    assert created == ["secret/dotfile-secret created", "secret/secret-basic-auth created", "secret/secret-ssh-auth created", "secret/test-db-secret created"]
    assert kubectl.out("create", "secret", "generic", "db-user", "-n", ns, "--from-literal=password=S!B\\*d$zDsb=").strip() == "secret/db-user created"
    encoded = kubectl.out("get", "secret", "db-user", "-n", ns, "-o", "jsonpath={.data.password}")
    assert base64.b64decode(encoded).decode() == "S!B\\*d$zDsb="
    kubectl.out("create", "secret", "docker-registry", "regcred", "-n", ns, "--docker-server=registry.example.com",
                "--docker-username=u", "--docker-password=p")
    table = rows(kubectl.out("get", "secrets", "-n", ns))
    assert table[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert [r[:3] for r in table[1:]] == [
        ["db-user", "Opaque", "1"],
        ["dotfile-secret", "Opaque", "1"],
        ["regcred", "kubernetes.io/dockerconfigjson", "1"],
        ["secret-basic-auth", "kubernetes.io/basic-auth", "2"],
        ["secret-ssh-auth", "kubernetes.io/ssh-auth", "1"],
        ["test-db-secret", "Opaque", "2"],
    ]
    basic = api.get(f"/api/v1/namespaces/{ns}/secrets/secret-basic-auth").json()
    assert "stringData" not in basic
    assert base64.b64decode(basic["data"]["password"]) == b"t0p-Secret"
    assert kubectl.out("get", "secrets", "-n", ns, "--field-selector", "type=kubernetes.io/basic-auth", "-o", "name").split() == ["secret/secret-basic-auth"]


def test_secret_data_that_is_no_base64_is_refused(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    bad = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\ndata:\n  key: not base64!\n"
    refused = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, bad), ok=False)
    assert refused.returncode != 0
    assert 'Error from server (BadRequest): error when creating "' in refused.stderr
    assert 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3' in refused.stderr
    tls = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cert\ntype: kubernetes.io/tls\ndata: {}\n"
    refused = kubectl.run("apply", "-n", ns, "-f", manifest(tmp_path, tls, "tls.yaml"), ok=False)
    assert 'The Secret "cert" is invalid: \n* data[tls.crt]: Required value\n* data[tls.key]: Required value' in refused.stderr


# -- Node ----------------------------------------------------------------------------------------------


def test_one_ready_node(kubectl: Kubectl, emu: Emulator) -> None:
    table = rows(kubectl.out("get", "nodes"))
    assert table[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert len(table) == 2
    name, status, roles, _age, version = table[1]
    assert (name, status, roles, version) == ("emulator", "Ready", "control-plane", "v1.32.0")
    wide = rows(kubectl.out("get", "nodes", "-o", "wide"))
    assert wide[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert wide[1][5:7] == ["127.0.0.1", "<none>"]
    assert wide[1][9].startswith("emulator://")
    assert kubectl.out("get", "node", "emulator", "-o", "jsonpath={.status.capacity.cpu}").isdigit()
    described = kubectl.out("describe", "node", "emulator")
    assert "Ready            True" in described
    # its Lease, as a kubelet holds it (without one: "Failed to get lease")
    assert re.search(r"^Lease:\n\s+HolderIdentity:\s+emulator\n\s+AcquireTime:\s+<unset>\n\s+RenewTime:\s+\w", described, re.M), described
    lease = json.loads(kubectl.out("get", "lease", "emulator", "-n", "kube-node-lease", "-o", "json"))
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node" and lease["spec"]["leaseDurationSeconds"] == 40


# -- volumes and claims ----------------------------------------------------------------------------------


def test_a_claim_is_bound_to_a_volume_the_emulator_provides(kubectl: Kubectl, api: httpx.Client, emu: Emulator, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, CLAIM)).splitlines()
    assert out == ["persistentvolumeclaim/myclaim created", "persistentvolumeclaim/dynamic created"]
    claim = api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/dynamic").json()
    volume = f"pvc-{claim['metadata']['uid']}"
    table = rows(kubectl.out("get", "pvc", "-n", ns))
    assert table[0] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert table[1][:5] == ["dynamic", "Bound", volume, "1536Mi", "RWO"]
    assert table[1][5:7] == ["standard", "<unset>"]  # no class asked for: the default StorageClass's
    # a claim with a selector waits for a matching volume, as with a provisioner
    assert table[2][:2] == ["myclaim", "Pending"]
    pvs = rows(kubectl.out("get", "pv", volume))
    assert pvs[0] == ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    assert pvs[1][:6] == [volume, "1536Mi", "RWO", "Delete", "Bound", f"{ns}/dynamic"]
    path = Path(api.get(f"/api/v1/persistentvolumes/{volume}").json()["spec"]["hostPath"]["path"])
    assert path == emu.data_dir / "volumes" / volume and path.is_dir()
    kubectl.out("delete", "pvc", "dynamic", "-n", ns)
    assert api.get(f"/api/v1/persistentvolumes/{volume}").status_code == 404
    assert not path.exists()


def test_the_docs_volume_and_claim_bind_to_each_other(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    pv = f"task-pv-{ns}"[:63]
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, PV_AND_CLAIM.format(pv=pv)))
    claim = rows(kubectl.out("get", "pvc", "task-pv-claim", "-n", ns))[1]
    assert claim[:6] == ["task-pv-claim", "Bound", pv, "10Gi", "RWO", "manual"]
    volume = rows(kubectl.out("get", "pv", pv))[1]
    assert volume[:7] == [pv, "10Gi", "RWO", "Retain", "Bound", f"{ns}/task-pv-claim", "manual"]
    kubectl.out("delete", "pvc", "task-pv-claim", "-n", ns)
    assert rows(kubectl.out("get", "pv", pv))[1][4] == "Released"
    kubectl.out("delete", "pv", pv)


# -- policies --------------------------------------------------------------------------------------------


def test_limit_ranges_quotas_autoscalers_and_budgets_are_stored(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, POLICIES)).splitlines()
    assert out == [
        "limitrange/cpu-resource-constraint created",
        "resourcequota/mem-cpu-demo created",
        "horizontalpodautoscaler.autoscaling/php-apache created",
        "poddisruptionbudget.policy/zk-pdb created",
    ]
    limits = rows(kubectl.out("get", "limits", "-n", ns))
    assert limits[0] == ["NAME", "CREATED AT"]
    assert limits[1][0] == "cpu-resource-constraint" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", limits[1][1])
    kubectl.out("create", "quota", "counts", "-n", ns, "--hard=pods=10,services=5")
    quota = rows(kubectl.out("get", "quota", "-n", ns))
    assert quota[0] == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert quota[1][0] == "counts" and quota[1][2:] == ["pods: 0/10, services: 0/5"]
    assert quota[2][0] == "mem-cpu-demo" and quota[2][2:] == ["requests.cpu: 0/1, requests.memory: 0/1Gi", "limits.cpu: 0/2, limits.memory: 0/2Gi"]
    hpa = rows(kubectl.out("get", "hpa", "-n", ns))
    assert hpa[0] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert hpa[1][:6] == ["php-apache", "Deployment/php-apache", "cpu: <unknown>/50%", "1", "10", "0"]
    kubectl.out("create", "pdb", "half", "-n", ns, "--selector=app=web", "--max-unavailable=50%")
    pdb = rows(kubectl.out("get", "pdb", "-n", ns))
    assert pdb[0] == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    assert [r[:4] for r in pdb[1:]] == [["half", "N/A", "50%", "0"], ["zk-pdb", "2", "N/A", "0"]]
    refused = kubectl.run("create", "pdb", "bad", "-n", ns, "--selector=app=web", "--min-available=150%", ok=False)
    assert 'spec.minAvailable: Invalid value: "150%": must not be greater than 100%' in refused.stderr


# -- ingresses -------------------------------------------------------------------------------------------


def test_the_emulator_ingress_class_is_the_default(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    classes = rows(kubectl.out("get", "ingressclass"))
    assert classes[0] == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    # kubectl 1.32 marks no default in this table (1.33 adds "(default)"): the annotation says it
    assert ["emulator", "emulator.local/ingress", "<none>"] in [r[:3] for r in classes[1:]]
    annotation = kubectl.out("get", "ingressclass", "emulator", "-o", "jsonpath={.metadata.annotations.ingressclass\\.kubernetes\\.io/is-default-class}")
    assert annotation == "true"
    # an Ingress without a class gets it
    kubectl.out("apply", "-n", ns, "-f", manifest(tmp_path, INGRESS))
    kubectl.out("create", "ingress", "shop", "-n", ns, "--rule=shop.example.com/=shop:80,tls=shop-cert")
    table = rows(kubectl.out("get", "ingress", "-n", ns))
    assert table[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert table[1][:3] == ["minimal-ingress", "emulator", "*"]
    assert table[2][:3] == ["shop", "emulator", "shop.example.com"] and table[2][-2] == "80, 443"
    refused = kubectl.run("create", "ingress", "bad", "-n", ns, "--rule=10.0.0.1/=shop:80", ok=False)
    assert 'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address' in refused.stderr


def test_storage_classes_the_default_one_and_what_never_changes(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    table = rows(kubectl.out("get", "storageclass"))
    assert table[0] == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert table[1][:5] == ["standard (default)", "emulator.local/hostpath", "Delete", "Immediate", "false"]
    kubectl.run("apply", "-f", manifest(tmp_path, """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: kept-by-test}
provisioner: example.com/disk
reclaimPolicy: Retain
allowVolumeExpansion: true
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: kept}
spec:
  storageClassName: kept-by-test
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
""".replace("metadata: {name: kept}", f"metadata: {{name: kept, namespace: {ns}}}")))
    claim = api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/kept").json()
    volume = api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}").json()
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # as its class says
    refused = kubectl.run("patch", "storageclass", "kept-by-test", "-p", '{"provisioner": "example.com/other"}', ok=False)
    assert "provisioner: Forbidden: updates to provisioner are forbidden." in refused.stderr
    bad = kubectl.run("apply", "-f", manifest(tmp_path, "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bad-by-test}\nprovisioner: x\nreclaimPolicy: Recycle\n"), ok=False)
    assert 'reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"' in bad.stderr
    kubectl.run("delete", "pvc", "kept", "-n", ns)
    kubectl.run("delete", "storageclass", "kept-by-test")


def test_priority_classes_give_pods_their_priority(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    table = rows(kubectl.out("get", "priorityclass"))
    assert table[0] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE"]
    assert {tuple(r[:3]) for r in table[1:]} >= {("system-cluster-critical", "2000000000", "false"), ("system-node-critical", "2000001000", "false")}
    kubectl.run("apply", "-f", manifest(tmp_path, f"""
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: high-by-test}}
value: 1000000
description: for the test
---
apiVersion: v1
kind: Pod
metadata: {{name: important, namespace: {ns}}}
spec:
  priorityClassName: high-by-test
  containers: [{{name: c, image: nginx}}]
"""))
    spec = api.get(f"/api/v1/namespaces/{ns}/pods/important").json()["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (1000000, "PreemptLowerPriority")
    missing = kubectl.run("run", "lost", "-n", ns, "--image=nginx", "--overrides", '{"spec": {"priorityClassName": "nope"}}', ok=False)
    assert 'pods "lost" is forbidden: no PriorityClass with name nope was found' in missing.stderr
    reserved = kubectl.run("create", "priorityclass", "system-mine", "--value=5", ok=False)
    assert "priority class names with 'system-' prefix are reserved" in reserved.stderr
    # a global default names itself on pods that name no class; there is only ever one
    kubectl.run("create", "priorityclass", "default-by-test", "--value=7", "--global-default")
    try:
        second = kubectl.run("create", "priorityclass", "second-by-test", "--value=8", "--global-default", ok=False)
        assert "PriorityClass default-by-test is already marked as default. Only one default can exist" in second.stderr
        kubectl.run("run", "plain", "-n", ns, "--image=nginx")
        spec = api.get(f"/api/v1/namespaces/{ns}/pods/plain").json()["spec"]
        assert (spec["priorityClassName"], spec["priority"]) == ("default-by-test", 7)
    finally:
        kubectl.run("delete", "priorityclass", "default-by-test", "high-by-test")
    kubectl.run("run", "zero", "-n", ns, "--image=nginx")
    assert api.get(f"/api/v1/namespaces/{ns}/pods/zero").json()["spec"]["priority"] == 0


ADMISSION = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: admission-by-test}
webhooks:
- name: validate.example.com
  rules: [{apiGroups: [networking.k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [ingresses]}]
  sideEffects: None
  admissionReviewVersions: [v1]
  clientConfig: {service: {namespace: nowhere, name: webhook, path: /validate}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replicas-by-test}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}]
  validations: [{expression: "object.spec.replicas <= 5"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replicas-by-test}
spec:
  policyName: replicas-by-test
  validationActions: [Deny]
"""


def test_admission_configuration_is_stored_with_its_defaults_and_never_called(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    out = kubectl.out("apply", "-f", manifest(tmp_path, ADMISSION)).splitlines()
    assert out == ["validatingwebhookconfiguration.admissionregistration.k8s.io/admission-by-test created",
                   "validatingadmissionpolicy.admissionregistration.k8s.io/replicas-by-test created",
                   "validatingadmissionpolicybinding.admissionregistration.k8s.io/replicas-by-test created"]
    try:
        hook = api.get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/admission-by-test").json()["webhooks"][0]
        assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["clientConfig"]["service"]["port"]) == ("Fail", 10, 443)
        assert rows(kubectl.out("get", "validatingwebhookconfiguration", "admission-by-test"))[1][:2] == ["admission-by-test", "1"]
        # nothing is called: the webhook's service does not exist, and an Ingress is still written
        kubectl.run("create", "ingress", "passes", "-n", ns, "--rule=a.example.com/=web:80")
        bad = kubectl.run("apply", "-f", manifest(tmp_path, """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: bad-by-test}
webhooks:
- name: mutate.example.com
  sideEffects: Some
  admissionReviewVersions: [v1]
  clientConfig: {url: "https://example.com/mutate", service: {namespace: a, name: b}}
"""), ok=False)
        assert 'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"' in bad.stderr
        assert "webhooks[0].clientConfig: Required value: exactly one of url or service is required" in bad.stderr
    finally:
        kubectl.run("delete", "-f", manifest(tmp_path, ADMISSION))


def test_runtime_classes_are_admitted_as_on_a_cluster(kubectl: Kubectl, api: httpx.Client, ns: str, tmp_path: Path) -> None:
    kubectl.run("apply", "-f", manifest(tmp_path, f"""
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {{name: gvisor-by-test}}
handler: runsc
overhead: {{podFixed: {{cpu: 250m, memory: 64Mi}}}}
scheduling: {{nodeSelector: {{sandbox: gvisor}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: sandboxed, namespace: {ns}}}
spec:
  runtimeClassName: gvisor-by-test
  containers: [{{name: c, image: nginx}}]
"""))
    try:
        assert rows(kubectl.out("get", "runtimeclass", "gvisor-by-test"))[1][:2] == ["gvisor-by-test", "runsc"]
        spec = api.get(f"/api/v1/namespaces/{ns}/pods/sandboxed").json()["spec"]
        assert spec["overhead"] == {"cpu": "250m", "memory": "64Mi"} and spec["nodeSelector"] == {"sandbox": "gvisor"}
        missing = kubectl.run("run", "nowhere", "-n", ns, "--image=nginx", "--overrides", '{"spec": {"runtimeClassName": "kata"}}', ok=False)
        assert 'pods "nowhere" is forbidden: pod rejected: RuntimeClass "kata" not found' in missing.stderr
        changed = kubectl.run("patch", "runtimeclass", "gvisor-by-test", "-p", '{"handler": "kata"}', ok=False)
        assert 'handler: Invalid value: "kata": field is immutable' in changed.stderr
    finally:
        kubectl.run("delete", "pod", "sandboxed", "-n", ns)
        kubectl.run("delete", "runtimeclass", "gvisor-by-test")
