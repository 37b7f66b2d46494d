"""What the review of issue 14 found in routing's robustness and cost, pinned: the Gateway API compile
stays near-linear in the number of routes, the Gateway API status controller compiles once per batch of
changes (not once per object per change), a Secret the cryptography library refuses in an unexpected way,
or a bug on one Ingress or Gateway, takes nothing else down, and a compiler that fails keeps its previous
output in the index."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import exceptions as crypto_exceptions
from cryptography import x509

from emulator.controllers import gatewayapi as gatewayapi_controller
from emulator.controllers.builtins import ensure_gateway_class
from emulator.controllers.gatewayapi import GatewayApiStatusController
from emulator.controllers.ingressstatus import BATCH_DELAY
from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import GATEWAYS, HTTP_ROUTES, SERVICES
from emulator.kinds.ingress import INGRESSES
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.routing import gatewayapi, ingress
from emulator.routing.gatewayapi import compile_gateway_api
from emulator.routing.index import RoutingIndex
from emulator.routing.ingress import compile_ingresses
from emulator.routing.match import find
from emulator.routing.model import SHARED_HTTP, SHARED_HTTPS, Compiled, ObjectRef, RoutingConfig
from emulator.routing.sources import RoutingObjects, RoutingSettings
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store
from tests.unit.test_gatewayapi_compile import BACKENDS, compile_all, gateway, gw_status, listener, tls_secret
from tests.unit.test_routing_index import event, service
from tests.unit.test_routing_index import ingress as ingress_obj


def many_routes(n: int) -> RoutingObjects:
    objs = RoutingObjects()
    objs.gateway_classes[("", "emulator")] = {"metadata": {"name": "emulator"}, "spec": {"controllerName": "emulator.local/gateway"}}
    objs.gateways[("d", "gw")] = {"metadata": {"name": "gw", "namespace": "d", "creationTimestamp": "2020"}, "spec": {
        "gatewayClassName": "emulator", "listeners": [{"name": "h", "port": 80, "protocol": "HTTP"}]}}
    objs.services[("d", "web")] = {"metadata": {"name": "web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}
    for i in range(n):
        objs.http_routes[("d", f"r{i}")] = {
            "metadata": {"name": f"r{i}", "namespace": "d", "creationTimestamp": f"2021-{i:06d}"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [f"h{i}.example.com"], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": f"/p{j}"}}], "backendRefs": [{"name": "web", "port": 80}]} for j in range(4)]},
        }
    return objs


# -- 3: cost -------------------------------------------------------------------------------------------


def test_a_thousand_routes_compile_in_well_under_a_second() -> None:
    objs = many_routes(1000)
    compile_gateway_api(objs, RoutingSettings())  # warm (imports, caches)
    started = time.perf_counter()
    result = compile_gateway_api(objs, RoutingSettings())
    elapsed = time.perf_counter() - started
    assert len(result.config.listeners[SHARED_HTTP].exact) == 1000
    assert elapsed < 0.4, f"{elapsed:.3f}s (quadratic: 1.3-1.7 s before)"


@pytest.fixture
async def gateway_cluster() -> AsyncIterator[tuple[Store, Registry, GatewayApiStatusController]]:
    store = Store(MemoryBackend())
    registry = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/20", "10.250.0.0/24", "30000-30099")))
    namespaces = NamespaceController(registry, 0.01)
    store.subscribe(namespaces.apply)
    namespaces.bootstrap("127.0.0.1", 6443)
    ensure_gateway_class(registry)
    controller = GatewayApiStatusController(registry, RoutingSettings(gateway_host="127.0.0.2"))
    store.subscribe(controller.apply)
    store.replay(controller.apply, controller.watched)
    controller.queue.start()
    yield store, registry, controller
    await controller.queue.stop()


async def test_the_status_controller_compiles_once_per_batch(gateway_cluster: tuple[Store, Registry, GatewayApiStatusController],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store, registry, controller = gateway_cluster
    compiles = [0]
    real = controller.index._compile

    def counted() -> Compiled:
        compiles[0] += 1
        return real()

    monkeypatch.setattr(controller.index, "_compile", counted)
    registry.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    registry.create(GATEWAYS, "default", {"metadata": {"name": "gw"}, "spec": {"gatewayClassName": "emulator", "listeners": [
        {"name": "http", "port": 80, "protocol": "HTTP"}]}})
    n = 150
    for i in range(n):
        registry.create(HTTP_ROUTES, "default", {"metadata": {"name": f"r{i}"}, "spec": {"parentRefs": [{"name": "gw"}],
                        "hostnames": [f"h{i}.test"], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}})
        await asyncio.sleep(0)  # the controller runs between the writes, as it does beside a kubectl apply
    def attached() -> int:
        gw = store.get(GATEWAYS.key, "default", "gw") or {}
        return int(((gw.get("status") or {}).get("listeners") or [{}])[0].get("attachedRoutes") or 0)

    for _ in range(400):
        await asyncio.sleep(BATCH_DELAY)
        done = all((r.get("status") or {}).get("parents") for r in store.objects(HTTP_ROUTES.key, "default"))
        if done and attached() == n and controller.queue.idle:
            break
    routes = store.objects(HTTP_ROUTES.key, "default")
    assert all(r["status"]["parents"][0]["conditions"][0]["status"] == "True" for r in routes)
    gw = store.get(GATEWAYS.key, "default", "gw")
    assert gw is not None and gw["status"]["listeners"][0]["attachedRoutes"] == n
    assert compiles[0] < 40, compiles[0]  # once per batch, not once per route (150+)
    assert gatewayapi_controller.EVERY not in controller._settled


# -- 4: one bad object ---------------------------------------------------------------------------------


def test_a_secret_cryptography_refuses_oddly_costs_only_its_own_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    ingress._checked_pair.cache_clear()
    monkeypatch.setattr(x509, "load_pem_x509_certificate", lambda data: (_ for _ in ()).throw(
        crypto_exceptions.UnsupportedAlgorithm("unsupported signature algorithm")))
    objs = RoutingObjects()
    good = ingress_obj("good", "good.test", "web")
    bad = ingress_obj("bad", "bad.test", "web")
    bad["metadata"]["namespace"] = "other"
    bad["spec"]["tls"] = [{"hosts": ["bad.test"], "secretName": "odd"}]
    secret = tls_secret("odd", "other")
    objs.ingresses[("default", "good")], objs.ingresses[("other", "bad")] = good, bad
    objs.tls_secrets[("other", "odd")] = secret
    objs.services[("default", "web")] = service("web")
    try:
        result = compile_ingresses(objs, RoutingSettings())
    finally:
        ingress._checked_pair.cache_clear()
    assert find(result.config.listeners[SHARED_HTTP], "good.test", "/") is not None
    assert {(r.namespace, r.name) for r in result.statuses} == {("default", "good"), ("other", "bad")}
    assert "InvalidSecret" in [p.reason for p in result.problems if p.ref.name == "bad"]
    assert result.config.listeners[SHARED_HTTPS].certificates == ()


def test_a_bug_on_one_ingress_costs_only_that_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ingress._tls

    def failing(build: Any, ref: ObjectRef, *args: Any) -> None:
        if ref.name == "bad":
            raise RuntimeError("boom")
        real(build, ref, *args)

    monkeypatch.setattr(ingress, "_tls", failing)
    objs = RoutingObjects()
    objs.ingresses[("default", "good")] = ingress_obj("good", "good.test", "web")
    objs.ingresses[("default", "bad")] = ingress_obj("bad", "bad.test", "web")
    objs.services[("default", "web")] = service("web")
    result = compile_ingresses(objs, RoutingSettings())
    assert find(result.config.listeners[SHARED_HTTP], "good.test", "/") is not None
    assert len(result.statuses) == 2  # the status controller keeps both addresses
    assert [p.reason for p in result.problems] == ["CompileFailed"]


def test_a_bug_on_one_gateway_costs_only_that_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    real = gatewayapi._listeners

    def failing(build: Any, gw: dict[str, Any]) -> Any:
        if gw["metadata"]["name"] == "bad":
            raise RuntimeError("boom")
        return real(build, gw)

    monkeypatch.setattr(gatewayapi, "_listeners", failing)
    result = compile_all(gateway("good", listener("http")), gateway("bad", listener("http")), *BACKENDS)
    assert gw_status(result, "good")["conditions"][0]["status"] == "True"
    assert [(c["type"], c["status"]) for c in gw_status(result, "bad")["conditions"]] == [("Accepted", "False"), ("Programmed", "False")]


def test_a_failing_compiler_keeps_its_previous_output() -> None:
    calls = [0]

    def flaky(objs: RoutingObjects, s: RoutingSettings) -> Compiled:
        calls[0] += 1
        if calls[0] > 1:
            raise RuntimeError("boom")
        return compile_ingresses(objs, s)

    idx = RoutingIndex(RoutingSettings(), compilers=(flaky,))
    idx.apply(event("ADDED", SERVICES.key, service("web")))
    idx.apply(event("ADDED", INGRESSES.key, ingress_obj("web", "web.test", "web")))
    assert find(idx.compiled().config.listeners[SHARED_HTTP], "web.test", "/") is not None
    idx.apply(event("ADDED", INGRESSES.key, ingress_obj("other", "other.test", "web")))
    kept = idx.compiled()
    assert kept.config != RoutingConfig() and find(kept.config.listeners[SHARED_HTTP], "web.test", "/") is not None
    assert len(kept.statuses) == 1
