"""`emulator flows`: the flows a running emulator recorded (DNS queries, connections, UDP flows, HTTP requests
with their verdicts), in `hubble observe`'s idioms: the last N, or `-f` to follow; filters by verdict, pod,
destination service, namespace and kind; one compact line per flow (coloured on a terminal, unless
NO_COLOR is set) or `-o json`, one JSON object per line. It reads `GET /emulator/v1/flows` (api/flows.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlencode

import aiohttp

from emulator.cli import target as targets
from emulator.cli.apiclient import Api, ApiError, Unreachable
from emulator.cli.target import ApiTarget
from emulator.flows.log import API_PATH

PATH = API_PATH
DEFAULT_LAST = 20  # flows shown without --last and without --follow, as hubble observe
COLOURS = {"allowed": "\033[32m", "denied": "\033[31m", "error": "\033[33m"}
RESET = "\033[0m"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new flows as they happen")
    parser.add_argument("--verdict", choices=("allowed", "denied", "error"), help="only flows with this verdict")
    parser.add_argument("--pod", help="only flows from or to this pod: NAMESPACE/NAME, or NAME in any namespace")
    parser.add_argument("--to-service", dest="service", metavar="SERVICE", help="only flows to this service: NAMESPACE/NAME or NAME")
    parser.add_argument("-n", "--namespace", help="only flows with a pod or the destination service in this namespace")
    parser.add_argument("--dns", action="store_true", help="only DNS queries (as --kind dns)")
    parser.add_argument("--kind", help="only these kinds, a comma list of dns, tcp, udp, http")
    parser.add_argument("--since", help="only flows since a time: a duration ago (30s, 5m, 2h) or an RFC 3339 time")
    parser.add_argument("--last", type=int, metavar="N", help=f"the last N matching flows [default: {DEFAULT_LAST}; 0 with --follow]")
    parser.add_argument("-o", "--output", choices=("compact", "json"), default="compact", help="one line per flow, or one JSON object per line")
    targets.add_arguments(parser)


def since_time(text: str, now: datetime | None = None) -> str:
    """`--since` as the RFC 3339 time the API takes: a duration ago, or a time as given."""
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        moment = (now or datetime.now(UTC)) - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f'--since "{text}": use a duration such as 30s, 5m or 2h, or an RFC 3339 time') from None
    return text


def query(args: argparse.Namespace, limit: int | None, since: int | None = None, watch: bool = False) -> dict[str, str]:
    """The API's query parameters for these flags."""
    params: dict[str, str] = {}
    kinds = [k for k in (args.kind or "").split(",") if k.strip()]
    if args.dns and "dns" not in kinds:
        kinds.append("dns")
    for name, value in (("verdict", args.verdict), ("pod", args.pod), ("service", args.service),
                        ("namespace", args.namespace), ("kind", ",".join(kinds))):
        if value:
            params[name] = value
    if args.since:
        params["sinceTime"] = since_time(args.since)
    if limit is not None:
        params["limit"] = str(limit)
    if since:
        params["since"] = str(since)
    if watch:
        params["watch"] = "1"
    return params


def colours_wanted(stream: TextIO, environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return stream.isatty() and "NO_COLOR" not in environ


def compact(flow: dict[str, Any], colour: bool = False) -> str:
    """`TIME  KIND  VERDICT  SUMMARY`, hubble's order."""
    when = str(flow.get("time") or "")
    when = when[11:23] if len(when) >= 23 else when
    verdict = str(flow.get("verdict") or "")
    shown = verdict.upper().ljust(7)
    if colour and verdict in COLOURS:
        shown = f"{COLOURS[verdict]}{shown}{RESET}"
    return f"{when}  {str(flow.get('kind') or '').upper():<4}  {shown}  {flow.get('summary') or ''}"


def command(args: argparse.Namespace) -> int:
    try:
        target = targets.from_args(args)
    except targets.TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.last is not None and args.last < 0:
        print("error: --last must be 0 or more", file=sys.stderr)
        return 1
    try:
        return asyncio.run(observe(target, args, sys.stdout))
    except KeyboardInterrupt:
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def observe(target: ApiTarget, args: argparse.Namespace, out: TextIO) -> int:
    api = Api(target)
    colour = args.output == "compact" and colours_wanted(out)

    def show(flow: dict[str, Any]) -> None:
        out.write((json.dumps(flow) if args.output == "json" else compact(flow, colour)) + "\n")
        out.flush()

    try:
        last = args.last if args.last is not None else (0 if args.follow else DEFAULT_LAST)
        listed = await api.call("GET", f"{PATH}?{urlencode(query(args, max(last, 1)))}")
        items = listed.get("items") or [] if isinstance(listed, dict) else []
        for flow in items[-last:] if last else []:
            show(flow)
        if not args.follow:
            return 0
        after = int(listed.get("lastId") or 0) if isinstance(listed, dict) else 0
        await follow(api, query(args, None, since=after, watch=True), show)
        return 0
    except (Unreachable, ApiError) as exc:
        message = str(exc)
        if isinstance(exc, ApiError) and exc.code == 404:
            message = "this emulator records no flows (it was started with --no-flows, or predates them)"
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        await api.close()


async def follow(api: Api, params: dict[str, str], show: Any) -> None:
    """Print flows as the watch streams them; a stream the server ends (this client fell behind) is resumed
    after the last flow shown."""
    after = int(params.get("since") or 0)
    while True:
        params["since"] = str(after)
        url = f"{api.server}{PATH}?{urlencode(params)}"
        try:
            async with api.session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
                if response.status >= 400:
                    raise ApiError(response.status, {"message": (await response.text()).strip()})
                async for line in response.content:
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    flow = message.get("flow") or {}
                    after = max(after, int(flow.get("id") or 0))
                    show(flow)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError):
            pass  # the stream was cut (this client fell behind): resume after the last flow shown
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(api.server, exc) from exc
        await asyncio.sleep(0.2)
