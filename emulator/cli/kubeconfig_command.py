"""`emulator kubeconfig`: print the emulator's kubeconfig, or merge its context into the user's file."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from emulator.cli import target as targets
from emulator.security import kubeconfig
from emulator.security.datadir import KUBECONFIG_FILE


def _kubeconfig_access(args: argparse.Namespace) -> tuple[str, kubeconfig.Access | None]:
    """The server URL and the credentials (a kubeconfig.Access, or None for the open loopback API) that
    `emulator kubeconfig` writes: --server/--token/--certificate-authority/--insecure-skip-tls-verify
    over what `--from-data-dir` copies from the server's own kubeconfig, over the plain-http default."""
    access: kubeconfig.Access | None = None
    if args.from_data_dir is not None:
        folder = Path(args.from_data_dir).expanduser() if args.from_data_dir else None
        path = folder / KUBECONFIG_FILE if folder else targets.data_dir_kubeconfig(os.environ)
        if not path.exists():
            raise kubeconfig.KubeconfigError(
                f"{path} does not exist: `emulator serve` writes it when the API requires tokens (--require-auth, or "
                "a non-loopback --api-host); an API without tokens needs no --from-data-dir"
            )
        access = kubeconfig.access_for(kubeconfig.load([path]), kubeconfig.NAME, str(path))
    server = (args.server or (access.server if access else "") or targets.served_at(os.environ)).rstrip("/")
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
        own = targets.data_dir_kubeconfig(os.environ)
        if own.exists() and targets.same_address(server, _server_in(own)):
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


def kubeconfig_command(args: argparse.Namespace) -> int:
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
