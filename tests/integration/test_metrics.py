"""`/metrics` of a real emulator, read with prometheus_client's own parser: the counters move as kubectl
and HTTP clients use the API, long-running requests and watchers show while they last, and the endpoint
is guarded as the API server's (a token whose user may get /metrics when tokens are required)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Emulator, require_tool, start_emulator
from tests.integration.kubectl_support import Kubectl
from tests.integration.test_kubelet import start_kubelet
from tests.integration.test_rbac import admin_token, client, token_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: httpx.Client) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text) for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample whose labels include `labels` (summed over the others); 0 when there is none yet."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def test_kubectl_lists_move_the_api_server_counters(emu: Emulator, kubectl: Kubectl, ns: str) -> None:
    lists = {"name": "apiserver_request_total", "verb": "LIST", "resource": "pods", "scope": "namespace", "code": "200"}
    with emu.client() as api:
        before = value(scrape(api), **lists)
        kubectl.run("-n", ns, "get", "pods")
        kubectl.run("-n", ns, "get", "pods")
        after = scrape(api)
    assert value(after, **lists) == before + 2
    assert value(after, "apiserver_request_duration_seconds_count", verb="LIST", resource="pods") >= 2
    # kubectl's discovery: non-resource requests are labelled by their path, as by the API server
    assert value(after, "apiserver_request_total", verb="GET", subresource="/api", code="200") >= 1


def test_a_create_moves_the_store_metrics(emu: Emulator, ns: str) -> None:
    with emu.client() as api:
        before = scrape(api)
        created = api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "one"}, "data": {"a": "b"}})
        assert created.status_code == 201
        refused = api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "one"}})
        assert refused.status_code == 409
        after = scrape(api)
    commits = "emulator_store_commit_duration_seconds_count"
    assert value(after, commits) > value(before, commits)
    assert value(after, "emulator_store_writes_total") > value(before, "emulator_store_writes_total")
    assert value(after, "emulator_store_objects", resource="configmaps") == value(before, "emulator_store_objects", resource="configmaps") + 1
    posts = {"verb": "POST", "resource": "configmaps", "scope": "resource"}
    assert value(after, "apiserver_request_total", code="201", **posts) == value(before, "apiserver_request_total", code="201", **posts) + 1
    assert value(after, "apiserver_request_total", code="409", **posts) == value(before, "apiserver_request_total", code="409", **posts) + 1


def test_a_watch_shows_while_it_lasts_and_counts_its_events(emu: Emulator, ns: str) -> None:
    watching = {"verb": "WATCH", "resource": "configmaps", "scope": "namespace"}
    with emu.client() as api:
        before = scrape(api)
        with api.stream("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1") as stream:
            lines = stream.iter_lines()
            during = scrape(api)
            assert value(during, "apiserver_longrunning_requests", **watching) == value(before, "apiserver_longrunning_requests", **watching) + 1
            assert value(during, "apiserver_registered_watchers", resource="configmaps") >= 1
            assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "w"}}).status_code == 201
            assert '"type":"ADDED"' in next(line for line in lines if line)
        sent = "emulator_watch_events_delivered_total"
        assert value(scrape(api), sent, resource="configmaps") >= value(before, sent, resource="configmaps") + 1

        def ended() -> bool:  # the server sees the client go; the watch is then counted, as answered (200)
            now = scrape(api)
            return (
                value(now, "apiserver_longrunning_requests", **watching) == value(before, "apiserver_longrunning_requests", **watching)
                and value(now, "apiserver_request_total", code="200", **watching) == value(before, "apiserver_request_total", code="200", **watching) + 1
            )

        eventually(ended)


def test_unknown_paths_keep_the_labels_few(emu: Emulator) -> None:
    with emu.client() as api:
        for path in ("/no/such/thing", "/another/one", "/api/v1/namespaces/default/nosuchkinds"):
            assert api.get(path).status_code == 404
        samples = scrape(api)
    assert value(samples, "apiserver_request_total", subresource="other", code="404") >= 3
    assert not any("no/such" in str(labels) for _, labels in samples)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("metrics") / "data", "--require-auth")
    yield emu
    emu.stop()


def test_with_tokens_required_metrics_need_a_monitoring_user(secured: Emulator, tmp_path: Path) -> None:
    kubectl = Kubectl(require_tool("kubectl"), Path(secured.faces["kubeconfig"]), tmp_path / "cache")
    with client(secured, "not-a-token") as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with client(secured, admin_token(secured)) as admin:
        assert value(scrape(admin), "emulator_store_objects", resource="namespaces") >= 4
    kubectl.run("create", "namespace", "watchers")
    kubectl.run("-n", "watchers", "create", "serviceaccount", "prometheus")
    token = token_for(kubectl, "watchers", "prometheus")
    with client(secured, token) as prometheus:
        denied = prometheus.get("/metrics")
        assert denied.status_code == 403
        assert 'cannot get path "/metrics"' in denied.json()["message"]
        kubectl.run(
            "create", "clusterrolebinding", "prometheus-monitoring", "--clusterrole=system:monitoring",
            "--serviceaccount=watchers:prometheus",
        )
        assert value(scrape(prometheus), "apiserver_request_total", code="403", subresource="/metrics") >= 1


@pytest.fixture(scope="module")
def with_kubelet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_kubelet(tmp_path_factory.mktemp("metrics-kubelet"), "--allow-anonymous")
    yield emu
    emu.stop(timeout=30)


def test_the_kubelets_pods_containers_and_restarts(with_kubelet: Emulator) -> None:
    pod = {"metadata": {"name": "restarts"}, "spec": {"containers": [
        {"name": "steady", "image": "busybox", "command": ["sh", "-c", "sleep 60"]},
        {"name": "crashing", "image": "busybox", "command": ["sh", "-c", "exit 1"]},  # restarted (Always)
    ]}}
    with with_kubelet.client() as api:
        before = scrape(api)
        assert value(before, "kubelet_running_pods") == 0
        assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201

        def running_and_restarting() -> bool:
            now = scrape(api)
            return (
                value(now, "kubelet_running_pods") == 1
                and value(now, "kubelet_running_containers", container_state="running") >= 1
                and value(now, "emulator_container_restarts_total") >= 1
            )

        eventually(running_and_restarting, timeout=20)
        assert api.delete("/api/v1/namespaces/default/pods/restarts?gracePeriodSeconds=0").status_code == 200
        eventually(lambda: value(scrape(api), "kubelet_running_pods") == 0, timeout=20)
        assert value(scrape(api), "emulator_container_restarts_total") >= 1  # a counter: the pod's restarts stay counted
