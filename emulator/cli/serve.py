"""`emulator serve`, the composition root: the one module that hands the engine (emulator/runtime.py)
the HTTP layer (api/) to serve. Nothing else under emulator/ imports api/ (tests/unit/test_layout.py
checks it), so the engine can be read, tested and reused without HTTP.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys

from emulator import config as config_module
from emulator import logs


def event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def serve(cfg: config_module.Config) -> int:
    from api import (
        auth,
        authorization,
        connections,
        flows,
        guard,
        metrics,
        oidc,
        podenv,
        podhosts,
        podlogs,
        policycheck,
        portforward,
        processstatus,
        prometheus,
        proxystatus,
        tokens,
        ui,
    )
    from api import exec as podexec
    from api.app import create_app
    from emulator.kubelet.stats import Stats
    from emulator.registry.tokens import TokenOperations
    from emulator.runtime import Runtime, StartRefused

    runtime = Runtime(cfg, lambda rt: create_app(
        rt.registry,
        routes=[
            *podenv.routes(rt.registry), *podhosts.routes(rt.registry, rt.cluster_hosts), *policycheck.routes(rt.policy_engine),
            *tokens.routes(TokenOperations(rt.registry, rt.authenticator, max_expiration=cfg.max_token_seconds)), *proxystatus.routes(rt.proxy),
            *processstatus.routes(rt.process_status), *oidc.routes(rt.authenticator.tokens), *prometheus.routes(),
            *authorization.routes(rt.authenticator, rt.auth_required),
            *podlogs.routes(rt.registry, lambda: rt.kubelet),
            *metrics.routes(rt.registry, lambda: rt.kubelet, Stats()),
            *podexec.routes(rt.kubelet),
            *portforward.routes(rt.registry, cfg.pod_cidr),
            *ui.routes(),
            *flows.routes(rt.flows, rt.flow_reader),
        ],
        middlewares=[
            guard.middleware(guard.rules(
                cfg.api_host, cfg.cluster_domain.strip(".").lower(), _listed(cfg.accept_hosts), _listed(cfg.allow_origins),
            )),
            *auth.middlewares(rt.authenticator, rt.auth_required),
        ],
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
    logs.configure(cfg.log_level)
    event_loop_policy()
    return asyncio.run(serve(cfg))
