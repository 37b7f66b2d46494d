"""The service proxy: a listener behind every service address, balancing over ready endpoints."""

from __future__ import annotations

from .context import ConnectionPolicy, ProxySettings
from .server import Proxy

__all__ = ["ConnectionPolicy", "Proxy", "ProxySettings"]
