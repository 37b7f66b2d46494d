"""The Ingress status controller: what an Ingress controller writes back about the Ingresses of its class.

- `status.loadBalancer.ingress: [{"ip": <gateway host>}]` (`hostname` when the gateway host is a name)
  on every Ingress the emulator serves (emulator/routing/ingress.py decides which), so `kubectl get
  ingress` shows the ADDRESS and `kubectl wait --for=jsonpath=...` works; an Ingress that stops being
  served (its class changed) gets its address removed. Ingresses of other classes are left alone.
- a Warning Event for each problem the compiler found on a served Ingress (a Service or port that does
  not exist, a missing or invalid TLS Secret) that lasts PROBLEM_GRACE seconds (a manifest applied
  Ingress first, Service second, is no problem), once per distinct problem: the same problem is not
  reported again on every change elsewhere, and is reported anew once fixed and broken again.

Its own `RoutingIndex` (from store events) compiles the Ingresses. A change of one Ingress marks it dirty;
a routing change marks one key, EVERY, BATCH_DELAY seconds later, whose sync marks the Ingresses whose outcome (status, problems)
changed since their last sync; `sync` of an Ingress compares and writes through the registry.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from emulator import errors
from emulator.controllers.events import EventRecorder
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds.ingress import INGRESSES
from emulator.registry.registry import Registry
from emulator.routing.index import RoutingIndex
from emulator.routing.ingress import compile_ingresses, load_balancer_status
from emulator.routing.model import Compiled, ObjectRef, Problem
from emulator.routing.sources import RoutingSettings
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)

COMPONENT = "emulator-ingress-controller"
PROBLEM_GRACE = 1.0  # seconds a problem lasts before it is reported (`kubectl apply` of an Ingress, then its Service)

Key = tuple[str, str]  # (namespace, name) of an Ingress
BATCH_DELAY = 0.05  # seconds routing changes are gathered before one compilation (at most 20 a second)
EVERY = ("*", "*")  # the key of "routing changed: find the Ingresses whose outcome did" (no object has it)


class IngressStatusController:
    def __init__(self, registry: Registry, settings: RoutingSettings) -> None:
        self.registry = registry
        self.settings = settings
        self.index = RoutingIndex(settings, compilers=(compile_ingresses,))  # Ingresses only: no Gateway API compile
        self.watched = self.index.watched
        self.queue: WorkQueue[Key] = WorkQueue("ingress-status", self.sync)
        self.events = EventRecorder(registry, COMPONENT)
        self._seen: dict[Key, dict[tuple[str, str], float]] = {}  # (reason, message) -> since when, per Ingress
        self._reported: dict[Key, set[tuple[str, str]]] = {}  # problems already recorded, per Ingress
        self._problems: tuple[Compiled | None, dict[Key, list[Problem]]] = (None, {})
        self._settled: dict[Key, tuple[dict[str, Any] | None, tuple[Problem, ...]]] = {}  # what each last sync saw

    def apply(self, event: Event) -> None:
        changed = self.index.apply(event)
        if event.resource == INGRESSES.key:
            key = (event.namespace, event.name)
            if event.type == DELETED:
                self.queue.forget(key)
                self._reported.pop(key, None)
                self._seen.pop(key, None)
                self._settled.pop(key, None)
                self.events.forget((event.obj.get("metadata") or {}).get("uid") or "")
            elif not changed:
                self.queue.add(key)  # its status, say: checked against the routing as compiled
        if changed:
            self.queue.add_after(EVERY, BATCH_DELAY)

    def _problems_of(self, compiled: Compiled) -> dict[Key, list[Problem]]:
        cached, by_key = self._problems
        if cached is not compiled:
            by_key = {}
            for problem in compiled.problems:
                if problem.ref.resource == INGRESSES.key:
                    by_key.setdefault((problem.ref.namespace, problem.ref.name), []).append(problem)
            self._problems = (compiled, by_key)
        return by_key

    def _outcome(self, compiled: Compiled, key: Key) -> tuple[dict[str, Any] | None, tuple[Problem, ...]]:
        desired = compiled.statuses.get(ObjectRef(INGRESSES.key, *key))
        return desired, tuple(self._problems_of(compiled).get(key, ())) if desired is not None else ()

    def sync(self, key: Key) -> float | None:
        compiled = self.index.compiled()
        if key == EVERY:
            # one pass per batch of routing changes, however many: only the Ingresses whose status or
            # problems changed are synced (a thousand Ingresses created one by one stay linear)
            for ingress in self.index.objects.ingresses:
                if self._settled.get(ingress) != self._outcome(compiled, ingress):
                    self.queue.add(ingress)
            return None
        ing = self.registry.store.get(INGRESSES.key, *key)
        if ing is None:
            return None
        outcome = self._outcome(compiled, key)
        self._write_status(ing, outcome[0])
        self._settled[key] = outcome
        return self._report(key, ing, list(outcome[1]))

    def _write_status(self, ing: dict[str, Any], desired: dict[str, Any] | None) -> None:
        status = ing.get("status") or {}
        if desired is None:
            # no longer ours: take back the address we wrote, leave anyone else's
            if status.get("loadBalancer") != load_balancer_status(self.settings)["loadBalancer"]:
                return
            desired = {"loadBalancer": {}}
        new_status = {**status, **desired}
        if new_status == status:
            return
        try:
            self.registry.replace_object(INGRESSES, ing, {**ing, "status": new_status}, subresource="status")
        except errors.StatusError as exc:
            if exc.code == 404:
                return
            raise  # a conflict: retried with backoff, reading the Ingress again

    def _report(self, key: Key, ing: dict[str, Any], problems: list[Problem]) -> float | None:
        """Record the problems not reported yet that have lasted PROBLEM_GRACE seconds; returns when to
        look again for those that have not."""
        now = time.monotonic()
        seen = self._seen.get(key, {})
        current = {(p.reason, p.message): seen.get((p.reason, p.message), now) for p in problems}
        reported = self._reported.get(key, set()) & set(current)
        wait: float | None = None
        for p in problems:
            problem = (p.reason, p.message)
            if problem in reported:
                continue
            left = current[problem] + PROBLEM_GRACE - now
            if left > 0:
                wait = left if wait is None else min(wait, left)
                continue
            self.events.record(INGRESSES, ing, p.type, p.reason, p.message)
            reported.add(problem)
        if current:
            self._seen[key] = current
        else:
            self._seen.pop(key, None)
        if reported:
            self._reported[key] = reported
        else:
            self._reported.pop(key, None)
        return wait
