"""Endpoint choice: round-robin, failover exclusions, ClientIP affinity and its timeout."""

from __future__ import annotations

from emulator.proxy.balancer import Balancer

A, B, C = ("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)


def test_round_robin_is_exact() -> None:
    b = Balancer([A, B, C])
    assert [b.pick("1.1.1.1") for _ in range(7)] == [A, B, C, A, B, C, A]


def test_no_endpoints_is_none() -> None:
    assert Balancer().pick("1.1.1.1") is None


def test_exclude_skips_refused_endpoints_and_gives_up_when_all_refused() -> None:
    b = Balancer([A, B, C])
    assert b.pick("x", exclude=[A]) == B
    assert b.pick("x", exclude=[C, A]) == B
    assert b.pick("x", exclude=[A, B, C]) is None


def test_endpoint_change_keeps_the_cursor_in_range() -> None:
    b = Balancer([A, B, C])
    b.pick("x")
    b.pick("x")
    b.set_backends([A])
    assert b.pick("x") == A
    b.set_backends([])
    assert b.pick("x") is None


def test_client_ip_affinity_pins_until_quiet_for_the_timeout() -> None:
    b = Balancer([A, B, C], affinity_timeout=10)
    first = b.pick("1.1.1.1", now=0)
    other = b.pick("2.2.2.2", now=0)
    assert first != other
    assert [b.pick("1.1.1.1", now=t) for t in (5, 14, 23)] == [first] * 3  # each use refreshes the pin
    assert b.pick("1.1.1.1", now=40) != first or len(b.backends) == 1  # quiet for > 10 s: re-balanced
    b.expire(1000)
    assert b._pins == {}


def test_affinity_moves_off_a_refused_or_removed_endpoint() -> None:
    b = Balancer([A, B], affinity_timeout=100)
    pinned = b.pick("c", now=0)
    other = b.pick("c", now=1, exclude=[pinned])
    assert other != pinned and b.pick("c", now=2) == other
    b.set_backends([pinned])
    assert b.pick("c", now=3) == pinned
