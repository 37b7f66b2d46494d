"""Table columns and cell formatting shared by the kinds (a real 1.32 API server's, from
pkg/printers/internalversion): each kind module declares its own `Printer` from these parts, and
api/tables.py turns printers into `meta.k8s.io` Table documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.timestamps import parse_rfc3339

NONE = "<none>"


# --------------------------------------------------------------------------------------------------------
# Age


def human_duration(seconds: float) -> str:
    """Format an elapsed time the way kubectl's AGE column does (apimachinery `duration.HumanDuration`):
    two significant units while they are informative ("2m30s", "5h12m", "3d4h", "2y100d"), one after."""
    s = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    # A clock up to 2s behind the creator still reads as "now".
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def age(timestamp: str | None, now: datetime) -> str:
    """The AGE cell for a timestamp; "<unknown>" when unset, as kubectl prints it."""
    then = parse_rfc3339(timestamp)
    if then is None:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


# --------------------------------------------------------------------------------------------------------
# Column specs


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    description: str
    type: str = "string"
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME = Column("Name", "Name must be unique within a namespace.", format="name")
AGE = Column(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)

# Cells are computed per object from the object and "now"; one function per kind keeps the shared work
# (e.g. a pod's container walk) in one place.
Cells = Callable[[dict[str, Any], datetime], list[Any]]


@dataclass(frozen=True, slots=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Cells
    conditions: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def status_of(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def name_age(obj: dict[str, Any], now: datetime) -> tuple[str, str]:
    meta = meta_of(obj)
    return meta.get("name", ""), age(meta.get("creationTimestamp"), now)


def format_labels(labels: dict[str, str] | None) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs, "<none>" when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """`metav1.FormatLabelSelector`: matchLabels and matchExpressions as one selector string, sorted by key."""
    selector = selector or {}
    terms: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        rendered = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op, f"{key} {op} ({values})")
        terms.append((key, rendered))
    if not terms:
        return NONE
    return ",".join(text for _, text in sorted(terms, key=lambda t: t[0]))


def join_with_more(items: Iterable[str], limit: int = 3, empty: str = "<unset>") -> str:
    """The first `limit` items and "+ N more..." for the rest, as kubectl abbreviates long address lists."""
    listed = list(items)
    shown = ",".join(listed[:limit])
    if len(listed) > limit:
        return f"{shown} + {len(listed) - limit} more..."
    return shown or empty


def host_port(ip: str, port: Any) -> str:
    # net.JoinHostPort brackets IPv6 addresses
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _name_age_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    return list(name_age(obj, now))


DEFAULT_PRINTER = Printer((NAME, AGE), _name_age_cells)
