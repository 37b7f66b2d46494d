"""Benchmark: workloads end to end — Deployments scaled, rolled and applied, pods behind many services,
memory per pod — through the real server, in one bounded run.

  1. one Deployment scaled 0 → 1,000 replicas behind a Service: time until all 1,000 are Ready (the
     Deployment's status) and in the Service's EndpointSlices; pods/s beside KWOK's documented 20 pods/s;
  2. a rolling update of those 1,000 (an image change) until the rollout is complete (kubectl's criteria);
  3. 100 Deployments × 10 replicas in one `kubectl apply -f`: until every one has 10 ready replicas;
  4. pod create latency (one POST at a time, p50/p99) with 300 services: (a) each pod selected by one
     of them (1,000 pods spread over the 300), (b) the same plus one service selecting all 1,000;
  5. RSS per pod: VmRSS of the server before and after a Deployment of 10,000 pods behind a Service.

    .venv/bin/python bench/workloads/run.py            # the full run, about a minute
    .venv/bin/python bench/workloads/run.py --quick    # 200 replicas, 20 × 10, 300 pods, 2,000 pods
    .venv/bin/python bench/workloads/run.py --ref HEAD # measure a commit (git archive), not the working tree

Each step starts its own `python -m emulator serve --in-memory` (API and DNS on free loopback ports, the
proxy on, no gateway) and waits for /readyz; every server is stopped here, also on Ctrl-C or an error.
See bench/workloads/README.md for how each number is taken. Exit status 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
NS = "bench"

KWOK_PODS_PER_S = 20.0  # KWOK's documented default pod-creation rate (its --kube-api-qps ceiling)
TARGET_PODS_PER_S = 2000.0
TARGET_CREATE_P99 = 0.020  # seconds, with 300 services
TARGET_RSS_PER_POD = 2.5 * 1024  # bytes
GIVE_BACK_WAIT = 6.0  # the server trims its heap every 5 s after a mass release
DEFAULT_TIMEOUT = 120.0
STEP_TIMEOUT = DEFAULT_TIMEOUT  # --timeout


def fail(message: str) -> NoReturn:
    raise SystemExit(f"error: {message}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(source: Path, tmp: Path, name: str) -> Server:
    port = free_port()
    data = tmp / name
    data.mkdir()
    log = tmp / f"{name}.log"
    cmd = [PYTHON, "-m", "emulator", "serve", "--in-memory", "--api-port", str(port), "--dns-port", str(free_port()),
           "--gateway-port", "-1", "--data-dir", str(data), "--log-level", "WARNING"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=source, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if b" 200 " in s.recv(4096).split(b"\r\n", 1)[0]:
                    return server
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            fail(f"the server did not become ready; its log:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.01)


# -- API helpers ------------------------------------------------------------------------------------


async def call(session: aiohttp.ClientSession, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
    data = None if body is None else json.dumps(body)
    async with session.request(method, path, data=data, headers={"Content-Type": content_type}) as response:
        text = await response.text()
        if response.status >= 300:
            fail(f"{method} {path}: {response.status} {text[:300]}")
        return json.loads(text) if text else None


async def watch_until(
    session: aiohttp.ClientSession, path: str, done: Callable[[dict[str, dict[str, Any]]], bool], started: asyncio.Event,
    counts: dict[str, int] | None = None,
) -> float:
    """List `path`, then watch it from there, keeping name → object; returns the perf_counter time at which
    `done(objects)` first held. `started` is set once the watch is open (the measured action may begin).
    A watch the server ends (it cuts off watchers that fall behind) is listed and opened again, as an
    informer does; `counts` (events by type) then misses what happened in between."""
    first = True
    while True:
        listed = await call(session, "GET", path)
        objects = {o["metadata"]["name"]: o for o in listed["items"]}
        if not first and done(objects):
            return time.perf_counter()
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}watch=1&allowWatchBookmarks=false&resourceVersion={listed['metadata']['resourceVersion']}"
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=STEP_TIMEOUT)) as response:
                started.set()
                first = False
                async for line in response.content:
                    if not line.strip():
                        continue
                    if counts is not None:  # only counting: no decoding
                        kind = "DELETED" if line.startswith(b'{"type":"DELETED"') else "WRITTEN"
                        counts[kind] = counts.get(kind, 0) + 1
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "DELETED":
                        objects.pop(obj["metadata"]["name"], None)
                    else:
                        objects[obj["metadata"]["name"]] = obj
                    if done(objects):
                        return time.perf_counter()
        except aiohttp.ClientPayloadError:
            if counts is not None:
                counts["reconnects"] = counts.get("reconnects", 0) + 1


def ready_endpoints(slices: dict[str, dict[str, Any]]) -> int:
    return sum(1 for s in slices.values() for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))


def deployment(name: str, replicas: int, image: str = "nginx:1.27", app: str | None = None) -> dict[str, Any]:
    labels = {"app": app or name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]},
        }},
    }


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"selector": selector, "ports": [{"port": 80}]}}


def rolled_out(replicas: int) -> Callable[[dict[str, dict[str, Any]]], bool]:
    """kubectl rollout status's criteria: observed, every replica updated, available, no old ones left."""
    def done(deployments: dict[str, dict[str, Any]]) -> bool:
        for d in deployments.values():
            status, meta = d.get("status") or {}, d["metadata"]
            if not (status.get("observedGeneration", 0) >= meta.get("generation", 0)
                    and status.get("updatedReplicas") == replicas and status.get("replicas") == replicas
                    and status.get("availableReplicas") == replicas and status.get("readyReplicas") == replicas):
                return False
        return bool(deployments)
    return done


async def new_namespace(session: aiohttp.ClientSession) -> None:
    await call(session, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})


# -- the steps --------------------------------------------------------------------------------------


@dataclass
class Row:
    step: str
    value: str
    peer: str
    target: str
    met: bool | None


async def scale_and_roll(server: Server, replicas: int) -> list[Row]:
    """Steps 1 and 2 on one server: scale 0 → N behind a Service, then change the image."""
    apps = f"/apis/apps/v1/namespaces/{NS}/deployments"
    async with aiohttp.ClientSession(server.base) as session:
        await new_namespace(session)
        await call(session, "POST", apps, deployment("web", 0))
        await call(session, "POST", f"/api/v1/namespaces/{NS}/services", service("web", {"app": "web"}))
        slices_path = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
        endpoint_writes: dict[str, int] = {}
        opened = [asyncio.Event(), asyncio.Event(), asyncio.Event()]
        ready = asyncio.create_task(watch_until(session, apps, rolled_out(replicas), opened[0]))
        listed = asyncio.create_task(watch_until(session, slices_path, lambda s: ready_endpoints(s) >= replicas, opened[1]))
        counted = asyncio.create_task(watch_until(
            session, f"/api/v1/namespaces/{NS}/endpoints", lambda _: False, opened[2], endpoint_writes))
        for event in opened:
            await asyncio.wait_for(event.wait(), 10)
        began = time.perf_counter()
        await call(session, "PATCH", f"{apps}/web", {"spec": {"replicas": replicas}}, "application/merge-patch+json")
        all_ready, all_listed = await asyncio.wait_for(asyncio.gather(ready, listed), STEP_TIMEOUT)
        scaled = max(all_ready, all_listed) - began
        writes_during_scale = endpoint_writes.get("WRITTEN", 0)
        lost = " (at least: the watch was cut off and resumed)" if endpoint_writes.get("reconnects") else ""

        opened_roll = asyncio.Event()
        rolled = asyncio.create_task(watch_until(session, apps, rolled_out(replicas), opened_roll))
        await asyncio.wait_for(opened_roll.wait(), 10)
        began = time.perf_counter()
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}}
        await call(session, "PATCH", f"{apps}/web", patch, "application/strategic-merge-patch+json")
        # the status of the old generation still says "rolled out": wait for the new one's
        await asyncio.sleep(0)
        rolled_at = await asyncio.wait_for(rolled, STEP_TIMEOUT)
        roll = rolled_at - began
        counted.cancel()
    rate = replicas / scaled
    return [
        Row(f"1. scale 0 → {replicas:,} behind a Service (Ready + in slices)", f"{scaled * 1000:,.0f} ms = {rate:,.0f} pods/s",
            f"KWOK {KWOK_PODS_PER_S:.0f} pods/s", f"≥ {TARGET_PODS_PER_S:,.0f} pods/s", rate >= TARGET_PODS_PER_S),
        Row("   Endpoints writes during the scale-up", f"{writes_during_scale}{lost}", "", "reported", None),
        Row(f"2. rolling update of {replicas:,} (image change) until complete", f"{roll * 1000:,.0f} ms = {replicas / roll:,.0f} pods/s",
            "", "reported", None),
    ]


async def apply_many(server: Server, tmp: Path, count: int, replicas: int) -> list[Row]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return [Row(f"3. {count} Deployments × {replicas} by one kubectl apply", "skipped: no kubectl", "", "reported", None)]
    config = tmp / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {"server": server.base}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench", "namespace": NS}}],
        "users": [{"name": "bench", "user": {}}],
    }))
    manifest = tmp / "deployments.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment(f"app-{i:03}", replicas) for i in range(count)]}))
    apps = f"/apis/apps/v1/namespaces/{NS}/deployments"
    async with aiohttp.ClientSession(server.base) as session:
        await new_namespace(session)
        opened = asyncio.Event()

        def all_ready(deployments: dict[str, dict[str, Any]]) -> bool:
            return len(deployments) == count and all((d.get("status") or {}).get("readyReplicas") == replicas for d in deployments.values())

        waiter = asyncio.create_task(watch_until(session, apps, all_ready, opened))
        await asyncio.wait_for(opened.wait(), 10)
        began = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            kubectl, "--kubeconfig", str(config), "--cache-dir", str(tmp / "kube-cache"), "apply", "-f", str(manifest),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        applied = time.perf_counter() - began
        if proc.returncode != 0:
            fail(f"kubectl apply: {err.decode(errors='replace')[:500]}")
        done = await asyncio.wait_for(waiter, STEP_TIMEOUT) - began
    pods = count * replicas
    return [Row(f"3. {count} Deployments × {replicas} by one kubectl apply (all Ready)",
                f"{done * 1000:,.0f} ms = {pods / done:,.0f} pods/s (apply itself {applied * 1000:,.0f} ms)",
                f"KWOK {KWOK_PODS_PER_S:.0f} pods/s", "reported", None)]


async def create_latency(server: Server, services: int, pods: int, wide: bool) -> tuple[float, float, float]:
    """Services s0..s{n-1} each selecting its shard (and `all` selecting every pod when `wide`), then
    `pods` pods created one POST at a time on one keep-alive connection; (p50, p99, max) in seconds."""
    async with aiohttp.ClientSession(server.base, connector=aiohttp.TCPConnector(limit=1)) as session:
        await new_namespace(session)
        for i in range(services):
            await call(session, "POST", f"/api/v1/namespaces/{NS}/services", service(f"s{i}", {"shard": f"s{i}"}))
        if wide:
            await call(session, "POST", f"/api/v1/namespaces/{NS}/services", service("all", {"app": "bench"}))
        times = []
        for j in range(pods):
            body = {"metadata": {"name": f"p{j:05}", "labels": {"app": "bench", "shard": f"s{j % services}"}},
                    "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}]}}
            began = time.perf_counter()
            await call(session, "POST", f"/api/v1/namespaces/{NS}/pods", body)
            times.append(time.perf_counter() - began)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], times[-1]


async def rss_per_pod(server: Server, pods: int) -> tuple[float, int, int]:
    apps = f"/apis/apps/v1/namespaces/{NS}/deployments"
    async with aiohttp.ClientSession(server.base) as session:
        await new_namespace(session)
        await call(session, "POST", apps, deployment("mem", 0))
        await call(session, "POST", f"/api/v1/namespaces/{NS}/services", service("mem", {"app": "mem"}))
        await asyncio.sleep(GIVE_BACK_WAIT)
        before = rss_bytes(server.proc.pid)
        opened = asyncio.Event()
        waiter = asyncio.create_task(watch_until(session, apps, lambda d: (d.get("mem", {}).get("status") or {}).get("readyReplicas") == pods, opened))
        await asyncio.wait_for(opened.wait(), 10)
        await call(session, "PATCH", f"{apps}/mem", {"spec": {"replicas": pods}}, "application/merge-patch+json")
        await asyncio.wait_for(waiter, STEP_TIMEOUT)
    await asyncio.sleep(GIVE_BACK_WAIT)
    after = rss_bytes(server.proc.pid)
    return (after - before) / pods, before, after


# -- the run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, source: Path, tmp: Path) -> list[Row]:
    replicas = 200 if args.quick else 1000
    many, each = (20, 10) if args.quick else (100, 10)
    churn_pods = 300 if args.quick else 1000
    memory_pods = 2000 if args.quick else 10_000
    rows: list[Row] = []

    def step(name: str, title: str, body: Callable[[Server], Any]) -> Any:
        """One step on a fresh server; None when it did not finish in time (the run goes on)."""
        print(title, flush=True)
        server = start_server(source, tmp, name)
        try:
            return asyncio.run(body(server))
        except TimeoutError:
            rows.append(Row(f"   {title}", f"did not finish within {args.timeout:.0f} s", "", "", False))
            print(f"   did not finish within {args.timeout:.0f} s", flush=True)
            return None
        finally:
            server.stop()

    def add(*found: Row) -> None:
        for row in found:
            rows.append(row)
            print(f"   {row.step.strip()}: {row.value}", flush=True)

    wanted = set(args.only.split(",")) if args.only else {"1", "3", "4", "5"}
    found = None if "1" not in wanted else step("scale", f"steps 1-2: one Deployment scaled 0 → {replicas} behind a Service, then rolled",
                 lambda s: scale_and_roll(s, replicas))
    add(*(found or []))
    found = None if "3" not in wanted else step("apply", f"step 3: {many} Deployments × {each} in one kubectl apply", lambda s: apply_many(s, tmp, many, each))
    add(*(found or []))
    for wide in (False, True) if "4" in wanted else ():
        label = "4b. … plus one service selecting all" if wide else f"4a. pod create, 300 services, {churn_pods:,} pods"
        title = f"step {label.split('.')[0]}: {churn_pods} pod creates with 300 services{' (+1 selecting all)' if wide else ''}"
        latency = step(f"churn-{int(wide)}", title, functools.partial(create_latency, services=300, pods=churn_pods, wide=wide))
        if latency is not None:
            p50, p99, worst = latency
            add(Row(label, f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {worst * 1000:.0f} ms", "",
                    f"p99 < {TARGET_CREATE_P99 * 1000:.0f} ms", p99 < TARGET_CREATE_P99))
    memory = None if "5" not in wanted else step("memory", f"step 5: RSS before and after a Deployment of {memory_pods:,} pods behind a Service",
                  lambda s: rss_per_pod(s, memory_pods))
    if memory is not None:
        per_pod, before, after = memory
        add(Row(f"5. RSS per pod ({memory_pods:,} pods, Deployment + Service)",
                f"{per_pod / 1024:.2f} KB ({before / 2**20:.0f} → {after / 2**20:.0f} MiB)", "",
                f"≤ {TARGET_RSS_PER_POD / 1024:.1f} KB", per_pod <= TARGET_RSS_PER_POD))
    return rows


def source_tree(ref: str | None, tmp: Path) -> Path:
    if ref is None:
        return ROOT
    into = tmp / "source"
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=False)
    if archive.returncode != 0:
        fail(f"git archive {ref}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 200 replicas, 20 × 10, 300 pods, 2,000 pods")
    ap.add_argument("--ref", metavar="REV", help="measure a committed revision (git archive REV) instead of the working tree")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server logs) and print it")
    ap.add_argument("--only", metavar="STEPS", help="run only these steps, e.g. 1,4 (1 includes 2)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds a step may take [{DEFAULT_TIMEOUT:.0f}]")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workloads-"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # ends the run through the cleanup below
    global STEP_TIMEOUT  # noqa: PLW0603 (one setting, read by every step)
    STEP_TIMEOUT = args.timeout
    try:
        source = source_tree(args.ref, tmp)
        load = os.getloadavg()[0]
        rows = run(args, source, tmp)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temp dir removed", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    width = max((len(r.step) for r in rows), default=4)
    print(f"\nworkloads ({'--quick' if args.quick else 'full'}{', ' + args.ref if args.ref else ''}; load average {load:.2f} → {os.getloadavg()[0]:.2f})")
    print(f"{'step':<{width}}  {'measured':<48}  {'peer':<18}  target")
    for r in rows:
        mark = "" if r.met is None else ("  ok" if r.met else "  MISSED")
        print(f"{r.step:<{width}}  {r.value:<48}  {r.peer:<18}  {r.target}{mark}")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
