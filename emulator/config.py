"""Configuration: every address, port, range and path, each settable by flag and by environment variable.

Precedence: command-line flag > environment variable (`EMULATOR_<NAME>`) > default. The defaults
put everything on loopback, the API on 127.0.0.1:8080 so that kubectl with no kubeconfig finds it.
"""

from __future__ import annotations

import argparse
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
    default_namespace: str = field(default="default", metadata={"help": "namespace that bare service names resolve in"})
    service_cidr: str = field(default="127.96.0.0/12", metadata={"help": "range of cluster IPs"})
    pod_cidr: str = field(default="127.244.0.0/16", metadata={"help": "range of pod IPs"})
    lb_cidr: str = field(default="127.250.0.0/16", metadata={"help": "range of LoadBalancer ingress IPs"})
    node_port_range: str = field(default="30000-32767", metadata={"help": "range of node ports"})
    node_address: str = field(default="127.0.0.1", metadata={"help": "the node's address: NodePort listeners and host-network pods"})
    gateway_host: str = field(default="127.0.0.1", metadata={"help": "address of the Host-header gateway"})
    gateway_port: int = field(default=8081, metadata={"help": "port of the Host-header gateway (-1 = no gateway)"})
    proxy: bool = field(default=True, metadata={"help": "run the service proxy (--no-proxy to disable)"})
    network_policy: bool = field(default=True, metadata={"help": "enforce NetworkPolicies on new connections through the proxy (--no-network-policy to disable)"})
    require_auth: bool = field(default=False, metadata={"help": "require bearer tokens for the API even on loopback (always required off loopback unless --allow-anonymous)"})
    allow_anonymous: bool = field(default=False, metadata={"help": "serve the API without authentication on a non-loopback --api-host: anyone who reaches it can change the cluster"})
    data_dir: str = field(default_factory=default_data_dir, metadata={"help": "where the store and keys live"})
    in_memory: bool = field(default=False, metadata={"help": "keep nothing on disk (a throwaway cluster)"})
    fsync: str = field(default="full", metadata={"help": "SQLite durability: 'full' (fsync per write) or 'normal' (survives a crash of the process, not of the machine)"})
    watch_history: int = field(default=10000, metadata={"help": "changes kept for watches that resume from an older resourceVersion"})
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})

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
    return config
