"""Service account issuer discovery: how software outside the emulator verifies a service-account token.

    GET /.well-known/openid-configuration     the issuer and where its keys are (application/json)
    GET /openid/v1/jwks                       the public key tokens are signed with (application/jwk-set+json)

as kube-apiserver serves them (its ServiceAccountIssuerDiscovery), so that an OIDC relying party (a
cloud's workload identity, Vault's JWT auth, a service mesh) checks a pod's token with the key set alone:
the `kid` in a token's header names the key, `iss` must equal `issuer`. The `jwks_uri` is the API's own
URL as the caller reached it (scheme and Host, which api/guard.py has already checked), as the API server
uses its external address when no `--service-account-jwks-uri` is given: the issuer,
`https://kubernetes.default.svc.<zone>`, is reachable from pods only.

Open when the API is; when it requires tokens, any authenticated user may read them (api/auth.py), as
the API server's `system:service-account-issuer-discovery` ClusterRole allows `system:serviceaccounts`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from api.http import json_response
from emulator.security.tokens import ServiceAccountTokens

CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
# with a trailing slash too, as the API server answers (and its ClusterRole names) both
OIDC_PATHS = frozenset({CONFIGURATION_PATH, JWKS_PATH, f"{CONFIGURATION_PATH}/", f"{JWKS_PATH}/"})
JWK_SET = "application/jwk-set+json"
CACHE_CONTROL = "public, max-age=3600"  # the API server's: keys change only when the emulator restarts


def routes(tokens: ServiceAccountTokens) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)` (GET, and HEAD with them)."""
    keys: list[bytes] = []  # encoded on first use: the key is parsed (or made) only when someone needs it

    async def configuration(request: web.Request) -> web.Response:
        jwks_uri = f"{request.scheme}://{request.host}{JWKS_PATH}"
        response = json_response(tokens.openid_configuration(jwks_uri))
        response.headers["Cache-Control"] = CACHE_CONTROL
        return response

    async def jwks(request: web.Request) -> web.Response:
        if not keys:
            keys.append(orjson.dumps(tokens.jwks()))
        response = json_response(keys[0], content_type=JWK_SET)
        response.headers["Cache-Control"] = CACHE_CONTROL
        return response

    return [web.get(path, jwks if path.rstrip("/") == JWKS_PATH else configuration) for path in sorted(OIDC_PATHS)]
