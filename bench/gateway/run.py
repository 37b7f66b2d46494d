"""Benchmark: the emulator's gateway routing 50 Ingress hosts and 200 paths, against haproxy configured
with the same routes, side by side in one bounded run (issue 14).

  - backends: one haproxy process with 100 frontends (two endpoints for each of 50 Services) that answer
    200 themselves (`http-request return`), the body naming the service and endpoint, so that the
    backends are never what is measured and every answer says who answered;
  - the real emulator (`python -m emulator serve --in-memory` on free loopback ports, its HTTPS gateway
    port too when it has one) with, created through its API: 50 selector-less Services, their Endpoints
    (pointing at those backends), a kubernetes.io/tls Secret and 50 Ingresses of class `emulator`, one
    per host, 4 paths each (Prefix and Exact, overlapping prefixes, ports by number and by name): 200
    host/path routes;
  - haproxy under test, `nbthread 1`, `mode http`, the same 200 routes as acls on the Host header and
    the path (Exact: `path`; Prefix, element-wise: `path` or `path_beg <prefix>/`), `use_backend` in the
    Ingress precedence (Exact first, longer prefix first), `balance roundrobin`, `http-reuse always`,
    `option forwardfor` (HTTP, and HTTPS with the same certificate); and, for reference, a second
    frontend routing the same by two map lookups, as haproxy's own Ingress controllers do;
  - correctness first: every route (and a few that must not match) through each, checking that the
    right service answered (or that it is a 404);
  - wrk --latency with a generated Lua script cycling through the 200 host/path requests, keep-alive
    and connection-per-request (`Connection: close`), over HTTP and HTTPS, the servers interleaved.

It prints requests/s, p99, CPU per request of the server under test (from /proc) and the ratios
emulator/haproxy against the issue's targets (>= 0.7x requests/s, p99 <= 2x); exit 0 only when they hold.

    .venv/bin/python bench/gateway/run.py [--duration 5] [--connections 64] [--repeat 1] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _load(name: str, path: Path) -> ModuleType:
    """The helpers of a sibling bench (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


api_bench = _load("bench_api_run", HERE.parent / "api" / "run.py")  # Children, wait_ready, parse_wrk, signals
proxy_bench = _load("bench_proxy_run", HERE.parent / "proxy" / "run.py")  # cpu_seconds, wait_port, free_port

Children = api_bench.Children
fail = api_bench.fail
cpu_seconds = proxy_bench.cpu_seconds
free_port = proxy_bench.free_port
wait_port = proxy_bench.wait_port

PYTHON = api_bench.PYTHON
NAMESPACE = "bench"
SERVICES = 50
HOSTS = 50
DOMAIN = "bench.test"
SERVICE_CIDR = "127.111.0.0/16"
SERVICE_PORT = 8080  # unprivileged: the proxy also binds each service's cluster IP
ENDPOINT_NETS = ("127.0.80", "127.0.81")  # endpoint a and b of service i: 127.0.80.(i+1), 127.0.81.(i+1)
TLS_SECRET = "bench-tls"
TARGET_RPS = 0.7  # emulator requests/s >= 0.7 x haproxy's
TARGET_P99 = 2.0  # emulator p99 <= 2 x haproxy's


# -- the routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    host: str
    path_type: str  # "Exact" | "Prefix"
    path: str
    service: str
    by_name: bool  # the Ingress names the service port instead of giving its number
    sample: str  # a request path this route (and no more precise one) answers


@dataclass(frozen=True)
class Probe:
    """One correctness request: Host, path and the service that must answer (None: a 404)."""

    host: str
    path: str
    service: str | None


def service_name(i: int) -> str:
    return f"svc-{i:02d}"


def routes() -> list[Route]:
    """50 hosts x 4 paths: two overlapping prefixes, an Exact path inside the shorter prefix, a
    per-host prefix; each path of a host goes to a different service."""
    out = []
    for i in range(HOSTS):
        host = f"h{i}.{DOMAIN}"
        v = f"/api/v{i % 3 + 1}"
        paths = (
            ("Prefix", "/api", "/api/items"),
            ("Prefix", v, f"{v}/items/42"),
            ("Exact", "/api/health", "/api/health"),
            ("Prefix", f"/p{i}", f"/p{i}/index.html"),
        )
        for j, (kind, path, sample) in enumerate(paths):
            svc = service_name((i + 13 * j) % SERVICES)
            out.append(Route(host, kind, path, svc, by_name=(i + j) % 2 == 1, sample=sample))
    return out


def probes(table: list[Route]) -> list[Probe]:
    """Every route's sample request, plus edge cases whose answer the Ingress rules fix."""
    out = [Probe(r.host, r.sample, r.service) for r in table]
    by_host: dict[str, dict[str, Route]] = {}
    for r in table:
        by_host.setdefault(r.host, {})[r.path] = r
    for i in (0, 1, 2, 17, 49):
        host = f"h{i}.{DOMAIN}"
        rs = by_host[host]
        api = rs["/api"].service
        v = f"/api/v{i % 3 + 1}"
        out += [
            Probe(host, "/api", api),  # a prefix matches itself
            Probe(host, "/api/", api),
            Probe(host, "/api/health/", api),  # not the Exact path: the /api prefix
            Probe(host, "/api/healthz", api),
            Probe(host, v, rs[v].service),  # the longer prefix wins
            Probe(host, f"{v}x/1", api),  # element-wise: /api/v1x is not under /api/v1
            Probe(host, f"/p{i}", rs[f"/p{i}"].service),
            Probe(host, f"/p{i}x", None),  # element-wise: no match, 404
            Probe(host, "/", None),
            Probe(host.upper() + ":80", "/api/health", rs["/api/health"].service),  # case and port ignored
        ]
    out.append(Probe(f"nohost.{DOMAIN}", "/api/items", None))
    return out


def certificate() -> tuple[bytes, bytes]:
    """(certificate, key) PEM: a self-signed ECDSA P-256 certificate for *.bench.test (one for both
    servers, so that both do the same handshake)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{DOMAIN}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{DOMAIN}")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# -- the backends and haproxy -----------------------------------------------------------------------


def endpoint_ips(i: int) -> tuple[str, str]:
    a, b = ENDPOINT_NETS
    return f"{a}.{i + 1}", f"{b}.{i + 1}"


def backends_config(port: int) -> str:
    fronts = []
    for i in range(SERVICES):
        for ip, letter in zip(endpoint_ips(i), "ab", strict=True):
            name = f"{service_name(i)}/{letter}"
            fronts.append(
                f"frontend {service_name(i)}-{letter}\n  bind {ip}:{port}\n"
                f"  http-request return status 200 content-type text/plain string {name} hdr x-backend {name}\n"
            )
    return (
        "global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n"
        "  timeout server 30s\n" + "".join(fronts)
    )


def _precedence(r: Route) -> tuple[int, int]:
    return (0 if r.path_type == "Exact" else 1, -len(r.path))


def haproxy_maps(table: list[Route]) -> tuple[str, str]:
    """(exact.map, prefix.map) for the map-based frontend, as haproxy's own Ingress controllers route:
    keys are host + path; a Prefix `/a` is the key `host/a/`, looked up with the request's host + path +
    "/" by `map_beg` (element-wise: `/a/b/` and `/a/` begin with `/a/`, `/ab/` does not), longest first."""
    exact = [f"{r.host}{r.path} {r.service}" for r in table if r.path_type == "Exact"]
    prefixes = sorted((r for r in table if r.path_type == "Prefix"), key=lambda r: -len(r.host + r.path))
    prefix = [f"{r.host}{r.path.rstrip('/')}/ {r.service}" for r in prefixes]
    return "\n".join(exact) + "\n", "\n".join(prefix) + "\n"


def haproxy_config(
    port: int, map_port: int, maps: Path, backend_port: int, table: list[Route], tls: tuple[int, Path] | None
) -> str:
    """The same routes as the Ingresses, twice. On `port` (what the targets compare with): acls on the
    host and the path, `use_backend` per host in the Ingress precedence (Exact before Prefix, longer
    prefix first); an element-wise Prefix `/a` is `path /a` or `path_beg /a/`. On `map_port` (for
    reference): two map lookups (see haproxy_maps). With `tls` (port, PEM file), the acl frontend also
    listens for HTTPS there."""
    tls_bind = f"\n  bind 127.0.0.1:{tls[0]} ssl crt {tls[1]}" if tls else ""
    path_acls: dict[tuple[str, str], str] = {}
    acl_lines = []
    for r in table:
        key = (r.path_type, r.path)
        if key not in path_acls:
            name = path_acls[key] = f"p{len(path_acls)}"
            acl_lines.append(f"  acl {name} path {r.path}")
            if r.path_type == "Prefix":
                acl_lines.append(f"  acl {name} path_beg {r.path.rstrip('/')}/")
    hosts: dict[str, list[Route]] = {}
    for r in table:
        hosts.setdefault(r.host, []).append(r)
    # the Host, lower-cased and without its port, fetched once per request (not once per use_backend line)
    acl_lines.append("  http-request set-var(txn.host) req.hdr(host),lower,field(1,:)")
    for n, host in enumerate(hosts):
        acl_lines.append(f"  acl h{n} var(txn.host) -m str {host}")
    uses = []
    for n, (_host, rs) in enumerate(hosts.items()):
        for r in sorted(rs, key=_precedence):
            uses.append(f"  use_backend {r.service} if h{n} {path_acls[(r.path_type, r.path)]}")
    backends = []
    for i in range(SERVICES):
        a, b = endpoint_ips(i)
        backends.append(
            f"backend {service_name(i)}\n  balance roundrobin\n  http-reuse always\n  option forwardfor\n"
            f"  server a {a}:{backend_port}\n  server b {b}:{backend_port}\n"
        )
    return f"""global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend gateway
  bind 127.0.0.1:{port}{tls_bind}
{chr(10).join(acl_lines)}
{chr(10).join(uses)}
  default_backend nomatch
frontend gateway_maps
  bind 127.0.0.1:{map_port}
  http-request set-var(txn.host) req.hdr(host),lower,field(1,:)
  http-request set-var(txn.path) path
  http-request set-var(txn.be) var(txn.host),concat(,txn.path,),map({maps}/exact.map)
  http-request set-var(txn.be) var(txn.host),concat(,txn.path,/),map_beg({maps}/prefix.map,nomatch) unless {{ var(txn.be) -m found }}
  use_backend %[var(txn.be)]
{"".join(backends)}backend nomatch
  http-request return status 404 content-type text/plain string no-route
"""


# -- the emulator's objects -------------------------------------------------------------------------


def objects(backend_port: int, table: list[Route], tls: tuple[bytes, bytes] | None) -> dict[str, list[dict[str, Any]]]:
    """API collection path → the objects to create there, in order. With `tls` (certificate, key), a
    kubernetes.io/tls Secret that every Ingress names for its host."""
    ns = f"/api/v1/namespaces/{NAMESPACE}"
    services, endpoints = [], []
    for i in range(SERVICES):
        name = service_name(i)
        services.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": backend_port}]},
        })
        endpoints.append({
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": ip} for ip in endpoint_ips(i)],
                         "ports": [{"name": "http", "port": backend_port}]}],
        })
    hosts: dict[str, list[Route]] = {}
    for r in table:
        hosts.setdefault(r.host, []).append(r)
    ingresses = []
    for host, rs in hosts.items():
        paths = [
            {"path": r.path, "pathType": r.path_type,
             "backend": {"service": {"name": r.service,
                                     "port": {"name": "http"} if r.by_name else {"number": SERVICE_PORT}}}}
            for r in rs
        ]
        spec: dict[str, Any] = {"ingressClassName": "emulator", "rules": [{"host": host, "http": {"paths": paths}}]}
        if tls:
            spec["tls"] = [{"hosts": [host], "secretName": TLS_SECRET}]
        ingresses.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": host.split(".")[0]},
            "spec": spec,
        })
    secrets = [] if tls is None else [{
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": TLS_SECRET}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(tls[0]).decode(), "tls.key": base64.b64encode(tls[1]).decode()},
    }]
    return {
        "/api/v1/namespaces": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}],
        f"{ns}/services": services,
        f"{ns}/endpoints": endpoints,
        f"{ns}/secrets": secrets,
        f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/ingresses": ingresses,
    }


async def create_objects(base: str, backend_port: int, table: list[Route], tls: tuple[bytes, bytes] | None) -> None:
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:

        async def post(path: str, obj: dict[str, Any]) -> None:
            async with session.post(base + path, data=orjson.dumps(obj), headers=headers) as resp:
                if resp.status not in (200, 201):
                    fail(f"creating {obj['kind']} {obj['metadata']['name']}: {resp.status} {await resp.text()}")

        for path, objs in objects(backend_port, table, tls).items():
            await asyncio.gather(*(post(path, o) for o in objs))


# -- correctness ------------------------------------------------------------------------------------


async def check_routes(url: str, checks: list[Probe], times: int) -> list[str]:
    """Each probe `times` times (so both endpoints answer); the mistakes, as lines."""
    wrong: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16),
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        sem = asyncio.Semaphore(16)

        async def one(p: Probe) -> None:
            async with sem:
                try:
                    async with session.get(url + p.path, headers={"Host": p.host}, allow_redirects=False,
                                           ssl=False) as resp:
                        body = (await resp.text()).strip()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    wrong.append(f"Host {p.host} {p.path}: {exc!r}")
                    return
            if p.service is None:
                if status != 404:
                    wrong.append(f"Host {p.host} {p.path}: expected 404, got {status} {body[:80]!r}")
            elif status != 200 or body.split("/")[0] != p.service:
                wrong.append(f"Host {p.host} {p.path}: expected {p.service}, got {status} {body[:80]!r}")

        await asyncio.gather(*(one(p) for p in checks for _ in range(times)))
    return wrong


async def wait_routed(url: str, checks: list[Probe], timeout: float) -> list[str]:
    """Poll until every route answers right (the gateway compiles Ingresses after they are stored)."""
    deadline = time.monotonic() + timeout
    while True:
        wrong = await check_routes(url, checks, 1)
        if not wrong or time.monotonic() > deadline:
            return wrong
        await asyncio.sleep(0.5)


# -- wrk --------------------------------------------------------------------------------------------


def lua_script(table: list[Route], close: bool) -> str:
    """wrk script: a table of the 200 preformatted requests, cycled from a random start per thread."""
    conn = ', Connection = "close"' if close else ""
    rows = "\n".join(f'  {{"{r.sample}", "{r.host}"}},' for r in table)
    return f"""-- generated by bench/gateway/run.py: every request is routed by host and path
local pairs = {{
{rows}
}}
local requests = {{}}
local i = 0

function init(args)
  for k, p in ipairs(pairs) do
    requests[k] = wrk.format("GET", p[1], {{ Host = p[2]{conn} }})
  end
  i = math.random(#requests) - 1
end

function request()
  i = i % #requests + 1
  return requests[i]
end
"""


@dataclass
class Result:
    rps: float
    p99: float  # seconds
    cpu_us: float  # CPU microseconds of the server under test per request
    errors: str


def run_wrk(
    children: Any, url: str, script: Path, args: argparse.Namespace, cpu: str | None, pid: int, out: Path
) -> Result:
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script), url]
    before = cpu_seconds(pid)
    out.unlink(missing_ok=True)
    proc = children.spawn(cmd, out, cpu)
    try:
        proc.wait(args.duration + 30)
    finally:
        children.stop(proc)
    used = cpu_seconds(pid) - before
    run = api_bench.parse_wrk(out.read_text())
    errors = ", ".join(
        x for x in (f"{run.non_2xx} non-2xx" if run.non_2xx else "", run.socket_errors and f"socket errors: {run.socket_errors}") if x
    )
    rps = run.requests / run.seconds if run.seconds else 0.0
    return Result(rps, run.p99, used / run.requests * 1e6 if run.requests else 0.0, errors)


def best(runs: list[Result]) -> Result:
    return max(runs, key=lambda r: r.rps)


# -- main -------------------------------------------------------------------------------------------


def emulator_has(flag: str) -> bool:
    out = subprocess.run([PYTHON, "-m", "emulator", "serve", "--help"], cwd=ROOT, capture_output=True, text=True)
    return flag in out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (at most 30)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="runs per server and variant, interleaved; the best counts")
    ap.add_argument("--pin", action="store_true", help="server under test on CPU 0, wrk and backends on the others")
    ap.add_argument("--no-tls", action="store_true", help="leave the HTTPS variants out (HTTP only, ~30 s)")
    ap.add_argument("--route-timeout", type=float, default=30.0, help="seconds to wait for the Ingresses to route")
    args = ap.parse_args()
    args.duration = max(1, min(args.duration, 30))
    args.repeat = max(1, min(args.repeat, 5))
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (Debian: apt-get install {tool})")
    ncpu = os.cpu_count() or 1
    pin = args.pin and ncpu >= 2
    sut_cpu = "0" if pin else None
    rest = f"1-{ncpu - 1}" if pin else None
    table = routes()
    checks = probes(table)
    load_before = os.getloadavg()

    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    children = Children()
    try:
        bport = free_port(endpoint_ips(0)[0])
        (tmp / "backends.cfg").write_text(backends_config(bport))
        children.spawn(["haproxy", "-db", "-f", str(tmp / "backends.cfg")], tmp / "backends.log", rest)
        for i in range(SERVICES):
            for ip in endpoint_ips(i):
                wait_port(ip, bport)

        has_https = emulator_has("--gateway-https-port")  # the emulator's HTTPS gateway port (issue 14)
        https = has_https and not args.no_tls
        tls = certificate() if https else None
        h_port, m_port, hs_port = free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1")
        exact_map, prefix_map = haproxy_maps(table)
        (tmp / "exact.map").write_text(exact_map)
        (tmp / "prefix.map").write_text(prefix_map)
        (tmp / "bench.pem").write_bytes(tls[0] + tls[1] if tls else b"")
        haproxy_tls = (hs_port, tmp / "bench.pem") if tls else None
        (tmp / "haproxy.cfg").write_text(haproxy_config(h_port, m_port, tmp, bport, table, haproxy_tls))
        haproxy = children.spawn(["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")], tmp / "haproxy.log", sut_cpu)
        wait_port("127.0.0.1", h_port)

        api_port, gw_port, gws_port = free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1")
        # cluster IPs from a range of their own: other emulators on this machine bind the default one's start
        cmd = [PYTHON, "-m", "emulator", "serve", "--in-memory", "--api-port", str(api_port), "--dns-port", "-1",
               "--gateway-host", "127.0.0.1", "--gateway-port", str(gw_port), "--service-cidr", SERVICE_CIDR,
               "--log-level", "WARNING"]
        if has_https:  # bound even with --no-tls: a free port, never the default 8443 another emulator may hold
            cmd += ["--gateway-https-port", str(gws_port)]
        emulator = children.spawn(cmd, tmp / "emulator.log", sut_cpu)
        api_bench.wait_ready(emulator, api_port, tmp / "emulator.log")
        wait_port("127.0.0.1", gw_port)
        began = time.perf_counter()
        asyncio.run(create_objects(f"http://127.0.0.1:{api_port}", bport, table, tls))
        created = time.perf_counter() - began
        print(f"{len(table)} routes ({HOSTS} hosts x 4 paths, Prefix and Exact) to {SERVICES} services x 2 endpoints; "
              f"objects created through the API in {created:.2f}s")

        # (variant, Lua script's Connection: close, [(server, url, pid)]): the first server is what the
        # targets compare the emulator (last) with
        h_url, m_url, e_url = (f"http://127.0.0.1:{p}" for p in (h_port, m_port, gw_port))
        plain = [("haproxy", h_url, haproxy.pid), ("haproxy maps", m_url, haproxy.pid), ("emulator", e_url, emulator.pid)]
        variants = [("keep-alive", False, plain), ("conn/request", True, plain)]
        if https:
            hs_url, es_url = f"https://127.0.0.1:{hs_port}", f"https://127.0.0.1:{gws_port}"
            secure = [("haproxy", hs_url, haproxy.pid), ("emulator", es_url, emulator.pid)]
            variants += [("TLS keep-alive", False, secure), ("TLS conn/req", True, secure)]
        for url in (h_url, m_url, *([hs_url] if https else [])):
            wrong = asyncio.run(check_routes(url, checks, 2))
            if wrong:
                fail(f"haproxy's configuration ({url}) does not route as the Ingresses say (a bug of this bench):\n  "
                     + "\n  ".join(wrong[:20]))
        began = time.perf_counter()
        wrong = asyncio.run(wait_routed(e_url, checks, args.route_timeout))
        if wrong:
            fail(f"the emulator's gateway does not route the Ingresses after {args.route_timeout:.0f}s "
                 f"({len(wrong)} of {len(checks)} probes wrong), e.g.:\n  " + "\n  ".join(wrong[:12])
                 + f"\nits log:\n{api_bench.tail(tmp / 'emulator.log')}")
        settled = time.perf_counter() - began
        for url in (e_url, *([es_url] if https else [])):
            wrong = asyncio.run(check_routes(url, checks, 2))
            if wrong:
                fail(f"the emulator's gateway ({url}) routes wrongly:\n  " + "\n  ".join(wrong[:20]))
        print(f"correctness: {len(checks)} probes x 2 (every route, prefix/exact edges, 404s) answered right by "
              f"every server{' over HTTP and HTTPS' if https else ''}; the gateway routed {settled:.2f}s after "
              "the last object was created")

        version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()[2]
        print(f"wrk -t1 -c{args.connections} -d{args.duration}s --latency, a Lua table of the {len(table)} "
              f"host/path requests; best of {args.repeat}, interleaved")
        print(f"haproxy {version} nbthread 1 (acl per host and path, use_backend) against the emulator's one "
              f"process (uvloop); TLS: {'ECDSA P-256 certificate from a Secret, no session reuse' if https else 'left out (--no-tls)' if has_https else 'the emulator has no HTTPS gateway port yet'}")
        print("CPU pinning: " + (f"server under test on CPU 0, wrk and backends on {rest}" if pin
                                 else f"none ({ncpu} CPUs shared by wrk, backends and the server; --pin separates them)"))
        print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
        print()
        results: dict[str, dict[str, Result]] = {}
        for variant, close, servers in variants:
            script = tmp / f"routes-{'close' if close else 'keepalive'}.lua"
            script.write_text(lua_script(table, close))
            runs: dict[str, list[Result]] = {who: [] for who, _, _ in servers}
            for n in range(args.repeat):  # interleaved: a noisy neighbour hurts all alike
                for who, url, pid in servers:
                    out = tmp / f"wrk-{len(results)}-{who.replace(' ', '-')}-{n}.out"
                    runs[who].append(run_wrk(children, url, script, args, rest, pid, out))
            results[variant] = {who: best(rs) for who, rs in runs.items()}
            for who, r in results[variant].items():
                note = f"   ({r.errors})" if r.errors else ""
                print(f"  {variant:<16} {who:<13} {r.rps:>9,.0f} req/s   p99 {r.p99 * 1e3:7.2f} ms   "
                      f"{r.cpu_us:6.1f} us CPU/request{note}")
        print()
        ok = True
        for variant, by in results.items():
            e = by["emulator"]
            for who in ("haproxy", "haproxy maps"):
                if who not in by:
                    continue
                h = by[who]
                rps = e.rps / h.rps if h.rps else 0.0
                p99 = e.p99 / h.p99 if h.p99 else float("inf")
                per_cpu = h.cpu_us / e.cpu_us if e.cpu_us else 0.0
                if who == "haproxy":  # the comparison: the acl configuration
                    met_rps, met_p99 = rps >= TARGET_RPS, p99 <= TARGET_P99
                    clean = not (h.errors or e.errors)
                    ok &= met_rps and met_p99 and clean
                    print(f"  {variant:<16} emulator/haproxy: {rps:.3f}x req/s (target >= {TARGET_RPS}: "
                          f"{'met' if met_rps else 'NOT met'}), {p99:.3f}x p99 (target <= {TARGET_P99}: "
                          f"{'met' if met_p99 else 'NOT met'}), {per_cpu:.2f}x requests per CPU-second"
                          + ("" if clean else "; errors seen"))
                else:
                    print(f"  {variant:<16} emulator/haproxy maps (for reference): {rps:.3f}x req/s, {p99:.3f}x p99, "
                          f"{per_cpu:.2f}x requests per CPU-second")
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        sys.exit(0 if ok else 1)
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        with api_bench.stopped_on_signals():  # SIGINT, SIGTERM, SIGHUP: out through main's cleanup
            main()
    except KeyboardInterrupt:
        sys.exit("interrupted; every process this run started is stopped")
