"""Query-name parsing, read like CoreDNS's parse.go table."""

from __future__ import annotations

import pytest

from emulator.dns.names import (
    ClusterName,
    address_from_dashes,
    address_from_reverse,
    endpoint_label,
    expand_short_form,
    parse_cluster_name,
    relative_labels,
)


def labels(name: str) -> tuple[str, ...]:
    return tuple(name.split(".")) if name else ()


@pytest.mark.parametrize(
    ("rel", "parsed"),
    [
        ("", ClusterName("apex")),
        ("dns-version", ClusterName("dns-version")),
        ("svc", ClusterName("root")),
        ("pod", ClusterName("root")),
        ("ns.svc", ClusterName("svc", "ns")),
        ("web.ns.svc", ClusterName("svc", "ns", "web")),
        ("db-0.web.ns.svc", ClusterName("svc", "ns", "web", endpoint="db-0")),
        ("_http._tcp.web.ns.svc", ClusterName("svc", "ns", "web", port="http", protocol="tcp")),
        ("1-2-3-4.ns.pod", ClusterName("pod", "ns", "1-2-3-4")),
        ("web.ns.foo", ClusterName("invalid")),
        ("a.b.c.web.ns.svc", ClusterName("invalid")),
    ],
)
def test_parse(rel: str, parsed: ClusterName) -> None:
    assert parse_cluster_name(labels(rel)) == parsed


def test_relative_to_zone() -> None:
    zone = ("cluster", "local")
    assert relative_labels(labels("web.ns.svc.cluster.local"), zone) == ("web", "ns", "svc")
    assert relative_labels(zone, zone) == ()
    assert relative_labels(labels("example.com"), zone) is None
    assert relative_labels(("local",), zone) is None


def test_short_forms() -> None:
    assert expand_short_form(("web",), "default") == ("web", "default", "svc")
    assert expand_short_form(("web", "team"), "default") == ("web", "team", "svc")
    assert expand_short_form(("web", "team", "svc"), "default") == ("web", "team", "svc")
    assert expand_short_form(("1-2-3-4", "team", "pod"), "default") == ("1-2-3-4", "team", "pod")
    assert expand_short_form(("www", "example", "com"), "default") is None


def test_addresses() -> None:
    assert endpoint_label("10.1.2.3", "") == "10-1-2-3"
    assert endpoint_label("10.1.2.3", "db-0") == "db-0"
    assert endpoint_label("fd00::1", "") == "fd00--1"
    assert address_from_dashes("10-1-2-3") == "10.1.2.3"
    assert address_from_dashes("fd00--1") == "fd00::1"
    assert address_from_dashes("not-an-ip") is None
    assert address_from_dashes("300-1-2-3") is None
    assert address_from_reverse(labels("3.2.1.10.in-addr.arpa")) == "10.1.2.3"
    assert address_from_reverse(labels("3.2.01.10.in-addr.arpa")) is None
    assert address_from_reverse(labels("2.1.10.in-addr.arpa")) is None
    v6 = tuple("1" + "0" * 30 + "d") + ("f",) + ("ip6", "arpa")
    assert address_from_reverse(v6[:32] + ("ip6", "arpa")) == "d000::1"
