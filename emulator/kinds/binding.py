"""Binding (core/v1): create-only and never stored, as in the API server: `POST
/api/v1/namespaces/{ns}/bindings` binds the pod named in its metadata to its `target` node, the older form
of `pods/{name}/binding` (both go to `Registry.bind`). The Python client's `create_namespaced_binding`
posts here, so custom schedulers written with it run unchanged."""

from __future__ import annotations

from emulator.kinds.base import Kind, ResourceType

BINDINGS = ResourceType("", "v1", "bindings", "Binding", True, "binding", verbs=("create",))

KIND = Kind(BINDINGS)
