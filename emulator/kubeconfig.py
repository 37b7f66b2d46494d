"""A kubeconfig context for the emulator, printed or merged into the user's kubeconfig.

`kubectl --context emulator ...` then reaches the emulator while the user's real clusters stay
where they are: merging adds or replaces only the `emulator` cluster, user and context entries and
changes `current-context` only when asked. Building and merging are pure functions over dicts; the
file handling (`write`) is a thin shell around them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

NAME = "emulator"  # the cluster, user and context name


class KubeconfigError(Exception):
    """The existing kubeconfig cannot be merged into (unreadable, or not a kubeconfig)."""


def kubeconfig_for(server: str, namespace: str = "default", name: str = NAME) -> dict[str, Any]:
    """A complete kubeconfig with one context that points at `server`.

    The user entry is empty: the emulator serves plain http without authentication, and both
    kubectl and the Python client accept a context whose user has no credentials.
    """
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {}}],
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
    existing: Mapping[str, Any] | None, server: str, use: bool = False, namespace: str = "default", name: str = NAME
) -> dict[str, Any]:
    """`existing` with the emulator's cluster, user and context added or replaced.

    Everything else (other contexts, preferences, extensions) is kept as it is. `current-context`
    becomes the emulator's only when `use` is set, so that writing the entry never silently
    redirects the user's next `kubectl` at another cluster.
    """
    fresh = kubeconfig_for(server, namespace, name)
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


def write(path: Path, server: str, use: bool = False, namespace: str = "default") -> dict[str, Any]:
    """Merge the emulator's context into the kubeconfig at `path` and save it; returns what was written.

    The file is replaced atomically (a crash never leaves a half-written kubeconfig) and is
    readable by its owner only, as kubectl's own files are.
    """
    # write through a symlinked kubeconfig (dotfile managers) instead of replacing the link
    path = path.resolve() if path.is_symlink() else path
    merged = merge(read(path), server, use, namespace)
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
