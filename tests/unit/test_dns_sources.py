"""Which clients the DNS server forwards for, and how TCP connections are counted per source (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from emulator.dns import DnsSettings
from emulator.dns.sources import forward_allowed, parse_forward_from, source_key

# Python's is_private says yes to all of these; none is a client of a network of ours.
NOT_LOCAL = [
    "0.0.0.0", "0.1.2.3", "240.0.0.1", "255.255.255.255", "198.18.0.1", "198.19.255.254", "192.0.2.1",
    "198.51.100.1", "203.0.113.1", "169.254.1.1", "2001:db8::1", "fe80::1", "fe80::1%eth0", "::", "8.8.8.8",
    "2001:4860:4860::8888", "100.128.0.1", "172.32.0.1", "11.0.0.1", "not-an-address", "",
]
LOCAL = [
    "127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "100.64.0.1", "100.127.255.255", "fc00::1", "fd12:3456::1", "::ffff:10.1.2.3", "::ffff:127.0.0.1",
]


@pytest.mark.parametrize("client", LOCAL)
def test_local_clients_are_forwarded_for(client: str) -> None:
    assert forward_allowed(client, "local")


@pytest.mark.parametrize("client", NOT_LOCAL)
def test_other_clients_are_not(client: str) -> None:
    assert not forward_allowed(client, "local")


def test_loopback_any_and_networks() -> None:
    assert [forward_allowed(c, "loopback") for c in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1")] == [True] * 4
    assert [forward_allowed(c, "loopback") for c in ("10.0.0.1", "192.168.1.1", "fd00::1", "0.0.0.0")] == [False] * 4
    assert all(forward_allowed(c, "any") for c in ("8.8.8.8", "0.0.0.0", "2001:db8::1", "whatever"))
    ten = parse_forward_from("10.0.0.0/8")
    assert forward_allowed("10.9.8.7", ten) and forward_allowed("::ffff:10.9.8.7", ten)
    assert not forward_allowed("127.0.0.1", ten)  # loopback only when the list says so
    assert not forward_allowed("192.168.1.1", ten) and not forward_allowed("fd00::1", ten)
    both = parse_forward_from(" 192.168.1.7/24 , fd00::/8,127.0.0.0/8")
    assert both == tuple(ipaddress.ip_network(n) for n in ("192.168.1.0/24", "fd00::/8", "127.0.0.0/8"))
    assert forward_allowed("192.168.1.200", both) and forward_allowed("fd00::5", both) and forward_allowed("127.0.0.1", both)
    assert not forward_allowed("192.168.2.1", both) and not forward_allowed("bad", both)


def test_parse_forward_from() -> None:
    assert [parse_forward_from(t) for t in ("local", " LOOPBACK ", "Any")] == ["local", "loopback", "any"]
    for bad in ("private", "", "10.0.0.0/33", "10.0.0.0/8,nope", ","):
        with pytest.raises(ValueError):
            parse_forward_from(bad)
    assert DnsSettings().forward_from == "local"
    assert DnsSettings(forward_from="10.0.0.0/8").forward_from == (ipaddress.ip_network("10.0.0.0/8"),)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DnsSettings(forward_from="private")  # type: ignore[arg-type]  # the old setting's value: not silently open


def test_tcp_connections_are_counted_per_address_and_per_ipv6_64() -> None:
    assert source_key("127.0.0.1") == "127.0.0.1" and source_key("127.0.0.2") == "127.0.0.2"
    assert source_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert source_key("::1") == "::1"
    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("fe80::1%eth0") == "fe80::/64"
