"""What the kubelet runs, on disk, so that an emulator restarted after `kill -9` adopts it instead of
running it twice: one small JSON file per pod (`<pod dir>/state.json`), written atomically whenever a
container starts or exits.

Per container: the running process (pid + start time, and the fd numbers of its output pipes, see
process.py), its restart count, when it started, and its last termination (for `lastState`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emulator.kubelet.process import ProcessRecord

STATE_FILE = "state.json"


@dataclass
class ContainerRecord:
    restart_count: int = 0
    process: ProcessRecord | None = None
    started_at: str | None = None
    last_terminated: dict[str, Any] | None = None  # the status' `terminated` of the previous instance
    terminated: dict[str, Any] | None = None  # this instance's, once it exited


@dataclass
class PodRecord:
    namespace: str
    name: str
    uid: str
    containers: dict[str, ContainerRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        containers = {}
        for name, entry in (data.get("containers") or {}).items():
            process = entry.get("process")
            containers[name] = ContainerRecord(
                restart_count=int(entry.get("restart_count") or 0),
                process=ProcessRecord(**process) if process else None,
                started_at=entry.get("started_at"), last_terminated=entry.get("last_terminated"),
                terminated=entry.get("terminated"),
            )
        return cls(data["namespace"], data["name"], data["uid"], containers)


def save(pod_dir: Path, record: PodRecord) -> None:
    pod_dir.mkdir(parents=True, exist_ok=True)
    path = pod_dir / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record.to_json()))
    os.replace(temporary, path)


def load(pod_dir: Path) -> PodRecord | None:
    try:
        return PodRecord.from_json(json.loads((pod_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_pods(pods_dir: Path) -> dict[str, PodRecord]:
    """Every pod a previous run recorded, by uid."""
    found: dict[str, PodRecord] = {}
    with contextlib.suppress(OSError):
        for entry in pods_dir.iterdir():
            record = load(entry)
            if record is not None:
                found[record.uid] = record
    return found
