"""Flows read back: a record of the ring (log.py) turned into the JSON the API and `emulator flows` show,
with the names the data path did not look up — the pods behind the addresses, the service, the policies
that decided — taken from the engine's indexes when the flow is read.

Pods by address come from the policy engine's index (`PolicyEngine.pod_at`). While policies exist it is
kept current from store events; without policies the engine keeps no pods (the proxy asks nothing), so
`PodNames` rebuilds it with one scan when pods changed since the last read, at most every REFRESH_INTERVAL.
A flow names the pods that hold its addresses when it is read, which is who held them when it was
recorded unless the pod was replaced in between.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from emulator.flows.log import (
    CACHED,
    CACHED_CLIENT,
    CLIENT,
    DENIED,
    DNS,
    DNS_PROTO,
    DNS_REPLY,
    DNS_SECONDS,
    DST,
    ENDPOINT,
    ERROR,
    HOST,
    HTTP,
    KIND,
    METHOD,
    PATH,
    REASON,
    RECEIVED,
    ROUTE,
    SECONDS,
    SENT,
    SERVICE,
    STATUS,
    UDP,
    VERDICT,
    Numbered,
    Record,
    cached_reply,
)
from emulator.kinds import PODS
from emulator.netpol.engine import PolicyEngine
from emulator.netpol.semantics import PodRef
from emulator.store.events import Event

REFRESH_INTERVAL = 0.25  # seconds: pods rescanned at most this often (only without policies, only when changed)


class PodNames:
    """Pods by IP for flows, from the policy engine's index; `apply` is a store listener (it only notes that
    pods changed)."""

    def __init__(self, engine: PolicyEngine | None) -> None:
        self.engine = engine
        self.dirty = True
        self._refreshed = 0.0
        self._policies = 0

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self.dirty = True

    def at(self, ip: str) -> PodRef | None:
        engine = self.engine
        if engine is None or not ip:
            return None
        policies = engine.policy_count
        if not policies and (self.dirty or self._policies):
            now = time.monotonic()
            if now - self._refreshed >= REFRESH_INTERVAL or self._policies:
                engine.refresh_pods()  # one scan; with policies the engine keeps pods itself
                self.dirty = False
                self._refreshed = now
        self._policies = policies
        return engine.pod_at(ip)


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class FlowReader:
    """Renders records as the contract's JSON (docs/observing.md, "Flows")."""

    def __init__(self, pods: PodNames | None = None, dns_address: tuple[str, int] | None = None) -> None:
        self.pods = pods
        self.engine = pods.engine if pods is not None else None
        self.dns_address = dns_address

    def _pod(self, ip: str) -> PodRef | None:
        return self.pods.at(ip) if self.pods is not None else None

    def render(self, numbered: Numbered, offset: float) -> dict[str, Any]:
        """One flow; `offset` turns the record's loop time into wall-clock seconds (FlowLog.wall_offset)."""
        flow_id, record = numbered
        if len(record) == CACHED:  # a DNS cache answer: the same flow as any other DNS answer
            record = (record[0], DNS, record[CACHED_CLIENT][0], "udp", cached_reply(record), 0.0)
        client = record[CLIENT]
        source_pod = self._pod(client)
        flow: dict[str, Any] = {
            "id": flow_id,
            "time": timestamp(record[0] + offset),
            "kind": record[KIND],
            "verdict": "allowed",
            "source": {
                "ip": client,
                "pod": source_pod.key if source_pod else None,
                "namespace": source_pod.namespace if source_pod else None,
            },
        }
        if record[KIND] == DNS:
            self._dns(flow, record)
        else:
            self._proxied(flow, record)
        flow["summary"] = summary(flow)
        return flow

    def _dns(self, flow: dict[str, Any], record: Record) -> None:
        address = self.dns_address
        flow["destination"] = {
            "ip": address[0] if address else None, "port": address[1] if address else None,
            "service": None, "endpoint": None, "pod": None,
        }
        flow["dns"] = dns_summary(b"\x00\x00" + record[DNS_REPLY])  # recorded past its ID
        flow["dns"]["proto"] = record[DNS_PROTO]
        flow["durationMs"] = round(record[DNS_SECONDS] * 1000, 3)
        flow["bytes"] = None
        flow["policy"] = None

    def _proxied(self, flow: dict[str, Any], record: Record) -> None:
        service, port = service_name(record[SERVICE])
        dst = record[DST]
        endpoint = record[ENDPOINT]
        endpoint_pod = self._pod(endpoint[0]) if endpoint else None
        flow["verdict"] = record[VERDICT]
        flow["destination"] = {
            "ip": dst[0] if dst else None,
            "port": dst[1] if dst else port,
            "service": service,
            "servicePort": port,
            "endpoint": f"{endpoint[0]}:{endpoint[1]}" if endpoint else None,
            "pod": endpoint_pod.key if endpoint_pod else None,
        }
        sent, received = record[SENT], record[RECEIVED]
        flow["bytes"] = {"sent": sent, "received": received} if sent >= 0 or received >= 0 else None
        flow["durationMs"] = round(record[SECONDS] * 1000, 3) if record[SECONDS] >= 0 else None
        flow["policy"] = self._policy(record, endpoint)
        if record[VERDICT] == ERROR:
            flow["error"] = record[REASON]
        if record[KIND] == HTTP:
            flow["http"] = {
                "method": _text(record[METHOD]), "host": _text(record[HOST]), "path": _text(record[PATH]),
                "status": record[STATUS], "route": record[ROUTE],
            }

    def _policy(self, record: Record, endpoint: tuple[str, int] | None) -> dict[str, Any] | None:
        """The decision for a denied flow, or for an allowed one while policies exist (with the policies
        that allowed it); None when no policy was involved."""
        engine = self.engine
        verdict = record[VERDICT]
        if verdict == ERROR or endpoint is None:
            return None
        if verdict != DENIED and (engine is None or not engine.policy_count):
            return None
        policies: list[str] = []
        reason = record[REASON] or ""
        if engine is not None and engine.policy_count:
            explained = engine.explain(record[CLIENT], endpoint[0], endpoint[1], "UDP" if record[KIND] == UDP else "TCP")
            policies = explained["policies"]
            if not reason:
                reason = "; ".join(explained["reasons"])
        return {"verdict": verdict, "reason": reason, "policies": policies}


def service_name(service: str | None) -> tuple[str | None, int | None]:
    """("namespace/name", service port) of a record's "ns/name:port" service label."""
    if service is None:
        return None, None
    name, _, port = service.rpartition(":")
    return (name or service), int(port) if port.isdigit() else None


def dns_summary(reply: bytes) -> dict[str, Any]:
    """name, type, rcode and answers of a DNS reply."""
    try:
        parsed = DNSRecord.parse(reply)
    except Exception:
        return {"name": "", "type": "", "rcode": "FORMERR", "answers": []}
    question = parsed.questions[0] if parsed.questions else None
    return {
        "name": str(question.qname).rstrip(".") if question else "",
        "type": QTYPE.get(question.qtype, str(question.qtype)) if question else "",
        "rcode": RCODE.get(parsed.header.rcode, str(parsed.header.rcode)),
        "answers": [str(rr.rdata).rstrip(".") for rr in parsed.rr],
        "truncated": bool(parsed.header.tc),
    }


def summary(flow: dict[str, Any]) -> str:
    """One line for people: `default/web-1 -> default/api:8080 (127.244.0.7:8000) GET /x 200`."""
    source = flow["source"]["pod"] or flow["source"]["ip"]
    destination = flow["destination"]
    if flow["kind"] == DNS:
        dns = flow["dns"]
        answers = ",".join(dns["answers"])
        return f"{source} -> dns {dns['type']} {dns['name']} {dns['rcode']}" + (f" {answers}" if answers else "")
    where = (
        f"{destination['service']}:{destination['servicePort']}" if destination["service"]
        else f"{destination['ip']}:{destination['port']}"
    )
    line = f"{source} -> {where}"
    if destination["endpoint"]:
        pod = destination["pod"]
        line += f" ({pod} {destination['endpoint']})" if pod else f" ({destination['endpoint']})"
    line += f" {flow['kind'].upper()}"
    http = flow.get("http")
    if http is not None:
        line += f" {http['method']} {http['host']}{http['path']} {http['status'] or '-'}"
    if flow["verdict"] == DENIED:
        line += f" DENIED ({flow['policy']['reason'] if flow.get('policy') else 'network policy'})"
    elif flow["verdict"] == ERROR:
        line += f" ERROR ({flow.get('error') or 'failed'})"
    return line
