"""Flows: every DNS query, proxied TCP connection, UDP flow and HTTP request, with its verdict, kept in a
bounded ring (`log.py`: what the data paths append to, one tuple each), read back as JSON with pod and
service names (`reader.py`) and filtered by pure functions (`filters.py`). `GET /emulator/v1/flows`
(api/flows.py) and `emulator flows` (emulator/cli/flows.py) show them; docs/observing.md says how.
"""

from emulator.flows.log import DNS, HTTP, TCP, UDP, FlowLog, FlowWatcher

__all__ = ["DNS", "HTTP", "TCP", "UDP", "FlowLog", "FlowWatcher"]
