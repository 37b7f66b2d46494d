"""NodeMetrics (metrics.k8s.io/v1beta1, cluster-scoped): what `kubectl top node` reads. Read-only and never
stored: api/metrics.py answers get and list from the machine's real usage (emulator/kubelet/stats.py), as
metrics-server answers from the kubelets' summaries; its `verbs` refuse everything else (405)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import NAME, Column, Printer, meta_of

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
NODE_METRICS = ResourceType(METRICS_GROUP, METRICS_VERSION, "nodes", "NodeMetrics", False, "", verbs=("get", "list"))

CPU = Column("CPU", "CPU usage (nanocores)")
MEMORY = Column("Memory", "Memory usage (working set)")
WINDOW = Column("Window", "The interval the usage was measured over")


def _cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    usage = obj.get("usage") or {}
    return [meta_of(obj).get("name", ""), usage.get("cpu", ""), usage.get("memory", ""), obj.get("window", "")]


PRINTER = Printer((NAME, CPU, MEMORY, WINDOW), _cells)

KIND = Kind(NODE_METRICS, printer=PRINTER)
