"""The launcher run in front of a container's command: it builds the pod's sandbox, then becomes the command.

    python -S -I .../emulator/kubelet/launch.py SPEC -- CMD [ARG...]

SPEC is a JSON file written by emulator/kubelet/sandbox.py. The launcher, still one process:

1. unshares a user, mount and UTS namespace, mapping the caller's uid and gid to themselves (files keep
   their owners; the command is not root inside, and `execve` leaves it with no capabilities);
2. makes every mount private (nothing leaks back to the host), sets the pod's hostname;
3. bind-mounts the pod's `/etc/hosts` and `/etc/resolv.conf`, then each volume at its mountPath
   (read-only ones remounted read-only); a mountPath that does not exist is made on a tmpfs laid over its
   nearest existing ancestor, whose entries are bind-mounted back in place: nothing is created on the host;
   then the optional mounts (the termination-message file), each left out if it cannot be made;
4. changes to the working directory and `execvpe`s the command, which keeps the launcher's pid, with the
   environment it was given (its LC_CTYPE as given, not what Python sets when it starts under the C locale).

It is started for every container, so it imports nothing but the standard library's `ctypes`, `json` and
`os` (run by path with `-S -I`: no site packages, no emulator package `__init__`). A failure is printed as
one `emulator sandbox: ...` line and exits 127, as a command that cannot start.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
# The flags a remount must keep: in a user namespace the kernel refuses to drop ones the parent set.
LOCKED_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096  # + noatime, nodiratime, relatime
EXIT_CANNOT_START = 127
SPEC_VERSION = 1
# Spec keys (sandbox.py writes them)
KEY_HOSTNAME = "hostname"
KEY_FILES = "files"  # [[source, target], ...]: /etc/hosts and /etc/resolv.conf, always read-only
KEY_MOUNTS = "mounts"  # [[source, target, read_only], ...] in mount order
KEY_OPTIONAL = "optionalMounts"  # [[source, target], ...] after them, writable; one that fails is left out
KEY_WORKDIR = "workingDir"
KEY_SCRATCH = "scratch"  # a directory of the pod's where the launcher may make its tmpfs mount points
# The container's LC_CTYPE (null: none), put back before the exec: Python sets it when it starts under the C
# locale (PEP 538), over the container's own `C` or `POSIX` too
KEY_LC_CTYPE = "lcCtype"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


class SandboxError(Exception):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None, target.encode(), fstype.encode() if fstype else None, flags,
            data.encode() if data else None,
        ),
        f"mount {source or ''} on {target}",
    )


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def enter_namespaces(hostname: str) -> None:
    """A user namespace owning a mount and a UTS namespace; the caller's ids mapped to themselves. Root
    needs no user namespace for its mounts, and keeps what a user namespace would take away in the
    host's network namespace: binding ports below 1024 (nginx's 80), as a container may on a node."""
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    else:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS), "unshare")
        _write("/proc/self/setgroups", "deny")  # required before an unprivileged gid_map
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if hostname:
        name = hostname.encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")


def bind(source: str, target: str, read_only: bool) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        kept = os.statvfs(target).f_flag & LOCKED_FLAGS
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)


def _existing_ancestor(path: str) -> str:
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


class MountPoints:
    """Makes missing mount points without touching the host: inside a volume already mounted here the
    directory is simply made (as the kubelet does); elsewhere the nearest existing ancestor is shadowed by
    a tmpfs holding its entries (bind-mounted back) plus the new path."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.mounted: list[str] = []  # volume targets mounted so far (writable or not)
        self.shadows: list[str] = []  # directories already replaced by a tmpfs of ours
        self.count = 0

    def ensure(self, target: str, is_dir: bool) -> None:
        if os.path.lexists(target):
            return
        ancestor = _existing_ancestor(os.path.dirname(target))
        if ancestor not in self.shadows and not any(
            ancestor == m or ancestor.startswith(m.rstrip("/") + "/") for m in self.mounted
        ):
            self._shadow(ancestor)
            self.shadows.append(ancestor)
        self._make(target, is_dir)

    @staticmethod
    def _make(target: str, is_dir: bool) -> None:
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))

    def _shadow(self, directory: str) -> None:
        self.count += 1
        stage = os.path.join(self.scratch, f"shadow-{os.getpid()}-{self.count}")
        os.makedirs(stage, exist_ok=True)
        _mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        with os.scandir(directory) as entries:
            for entry in entries:
                original = os.path.join(directory, entry.name)
                copy = os.path.join(stage, entry.name)
                if entry.is_symlink():
                    os.symlink(os.readlink(original), copy)
                elif entry.is_dir(follow_symlinks=False):
                    os.mkdir(copy)
                    _mount(original, copy, None, MS_BIND | MS_REC)
                else:
                    os.close(os.open(copy, os.O_CREAT | os.O_WRONLY, 0o644))
                    _mount(original, copy, None, MS_BIND)
        if directory == "/":
            _pivot(stage)
        else:
            _mount(stage, directory, None, MS_MOVE)


def _pivot(new_root: str) -> None:
    """The shadow of `/` becomes the root (pivot_root); the old root is detached."""
    old = os.path.join(new_root, ".old-root")
    os.mkdir(old)
    syscall = _libc.syscall
    pivot_root = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
    if pivot_root is None:
        raise SandboxError(f"pivot_root: unknown on {os.uname().machine}")
    cwd = os.getcwd()
    _check(syscall(pivot_root, new_root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    try:
        os.chdir(cwd)
    except OSError:
        pass


def build(spec: dict) -> None:  # type: ignore[type-arg,unused-ignore]
    enter_namespaces(spec.get(KEY_HOSTNAME) or "")
    points = MountPoints(spec[KEY_SCRATCH])
    for source, target in spec.get(KEY_FILES) or ():
        if os.path.exists(target):  # a dangling /etc/resolv.conf link is left alone
            bind(source, target, True)
    for source, target, read_only in spec.get(KEY_MOUNTS) or ():
        is_dir = os.path.isdir(source)
        points.ensure(target, is_dir)
        bind(source, target, read_only)
        points.mounted.append(target)
    for source, target in spec.get(KEY_OPTIONAL) or ():
        # the termination-message file: worth a try, never worth a container that cannot start
        try:
            points.ensure(target, False)
            bind(source, target, False)
        except (OSError, SandboxError):
            continue
    workdir = spec.get(KEY_WORKDIR)
    if workdir:
        os.chdir(workdir)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: launch.py SPEC -- CMD [ARG...]", file=sys.stderr)
        return 2
    command = argv[3:]
    try:
        with open(argv[1], "rb") as f:
            spec = json.load(f)
        if spec.get("version") != SPEC_VERSION:
            raise SandboxError(f"spec version {spec.get('version')!r}, expected {SPEC_VERSION}")
        build(spec)
    except (OSError, SandboxError, ValueError, KeyError, TypeError) as exc:
        print(f"emulator sandbox: {exc}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_START
    if KEY_LC_CTYPE in spec:
        if spec[KEY_LC_CTYPE] is None:
            os.environ.pop("LC_CTYPE", None)
        else:
            os.environ["LC_CTYPE"] = str(spec[KEY_LC_CTYPE])
    try:
        os.execvpe(command[0], command, os.environ)
    except OSError as exc:
        # the runtime's wording, as `kubectl describe` shows it for a command that cannot be started
        print(f'emulator sandbox: exec: "{command[0]}": {exc.strerror}', file=sys.stderr, flush=True)
        return EXIT_CANNOT_START
    return EXIT_CANNOT_START  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
