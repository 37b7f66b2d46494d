"""Cluster DNS: names of services, endpoints and pods answered like CoreDNS, from the host.

The runtime does: `index = DnsIndex(settings)`, `store.subscribe(index.apply)`,
`server = await start_dns(settings, index)`, and at shutdown `await server.close()`.
"""

from __future__ import annotations

from emulator.dns.index import DnsIndex
from emulator.dns.server import DnsServer, start_dns
from emulator.dns.settings import DnsSettings

__all__ = ["DnsIndex", "DnsServer", "DnsSettings", "start_dns"]
