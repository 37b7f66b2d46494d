"""A pod's own "every address" and "localhost", while its containers share this machine's network.

Pods here are processes on the host's network; a pod's IP is a loopback address (127.244.x.y) its
containers are meant to listen on. Real servers listen on every address (`0.0.0.0`, `[::]`) or on
`localhost`, and a second replica of one then fails with "address already in use": the first holds the
port for every pod. So each container's processes load a small library (podnet.c, LD_PRELOAD) that
moves such a listening socket to the pod's IP, and sends a call to `localhost` to the pod's IP when the
pod listens there (podnet.c says exactly what it changes). What it gives, as in a cluster:

- replicas of one server on one port, each on its own pod IP; nothing of a pod listens beyond loopback;
- `localhost:P` inside a pod reaches the pod's containers (a sidecar, an exec probe's `curl localhost`),
  and still reaches this machine's own 127.0.0.1:P when the pod has nothing there.

The library is built once per machine with its C compiler (`cc`, or `$CC`) into the user's cache
directory (`$XDG_CACHE_HOME/k8s-emulator`, used when it is the user's and written by nobody else; else,
or when it cannot be made, a private temporary directory), and checked by loading it into an empty
Python. Without a compiler, off Linux, or with `EMULATOR_PODNET=off`, containers
get none: pods share `0.0.0.0` and `localhost` (the AddressInUse event says what to do); a container
whose own environment says `EMULATOR_PODNET=off` gets none either (it means this machine's addresses,
as a hostNetwork pod does). The Dockerfile ships a library built in the image
(`EMULATOR_PODNET_LIBRARY`). Go programs (they make their system calls themselves) and statically
linked ones do not go through it. hostNetwork pods get none, and ports declared with a `hostPort` are
left on the addresses asked for.

A container sees the library in its environment: `LD_PRELOAD`, `EMULATOR_POD_IP` and, with hostPorts,
`EMULATOR_KEEP_PORTS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

SOURCE = Path(__file__).with_name("podnet.c")
SWITCH = "EMULATOR_PODNET"  # "off": containers get no library
LIBRARY_VARIABLE = "EMULATOR_PODNET_LIBRARY"  # a library built beforehand (the container image's)
PRELOAD = "LD_PRELOAD"
POD_IP = "EMULATOR_POD_IP"
KEEP_PORTS = "EMULATOR_KEEP_PORTS"
BUILD_TIMEOUT = 60.0
OFF = ("off", "0", "false", "no")


def wanted(env: dict[str, str]) -> bool:
    """Whether a container with this environment gets the library: not when it says `EMULATOR_PODNET=off`
    (it means this machine's every address, as a hostNetwork pod would)."""
    return env.get(SWITCH, "").lower() not in OFF


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "k8s-emulator"


def _private(path: Path) -> bool:
    """Whether `path` is ours and nobody else may write it (a library there runs in every container)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not stat.S_ISLNK(st.st_mode)


def _compiler() -> str | None:
    for name in (os.environ.get("CC") or "", "cc", "gcc", "clang"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def _loads(library: Path) -> str:
    """'' when an empty Python starts with the library preloaded and says nothing; else what it said."""
    try:
        done = subprocess.run(
            [sys.executable, "-S", "-I", "-c", ""], env={PRELOAD: str(library), "PATH": os.defpath},
            stdin=subprocess.DEVNULL, capture_output=True, timeout=BUILD_TIMEOUT, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    said = done.stderr.decode(errors="replace").strip()
    return said or ("" if done.returncode == 0 else f"exit status {done.returncode}")


def build(directory: Path | None = None) -> tuple[Path | None, str]:
    """The library to preload, built when needed, or (None, why there is none). Blocking (a compiler run the
    first time on a machine, ~0.1 s; a check that it loads, ~6 ms): call it from a thread."""
    if not sys.platform.startswith("linux"):
        return None, "not on Linux"
    if os.environ.get(SWITCH, "").lower() in OFF:
        return None, f"{SWITCH}={os.environ[SWITCH]}"
    given = os.environ.get(LIBRARY_VARIABLE)
    if given:
        library = Path(given)
    else:
        source = SOURCE.read_bytes()
        digest = hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]
        directory = directory or cache_dir()
        library = directory / f"podnet-{digest}.so"
        cached = library.is_file() and _private(library) and _private(directory)
        if not cached or _loads(library):
            # not built yet, or built where it does not load (a home shared with a machine of another libc)
            made, why = _compile(library)
            if made is None:
                return None, why
            library = made
    if not _readable_by_all(library):
        with contextlib.suppress(OSError):  # (no room there: the private one, for containers that stay this user)
            public = _public_copy(library)
            if not _loads(public):  # (not where the temporary directory is mounted noexec)
                library = public
    if any(c in str(library) for c in " :"):
        return None, f"its path {library} holds a space or a colon, which LD_PRELOAD cannot"
    why = _loads(library)
    return (library, "") if not why else (None, f"{library} does not load: {why}")


def _readable_by_all(path: Path) -> bool:
    """Whether every user can load `path`: a container that drops to another user (gosu, setpriv, su-exec)
    keeps the library only then. Root's cache, under /root (0700), is not."""
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


def _public_copy(library: Path) -> Path:
    """A copy every user can load, in a directory of ours nobody else may write: in the temporary directory,
    named by user and version so that the next start finds it (a name somebody else took: a new private
    directory instead)."""
    directory = Path(tempfile.gettempdir()) / f"emulator-podnet-{os.getuid()}-{library.stem.removeprefix('podnet-')}"
    with contextlib.suppress(OSError):
        directory.mkdir()
    if not _private(directory) or not directory.is_dir():
        directory = Path(tempfile.mkdtemp(prefix="emulator-podnet-"))
    os.chmod(directory, 0o755)  # (whatever the umask made it)
    copy = directory / library.name
    if not (_private(copy) and copy.read_bytes() == library.read_bytes()):
        fd, scratch = tempfile.mkstemp(prefix=".podnet-", suffix=".so", dir=directory)
        with os.fdopen(fd, "wb") as out:
            out.write(library.read_bytes())
        os.chmod(scratch, 0o755)
        os.replace(scratch, copy)
    return copy


def _compile(library: Path) -> tuple[Path | None, str]:
    compiler = _compiler()
    if compiler is None:
        return None, "no C compiler (cc) to build it: install one (Debian, Ubuntu: apt install gcc libc6-dev) or name it in $CC"
    directory = library.parent
    with contextlib.suppress(OSError):  # (read-only, or no home: a directory of our own instead, below)
        directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    if not _private(directory):  # somebody else's, writable by others, or none: a directory of our own instead
        directory = Path(tempfile.mkdtemp(prefix="emulator-podnet-"))
        library = directory / library.name
    fd, scratch = tempfile.mkstemp(prefix=".podnet-", suffix=".so", dir=directory)
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", scratch, str(SOURCE), "-ldl"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=BUILD_TIMEOUT, check=False,
        )
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            return None, f"{compiler} could not build it: {said[-1] if said else f'exit status {done.returncode}'}"
        os.chmod(scratch, 0o755)
        os.replace(scratch, library)
        return library, ""
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{compiler} could not build it: {exc}"
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def environment(library: Path, pod_ip: str, keep_ports: Iterable[int], env: dict[str, str]) -> dict[str, str]:
    """The variables a container's environment gains (a preload it already asks for stays, after ours)."""
    theirs = env.get(PRELOAD, "")
    added = {PRELOAD: f"{library} {theirs}".strip() if theirs else str(library), POD_IP: pod_ip}
    kept = sorted(set(keep_ports))
    if kept:
        added[KEEP_PORTS] = ",".join(map(str, kept))
    return added
