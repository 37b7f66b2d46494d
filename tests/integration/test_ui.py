"""The web page (`/emulator/ui/`) in a real browser: headless Chromium driven through the DevTools protocol
(aiohttp's WebSocket client), against a real emulator holding a namespace with two pods, a service and a
deny-all NetworkPolicy. The service map lists the namespace's services, the "why" view names the policy that
denies client → web, a pod's details show its status and environment (and logs, with the kubelet), the page
asks for a token when the API requires one, and a denied connection shows in the flow stream within 2 s.
Screenshots are kept in tests/artifacts/ui/.

The page's strict headers hold too: a Content-Security-Policy violation or an uncaught exception in the page
fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
import pytest

from tests.conftest import ROOT, Emulator, free_port, require_tool, start_emulator

ARTIFACTS = ROOT / "tests" / "artifacts" / "ui"
NS = "shop"
NETPOL = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
WIDTH, HEIGHT = 1280, 800


# --- the browser -----------------------------------------------------------------------------------------


@dataclass
class Page:
    """One page target, spoken to over the DevTools protocol; console errors and exceptions are collected."""

    ws: aiohttp.ClientWebSocketResponse
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    next_id: int = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                self.problems.append(str(data["params"]["exceptionDetails"].get("exception", {}).get("description")))
            elif data.get("method") == "Log.entryAdded":
                entry = data["params"]["entry"]
                if entry.get("level") == "error" and entry.get("source") in ("security", "javascript", "violation"):
                    self.problems.append(f"{entry.get('source')}: {entry.get('text')}")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the browser went away"))

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """The expression's value once truthy; fails with a screenshot after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                await self.screenshot("timeout")
                body = await self.evaluate("document.body.innerText")
                raise AssertionError(f"not true within {timeout}s: {expression}\npage:\n{body[:3000]}\nproblems: {self.problems}")
            await asyncio.sleep(0.1)

    async def screenshot(self, name: str) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def set_value(self, selector: str, value: str) -> None:
        """Choose `value` in a select (or type it in an input) as a user would: the page sees `change`."""
        done = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return false; e.value = {json.dumps(value)};"
            " e.dispatchEvent(new Event('change', {bubbles: true})); return e.value; })()"
        )
        assert done == value, f"{selector} has no option {value!r}"

    async def click(self, selector: str) -> None:
        assert await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; e.click(); return true; }})()"
        ), f"nothing to click at {selector}"


def _profile_processes(profile: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(profile) in part for part in process.info["cmdline"] or ()):
                found.append(process)
    return found


@contextlib.asynccontextmanager
async def browser(tmp_path: Path, *flags: str) -> AsyncIterator[Page]:
    """Headless Chromium on a fresh profile, its first page at 1280x800; killed on every path."""
    chromium = require_tool("chromium")
    profile = tmp_path / "chromium-profile"
    log = open(tmp_path / "chromium.log", "wb")  # noqa: SIM115 (closed below, after the browser)
    proc = subprocess.Popen(
        [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}", *flags, "about:blank",
        ],
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
    )
    session: aiohttp.ClientSession | None = None
    reader: asyncio.Task[None] | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None, f"chromium exited:\n{(tmp_path / 'chromium.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        session = aiohttp.ClientSession()
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        target = next(t for t in targets if t.get("type") == "page")
        ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        page = Page(ws)
        reader = asyncio.create_task(page.read())
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        yield page
    finally:
        if reader is not None:
            reader.cancel()
        if session is not None:
            await session.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the browser and the helpers it started (same group)
        proc.wait()
        for process in _profile_processes(profile):  # a helper that left the group
            with contextlib.suppress(psutil.Error):
                process.kill()
        log.close()


# --- the cluster -----------------------------------------------------------------------------------------


@dataclass
class Shop:
    emulator: Emulator
    pod_ips: dict[str, str]
    cluster_ip: str


def _ranges() -> list[str]:
    # A /24 each inside 127/8, away from the defaults and from test_policies.py's 160-239 range.
    a, b = random.randint(100, 119), random.randint(0, 255)
    return ["--service-cidr", f"127.{a}.{b}.0/24", "--pod-cidr", f"127.{a + 20}.{b}.0/24"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """Namespace `shop`: pods web (app=web, port 8080 "http") and client, service web (80 → http), and a
    NetworkPolicy deny-all that isolates every pod of the namespace for ingress."""
    emu = start_emulator(tmp_path_factory.mktemp("ui") / "data", *_ranges())
    try:
        with emu.client() as api:
            assert api.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).status_code == 201
            ips = {}
            for name, ports in (("web", [{"name": "http", "containerPort": 8080}]), ("client", [])):
                body = {"metadata": {"name": name, "labels": {"app": name}},
                        "spec": {"containers": [{"name": "main", "image": f"shop/{name}:1", "ports": ports,
                                                 "env": [{"name": "GREETING", "value": f"hello from {name}"}]}]}}
                created = api.post(f"/api/v1/namespaces/{NS}/pods", json=body)
                assert created.status_code == 201, created.text
                ips[name] = created.json()["status"]["podIP"]
            service = {"metadata": {"name": "web"},
                       "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
            created = api.post(f"/api/v1/namespaces/{NS}/services", json=service)
            assert created.status_code == 201, created.text
            cluster_ip = created.json()["spec"]["clusterIP"]
            policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all"},
                      "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
            created = api.post(NETPOL, json=policy)
            assert created.status_code == 201, created.text
        yield Shop(emu, ips, cluster_ip)
    finally:
        emu.stop()


def page_url(emu: Emulator, view: str = "map") -> str:
    return f"{emu.api_url}/emulator/ui/#{view}"


async def open_page(page: Page, url: str) -> None:
    await page.call("Page.navigate", url=url)
    await page.wait_for("document.readyState === 'complete' && document.getElementById('status') !== null")


MAP_SERVICES = "[...document.querySelectorAll('#map text.service-name')].map(t => t.textContent)"


# --- the tests -------------------------------------------------------------------------------------------


def test_the_page_is_served_with_strict_headers(shop: Shop) -> None:
    with httpx.Client(base_url=shop.emulator.api_url) as client:
        moved = client.get("/emulator/ui")
        assert moved.status_code == 308 and moved.headers["location"] == "/emulator/ui/"
        for path, media in (("/emulator/ui/", "text/html"), ("/emulator/ui/app.js", "text/javascript"),
                            ("/emulator/ui/app.css", "text/css")):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"].startswith(media)
            assert "default-src 'self'" in answer.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert client.get("/emulator/ui/../api/ui.py").status_code == 404
        assert client.get("/emulator/ui/ui.py").status_code == 404
        # nothing in the page is fetched from elsewhere
        page = client.get("/emulator/ui/").text + client.get("/emulator/ui/app.js").text + client.get("/emulator/ui/app.css").text
        assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
        # the page's own origin may call the API (api/guard.py); the same address on another port may not
        own = client.get(f"/api/v1/namespaces/{NS}/services", headers={"Origin": shop.emulator.api_url})
        assert own.status_code == 200, own.text
        other = f"http://127.0.0.1:{shop.emulator.api_port + 1}"
        assert client.get(f"/api/v1/namespaces/{NS}/services", headers={"Origin": other}).status_code == 403


def test_the_service_map_lists_the_services_of_a_namespace(shop: Shop, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with browser(tmp_path) as page:
            await open_page(page, page_url(shop.emulator))
            await page.wait_for(f"[...document.querySelectorAll('#namespace option')].some(o => o.value === '{NS}')")
            await page.set_value("#namespace", NS)
            await page.wait_for(f"document.getElementById('map-summary').textContent.startsWith('namespace {NS}:')")
            names = await page.wait_for(f"(() => {{ const n = {MAP_SERVICES}; return n.includes('web') && n; }})()")
            assert names == ["web"]  # only the namespace's services
            pods = await page.evaluate("[...document.querySelectorAll('#map text.pod-name')].map(t => t.textContent)")
            assert sorted(pods) == ["client", "web"]
            assert await page.evaluate("document.querySelectorAll('#map path.ready').length") == 1  # web → its pod
            assert await page.evaluate("document.querySelectorAll('#map path.deny').length") == 2  # deny-all → both pods
            # live: a service created now appears without reloading
            with shop.emulator.client() as api:
                body = {"metadata": {"name": "late"}, "spec": {"selector": {"app": "late"}, "ports": [{"port": 81}]}}
                assert api.post(f"/api/v1/namespaces/{NS}/services", json=body).status_code == 201
            await page.wait_for(f"{MAP_SERVICES}.includes('late')", timeout=5)
            await page.screenshot("service-map")
            # a write from the page carries its Origin, which is the API's own: let through (api/guard.py)
            created = await page.evaluate(
                f"fetch('/api/v1/namespaces/{NS}/configmaps', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},"
                " body: JSON.stringify({metadata: {name: 'from-the-page'}})}).then(r => r.status)"
            )
            assert created == 201
            assert page.problems == []
            with shop.emulator.client() as api:
                assert api.delete(f"/api/v1/namespaces/{NS}/services/late").status_code == 200
            await page.wait_for(f"!{MAP_SERVICES}.includes('late')", timeout=5)

    asyncio.run(scenario())


def test_the_why_view_names_the_policy_that_denies(shop: Shop, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with browser(tmp_path) as page:
            await open_page(page, page_url(shop.emulator, "why"))
            await page.wait_for(f"[...document.querySelectorAll('#why-source option')].some(o => o.value === '{NS}/client')")
            await page.set_value("#why-source", f"{NS}/client")
            await page.set_value("#why-kind", "service")
            await page.set_value("#why-destination", f"{NS}/web")
            await page.set_value("#why-port", "http")
            await page.click("#why-form button[type=submit]")
            verdict = await page.wait_for("document.querySelector('#why-result .verdict')?.textContent")
            assert verdict.startswith("denied:") and f"{NS}/web port 8080/TCP" in verdict  # the service's targetPort
            deciding = await page.evaluate("document.querySelector('#why-result .policies').textContent")
            assert f"{NS}/deny-all" in deciding and "ingress" in deciding
            await page.screenshot("why-denied")
            # the other way round, pod to pod: web may reach itself
            await page.set_value("#why-source", f"{NS}/web")
            await page.set_value("#why-kind", "pod")
            await page.set_value("#why-destination", f"{NS}/web")
            await page.set_value("#why-port", "8080/TCP")
            await page.click("#why-form button[type=submit]")
            verdict = await page.wait_for("document.querySelector('#why-result .verdict')?.textContent")
            assert verdict.startswith("allowed:"), verdict
            # from the host (no pod): only ipBlocks could let it in
            await page.set_value("#why-source", "127.0.0.1")
            await page.click("#why-form button[type=submit]")
            verdict = await page.wait_for("document.querySelector('#why-result .verdict')?.textContent")
            assert verdict.startswith("denied: 127.0.0.1 → shop/web"), verdict
            assert page.problems == []

    asyncio.run(scenario())


def test_a_pods_details(shop: Shop, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with browser(tmp_path) as page:
            await open_page(page, page_url(shop.emulator, f"pod/{NS}/web"))
            await page.wait_for("document.getElementById('pod-status').textContent.includes('Running')")
            status = await page.evaluate("document.getElementById('pod-status').textContent")
            assert f"{NS}/web" in status and shop.pod_ips["web"] in status
            env = await page.wait_for("document.getElementById('pod-env').textContent")
            assert "GREETING" in env and "hello from web" in env
            assert "WEB_SERVICE_HOST" in env and shop.cluster_ip in env  # the service's variables, as the kubelet sets them
            containers = await page.evaluate("document.getElementById('pod-containers').textContent")
            assert "shop/web:1" in containers and "8080/TCP (http)" in containers
            # without a kubelet the pod is a record: the page says why there are no logs
            await page.wait_for("document.getElementById('pod-logs').textContent")
            await page.wait_for("document.getElementById('pod-events-note').textContent || document.getElementById('pod-events').children.length")
            await page.screenshot("pod-details")
            assert page.problems == []

    asyncio.run(scenario())


def test_a_running_pods_logs_and_events(tmp_path: Path) -> None:
    """With the kubelet on, the pod view shows the container's lines and the kubelet's events."""
    emu = start_emulator(tmp_path / "data", "--kubelet", "--allow-anonymous", *_ranges())
    try:
        with emu.client() as api:
            body = {"metadata": {"name": "greeter"}, "spec": {"containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo hello from the kubelet; exec sleep 60"]}]}}
            assert api.post("/api/v1/namespaces/default/pods", json=body).status_code == 201

        async def scenario() -> None:
            async with browser(tmp_path) as page:
                await open_page(page, page_url(emu, "pod/default/greeter"))
                await page.wait_for("document.getElementById('pod-containers').textContent.includes('running since')", timeout=20)
                await page.wait_for("document.getElementById('pod-logs').textContent.includes('hello from the kubelet')", timeout=10)
                await page.wait_for("document.getElementById('pod-events').textContent.includes('Started')", timeout=10)
                await page.screenshot("pod-running")
                assert page.problems == []

        asyncio.run(scenario())
    finally:
        with contextlib.suppress(httpx.HTTPError), emu.client() as api:
            api.delete("/api/v1/namespaces/default/pods/greeter", params={"gracePeriodSeconds": "0"})
        emu.stop(timeout=30)


def test_when_tokens_are_required_the_page_asks_for_one(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data", "--require-auth", *_ranges())
    token = (emu.data_dir / "admin-token").read_text().strip()

    async def scenario() -> None:
        # the API's certificate is its own trust anchor: this browser trusts it blindly
        async with browser(tmp_path, "--ignore-certificate-errors") as page:
            assert emu.api_url.startswith("https://")
            await open_page(page, page_url(emu))  # the page itself needs no token
            await page.wait_for("!document.getElementById('token-form').hidden")
            await page.screenshot("token-asked")
            await page.set_value("#token", "not-a-token")
            await page.click("#token-form button[type=submit]")
            refused = await page.wait_for("document.getElementById('token-error').textContent")
            assert "refused" in refused
            await page.set_value("#token", token)
            await page.click("#token-form button[type=submit]")
            await page.wait_for(f"{MAP_SERVICES}.includes('kubernetes')")
            assert await page.evaluate("document.getElementById('token-form').hidden")
            assert await page.evaluate("sessionStorage.getItem('emulator.token')") == token
            assert page.problems == []

    try:
        with httpx.Client(base_url=emu.api_url, verify=False) as anonymous:  # noqa: S501 (only status codes are read)
            assert anonymous.get("/emulator/ui").status_code == 308
            assert anonymous.get("/emulator/ui/app.js").status_code == 200  # the page's files: no cluster data
            for closed in ("/emulator/uix", "/emulator/v1/networkpolicy/check", "/api/v1/pods"):
                assert anonymous.get(closed).status_code == 401, closed
        asyncio.run(scenario())
    finally:
        emu.stop()


SAMPLE_FLOW = {
    "id": 7, "time": "2026-12-02T21:00:00.123456Z", "kind": "tcp", "verdict": "denied",
    "source": {"ip": "127.244.0.5", "pod": f"{NS}/client", "namespace": NS},
    "destination": {"ip": "127.96.0.10", "port": 80, "service": f"{NS}/web", "endpoint": None, "pod": None},
    "policy": {"verdict": "denied", "reason": "shop/web is isolated for ingress", "policies": [f"{NS}/deny-all"]},
    "summary": f"{NS}/client -> {NS}/web:80 denied",
}


class FakeFlows:
    """`GET /emulator/v1/flows?watch=1` as the contract shapes it (backlog, then live flows as NDJSON), beside
    the page's own files: the page's flow stream checked on its own, whatever the emulator records."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.watchers: list[asyncio.Queue[dict[str, Any]]] = []

    async def push(self, flow: dict[str, Any]) -> None:
        for queue in self.watchers:
            await queue.put(flow)

    async def flows(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        self.queries.append(dict(request.query))
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.watchers.append(queue)
        try:
            if "since" not in request.query:
                backlog = {**SAMPLE_FLOW, "id": 1, "verdict": "allowed", "policy": None, "summary": "backlog flow"}
                await response.write(json.dumps({"type": "FLOW", "flow": backlog}).encode() + b"\n")
            while True:
                flow = await queue.get()
                await response.write(json.dumps({"type": "FLOW", "flow": flow}).encode() + b"\n")
        except ConnectionError:  # the page went away
            return response
        finally:
            self.watchers.remove(queue)


def test_the_flow_stream_reads_the_contracts_ndjson(tmp_path: Path) -> None:
    from aiohttp import web

    from api import ui

    async def scenario() -> None:
        fake = FakeFlows()
        app = web.Application()
        app.router.add_routes(ui.routes())
        app.router.add_get("/emulator/v1/flows", fake.flows)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with browser(tmp_path) as page:
                await open_page(page, f"http://127.0.0.1:{port}/emulator/ui/#flows")
                await page.wait_for("document.getElementById('flows').textContent.includes('backlog flow')")
                assert fake.queries[-1]["watch"] == "1"
                await page.set_value("#flow-verdict", "denied")
                await page.set_value("#flow-pod", f"{NS}/client")
                await page.click("#flow-filters button[type=submit]")
                while len(fake.queries) < 2:
                    await asyncio.sleep(0.05)
                assert fake.queries[-1]["verdict"] == "denied" and fake.queries[-1]["pod"] == f"{NS}/client"
                assert "since" not in fake.queries[-1]  # other filters: the backlog again, the old rows gone
                await page.wait_for("document.querySelectorAll('#flows tr').length === 1")
                started = time.monotonic()
                await fake.push(SAMPLE_FLOW)
                row = await page.wait_for("document.querySelector('#flows tr.denied')?.textContent", timeout=2)
                assert time.monotonic() - started < 2
                assert f"{NS}/client" in row and f"{NS}/web:80" in row and f"denied by {NS}/deny-all" in row
                await page.click("#flow-pause")
                await fake.push({**SAMPLE_FLOW, "id": 8, "summary": "while paused"})
                await asyncio.sleep(0.3)
                assert "while paused" not in await page.evaluate("document.getElementById('flows').textContent")
                # away and back: the stream resumes after the newest flow seen, without repeating rows
                await page.click("#tabs button[data-view=map]")
                await page.click("#tabs button[data-view=flows]")
                while len(fake.queries) < 3:
                    await asyncio.sleep(0.05)
                assert fake.queries[-1]["since"] == "8"
                await page.screenshot("flows-contract")
                assert page.problems == []
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_a_denied_connection_shows_in_the_flow_stream(shop: Shop, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with browser(tmp_path) as page:
            await open_page(page, page_url(shop.emulator, "flows"))
            await page.wait_for("document.getElementById('flow-note').textContent === 'live'")
            await page.set_value("#flow-verdict", "denied")
            await page.click("#flow-filters button[type=submit]")
            await page.wait_for("document.getElementById('flow-note').textContent === 'live'")
            started = time.monotonic()
            await asyncio.to_thread(_connect_denied, shop)
            row = await page.wait_for(
                f"[...document.querySelectorAll('#flows tr.denied')].map(r => r.textContent).find(t => t.includes('{NS}/client'))",
                timeout=2,
            )
            assert time.monotonic() - started < 2.5  # within 2 s of the connection (plus this poll's step)
            assert f"{NS}/web:80" in row, row
            with shop.emulator.client() as api:
                flow = api.get("/emulator/v1/flows", params={"verdict": "denied", "pod": f"{NS}/client"}).json()["items"][-1]
            if flow.get("policy"):  # the deciding policy, when the flow names it, is in the row too
                assert f"{NS}/deny-all" in row, row
            await page.screenshot("flows-denied")
            assert page.problems == []

    asyncio.run(scenario())


def test_without_flows_the_page_says_so(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data", "--no-flows", *_ranges())

    async def scenario() -> None:
        async with browser(tmp_path) as page:
            await open_page(page, page_url(emu, "flows"))
            note = await page.wait_for(
                "document.getElementById('flow-note').textContent.includes('not available') && document.getElementById('flow-note').textContent"
            )
            assert "flows not available" in note and "404" in note
            await page.screenshot("flows-unavailable")
            assert page.problems == []

    try:
        asyncio.run(scenario())
    finally:
        emu.stop()


def _connect_denied(shop: Shop) -> None:
    """GET http://web/ from the client's pod IP through the proxy (the port is named http: HTTP mode): denied by
    deny-all (a 403 naming the policy)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection((shop.cluster_ip, 80), timeout=3, source_address=(shop.pod_ips["client"], 0)) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
                    sock.recv(1000)
            return
        except OSError:  # the proxy binds service addresses asynchronously
            assert time.monotonic() < deadline, "the proxy never listened on the service"
            time.sleep(0.1)
