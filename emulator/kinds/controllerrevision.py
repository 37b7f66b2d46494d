"""ControllerRevision (apps/v1): the model, the API server's validation (`revision` not negative, `data`
required and immutable) and the columns of `kubectl get controllerrevisions`.

A revision snapshots a workload's pod template: its `data` is the strategic merge patch that puts the
template back (`{"spec":{"template":{..., "$patch":"replace"}}}`), exactly what `kubectl rollout undo`
sends for these kinds; `kubectl rollout history` lists the revisions a workload controls. The history
itself (names, hashes, numbering) is kept by emulator/controllers/statefulset.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator import errors
from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, NONE, Column, Printer, name_age
from emulator.models.base import Int64
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

CONTROLLER_REVISIONS = ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True, "controllerrevision")

# the label a revision (and the pods made from it) carries: the revision's hash (DaemonSet pods) or name
# (StatefulSet pods)
CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"


class ControllerRevision(TypedObject):
    data: Any = None
    revision: Int64 | None = None


class ControllerRevisionStrategy(Strategy):
    resource = CONTROLLER_REVISIONS
    model = ControllerRevision

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj.setdefault("revision", 0)  # an int64, not a pointer: absent is 0

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        new.setdefault("revision", 0)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        if obj.get("data") is None:
            problems.append(FieldError("data", "FieldValueRequired", "Required value: data is mandatory"))
        revision = int(obj.get("revision") or 0)
        if revision < 0:
            problems.append(errors.invalid("revision", revision, "must be greater than or equal to 0"))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        if new.get("data") != old.get("data"):
            return [errors.forbidden("data", "field is immutable")]
        return []


def revision_number(revision: dict[str, Any]) -> int:
    return int(revision.get("revision") or 0)


# -- columns -----------------------------------------------------------------------------------------


def controller_cell(revision: dict[str, Any]) -> str:
    """`statefulset.apps/web`: the controller's kind (lower case) and group, then its name."""
    for ref in revision.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = ref.get("apiVersion") or ""
            group = api_version.rpartition("/")[0] if "/" in api_version else ""
            kind = (ref.get("kind") or "").lower()
            return f"{kind}.{group}/{ref.get('name', '')}" if group else f"{kind}/{ref.get('name', '')}"
    return NONE


def _revision_cells(revision: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(revision, now)
    return [name, controller_cell(revision), revision_number(revision), created]


PRINTER = Printer(
    (
        NAME,
        Column("Controller", "Controller of the object"),
        Column("Revision", "Revision indicates the revision of the state represented by Data."),
        AGE,
    ),
    _revision_cells,
)

KIND = Kind(CONTROLLER_REVISIONS, ControllerRevisionStrategy, PRINTER)
