"""Service environment variables exactly as the kubelet writes them (envvars.go, kubelet_pods.go)."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator.envvars import (
    container_env,
    env_name,
    expand,
    pod_service_env,
    service_env,
    to_dotenv,
    to_shell_exports,
)
from emulator.kinds.service import ServiceView


def svc(
    name: str,
    ip: str | None,
    ports: list[dict[str, Any]],
    namespace: str = "default",
    created: str | None = None,
    type_: str | None = None,
) -> ServiceView:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created:
        meta["creationTimestamp"] = created
    spec: dict[str, Any] = {"ports": ports}
    if ip is not None:
        spec["clusterIP"] = ip
    if type_:
        spec["type"] = type_
    return ServiceView.of({"metadata": meta, "spec": spec})


KUBERNETES = svc("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])


def test_foo_bar_single_port() -> None:
    env = service_env([svc("foo-bar", "1.2.3.4", [{"port": 8080, "protocol": "TCP"}])])
    assert env == {
        "FOO_BAR_SERVICE_HOST": "1.2.3.4",
        "FOO_BAR_SERVICE_PORT": "8080",
        "FOO_BAR_PORT": "tcp://1.2.3.4:8080",
        "FOO_BAR_PORT_8080_TCP": "tcp://1.2.3.4:8080",
        "FOO_BAR_PORT_8080_TCP_PROTO": "tcp",
        "FOO_BAR_PORT_8080_TCP_PORT": "8080",
        "FOO_BAR_PORT_8080_TCP_ADDR": "1.2.3.4",
    }
    assert list(env)[:3] == ["FOO_BAR_SERVICE_HOST", "FOO_BAR_SERVICE_PORT", "FOO_BAR_PORT"]


def test_multi_port_named_ports_and_udp() -> None:
    # The kubelet's own test case: a service with an unnamed-looking first port, a named TCP and a named UDP port.
    env = service_env(
        [
            svc(
                "test",
                "1.2.3.3",
                [
                    {"name": "", "port": 8083, "protocol": "TCP"},
                    {"name": "u-d-p", "port": 8084, "protocol": "UDP"},
                    {"name": "t-c-p", "port": 8084, "protocol": "TCP"},
                ],
            )
        ]
    )
    assert env == {
        "TEST_SERVICE_HOST": "1.2.3.3",
        "TEST_SERVICE_PORT": "8083",
        "TEST_SERVICE_PORT_U_D_P": "8084",
        "TEST_SERVICE_PORT_T_C_P": "8084",
        "TEST_PORT": "tcp://1.2.3.3:8083",
        "TEST_PORT_8083_TCP": "tcp://1.2.3.3:8083",
        "TEST_PORT_8083_TCP_PROTO": "tcp",
        "TEST_PORT_8083_TCP_PORT": "8083",
        "TEST_PORT_8083_TCP_ADDR": "1.2.3.3",
        "TEST_PORT_8084_UDP": "udp://1.2.3.3:8084",
        "TEST_PORT_8084_UDP_PROTO": "udp",
        "TEST_PORT_8084_UDP_PORT": "8084",
        "TEST_PORT_8084_UDP_ADDR": "1.2.3.3",
        "TEST_PORT_8084_TCP": "tcp://1.2.3.3:8084",
        "TEST_PORT_8084_TCP_PROTO": "tcp",
        "TEST_PORT_8084_TCP_PORT": "8084",
        "TEST_PORT_8084_TCP_ADDR": "1.2.3.3",
    }


def test_first_port_udp_and_default_protocol() -> None:
    env = service_env(
        [svc("dns", "10.96.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}])]
    )
    assert env["DNS_PORT"] == "udp://10.96.0.10:53"
    assert env["DNS_SERVICE_PORT_DNS"] == "53"
    assert env["DNS_SERVICE_PORT_DNS_TCP"] == "53"
    assert env["DNS_PORT_53_TCP"] == "tcp://10.96.0.10:53"


def test_the_kubernetes_service() -> None:
    assert service_env([KUBERNETES]) == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }


def test_ipv6_cluster_ip_is_bracketed_in_urls_only() -> None:
    env = service_env([svc("v6", "fd00::1", [{"port": 80}])])
    assert env["V6_PORT"] == "tcp://[fd00::1]:80"
    assert env["V6_PORT_80_TCP_ADDR"] == "fd00::1"
    assert env["V6_SERVICE_HOST"] == "fd00::1"


@pytest.mark.parametrize(
    "service",
    [
        svc("headless", "None", [{"port": 80}]),
        svc("pending", None, [{"port": 80}]),
        svc("empty", "", [{"port": 80}]),
        svc("ext", None, [], type_="ExternalName"),
        svc("noports", "1.2.3.4", []),
    ],
    ids=["headless", "no-ip-yet", "empty-ip", "external-name", "no-ports"],
)
def test_skipped_services(service: dict[str, Any]) -> None:
    assert service_env([service]) == {}


def test_env_name() -> None:
    assert env_name("foo-bar") == "FOO_BAR"
    assert env_name("u-d-p") == "U_D_P"


def pod(
    namespace: str = "app", links: bool | None = None, created: str | None = None, env: list[Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "env": env or []}], "initContainers": [{"name": "init"}]}
    if links is not None:
        spec["enableServiceLinks"] = links
    meta: dict[str, Any] = {"name": "p", "namespace": namespace}
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta, "spec": spec}


def test_pod_gets_kubernetes_first_then_its_namespace() -> None:
    web = svc("web", "10.96.0.20", [{"port": 80}], namespace="app")
    elsewhere = svc("db", "10.96.0.30", [{"port": 5432}], namespace="other")
    env = pod_service_env(pod(), [web, elsewhere], KUBERNETES)
    assert list(env)[0] == "KUBERNETES_SERVICE_HOST"
    assert env["WEB_SERVICE_HOST"] == "10.96.0.20"
    assert "DB_SERVICE_HOST" not in env


def test_enable_service_links_false_keeps_only_kubernetes() -> None:
    web = svc("web", "10.96.0.20", [{"port": 80}], namespace="app")
    env = pod_service_env(pod(links=False), [web], KUBERNETES)
    assert env == service_env([KUBERNETES])


def test_no_kubernetes_service() -> None:
    assert pod_service_env(pod(links=False), [], None) == {}


def test_services_created_after_the_pod_are_left_out() -> None:
    before = svc("before", "10.96.0.2", [{"port": 1}], namespace="app", created="2024-05-01T10:00:00Z")
    same = svc("same", "10.96.0.3", [{"port": 1}], namespace="app", created="2024-05-01T10:00:05Z")
    after = svc("after", "10.96.0.4", [{"port": 1}], namespace="app", created="2024-05-01T10:00:06Z")
    undated = svc("undated", "10.96.0.5", [{"port": 1}], namespace="app")
    env = pod_service_env(pod(created="2024-05-01T10:00:05Z"), [before, same, after, undated], KUBERNETES)
    assert {k.split("_")[0] for k in env} == {"KUBERNETES", "BEFORE", "SAME", "UNDATED"}
    # An undated pod sees everything.
    assert "AFTER_SERVICE_HOST" in pod_service_env(pod(), [after], None)


def test_namespace_kubernetes_service_replaces_the_master_one() -> None:
    own = svc("kubernetes", "10.96.0.99", [{"port": 8443}], namespace="app")
    env = pod_service_env(pod(), [own], KUBERNETES)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.99"
    assert pod_service_env(pod(links=False), [own], KUBERNETES)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_default_namespace_lists_kubernetes_once() -> None:
    env = pod_service_env(pod(namespace="default"), [KUBERNETES], KUBERNETES)
    assert env == service_env([KUBERNETES])


def test_container_env_wins_and_comes_first() -> None:
    web = svc("web", "10.96.0.20", [{"port": 80}], namespace="app")
    env = container_env(
        pod(env=[{"name": "WEB_SERVICE_HOST", "value": "override"}, {"name": "MODE", "value": "x"}]),
        "main",
        [web],
        None,
    )
    assert list(env)[:2] == ["WEB_SERVICE_HOST", "MODE"]
    assert env["WEB_SERVICE_HOST"] == "override"
    assert env["WEB_PORT"] == "tcp://10.96.0.20:80"


def test_container_env_expands_references() -> None:
    web = svc("web", "10.96.0.20", [{"port": 80}], namespace="app")
    env = container_env(
        pod(
            env=[
                {"name": "A", "value": "a"},
                {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/$(A)/$(NOPE)/$$(A)"},
                {"name": "EMPTY", "value": ""},
                {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ]
        ),
        "main",
        [web],
        None,
    )
    assert env["URL"] == "http://10.96.0.20:80/a/$(NOPE)/$(A)"
    assert env["EMPTY"] == ""
    assert "FROM" not in env


def test_container_env_value_from_callback() -> None:
    env = container_env(
        pod(env=[{"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
        "main",
        [],
        None,
        value_from=lambda source: "p" if source.get("fieldRef") else None,
    )
    assert env == {"FROM": "p"}


def test_container_env_unknown_container_and_init_containers() -> None:
    assert container_env(pod(), "init", [], KUBERNETES) == service_env([KUBERNETES])
    with pytest.raises(KeyError):
        container_env(pod(), "nope", [], None)


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("plain", "plain"),
        ("$(A)", "1"),
        ("$(B)", "2"),
        ("$(A)$(B)", "12"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$(missing)", "$(missing)"),
        ("$(A", "$(A"),
        ("$x", "$x"),
        ("end$", "end$"),
        ("$()", "$()"),
    ],
)
def test_expand(value: str, expanded: str) -> None:
    assert expand(value, {"A": "1"}, {"A": "ignored", "B": "2"}) == expanded


def test_expand_loads_without_the_engine() -> None:
    """`emulator run` expands its command with `expand` and must start quickly: importing it does not
    load the kinds or pydantic."""
    code = "import sys, emulator.envvars; print(sorted(m for m in sys.modules if m.startswith(('emulator.kinds', 'pydantic'))))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_to_dotenv() -> None:
    text = to_dotenv({"A": "tcp://1.2.3.4:80", "B": "two words", "C": "it's", "D": "line\nbreak", "E": ""})
    assert text == 'A=tcp://1.2.3.4:80\nB=\'two words\'\nC="it\'s"\nD="line\\nbreak"\nE=\n'


def test_to_dotenv_reads_back_with_python_dotenv_if_installed() -> None:
    dotenv = pytest.importorskip("dotenv")
    import io

    env = {"A": "tcp://1.2.3.4:80", "B": "two words $HOME", "C": 'it\'s "quoted"', "D": "line\nbreak"}
    assert dict(dotenv.dotenv_values(stream=io.StringIO(to_dotenv(env)), interpolate=False)) == env


def test_to_shell_exports_round_trips_through_sh() -> None:
    env = {"A": "tcp://1.2.3.4:80", "B": 'it\'s $HOME `x` "q"', "C": "line\nbreak", "D": ""}
    script = to_shell_exports(env) + "".join(f'printf "%s\\0" "${name}"\n' for name in env)
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout.decode()
    assert out.split("\0")[:-1] == list(env.values())


def test_to_shell_exports_skips_names_the_shell_cannot_hold() -> None:
    text = to_shell_exports({"my.var": "x", "OK": "y"})
    assert text == "# not a shell variable name, skipped: 'my.var'\nexport OK=y\n"
    assert shlex.split(text.splitlines()[1])[1] == "OK=y"


def test_dotenv_never_lets_a_name_inject_a_line_and_round_trips_backslashes() -> None:
    from dotenv import dotenv_values

    text = to_dotenv({"A": "a\\b", "B C": "1", "A\nEVIL": "1", "OK": "x y"})
    assert "EVIL=" not in text.replace("# not", "")
    assert dict(dotenv_values(stream=io.StringIO(text))) == {"A": "a\\b", "OK": "x y"}
