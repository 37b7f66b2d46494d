"""What an empty start loads (issue 16: start ≤ 0.25 s; bench/startup measures it): the libraries only a
first request of some kind needs stay unloaded until then, and `serve` reads only its own options yet
answers --help and bad options as the full command line does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import main as cli
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]

# What `emulator serve` imports before it starts (emulator/cli/serve.py's imports and the engine's)
SERVE_IMPORTS = """
import sys
sys.argv = ["emulator", "serve"]
import emulator.cli.main, emulator.cli.serve, emulator.runtime, api.app, api.auth, api.authorization, api.connections
import api.flows, api.guard, api.oidc, api.podenv, api.podhosts, api.policycheck, api.processstatus, api.prometheus
import api.proxystatus, api.tokens, api.ui, emulator.registry.tokens
print(" ".join(sorted(sys.modules)))
"""

# each loads with the first request that needs it, and not before
NOT_AT_START = {
    "croniter": "the first CronJob",
    "dateutil": "the first CronJob (croniter's)",
    "psutil": "the first process status or resource metrics (the node's capacity comes from os)",
    "re2": "the first RegularExpression route match or CRD pattern",
    "cryptography": "the first TLS Secret, token or HTTPS handshake on the gateway",
    "h2": "the first HTTP/2 connection",
    "ctypes": "the first `emulator run` (the sandbox), or the first heap trim",
    "emulator.cli.run": "`emulator run` and `env`",
    "emulator.cli.flows": "`emulator flows`",
    "emulator.kubelet.kubelet": "--kubelet",
    "jsonschema": "never: emulator/schemas.py reads kubernetes_validate's data file without importing the package",
}


def test_an_empty_start_does_not_load_what_only_a_later_request_needs() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", SERVE_IMPORTS], cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    early = {name: why for name, why in NOT_AT_START.items() if name in loaded}
    assert early == {}, f"loaded at start, though only needed for: {early}"


def test_serve_reads_only_its_options_and_says_so_as_the_full_command_line_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    full_usage = capsys.readouterr().out.splitlines()[0]
    assert full_usage == "usage: emulator [-h] {" + ",".join(cli.COMMANDS) + "} ..."  # COMMANDS is every command
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--no-such-option"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [full_usage, "emulator: error: unrecognized arguments: --no-such-option"]


# serve imports aiohttp with SSL_CERT_FILE on an empty file (emulator/cli/serve.py import_aiohttp): its
# default client contexts then hold no bundle, yet still verify through a hashed CA directory
VERIFY_THROUGH_DIRECTORY = """
import asyncio, os, socket, ssl, sys
from emulator.cli import serve
serve.import_aiohttp()
assert os.environ.get("SSL_CERT_FILE") == sys.argv[1], os.environ.get("SSL_CERT_FILE")
import aiohttp
from aiohttp import web

async def main() -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="verified"))
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=server_ctx).start()
    try:
        async with aiohttp.ClientSession() as session:  # the default context: verification on
            async with session.get(f"https://localhost:{port}/") as response:
                print(await response.text())
    except aiohttp.ClientConnectorCertificateError:
        print("unverified")
    finally:
        await runner.cleanup()

asyncio.run(main())
"""


@pytest.mark.parametrize("trusted", [True, False])
def test_aiohttp_imported_without_the_ca_bundle_still_verifies_through_the_ca_directory(tmp_path: Path, trusted: bool) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from emulator.security.tls import self_signed_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    cert = tmp_path / "server.crt"
    cert.write_text(self_signed_certificate(key, ["localhost"]))
    key_file = tmp_path / "server.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cas = tmp_path / "cas"
    cas.mkdir()
    if trusted:  # the certificate is its own CA: in the directory under its subject hash, as the system's are
        (cas / "server.crt").write_bytes(cert.read_bytes())
        subprocess.run([require_tool("openssl"), "rehash", str(cas)], check=True, capture_output=True)
    users_bundle = tmp_path / "bundle.pem"  # a user's own SSL_CERT_FILE (without this CA) is put back as it was
    users_bundle.write_text("")
    env = {**os.environ, "SSL_CERT_DIR": str(cas), "SSL_CERT_FILE": str(users_bundle)}
    out = subprocess.run(
        [sys.executable, "-c", VERIFY_THROUGH_DIRECTORY, str(users_bundle), str(cert), str(key_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("verified" if trusted else "unverified")


def test_the_schemas_are_read_without_importing_their_package() -> None:
    probe = "import sys\nfrom emulator import schemas\nschemas.load()\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes_validate', 'jsonschema')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
