"""Which flows a reader asked for: the query parameters of `GET /emulator/v1/flows` parsed into a
`FlowFilter`, and the pure tests that apply it (all given filters must match).

- `namespace`: either side's pod is in it, or the destination service is;
- `pod`: `ns/name` or a bare `name`, on either side;
- `service`: the destination service, `ns/name` or a bare `name`;
- `verdict`: allowed, denied or error; `kind`: a comma list of dns, tcp, udp, http;
- `since`: flows with a larger id; `sinceTime`: flows at or after an RFC 3339 time;
- `limit`: the newest that many (default 1000).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.flows.log import ALLOWED, DNS, KINDS, VERDICT, VERDICTS, Numbered, kind_of

DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class FlowFilter:
    namespace: str | None = None
    pod: str | None = None
    service: str | None = None
    verdict: str | None = None
    kinds: frozenset[str] | None = None
    since: int = 0
    since_time: float | None = None  # wall-clock seconds
    limit: int = DEFAULT_LIMIT


def parse(query: Mapping[str, str]) -> FlowFilter:
    """A FlowFilter from query parameters; ValueError with a message saying what to send instead."""
    verdict = (query.get("verdict") or "").strip().lower() or None
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f'verdict "{verdict}" is not one of {", ".join(VERDICTS)}')
    kinds = None
    if query.get("kind"):
        kinds = frozenset(k.strip().lower() for k in query["kind"].split(",") if k.strip())
        unknown = sorted(kinds - set(KINDS))
        if unknown:
            raise ValueError(f'kind "{",".join(unknown)}" is not one of {", ".join(KINDS)} (a comma list)')
    since = _integer(query, "since", 0)
    limit = _integer(query, "limit", DEFAULT_LIMIT)
    if limit < 1:
        raise ValueError(f"limit {limit}: ask for at least 1 flow")
    since_time = None
    if query.get("sinceTime"):
        try:
            since_time = datetime.fromisoformat(query["sinceTime"].strip()).timestamp()
        except ValueError:
            raise ValueError(f'sinceTime "{query["sinceTime"]}" is not an RFC 3339 time, e.g. 2026-12-02T21:00:00Z') from None
    return FlowFilter(
        namespace=_given(query, "namespace"), pod=_given(query, "pod"), service=_given(query, "service"),
        verdict=verdict, kinds=kinds, since=since, since_time=since_time, limit=limit,
    )


def _given(query: Mapping[str, str], name: str) -> str | None:
    value = (query.get(name) or "").strip()
    return value or None


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    text = (query.get(name) or "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f'{name} "{text}" is not a whole number')
    return int(text)


def record_matches(numbered: Numbered, f: FlowFilter) -> bool:
    """What can be told from the raw record (before names are looked up): id, kind, verdict."""
    flow_id, record = numbered
    if flow_id <= f.since:
        return False
    kind = kind_of(record)
    if f.kinds is not None and kind not in f.kinds:
        return False
    if f.verdict is not None and (ALLOWED if kind == DNS else record[VERDICT]) != f.verdict:
        return False
    return True


def _is(value: str | None, wanted: str) -> bool:
    """Whether "ns/name" `value` is `wanted` ("ns/name", or a bare name matching any namespace)."""
    if value is None:
        return False
    if "/" in wanted:
        return value == wanted
    return value.rpartition("/")[2] == wanted


def flow_matches(flow: Mapping[str, Any], f: FlowFilter, wall_time: float | None = None) -> bool:
    """What needs the rendered flow: namespace, pod, service, sinceTime."""
    source, destination = flow["source"], flow["destination"]
    if f.namespace is not None:
        sides = (source.get("pod"), destination.get("pod"), destination.get("service"))
        if not any(side is not None and side.split("/", 1)[0] == f.namespace for side in sides):
            return False
    if f.pod is not None and not (_is(source.get("pod"), f.pod) or _is(destination.get("pod"), f.pod)):
        return False
    if f.service is not None and not _is(destination.get("service"), f.service):
        return False
    if f.since_time is not None and wall_time is not None and wall_time < f.since_time:
        return False
    return True


def select(
    flows: list[Numbered], f: FlowFilter, render: Callable[[Numbered], dict[str, Any]], offset: float
) -> list[dict[str, Any]]:
    """The newest `f.limit` flows that match, oldest first. Walks from the newest back, so a small limit
    renders only what it returns (and what it skips on the way)."""
    chosen: list[dict[str, Any]] = []
    for numbered in reversed(flows):
        if numbered[0] <= f.since:
            break
        if f.since_time is not None and numbered[1][0] + offset < f.since_time:
            break  # older from here on
        if not record_matches(numbered, f):
            continue
        flow = render(numbered)
        if flow_matches(flow, f):
            chosen.append(flow)
            if len(chosen) >= f.limit:
                break
    chosen.reverse()
    return chosen


def live(flows: Iterable[Numbered], f: FlowFilter, render: Callable[[Numbered], dict[str, Any]]) -> list[dict[str, Any]]:
    """The flows of a watcher's batch that match (in order; no limit)."""
    out = []
    for numbered in flows:
        if record_matches(numbered, f):
            flow = render(numbered)
            if flow_matches(flow, f):
                out.append(flow)
    return out

