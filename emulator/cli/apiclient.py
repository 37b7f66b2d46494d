"""The API client the commands use (`run`, `env`): the few calls they make over HTTP, with a refused
connection, a TLS mismatch or a Status turned into errors that say what to do (`Unreachable`, `ApiError`).

Only the HTTP API is used, so it works against any emulator the user can reach (`--server`), an
authenticated one included (https and a bearer token: target.py says where they come from).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from emulator.cli import target as targets
from emulator.cli.target import SERVER_ENV, ApiTarget
from emulator.security.tls import SPEAKS_HTTPS


class Unreachable(Exception):
    """The emulator's API does not answer, or not over a connection we can use (TLS): the user has to
    start it or point at it the right way; `message` says how when the generic wording would mislead."""

    def __init__(self, server: str, cause: BaseException, message: str | None = None) -> None:
        # A refused connection needs no detail; anything else (a timeout, a reset) is worth naming.
        detail = (
            ""
            if isinstance(cause, aiohttp.ClientConnectorError)
            else f" ({type(cause).__name__}: {cause})".replace(": )", ")")
        )
        super().__init__(
            message
            or f"cannot reach the emulator API at {server}: is `make run` running? Set --server or {SERVER_ENV}{detail}"
        )


class ApiError(Exception):
    """A Kubernetes Status the API answered with."""

    def __init__(self, code: int, status: Mapping[str, Any]) -> None:
        self.code = code
        self.reason = str(status.get("reason") or "")
        super().__init__(str(status.get("message") or f"HTTP {code}"))


def server_url(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """--server > $EMULATOR_SERVER > where `serve` listens with the same environment
    (EMULATOR_API_HOST/EMULATOR_API_PORT, else 127.0.0.1:8080); `host:port` alone means http.
    The URL alone, without kubeconfig files: `targets.resolve` gives the whole target."""
    environ = os.environ if environ is None else environ
    return targets.normalise(flag or environ.get(SERVER_ENV) or targets.served_at(environ))


class Api:
    """The few API calls `run` and `env` make, with errors turned into Unreachable / ApiError."""

    def __init__(self, target: ApiTarget | str) -> None:
        self.target = target if isinstance(target, ApiTarget) else ApiTarget(targets.normalise(target))
        self.session = self._session()

    @property
    def server(self) -> str:
        return self.target.server

    def _session(self) -> aiohttp.ClientSession:
        # The token rides on every request, the watch included; `ssl=True` is aiohttp's verifying default.
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            headers=self.target.headers(),
            connector=aiohttp.TCPConnector(ssl=self.target.ssl_context() or True),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(method, self.server + path, data=data, headers=headers) as response:
                text = await response.text()
        except aiohttp.ClientSSLError as exc:
            fallback = self.target.fallback
            if fallback is not None and "WRONG_VERSION_NUMBER" in str(exc):
                # A stale data-dir kubeconfig: the emulator there now serves plain http. The handshake
                # failed, so nothing was sent yet and the request can go again.
                await self.session.close()
                self.target = fallback
                self.session = self._session()
                return await self.call(method, path, body, content_type)
            raise Unreachable(self.server, exc, targets.tls_message(self.target, exc)) from exc
        except aiohttp.ServerDisconnectedError as exc:
            message = None if self.target.https else targets.disconnected_message(self.target)
            raise Unreachable(self.server, exc, message) from exc
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(self.server, exc) from exc
        if response.status >= 400:
            try:
                status = json.loads(text)
            except ValueError:
                status = {"message": text.strip() or response.reason}
            status = status if isinstance(status, dict) else {"message": text}
            message = str(status.get("message") or "")
            if response.status == 401:
                status = {**status, "message": targets.unauthorized_message(self.target, message or "Unauthorized")}
            elif response.status == 400 and not self.target.https and SPEAKS_HTTPS in message:
                status = {**status, "message": targets.plain_http_message(self.target)}
            elif response.status == 403 and self.target.token and "is forbidden: User" in message:
                status = {**status, "message": message + targets.forbidden_hint(self.target)}
            raise ApiError(response.status, status)
        ctype = response.headers.get("Content-Type", "")
        return json.loads(text) if ctype.startswith("application/json") else text

    @staticmethod
    def pod_path(namespace: str, name: str = "") -> str:
        base = f"/api/v1/namespaces/{quote(namespace)}/pods"
        return f"{base}/{quote(name)}" if name else base

    @staticmethod
    def env_path(namespace: str, name: str, container: str | None, fmt: str) -> str:
        query = f"format={quote(fmt)}" + (f"&container={quote(container)}" if container else "")
        return f"/emulator/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/env?{query}"
