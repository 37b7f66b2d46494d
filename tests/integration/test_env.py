"""A pod's environment as the kubelet would set it, served by the real server and printed by `emulator env`.

Expected values are written out in full, in the kubelet's variable names and order per service, so a
difference from Kubernetes shows up as a readable diff rather than a failed computation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Emulator, free_port

ENV = "/emulator/v1/namespaces/{ns}/pods/{name}/env"


def make_pod(api: httpx.Client, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}
    response = api.post(f"/api/v1/namespaces/{namespace}/pods", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def make_service(api: httpx.Client, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "spec": {"selector": {"app": name}, **spec}}
    response = api.post(f"/api/v1/namespaces/{namespace}/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def cluster_ip(api: httpx.Client, name: str, namespace: str = "default") -> str:
    return api.get(f"/api/v1/namespaces/{namespace}/services/{name}").json()["spec"]["clusterIP"]


def pod_env(api: httpx.Client, name: str, namespace: str = "default", **query: str) -> dict[str, str]:
    response = api.get(ENV.format(ns=namespace, name=name), params=query)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["kind"] == "PodEnvironment" and doc["metadata"] == {"name": name, "namespace": namespace}
    return doc["env"]


def kubernetes_vars(ip: str) -> list[tuple[str, str]]:
    return [
        ("KUBERNETES_SERVICE_HOST", ip),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ("KUBERNETES_PORT", f"tcp://{ip}:443"),
        ("KUBERNETES_PORT_443_TCP", f"tcp://{ip}:443"),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_443_TCP_PORT", "443"),
        ("KUBERNETES_PORT_443_TCP_ADDR", ip),
    ]


def test_a_pod_gets_the_kubernetes_service(api: httpx.Client) -> None:
    make_pod(api, "lonely")
    ip = cluster_ip(api, "kubernetes")
    assert list(pod_env(api, "lonely").items()) == kubernetes_vars(ip)


def test_multi_port_named_port_and_udp_services_match_the_kubelet(api: httpx.Client) -> None:
    make_service(
        api, "multi", ports=[{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]
    )
    make_service(
        api,
        "kube-dns",
        ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
    )
    make_service(api, "plain", ports=[{"port": 8080}])
    make_service(api, "headless", clusterIP="None", ports=[{"port": 80}])
    make_service(api, "outside", type="ExternalName", externalName="example.com")
    make_pod(api, "client")
    k8s, dns, multi, plain = (cluster_ip(api, n) for n in ("kubernetes", "kube-dns", "multi", "plain"))

    expected = [
        *kubernetes_vars(k8s),
        # then the namespace's services by name; headless and ExternalName services have no variables
        ("KUBE_DNS_SERVICE_HOST", dns),
        ("KUBE_DNS_SERVICE_PORT", "53"),
        ("KUBE_DNS_SERVICE_PORT_DNS", "53"),
        ("KUBE_DNS_SERVICE_PORT_DNS_TCP", "53"),
        ("KUBE_DNS_PORT", f"udp://{dns}:53"),
        ("KUBE_DNS_PORT_53_UDP", f"udp://{dns}:53"),
        ("KUBE_DNS_PORT_53_UDP_PROTO", "udp"),
        ("KUBE_DNS_PORT_53_UDP_PORT", "53"),
        ("KUBE_DNS_PORT_53_UDP_ADDR", dns),
        ("KUBE_DNS_PORT_53_TCP", f"tcp://{dns}:53"),
        ("KUBE_DNS_PORT_53_TCP_PROTO", "tcp"),
        ("KUBE_DNS_PORT_53_TCP_PORT", "53"),
        ("KUBE_DNS_PORT_53_TCP_ADDR", dns),
        ("MULTI_SERVICE_HOST", multi),
        ("MULTI_SERVICE_PORT", "80"),
        ("MULTI_SERVICE_PORT_HTTP", "80"),
        ("MULTI_SERVICE_PORT_METRICS", "9090"),
        ("MULTI_PORT", f"tcp://{multi}:80"),
        ("MULTI_PORT_80_TCP", f"tcp://{multi}:80"),
        ("MULTI_PORT_80_TCP_PROTO", "tcp"),
        ("MULTI_PORT_80_TCP_PORT", "80"),
        ("MULTI_PORT_80_TCP_ADDR", multi),
        ("MULTI_PORT_9090_TCP", f"tcp://{multi}:9090"),
        ("MULTI_PORT_9090_TCP_PROTO", "tcp"),
        ("MULTI_PORT_9090_TCP_PORT", "9090"),
        ("MULTI_PORT_9090_TCP_ADDR", multi),
        ("PLAIN_SERVICE_HOST", plain),
        ("PLAIN_SERVICE_PORT", "8080"),
        ("PLAIN_PORT", f"tcp://{plain}:8080"),
        ("PLAIN_PORT_8080_TCP", f"tcp://{plain}:8080"),
        ("PLAIN_PORT_8080_TCP_PROTO", "tcp"),
        ("PLAIN_PORT_8080_TCP_PORT", "8080"),
        ("PLAIN_PORT_8080_TCP_ADDR", plain),
    ]
    assert list(pod_env(api, "client").items()) == expected


def test_services_created_after_the_pod_and_in_other_namespaces_are_left_out(api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "other"}}).raise_for_status()
    make_service(api, "elsewhere", "other", ports=[{"port": 80}])
    make_service(api, "before", ports=[{"port": 80}])
    make_pod(api, "early")
    # creation timestamps have one-second resolution: a service of the same second counts as "before"
    time.sleep(1.1)
    make_service(api, "after", ports=[{"port": 80}])
    make_pod(api, "late")

    early, late = pod_env(api, "early"), pod_env(api, "late")
    assert "BEFORE_SERVICE_HOST" in early and "AFTER_SERVICE_HOST" not in early
    assert "BEFORE_SERVICE_HOST" in late and late["AFTER_SERVICE_HOST"] == cluster_ip(api, "after")
    assert not any(name.startswith("ELSEWHERE_") for name in {**early, **late})


def test_enable_service_links_false_keeps_only_the_kubernetes_service(api: httpx.Client) -> None:
    make_service(api, "db", ports=[{"port": 5432}])
    make_pod(api, "unlinked", enableServiceLinks=False)
    assert list(pod_env(api, "unlinked").items()) == kubernetes_vars(cluster_ip(api, "kubernetes"))


def test_the_containers_own_env_wins_and_may_refer_to_service_variables(api: httpx.Client) -> None:
    make_service(api, "db", ports=[{"name": "pg", "port": 5432}])
    containers = [
        {
            "name": "app",
            "image": "busybox",
            "env": [
                {"name": "DB_SERVICE_HOST", "value": "db.example"},
                {"name": "DB_URL", "value": "postgres://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT_PG)/app"},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "MY_APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            ],
        },
        {"name": "sidecar", "image": "busybox", "env": [{"name": "ROLE", "value": "sidecar"}]},
    ]
    body = {"metadata": {"name": "withenv", "labels": {"app": "shop"}}, "spec": {"containers": containers}}
    pod = api.post("/api/v1/namespaces/default/pods", json=body).json()
    ip = cluster_ip(api, "db")

    env = pod_env(api, "withenv")
    # own variables first, in declaration order, then the service variables it did not define
    assert list(env)[:4] == ["DB_SERVICE_HOST", "DB_URL", "MY_IP", "MY_APP"]
    assert env["DB_SERVICE_HOST"] == "db.example"
    assert env["DB_URL"] == "postgres://db.example:5432/app"
    assert env["MY_IP"] == pod["status"]["podIP"] and env["MY_APP"] == "shop"
    assert env["DB_PORT_5432_TCP_ADDR"] == ip and list(env).count("DB_SERVICE_HOST") == 1

    sidecar = pod_env(api, "withenv", container="sidecar")
    assert sidecar["ROLE"] == "sidecar" and sidecar["DB_SERVICE_HOST"] == ip and "DB_URL" not in sidecar


def test_dotenv_and_shell_forms(api: httpx.Client) -> None:
    containers = [
        {
            "name": "app",
            "image": "busybox",
            "env": [{"name": "GREETING", "value": "hello world"}, {"name": "QUOTE", "value": "it's"}],
        }
    ]
    api.post(
        "/api/v1/namespaces/default/pods",
        json={"metadata": {"name": "forms"}, "spec": {"enableServiceLinks": False, "containers": containers}},
    ).raise_for_status()
    ip = cluster_ip(api, "kubernetes")
    k8s_lines = [f"{name}={value}\n" for name, value in kubernetes_vars(ip)]

    dotenv = api.get(ENV.format(ns="default", name="forms"), params={"format": "dotenv"})
    assert dotenv.status_code == 200 and dotenv.headers["Content-Type"].startswith("text/plain")
    assert dotenv.text == "GREETING='hello world'\n" + 'QUOTE="it\'s"\n' + "".join(k8s_lines)

    shell = api.get(ENV.format(ns="default", name="forms"), params={"format": "shell"})
    assert shell.text == "export GREETING='hello world'\n" + "export QUOTE='it'\"'\"'s'\n" + "".join(
        "export " + line for line in k8s_lines
    )
    # and a shell reads back exactly the values
    printed = subprocess.run(
        ["sh", "-c", shell.text + 'printf "%s|%s|%s" "$GREETING" "$QUOTE" "$KUBERNETES_PORT"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout == f"hello world|it's|tcp://{ip}:443"


def test_errors_are_kubernetes_status_objects(api: httpx.Client) -> None:
    make_pod(api, "here")
    cases = [
        (ENV.format(ns="default", name="nowhere"), {}, 404, "NotFound", 'pods "nowhere" not found'),
        (
            ENV.format(ns="default", name="here"),
            {"container": "nope"},
            404,
            "NotFound",
            'container "nope" not found in pod "here"',
        ),
        (
            ENV.format(ns="default", name="here"),
            {"format": "yaml"},
            400,
            "BadRequest",
            'unsupported format "yaml": use one of json, dotenv, shell',
        ),
    ]
    for path, query, code, reason, message in cases:
        response = api.get(path, params=query)
        assert response.status_code == code
        assert response.json() == {
            **response.json(),
            "kind": "Status",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        }


def emulator_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def test_emulator_env_prints_a_pods_variables(emulator: Emulator, api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "shop"}}).raise_for_status()
    make_service(api, "cart", "shop", ports=[{"port": 80}])
    for _ in range(50):  # the namespace controller creates the default service account right after
        if api.get("/api/v1/namespaces/shop/serviceaccounts/default").status_code == 200:
            break
        time.sleep(0.05)
    make_pod(api, "front", "shop")
    k8s, cart = cluster_ip(api, "kubernetes"), cluster_ip(api, "cart", "shop")

    dotenv = emulator_cli("env", "front", "-n", "shop", "--server", emulator.api_url)
    assert dotenv.returncode == 0, dotenv.stderr
    assert dotenv.stdout.splitlines()[:9] == [f"{n}={v}" for n, v in kubernetes_vars(k8s)] + [
        f"CART_SERVICE_HOST={cart}"
    ]

    shell = emulator_cli("env", "front", "--namespace", "shop", "--format", "shell", "--server", emulator.api_url)
    assert f"export CART_PORT=tcp://{cart}:80\n" in shell.stdout

    as_json = emulator_cli("env", "front", "-n", "shop", "-o", "json", "-c", "app", "--server", emulator.api_url)
    assert '"CART_PORT_80_TCP_ADDR": "' + cart + '"' in as_json.stdout

    missing = emulator_cli("env", "ghost", "--server", emulator.api_url)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == 'error: pods "ghost" not found\n'


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_emulator_env_says_what_to_do_when_the_emulator_is_not_running(how: str) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    args = ["env", "web"] + (["--server", server] if how == "flag" else [])
    env = {"EMULATOR_SERVER": server} if how == "environment" else {}
    result = subprocess.run(
        [sys.executable, "-m", "emulator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: cannot reach the emulator API at {server}: is `make run` running? Set --server or EMULATOR_SERVER\n"
    )
