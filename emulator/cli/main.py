"""The `emulator` command line: `serve` runs the emulator (serve.py); `run`, `env` and `kubeconfig` talk
to a running one over its HTTP API."""

from __future__ import annotations

import argparse
import logging
import sys

from emulator import config as config_module

log = logging.getLogger("emulator")
COMMANDS = ("serve", "kubeconfig", "run", "env", "flows")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="emulator", description="Kubernetes service discovery and routing on one machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulator (API, DNS, proxy)")
    config_module.add_arguments(serve)
    if argv[:1] == ["serve"]:
        # `serve` parses only its own options: the other commands' modules (their API client, the kubelet's
        # sandbox, ctypes) would cost its start ~7 ms for nothing; its help and errors read the same
        commands.metavar = "{" + ",".join(COMMANDS) + "}"  # every command in the usage line all the same
        from emulator.cli import serve as serve_command  # the engine and api/ load only for `serve`

        return serve_command.main(config_module.from_args(parser.parse_args(argv)))
    from emulator.cli import flows as flows_module
    from emulator.cli import run as run_module
    from emulator.cli.kubeconfig_command import kubeconfig_command

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
    flows = commands.add_parser(
        "flows", help="show the flows the emulator recorded: DNS queries, connections, HTTP requests, with verdicts",
        description="Like `hubble observe`: the last flows (or -f to follow them), filtered; see docs/observing.md.",
    )
    flows_module.add_arguments(flows)
    args = parser.parse_args(argv)
    if args.command == "serve":
        from emulator.cli import serve as serve_command  # the engine and api/ load only for `serve`

        return serve_command.main(config_module.from_args(args))
    if args.command == "kubeconfig":
        return kubeconfig_command(args)
    if args.command == "run":
        return run_module.run_command(args, run)
    if args.command == "env":
        return run_module.env_command(args)
    if args.command == "flows":
        return flows_module.command(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
