"""Configuration: every address, port, range and path, each settable by flag and by environment variable.

Precedence: command-line flag > environment variable (`EMULATOR_<NAME>`) > default. The defaults
put everything on loopback, the API on 127.0.0.1:8080 so that kubectl with no kubeconfig finds it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "k8s-emulator")


@dataclass
class Config:
    api_host: str = field(default="127.0.0.1", metadata={"help": "address the Kubernetes API listens on"})
    api_port: int = field(default=8080, metadata={"help": "port of the Kubernetes API (0 = any free port)"})
    dns_host: str = field(default="127.0.0.1", metadata={"help": "address of the DNS server (UDP and TCP)"})
    dns_port: int = field(default=1053, metadata={"help": "port of the DNS server; 53 needs the right to bind it (0 = any free port, -1 = no DNS)"})
    cluster_domain: str = field(default="cluster.local", metadata={"help": "the cluster's DNS zone"})
    dns_ttl: int = field(default=5, metadata={"help": "TTL of DNS answers, seconds"})
    dns_upstream: str = field(default="", metadata={"help": "comma-separated upstream resolvers (host[:port]) for names outside the zone; empty = the host's; 'none' = refuse"})
    dns_forward_from: str = field(default="local", metadata={"help": "clients whose queries outside the zone are forwarded: 'local' (loopback, RFC 1918, RFC 6598 and ULA addresses), 'loopback', 'any' (an open resolver: never on a network), or comma-separated CIDRs"})
    gateway_domain: str = field(default="localhost", metadata={"help": "comma-separated domains whose Ingress and Gateway API hostnames the DNS server answers with the gateway's address, besides the cluster zone (names elsewhere are forwarded); empty = the zone only"})
    default_namespace: str = field(default="default", metadata={"help": "namespace that bare service names resolve in"})
    service_cidr: str = field(default="127.96.0.0/12", metadata={"help": "range of cluster IPs"})
    pod_cidr: str = field(default="127.244.0.0/16", metadata={"help": "range of pod IPs"})
    lb_cidr: str = field(default="127.250.0.0/16", metadata={"help": "range of LoadBalancer ingress IPs"})
    node_port_range: str = field(default="30000-32767", metadata={"help": "range of node ports"})
    node_address: str = field(default="127.0.0.1", metadata={"help": "the node's address: NodePort listeners and host-network pods"})
    gateway_host: str = field(default="127.0.0.1", metadata={"help": "address of the Host-header gateway"})
    gateway_port: int = field(default=8081, metadata={"help": "port of the Host-header gateway (-1 = no gateway)"})
    gateway_https_port: int = field(default=8443, metadata={"help": "HTTPS port of the gateway: Ingress TLS and Gateway HTTPS listeners, certificates chosen by SNI (-1 = none)"})
    listen_beyond_loopback: bool = field(default=False, metadata={"help": "let the proxy listen on the non-loopback addresses services ask for (spec.externalIPs, load-balancer IPs): they are then reachable from the network"})
    proxy: bool = field(default=True, metadata={"help": "run the service proxy (--no-proxy to disable)"})
    network_policy: bool = field(default=True, metadata={"help": "enforce NetworkPolicies on new connections through the proxy (--no-network-policy to disable)"})
    flows: bool = field(default=True, metadata={"help": "record every DNS query, proxied connection and HTTP request with its verdict, for /emulator/v1/flows, `emulator flows` and the DNS and proxy metrics (--no-flows to disable)"})
    flow_buffer: int = field(default=10000, metadata={"help": "flows kept in memory (the oldest are dropped)"})
    require_auth: bool = field(default=False, metadata={"help": "require bearer tokens for the API even on loopback (always required off loopback unless --allow-anonymous)"})
    allow_anonymous: bool = field(default=False, metadata={"help": "serve the API without authentication on a non-loopback --api-host: anyone who reaches it can change the cluster"})
    accept_hosts: str = field(default="", metadata={"help": "comma-separated extra host names the API answers to (Host header); loopback names and addresses, --api-host and kubernetes[.default[.svc[.<zone>]]] always are"})
    allow_origins: str = field(default="", metadata={"help": "comma-separated browser origins (scheme://host:port) allowed to call the API; by default no web page may"})
    max_token_seconds: int = field(default=172800, metadata={"help": "longest lifetime of a service-account token a TokenRequest may ask for, seconds (longer requests are cut to it)"})
    data_dir: str = field(default_factory=default_data_dir, metadata={"help": "where the store and keys live"})
    in_memory: bool = field(default=False, metadata={"help": "keep nothing on disk (a throwaway cluster)"})
    fsync: str = field(default="full", metadata={"help": "SQLite durability: 'full' (fsync per write) or 'normal' (survives a crash of the process, not of the machine)"})
    event_ttl: int = field(default=3600, metadata={"help": "how long an Event is kept after its last update, seconds (the API server's --event-ttl)"})
    hpa_sync_period: int = field(default=15, metadata={"help": "how often every HorizontalPodAutoscaler is looked at with fresh metrics, seconds (kube-controller-manager's --horizontal-pod-autoscaler-sync-period)"})
    max_events: int = field(default=20000, metadata={"help": "most Events kept; beyond it the oldest are deleted"})
    watch_history: int = field(default=10000, metadata={"help": "changes kept for watches that resume from an older resourceVersion"})
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    kubelet: bool = field(default=False, metadata={"help": "run the containers of pods that say what to run (command/args, or --image-map) as local processes, as the owner's user; the API then requires tokens unless --allow-anonymous (docs/pods.md)"})
    image_map: str = field(default="", metadata={"help": "YAML file mapping images to local commands (implies --kubelet; docs/pods.md)"})
    trust_stored_objects: bool = field(default=False, metadata={"help": "start the kubelet over a data directory that was served without authentication, once its stored workloads and pods are reviewed (clears that record; docs/security.md)"})
    container_log_max_size: str = field(default="10Mi", metadata={"help": "size at which a container's log is rotated (the kubelet's containerLogMaxSize)"})
    container_log_max_files: int = field(default=5, metadata={"help": "log files kept per container, the current one included (the kubelet's containerLogMaxFiles)"})

    @property
    def runs_pods(self) -> bool:
        """The kubelet is on: asked for, or implied by an image map."""
        return self.kubelet or bool(self.image_map)

    @property
    def store_path(self) -> Path:
        return Path(self.data_dir) / "store.db"

    def env_name(self, name: str) -> str:
        return "EMULATOR_" + name.upper()


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field (`--api-port`, booleans as `--in-memory` / `--no-proxy`)."""
    defaults = Config()
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        env = defaults.env_name(f.name)
        help_text = f"{f.metadata.get('help', '')} (env {env})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind: Any = int if f.type in ("int", int) else str
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=f"{help_text} [default: {getattr(defaults, f.name)}]")


def from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    environ = dict(os.environ) if environ is None else environ
    config = Config()
    for f in fields(Config):
        value = getattr(args, f.name, None)
        if value is None:
            raw = environ.get(config.env_name(f.name))
            if raw is None:
                continue
            if f.type in ("bool", bool):
                value = _parse_bool(raw)
            elif f.type in ("int", int):
                try:
                    value = int(raw)
                except ValueError:
                    raise SystemExit(f"error: {config.env_name(f.name)}={raw!r} is not a number") from None
            else:
                value = raw
        setattr(config, f.name, value)
    problems = check(config)
    if problems:
        raise SystemExit("error: " + "\nerror: ".join(problems))
    return config


def check(config: Config) -> list[str]:
    """What is wrong with a configuration, each as a message that says what to use instead."""
    problems: list[str] = []
    networks: dict[str, ipaddress.IPv4Network] = {}
    for name in ("service_cidr", "pod_cidr", "lb_cidr"):
        value = getattr(config, name)
        try:
            networks[name] = ipaddress.IPv4Network(value, strict=False)
        except ValueError as exc:
            problems.append(f"--{name.replace('_', '-')} {value!r} is not an IPv4 range ({exc}); use e.g. 127.96.0.0/12")
    names = list(networks)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if networks[first].overlaps(networks[second]):
                problems.append(f"--{first.replace('_', '-')} {networks[first]} and --{second.replace('_', '-')} {networks[second]} overlap; give them separate ranges")
    low, _, high = config.node_port_range.partition("-")
    if not (low.isdigit() and high.isdigit() and 1 <= int(low) <= int(high) <= 65535):
        problems.append(f"--node-port-range {config.node_port_range!r} must be FIRST-LAST within 1-65535, e.g. 30000-32767")
    for name in ("api_port", "dns_port", "gateway_port", "gateway_https_port"):
        port = getattr(config, name)
        lowest = 0 if name == "api_port" else -1
        if not lowest <= port <= 65535:
            problems.append(f"--{name.replace('_', '-')} {port} is not a port: use 0-65535 (0 = any free port{'' if name == 'api_port' else ', -1 = off'})")
    if config.fsync not in ("full", "normal"):
        problems.append(f"--fsync {config.fsync!r}: use 'full' (fsync every write) or 'normal'")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append(f"--log-level {config.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    if config.event_ttl < 1:
        problems.append(f"--event-ttl {config.event_ttl}: keep events at least 1 second (the API server keeps them 3600)")
    if config.hpa_sync_period < 1:
        problems.append(f"--hpa-sync-period {config.hpa_sync_period}: look at autoscalers at most every second (kube-controller-manager: every 15)")
    if config.max_events < 1:
        problems.append(f"--max-events {config.max_events}: keep at least 1 event")
    if config.flow_buffer < 1:
        problems.append(f"--flow-buffer {config.flow_buffer}: keep at least 1 flow (--no-flows records none)")
    if config.watch_history < 1:
        problems.append(f"--watch-history {config.watch_history}: keep at least 1 change (watches resume from it)")
    if config.dns_ttl < 0:
        problems.append(f"--dns-ttl {config.dns_ttl}: a TTL cannot be negative")
    if config.dns_forward_from.strip().lower() not in ("local", "loopback", "any"):
        for part in config.dns_forward_from.split(","):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                problems.append(f"--dns-forward-from {part.strip()!r} is not a CIDR: use 'local', 'loopback', 'any' or ranges such as 10.0.0.0/8,fd00::/8")
    if not 600 <= config.max_token_seconds <= 2**32:
        problems.append(f"--max-token-seconds {config.max_token_seconds}: use 600 (10 minutes, the shortest token) to 4294967296")
    if parse_size(config.container_log_max_size) is None:
        problems.append(f"--container-log-max-size {config.container_log_max_size!r}: use a size such as 10Mi, 500Ki or 1048576 (at least 1Ki)")
    if config.container_log_max_files < 2:
        problems.append(f"--container-log-max-files {config.container_log_max_files}: keep at least 2 files (the current one and one rotated)")
    if config.image_map and not os.path.isfile(config.image_map):
        problems.append(f"--image-map {config.image_map!r}: no such file (a YAML map of image → command; see docs/pods.md)")
    for origin in filter(None, (o.strip() for o in config.allow_origins.split(","))):
        if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            problems.append(f"--allow-origins {origin!r} is not an origin: use scheme://host[:port], e.g. http://localhost:3000")
    return problems


_SIZE_UNITS = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3, "gi": 1024**3}


def parse_size(text: str) -> int | None:
    """A size as the kubelet's flags write it (`10Mi`, `500Ki`, `1048576`), in bytes; None when it is not
    one or is below 1Ki."""
    number = text.strip().rstrip("iIkKmMgG")
    unit = text.strip()[len(number):].lower()
    if not number.isdigit() or unit not in _SIZE_UNITS:
        return None
    size = int(number) * _SIZE_UNITS[unit]
    return size if size >= 1024 else None
