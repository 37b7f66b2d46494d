"""Which hosts only this machine can reach: one rule for when the API needs tokens (emulator/auth.py)
and for when a token may go over plain http (emulator/client.py), so that the two cannot disagree.

It imports nothing of the emulator: the client commands load it at start-up, where every import counts.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`: `localhost` or a loopback address (127.0.0.0/8, ::1),
    bracketed or not, whatever the case and surrounding whitespace. An unknown host name counts as
    reachable by others: nothing says where it resolves."""
    host = host.strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False
