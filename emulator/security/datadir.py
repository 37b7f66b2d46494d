"""The data directory's private files: credentials, keys and the store, readable by the owner only.

The directory itself is 0700 and every file in it 0600 (`private_dir`, `write_private`, `keep_private`):
a looser one found there is tightened with a warning. Every file name the emulator keeps there is
defined here once, so the server that writes a file and the commands that read it agree without
importing each other.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("emulator.security")

KUBECONFIG_FILE = "kubeconfig"  # the admin kubeconfig `serve` writes when the API needs tokens
ADMIN_TOKEN_FILE = "admin-token"
SIGNING_KEY_FILE = "serviceaccount-signing.key"
API_CERT_FILE = "api.crt"
API_KEY_FILE = "api.key"
# Whether the last start required tokens ("require-auth") or not ("open"): the signing key is made new
# at the first start that requires them after one that did not (emulator/security/tokens.py).
SIGNING_MODE_FILE = "serviceaccount-signing.mode"
# Present while the stored objects may hold what anyone could write: the API was served without
# authentication (first and last such start, JSON). A `--kubelet` start that requires tokens refuses to run
# them until the owner has reviewed them and said so once (`--trust-stored-objects`, which removes it).
SERVED_OPEN_FILE = "served-without-auth"


def private_file(path: Path, make: Callable[[], str]) -> str:
    """The content of `path`, created with `make()` first if it does not exist (mode 0600, atomically).

    A file that others may read is tightened to 0600 with a warning: it holds a credential.
    An empty file (truncated by a full disk, or by hand) counts as missing and is made again, with a
    warning: it holds no credential, and using '' would break start-up or write a useless kubeconfig.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = None
    if text:
        keep_private(path)
        return text
    if text is not None:
        log.warning("%s was empty: made a new one", path)
        # Out of the way, so that the no-overwrite link below can put the new one in its place.
        path.unlink(missing_ok=True)
    text = make()
    write_private(path, text + "\n", replace=False)
    # Two emulators starting at once: whoever linked first wins, and both use that.
    return path.read_text().strip()


def keep_private(path: Path, private: int = 0o600) -> None:
    """Tighten an existing file (0600) or directory (0700) that others may read or write, with a warning."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o): changed to %04o", path, mode, private)
        os.chmod(path, private)


def private_dir(path: Path) -> None:
    """Make `path` a directory only its owner may use (0700), or tighten an existing one with a warning.

    Missing parents are made with the usual mode (`~/.local/share` is not ours to close). A shared
    directory with the sticky bit (`/tmp`) is left as it is, with a warning: closing it would lock
    everybody else out; the files the emulator keeps in it are 0600 all the same.
    """
    try:
        path.mkdir(mode=0o700, parents=True)  # the umask can only take bits away
        return
    except FileExistsError:
        pass
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a directory")
    if info.st_mode & stat.S_ISVTX:
        if info.st_mode & 0o077:
            log.warning("%s is a shared directory (mode %o): left as it is; give the emulator a directory of its own", path, info.st_mode & 0o7777)
        return
    keep_private(path, 0o700)


def private_db_file(path: Path) -> None:
    """Have the database `path` (and the journal, WAL and shared-memory files SQLite keeps beside it)
    exist 0600 before SQLite opens it: SQLite makes a new database 0644, and its -wal, -shm and
    -journal files with the mode of the database. Existing looser ones are tightened with a warning."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # an empty file is an empty database
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        try:
            keep_private(path.with_name(name))
        except FileNotFoundError:
            pass


def write_private(path: Path, text: str, replace: bool = True) -> None:
    """Write `text` to `path` readable by the owner only, never leaving a partial file behind.

    `replace=False` keeps an existing file (the write is a no-op then). The directory is made (0700)
    if missing, and synced after the rename, so that a write that returned survives a crash.
    """
    private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # fails if the file exists: never overwrite a key in use
            except FileExistsError:
                pass
        _sync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def _sync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened, as on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def recorded(data_dir: Path, name: str) -> str | None:
    """The text of the data directory's file `name` (stripped), None when it is missing or empty."""
    try:
        return (data_dir / name).read_text().strip() or None
    except FileNotFoundError:
        return None


def mark_served_open(data_dir: Path, when: str, api: str) -> None:
    """Record that the API is served without authentication from `when` on (the first such start is kept)."""
    path = data_dir / SERVED_OPEN_FILE
    first = (served_open(data_dir) or {}).get("first") or when
    write_private(path, json.dumps({"first": first, "last": when, "api": api}) + "\n")


def served_open(data_dir: Path) -> dict[str, str] | None:
    """The record `mark_served_open` keeps (`first`, `last`, `api`), or None when the directory has none.
    A record that cannot be read still counts: {} (the mark is what matters, not its dates)."""
    path = data_dir / SERVED_OPEN_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return {k: str(v) for k, v in record.items()} if isinstance(record, dict) else {}


def clear_served_open(data_dir: Path) -> None:
    """The owner reviewed the stored objects (`--trust-stored-objects`): remove the mark, durably."""
    path = data_dir / SERVED_OPEN_FILE
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _sync_dir(data_dir)
