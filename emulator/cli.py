"""The `emulator` command: `serve` runs the emulator; the other commands talk to a running one.

This module is the composition root: it alone hands the engine (emulator/) the HTTP layer (api/)
to serve, so that nothing else in emulator/ depends on api/.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from emulator import config as config_module

log = logging.getLogger("emulator")


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(cfg: config_module.Config) -> int:
    from api import podenv
    from api.app import create_app
    from emulator.runtime import Runtime

    runtime = Runtime(cfg, lambda rt: create_app(rt.registry, routes=[*podenv.routes(rt.registry)]))
    try:
        await runtime.start()
    except OSError as exc:
        print(f"error: could not start: {exc}. Is another emulator already running? Choose other ports with --api-port/--dns-port.", file=sys.stderr)
        return 1
    print(runtime.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...", file=sys.stderr, flush=True)
    await runtime.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emulator", description="Kubernetes service discovery and routing on one machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulator (API, DNS, proxy)")
    config_module.add_arguments(serve)
    args = parser.parse_args(argv)
    if args.command == "serve":
        cfg = config_module.from_args(args)
        logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        _event_loop_policy()
        return asyncio.run(_serve(cfg))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
