"""The data directory over real starts: the directory is the owner's only (0700) and so is every file
in it (0600) — the store and SQLite's -wal/-shm files included — and looser ones left from before are
tightened, with a warning."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import httpx

from tests.conftest import start_emulator
from tests.integration.test_auth import admin

NAMESPACES = "/api/v1/namespaces"


def modes(data: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}


def test_a_fresh_data_dir_and_every_file_in_it_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        with admin(emu) as api:
            assert api.post(NAMESPACES, json={"metadata": {"name": "written"}}).status_code == 201
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        found = modes(data)  # while it runs: the WAL and shared-memory files exist
        expected = {
            "store.db", "store.db-wal", "store.db-shm", "admin-token", "kubeconfig", "api.key", "api.crt",
            "serviceaccount-signing.key", "serviceaccount-signing.mode",
        }
        assert set(found) == expected
        assert found == dict.fromkeys(expected, 0o600)
    finally:
        emu.stop()
    assert set(modes(data).values()) == {0o600}


def test_credentials_of_an_in_memory_cluster_are_private_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, "--require-auth")
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert set(modes(data)) == {"admin-token", "kubeconfig", "api.key", "api.crt"}
        assert set(modes(data).values()) == {0o600}
    finally:
        emu.stop()


def test_a_looser_data_dir_and_store_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, in_memory=False)
    with emu.client() as api:
        assert api.post(NAMESPACES, json={"metadata": {"name": "kept"}}).status_code == 201
    emu.stop(signal.SIGKILL)  # as after a crash: the -wal and -shm files stay behind
    # as an older version, or a umask of 022, left them
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)
    assert {"store.db", "store.db-wal", "store.db-shm"} <= set(modes(data))

    emu = start_emulator(data, in_memory=False)
    try:
        log = "".join(emu.output)
        assert f"{data} was readable by others (mode 755): changed to 0700" in log
        assert f"{data / 'store.db'} was readable by others (mode 644): changed to 0600" in log
        assert f"{data / 'store.db-wal'} was readable by others (mode 644): changed to 0600" in log
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        with emu.client() as api:
            assert api.get(f"{NAMESPACES}/kept").status_code == 200  # the store was kept, only its mode changed
            assert api.post(NAMESPACES, json={"metadata": {"name": "after"}}).status_code == 201
        assert set(modes(data).values()) == {0o600}
    finally:
        emu.stop()


def test_an_open_start_on_a_fresh_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, in_memory=False)
    try:
        with httpx.Client(base_url=emu.api_url, timeout=10) as api:
            assert api.post(NAMESPACES, json={"metadata": {"name": "written"}}).status_code == 201
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert set(modes(data)) == {
            "store.db", "store.db-wal", "store.db-shm", "serviceaccount-signing.key", "serviceaccount-signing.mode",
            "served-without-auth",  # what is stored may be anyone's: a later --kubelet start asks for a review
        }
        assert set(modes(data).values()) == {0o600}
    finally:
        emu.stop()
