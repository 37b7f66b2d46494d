"""What the API server warns about in pods and pod templates (emulator/kinds/podwarnings.py, GetWarningsForPod)."""

from __future__ import annotations

from emulator.kinds.podwarnings import pod_warnings, template_warnings


def test_a_clean_pod_has_no_warnings() -> None:
    spec = {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}],
                            "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}],
                            "resources": {"limits": {"memory": "64Mi"}}}],
            "nodeSelector": {"kubernetes.io/os": "linux"}}
    assert pod_warnings({"annotations": {"team": "a"}}, spec) == []


def test_deprecated_labels_annotations_and_volumes() -> None:
    meta = {"annotations": {"scheduler.alpha.kubernetes.io/critical-pod": "", "container.apparmor.security.beta.kubernetes.io/c": "runtime/default",
                            "seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}}
    spec = {"nodeSelector": {"beta.kubernetes.io/arch": "amd64"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "failure-domain.beta.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}},
            "volumes": [{"name": "v", "gitRepo": {"repository": "r"}}],
            "containers": [{"name": "c", "image": "x"}]}
    assert pod_warnings(meta, spec) == [
        'spec.nodeSelector[beta.kubernetes.io/arch]: deprecated since v1.14; use "kubernetes.io/arch" instead',
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key: "
        'failure-domain.beta.kubernetes.io/zone is deprecated since v1.17; use "topology.kubernetes.io/zone" instead',
        'metadata.annotations[scheduler.alpha.kubernetes.io/critical-pod]: non-functional in v1.16+; use the "priorityClassName" field instead',
        "spec.volumes[0].gitRepo: deprecated in v1.11",
        'metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]: non-functional in v1.27+; use the "seccompProfile" field instead',
        'metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]: deprecated since v1.30; use the "appArmorProfile" field instead',
    ]


def test_mistakes_that_are_accepted() -> None:
    spec = {"containers": [
        {"name": "a", "image": "x", "env": [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}],
         "resources": {"requests": {"memory": "1.5"}}, "ports": [{"containerPort": 80}]},
        {"name": "b", "image": "x", "ports": [{"containerPort": 80}]},
    ], "imagePullSecrets": [{"name": "r"}, {"name": "r"}], "hostAliases": [{"ip": "1.2.3.4"}, {"ip": "1.2.3.4"}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]}
    assert template_warnings({"metadata": {}, "spec": spec}) == [
        "spec.template.spec.topologySpreadConstraints[0].labelSelector: a null labelSelector results in matching no pod",
        'spec.template.spec.hostAliases[1].ip: duplicate ip "1.2.3.4"',
        'spec.template.spec.imagePullSecrets[1].name: duplicate name "r"',
        'spec.template.spec.containers[0].resources.requests[memory]: fractional byte value "1500m" is invalid, must be an integer',
        'spec.template.spec.containers[0].env[1]: hides previous definition of "X", which may be dropped when using apply',
        "spec.template.spec.containers[1].ports[0]: duplicate port definition with spec.template.spec.containers[0].ports[0]",
    ]


def test_a_seccomp_annotation_and_field_must_agree() -> None:
    from emulator.kinds.pod import validate_seccomp_annotations

    def problems(annotations: dict[str, str], spec: dict[str, object]) -> list[str]:
        return [p.describe() for p in validate_seccomp_annotations({"annotations": annotations}, spec)]

    pod_level = {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c"}]}
    assert problems({"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}, pod_level) == []
    assert problems({"seccomp.security.alpha.kubernetes.io/pod": "localhost/p.json"}, pod_level) == [
        "spec.securityContext.seccompProfile.type: Forbidden: seccomp type in annotation and field must match"]
    container = {"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "a.json"}}}]}
    assert problems({"container.seccomp.security.alpha.kubernetes.io/c": "localhost/b.json"}, container) == [
        "spec.containers[0].securityContext.seccompProfile.localhostProfile: Forbidden: seccomp profile in annotation and field must match"]
    assert problems({}, container) == []
