"""The `emulator` command: `serve` runs the emulator; the other commands talk to a running one.

This module is the composition root: it alone hands the engine (emulator/) the HTTP layer (api/)
to serve, so that nothing else in emulator/ depends on api/.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from emulator import client, kubeconfig, logs
from emulator import config as config_module
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


def _kubeconfig_access(args: argparse.Namespace) -> tuple[str, kubeconfig.Access | None]:
    """The server URL and the credentials (a kubeconfig.Access, or None for the open loopback API) that
    `emulator kubeconfig` writes: --server/--token/--certificate-authority/--insecure-skip-tls-verify
    over what `--from-data-dir` copies from the server's own kubeconfig, over the plain-http default."""
    access: kubeconfig.Access | None = None
    if args.from_data_dir is not None:
        folder = Path(args.from_data_dir).expanduser() if args.from_data_dir else None
        path = folder / client.KUBECONFIG_FILE if folder else client.data_dir_kubeconfig(os.environ)
        if not path.exists():
            raise kubeconfig.KubeconfigError(
                f"{path} does not exist: `emulator serve` writes it when the API requires tokens (--require-auth, or "
                "a non-loopback --api-host); an API without tokens needs no --from-data-dir"
            )
        access = kubeconfig.access_for(kubeconfig.load([path]), kubeconfig.NAME, str(path))
    server = (args.server or (access.server if access else "") or client.served_at(os.environ)).rstrip("/")
    if args.token or args.certificate_authority or args.insecure_skip_tls_verify:
        access = access or kubeconfig.Access(server)
        if args.token:
            access = dataclasses.replace(access, token=args.token)
        if args.certificate_authority:
            try:
                access = dataclasses.replace(access, ca_pem=Path(args.certificate_authority).expanduser().read_text())
            except OSError as exc:
                raise kubeconfig.KubeconfigError(f"--certificate-authority {args.certificate_authority}: {exc.strerror}") from exc
        if args.insecure_skip_tls_verify:
            access = dataclasses.replace(access, insecure=True)
    if access is not None and access.token and not server.startswith("https://"):
        # kubectl drops a token silently over http; say so now rather than leave a 401 to puzzle over
        print(f"warning: kubectl sends the token only over https, and {server} is http", file=sys.stderr)
    if access is None:
        own = client.data_dir_kubeconfig(os.environ)
        if own.exists() and client.same_address(server, _server_in(own)):
            print(
                f"note: {own} names {_server_in(own)}: if that emulator requires tokens, add --from-data-dir",
                file=sys.stderr,
            )
    return server, access


def _server_in(path: Path) -> str:
    try:
        return str(kubeconfig.access_for(kubeconfig.load([path]), kubeconfig.NAME, str(path)).server)
    except kubeconfig.KubeconfigError:
        return ""


def _kubeconfig(args: argparse.Namespace) -> int:
    """Print the emulator's kubeconfig, or merge its context into the user's kubeconfig file."""
    try:
        server, access = _kubeconfig_access(args)
    except kubeconfig.KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.write is None:
        # a standalone file (e.g. for KUBECONFIG=...), so its one context is also the current one
        print(kubeconfig.render(kubeconfig.kubeconfig_for(server, args.namespace, access=access)), end="")
        return 0
    path = kubeconfig.default_path() if args.write == "" else Path(args.write).expanduser()
    try:
        kubeconfig.write(path, server, use=args.use, namespace=args.namespace, access=access)
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
    kc.add_argument("--server", help="the emulator's API URL [default: the --from-data-dir kubeconfig's, else from EMULATOR_API_HOST/EMULATOR_API_PORT, else http://127.0.0.1:8080]")
    kc.add_argument("--from-data-dir", nargs="?", const="", default=None, metavar="DIR",
                    help="copy server, CA and admin token from the kubeconfig `emulator serve` wrote in DIR, for an API that requires tokens [default DIR: $EMULATOR_DATA_DIR or ~/.local/share/k8s-emulator]")
    kc.add_argument("--token", help="bearer token for the context's user (over --from-data-dir's)")
    kc.add_argument("--certificate-authority", metavar="PATH", help="PEM file to embed as the cluster's certificate-authority-data")
    kc.add_argument("--insecure-skip-tls-verify", action="store_true", help="write insecure-skip-tls-verify: true (no certificate check)")
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
