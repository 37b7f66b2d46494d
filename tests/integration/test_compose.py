"""docker-compose.yml and the Dockerfile, checked against the emulator they run (no Docker engine needed).

`docker-compose config` (Debian's docker-compose package) parses and resolves the compose file; the
emulator service's settings are then read the way the container would read them — the Dockerfile's
ENV, the service's environment, its command parsed by `emulator serve`'s own argument parser — and
every published port, EXPOSE line, address and script path is compared with them. The emulator is then
started with the same flags moved to loopback and free ports, the Dockerfile's HEALTHCHECK command is
run against it, and the demo services' script registers and resolves pods on it as in the containers.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from emulator import config as config_module
from tests.conftest import ROOT, start_emulator

DOCKERFILE = ROOT / "Dockerfile"
EMULATOR = "emulator"
DEMOS = {"greeter-a", "greeter-b", "caller"}


# --- reading the files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """`docker-compose config`: the file as Compose resolves it (anchors merged, variables defaulted)."""
    from tests.conftest import require_tool

    tool = require_tool("docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMULATOR_", "COMPOSE_"))}
    result = subprocess.run(
        [tool, "-f", "docker-compose.yml", "config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        pending += raw.rstrip().removesuffix("\\") + " " if raw.rstrip().endswith("\\") else raw
        if not raw.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            pending = ""
    return lines


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def serve_config(command: list[str], environment: dict[str, str]) -> config_module.Config:
    """What `emulator serve COMMAND` makes of its flags and environment, by its own parser."""
    parser = argparse.ArgumentParser(prog="emulator serve", exit_on_error=False)
    config_module.add_arguments(parser)
    try:
        args = parser.parse_args(command)
    except (argparse.ArgumentError, SystemExit) as exc:
        pytest.fail(f"emulator serve does not accept {command}: {exc}")
    return config_module.from_args(args, environment)


def emulator_config(compose: dict[str, Any]) -> config_module.Config:
    service = compose["services"][EMULATOR]
    return serve_config(list(service.get("command") or []), {**dockerfile_env(), **(service.get("environment") or {})})


def served_ports(cfg: config_module.Config) -> set[tuple[int, str]]:
    ports = {(cfg.api_port, "tcp")}
    if cfg.dns_port >= 0:
        ports |= {(cfg.dns_port, "udp"), (cfg.dns_port, "tcp")}
    if cfg.gateway_port >= 0:
        ports.add((cfg.gateway_port, "tcp"))
    if cfg.gateway_https_port >= 0:
        ports.add((cfg.gateway_https_port, "tcp"))
    return ports


def published(service: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(host address, host port, container port, protocol) for each entry of `ports`."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):  # the long syntax
            result.append(
                (entry.get("host_ip", ""), int(entry["published"]), int(entry["target"]), entry.get("protocol", "tcp"))
            )
            continue
        spec, _, protocol = str(entry).partition("/")
        host_ip, host_port, container_port = spec.rsplit(":", 2) if spec.count(":") >= 2 else ("", *spec.split(":"))
        result.append((host_ip, int(host_port), int(container_port), protocol or "tcp"))
    return result


def emulator_address(compose: dict[str, Any]) -> str:
    networks = compose["services"][EMULATOR]["networks"]
    (address,) = [n["ipv4_address"] for n in networks.values() if n and n.get("ipv4_address")]
    return address


# --- the compose file -------------------------------------------------------------------------------


def test_services_are_the_emulator_and_its_demos(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {EMULATOR, *DEMOS}
    image = services[EMULATOR]["image"]
    for name, service in services.items():
        # one image, built from this repository's Dockerfile
        assert service["image"] == image, name
        assert Path(service["build"]["context"]).resolve() == ROOT, name
        assert (ROOT / service["build"].get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert "entrypoint" not in services[EMULATOR]  # the image's: emulator serve
    assert any(v.startswith("emulator-data:/data") for v in services[EMULATOR]["volumes"])
    assert dockerfile_env()["EMULATOR_DATA_DIR"] == "/data"
    assert "emulator-data" in compose["volumes"]


def test_published_ports_are_what_the_emulator_serves(compose: dict[str, Any]) -> None:
    cfg = emulator_config(compose)
    ports = published(compose["services"][EMULATOR])
    assert {(target, protocol) for _, _, target, protocol in ports} == served_ports(cfg)
    assert cfg.dns_port == 53  # what `dns:` in the other services implies
    for host_ip, host_port, target, protocol in ports:
        assert host_ip == "127.0.0.1", f"{target}/{protocol} is published beyond this machine"
        # the host side keeps the emulator's usual ports, so kubectl, dig -p 1053 and the docs work unchanged
        defaults = config_module.Config()
        expected = {
            cfg.api_port: defaults.api_port,
            cfg.dns_port: defaults.dns_port,
            cfg.gateway_port: defaults.gateway_port,
            cfg.gateway_https_port: defaults.gateway_https_port,
        }
        assert host_port == expected[target]
    # a non-root process binds 53 only with the sysctl (or a capability)
    sysctls = compose["services"][EMULATOR].get("sysctls") or {}
    assert str(sysctls.get("net.ipv4.ip_unprivileged_port_start")) == "0"


def test_emulator_address_is_fixed_on_the_network(compose: dict[str, Any]) -> None:
    address = ipaddress.ip_address(emulator_address(compose))
    (network_name,) = compose["services"][EMULATOR]["networks"]
    subnets = [ipaddress.ip_network(c["subnet"]) for c in compose["networks"][network_name]["ipam"]["config"]]
    assert any(address in subnet for subnet in subnets)
    cfg = emulator_config(compose)
    # DNS on that address (see the compose file: 0.0.0.0:53 would take Docker's 127.0.0.11 for itself)
    assert cfg.dns_host == str(address)
    assert cfg.node_address == str(address)
    assert cfg.api_host == "0.0.0.0" and cfg.gateway_host == "0.0.0.0"


def test_demo_services_point_at_the_emulator(compose: dict[str, Any]) -> None:
    cfg = emulator_config(compose)
    address = emulator_address(compose)
    (network_name,) = compose["services"][EMULATOR]["networks"]
    for name in DEMOS:
        service = compose["services"][name]
        assert service["dns"] == [address], name
        assert network_name in service["networks"], name
        assert service["depends_on"][EMULATOR]["condition"] == "service_healthy"
        env = service["environment"]
        api, gateway = urlsplit(env["EMULATOR_SERVER"]), urlsplit(env["EMULATOR_GATEWAY"])
        assert (api.scheme, api.hostname, api.port) == ("http", address, cfg.api_port), name
        assert (gateway.hostname, gateway.port) == (address, cfg.gateway_port), name
        # the script the entrypoint runs is this repository's, mounted into the container
        python, script = service["entrypoint"]
        assert python == "python"
        mounts = [v.split(":") for v in service["volumes"]]
        (host_dir,) = [Path(h) for h, container, *_ in mounts if script.startswith(container.rstrip("/") + "/")]
        mounted = host_dir / Path(script).name
        assert mounted.resolve() == ROOT / "examples" / "compose" / "demo.py" and mounted.exists()
        assert service["command"] in (["greeter"], ["caller"])
        assert env["POD_NAME"] == name


def test_the_api_needs_no_token_in_compose(compose: dict[str, Any]) -> None:
    """The demo services talk plain HTTP without a token: the compose flags must allow that off loopback."""
    auth = pytest.importorskip("emulator.security.auth")
    cfg = emulator_config(compose)
    assert not auth.auth_required(cfg.api_host, cfg.require_auth, cfg.allow_anonymous)


# --- the Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    words = [w for w, _ in instructions]
    stages = [rest.split() for w, rest in instructions if w == "FROM"]
    assert re.match(r"python:3\.(1[1-9])-slim$", stages[-1][0])  # what runs is slim; a build stage is not
    # the kubelet's podnet library: built in its own stage from the source in the package, named by ENV
    assert [s[0] for s in stages[:-1]] == [f"python:{stages[-1][0].split(':')[1].removesuffix('-slim')}"]
    builds = [rest for w, rest in instructions if w == "RUN" and "podnet.c" in rest]
    assert builds and "cc " in builds[0] and (ROOT / "emulator/kubelet/podnet.c").is_file()
    copied = [rest.split() for w, rest in instructions if w == "COPY" and rest.startswith(f"--from={stages[0][2]} ")]
    assert copied and dockerfile_env()["EMULATOR_PODNET_LIBRARY"] == copied[0][-1]
    users = [rest for w, rest in instructions if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["emulator", "serve"]
    assert any(re.search(r"\bpip install\b", rest) for word, rest in instructions if word == "RUN")
    env = dockerfile_env()
    cfg = serve_config([], env)
    assert (cfg.api_host, cfg.dns_host, cfg.gateway_host) == ("0.0.0.0",) * 3
    exposed = set()
    for word, rest in instructions:
        if word == "EXPOSE":
            for item in rest.split():
                port, _, protocol = item.partition("/")
                exposed.add((int(port), protocol or "tcp"))
    assert exposed == served_ports(cfg)
    volumes = [json.loads(rest) for w, rest in instructions if w == "VOLUME"]
    assert [cfg.data_dir] in volumes
    assert "HEALTHCHECK" in words and "/readyz" in healthcheck_command()[-1]
    # what the Dockerfile copies must get through .dockerignore
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "emulator/", "api/"):
        assert f"!{needed}" in ignore
        assert (ROOT / needed).exists()


def healthcheck_command() -> list[str]:
    (rest,) = [rest for w, rest in dockerfile_instructions() if w == "HEALTHCHECK"]
    exec_form = rest[rest.index("CMD ") + 4 :].strip()
    command = json.loads(exec_form)
    assert command[:2] == ["python", "-c"]
    return command


# --- running the same configuration ------------------------------------------------------------------


def loopback_flags(command: list[str], data_dir: Path) -> list[str]:
    """The compose command with addresses moved to loopback and ports to free ones."""
    hosts = {"--api-host", "--dns-host", "--gateway-host", "--node-address"}
    ports = {"--api-port", "--dns-port", "--gateway-port"}
    flags = []
    for item in command:
        name, eq, value = item.partition("=")
        if eq and name in hosts:
            item = f"{name}=127.0.0.1"
        elif eq and name in ports:
            item = f"{name}=0"
        elif eq and name == "--data-dir":
            item = f"{name}={data_dir}"
        flags.append(item)
    return flags


def run_healthcheck(api_port: int) -> subprocess.CompletedProcess[str]:
    _, flag, code = healthcheck_command()
    env = {**os.environ, "EMULATOR_API_PORT": str(api_port)}
    return subprocess.run([sys.executable, flag, code], env=env, capture_output=True, text=True, timeout=20)


def test_compose_flags_start_the_emulator_and_the_healthcheck_passes(compose: dict[str, Any], tmp_path: Path) -> None:
    command = list(compose["services"][EMULATOR].get("command") or [])
    assert all(item.startswith("--") and "=" in item or item == "--allow-anonymous" for item in command), command
    emu = start_emulator(tmp_path / "data", *loopback_flags(command, tmp_path / "data"))
    try:
        assert {"API", "DNS", "gateway"} <= set(emu.faces), emu.faces
        assert emu.api_url.startswith("http://")
        with emu.client() as api:
            assert api.get("/readyz").status_code == 200
        result = run_healthcheck(emu.api_port)
        assert result.returncode == 0, result.stderr
    finally:
        emu.stop()
    assert run_healthcheck(emu.api_port).returncode == 1  # nothing listens any more


def test_healthcheck_passes_when_the_api_requires_tokens(tmp_path: Path) -> None:
    """The image's default (0.0.0.0 without --allow-anonymous) serves HTTPS with tokens; /readyz stays open."""
    if "require_auth" not in {f.name for f in dataclasses.fields(config_module.Config)}:
        pytest.skip("this emulator has no --require-auth")
    emu = start_emulator(tmp_path / "data", "--require-auth")
    try:
        assert run_healthcheck(emu.api_port).returncode == 0
    finally:
        emu.stop()


def test_demo_services_register_and_find_each_other(compose: dict[str, Any], tmp_path: Path) -> None:
    """The compose demo script against a local emulator: pods at their own addresses, found by DNS and the gateway."""
    emu = start_emulator(tmp_path / "data")
    script = ROOT / "examples" / "compose" / "demo.py"
    octet = random.randrange(160, 240)
    addresses = {"greeter-a": f"127.{octet}.53.1", "greeter-b": f"127.{octet}.53.2", "caller": f"127.{octet}.53.3"}

    def env(name: str) -> dict[str, str]:
        return {
            **os.environ,
            "EMULATOR_SERVER": emu.api_url,
            "EMULATOR_GATEWAY": f"http://127.0.0.1:{emu.gateway_port}",
            "DNS_SERVER": f"127.0.0.1:{emu.dns_port}",
            "POD_NAME": name,
            "POD_IP": addresses[name],
            "PYTHONUNBUFFERED": "1",
        }

    greeters = [
        subprocess.Popen([sys.executable, str(script), "greeter"], env=env(name), stdout=subprocess.PIPE, text=True)
        for name in ("greeter-a", "greeter-b")
    ]
    try:
        for proc in greeters:
            assert proc.stdout is not None
            assert "registered pod default/" in proc.stdout.readline()
        with emu.client() as api:
            pods = api.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=greeter"}).json()["items"]
            assert {p["metadata"]["name"]: p["status"]["podIP"] for p in pods} == {
                k: v for k, v in addresses.items() if k != "caller"
            }
            headless = api.get("/api/v1/namespaces/default/services/greeter-pods").json()
            assert headless["spec"]["clusterIP"] == "None"
        caller = subprocess.run(
            [sys.executable, str(script), "caller", "--once"],
            env=env("caller"),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert caller.returncode == 0, caller.stderr
        out = caller.stdout
        assert f"greeter-pods.default.svc.cluster.local -> {addresses['greeter-a']}, {addresses['greeter-b']}" in out
        for name in ("greeter-a", "greeter-b"):
            assert f"says: hello from {name} ({addresses[name]})" in out, out
        assert re.search(r"with Host: greeter says: hello from greeter-[ab] ", out), out
    finally:
        for proc in greeters:
            proc.terminate()
        for proc in greeters:
            proc.wait(10)
        with emu.client() as api:
            # SIGTERM deletes each pod, as the container's stop would
            left = api.get("/api/v1/namespaces/default/pods").json()["items"]
        emu.stop()
    assert [p["metadata"]["name"] for p in left] == []
