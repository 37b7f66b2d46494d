"""Container logs as the kubelet keeps them: files in the CRI log format, rotated by size and count, and
read back with `kubectl logs`' options (tail, since, timestamps, limitBytes, follow).

Layout (the kubelet's `/var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log`, under the pod's
directory): `log_path(pod_dir, container, restart_count)` = `<pod_dir>/logs/<container>/<n>.log`; rotated
files beside it are `<n>.log.<YYYYmmdd-HHMMSS>`, all but the newest gzip'd (`.gz`), as the kubelet's
container log manager leaves them. `--previous` reads instance `restart_count - 1`.

Each record is one line, as containerd writes it:

    2026-12-02T17:05:42.123456789Z stdout F the line's content

`F` ends a line; a line longer than containerd's 16 KiB buffer is cut into `P` (partial) records of 16 KiB
and a final `F`. Lines read in one chunk from a pipe share one timestamp: the writer formats a whole
chunk with a couple of joins and one `os.write`, so a container writing 50,000 lines a second costs the
event loop a few milliseconds a second (docs/pods.md, "Logs and metrics", has the measurement).

The reader is an async iterator of the bytes `kubectl logs` prints. With `follow` it keeps reading as the
file grows, reopens the file when it is rotated, and ends once `is_running()` says the container instance
is gone and the file has been read to its end.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_LINE = 16 * 1024  # containerd's max_container_log_line_size: longer lines become P records
ROTATED_STAMP = "%Y%m%d-%H%M%S"  # the kubelet's rotated-file suffix (Go: 20060102-150405)
GZIP_SUFFIX = ".gz"
STREAMS = ("stdout", "stderr")
FOLLOW_POLL_SECONDS = 0.1
READ_BLOCK = 64 * 1024

_NEWLINE = b"\n"
_compressor: ThreadPoolExecutor | None = None


def log_path(pod_dir: Path, container: str, restart_count: int) -> Path:
    """Where the log of one container instance (its `restart_count`) lives."""
    return pod_dir / "logs" / container / f"{restart_count}.log"


# -- timestamps ---------------------------------------------------------------------------------------

_second = -1
_second_text = b""


def cri_timestamp(ns: int) -> bytes:
    """Go's RFC3339Nano in UTC, as containerd stamps records: trailing zeros of the fraction dropped."""
    global _second, _second_text
    second, fraction = divmod(ns, 1_000_000_000)
    if second != _second:
        _second, _second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
    if not fraction:
        return _second_text + b"Z"
    return b"%s.%sZ" % (_second_text, (b"%09d" % fraction).rstrip(b"0"))


def fixed_timestamp(stamp: bytes) -> bytes:
    """A record's timestamp as the kubelet prints it with `--timestamps`: nine fraction digits
    (Go: 2006-01-02T15:04:05.000000000Z07:00). Comparable as bytes when both are UTC."""
    if stamp.endswith(b"Z"):
        head, dot, fraction = stamp[:-1].partition(b".")
        if len(fraction) == 9:
            return stamp
        return b"%s.%sZ" % (head, fraction[:9].ljust(9, b"0"))
    parsed = parse_timestamp(stamp)  # another zone: rewrite in UTC
    return fixed_timestamp(cri_timestamp(parsed)) if parsed is not None else stamp


def parse_timestamp(stamp: bytes) -> int | None:
    """Nanoseconds since the epoch, for any RFC 3339 time; None when unreadable."""
    text = stamp.decode("ascii", "replace")
    main, dot, rest = text.partition(".")
    digits = ""
    if dot:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        digits, text = rest[:i], main + rest[i:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + int(digits[:9].ljust(9, "0") or 0)


# -- writing ------------------------------------------------------------------------------------------


class LogWriter:
    """The log of one container instance. `write` takes what a pipe gave (any size, lines or not) and
    appends whole records; an unfinished line waits for its end (or for 16 KiB) as in containerd, and
    `close` writes what is left as a last `F` record. The file is rotated once it reaches `max_bytes`
    (0: never), keeping `max_files` files in all (the current one included); rotated files but the newest
    are compressed in a worker thread, off the event loop."""

    def __init__(self, path: Path, max_bytes: int, max_files: int, *, compress: bool = True) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        self.compress = compress
        path.parent.mkdir(parents=True, exist_ok=True)
        forget_older_instances(path)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size  # a restarted emulator appends to an adopted instance's log
        self._pending = {stream: b"" for stream in STREAMS}
        self.closed = False

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def write(self, stream: str, data: bytes) -> None:
        if self.closed or not data:
            return
        pending = self._pending[stream]
        if pending:
            data = pending + data
        end = data.rfind(_NEWLINE)
        if end < 0:
            lines: list[bytes] = []
            rest = data
        else:
            lines = data[:end].split(_NEWLINE)
            rest = data[end + 1:]
        partial: list[bytes] = []
        while len(rest) > MAX_LINE:  # containerd cuts an unfinished line once its buffer is full
            partial.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._pending[stream] = rest
        if lines or partial:
            self._append(self._records(stream, lines, partial, data, end))

    def _records(self, stream: str, lines: list[bytes], partial: list[bytes], data: bytes, end: int) -> bytes:
        stamp = cri_timestamp(time.time_ns())
        full = b"%s %s F " % (stamp, stream.encode())
        out = b""
        if lines:
            if end > MAX_LINE and max(map(len, lines)) > MAX_LINE:
                out = b"".join(self._long_line(stamp, stream, line) for line in lines)
            else:
                out = full + (_NEWLINE + full).join(lines) + _NEWLINE
        if partial:
            head = b"%s %s P " % (stamp, stream.encode())
            out += head + (_NEWLINE + head).join(partial) + _NEWLINE
        return out

    @staticmethod
    def _long_line(stamp: bytes, stream: str, line: bytes) -> bytes:
        parts = []
        while len(line) > MAX_LINE:
            parts.append(b"%s %s P %s\n" % (stamp, stream.encode(), line[:MAX_LINE]))
            line = line[MAX_LINE:]
        parts.append(b"%s %s F %s\n" % (stamp, stream.encode(), line))
        return b"".join(parts)

    def _append(self, out: bytes) -> None:
        view = memoryview(out)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(out)
        if self.max_bytes and self._size >= self.max_bytes:
            self.rotate()

    def close(self) -> None:
        """Write what is left of unfinished lines (as `F`, as containerd does at the end of a stream)."""
        if self.closed:
            return
        left = b"".join(
            b"%s %s F %s\n" % (cri_timestamp(time.time_ns()), s.encode(), self._pending[s]) for s in STREAMS if self._pending[s]
        )
        self._pending = {stream: b"" for stream in STREAMS}
        if left:
            self.max_bytes, max_bytes = 0, self.max_bytes  # no rotation of the last words
            self._append(left)
            self.max_bytes = max_bytes
        os.close(self._fd)
        self.closed = True

    # -- rotation (the kubelet's container log manager: rotateLatestLog, removeExcessLogs, compressLog) --

    def rotate(self) -> None:
        os.close(self._fd)
        stamp = time.strftime(ROTATED_STAMP, time.gmtime())
        # rotated again within the second (the kubelet rotates at most every 10 s, we at once): a
        # sequence number after the stamp keeps the names unique and in order
        same = [_rotation_order(self.path.name, p.name.removesuffix(GZIP_SUFFIX)) for p in rotated_files(self.path)]
        taken = [n for s, n in same if s == stamp]
        name = f"{self.path.name}.{stamp}" if not taken else f"{self.path.name}.{stamp}.{max(taken) + 1}"
        os.rename(self.path, self.path.with_name(name))
        self._fd = self._open()
        self._size = 0
        older = rotated_files(self.path)
        keep = self.max_files - 1
        for stale in older[: max(0, len(older) - keep)]:
            for file in (stale, stale.with_name(stale.name + GZIP_SUFFIX)):
                file.unlink(missing_ok=True)
        if self.compress:
            for file in older[max(0, len(older) - keep):-1]:
                if not file.name.endswith(GZIP_SUFFIX):
                    _compress_later(file)


def forget_older_instances(path: Path) -> None:
    """Delete the logs of instances before the previous one (`<n>.log` keeps `<n-1>.log` for --previous):
    the kubelet's container garbage collection keeps one dead container, and its log, per container."""
    current = path.name.removesuffix(".log")
    if not current.isdigit():
        return
    for other in path.parent.iterdir():
        instance = other.name.split(".", 1)[0]
        if instance.isdigit() and int(instance) < int(current) - 1 and other.name.startswith(f"{instance}.log"):
            other.unlink(missing_ok=True)


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of a log, oldest first (compressed or not, without their `.tmp` leftovers)."""
    found = [p for p in path.parent.glob(f"{path.name}.*") if not p.name.endswith(".tmp")]
    by_stem: dict[str, Path] = {}
    for p in found:
        stem = p.name.removesuffix(GZIP_SUFFIX)
        if stem not in by_stem or not p.name.endswith(GZIP_SUFFIX):
            by_stem[stem] = p  # while being compressed, both exist: the plain one counts
    return [by_stem[s] for s in sorted(by_stem, key=lambda s: _rotation_order(path.name, s))]


def _rotation_order(base: str, stem: str) -> tuple[str, int]:
    stamp, _, n = stem[len(base) + 1:].partition(".")
    return stamp, int(n) if n.isdigit() else 0


def _compress_later(path: Path) -> None:
    global _compressor
    if _compressor is None:
        _compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-compress")
    _compressor.submit(compress_rotated, path)


def compression_settled() -> None:
    """Wait for the compressions asked so far (tests, and an orderly stop)."""
    if _compressor is not None:
        _compressor.submit(lambda: None).result()


def compress_rotated(path: Path) -> None:
    """`x` → `x.gz` through `x.gz.tmp`, so a half-written archive is never taken for a log."""
    tmp = path.with_name(path.name + GZIP_SUFFIX + ".tmp")
    try:
        with open(path, "rb") as source, gzip.open(tmp, "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target, READ_BLOCK)
        compressed = path.with_name(path.name + GZIP_SUFFIX)
        os.replace(tmp, compressed)
        if not path.exists():  # removed as excess while being compressed: do not bring it back
            compressed.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    except FileNotFoundError:  # removed as excess meanwhile
        tmp.unlink(missing_ok=True)


# -- reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogOptions:
    """PodLogOptions as the kubelet applies them (`since_ns`: sinceSeconds or sinceTime, resolved)."""

    tail: int | None = None
    since_ns: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False
    from_offset: int | None = None  # start at this byte of the file (attach: where it ended when attached)


def tail_offset(fd: int, lines: int) -> int:
    """Where the last `lines` records of the file start (the kubelet's FindTailLineStartIndex)."""
    size = os.fstat(fd).st_size
    if lines <= 0:
        return size
    position, found = size, 0
    skip_last = True  # the file's final newline ends the last record; it starts no new one
    while position > 0:
        start = max(0, position - READ_BLOCK)
        block = os.pread(fd, position - start, start)
        index = len(block)
        if skip_last and block.endswith(_NEWLINE):
            index -= 1
        skip_last = False
        while True:
            index = block.rfind(_NEWLINE, 0, index)
            if index < 0:
                break
            found += 1
            if found == lines:
                return start + index + 1
        position = start
    return 0


class _Renderer:
    """Records → what `kubectl logs` prints, with since, timestamps and limitBytes applied."""

    def __init__(self, options: LogOptions) -> None:
        self.timestamps = options.timestamps
        self.since = fixed_timestamp(cri_timestamp(options.since_ns)) if options.since_ns is not None else None
        self.left = options.limit_bytes
        self.done = self.left is not None and self.left <= 0

    def render(self, records: list[bytes]) -> bytes:
        out: list[bytes] = []
        for record in records:
            parts = record.split(b" ", 3)
            if len(parts) < 3:
                continue  # not a CRI record (a torn write or a stray line): the kubelet skips it too
            stamp, tag = parts[0], parts[2]
            content = parts[3] if len(parts) == 4 else b""
            if self.since is not None or self.timestamps:
                fixed = fixed_timestamp(stamp)
                if self.since is not None and fixed < self.since:
                    continue
                if self.timestamps:
                    out.append(fixed + b" ")
            out.append(content)
            if tag != b"P":
                out.append(_NEWLINE)
        chunk = b"".join(out)
        if self.left is not None:
            if len(chunk) >= self.left:
                chunk, self.done = chunk[: self.left], True
            self.left -= len(chunk)
        return chunk


async def read_log(
    path: Path,
    options: LogOptions,
    is_running: Callable[[], bool] = lambda: False,
    poll: float = FOLLOW_POLL_SECONDS,
) -> AsyncGenerator[bytes, None]:
    """The output of `kubectl logs` for one container instance, in chunks. Without `follow` it ends at
    the end of the file. With `follow` it waits for more while `is_running()` (the instance is alive) and
    across rotations; once the instance is gone it reads what is left and ends."""
    renderer = _Renderer(options)
    if renderer.done:
        return
    fd = await _open_when_there(path, options.follow, is_running, poll)
    if fd is None:
        return
    successor: int | None = None  # the file that replaced ours, once ours is read to its end
    try:
        if options.from_offset is not None:
            offset = min(options.from_offset, os.fstat(fd).st_size)
        else:
            offset = tail_offset(fd, options.tail) if options.tail is not None else 0
        carry = b""
        while True:
            block = os.pread(fd, READ_BLOCK, offset)
            if block:
                offset += len(block)
                data = carry + block
                end = data.rfind(_NEWLINE)
                if end < 0:
                    carry = data
                    continue
                carry = data[end + 1:]
                chunk = renderer.render(data[:end].split(_NEWLINE))
                if chunk:
                    yield chunk
                else:
                    await asyncio.sleep(0)  # a long stretch filtered out by since: let others run
                if renderer.done:
                    return
                continue
            if not options.follow:
                return
            if successor is not None:
                os.close(fd)
                fd, offset, carry, successor = successor, 0, b"", None
                continue
            # the writer closes a file before renaming it: once another file is at `path`, ours is
            # complete, and one more read to its end loses nothing written just before the rotation
            successor = _replaced(path, fd)
            if successor is not None:
                continue
            if not is_running():
                successor = _replaced(path, fd)
                if successor is None and os.fstat(fd).st_size <= offset:
                    return
                continue  # the last words arrived between the read and the check
            await asyncio.sleep(poll)
    finally:
        os.close(fd)
        if successor is not None:
            os.close(successor)


async def _open_when_there(path: Path, follow: bool, is_running: Callable[[], bool], poll: float) -> int | None:
    while True:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not follow or not is_running():
                return None
        await asyncio.sleep(poll)


def _replaced(path: Path, fd: int) -> int | None:
    """A new file at `path` (the writer rotated): opened; None while `fd` is still the current file."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return None
    mine = os.fstat(fd)
    if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
        return None
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # the kubelet's terminationMessagePolicy FallbackToLogsOnError tail


def last_output(path: Path, lines: int = FALLBACK_LINES, limit: int = FALLBACK_BYTES) -> str:
    """The last `lines` lines of a container instance's output, at most its last `limit` bytes: what the
    kubelet puts in `terminated.message` under `terminationMessagePolicy: FallbackToLogsOnError`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        offset = tail_offset(fd, lines)
        data = os.pread(fd, os.fstat(fd).st_size - offset, offset)
    finally:
        os.close(fd)
    records = [r for r in data.split(_NEWLINE) if r]
    return _Renderer(LogOptions()).render(records)[-limit:].decode(errors="replace")


def read_all(path: Path) -> bytes:
    """A whole log file, compressed or not (for tests and tools; `kubectl logs` reads the current file)."""
    if path.name.endswith(GZIP_SUFFIX):
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()
