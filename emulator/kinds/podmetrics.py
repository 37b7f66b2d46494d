"""PodMetrics (metrics.k8s.io/v1beta1, namespaced): what `kubectl top pod` reads. Read-only and never
stored: api/metrics.py answers get and list from the processes of the containers the local kubelet runs
(emulator/kubelet/stats.py), as metrics-server does; its `verbs` refuse everything else (405). A pod whose
containers do not run (a record) has no metrics, as a pod on a node without a kubelet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.nodemetrics import CPU, MEMORY, METRICS_GROUP, METRICS_VERSION, WINDOW
from emulator.kinds.printing import NAME, Printer, meta_of

POD_METRICS = ResourceType(METRICS_GROUP, METRICS_VERSION, "pods", "PodMetrics", True, "", verbs=("get", "list"))


def _cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    usages = [c.get("usage") or {} for c in obj.get("containers") or []]
    cpu = sum(int(str(u.get("cpu", "0n")).rstrip("n") or 0) for u in usages)
    memory = sum(int(str(u.get("memory", "0Ki")).removesuffix("Ki") or 0) for u in usages)
    return [meta_of(obj).get("name", ""), f"{cpu}n", f"{memory}Ki", obj.get("window", "")]


PRINTER = Printer((NAME, CPU, MEMORY, WINDOW), _cells)

KIND = Kind(POD_METRICS, printer=PRINTER)
