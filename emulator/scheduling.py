"""Where a new pod may run, as kube-scheduler's filters decide it for a cluster whose nodes are never full:
pure functions over a pod and the stored Nodes (emulator/kinds/pod.py places a pod when it is created;
emulator/controllers/scheduler.py places the ones that could not be, when nodes or the pod change).

The filters (in kube-scheduler's order and words): scheduling gates (`SchedulingGated`), a node that is
not Ready (its `node.kubernetes.io/not-ready` taint), cordoned (`spec.unschedulable`, the
`node.kubernetes.io/unschedulable` taint), `nodeSelector` and required node affinity, and NoSchedule /
NoExecute taints the pod does not tolerate. Resources are not counted: the emulator's node is never full,
and inter-pod (anti-)affinity and topology spread are not evaluated. Among the nodes that fit, the
emulator's own (the one whose kubelet runs pods) is chosen first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

NAME_FIELD = "metadata.name"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
GATED = ("SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
UNSCHEDULABLE = "Unschedulable"
DEFAULT_SCHEDULER = "default-scheduler"


def default_scheduler(pod_spec: Obj) -> bool:
    """Whether the pod is this scheduler's to place: a pod naming another `schedulerName` waits for that
    scheduler's binding."""
    return (pod_spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER


def _requirement_matches(requirement: Obj, value: str | None) -> bool:
    op, values = requirement.get("operator"), requirement.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def term_matches(term: Obj, node: Obj) -> bool:
    """A NodeSelectorTerm: every expression (on labels) and field (metadata.name) matches; an empty term none."""
    expressions, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    name = node["metadata"]["name"]
    return all(_requirement_matches(e, labels.get(e.get("key", ""))) for e in expressions) and all(
        _requirement_matches(f, name if f.get("key") == NAME_FIELD else None) for f in fields
    )


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """ToleratesTaint for one of the tolerations."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("key") and t.get("key") != taint.get("key"):
            continue
        if not t.get("key") and t.get("operator") != "Exists":
            continue
        if t.get("operator") == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (node.get("status") or {}).get("conditions") or [])


def selector_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and the required node affinity (NodeAffinity's filter)."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")) or None
    return required is None or any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def untolerated_taint(tolerations: list[Obj], node: Obj) -> Obj | None:
    """The node's first NoSchedule or NoExecute taint none of the tolerations tolerates (TaintToleration)."""
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


def why_not_on(pod_spec: Obj, node: Obj) -> str | None:
    """Why the pod may not go to this node, as kube-scheduler counts it ("node(s) were unschedulable"), or
    None when it fits."""
    tolerations = pod_spec.get("tolerations") or []
    if not node_ready(node) and not tolerates(tolerations, NOT_READY_TAINT):
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(tolerations, UNSCHEDULABLE_TAINT):
        return "node(s) were unschedulable"
    if not selector_matches(pod_spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    taint = untolerated_taint(tolerations, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    return None


def place(pod: Obj, nodes: Iterable[Obj], preferred: str) -> tuple[str | None, str, str]:
    """(the node to bind to, "", "") or (None, reason, message) with the PodScheduled condition's reason and
    kube-scheduler's FailedScheduling message."""
    spec = pod.get("spec") or {}
    if spec.get("schedulingGates"):
        return None, *GATED
    fits, reasons, total = [], Counter[str](), 0
    for node in nodes:
        total += 1
        why = why_not_on(spec, node)
        if why is None:
            fits.append(node["metadata"]["name"])
        else:
            reasons[why] += 1
    if fits:
        return (preferred if preferred in fits else sorted(fits)[0]), "", ""
    if not total:  # the emulator's node was deleted: it registers again when the emulator starts
        return None, UNSCHEDULABLE, "no nodes available to schedule pods (restart the emulator to register its node)"
    counted = ", ".join(sorted(f"{n} {why}" for why, n in reasons.items()))
    preemption = f"preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
    return None, UNSCHEDULABLE, f"0/{total} nodes are available: {counted}. {preemption}"
