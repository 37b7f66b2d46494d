"""What a model keeps as it comes (fields typed `Any`: volumes, probes, affinity, ...) is decoded as the API
server's Go decoder would: checked against 1.32's schema for unknown fields (dropped, and named for
fieldValidation) and for JSON types (emulator/schemas.py `check_open_fields`, emulator/models/base.py
`open_fields`)."""

from __future__ import annotations

from typing import Any

from emulator import schemas
from emulator.kinds.deployment import Deployment
from emulator.kinds.pod import Pod, validate_tolerations
from emulator.models.base import mismatch_error, open_fields


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


def test_the_open_parts_of_a_pod_are_its_untyped_fields() -> None:
    trie = open_fields(Pod)
    assert trie["spec"]["volumes"] == schemas.ANY and trie["spec"]["affinity"] == schemas.ANY
    assert trie["spec"]["containers"][schemas.ITEMS]["livenessProbe"] == schemas.ANY
    assert "image" not in trie["spec"]["containers"][schemas.ITEMS]  # typed by the model: checked there
    assert open_fields(Deployment)["spec"]["template"]["spec"]["volumes"] == schemas.ANY


def test_unknown_fields_in_open_parts_are_named_and_dropped() -> None:
    body = pod(volumes=[{"name": "v", "emptyDir": {"medium": "Memory", "bogus": True}}],
               tolerations=[{"key": "k", "operator": "Exists", "effectt": "NoSchedule"}])
    body["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"pathh": "/", "port": 80}}
    unknown, mismatch = schemas.check_open_fields("v1", "Pod", body, open_fields(Pod))
    assert mismatch is None
    assert unknown == ["spec.containers[0].livenessProbe.httpGet.pathh", "spec.volumes[0].emptyDir.bogus", "spec.tolerations[0].effectt"]
    assert body["spec"]["volumes"] == [{"name": "v", "emptyDir": {"medium": "Memory"}}]
    assert body["spec"]["tolerations"] == [{"key": "k", "operator": "Exists"}]


def test_a_wrong_json_type_is_the_decoders_400() -> None:
    required = [{"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]
    body = pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}})
    _, mismatch = schemas.check_open_fields("v1", "Pod", body, open_fields(Pod))
    assert mismatch is not None
    assert mismatch_error("Pod", "v1", mismatch).message == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal array into Go struct field '
        "NodeAffinity.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution of type v1.NodeSelector"
    )
    _, mismatch = schemas.check_open_fields("v1", "Pod", pod(tolerations=[{"key": "k", "tolerationSeconds": "5"}]), open_fields(Pod))
    assert mismatch is not None and mismatch_error("Pod", "v1", mismatch).message.endswith(
        "json: cannot unmarshal string into Go struct field Toleration.spec.tolerations.tolerationSeconds of type int64")
    _, mismatch = schemas.check_open_fields("v1", "Pod", pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": True}}]), open_fields(Pod))
    assert mismatch is not None and mismatch.go_type == "resource.Quantity"


def test_what_the_schema_allows_passes_untouched() -> None:
    body = pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "w", "configMap": {"name": "c", "defaultMode": 420}}],
               tolerations=[{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
               securityContext={"runAsUser": 1000, "sysctls": [{"name": "a", "value": "1"}]})
    body["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5}
    expected = {**body, "spec": {**body["spec"]}}
    assert schemas.check_open_fields("v1", "Pod", body, open_fields(Pod)) == ([], None)
    assert body == expected


def test_tolerations_as_validate_tolerations_checks_them() -> None:
    assert validate_tolerations([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"},
                                 {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 5}]) == []
    problems = [p.describe() for p in validate_tolerations([
        {"key": "k", "operator": "Gt", "value": "9"}, {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 1},
        {"key": "k", "operator": "Exists", "value": "v"}, {"key": "k", "effect": "Sometimes"},
    ])]
    assert problems == [
        'spec.tolerations[0].operator: Unsupported value: "Gt": supported values: "Equal", "Exists"',
        "spec.tolerations[1].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        'spec.tolerations[2].operator: Invalid value: core.Toleration{Key:"k", Operator:"Exists", Value:"v", Effect:"", '
        "TolerationSeconds:(*int64)(nil)}: value must be empty when `operator` is 'Exists'",
        'spec.tolerations[3].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ]


def test_tries_built_by_two_threads_at_once_are_complete() -> None:
    """A large body is decoded on the API's worker thread while the loop decodes others: two threads may
    build the tries of models that share parts (a Deployment's template is a Pod's spec) at once. Neither
    may see, and keep for good, a trie another is still filling (the switch interval made tiny so that
    they interleave: without the build lock about half of these rounds went wrong)."""
    import sys
    import threading

    from emulator.models import base

    expected = {Pod: open_fields(Pod), Deployment: open_fields(Deployment)}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(30):
            base._OPEN.clear()
            found: dict[Any, Any] = {}
            threads = [threading.Thread(target=lambda m=model, into=found: into.__setitem__(m, open_fields(m))) for model in expected]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert found == expected
            assert open_fields(Pod) == expected[Pod] and open_fields(Deployment) == expected[Deployment]
    finally:
        sys.setswitchinterval(interval)
