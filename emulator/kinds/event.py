"""Event (core/v1): the model, its field selectors and the columns of `kubectl get events`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import NAME, Column, Printer, age, meta_of
from emulator.models.base import Int32
from emulator.models.meta import ObjectReference, TypedObject
from emulator.registry.strategy import Strategy

EVENTS = ResourceType("", "v1", "events", "Event", True, "event", ("ev",))


class Event(TypedObject):
    involved_object: ObjectReference | None = None
    reason: str | None = None
    message: str | None = None
    source: Any = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    count: Int32 | None = None
    type: str | None = None
    event_time: str | None = None
    series: Any = None
    action: str | None = None
    related: Any = None
    reporting_component: str | None = None
    reporting_instance: str | None = None


class EventStrategy(Strategy):
    resource = EVENTS
    model = Event
    field_labels = {
        **{f"involvedObject.{f}": (f"involvedObject.{f}", "") for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        **{f: (f, "") for f in ("reason", "reportingComponent", "type")},
        "source": ("source.component", ""),
    }


def _event_cells(ev: dict[str, Any], now: datetime) -> list[Any]:
    # Events of the events.k8s.io API set eventTime instead of firstTimestamp.
    first = age(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = age(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 1  # events of the new API leave count unset: they happened once
    series = ev.get("series")
    if series:
        last = age(series.get("lastObservedTime"), now)
        count = series.get("count") or count
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return [
        last,
        ev.get("type", ""),
        ev.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        (ev.get("message") or "").strip(),
        first,
        count,
        meta_of(ev).get("name", ""),
    ]


PRINTER = Printer(
    (
        Column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
        Column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
        Column(
            "Reason",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        Column("Object", "The object that this event is about."),
        Column("Subobject", "The part of the object the event is about, e.g. spec.containers{name}.", priority=1),
        Column("Source", "The component reporting this event.", priority=1),
        Column("Message", "A human-readable description of the status of this operation."),
        Column("First Seen", "The time at which the event was first recorded.", priority=1),
        Column("Count", "The number of times this event has occurred.", priority=1),
        Column("Name", NAME.description, format="name", priority=1),
    ),
    _event_cells,
)


# Event lists have no merge strategy: they are replaced wholesale.
KIND = Kind(EVENTS, EventStrategy, PRINTER)
