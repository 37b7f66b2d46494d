"""A container's termination message, as the kubelet makes it (`state.terminated.message`).

Each container instance with a `terminationMessagePath` (the API server defaults it to
`/dev/termination-log`) gets a fresh empty file of the pod's, `<pod dir>/containers/<name>/termination-log`,
mounted read-write at that path by the sandbox (emulator/kubelet/sandbox.py; without the sandbox its
host path is in `$EMULATOR_MOUNT_DEV_TERMINATION_LOG`, as for every mount). When the instance exits:

- the message is the file's last 4096 bytes (the kubelet's MaxContainerTerminationMessageLength, read
  with `tail.ReadAtMost`), whatever the exit code;
- under `terminationMessagePolicy: FallbackToLogsOnError`, a failed instance (exit code not 0) whose file
  is empty or missing gets its last output instead (logs.last_output: 80 lines, 2048 bytes);
- each message of a pod is then cut to its first 12 KiB / (containers + init containers) bytes, as the
  kubelet's status manager does (MaxPodTerminationMessageLogLength), so that a pod's status stays small.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

MAX_MESSAGE = 4 * 1024  # MaxContainerTerminationMessageLength: the file's last bytes kept
MAX_POD_MESSAGES = 12 * 1024  # MaxPodTerminationMessageLogLength: all of a pod's messages together
log = logging.getLogger(__name__)

FILE_NAME = "termination-log"
VOLUME = "terminationMessagePath"  # its Mount's volume name: no volume of a pod's can have it (not a DNS label)


def path_of(pod_dir: Path, container: str) -> Path:
    """Where a container's termination message file lives on the host."""
    return pod_dir / "containers" / container / FILE_NAME


def fresh(path: Path) -> bool:
    """An empty file for a new instance (what an earlier one wrote was read when it exited), made anew:
    whatever an earlier instance left there instead (a FIFO, a directory, a symlink: it runs as the
    emulator's user and can reach the pod's directory) is removed, never opened, so that nothing blocks
    or truncates what is not ours. False, and logged, when it cannot be made: the container then starts
    without it (the launcher leaves out an optional mount whose source is not there)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        log.warning("termination message file %s not made: %s", path, exc)
        return False
    os.close(fd)
    return True


def read(path: Path) -> str | None:
    """The file's last MAX_MESSAGE bytes, None when there is no file (then the logs may stand in).
    Bytes that are not UTF-8 become U+FFFD, as the API server's JSON encoding makes them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, MAX_MESSAGE, max(0, size - MAX_MESSAGE))
    except OSError:  # not a file any more (the container put a directory there)
        return None
    finally:
        os.close(fd)
    return data.decode(errors="replace")


def per_container_limit(spec: dict[str, Any]) -> int:
    """How many bytes each termination message of a pod may keep."""
    containers = len(spec.get("containers") or ()) + len(spec.get("initContainers") or ())
    return MAX_POD_MESSAGES // containers if containers else MAX_POD_MESSAGES


def cut(message: str, limit: int) -> str:
    """`message`'s first `limit` bytes (a character cut in two is dropped, not mangled)."""
    encoded = message.encode()
    if len(encoded) <= limit:
        return message
    return encoded[:limit].decode(errors="ignore")
