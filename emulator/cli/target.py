"""Where the emulator's API is and how the client commands (`emulator run`, `emulator env`) reach it.

`resolve()` turns flags, environment and kubeconfig files into one `ApiTarget`: the server URL, the
bearer token and what TLS certificate to trust. Each part is resolved on its own; the first source
that has a value wins:

server
  1. `--server`, 2. `$EMULATOR_SERVER`,
  3. `--kubeconfig FILE`: its `--context`, else its current context,
  4. `$KUBECONFIG`: its `--context`, else the context named `emulator` (never its current context,
     which may well be a real cluster; without either, $KUBECONFIG is not used),
  5. the data dir's kubeconfig (`$EMULATOR_DATA_DIR/kubeconfig`, written by `serve` when the API
     requires tokens) when it names the address `serve` would use with the same environment,
  6. `http://$EMULATOR_API_HOST:$EMULATOR_API_PORT`, by default `http://127.0.0.1:8080`.
token
  `--token` > `$EMULATOR_TOKEN` > the kubeconfig context's user (3-5).
CA
  `--certificate-authority FILE` > the kubeconfig context's cluster (3-5) > the system's trust store;
  `--insecure-skip-tls-verify` (or the context's `insecure-skip-tls-verify: true`) verifies nothing.

When the server comes from 1-2, a kubeconfig context from 3-5 still lends its token and CA, but from
$KUBECONFIG or the data dir only when it names that same server: credentials are not sent to a server
they were not written for. A token goes over plain http only to a loopback address.

The data dir's kubeconfig outlives the server that wrote it: if the emulator was restarted without
authentication on the same port, that file names https where plain http now answers. So a target found
there keeps a plain-http fallback, taken when the TLS handshake meets a server that does not speak TLS.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from emulator import config
from emulator.addresses import is_loopback
from emulator.security import kubeconfig
from emulator.security.datadir import KUBECONFIG_FILE

DEFAULT_SERVER = "http://127.0.0.1:8080"
SERVER_ENV = "EMULATOR_SERVER"
TOKEN_ENV = "EMULATOR_TOKEN"


class TargetError(Exception):
    """The flags or files that say where the API is cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ApiTarget:
    """One API to talk to: URL, token, trust, and where they came from (for error messages)."""

    server: str
    token: str | None = None
    ca_pem: str | None = None
    insecure: bool = False
    source: str = "the default"  # where the server URL came from
    token_source: str = ""
    fallback: ApiTarget | None = None  # plain http, for a stale data-dir kubeconfig (see the module doc)

    @property
    def https(self) -> bool:
        return self.server.startswith("https://")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings for an https server; None for http."""
        if not self.https:
            return None
        context = ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def normalise(url: str) -> str:
    """`host:port` alone means http; no trailing slash."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def served_at(environ: Mapping[str, str]) -> str:
    """The URL `serve` would listen on with this environment (EMULATOR_API_HOST/EMULATOR_API_PORT), over http."""
    cfg = config.from_args(argparse.Namespace(), dict(environ))
    host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
    return f"http://{f'[{host}]' if ':' in host else host}:{cfg.api_port}"


def data_dir_kubeconfig(environ: Mapping[str, str]) -> Path:
    """`<data-dir>/kubeconfig`, the data dir being what `serve` would use with this environment."""
    return Path(config.from_args(argparse.Namespace(), dict(environ)).data_dir).expanduser() / KUBECONFIG_FILE


def same_address(a: str, b: str) -> bool:
    """Whether two URLs name the same host and port (the scheme aside: that is what may be stale)."""
    left, right = urlsplit(normalise(a)), urlsplit(normalise(b))
    try:
        return (left.hostname, left.port or _default_port(left.scheme)) == (
            right.hostname,
            right.port or _default_port(right.scheme),
        )
    except ValueError:  # a port that is not a number
        return False


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True)
class _Candidate:
    """A kubeconfig context that may say where the API is; `explicit` when the user named the file."""

    access: kubeconfig.Access
    explicit: bool
    from_data_dir: bool = False


def _candidates(
    kubeconfig_flag: str | None, context: str | None, environ: Mapping[str, str]
) -> list[_Candidate]:
    """The kubeconfig contexts of sources 3-5, in order. Errors only for what the user named explicitly."""
    try:
        if kubeconfig_flag:
            path = Path(kubeconfig_flag).expanduser()
            if not path.exists():
                raise TargetError(f"--kubeconfig {kubeconfig_flag}: no such file")
            loaded = kubeconfig.load([path])
            name = context or loaded["current-context"]
            if not name:
                raise TargetError(f"{path} has no current-context: pass --context NAME")
            return [_Candidate(kubeconfig.access_for(loaded, name, str(path)), explicit=True)]
        found: list[_Candidate] = []
        listed = kubeconfig.paths_from(environ.get("KUBECONFIG", ""))
        if listed:
            loaded = kubeconfig.load(listed)
            names = {c.get("name") for c in loaded["contexts"]}
            name = context or kubeconfig.NAME
            if name in names:
                found.append(_Candidate(kubeconfig.access_for(loaded, name, "$KUBECONFIG"), explicit=True))
            elif context:
                raise TargetError(f"$KUBECONFIG has no context {context!r}: pass --kubeconfig FILE with it")
    except kubeconfig.KubeconfigError as exc:
        raise TargetError(str(exc)) from exc
    own = data_dir_kubeconfig(environ)
    try:
        loaded = kubeconfig.load([own])
        if loaded["contexts"]:
            found.append(_Candidate(kubeconfig.access_for(loaded, kubeconfig.NAME, str(own)), False, True))
    except kubeconfig.KubeconfigError:
        pass  # a broken file the user never named: go on as if it were not there
    return found


def resolve(
    server: str | None = None,
    token: str | None = None,
    kubeconfig_path: str | None = None,
    context: str | None = None,
    certificate_authority: str | None = None,
    insecure: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ApiTarget:
    """The API target for these flags (None = not given) and environment; see the module doc for the order."""
    environ = os.environ if environ is None else environ
    candidates = _candidates(kubeconfig_path, context, environ)
    explicit_server = server or environ.get(SERVER_ENV) or None
    chosen: _Candidate | None = None
    fallback: ApiTarget | None = None
    if explicit_server:
        url = normalise(explicit_server)
        source = "--server" if server else f"${SERVER_ENV}"
        # credentials go only to the server they were written for, unless the user named the file
        chosen = next(
            (c for c in candidates if (c.explicit and kubeconfig_path) or same_address(c.access.server, url)), None
        )
        if chosen is not None and not (chosen.explicit and kubeconfig_path) and not url.startswith("https://"):
            chosen = None  # that file is for https; the user asked for http: do not leak its token
    else:
        default = served_at(environ)
        chosen = next((c for c in candidates if c.explicit or same_address(c.access.server, default)), None)
        if chosen is None:
            url, source = default, "the default (EMULATOR_API_HOST/EMULATOR_API_PORT)"
        else:
            url, source = chosen.access.server, chosen.access.where
            if chosen.from_data_dir and url.startswith("https://"):
                fallback = ApiTarget(default, source=f"{default} (the default: {chosen.access.where} looks stale)")
    target = ApiTarget(server=url, source=source, fallback=fallback, insecure=insecure)
    if chosen is not None:
        access = chosen.access
        target = replace(
            target,
            token=access.token,
            token_source=access.where if access.token else "",
            ca_pem=access.ca_pem,
            insecure=insecure or access.insecure,
        )
    given_token = token or environ.get(TOKEN_ENV) or None
    if given_token:
        target = replace(target, token=given_token.strip(), token_source="--token" if token else f"${TOKEN_ENV}")
    if certificate_authority:
        try:
            target = replace(target, ca_pem=Path(certificate_authority).expanduser().read_text())
        except OSError as exc:
            raise TargetError(f"--certificate-authority {certificate_authority}: {exc.strerror}") from exc
    if target.token and not target.https and not is_loopback(urlsplit(target.server).hostname or ""):
        # in clear over a network, a token is anybody's; an emulator that wants one speaks https anyway
        raise TargetError(
            f"refusing to send the token ({target.token_source}) over plain http to {target.server}: use its https:// URL"
        )
    return target


# --- telling the user what to do ---------------------------------------------------------------------

KUBECONFIG_HINT = "pass --kubeconfig <data-dir>/kubeconfig (written by `emulator serve`) or --token"


def unauthorized_message(target: ApiTarget, message: str) -> str:
    """A 401: either we sent no token, or the one we sent is not accepted."""
    if not target.token:
        return f"the API at {target.server} requires a token: {KUBECONFIG_HINT}"
    return (
        f"the API at {target.server} does not accept the token from {target.token_source} ({message}): "
        f"use the admin token, e.g. --kubeconfig <data-dir>/kubeconfig"
    )


def forbidden_hint(target: ApiTarget) -> str:
    return f" (the token from {target.token_source} may not do this: use the admin token, e.g. --kubeconfig <data-dir>/kubeconfig)"


def tls_message(target: ApiTarget, cause: BaseException) -> str:
    """The TLS handshake failed: an untrusted certificate, or no TLS on the other side."""
    text = str(cause)
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        plain = "http://" + target.server.removeprefix("https://")
        return f"the API at {target.server} does not speak https (from {target.source}): use --server {plain}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"cannot verify the TLS certificate of {target.server}: {KUBECONFIG_HINT.split(' or ')[0]}, which holds "
            "the emulator's CA, or --certificate-authority <data-dir>/api.crt (or, trusting anyone on the way, "
            "--insecure-skip-tls-verify)"
        )
    return f"TLS with {target.server} failed: {text}"


def disconnected_message(target: ApiTarget) -> str:
    """A server that closes the connection on a plain-http request is most likely speaking TLS."""
    secure = "https://" + target.server.removeprefix("http://")
    return (
        f"the API at {target.server} closed the connection: if it requires tokens it speaks https; "
        f"{KUBECONFIG_HINT}, or --server {secure}"
    )


def plain_http_message(target: ApiTarget) -> str:
    """The emulator answered a plain-http request: its API speaks https (api/connections.py HttpsOnly)."""
    secure = "https://" + target.server.removeprefix("http://")
    return f"the API at {target.server} speaks https and requires tokens: {KUBECONFIG_HINT}, or --server {secure}"


# --- the command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say which API to talk to and with what credentials (`run` and `env`)."""
    group = parser.add_argument_group("API access (see docs/security.md)")
    group.add_argument(
        "--server",
        help=f"the emulator's API URL [env {SERVER_ENV}; default: from --kubeconfig/$KUBECONFIG, the data dir's "
        f"kubeconfig, EMULATOR_API_HOST/EMULATOR_API_PORT, else {DEFAULT_SERVER}]",
    )
    group.add_argument("--token", help=f"bearer token for an API that requires one [env {TOKEN_ENV}]")
    group.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="read server, CA and token from this kubeconfig, e.g. <data-dir>/kubeconfig "
        "[default: the 'emulator' context of $KUBECONFIG, if any]",
    )
    group.add_argument("--context", help="the kubeconfig context to use [default: the current one; 'emulator' in $KUBECONFIG]")
    group.add_argument("--certificate-authority", metavar="PATH", help="PEM file of the certificate(s) to trust for https")
    group.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="do not verify the API's TLS certificate (anyone on the way can read the token)",
    )


def from_args(args: argparse.Namespace) -> ApiTarget:
    return resolve(
        server=args.server,
        token=args.token,
        kubeconfig_path=args.kubeconfig,
        context=args.context,
        certificate_authority=args.certificate_authority,
        insecure=args.insecure_skip_tls_verify,
    )
