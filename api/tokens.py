"""The HTTP side of TokenRequest and TokenReview (emulator/registry/tokens.py holds the rules):

    POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token     (kubectl create token NAME)
    POST /apis/authentication.k8s.io/v1/tokenreviews

Bodies are JSON, YAML or protobuf (kubectl create token sends protobuf); both answer 201.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.http import PROTOBUF, decode, json_response, media_type, read_body
from api.protobuf import ProtobufError, decode_k8s_protobuf
from emulator import errors
from emulator.registry.tokens import TokenOperations

TOKEN_PATH = "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def routes(tokens: TokenOperations) -> list[web.RouteDef]:
    """The routes to hand to `create_app(registry, routes=...)`; other methods on these paths fall
    through to the generic handler, which answers 405 (TokenReview is create-only)."""

    async def token_request(request: web.Request) -> web.Response:
        answer = tokens.token_request(request.match_info["namespace"], request.match_info["name"], await _body(request))
        return json_response(answer, status=201)

    async def token_review(request: web.Request) -> web.Response:
        return json_response(tokens.token_review(await _body(request)), status=201)

    return [web.post(TOKEN_PATH, token_request), web.post(REVIEW_PATH, token_review)]


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await read_body(request)
    if not raw.strip():
        return {}  # `curl -X POST .../token` asks for a token with the defaults
    if media_type(request) == PROTOBUF:
        try:
            return decode_k8s_protobuf(raw)
        except ProtobufError as exc:
            raise errors.bad_request(f"could not decode the protobuf body: {exc}") from exc
    body = decode(raw, media_type(request))
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be a JSON or YAML object")
    return body
