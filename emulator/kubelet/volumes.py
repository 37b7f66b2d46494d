"""A pod's volumes on the host, as the kubelet's volume plugins make them, and where each container mounts them.

Per pod, under `<pod dir>/volumes/<plugin>/<name>` (the kubelet's own layout):

- `emptyDir`: a directory shared by the pod's containers, removed with the pod; `medium: Memory` lives
  on a tmpfs where there is one (/dev/shm, else $XDG_RUNTIME_DIR): a private directory made there with
  mkdtemp (mode 0700, checked to be ours; never a fixed name another local user could create first), which
  `<pod dir>/volumes/kubernetes.io~empty-dir/<name>` links to. `sizeLimit` is measured (`over_limit`), not
  enforced by the file system: the kubelet evicts such a pod, the core may do the same.
- `configMap`, `secret`, `downwardAPI`, `projected` (configMap, secret, downwardAPI and
  serviceAccountToken sources): files with `items` (key → path, mode), `defaultMode`, `optional`, written
  atomically as the kubelet's AtomicWriter does: a new `..<timestamp>` directory, then the `..data`
  symlink swapped by rename; the user-visible names are symlinks into `..data`. `refresh` rewrites them
  when their sources change, so a running process sees the whole new set or the whole old one.
- projected service-account tokens: real tokens (emulator/registry/tokens.py's TokenRequest) bound to
  the pod, for the asked audience and lifetime, rotated past 80% of their lifetime as the kubelet does.
- `hostPath`: the path itself, checked against `type` (DirectoryOrCreate makes it).
- `persistentVolumeClaim`: the bound volume's directory (emulator/controllers/volumes.py provisions them
  under `<data dir>/volumes/`): it outlives the pod.

Errors are `VolumeError`s worded as the kubelet's FailedMount events (`MountVolume.SetUp failed for
volume "cfg" : configmap "app" not found`); the pod waits in ContainerCreating until the source exists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets as random
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from emulator import envvars, errors, podenv
from emulator.kinds import CONFIG_MAPS, NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS, SECRETS
from emulator.kinds.node import NODE_NAME
from emulator.kinds.values import Undecodable, quantity_of
from emulator.registry.registry import Registry

log = logging.getLogger("emulator.kubelet")

POD_VOLUMES_DIR = "volumes"  # <pod dir>/volumes/<plugin>/<name>, the kubelet's layout
DEFAULT_MODE = 0o644  # configMap, secret, downwardAPI and projected volumes' defaultMode
DEFAULT_TOKEN_SECONDS = 3600  # a serviceAccountToken projection's default expirationSeconds
TOKEN_REFRESH_FRACTION = 0.8  # the kubelet renews a token once 80% of its lifetime has passed
MAX_TOKEN_AGE = 24 * 3600  # ... or once it is a day old
DATA_LINK = "..data"
SHM_DIR = "/dev/shm"
MEMORY_PREFIX = "emulator-emptydir-"  # mkdtemp's prefix for a memory-medium emptyDir
PLUGINS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
SUPPORTED = ("emptyDir", "configMap", "secret", "downwardAPI", "projected", "hostPath", "persistentVolumeClaim")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")

Payload = dict[str, tuple[bytes, int]]  # relative path → (content, mode)


class VolumeError(Exception):
    """A volume that cannot be set up yet: the message is the kubelet's FailedMount event message."""

    def __init__(self, volume: str, detail: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {detail}')
        self.volume = volume
        self.detail = detail


@dataclass(frozen=True)
class Mount:
    """One volumeMount of a container, resolved to the host."""

    volume: str  # the volume's name
    host_path: Path  # the volume on the host
    mount_path: str  # where the container expects it
    read_only: bool = False
    sub_path: str = ""
    sub_path_expr: str = ""  # `$(VAR)` expanded with the container's environment
    optional: bool = False  # the container starts without it when the sandbox cannot mount it

    def source(self, env: Mapping[str, str]) -> Path:
        """The host path to mount: the volume, or the subPath inside it (made when missing, as the kubelet
        does for directories it owns)."""
        sub = self.sub_path or (envvars.expand(self.sub_path_expr, env) if self.sub_path_expr else "")
        if not sub:
            return self.host_path
        rel = PurePosixPath(sub)
        if rel.is_absolute() or ".." in rel.parts:
            raise VolumeError(self.volume, f'subPath "{sub}" must be a relative path without ".."')
        path = self.host_path / rel
        if not path.exists() and not path.is_symlink():
            path.mkdir(parents=True, exist_ok=True)
        return path


class TokenIssuer(Protocol):
    """TokenRequest (emulator/registry/tokens.py's TokenOperations)."""

    def token_request(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


# -- the atomic writer -----------------------------------------------------------------------------


def check_payload_path(path: str) -> str | None:
    """Why a payload path is refused (the kubelet's validatePath), or None."""
    if not path:
        return "must not be empty"
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return "must be a relative path"
    if ".." in pure.parts:
        return "must not contain '..'"
    if path.startswith(".."):
        return "must not start with '..'"
    return None


def write_atomically(directory: Path, payload: Payload) -> bool:
    """The kubelet's AtomicWriter: the payload in a fresh `..<timestamp>` directory, `..data` pointing to it
    (swapped with one rename), user-visible names as symlinks into `..data`. False when nothing changed."""
    for rel in payload:
        why = check_payload_path(rel)
        if why:
            raise ValueError(f"invalid path {rel!r}: {why}")
    directory.mkdir(parents=True, exist_ok=True)
    data_link = directory / DATA_LINK
    old_dir = os.readlink(data_link) if data_link.is_symlink() else None
    if old_dir is not None and _payload_matches(directory / old_dir, payload):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{random.randbelow(10**9):09d}"
    new_dir = directory / stamp
    new_dir.mkdir(mode=0o755)
    for rel, (content, mode) in payload.items():
        target = new_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
    # the user-visible names: the payload's top-level entries, each a symlink into ..data
    visible = {PurePosixPath(rel).parts[0] for rel in payload}
    for name in sorted(visible):
        link = directory / name
        if not link.is_symlink():
            os.symlink(f"{DATA_LINK}/{name}", link)
    tmp = directory / f"{DATA_LINK}_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(stamp, tmp)
    os.rename(tmp, data_link)  # the swap: readers see the old set or the new one
    if old_dir is not None and old_dir != stamp:
        shutil.rmtree(directory / old_dir, ignore_errors=True)
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in visible and entry.is_symlink():
            entry.unlink()
    return True


def _payload_matches(current: Path, payload: Payload) -> bool:
    found = {
        str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()
    } if current.is_dir() else set()
    if found != set(payload):
        return False
    for rel, (content, mode) in payload.items():
        path = current / rel
        if path.read_bytes() != content or (path.stat().st_mode & 0o7777) != mode:
            return False
    return True


# -- payloads (pure) --------------------------------------------------------------------------------


def _mode(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777 else default


def source_payload(
    volume: str, kind: str, source: Mapping[str, Any], obj: Mapping[str, Any] | None, default_mode: int
) -> Payload:
    """A configMap or secret source's files (kind "configmap" or "secret"); `obj` None when it is missing."""
    name = str(source.get("name") or "")
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return {}
        raise VolumeError(volume, f'{kind} "{name}" not found')
    values: dict[str, bytes] = {}
    if kind == "configmap":
        for key, text in (obj.get("data") or {}).items():
            values[key] = str(text).encode()
        for key, encoded in (obj.get("binaryData") or {}).items():
            values[key] = base64.b64decode(encoded)
    else:
        for key, encoded in (obj.get("data") or {}).items():
            values[key] = base64.b64decode(encoded)
    items = source.get("items")
    if not items:
        return {key: (content, default_mode) for key, content in values.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in values:
            if optional:
                continue
            noun = "configmap" if kind == "configmap" else "secret"
            raise VolumeError(volume, f"{noun} references non-existent config key: {key}")
        payload[str(item.get("path") or key)] = (values[key], _mode(item.get("mode"), default_mode))
    return payload


def format_map(values: Mapping[str, Any]) -> str:
    """Labels or annotations as the downward API writes them: sorted `key="value"` lines."""
    return "\n".join(f"{k}={json.dumps(str(v), ensure_ascii=False)}" for k, v in sorted(values.items()))


def downward_payload(
    volume: str, items: list[Mapping[str, Any]], pod: Mapping[str, Any], allocatable: Mapping[str, Any], default_mode: int
) -> Payload:
    meta = pod.get("metadata") or {}
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    payload: Payload = {}
    for item in items:
        path = str(item.get("path") or "")
        value: str | None
        field = (item.get("fieldRef") or {}).get("fieldPath")
        if field in ("metadata.labels", "metadata.annotations"):
            value = format_map(meta.get(field.split(".")[1]) or {})
        elif field:
            value = envvars.field_ref(pod, item)
        elif item.get("resourceFieldRef"):
            value = podenv.resource_field_value(pod, containers[0], item["resourceFieldRef"], allocatable)
        else:
            value = None
        if value is None:
            raise VolumeError(volume, f'unable to get the value of downward API item "{path}": unsupported field')
        payload[path] = (value.encode(), _mode(item.get("mode"), default_mode))
    return payload


# -- a pod's volumes ---------------------------------------------------------------------------------


@dataclass
class _Token:
    path: str
    audience: str
    seconds: int
    content: bytes = b""
    issued: float = 0.0  # time.time() when issued
    lifetime: float = 0.0  # seconds it is valid for (as issued: the server may cut it)

    def due(self, now: float) -> bool:
        return not self.content or now - self.issued >= min(TOKEN_REFRESH_FRACTION * self.lifetime, MAX_TOKEN_AGE)


def _private_dir(path: Path) -> bool:
    """A directory (not a link) owned by this user that no one else may enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def _safe_base(path: str) -> bool:
    """A directory to mkdtemp in: owned by us or root, and others cannot rename what we make in it
    (not writable by others, or sticky as /dev/shm is)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, os.getuid()) or not os.access(path, os.W_OK | os.X_OK):
        return False
    return st.st_mode & 0o022 == 0 or bool(st.st_mode & stat.S_ISVTX)


def memory_base() -> str | None:
    """Where memory-medium emptyDirs go: /dev/shm, else $XDG_RUNTIME_DIR; None when neither is usable
    (the volume is then an ordinary directory under the pod's)."""
    for base in (SHM_DIR, os.environ.get("XDG_RUNTIME_DIR", "")):
        if base and os.path.isabs(base) and _safe_base(base):
            return base
    return None


def private_target(link: Path) -> Path | None:
    """The private memory directory `link` points to, when it is one this user made (mkdtemp's name, 0700,
    ours, in a base it may be in); None otherwise."""
    try:
        target = Path(os.readlink(link))
    except OSError:
        return None
    if not target.is_absolute() or not target.name.startswith(MEMORY_PREFIX) or not _private_dir(target):
        return None
    return target if _safe_base(str(target.parent)) else None


class Volumes:
    """One pod's volumes: `setup` makes them, `refresh` rewrites the projected ones, `teardown` removes
    what belongs to the pod (never a hostPath or a claim's directory)."""

    def __init__(self, registry: Registry, pod: dict[str, Any], pod_dir: Path, tokens: TokenIssuer | None, hosts: Any = None) -> None:
        self.registry = registry
        self.store = registry.store
        self.pod = pod
        self.pod_dir = Path(pod_dir)
        self.tokens = tokens
        self.hosts = hosts  # a kubelet.hosts.ClusterHosts: the pod's hosts file is written and kept current
        meta = pod.get("metadata") or {}
        self.namespace = str(meta.get("namespace") or "default")
        self.uid = str(meta.get("uid") or "")
        self.paths: dict[str, Path] = {}  # volume name → host path
        self._tokens: dict[str, list[_Token]] = {}  # projected volume name → its token sources
        self._timer: asyncio.TimerHandle | None = None

    @property
    def spec_volumes(self) -> list[dict[str, Any]]:
        return list((self.pod.get("spec") or {}).get("volumes") or ())

    def setup(self) -> None:
        """Make every volume (idempotent: a retry after a VolumeError redoes only what is missing)."""
        if self.hosts is not None:
            self.hosts.write(self.pod, self.pod_dir)
        for volume in self.spec_volumes:
            name = str(volume.get("name") or "")
            kind = next((k for k in volume if k != "name"), "")
            if kind not in SUPPORTED:
                raise VolumeError(
                    name, f"{kind or 'an empty'} volume is not supported by the emulator's kubelet (supported: {', '.join(SUPPORTED)})"
                )
            self.paths[name] = getattr(self, f"_setup_{kind}")(name, volume[kind] or {})
        self._schedule_rotation()

    def refresh(self) -> None:
        """Rewrite configMap, secret, downwardAPI and projected volumes from their sources now (the kubelet
        syncs them periodically). A source that went away leaves the files as they were, as in the kubelet.
        The pod is read again first: downwardAPI files follow its labels and annotations."""
        current = self.store.get(PODS.key, self.namespace, self.pod_name)
        if current is not None and (current.get("metadata") or {}).get("uid") == self.uid:
            self.pod = current
        for volume in self.spec_volumes:
            name = str(volume.get("name") or "")
            for kind in ("configMap", "secret", "downwardAPI", "projected"):
                if kind in volume and name in self.paths:
                    try:
                        getattr(self, f"_setup_{kind}")(name, volume[kind] or {})
                    except VolumeError as exc:
                        log.warning("pod %s/%s: %s", self.namespace, self.pod_name, exc)
        self._schedule_rotation()

    def teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.hosts is not None:
            self.hosts.untrack(self.uid)
        for volume in self.spec_volumes:
            if "emptyDir" in volume and (memory := private_target(self._plugin_dir("emptyDir", str(volume.get("name"))))):
                shutil.rmtree(memory, ignore_errors=True)
        shutil.rmtree(self.pod_dir / POD_VOLUMES_DIR, ignore_errors=True)

    def mounts_for(self, container: Mapping[str, Any]) -> tuple[Mount, ...]:
        """The container's volumeMounts resolved to host paths (after `setup`)."""
        mounts = []
        for vm in container.get("volumeMounts") or ():
            name = str(vm.get("name") or "")
            host = self.paths.get(name)
            if host is None:
                raise VolumeError(name, "volume is not set up")
            read_only = bool(vm.get("readOnly")) or self._read_only_source(name)
            mounts.append(Mount(
                name, host, str(vm.get("mountPath") or ""), read_only,
                str(vm.get("subPath") or ""), str(vm.get("subPathExpr") or ""),
            ))
        return tuple(mounts)

    def over_limit(self) -> list[str]:
        """emptyDirs using more than their sizeLimit, as the kubelet's eviction message words it."""
        found = []
        for volume in self.spec_volumes:
            source = volume.get("emptyDir")
            name = str(volume.get("name") or "")
            if not isinstance(source, dict) or source.get("sizeLimit") is None or name not in self.paths:
                continue
            try:
                limit = quantity_of(source["sizeLimit"]).value
            except (ValueError, Undecodable):
                continue
            used = sum(p.stat().st_size for p in self.paths[name].rglob("*") if p.is_file() and not p.is_symlink())
            if used > limit:
                found.append(f'Usage of EmptyDir volume "{name}" exceeds the limit "{source["sizeLimit"]}". ')
        return found

    # -- one kind each -------------------------------------------------------------------------------

    @property
    def pod_name(self) -> str:
        return str((self.pod.get("metadata") or {}).get("name") or "")

    def _plugin_dir(self, kind: str, name: str) -> Path:
        return self.pod_dir / POD_VOLUMES_DIR / PLUGINS[kind] / name

    def _setup_emptyDir(self, name: str, source: Mapping[str, Any]) -> Path:
        path = self._plugin_dir("emptyDir", name)
        if source.get("medium") == "Memory" and not (path.is_dir() and not path.is_symlink()):
            if (memory := private_target(path)) is not None:
                return memory  # set up before (a retry, or the kubelet adopting the pod after a restart)
            if (base := memory_base()) is not None:
                if path.is_symlink():
                    path.unlink()  # its directory is gone (a reboot emptied the tmpfs) or is not ours
                path.parent.mkdir(parents=True, exist_ok=True)
                memory = Path(tempfile.mkdtemp(prefix=f"{MEMORY_PREFIX}{self.uid[:8]}-", dir=base))
                path.symlink_to(memory)
                return memory
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o777)  # the kubelet's emptyDir is world-writable (containers may run as any user)
        return path

    def _get(self, resource: str, name: str) -> dict[str, Any] | None:
        return self.store.get(resource, self.namespace, name)

    def _setup_configMap(self, name: str, source: Mapping[str, Any]) -> Path:
        obj = self._get(CONFIG_MAPS.key, str(source.get("name") or ""))
        payload = source_payload(name, "configmap", source, obj, _mode(source.get("defaultMode"), DEFAULT_MODE))
        return self._write(self._plugin_dir("configMap", name), payload)

    def _setup_secret(self, name: str, source: Mapping[str, Any]) -> Path:
        as_source = {**source, "name": source.get("secretName")}
        obj = self._get(SECRETS.key, str(source.get("secretName") or ""))
        payload = source_payload(name, "secret", as_source, obj, _mode(source.get("defaultMode"), DEFAULT_MODE))
        return self._write(self._plugin_dir("secret", name), payload)

    def _setup_downwardAPI(self, name: str, source: Mapping[str, Any]) -> Path:
        payload = downward_payload(name, source.get("items") or [], self.pod, self._allocatable(), _mode(source.get("defaultMode"), DEFAULT_MODE))
        return self._write(self._plugin_dir("downwardAPI", name), payload)

    def _setup_projected(self, name: str, source: Mapping[str, Any]) -> Path:
        mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
        payload: Payload = {}
        tokens = self._tokens.setdefault(name, [])
        token_index = 0
        for part in source.get("sources") or ():
            if part.get("configMap") is not None:
                ref = part["configMap"]
                payload.update(source_payload(name, "configmap", ref, self._get(CONFIG_MAPS.key, str(ref.get("name") or "")), mode))
            elif part.get("secret") is not None:
                ref = part["secret"]
                payload.update(source_payload(name, "secret", ref, self._get(SECRETS.key, str(ref.get("name") or "")), mode))
            elif part.get("downwardAPI") is not None:
                payload.update(downward_payload(name, part["downwardAPI"].get("items") or [], self.pod, self._allocatable(), mode))
            elif part.get("serviceAccountToken") is not None:
                ref = part["serviceAccountToken"]
                if token_index == len(tokens):
                    tokens.append(_Token(str(ref.get("path") or "token"), str(ref.get("audience") or ""),
                                         int(ref.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)))
                token = tokens[token_index]
                token_index += 1
                if token.due(time.time()):
                    self._issue(name, token)
                payload[token.path] = (token.content, mode)
            else:
                kinds = ", ".join(k for k in part) or "empty"
                raise VolumeError(name, f"projected source {kinds} is not supported by the emulator's kubelet")
        return self._write(self._plugin_dir("projected", name), payload)

    def _issue(self, volume: str, token: _Token) -> None:
        if self.tokens is None:
            raise VolumeError(volume, "service account tokens cannot be issued here")
        account = str((self.pod.get("spec") or {}).get("serviceAccountName") or "default")
        body: dict[str, Any] = {
            "spec": {
                "expirationSeconds": token.seconds,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.pod_name, "uid": self.uid},
            }
        }
        if token.audience:
            body["spec"]["audiences"] = [token.audience]
        try:
            answer = self.tokens.token_request(self.namespace, account, body)
        except errors.StatusError as exc:
            raise VolumeError(volume, f'failed to fetch token: {exc}') from None
        token.content = str(answer["status"]["token"]).encode()
        token.issued = time.time()
        token.lifetime = float(answer["spec"].get("expirationSeconds") or token.seconds)

    def _setup_hostPath(self, name: str, source: Mapping[str, Any]) -> Path:
        path = Path(str(source.get("path") or ""))
        kind = str(source.get("type") or "")
        if kind not in HOST_PATH_TYPES:
            raise VolumeError(name, f"hostPath type {kind} is not supported")
        checks = {
            "Directory": (path.is_dir, "is not a directory"),
            "File": (path.is_file, "is not a file"),
            "Socket": (path.is_socket, "is not a socket file"),
            "CharDevice": (path.is_char_device, "is not a character device"),
            "BlockDevice": (path.is_block_device, "is not a block device"),
        }
        if kind == "DirectoryOrCreate" and not path.exists():
            path.mkdir(parents=True, mode=0o755)
        elif kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(0o644)
        elif kind in checks and not checks[kind][0]():
            raise VolumeError(name, f"hostPath type check failed: {path} {checks[kind][1]}")
        return path

    def _setup_persistentVolumeClaim(self, name: str, source: Mapping[str, Any]) -> Path:
        claim_name = str(source.get("claimName") or "")
        claim = self._get(PERSISTENT_VOLUME_CLAIMS.key, claim_name)
        if claim is None:
            raise VolumeError(name, f'persistentvolumeclaim "{claim_name}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        pv = self.store.get(PERSISTENT_VOLUMES.key, "", str(volume_name)) if volume_name else None
        if pv is None or (claim.get("status") or {}).get("phase") != "Bound":
            raise VolumeError(name, f"PVC {self.namespace}/{claim_name} is not bound")
        spec = pv.get("spec") or {}
        where = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
        if not where:
            raise VolumeError(name, f'persistentvolume "{volume_name}" has no hostPath or local path the emulator can mount')
        path = Path(str(where))
        if not path.exists() and spec.get("hostPath") is not None:
            path.mkdir(parents=True, exist_ok=True)  # a hostPath PV's directory, as DirectoryOrCreate
        return path

    def _read_only_source(self, name: str) -> bool:
        for volume in self.spec_volumes:
            if volume.get("name") == name:
                source = volume.get("persistentVolumeClaim") or volume.get("hostPath") or {}
                return bool(isinstance(source, dict) and source.get("readOnly"))
        return False

    def _write(self, directory: Path, payload: Payload) -> Path:
        write_atomically(directory, payload)
        return directory

    def _allocatable(self) -> Mapping[str, Any]:
        node = self.store.get(NODES.key, "", NODE_NAME)
        return ((node or {}).get("status") or {}).get("allocatable") or {}

    # -- token rotation ------------------------------------------------------------------------------

    def _schedule_rotation(self) -> None:
        """Wake up when the first token is due (needs a running loop; without one, `refresh` rotates)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = [t.issued + min(TOKEN_REFRESH_FRACTION * t.lifetime, MAX_TOKEN_AGE) for ts in self._tokens.values() for t in ts]
        if not due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, min(due) - time.time()) + 0.01, self.refresh)
