"""Server-side apply bookkeeping: what each field manager applied last, kept in `metadata.managedFields`.

The real API server records owned *field sets* there; the emulator records each Apply manager's last
applied configuration itself (in `fieldsV1`), which is what patch.py needs to drop fields a manager
stopped applying and to detect conflicts between managers. It lives in the object, so it is stored,
survives restarts and disappears with the object.
"""

from __future__ import annotations

from typing import Any

from emulator import errors
from emulator.kinds.base import ResourceType
from emulator.registry.patch import ListRules, find_conflicts
from emulator.timestamps import now_rfc3339


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in (obj.get("metadata", {}).get("managedFields") or []) if isinstance(e, dict)]


def applied_by(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """manager -> the configuration it last applied."""
    return {
        e["manager"]: e.get("fieldsV1") or {}
        for e in _entries(obj)
        # entries a client wrote by hand in another shape are not ours to interpret
        if e.get("operation") == "Apply" and isinstance(e.get("manager"), str) and isinstance(e.get("fieldsV1") or {}, dict)
    }


def record(obj: dict[str, Any], rt: ResourceType, manager: str, applied: dict[str, Any]) -> None:
    """Set `manager`'s entry in `obj` to `applied` (other managers' entries are kept)."""
    config = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}
    meta = config.get("metadata")
    if isinstance(meta, dict):
        config["metadata"] = {k: v for k, v in meta.items() if k not in ("managedFields", "resourceVersion")}
    entry = {
        "manager": manager, "operation": "Apply", "apiVersion": rt.api_version, "time": now_rfc3339(),
        "fieldsType": "FieldsV1", "fieldsV1": config,
    }
    others = [e for e in _entries(obj) if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    obj.setdefault("metadata", {})["managedFields"] = [*others, entry]


def check_conflicts(
    rt: ResourceType, rules: ListRules, live: dict[str, Any], manager: str, applied: dict[str, Any], force: bool
) -> None:
    """409 Conflict when `applied` changes a value another Apply manager set, unless forced."""
    if force:
        return
    others = {m: c for m, c in applied_by(live).items() if m != manager}
    if not others:
        return
    found = find_conflicts(applied, others, rules)
    if not found:
        return
    name = live["metadata"]["name"]
    # The API server's words (fieldmanager's getConflictMessage); kubectl adds how to resolve them.
    causes = [{"type": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": path} for m, path in found]
    if len(found) == 1:
        message = f'Apply failed with 1 conflict: conflict with "{found[0][0]}": {found[0][1]}'
    else:
        lines = []
        for manager in sorted({m for m, _ in found}):
            lines.append(f'conflicts with "{manager}":')
            lines.extend(f"- {path}" for m, path in found if m == manager)
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    raise errors.StatusError(
        409, "Conflict", message, {"name": name, "kind": rt.plural, **({"group": rt.group} if rt.group else {}), "causes": causes},
    )
