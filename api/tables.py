"""`meta.k8s.io/v1` Table documents: what `kubectl get` prints, with the columns and cell formatting of a
real 1.32 API server. Each kind declares its columns and cells (`Kind.printer`, emulator/kinds/); this
module lays them out as a Table.

The server formats every cell; kubectl only lays them out. Priority-1 columns are what `-o wide` adds.
Rows carry the object (PartialObjectMetadata by default) because kubectl reads the NAMESPACE and LABELS
columns from it (KUBECTL.md §6).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from emulator.kinds import BY_KEY, ResourceType, kind_of
from emulator.kinds.printing import DEFAULT_PRINTER, Printer, meta_of

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def printer_for(resource: ResourceType) -> Printer:
    """The kind's columns; Name and Age for a resource no kind module describes."""
    kind = kind_of(resource) if resource.key in BY_KEY else None  # (a custom resource: its version's columns)
    return kind.printer if kind is not None else DEFAULT_PRINTER


def column_definitions(resource: ResourceType, printer: Printer | None = None) -> list[dict[str, Any]]:
    return [c.definition() for c in (printer or printer_for(resource)).columns]


def partial_object_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta_of(obj)}


def table_row(
    resource: ResourceType, obj: dict[str, Any], include_object: str = "Metadata", now: datetime | None = None,
    printer: Printer | None = None,
) -> dict[str, Any]:
    """One row: formatted cells plus, unless includeObject=None, the object (or its metadata)."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, not {include_object!r}")
    printer = printer or printer_for(resource)
    row: dict[str, Any] = {"cells": printer.cells(obj, now or datetime.now(UTC))}
    if printer.conditions is not None:
        conditions = printer.conditions(obj)
        if conditions:
            row["conditions"] = conditions
    if include_object == "Metadata":
        row["object"] = partial_object_metadata(obj)
    elif include_object == "Object":
        row["object"] = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
    return row


def table(
    resource: ResourceType,
    objects: list[dict[str, Any]],
    resource_version: str,
    include_object: str = "Metadata",
    now: datetime | None = None,
    *,
    continue_token: str | None = None,
    version: str = "v1",
    printer: Printer | None = None,
) -> dict[str, Any]:
    """A Table for a list, a single GET (one object) or one watch event. Always carries the column
    definitions and a resourceVersion, even when empty: without the RV `kubectl get -w` re-lists and
    prints every row twice (KUBECTL.md §12.7). `printer`: the kind's, when the caller looked it up already
    (a list rendered on a worker thread: the CRD controller may change the kinds meanwhile)."""
    now = now or datetime.now(UTC)
    printer = printer or printer_for(resource)
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": metadata,
        "columnDefinitions": column_definitions(resource, printer),
        "rows": [table_row(resource, obj, include_object, now, printer) for obj in objects],
    }
