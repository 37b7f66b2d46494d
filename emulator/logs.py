"""Logging set-up for `serve`: one line per record, with a timestamp formatted once per second.

The API logs one line per request at INFO. Formatting the time, and building a LogRecord, per
request cost more than validating the pod being created, so the second's text is cached and the
access lines are written straight to the log stream in the same layout as every other line.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

_second = -1
_second_text = ""


def stamp(when: float) -> str:
    """`2026-11-27 02:58:02,123`, as logging's default format writes it."""
    global _second, _second_text
    second = int(when)
    if second != _second:
        _second, _second_text = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
    return f"{_second_text},{int((when - second) * 1000):03d}"


class LineFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return stamp(record.created)


class AccessLog:
    """Request lines for the API. Without `configure` (embedded use) they go through logging.

    Lines written in one turn of the event loop leave in one write at the end of that turn: under
    load that is one system call for many requests, and a line is never later than its response."""

    def __init__(self, name: str = "emulator.api") -> None:
        self.logger = logging.getLogger(name)
        self.stream: TextIO | None = None
        self._pending: list[str] = []

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def line(self, text: str) -> None:
        if self.stream is None:
            self.logger.info("%s", text)
            return
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write at once
                self._pending.append(f"{stamp(time.time())} INFO {self.logger.name}: {text}\n")
                self.flush()
                return
        self._pending.append(f"{stamp(time.time())} INFO {self.logger.name}: {text}\n")

    def flush(self) -> None:
        if self._pending and self.stream is not None:
            lines, self._pending = self._pending, []
            self.stream.write("".join(lines))


ACCESS = AccessLog()


def configure(level: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    ACCESS.stream = stream
