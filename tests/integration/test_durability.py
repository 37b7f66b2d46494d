"""Durability: what the API acknowledged survives `kill -9`, with its addresses and resourceVersions."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import start_emulator

PODS = "/api/v1/namespaces/default/pods"
SERVICES = "/api/v1/namespaces/default/services"


def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, in_memory=False)
    acknowledged: dict[str, dict[str, Any]] = {}
    stop = threading.Event()

    def writer(prefix: str) -> None:
        with emu.client() as api:
            i = 0
            while not stop.is_set():
                kind, body = (SERVICES, {"metadata": {"name": f"{prefix}s{i}"}, "spec": {"ports": [{"port": 80}], "type": "NodePort"}}) if i % 5 == 0 else \
                    (PODS, {"metadata": {"name": f"{prefix}p{i}"}, "spec": {"containers": [{"name": "c"}]}})
                try:
                    response = api.post(kind, json=body)
                except httpx.HTTPError:
                    return  # the server died under us: this write was never acknowledged
                if response.status_code == 201:
                    acknowledged[body["metadata"]["name"]] = response.json()
                i += 1

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b", "c")]
    for t in threads:
        t.start()
    time.sleep(1.5)
    emu.proc.send_signal(signal.SIGKILL)  # no chance to flush or close anything
    emu.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) > 50
    last_rv = max(int(o["metadata"]["resourceVersion"]) for o in acknowledged.values())

    again = start_emulator(data, in_memory=False)
    try:
        with again.client() as api:
            pods = {p["metadata"]["name"]: p for p in api.get(PODS).json()["items"]}
            services = {s["metadata"]["name"]: s for s in api.get(SERVICES).json()["items"]}
            for name, obj in acknowledged.items():
                stored = (services if obj["kind"] == "Service" else pods).get(name)
                assert stored is not None, f"acknowledged {name} was lost"
                assert stored["metadata"]["uid"] == obj["metadata"]["uid"]
                assert stored["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
                if obj["kind"] == "Pod":
                    assert stored["status"]["podIP"] == obj["status"]["podIP"]
                else:
                    assert stored["spec"]["clusterIP"] == obj["spec"]["clusterIP"]
                    assert stored["spec"]["ports"][0]["nodePort"] == obj["spec"]["ports"][0]["nodePort"]
            # resourceVersions keep increasing after the restart
            fresh = api.post(PODS, json={"metadata": {"name": "after"}, "spec": {"containers": [{"name": "c"}]}}).json()
            assert int(fresh["metadata"]["resourceVersion"]) > last_rv
            # and the allocators know every address the stored objects hold
            ips = [p["status"]["podIP"] for p in pods.values()] + [fresh["status"]["podIP"]]
            assert len(ips) == len(set(ips))
            new_service = api.post(SERVICES, json={"metadata": {"name": "after"}, "spec": {"ports": [{"port": 80}], "type": "NodePort"}}).json()
            cluster_ips = [s["spec"]["clusterIP"] for s in services.values()]
            node_ports = [s["spec"]["ports"][0]["nodePort"] for s in services.values() if s["spec"].get("type") == "NodePort"]
            assert new_service["spec"]["clusterIP"] not in cluster_ips
            assert new_service["spec"]["ports"][0]["nodePort"] not in node_ports
    finally:
        again.stop()


def test_clean_restart_keeps_everything_and_watch_resumes_only_forward(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, in_memory=False)
    with emu.client() as api:
        made = api.post(PODS, json={"metadata": {"name": "kept", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}).json()
        api.post(SERVICES, json={"metadata": {"name": "sel"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}})
        rv_before = int(api.get(PODS).json()["metadata"]["resourceVersion"])
    assert emu.stop() == 0  # SIGTERM: a clean stop
    again = start_emulator(data, in_memory=False)
    try:
        with again.client() as api:
            kept = api.get(f"{PODS}/kept").json()
            assert kept["metadata"]["uid"] == made["metadata"]["uid"]
            assert kept["status"]["podIP"] == made["status"]["podIP"]
            # (the API port changed, so the kubernetes Endpoints were rewritten: versions only move forward)
            assert int(api.get(PODS).json()["metadata"]["resourceVersion"]) >= rv_before
            # the endpoints controller took the stored service over: its pods, and new ones
            def endpoint_ips() -> list[str]:
                endpoints = api.get("/api/v1/namespaces/default/endpoints/sel").json()
                return sorted(a["ip"] for subset in endpoints.get("subsets", []) for a in subset.get("addresses", []))

            assert endpoint_ips() == [made["status"]["podIP"]]
            newer = api.post(PODS, json={"metadata": {"name": "newer", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}).json()
            assert endpoint_ips() == sorted([made["status"]["podIP"], newer["status"]["podIP"]])
            # the built-ins were not created twice
            names = [n["metadata"]["name"] for n in api.get("/api/v1/namespaces").json()["items"]]
            assert names.count("default") == 1
            # history from before the restart is gone: an older resourceVersion is 410 Expired
            with httpx.stream("GET", again.api_url + PODS, params={"watch": "1", "resourceVersion": "1"}, timeout=5) as response:
                first = next(line for line in response.iter_lines() if line)
            assert '"code":410' in first
    finally:
        again.stop()


def test_restart_drops_endpoint_slices_an_older_version_named_differently(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, in_memory=False)
    with emu.client() as api:
        api.post(SERVICES, json={"metadata": {"name": "api"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}})
        pod = api.post(PODS, json={"metadata": {"name": "p1", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}).json()
        # a slice as an earlier version named it: the service's own name, managed by the controller
        old = {"metadata": {"name": "api", "labels": {"kubernetes.io/service-name": "api",
               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
               "addressType": "IPv4", "endpoints": [{"addresses": [pod["status"]["podIP"]]}]}
        assert api.post("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", json=old).status_code == 201
    emu.stop()
    again = start_emulator(data, in_memory=False)
    try:
        with again.client() as api:
            # the endpoints controller adopts its labelled slices, whatever their names: one slice holds the pod
            items = api.get(
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                params={"labelSelector": "kubernetes.io/service-name=api"}).json()["items"]
            assert [[a for e in s["endpoints"] for a in e["addresses"]] for s in items] == [[pod["status"]["podIP"]]]
    finally:
        again.stop()
