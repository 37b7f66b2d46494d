"""`RoutingIndex` (emulator/routing/index.py): which store events count as routing changes, lazy
recompilation, merging the Gateway API's and the Ingress compilers' outputs; and the Ingress status
controller (emulator/controllers/ingressstatus.py) in process, on a real in-memory store and registry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from emulator.controllers import ingressstatus
from emulator.controllers.builtins import ensure_ingress_class
from emulator.controllers.ingressstatus import IngressStatusController
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import (
    EVENTS,
    GATEWAY_CLASSES,
    GATEWAYS,
    GRPC_ROUTES,
    HTTP_ROUTES,
    INGRESS_CLASSES,
    NAMESPACES,
    REFERENCE_GRANTS,
    SECRETS,
    SERVICES,
)
from emulator.kinds.ingress import INGRESSES
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.routing.index import RoutingIndex, merge
from emulator.routing.match import find
from emulator.routing.model import (
    SHARED_HTTP,
    Action,
    Certificate,
    Compiled,
    Entry,
    HostRoutes,
    ListenerRoutes,
    Match,
    ObjectRef,
    Problem,
    RoutingConfig,
    ServiceBackend,
)
from emulator.routing.sources import RoutingObjects, RoutingSettings
from emulator.store.backend import MemoryBackend
from emulator.store.events import ADDED, DELETED, MODIFIED, Event
from emulator.store.store import Store

rv = iter(range(1, 1_000_000))


def event(kind: str, resource: str, obj: dict[str, Any]) -> Event:
    meta = obj["metadata"]
    return Event(kind, resource, meta.get("namespace", ""), meta["name"], next(rv), orjson.dumps(obj))


def ingress(name: str, host: str, service: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "emulator", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


def service(name: str, port: int = 80) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"type": "ClusterIP", "ports": [{"port": port}]}}


def test_relevant_changes_and_lazy_compilation() -> None:
    idx = RoutingIndex(RoutingSettings())
    assert INGRESSES.key in idx.watched and SERVICES.key in idx.watched
    assert idx.compiled().config.listeners == {}
    assert idx.apply(event(ADDED, INGRESSES.key, ingress("web", "a.test", "web"))) is True
    first = idx.compiled()
    assert idx.compiled() is first  # no change, no recompilation
    hit = find(first.config.listeners[SHARED_HTTP], "a.test", "/")
    assert hit is not None and hit[0].action.backends[0].problem == 'service "default/web" not found'
    assert idx.apply(event(ADDED, SERVICES.key, service("web"))) is True
    second = idx.compiled()
    assert second is not first and second.problems == ()
    # a Service's status or annotations: not a routing change; its ports are
    changed = service("web")
    changed["status"] = {"loadBalancer": {}}
    changed["metadata"]["annotations"] = {"a": "b"}
    assert idx.apply(event(MODIFIED, SERVICES.key, changed)) is False
    assert idx.compiled() is second
    assert idx.apply(event(MODIFIED, SERVICES.key, service("web", 8080))) is True
    # an Ingress' status: not a change
    with_status = ingress("web", "a.test", "web")
    with_status["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    assert idx.apply(event(MODIFIED, INGRESSES.key, with_status)) is False
    # only kubernetes.io/tls Secrets are kept
    opaque = {"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", "data": {}}
    assert idx.apply(event(ADDED, SECRETS.key, opaque)) is False
    assert idx.apply(event(MODIFIED, SECRETS.key, {**opaque, "type": "kubernetes.io/tls"})) is True
    assert ("default", "s") in idx.objects.tls_secrets
    assert idx.apply(event(MODIFIED, SECRETS.key, opaque)) is True  # no longer a TLS Secret: gone
    assert idx.objects.tls_secrets == {}
    # namespaces: labels only
    ns = {"metadata": {"name": "team", "labels": {"a": "1"}}}
    assert idx.apply(event(ADDED, NAMESPACES.key, ns)) is True
    assert idx.apply(event(MODIFIED, NAMESPACES.key, {"metadata": {**ns["metadata"], "resourceVersion": "9"}})) is False
    assert idx.apply(event(MODIFIED, NAMESPACES.key, {"metadata": {"name": "team", "labels": {"a": "2"}}})) is True
    # deletions, and kinds routing does not read
    version = idx.version
    assert idx.apply(event(DELETED, INGRESSES.key, ingress("web", "a.test", "web"))) is True
    assert idx.apply(event(DELETED, INGRESSES.key, ingress("web", "a.test", "web"))) is False
    assert idx.apply(event(ADDED, EVENTS.key, {"metadata": {"name": "e", "namespace": "default"}})) is False
    assert idx.version == version + 1
    assert idx.compiled().config.listeners == {}


def test_gateway_api_objects_are_kept() -> None:
    idx = RoutingIndex(RoutingSettings(), compilers=())
    for rt, attribute in ((GATEWAY_CLASSES, "gateway_classes"), (GATEWAYS, "gateways"), (HTTP_ROUTES, "http_routes"),
                          (GRPC_ROUTES, "grpc_routes"), (REFERENCE_GRANTS, "reference_grants")):
        assert rt.key in idx.watched
        namespace = "default" if rt.namespaced else ""
        obj = {"metadata": {"name": "x", "namespace": namespace}, "spec": {}}
        assert idx.apply(event(ADDED, rt.key, obj)) is True
        assert getattr(idx.objects, attribute) == {(namespace, "x"): obj}
        assert idx.apply(event(MODIFIED, rt.key, {**obj, "status": {"a": 1}})) is False  # a status is no routing change
        assert getattr(idx.objects, attribute)[(namespace, "x")]["status"] == {"a": 1}  # but the object kept is the newest
        assert idx.apply(event(MODIFIED, rt.key, {**obj, "spec": {"b": 1}})) is True
        assert idx.apply(event(DELETED, rt.key, obj)) is True
        assert getattr(idx.objects, attribute) == {}


def entry(source: str) -> Entry:
    return Entry(Match(), Action(backends=(ServiceBackend("ns", source, 80),), source=source))


def routes(*sources: str) -> HostRoutes:
    return HostRoutes(entries=tuple(entry(s) for s in sources))


def cert(name: str) -> Certificate:
    return Certificate("ns", name, b"c", b"k", ())


def test_merge_puts_the_gateway_api_first() -> None:
    gateway = Compiled(
        config=RoutingConfig(listeners={SHARED_HTTP: ListenerRoutes(
            exact={"both.test": routes("g-both"), "g.test": routes("g-only")},
            wildcards=((".example.com", False, routes("g-wild")), (".a.example.com", False, routes("g-deeper"))),
            any_host=routes("g-any"), certificates=(cert("g"),),
        )}, hostnames=frozenset({"both.test", "g.test"})),
        statuses={ObjectRef("gateways", "ns", "gw"): {"a": 1}},
        problems=(Problem(ObjectRef("gateways", "ns", "gw"), "R", "m"),),
    )
    ingress_part = Compiled(
        config=RoutingConfig(listeners={SHARED_HTTP: ListenerRoutes(
            exact={"both.test": routes("i-both"), "i.test": routes("i-only")},
            wildcards=((".example.com", True, routes("i-wild")), (".a.example.com", True, routes("i-deeper"))),
            any_host=routes("i-any"), certificates=(cert("i"),),
        )}, hostnames=frozenset({"both.test", "i.test"})),
        statuses={ObjectRef("ingresses", "ns", "web"): {"b": 2}},
    )
    merged = merge(gateway, ingress_part)
    listener = merged.config.listeners[SHARED_HTTP]
    assert [e.action.source for e in listener.exact["both.test"].entries] == ["g-both", "i-both"]
    assert set(listener.exact) == {"both.test", "g.test", "i.test"}
    assert [(s, single, [e.action.source for e in r.entries]) for s, single, r in listener.wildcards] == [
        (".a.example.com", False, ["g-deeper"]), (".a.example.com", True, ["i-deeper"]),
        (".example.com", False, ["g-wild"]), (".example.com", True, ["i-wild"]),
    ]  # for one suffix, the Gateway API's pattern first (the contract's order)
    assert listener.any_host is not None and [e.action.source for e in listener.any_host.entries] == ["g-any", "i-any"]
    assert [c.secret for c in listener.certificates] == ["g", "i"]
    assert merged.config.hostnames == {"both.test", "g.test", "i.test"}
    assert set(merged.statuses) == {ObjectRef("gateways", "ns", "gw"), ObjectRef("ingresses", "ns", "web")}
    assert len(merged.problems) == 1
    empty = Compiled(config=RoutingConfig())
    assert merge(empty, ingress_part) is ingress_part and merge(gateway, empty) is gateway


def test_custom_compilers() -> None:
    calls: list[int] = []

    def compiler(objs: RoutingObjects, s: RoutingSettings) -> Compiled:
        calls.append(len(objs.ingresses))
        return Compiled(config=RoutingConfig(hostnames=frozenset({"x"})))

    def broken(objs: RoutingObjects, s: RoutingSettings) -> Compiled:
        raise KeyError("bug")

    idx = RoutingIndex(RoutingSettings(), compilers=(compiler, broken, compiler))
    assert idx.compiled().config.hostnames == {"x"}  # the broken one is left out (and logged)
    assert calls == [0, 0]


# -- the status controller, in process -----------------------------------------------------------------


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Store, Registry, IngressStatusController]]:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
    namespaces = NamespaceController(registry, 0.01)
    store.subscribe(namespaces.apply)
    namespaces.bootstrap("127.0.0.1", 6443)
    ensure_ingress_class(registry)
    controller = IngressStatusController(registry, RoutingSettings(gateway_host="127.0.0.2"))
    store.subscribe(controller.apply)
    store.replay(controller.apply, controller.watched)
    controller.queue.start()
    yield store, registry, controller
    await controller.queue.stop()


async def settle(store: Store, controller: IngressStatusController) -> None:
    """Until everything is delivered and synced, routing changes included (they wait BATCH_DELAY)."""
    quiet = 0
    while quiet < 2:
        await store.settled(store.rv)
        await asyncio.sleep(ingressstatus.BATCH_DELAY + 0.01)
        quiet = quiet + 1 if store.delivered_rv == store.rv and controller.queue.idle else 0


def warnings(store: Store, name: str) -> list[tuple[str, str, int]]:
    return sorted((e["reason"], e["message"], e["count"]) for e in store.objects(EVENTS.key, "default")
                  if e["involvedObject"]["name"] == name and e["type"] == "Warning")


async def test_status_and_events(cluster: tuple[Store, Registry, IngressStatusController], monkeypatch: pytest.MonkeyPatch) -> None:
    store, registry, controller = cluster
    monkeypatch.setattr(ingressstatus, "PROBLEM_GRACE", 0.0)
    assert store.get(INGRESS_CLASSES.key, "", "emulator") is not None
    registry.create(INGRESSES, "default", {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "a.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    registry.create(INGRESSES, "default", {"metadata": {"name": "other"}, "spec": {"ingressClassName": "nginx", "defaultBackend": {
        "service": {"name": "nothing", "port": {"number": 80}}}}})
    await settle(store, controller)
    web = store.get(INGRESSES.key, "default", "web")
    assert web is not None and web["spec"]["ingressClassName"] == "emulator"  # the default class
    assert web["status"] == {"loadBalancer": {"ingress": [{"ip": "127.0.0.2"}]}}
    other = store.get(INGRESSES.key, "default", "other")
    assert other is not None and other["status"] == {"loadBalancer": {}}
    assert warnings(store, "web") == [("BackendNotFound", 'service "default/web" not found', 1)]
    assert warnings(store, "other") == []
    # unrelated routing changes do not repeat the event
    registry.create(SERVICES, "default", {"metadata": {"name": "unrelated"}, "spec": {"ports": [{"port": 80}]}})
    await settle(store, controller)
    assert warnings(store, "web") == [("BackendNotFound", 'service "default/web" not found', 1)]
    # fixed: no new event; the class changed: the address goes
    registry.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    await settle(store, controller)
    current = store.get(INGRESSES.key, "default", "web")
    assert current is not None
    registry.replace_object(INGRESSES, current, {**current, "spec": {**current["spec"], "ingressClassName": "nginx"}})
    await settle(store, controller)
    current = store.get(INGRESSES.key, "default", "web")
    assert current is not None and current["status"] == {"loadBalancer": {}}
    assert warnings(store, "web") == [("BackendNotFound", 'service "default/web" not found', 1)]


async def test_a_problem_fixed_within_the_grace_period_is_not_reported(cluster: tuple[Store, Registry, IngressStatusController]) -> None:
    store, registry, controller = cluster
    registry.create(INGRESSES, "default", {"metadata": {"name": "web"}, "spec": {"defaultBackend": {
        "service": {"name": "web", "port": {"number": 80}}}}})
    await settle(store, controller)
    assert warnings(store, "web") == []
    registry.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})  # applied second
    registry.create(INGRESSES, "default", {"metadata": {"name": "broken"}, "spec": {"defaultBackend": {
        "service": {"name": "nothing", "port": {"number": 80}}}}})
    deadline = time.monotonic() + ingressstatus.PROBLEM_GRACE + 5
    while not warnings(store, "broken"):
        assert time.monotonic() < deadline, "no event"
        await asyncio.sleep(0.05)
    await settle(store, controller)
    assert warnings(store, "web") == []
    assert warnings(store, "broken") == [("BackendNotFound", 'service "default/nothing" not found', 1)]
