"""A container's termination message (emulator/kubelet/termination.py): the file's last 4 KiB, a fresh
file per instance, and the pod-wide bound, on real files."""

from __future__ import annotations

import os
from pathlib import Path

from emulator.kubelet import termination


def test_the_message_is_the_files_last_4096_bytes(tmp_path: Path) -> None:
    path = termination.path_of(tmp_path, "main")
    termination.fresh(path)
    assert termination.read(path) == ""
    text = "".join(f"{n}\n" for n in range(3000))
    path.write_text(text)
    assert termination.read(path) == text[-4096:]
    path.write_text("Sleep expired\n")
    assert termination.read(path) == "Sleep expired\n"


def test_no_file_is_none_and_bytes_that_are_not_utf8_are_replaced(tmp_path: Path) -> None:
    path = termination.path_of(tmp_path, "main")
    assert termination.read(path) is None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"bad \xff byte")
    assert termination.read(path) == "bad \ufffd byte"
    path.unlink()
    path.mkdir()  # a directory where the file was: no message, no error
    assert termination.read(path) is None


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not for the pod's status")
    path = termination.path_of(tmp_path, "main")
    path.parent.mkdir(parents=True)
    path.symlink_to(secret)
    assert termination.read(path) is None


def test_each_instance_starts_with_an_empty_file_only_its_owner_may_write(tmp_path: Path) -> None:
    path = termination.path_of(tmp_path, "main")
    assert termination.fresh(path)
    path.write_text("the first instance's words")
    assert termination.fresh(path)
    assert path.read_text() == ""
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_what_an_instance_left_in_its_place_is_removed_never_opened(tmp_path: Path) -> None:
    # the container runs as the emulator's user and can reach the file: a FIFO must not block the kubelet,
    # a symlink must not make it truncate another file, a directory must not stop the next start
    path = termination.path_of(tmp_path, "main")
    termination.fresh(path)
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    for leave in (lambda: os.mkfifo(path), lambda: path.symlink_to(precious), lambda: (path.mkdir(), (path / "f").write_text("x"))):
        path.unlink()
        leave()
        assert termination.fresh(path)  # (a FIFO opened for writing would block here for good)
        assert path.is_file() and not path.is_symlink() and path.read_text() == ""
    assert precious.read_text() == "keep me"
    os.mkfifo(tmp_path / "fifo")
    assert termination.read(tmp_path / "fifo") is None  # read at exit: a FIFO neither blocks nor says anything


def test_a_file_that_cannot_be_made_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "containers"
    blocker.write_text("a file where the directory would be")
    assert not termination.fresh(termination.path_of(tmp_path, "main"))


def test_a_pods_messages_share_12_kib() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}
    assert termination.per_container_limit(spec) == 4096
    assert termination.per_container_limit({"containers": [{"name": str(n)} for n in range(5)]}) == 12 * 1024 // 5
    assert termination.per_container_limit({}) == 12 * 1024
    assert termination.cut("x" * 5000, 4096) == "x" * 4096
    assert termination.cut("short", 4096) == "short"
    assert termination.cut("aé", 2) == "a"  # é is two bytes: cut in two, it is dropped
