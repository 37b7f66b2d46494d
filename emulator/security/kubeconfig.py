"""Kubeconfig files: a context for the emulator, printed or merged into the user's kubeconfig, and
what a context says about reaching its cluster (server, CA, token), read the way kubectl reads it.

`kubectl --context emulator ...` then reaches the emulator while the user's real clusters stay
where they are: merging adds or replaces only the `emulator` cluster, user and context entries and
changes `current-context` only when asked. Building, merging and picking a context are pure
functions over dicts; the file handling (`read`, `load`, `write`) is a thin shell around them.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NAME = "emulator"  # the cluster, user and context name


class KubeconfigError(Exception):
    """The existing kubeconfig cannot be merged into (unreadable, or not a kubeconfig)."""


@dataclass(frozen=True)
class Access:
    """How to reach an API: its URL and, for an emulator that requires tokens, the CA and the token.

    The default (all None/False) is the loopback emulator: plain http, no credentials.
    """

    server: str
    token: str | None = None
    ca_pem: str | None = None  # the certificate(s) to trust, PEM
    insecure: bool = False  # skip TLS verification: only when the user asked for it
    where: str = ""  # "context 'emulator' of /path", for messages


def kubeconfig_for(
    server: str, namespace: str = "default", name: str = NAME, access: Access | None = None
) -> dict[str, Any]:
    """A complete kubeconfig with one context that points at `server`.

    Without `access` the user entry is empty: the emulator serves plain http without authentication,
    and both kubectl and the Python client accept a context whose user has no credentials. With it,
    the cluster carries the CA (or insecure-skip-tls-verify) and the user the token.
    """
    cluster: dict[str, Any] = {"server": server}
    user: dict[str, Any] = {}
    if access is not None:
        if access.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(access.ca_pem.encode()).decode()
        if access.insecure:
            cluster["insecure-skip-tls-verify"] = True
        if access.token:
            user["token"] = access.token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }


def _replace_named(entries: Any, entry: dict[str, Any]) -> list[Any]:
    """`entries` with the item named like `entry` replaced in place, or `entry` appended."""
    items = list(entries) if isinstance(entries, list) else []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == entry["name"]:
            items[index] = entry
            return items
    return [*items, entry]


def merge(
    existing: Mapping[str, Any] | None,
    server: str,
    use: bool = False,
    namespace: str = "default",
    name: str = NAME,
    access: Access | None = None,
) -> dict[str, Any]:
    """`existing` with the emulator's cluster, user and context added or replaced.

    Everything else (other contexts, preferences, extensions) is kept as it is. `current-context`
    becomes the emulator's only when `use` is set, so that writing the entry never silently
    redirects the user's next `kubectl` at another cluster.
    """
    fresh = kubeconfig_for(server, namespace, name, access)
    if not existing:
        if not use:
            fresh["current-context"] = ""
        return fresh
    merged = dict(existing)
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for section in ("clusters", "users", "contexts"):
        merged[section] = _replace_named(merged.get(section), fresh[section][0])
    if use:
        merged["current-context"] = name
    else:
        merged.setdefault("current-context", "")
    return merged


def render(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where kubectl would write: the first file in $KUBECONFIG that exists (else its first entry),
    or ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    for candidate in listed:
        if Path(candidate).expanduser().exists():
            return Path(candidate).expanduser()
    if listed:
        return Path(listed[0]).expanduser()
    return Path(os.path.expanduser("~")) / ".kube" / "config"


def read(path: Path) -> dict[str, Any] | None:
    """The kubeconfig at `path`, or None when there is none yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KubeconfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{path} is not valid YAML ({exc}); fix or move it, then retry") from exc
    if loaded is None:
        return None
    if not isinstance(loaded, dict):
        raise KubeconfigError(f"{path} is not a kubeconfig (its top level is not a mapping)")
    return loaded


def write(
    path: Path, server: str, use: bool = False, namespace: str = "default", access: Access | None = None
) -> dict[str, Any]:
    """Merge the emulator's context into the kubeconfig at `path` and save it; returns what was written.

    The file is replaced atomically (a crash never leaves a half-written kubeconfig) and is
    readable by its owner only, as kubectl's own files are.
    """
    # write through a symlinked kubeconfig (dotfile managers) instead of replacing the link
    path = path.resolve() if path.is_symlink() else path
    merged = merge(read(path), server, use, namespace, access=access)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(render(merged))
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return merged


# --- reading a context back ---------------------------------------------------------------------------


def paths_from(value: str) -> list[Path]:
    """$KUBECONFIG's list of files (os.pathsep-separated), as kubectl splits it."""
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def load(paths: Sequence[Path]) -> dict[str, Any]:
    """The files merged as kubectl merges $KUBECONFIG: for each name the first file that defines it wins,
    and so does the first current-context. Missing files are skipped.

    Relative file references (certificate-authority, tokenFile) are made absolute against the file
    that holds them, as kubectl does, since after merging nothing says which file that was.
    """
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": [], "current-context": ""}
    for path in paths:
        config = read(path)
        if not config:
            continue
        if not merged["current-context"] and isinstance(config.get("current-context"), str):
            merged["current-context"] = config["current-context"]
        for section, body, fields in (
            ("clusters", "cluster", ("certificate-authority",)),
            ("users", "user", ("tokenFile",)),
            ("contexts", "context", ()),
        ):
            known = {entry["name"] for entry in merged[section]}
            for entry in config.get(section) or []:
                if not isinstance(entry, dict) or not isinstance(entry.get(body), dict) or entry.get("name") in known:
                    continue
                inner = dict(entry[body])
                for key in fields:
                    if isinstance(inner.get(key), str) and inner[key]:
                        inner[key] = str(path.parent / Path(inner[key]).expanduser())
                merged[section].append({"name": entry["name"], body: inner})
                known.add(entry["name"])
    return merged


def _named(config: Mapping[str, Any], section: str, body: str, name: str) -> dict[str, Any] | None:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return dict(entry.get(body) or {})
    return None


def access_for(config: Mapping[str, Any], context: str, where: str) -> Access:
    """What context `context` of `config` (as `load` returns it) says: server, CA, token.

    Raises KubeconfigError with what to fix when the context, its cluster or a file it names is
    missing, or when its user authenticates some way the emulator does not (client certificates, exec
    plugins): silently going without credentials would only turn into a puzzling 401 later.
    """
    ctx = _named(config, "contexts", "context", context)
    if ctx is None:
        names = ", ".join(repr(c.get("name")) for c in config.get("contexts") or []) or "none"
        raise KubeconfigError(f"{where} has no context {context!r} (it has: {names})")
    label = f"context {context!r} of {where}"
    cluster = _named(config, "clusters", "cluster", str(ctx.get("cluster") or ""))
    if cluster is None or not cluster.get("server"):
        raise KubeconfigError(f"{label} names cluster {ctx.get('cluster')!r}, which {where} does not define with a server")
    user = _named(config, "users", "user", str(ctx.get("user") or "")) or {}
    ca_pem: str | None = None
    if cluster.get("certificate-authority-data"):
        try:
            ca_pem = base64.b64decode(str(cluster["certificate-authority-data"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise KubeconfigError(f"certificate-authority-data of {label} is not base64-encoded PEM") from exc
    elif cluster.get("certificate-authority"):
        ca_pem = _read_file(Path(cluster["certificate-authority"]), f"the certificate-authority of {label}")
    token: str | None = user.get("token") or None
    if token is None and user.get("tokenFile"):
        token = _read_file(Path(user["tokenFile"]), f"the tokenFile of {label}").strip() or None
    unsupported = [k for k in ("client-certificate", "client-certificate-data", "exec", "auth-provider", "username") if user.get(k)]
    if unsupported and token is None:
        raise KubeconfigError(
            f"{label} authenticates with {unsupported[0]}, which the emulator does not accept: it takes bearer tokens only"
        )
    return Access(
        server=str(cluster["server"]).rstrip("/"),
        token=str(token) if token else None,
        ca_pem=ca_pem,
        # Only a YAML boolean, as kubectl reads it: a string ("false") or a number must not turn checks off.
        insecure=cluster.get("insecure-skip-tls-verify") is True,
        where=label,
    )


def _read_file(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise KubeconfigError(f"cannot read {what} ({path}): {exc.strerror}") from exc
