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
from pathlib import Path

from emulator import config as config_module
from emulator import logs
from emulator import run as run_module

log = logging.getLogger("emulator")


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(cfg: config_module.Config) -> int:
    from api import auth, podenv, policycheck, proxystatus, tokens
    from api.app import create_app
    from emulator.runtime import Runtime

    runtime = Runtime(cfg, lambda rt: create_app(
        rt.registry,
        routes=[
            *podenv.routes(rt.registry), *policycheck.routes(rt.policy_engine),
            *tokens.routes(rt.registry, rt.authenticator), *proxystatus.routes(rt.proxy),
        ],
        middlewares=auth.middlewares(rt.authenticator, rt.auth_required),
    ))
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


def _kubeconfig(args: argparse.Namespace) -> int:
    """Print the emulator's kubeconfig, or merge its context into the user's kubeconfig file."""
    from emulator import kubeconfig

    server = args.server
    if not server:
        # the address `serve` would use with the same flags/environment
        cfg = config_module.from_args(argparse.Namespace())
        host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
        server = f"http://{f'[{host}]' if ':' in host else host}:{cfg.api_port}"
    if args.write is None:
        # a standalone file (e.g. for KUBECONFIG=...), so its one context is also the current one
        print(kubeconfig.render(kubeconfig.kubeconfig_for(server, args.namespace)), end="")
        return 0
    path = kubeconfig.default_path() if args.write == "" else Path(args.write).expanduser()
    try:
        kubeconfig.write(path, server, use=args.use, namespace=args.namespace)
    except (kubeconfig.KubeconfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    hint = "it is now the current context" if args.use else f"use it with: kubectl --context {kubeconfig.NAME} get pods (or add --use)"
    print(f"wrote context {kubeconfig.NAME!r} ({server}) to {path}; {hint}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emulator", description="Kubernetes service discovery and routing on one machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulator (API, DNS, proxy)")
    config_module.add_arguments(serve)
    kc = commands.add_parser("kubeconfig", help="print or write a kubeconfig context 'emulator' for kubectl")
    kc.add_argument("--server", help="the emulator's API URL [default: from EMULATOR_API_HOST/EMULATOR_API_PORT, else http://127.0.0.1:8080]")
    kc.add_argument("--write", nargs="?", const="", default=None, metavar="PATH",
                    help="merge the context into a kubeconfig file instead of printing it [default file: $KUBECONFIG or ~/.kube/config]")
    kc.add_argument("--use", action="store_true", help="also make 'emulator' the current context")
    kc.add_argument("--namespace", default="default", help="the context's default namespace [default: default]")
    run = commands.add_parser(
        "run", help="run a local process as a pod: registered, given the service variables, Ready once it listens",
        usage="emulator run --name NAME [--label KEY=VALUE] [--port [NAME=]PORT] [options] -- CMD [ARGS...]",
    )
    run_module.add_run_arguments(run)
    env = commands.add_parser("env", help="print a pod's environment variables (service links and its own env)")
    run_module.add_env_arguments(env)
    args = parser.parse_args(argv)
    if args.command == "serve":
        cfg = config_module.from_args(args)
        logs.configure(cfg.log_level)
        _event_loop_policy()
        return asyncio.run(_serve(cfg))
    if args.command == "kubeconfig":
        return _kubeconfig(args)
    if args.command == "run":
        return run_module.run_command(args, run)
    if args.command == "env":
        return run_module.env_command(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
