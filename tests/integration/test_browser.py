"""A real browser (headless Chromium) on a page of another origin attacks the API: a no-cors fetch with a
text/plain body, one with an untyped body, a CORS request, a form POST and a rebinding-style Host. The
store must be unchanged. As a control, the same page with its origin allowed (--allow-origins) does
create its pod: the attacks reach the API, and are refused there."""

from __future__ import annotations

import functools
import html
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Emulator, free_port, require_tool, start_emulator

PAGE_HOST = "127.0.0.2"  # another origin than the API's (another address, another port)

ATTACK_PAGE = """<!doctype html>
<html><body><pre id="out">pending</pre>
<script>
const api = "http://127.0.0.1:API_PORT";
const pods = api + "/api/v1/namespaces/default/pods";
const pod = name => JSON.stringify({apiVersion: "v1", kind: "Pod", metadata: {name}, spec: {containers: [{name: "c", image: "x"}]}});
const results = [];
async function attempt(name, send) {
  try { const r = await send(); results.push(name + ":" + r.type + ":" + r.status); }
  catch (e) { results.push(name + ":refused:" + e.name); }
}
(async () => {
  await attempt("text-plain", () => fetch(pods, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: pod("text-plain")}));
  await attempt("untyped", () => fetch(pods, {method: "POST", mode: "no-cors", body: new Blob([pod("untyped")])}));
  await attempt("cors-json", () => fetch(pods, {method: "POST", headers: {"Content-Type": "application/json"}, body: pod("cors-json")}));
  await attempt("rebind", () => fetch("http://rebind.test:API_PORT/api/v1/namespaces/default/pods",
                                      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: pod("rebind")}));
  await new Promise(done => {
    const frame = document.createElement("iframe");
    frame.name = "sink";
    document.body.appendChild(frame);
    frame.onload = done;
    const form = document.createElement("form");
    form.method = "POST"; form.action = pods; form.enctype = "text/plain"; form.target = "sink";
    const field = document.createElement("input");
    const body = pod("form");
    field.name = body.slice(0, -1) + ',"x":"'; field.value = '"}';
    form.appendChild(field);
    document.body.appendChild(form);
    form.submit();
    setTimeout(done, 3000);
  });
  results.push("form:sent");
  document.getElementById("out").textContent = results.join("\\n");
})();
</script></body></html>
"""


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port(PAGE_HOST)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer((PAGE_HOST, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, port
    server.shutdown()
    server.server_close()


def run_page(chromium: str, url: str, emu: Emulator, tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP rebind.test 127.0.0.1",  # a name that points at the API: rebinding
            "--virtual-time-budget=15000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=90,
    )
    match = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S)
    assert match, f"no results from the page:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return html.unescape(match.group(1)).splitlines()


def pod_names(emu: Emulator) -> set[str]:
    with emu.client() as api:
        return {p["metadata"]["name"] for p in api.get("/api/v1/namespaces/default/pods").json()["items"]}


def test_a_page_of_another_origin_changes_nothing(tmp_path: Path, page_server: tuple[Path, int]) -> None:
    chromium = require_tool("chromium")
    folder, port = page_server
    emu = start_emulator(tmp_path / "data")
    try:
        (folder / "attack.html").write_text(ATTACK_PAGE.replace("API_PORT", str(emu.api_port)))
        before = pod_names(emu)
        results = run_page(chromium, f"http://{PAGE_HOST}:{port}/attack.html", emu, tmp_path)
        tried = {line.split(":")[0] for line in results}
        assert tried == {"text-plain", "untyped", "cors-json", "rebind", "form"}, results
        # no-cors requests went out and came back (opaque); the CORS one was refused at the preflight
        assert "text-plain:opaque:0" in results and "untyped:opaque:0" in results, results
        assert "cors-json:refused:TypeError" in results, results
        assert pod_names(emu) == before
    finally:
        emu.stop()


def test_the_same_page_with_its_origin_allowed_reaches_the_api(tmp_path: Path, page_server: tuple[Path, int]) -> None:
    chromium = require_tool("chromium")
    folder, port = page_server
    emu = start_emulator(tmp_path / "data", "--allow-origins", f"http://{PAGE_HOST}:{port}")
    try:
        (folder / "attack.html").write_text(ATTACK_PAGE.replace("API_PORT", str(emu.api_port)))
        results = run_page(chromium, f"http://{PAGE_HOST}:{port}/attack.html", emu, tmp_path)
        assert "cors-json:cors:201" in results, results
        created = pod_names(emu)
        assert "cors-json" in created
        # what the API server does not decode stays refused even from an allowed page
        assert not created & {"text-plain", "form"}
        with httpx.Client(base_url=emu.api_url) as api:
            assert api.get("/api/v1/namespaces/default/pods/cors-json").status_code == 200
    finally:
        emu.stop()
