"""Ephemeral containers through the registry, as the API server takes them: only the `ephemeralcontainers`
subresource adds them (kubectl debug patches it), never a create or a main-resource write; once added they
are never changed or removed; what an ephemeral container may not have is refused with the API server's
words; and a pod no kubelet runs says so in the new container's status instead of leaving kubectl waiting."""

from __future__ import annotations

from typing import Any

import pytest

from emulator import errors
from emulator.kinds import PODS
from emulator.registry.registry import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Registry
from tests.unit.test_registry import NS, make_world, pod

SUBRESOURCE = "ephemeralcontainers"


@pytest.fixture
def registry() -> Registry:
    registry = make_world().registry
    registry.create(PODS, NS, pod())
    return registry


def debugger(name: str = "debugger", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh"], "stdin": True, "tty": True, **extra}


def add(registry: Registry, *containers: dict[str, Any]) -> dict[str, Any]:
    """What kubectl debug sends: a strategic merge patch of spec.ephemeralContainers (merged by name)."""
    patch = {"spec": {"ephemeralContainers": list(containers)}}
    return registry.patch(PODS, NS, "web", STRATEGIC_MERGE_PATCH, patch, subresource=SUBRESOURCE).obj


def refused(call: Any, message: str) -> None:
    with pytest.raises(errors.StatusError) as caught:
        call()
    assert caught.value.code == 422 and message in caught.value.message, caught.value.message


def test_the_subresource_adds_them_and_changes_nothing_else(registry: Registry) -> None:
    patch = {"metadata": {"labels": {"sneaky": "yes"}}, "spec": {"ephemeralContainers": [debugger()], "activeDeadlineSeconds": 5}}
    stored = registry.patch(PODS, NS, "web", STRATEGIC_MERGE_PATCH, patch, subresource=SUBRESOURCE).obj
    assert [c["name"] for c in stored["spec"]["ephemeralContainers"]] == ["debugger"]
    assert "labels" not in stored["metadata"] and "activeDeadlineSeconds" not in stored["spec"]
    stored = add(registry, debugger("second"))
    assert [c["name"] for c in stored["spec"]["ephemeralContainers"]] == ["debugger", "second"]


def test_the_main_resource_and_create_leave_them_alone(registry: Registry) -> None:
    add(registry, debugger())
    # a write of the pod without them (an edited manifest) keeps them; one with other ones does not add those
    registry.patch(PODS, NS, "web", MERGE_PATCH, {"spec": {"ephemeralContainers": [debugger("other")]}, "metadata": {"labels": {"a": "b"}}})
    stored = registry.get(PODS, NS, "web")
    assert [c["name"] for c in stored["spec"]["ephemeralContainers"]] == ["debugger"] and stored["metadata"]["labels"] == {"a": "b"}
    body = {**pod("fresh"), "spec": {**pod()["spec"], "ephemeralContainers": [debugger()]}}
    refused(lambda: registry.create(PODS, NS, body), "spec.ephemeralContainers: Forbidden: cannot be set on create")


def test_existing_ones_are_never_changed_or_removed(registry: Registry) -> None:
    add(registry, debugger())
    refused(lambda: registry.patch(PODS, NS, "web", MERGE_PATCH, {"spec": {"ephemeralContainers": []}}, subresource=SUBRESOURCE),
            'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not be changed')
    refused(lambda: add(registry, debugger(image="alpine")), 'existing ephemeral containers "debugger" may not be changed')


@pytest.mark.parametrize(("container", "message"), [
    (debugger(ports=[{"containerPort": 80}]), "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"),
    (debugger(readinessProbe={"exec": {"command": ["true"]}}), "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container"),
    (debugger(targetContainerName="nope"), 'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"'),
    (debugger("app"), 'spec.ephemeralContainers[0].name: Duplicate value: "app"'),
    ({"name": "x", "command": ["sh"]}, "spec.ephemeralContainers[0].image: Required value"),
])
def test_what_an_ephemeral_container_may_not_have(registry: Registry, container: dict[str, Any], message: str) -> None:
    refused(lambda: add(registry, container), message)
    assert "ephemeralContainers" not in registry.get(PODS, NS, "web")["spec"]


def test_a_target_container_that_exists_is_taken(registry: Registry) -> None:
    stored = add(registry, debugger(targetContainerName="app"))
    assert stored["spec"]["ephemeralContainers"][0]["targetContainerName"] == "app"


def test_without_a_kubelet_the_new_container_waits_saying_why(registry: Registry) -> None:
    statuses = add(registry, debugger())["status"]["ephemeralContainerStatuses"]
    assert [s["name"] for s in statuses] == ["debugger"]
    waiting = statuses[0]["state"]["waiting"]
    assert "emulator serve --kubelet" in waiting["message"] and statuses[0]["ready"] is False
