"""The data directory's private files: credentials and keys, readable by the owner only.

Every file name the emulator keeps there is defined here once, so the server that writes a file and
the commands that read it agree without importing each other.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("emulator.security")

KUBECONFIG_FILE = "kubeconfig"  # the admin kubeconfig `serve` writes when the API needs tokens
ADMIN_TOKEN_FILE = "admin-token"
SIGNING_KEY_FILE = "serviceaccount-signing.key"
API_CERT_FILE = "api.crt"
API_KEY_FILE = "api.key"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    text = make()
    write_private(path, text + "\n", replace=False)
    # Two emulators starting at once: whoever linked first wins, and both use that.
    return path.read_text().strip()


def keep_private(path: Path) -> None:
    """Tighten an existing credential file that others may read (or write) to 0600, with a warning."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o): changed to 0600", path, mode)
        os.chmod(path, 0o600)


def write_private(path: Path, text: str, replace: bool = True) -> None:
    """Write `text` to `path` readable by the owner only, never leaving a partial file behind.

    `replace=False` keeps an existing file (the write is a no-op then).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
    finally:
        temp.unlink(missing_ok=True)
