"""`ContainerContext`: what every spawner (process.py, the sandbox, exec sessions) needs to know about one
container of a pod, computed once by the kubelet when it starts the container."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ContainerContext:
    namespace: str
    pod: str
    uid: str
    container: str
    pod_ip: str
    env: dict[str, str]  # the container's whole environment, as the kubelet gives it
    working_dir: str | None
    pod_dir: Path  # <data-dir or temp>/pods/<uid>/: volumes, logs, launcher files live under it
    mounts: tuple[Any, ...] = ()  # emulator/kubelet/volumes.py's Mount; () until volumes land
    shell: str = ""  # what `sh` runs as (images.container_shell: bash for busybox's ash); "": as is

    def as_run(self, argv: list[str]) -> list[str]:
        """argv with `sh` replaced by the container's shell, when it has one. A shell alone (an interactive
        one: `kubectl run -it`, `kubectl exec -it -- sh`) reads no rc file and keeps no history, as
        busybox's does not: your ~/.bashrc and ~/.bash_history stay yours."""
        if self.shell and argv and argv[0] in ("sh", "/bin/sh"):
            if len(argv) == 1:
                return [self.shell, "--norc", "--noprofile", "+o", "history"]
            return [self.shell, *argv[1:]]
        return argv
