"""Harness for the DNS tests (no tests here): the real server on a free loopback port, in a thread of
its own, fed synthetic store events; queried with dnspython and with the real `dig`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from emulator.dns import DnsIndex, DnsSettings, start_dns
from emulator.store.events import Event


class RunningDns:
    def __init__(self, settings: DnsSettings, events: Iterable[Event] = ()) -> None:
        self.settings = settings
        self.index = DnsIndex(settings)
        for event in events:
            self.index.apply(event)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.run(start_dns(settings, self.index))
        self.port: int = self.server.port

    def run(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return fn()

        return self.run(call())

    def apply(self, *events: Event) -> None:
        """Deliver events on the server's loop, as the store does, and wait until they are applied."""
        self.call(lambda: [self.index.apply(e) for e in events])

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def query(
        self, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 3, **make: Any
    ) -> dns.message.Message:
        message = dns.message.make_query(name, rdtype, **make)
        ask = dns.query.tcp if tcp else dns.query.udp
        return ask(message, "127.0.0.1", port=self.port, timeout=timeout)

    def dig(self, *args: str) -> DigResult:
        return dig(self.port, *args)


@dataclass
class DigResult:
    status: str
    flags: set[str]
    sections: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # (owner, type, rdata)
    text: str = ""

    def rdata(self, section: str = "ANSWER", rdtype: str | None = None) -> set[str]:
        return {r for _, t, r in self.sections.get(section, []) if rdtype is None or t == rdtype}


def require_dig() -> str:
    path = shutil.which("dig")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dig is not installed (apt-get install bind9-dnsutils); CI must have it")
        pytest.skip("dig is not installed (apt-get install bind9-dnsutils)")
    return path


def dig(port: int, *args: str) -> DigResult:
    command = [require_dig(), "@127.0.0.1", "-p", str(port), "+tries=1", "+time=3", "+nocmd", "+nostats", *args]
    text = subprocess.run(command, capture_output=True, text=True, timeout=15).stdout
    header = re.search(r"->>HEADER<<- opcode: \w+, status: (\w+)", text)
    flags = re.search(r";; flags:([a-z ]*);", text)
    result = DigResult(header.group(1) if header else "NO-REPLY", set(flags.group(1).split()) if flags else set())
    result.text = text
    section = None
    for line in text.splitlines():
        heading = re.match(r";; (\w+) SECTION:", line)
        if heading:
            section = heading.group(1)
            result.sections[section] = []
        elif not line.strip():
            section = None
        elif section and section != "QUESTION" and not line.startswith(";"):
            owner, _ttl, _class, rdtype, rdata = line.split(None, 4)
            result.sections[section].append((owner, rdtype, " ".join(rdata.split())))
    return result


def rdata_of(message: dns.message.Message, section: str = "answer", rdtype: str | None = None) -> set[str]:
    found = set()
    for rrset in getattr(message, section):
        if rdtype is None or dns.rdatatype.to_text(rrset.rdtype) == rdtype:
            found.update(r.to_text() for r in rrset)
    return found


def has_soa(message: dns.message.Message) -> bool:
    return any(rrset.rdtype == dns.rdatatype.SOA for rrset in message.authority)
