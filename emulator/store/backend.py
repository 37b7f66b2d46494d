"""Durable backends behind the store: the small interface a distributed store (etcd) could also meet.

The store keeps every object in memory and asks the backend only to persist each transaction and,
at start, to hand back what it persisted. A backend never interprets objects.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

from emulator.security.datadir import private_db_file


class Row(NamedTuple):
    resource: str
    namespace: str
    name: str
    rv: int
    raw: bytes


class Backend(Protocol):
    # True when commit() waits for the disk: the store then calls it off the event loop
    blocking: bool
    def load(self) -> tuple[int, Iterator[Row]]:
        """The last committed resourceVersion and every stored object."""
        ...

    def commit(self, rv: int, puts: Iterable[Row], deletes: Iterable[tuple[str, str, str]]) -> None:
        """Persist one transaction; return only once it survives a crash of this process."""
        ...

    def close(self) -> None: ...


class MemoryBackend:
    """`--in-memory`: nothing survives the process."""

    blocking = False

    def load(self) -> tuple[int, Iterator[Row]]:
        return 0, iter(())

    def commit(self, rv: int, puts: Iterable[Row], deletes: Iterable[tuple[str, str, str]]) -> None:
        return None

    def close(self) -> None:
        return None


INSERT_CHUNK = 512  # rows per INSERT statement (x 5 values: far below SQLite's 32,766 bound variables)


@functools.lru_cache(maxsize=64)
def _insert_rows(count: int) -> str:
    return "INSERT OR REPLACE INTO objects VALUES " + ",".join(["(?,?,?,?,?)"] * count)


class SqliteBackend:
    """SQLite in WAL mode. With `synchronous=FULL` a commit is fsynced before it returns (survives power
    loss); with NORMAL it is in the OS page cache (survives `kill -9`, the case the tests exercise).

    A plain rowid table with a unique index: objects (~1 KB) are too large for WITHOUT ROWID, which
    would spend about a page per row."""

    blocking = True

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        # The store holds every object of the cluster: the directory is made 0700 and the file 0600
        # before SQLite opens it, as SQLite would make it 0644 (and its -wal and -shm files take the
        # database's mode).
        private_db_file(path)
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per store write.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS objects(
                resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                rv INTEGER NOT NULL, data BLOB NOT NULL,
                UNIQUE (resource, namespace, name));
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )

    def load(self) -> tuple[int, Iterator[Row]]:
        row = self._db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        rv = int(row[0]) if row else 0
        cursor = self._db.execute("SELECT resource, namespace, name, rv, data FROM objects")
        return rv, (Row(*r) for r in cursor)

    def commit(self, rv: int, puts: Iterable[Row], deletes: Iterable[tuple[str, str, str]]) -> None:
        db = self._db
        rows = puts if isinstance(puts, list) else list(puts)
        db.execute("BEGIN")
        try:
            # one statement per chunk of rows, not one per row: what each statement run costs (a step, the
            # GIL let go and taken back while the event loop wants it) is paid once per chunk
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start:start + INSERT_CHUNK]
                db.execute(_insert_rows(len(chunk)), [value for row in chunk for value in row])
            if deletes:
                db.executemany("DELETE FROM objects WHERE resource=? AND namespace=? AND name=?", deletes)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (rv,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
