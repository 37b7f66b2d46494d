"""`emulator serve`, the composition root: the one module that hands the engine (emulator/runtime.py)
the HTTP layer (api/) to serve. Nothing else under emulator/ imports api/ (tests/unit/test_layout.py
checks it), so the engine can be read, tested and reused without HTTP.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from emulator import config as config_module
from emulator import logs

if TYPE_CHECKING:
    from aiohttp import web


GC_YOUNG_THRESHOLD = 7000  # new container objects between two young-generation passes (CPython: 700)


def event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def import_aiohttp() -> None:
    """Import aiohttp without its ~35 ms of CA bundle. Its client module builds two default SSL contexts
    as it is imported (aio-libs/aiohttp#9029), each parsing a whole CA file, and `serve` never verifies
    with them: its probes and lifecycle hooks skip verification, as the kubelet's do. While SSL_CERT_FILE
    names an empty file, OpenSSL loads no bundle into them (they would still verify through the hashed CA
    directory, read a certificate at a time as a handshake needs it). The variable is put back as it was
    (the user's own, or none) before anything else runs: pods and every later context see it unchanged."""
    if "aiohttp" in sys.modules:
        return
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = os.devnull
    try:
        import aiohttp  # noqa: F401
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before


def _pod_subresource(*names: str) -> Callable[[str], bool]:
    """Whether a path is `/api/v1/namespaces/{namespace}/pods/{name}/<one of names>`, cheaply: every
    namespaced core request is asked."""
    wanted = frozenset(names)
    return lambda path: path.rpartition("/")[2] in wanted and "/pods/" in path


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def serve(cfg: config_module.Config) -> int:
    from api import (
        auth,
        authorization,
        connections,
        flows,
        guard,
        oidc,
        podenv,
        podhosts,
        policycheck,
        processstatus,
        prometheus,
        proxystatus,
        tokens,
        ui,
    )
    from api.app import DeferredRoutes, create_app
    from emulator.kinds import NODE_METRICS
    from emulator.registry.tokens import TokenOperations
    from emulator.runtime import Runtime, StartRefused

    # the pods' streaming subresources and logs, and metrics.k8s.io: each module loads on the first request
    # for it (api/app.py DeferredRoutes), not at start (SPDY, the kubelet's exec sessions and logs, psutil)
    def pod_logs(rt: Runtime) -> list[web.RouteDef]:
        from api import podlogs

        return podlogs.routes(rt.registry, lambda: rt.kubelet)

    def pod_exec(rt: Runtime) -> list[web.RouteDef]:
        from api import exec as podexec

        return podexec.routes(rt.kubelet)

    def pod_port_forward(rt: Runtime) -> list[web.RouteDef]:
        from api import portforward

        return portforward.routes(rt.registry, cfg.pod_cidr)

    def resource_metrics(rt: Runtime) -> list[web.RouteDef]:
        from api import metrics

        return metrics.routes(rt.registry, lambda: rt.kubelet, rt.pod_stats())

    metrics_prefix = f"/apis/{NODE_METRICS.group}/{NODE_METRICS.version}/"

    runtime = Runtime(cfg, lambda rt: create_app(
        rt.registry,
        routes=[
            *podenv.routes(rt.registry), *podhosts.routes(rt.registry, rt.cluster_hosts), *policycheck.routes(rt.policy_engine),
            *tokens.routes(TokenOperations(rt.registry, rt.authenticator, max_expiration=cfg.max_token_seconds)), *proxystatus.routes(rt.proxy),
            *processstatus.routes(rt.process_status), *oidc.routes(rt.authenticator.tokens), *prometheus.routes(),
            *authorization.routes(rt.authenticator, rt.auth_required),
            *ui.routes(),
            *flows.routes(rt.flows, rt.flow_reader),
        ],
        deferred=[
            DeferredRoutes("/api/v1/namespaces", _pod_subresource("log"), lambda: pod_logs(rt)),
            DeferredRoutes("/api/v1/namespaces", _pod_subresource("exec", "attach"), lambda: pod_exec(rt)),
            DeferredRoutes("/api/v1/namespaces", _pod_subresource("portforward"), lambda: pod_port_forward(rt)),
            DeferredRoutes(metrics_prefix.rstrip("/"), lambda path: path.startswith(metrics_prefix), lambda: resource_metrics(rt)),
        ],
        front=guard.Guard(guard.rules(
            cfg.api_host, cfg.cluster_domain.strip(".").lower(), _listed(cfg.accept_hosts), _listed(cfg.allow_origins),
        )),
        middlewares=auth.middlewares(rt.authenticator, rt.auth_required),
    ), api_server=connections.serve)
    try:
        await runtime.start()
    except StartRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: could not start: {exc}. Is another emulator already running? "
            "Choose other ports with --api-port, --dns-port and --gateway-port.",
            file=sys.stderr,
        )
        return 1
    except sqlite3.Error as exc:
        print(
            f"error: could not open the store in {cfg.data_dir}: {exc}. "
            "Is another emulator using this data directory? Use --data-dir for another, or --in-memory.",
            file=sys.stderr,
        )
        return 1
    # A young-generation pass every 7,000 new container objects rather than CPython's 700: with the
    # default, creates' p99 grew with the store (8.8 ms at 27k pods, 20-23 ms past 100k: the collector's
    # passes, measured against the collector off) and stays at 9-13 ms past 130k with this
    # (bench/api/cpu.py --grow 50). Cyclic garbage waits a little longer; nothing else changes.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    gc.enable()
    print(runtime.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...", file=sys.stderr, flush=True)
    await runtime.stop()
    logs.ACCESS.flush()
    return 0


def main(cfg: config_module.Config) -> int:
    # No cyclic collection while the engine loads and starts: its passes free next to nothing there and
    # cost ~8 % of the start. Runtime.start freezes what was loaded; collection resumes once it is up.
    gc.disable()
    # pydantic scans every installed package's entry points for plugins as it builds its first validator
    # (~4 ms of the start); the emulator uses none. The user's own setting stays (pods never inherit it:
    # the kubelet gives them an environment of their own).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    logs.configure(cfg.log_level)
    event_loop_policy()
    import_aiohttp()
    return asyncio.run(serve(cfg))
