"""The proxy's status through the API: what it listens on, and a listener it cannot bind, with the fix."""

from __future__ import annotations

import socket
import time

import httpx

from tests.conftest import Emulator


def test_bind_problems_are_reported_through_the_api(emulator: Emulator, api: httpx.Client) -> None:
    holder = socket.socket()  # another process holds the node port before the service asks for it
    holder.bind(("127.0.0.1", 30556))
    holder.listen()
    try:
        for name, port in (("fine", 30555), ("clash", 30556)):
            body = {"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [{"port": 8080, "nodePort": port}]}}
            assert api.post("/api/v1/namespaces/default/services", json=body).status_code == 201
        deadline = time.monotonic() + 5
        while True:
            status = api.get("/emulator/v1/proxy").json()
            problems = [p for p in status["problems"] if p["port"] == 30556]
            if problems or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status["kind"] == "ProxyStatus" and status["enabled"] is True
        listening = {(entry["address"], entry["port"]) for entry in status["listening"]}
        assert ("127.0.0.1", 30555) in listening and ("127.0.0.1", 30556) not in listening
        assert problems and problems[0]["address"] == "127.0.0.1"
        assert "in use" in problems[0]["message"].lower() and problems[0]["fix"]
        # everything else keeps working: the other service's node port answers
        with socket.create_connection(("127.0.0.1", 30555), timeout=2):
            pass
    finally:
        holder.close()


def test_a_bind_problem_is_logged_once(tmp_path) -> None:
    from tests.conftest import start_emulator

    holder = socket.socket()  # another process holds the gateway's port
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        emu = start_emulator(tmp_path / "data", "--gateway-port", str(port))
        try:
            lines = [line for line in emu.output if f"cannot listen on 127.0.0.1:{port}/" in line]
            assert len(lines) == 1, emu.output
            assert "gateway" not in emu.faces
        finally:
            emu.stop()
    finally:
        holder.close()
