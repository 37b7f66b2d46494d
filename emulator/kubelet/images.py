"""What runs: a container's own `command`/`args`, or the owner's image map (an image → a local command).

The image map is a YAML file given to `emulator serve --image-map PATH` (docs/pods.md):

    images:
      ghcr.io/acme/web:            # registry, tag and digest are optional: `acme/web`, `web:1.2` match too
        command: [python3, -m, http.server, "8080"]
        args: []
        workingDir: /home/me/src/web
        env: {DEBUG: "1"}

A pod is run when every container (init containers included) has a command; otherwise it stays a
record (with the condition below saying why). A container with `args` only (what `kubectl run
--image=busybox -- sh -c '...'` makes) has one too when its image is a well-known one without an
ENTRYPOINT (`NO_ENTRYPOINT`: busybox, alpine, ubuntu, python..., also as mirrors serve them, such as the
Kubernetes docs' `registry.k8s.io/busybox`): there, as in a container runtime, the args are the whole
command line. An interactive container of such an image (`stdin: true`, what
`kubectl run -it` and `kubectl debug -it` make) with neither runs the image's CMD (`IMAGE_CMD`: busybox's
`sh`, ubuntu's `/bin/bash`, python's `python3`...); without stdin that CMD, a shell or an interpreter, would
only exit at once, so such a container still needs a command. Pods that bring their own `status.podIP` (a
process that already listens there) or that `emulator run` registers (annotation below) are never run.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emulator.kinds.pod import RUNNABLE_CONDITION

__all__ = ["IMAGE_CMD", "NO_COMMAND", "NO_ENTRYPOINT", "RUNNABLE_CONDITION", "args_are_the_command", "image_cmd", "ImageCommand", "ImageMap", "ImageMapError", "image_name", "resolved_command", "unrunnable"]

# the annotation `emulator run` puts on the pods it registers (emulator/cli/run.py; the engine may not import it)
REGISTERED_BY_RUN = "emulator.local/command"
DEFAULT_REGISTRY = "docker.io"
NO_COMMAND = "no command known"  # how the one actionable reason (a Warning event) begins


# Docker Official Images whose ENTRYPOINT is empty: a container's `args` replace their CMD and are the whole
# command line, run here as a local program. (Images whose entrypoint script decides what to run, such as
# node, php or bash, are not here: map them.)
NO_ENTRYPOINT = frozenset({
    "busybox", "alpine", "ubuntu", "debian", "fedora", "centos", "rockylinux", "almalinux", "amazonlinux", "archlinux",
    "python", "pypy", "ruby", "golang", "perl", "rust", "gcc",
})

# Their CMD (what runs without command and args), as the images declare it, where this machine likely has it.
IMAGE_CMD: dict[str, tuple[str, ...]] = {
    "busybox": ("sh",), "alpine": ("/bin/sh",), "ubuntu": ("/bin/bash",), "debian": ("bash",), "fedora": ("/bin/bash",),
    "centos": ("/bin/bash",), "rockylinux": ("/bin/bash",), "almalinux": ("/bin/bash",), "amazonlinux": ("/bin/bash",),
    "archlinux": ("/usr/bin/bash",), "python": ("python3",), "pypy": ("pypy3",), "ruby": ("irb",), "golang": ("bash",),
    "rust": ("bash",), "gcc": ("bash",),
}


# Registries that serve copies of those images under their own names: the Kubernetes docs' examples use
# `registry.k8s.io/busybox` (formerly `k8s.gcr.io/busybox`, `gcr.io/google-containers/busybox`).
MIRRORS = (
    "registry.k8s.io/e2e-test-images/", "registry.k8s.io/", "k8s.gcr.io/e2e-test-images/", "k8s.gcr.io/",
    "gcr.io/google-containers/", "gcr.io/google_containers/", "public.ecr.aws/docker/library/", "mirror.gcr.io/library/",
    "mirror.gcr.io/",
)


def official_name(image: str) -> str:
    """`image_name`, and for a mirror's copy of an image of NO_ENTRYPOINT that image's own name:
    `registry.k8s.io/busybox:1.27.2` → `busybox`."""
    name = image_name(image)
    for mirror in MIRRORS:
        if name.startswith(mirror) and name[len(mirror):] in NO_ENTRYPOINT:
            return name[len(mirror):]
    return name


def image_cmd(container: Mapping[str, Any]) -> tuple[str, ...]:
    """The image's CMD for an interactive container (`stdin: true`) without command and args, else ()."""
    if container.get("command") or container.get("args") or not container.get("stdin"):
        return ()
    return IMAGE_CMD.get(official_name(str(container.get("image") or "")), ())


def args_are_the_command(container: Mapping[str, Any]) -> bool:
    """Whether the container's `args` are its whole command line: no `command`, args given, and an image
    without ENTRYPOINT (`NO_ENTRYPOINT`, or a mirror's copy of one)."""
    return not container.get("command") and bool(container.get("args")) and official_name(str(container.get("image") or "")) in NO_ENTRYPOINT


class ImageMapError(ValueError):
    """The image map file cannot be used; the message says where and what to write instead."""


@dataclass(frozen=True)
class ImageCommand:
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def image_name(image: str) -> str:
    """An image reference without tag or digest, its default registry (`docker.io`) and `library/` taken
    off: `docker.io/library/nginx:1.27` → `nginx`, `ghcr.io/acme/web@sha256:…` → `ghcr.io/acme/web`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1]) + last[-1].index(":")]
    for prefix in (f"{DEFAULT_REGISTRY}/library/", f"{DEFAULT_REGISTRY}/", "index.docker.io/library/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name


def _candidates(image: str) -> list[str]:
    """Keys that may map `image`, most specific first: as written, without tag, without registry."""
    full = image_name(image)
    out = [image, full]
    first, _, rest = full.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        out.append(rest)  # a registry host: `ghcr.io/acme/web` is also `acme/web`
    return out


@dataclass(frozen=True)
class ImageMap:
    entries: dict[str, ImageCommand] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> ImageMap:
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ImageMapError(f"cannot read the image map {path}: {exc}") from exc
        return cls.parse(document, str(path), base=Path(path).resolve().parent)

    @classmethod
    def parse(cls, document: Any, where: str = "image map", base: Path | None = None) -> ImageMap:
        """`base`: what a relative workingDir is relative to (the map file's directory, as compose files do)."""
        if document is None:
            return cls()
        images = document.get("images") if isinstance(document, Mapping) else None
        if not isinstance(images, Mapping):
            raise ImageMapError(f"{where}: expected a mapping `images:` of image name → {{command, args, workingDir, env}}")
        entries: dict[str, ImageCommand] = {}
        for image, entry in images.items():
            at = f"{where}: images[{image!r}]"
            if not isinstance(entry, Mapping):
                raise ImageMapError(f"{at}: expected a mapping with command, args, workingDir or env")
            unknown = set(entry) - {"command", "args", "workingDir", "env"}
            if unknown:
                raise ImageMapError(f"{at}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; use command, args, workingDir, env")
            lists = {}
            for key in ("command", "args"):
                value = entry.get(key) or []
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
                    raise ImageMapError(f"{at}.{key}: expected a list of strings")
                lists[key] = tuple(str(v) for v in value)
            if not lists["command"] and not lists["args"]:
                raise ImageMapError(f"{at}: give a command (and/or args)")
            env = entry.get("env") or {}
            if isinstance(env, list):  # the pod spec's form: [{name, value}]
                env = {e.get("name"): e.get("value", "") for e in env if isinstance(e, Mapping)}
            if not isinstance(env, Mapping):
                raise ImageMapError(f"{at}.env: expected a mapping NAME: value")
            working_dir = entry.get("workingDir")
            if working_dir and base is not None and not os.path.isabs(str(working_dir)):
                working_dir = os.path.normpath(base / str(working_dir))
            entries[image_name(str(image))] = ImageCommand(
                lists["command"], lists["args"], str(working_dir) if working_dir else None,
                {str(k): "" if v is None else str(v) for k, v in env.items()},
            )
        return cls(entries)

    def lookup(self, image: str | None) -> ImageCommand | None:
        if not image:
            return None
        for key in _candidates(image):
            found = self.entries.get(key)
            if found is not None:
                return found
        return None


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def unrunnable(pod: Mapping[str, Any], images: ImageMap) -> str | None:
    """Why the kubelet would not run `pod` (a message saying what to do), None when it runs it. Asked
    once, when the pod is created (its `status.podIP`, if any, is then the client's)."""
    meta = pod.get("metadata") or {}
    if REGISTERED_BY_RUN in (meta.get("annotations") or {}):
        return "registered by `emulator run`, which runs its process itself"
    if (pod.get("status") or {}).get("podIP"):
        return "the pod brings its own status.podIP: a process that is already running there"
    if (pod.get("spec") or {}).get("hostNetwork"):
        return "hostNetwork pods are not run by the emulator's kubelet"
    missing = [
        c for c in _containers(pod)
        if not c.get("command") and images.lookup(c.get("image")) is None and not args_are_the_command(c) and not image_cmd(c)
    ]
    if missing:
        names = ", ".join(f"{c.get('name')} (image {c.get('image') or 'none'})" for c in missing)
        return (
            f"{NO_COMMAND} for container(s) {names}: give the container a `command`, or map the image "
            "to a local command in the file given to `emulator serve --image-map` (docs/pods.md)"
        )
    return None


def resolved_command(container: Mapping[str, Any], images: ImageMap) -> tuple[list[str], list[str], str | None, dict[str, str]]:
    """(command, args, workingDir, extra env) as the container will run: the spec's own fields win over the
    image map's (as a container's command/args override the image's entrypoint and cmd)."""
    mapped = images.lookup(container.get("image")) or ImageCommand(image_cmd(container))
    command = list(container.get("command") or mapped.command)
    if container.get("args") is not None:
        args = [str(a) for a in container["args"]]
    elif container.get("command"):
        args = []  # a command given without args drops the image's cmd, as in Kubernetes
    else:
        args = list(mapped.args)
    return command, args, container.get("workingDir") or mapped.working_dir, dict(mapped.env)


# Images whose `sh` is busybox's ash, which knows `[[ ]]`, `echo -e` and `echo -n` as bash does: their `sh` runs
# as bash where there is one (Debian's and Ubuntu's `sh`, dash, knows none of them; the Kubernetes docs'
# busybox examples use them).
ASH_IMAGES = frozenset({"busybox", "alpine"})


def container_shell(container: Mapping[str, Any], images: ImageMap) -> str:
    """What `sh` (or `/bin/sh`) runs as in this container, for its command, exec sessions, probes and hooks
    alike (ContainerContext.shell): this machine's bash, by its absolute path, for an image of ASH_IMAGES
    that the image map does not map; "" (this machine's `sh`) otherwise."""
    if official_name(str(container.get("image") or "")) not in ASH_IMAGES or images.lookup(container.get("image")):
        return ""
    return _bash() or ""


@functools.cache
def _bash() -> str | None:
    return shutil.which("bash")
