"""The demo services of docker-compose.yml: containers that register themselves as pods and find each other by DNS.

    python demo.py greeter     # an HTTP server registered as a pod (label app=greeter) at its container IP
    python demo.py caller      # registered too; every few seconds it resolves the greeters and calls them

In a cluster the kubelet registers a pod and knows its address. Here each container does it itself:
it creates its pod through the emulator's API with `status.podIP` set to its own container address, and
deletes it when it stops. The Services are created by the first greeter (a conflict means they exist):

- `greeter-pods`, headless: DNS answers with the greeters' container IPs, which every container on the
  compose network can reach;
- `greeter`, with a cluster IP: cluster IPs are loopback addresses *inside the emulator's container*,
  so other containers reach it through the emulator's Host-header gateway (`Host: greeter`).

Settings (environment): EMULATOR_SERVER (API URL), EMULATOR_GATEWAY (gateway URL), POD_NAME (default:
the host name), POD_NAMESPACE (default), POD_IP (default: this container's address on the way to the
emulator), PORT (8000), INTERVAL (3 s), DNS_SERVER (`host:port`: ask that server directly instead of the
system resolver; outside compose, e.g. in tests). Standard library only, so it runs in any Python image.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any
from urllib.parse import urlsplit

SERVER = os.environ.get("EMULATOR_SERVER", "http://emulator:8080").rstrip("/")
GATEWAY = os.environ.get("EMULATOR_GATEWAY", "http://emulator:8081").rstrip("/")
NAMESPACE = os.environ.get("POD_NAMESPACE", "default")
NAME = os.environ.get("POD_NAME") or socket.gethostname()
PORT = int(os.environ.get("PORT", "8000"))
ZONE = "cluster.local"
HEADLESS = f"greeter-pods.{NAMESPACE}.svc.{ZONE}"

SERVICES = [
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "greeter-pods"},
        "spec": {"clusterIP": "None", "selector": {"app": "greeter"}, "ports": [{"name": "http", "port": PORT}]},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "greeter"},
        "spec": {"selector": {"app": "greeter"}, "ports": [{"name": "http", "port": 80, "targetPort": PORT}]},
    },
]


def log(message: str) -> None:
    print(f"{NAME}: {message}", flush=True)


# --- the API ------------------------------------------------------------------------------------------


def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SERVER + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_api(timeout: float = 60) -> None:
    """The emulator may still be starting (compose starts us once it is healthy, but be patient anyway)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(SERVER + "/readyz", timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                sys.exit(f"{NAME}: the emulator's API at {SERVER} does not answer: {exc}")
            time.sleep(0.5)


def own_address() -> str:
    """This container's address as the emulator sees it: the source address of a route towards it."""
    if os.environ.get("POD_IP"):
        return os.environ["POD_IP"]
    host = urlsplit(SERVER).hostname or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((socket.gethostbyname(host), 9))  # UDP connect sends nothing; it only picks the route
        return probe.getsockname()[0]


def register(ip: str, labels: dict[str, str], ports: list[dict[str, Any]]) -> None:
    """Create our pod with our address; a pod left over from an earlier run of this container is replaced."""
    container: dict[str, Any] = {"name": "main", "image": "k8s-emulator:local", "command": sys.argv}
    if ports:
        container["ports"] = ports
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": NAME, "labels": labels},
        "spec": {"containers": [container], "restartPolicy": "Always"},
        "status": {"podIP": ip},
    }
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    status, body = api("POST", path, pod)
    if status == 409:
        api("DELETE", f"{path}/{NAME}", {"gracePeriodSeconds": 0})
        status, body = api("POST", path, pod)
    if status != 201:
        sys.exit(f"{NAME}: could not register pod: {status} {body.get('message', body)}")
    log(f"registered pod {NAMESPACE}/{NAME} at {ip}")


def deregister_on_exit() -> None:
    def stop(signum: int, _frame: object) -> None:
        api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{NAME}", {"gracePeriodSeconds": 0})
        log("pod deleted")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


# --- DNS (only for DNS_SERVER; in compose the system resolver asks the emulator) ------------------------


def query_a(name: str, server: str) -> list[str]:
    """The A records of `name` from the DNS server `host:port`: one UDP query, the answer section read."""
    host, _, port = server.rpartition(":")
    ident = random.randrange(1 << 16)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!6H", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(packet, (host, int(port)))
        reply = sock.recv(4096)
    answers = struct.unpack("!H", reply[6:8])[0]
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(answers):
        offset = _skip_name(reply, offset)
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return addresses


def _skip_name(packet: bytes, offset: int) -> int:
    while packet[offset]:
        if packet[offset] & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += packet[offset] + 1
    return offset + 1


def resolve(name: str) -> list[str]:
    if os.environ.get("DNS_SERVER"):
        return sorted(query_a(name, os.environ["DNS_SERVER"]))
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)})
    except socket.gaierror:
        return []


# --- the two roles ------------------------------------------------------------------------------------


# The one example that does not use examples/common/textserver.py: compose mounts only examples/compose/
# into the container (on /demo), so this file carries its own few lines of HTTP plumbing.
class Greeting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"hello from {NAME} ({self.server.server_address[0]})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


def greeter() -> None:
    wait_for_api()
    ip = own_address()
    # Listen first, register second: the pod is Ready as soon as it exists (there is no kubelet probing it).
    server = ThreadingHTTPServer(("0.0.0.0" if not os.environ.get("POD_IP") else ip, PORT), Greeting)
    Thread(target=server.serve_forever, daemon=True).start()
    for service in SERVICES:
        status, body = api("POST", f"/api/v1/namespaces/{NAMESPACE}/services", service)
        if status not in (201, 409):
            sys.exit(f"{NAME}: could not create service {service['metadata']['name']}: {status} {body}")
    register(ip, {"app": "greeter"}, [{"name": "http", "containerPort": PORT}])
    deregister_on_exit()
    while True:
        time.sleep(3600)


def get(url: str, host: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.read().decode().strip()
    except OSError as exc:
        return f"failed: {exc}"


def caller(once: bool) -> None:
    wait_for_api()
    register(own_address(), {"app": "caller"}, [])
    deregister_on_exit()
    interval = float(os.environ.get("INTERVAL", "3"))
    while True:
        addresses = resolve(HEADLESS)
        log(f"{HEADLESS} -> {', '.join(addresses) or 'no addresses yet'}")
        for address in addresses:
            log(f"  http://{address}:{PORT}/ says: {get(f'http://{address}:{PORT}/')}")
        log(f"  {GATEWAY}/ with Host: greeter says: {get(GATEWAY + '/', host='greeter')}")
        if once:
            api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{NAME}", {"gracePeriodSeconds": 0})
            return
        time.sleep(interval)


def main(argv: list[str]) -> None:
    role = argv[0] if argv else ""
    if role == "greeter":
        greeter()
    elif role == "caller":
        caller(once="--once" in argv)
    else:
        sys.exit("usage: demo.py greeter | demo.py caller [--once]")


if __name__ == "__main__":
    main(sys.argv[1:])
