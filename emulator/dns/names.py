"""Query names → what the cluster is asked for (the shape of CoreDNS's parse.go).

Parsing is separate from answering: a name becomes a small `ClusterName` first, the index is looked
at afterwards. Labels are lower-case strings, leftmost first, relative to the cluster zone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Kind = Literal["apex", "root", "dns-version", "svc", "pod", "invalid"]


@dataclass(frozen=True, slots=True)
class ClusterName:
    kind: Kind
    namespace: str = ""  # "" for `svc.zone` / `pod.zone`
    service: str = ""  # the service name, or for kind "pod" the dashed pod IP; "" for `ns.svc.zone`
    endpoint: str = ""  # `hostname.svc.ns.svc.zone`: an endpoint's hostname or dashed IP
    port: str = ""  # `_port._proto.svc.ns.svc.zone`; "" matches any port (CoreDNS's "*")
    protocol: str = ""


INVALID = ClusterName("invalid")


def relative_labels(labels: tuple[str, ...], zone: tuple[str, ...]) -> tuple[str, ...] | None:
    """The labels in front of the zone, or None when the name is outside it."""
    n = len(zone)
    if len(labels) < n or labels[len(labels) - n :] != zone:
        return None
    return labels[: len(labels) - n]


def parse_cluster_name(rel: tuple[str, ...]) -> ClusterName:
    """Read `[endpoint.|_port._proto.]service.namespace.(svc|pod)` from the labels before the zone."""
    if not rel:
        return ClusterName("apex")
    if rel == ("dns-version",):
        return ClusterName("dns-version")
    kind: Literal["svc", "pod"]
    if rel[-1] == "svc":
        kind = "svc"
    elif rel[-1] == "pod":
        kind = "pod"
    else:
        # CoreDNS: anything but svc/pod as the label before the zone is an invalid request → NXDOMAIN
        return INVALID
    if len(rel) == 1:
        return ClusterName("root")
    namespace = rel[-2]
    if len(rel) == 2:
        return ClusterName(kind, namespace)
    service = rel[-3]
    if len(rel) == 3:
        return ClusterName(kind, namespace, service)
    # One label more is an endpoint, two are port and protocol; more is too long to mean anything.
    if len(rel) == 4:
        return ClusterName(kind, namespace, service, endpoint=rel[0])
    if len(rel) == 5:
        return ClusterName(kind, namespace, service, port=_strip_underscore(rel[0]), protocol=_strip_underscore(rel[1]))
    return INVALID


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def expand_short_form(labels: tuple[str, ...], default_namespace: str) -> tuple[str, ...] | None:
    """The zone-relative labels a host-side short name stands for, or None when it is not one.

    Extension: a pod resolves `svc`, `svc.ns` through its search path; a host has none, so these forms
    (and `svc.ns.svc`, `a-b-c-d.ns.pod`) are answered directly as if the path had been applied.
    """
    if len(labels) == 1:
        return (labels[0], default_namespace, "svc")
    if len(labels) == 2:
        return (labels[0], labels[1], "svc")
    if len(labels) == 3 and labels[2] in ("svc", "pod"):
        return labels
    return None


def endpoint_label(ip: str, hostname: str) -> str:
    """An endpoint's DNS label: its hostname, else its IP with dashes (CoreDNS endpointHostname)."""
    if hostname:
        return hostname
    return ip.replace(".", "-").replace(":", "-")


def address_from_dashes(label: str) -> str | None:
    """`10-1-2-3` → `10.1.2.3` (IPv6: dashes for colons), None when it is not an address."""
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def address_from_reverse(labels: tuple[str, ...]) -> str | None:
    """`4.3.2.1.in-addr.arpa` → `1.2.3.4`, nibble `ip6.arpa` names → the IPv6 address; else None."""
    if len(labels) == 6 and labels[4:] == ("in-addr", "arpa"):
        octets = labels[3::-1]
        if all(o.isdigit() and len(o) <= 3 and int(o) <= 255 and (o == "0" or o[0] != "0") for o in octets):
            return ".".join(octets)
        return None
    if len(labels) == 34 and labels[32:] == ("ip6", "arpa"):
        nibbles = labels[31::-1]
        if all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            text = ":".join("".join(nibbles[i : i + 4]) for i in range(0, 32, 4))
            return str(ipaddress.IPv6Address(text))
    return None
