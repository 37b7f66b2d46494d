"""CustomResourceDefinitions: what apiextensions-apiserver's controllers do, in one place.

- Names: a definition's names are accepted unless another definition of its group uses its kind or
  one of its short names, or a built-in resource of its group has one of its names (condition
  NamesAccepted: a definition never takes over a built-in resource); accepted, it is served at once
  (Established) — its versions are registered as kinds (emulator/kinds/custom.py), so routing,
  discovery, OpenAPI and tables serve them, and the discovery documents change.
- API approval: a definition in a protected group (k8s.io, kubernetes.io) has the condition
  KubernetesAPIApprovalPolicyConformant, True when its api-approved.kubernetes.io annotation is a URL.
- Deletion: a definition marked for deletion (with the `customresourcecleanup.apiextensions.k8s.io`
  finalizer) has its custom resources deleted, then itself, then its routes go (404 afterwards).

Everything runs while the store delivers the definition's event, so the request that creates a
definition is answered once its resources are served: `kubectl apply` of custom resources right after
works, as a script expects. At start the stored definitions are registered before the API serves, so
custom resources survive restarts.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from emulator import errors
from emulator.kinds import CUSTOM_RESOURCE_DEFINITIONS, KINDS, custom, register, registered, unregister
from emulator.kinds.customresourcedefinition import APPROVAL_CONDITION, approval_state, condition, protected_group
from emulator.registry.registry import Registry, marked_for_deletion
from emulator.store.events import Event
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

CRDS = CUSTOM_RESOURCE_DEFINITIONS


class CrdController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._served: dict[str, bytes] = {}  # definition name -> the spec its kinds were built from
        # definition name -> (its resourceVersion, its group, its accepted names): what `_conflict` compares,
        # read from a definition's JSON once per version (a large CRD is hundreds of KB of schema)
        self._names: dict[str, tuple[int, Any, dict[str, Any]]] = {}

    def start(self) -> None:
        """Serve every stored definition (before the API serves, before anything reads custom resources)."""
        for crd in list(self.store.objects(CRDS.key)):
            self.sync(crd["metadata"]["name"])

    def apply(self, event: Event) -> None:
        if event.resource == CRDS.key:
            try:
                self.sync(event.name)
            except errors.StatusError as exc:
                log.warning("custom resource definition %s: %s", event.name, exc.message)
            except Exception:
                log.exception("could not sync custom resource definition %s", event.name)

    def sync(self, name: str) -> None:
        crd = self.store.get(CRDS.key, "", name)
        if crd is None:
            self._stop_serving(name)
            return
        if marked_for_deletion(crd):
            if name not in self._served and self._conflict(crd) is None:
                self._serve(crd)  # (a definition never served: its stored resources still go)
            self._delete_resources(crd)
            self.registry.finalize(CRDS, "", name)
            self._stop_serving(name)
            return
        conflict = self._conflict(crd)
        if conflict is None:
            self._serve(crd)
        else:
            self._stop_serving(name)
        self._write_status(crd, conflict)

    # -- serving ---------------------------------------------------------------------------------------

    def _serve(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        spec = orjson.dumps(crd["spec"])
        if self._served.get(name) == spec:
            return
        unregister(name)
        custom.publish(crd)  # before the kinds: an OpenAPI build for the new kinds finds their schemas
        for kind, storage in custom.served_kinds(crd):
            register(kind, storage)
        self._served[name] = spec

    def _stop_serving(self, name: str) -> None:
        if self._served.pop(name, None) is None:
            return
        for kind in registered(name):
            custom.withdraw(kind.resource.group, kind.resource.kind)
        unregister(name)

    def _conflict(self, crd: dict[str, Any]) -> tuple[str, str] | None:
        """(reason, message) when another definition of the group took this one's kind or a short name, or
        a built-in resource of the group has one of its names."""
        spec = crd["spec"]
        names = spec["names"]
        mine = crd["metadata"]["name"]
        built_in = _built_in_conflict(spec["group"], names)
        if built_in is not None:
            return built_in
        for group, accepted in self._accepted_names(mine):
            if group != spec["group"]:
                continue
            if accepted.get("kind") and accepted.get("kind") == names.get("kind"):
                return "KindConflict", f'"{names["kind"]}" is already in use'
            taken = set(accepted.get("shortNames") or ()) | {accepted.get("plural"), accepted.get("singular")}
            for short in names.get("shortNames") or ():
                if short in taken:
                    return "ShortNamesConflict", f'"{short}" is already in use'
        return None

    def _accepted_names(self, mine: str) -> list[tuple[Any, dict[str, Any]]]:
        """(group, status.acceptedNames) of every other stored definition."""
        known, self._names = self._names, {}
        found = []
        for _, name, version, raw in self.store.entries(CRDS.key):
            entry = known.get(name)
            if entry is None or entry[0] != version:
                other = orjson.loads(raw)
                entry = (version, (other.get("spec") or {}).get("group"), (other.get("status") or {}).get("acceptedNames") or {})
            self._names[name] = entry
            if name != mine:
                found.append((entry[1], entry[2]))
        return found

    # -- status ----------------------------------------------------------------------------------------

    def _write_status(self, crd: dict[str, Any], conflict: tuple[str, str] | None) -> None:
        names = crd["spec"]["names"]
        status = dict(crd.get("status") or {})
        if conflict is None:
            status["acceptedNames"] = {k: names[k] for k in ("plural", "singular", "shortNames", "kind", "listKind", "categories") if names.get(k)}
            wanted = [
                ("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                ("Established", "True", "InitialNamesAccepted", "the initial names have been accepted"),
            ]
        else:
            status.setdefault("acceptedNames", {"kind": "", "plural": ""})
            wanted = [
                ("NamesAccepted", "False", conflict[0], conflict[1]),
                ("Established", "False", "NotAccepted", "not all names are accepted"),
            ]
        if protected_group(crd["spec"].get("group")):
            reason, message = approval_state(crd)
            wanted.insert(0, (APPROVAL_CONDITION, "True" if reason == "ApprovedAnnotation" else "False", reason, message))
        conditions = []
        for kind, value, reason, message in wanted:
            previous = condition(crd, kind)
            since = previous.get("lastTransitionTime") if previous and previous.get("status") == value else None
            conditions.append({"type": kind, "status": value, "lastTransitionTime": since or now_rfc3339(), "reason": reason, "message": message})
        status["conditions"] = conditions
        if status == crd.get("status"):
            return
        self.registry.update(CRDS, "", crd["metadata"]["name"], {**crd, "status": status}, subresource="status")

    # -- deletion --------------------------------------------------------------------------------------

    def _delete_resources(self, crd: dict[str, Any]) -> None:
        """Every custom resource of the definition, in every namespace (finalizers do not hold them)."""
        kinds = registered(crd["metadata"]["name"])
        if not kinds:
            return
        rt = kinds[0].resource
        for namespace, name, _, _ in list(self.store.entries(rt.key)):
            try:
                self.registry.finalize(rt, namespace, name)
            except errors.StatusError as exc:
                log.warning("could not delete %s %s/%s: %s", rt.key, namespace, name, exc.message)


def _built_in_conflict(group: str, names: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when a built-in resource of `group` has one of the names, checked in the naming
    controller's order (plural, singular, short names, kind, list kind)."""
    for kind in KINDS:
        r = kind.resource
        if r.group != group:
            continue
        taken = {r.plural, r.singular}
        kinds = {r.kind, f"{r.kind}List"}
        found = (
            ("PluralConflict", names.get("plural")) if names.get("plural") in taken
            else ("SingularConflict", names.get("singular")) if names.get("singular") in taken
            else next((("ShortNamesConflict", s) for s in names.get("shortNames") or () if s in taken | set(r.short_names)), None)
            or (("KindConflict", names.get("kind")) if names.get("kind") in kinds else None)
            or (("ListKindConflict", names.get("listKind")) if names.get("listKind") in kinds else None)
        )
        if found is not None:
            return found[0], f'"{found[1]}" is already in use by the built-in resource {r.key}'
    return None
