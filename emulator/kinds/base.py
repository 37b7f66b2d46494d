"""What a kind is: its names in the API (`ResourceType`) and everything the layers need to serve it (`Kind`).

A kind is one module in this package (pod.py, service.py, ...) that builds one `Kind`: its resource
type, model and strategy (defaults, validation, allocation), its table columns, its strategic-merge
list rules and its protobuf layouts. `emulator/kinds/__init__.py` lists the kinds; routing, discovery,
OpenAPI, tables, patching and the registry all read that one list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulator.kinds.printing import DEFAULT_PRINTER, Printer
from emulator.kinds.protobuf_layout import Message
from emulator.registry.patch import ListRule, Path

if TYPE_CHECKING:
    from emulator.registry.strategy import Strategy

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Subresource:
    name: str
    verbs: tuple[str, ...] = ("get", "patch", "update")
    # kind the subresource answers with when it is not the parent kind (e.g. TokenRequest)
    kind: str | None = None
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def key(self) -> str:
        """Store key and the 'qualified resource' used in Kubernetes messages: `pods`,
        `networkpolicies.networking.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def newest_default(objects: Iterable[dict[str, Any]], is_default: Callable[[dict[str, Any]], bool]) -> str | None:
    """The name of the newest object marked default (by name on a tie): how the DefaultIngressClass and
    DefaultStorageClass admission plugins choose among several defaults."""
    marked = [o for o in objects if is_default(o)]
    if not marked:
        return None
    return str(max(marked, key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]))["metadata"]["name"])


@dataclass(frozen=True, slots=True)
class Kind:
    """Everything about one kind, in the one module that defines it."""

    resource: ResourceType
    # the write path's rules (emulator/registry/strategy.py); None for kinds that are never stored
    strategy: type[Strategy] | None = None
    # `kubectl get` columns (a kind without its own prints Name and Age)
    printer: Printer = DEFAULT_PRINTER
    # strategic merge patch / server-side apply list rules: path of field names -> rule
    merge_rules: Mapping[Path, ListRule] = field(default_factory=dict)
    # protobuf message layouts this kind's requests may use, by (apiVersion, kind)
    protobuf: Mapping[tuple[str, str], Message] = field(default_factory=dict)
