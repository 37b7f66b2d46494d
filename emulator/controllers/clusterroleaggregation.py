"""The ClusterRole aggregation controller (kube-controller-manager's clusterrole-aggregation) and the
bootstrap of the default RBAC policy.

A ClusterRole with an `aggregationRule` holds the union of the rules of every other ClusterRole one of its
selectors matches (in name order, each rule once). Any ClusterRole event marks every aggregated role
dirty (a label change may add or remove a source; there are few aggregated roles); `sync` computes the
union from the store and writes it when it differs.

`ensure_bootstrap_policy` writes the default roles and bindings at start
(emulator/security/bootstrappolicy.py says which, and what a restart may change).
"""

from __future__ import annotations

import logging
from typing import Any

from emulator import errors
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, ResourceType
from emulator.registry.registry import Registry
from emulator.security import bootstrappolicy
from emulator.security.rbac import aggregated_rules
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)


class ClusterRoleAggregationController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[str] = WorkQueue("clusterrole-aggregation", self.sync)
        self._aggregated: set[str] = set()

    def apply(self, event: Event) -> None:
        if event.resource != CLUSTER_ROLES.key:
            return
        if event.type == DELETED or event.obj.get("aggregationRule") is None:
            self._aggregated.discard(event.name)
            self.queue.forget(event.name)
        else:
            self._aggregated.add(event.name)
        for name in self._aggregated:
            self.queue.add(name)

    def sync(self, name: str) -> float | None:
        role = self.store.get(CLUSTER_ROLES.key, "", name)
        if role is None:
            return None
        rules = aggregated_rules(role, self.store.objects(CLUSTER_ROLES.key))
        if rules is None or rules == (role.get("rules") or []):
            return None
        role["rules"] = rules
        try:
            self.registry.update(CLUSTER_ROLES, "", name, role)
        except errors.StatusError as exc:
            if exc.code == 409:
                return 0  # changed meanwhile: look again
            log.warning("could not aggregate the rules of ClusterRole %s: %s", name, exc)
        return None


def ensure_bootstrap_policy(registry: Registry) -> None:
    """Create the default roles and bindings, give back to auto-updated ones what they lack."""
    store = registry.store
    for wanted in bootstrappolicy.CLUSTER_ROLES:
        name = wanted["metadata"]["name"]
        write = bootstrappolicy.reconcile_role(store.get(CLUSTER_ROLES.key, "", name), wanted)
        if write is not None:
            _write(registry, CLUSTER_ROLES, name, write)
    for wanted in bootstrappolicy.CLUSTER_ROLE_BINDINGS:
        name = wanted["metadata"]["name"]
        write, replace = bootstrappolicy.reconcile_binding(store.get(CLUSTER_ROLE_BINDINGS.key, "", name), wanted)
        if write is None:
            continue
        if replace:
            registry.delete(CLUSTER_ROLE_BINDINGS, "", name)
            write["metadata"].pop("resourceVersion", None)
        _write(registry, CLUSTER_ROLE_BINDINGS, name, write)


def _write(registry: Registry, rt: ResourceType, name: str, obj: dict[str, Any]) -> None:
    try:
        if registry.store.get_raw(rt.key, "", name) is None:
            registry.create(rt, "", obj)
        else:
            registry.update(rt, "", name, obj)
    except errors.StatusError as exc:
        log.warning("could not write the default %s %s: %s", rt.kind, name, exc)
