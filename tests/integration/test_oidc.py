"""Service account issuer discovery over real HTTP(S): a verifier outside the emulator checks a pod's token
with nothing but `/.well-known/openid-configuration` and the key set it points to, as an OIDC relying
party (a cloud's workload identity, Vault's JWT auth) does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import kubernetes
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import Emulator, require_tool, start_emulator
from tests.integration.test_auth import admin, client, kubeconfig_of, request_token, review, status

CONFIGURATION = "/.well-known/openid-configuration"
JWKS = "/openid/v1/jwks"
ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("oidc") / "data", "--require-auth")
    yield emu
    emu.stop()


def verify_as_outsider(http: httpx.Client, token: str, audience: str) -> dict[str, Any]:
    """What an external verifier does: discovery document → jwks_uri → the key named by `kid` → claims."""
    configuration = http.get(CONFIGURATION)
    assert configuration.status_code == 200, configuration.text
    assert configuration.headers["Content-Type"] == "application/json"
    document = configuration.json()
    keys = http.get(document["jwks_uri"])
    assert keys.status_code == 200, keys.text
    assert keys.headers["Content-Type"] == "application/jwk-set+json"
    key_set = jwt.PyJWKSet.from_dict(keys.json())
    key = key_set[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(
        token, key, algorithms=document["id_token_signing_alg_values_supported"], audience=audience, issuer=document["issuer"]
    )


def test_an_open_api_serves_the_discovery_documents(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data")
    try:
        with emu.client() as api:
            document = api.get(CONFIGURATION)
            assert document.headers["Cache-Control"] == "public, max-age=3600"
            assert document.json() == {
                "issuer": ISSUER,
                "jwks_uri": f"{emu.api_url}{JWKS}",  # the API's URL: the issuer is reachable from pods only
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
            (key,) = api.get(JWKS).json()["keys"]
            assert {k: key[k] for k in ("use", "kty", "alg", "e")} == {"use": "sig", "kty": "RSA", "alg": "RS256", "e": "AQAB"}
            assert api.head(JWKS).status_code == 200
            assert api.get(f"{JWKS}/").json() == api.get(JWKS).json()
            assert api.get(f"{CONFIGURATION}/").json() == document.json()
            pod = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
            assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
            uid = api.get("/api/v1/namespaces/default/pods/web").json()["metadata"]["uid"]
            node_uid = api.get("/api/v1/nodes/emulator").json()["metadata"]["uid"]
            token = request_token(api, "default", "default", audiences=["vault"], boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "web"})
            claims = verify_as_outsider(api, token, "vault")
        assert claims["sub"] == "system:serviceaccount:default:default"
        assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": uid}
        assert claims["kubernetes.io"]["node"] == {"name": "emulator", "uid": node_uid}  # the node the pod is placed on
        assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": key["kid"]}
    finally:
        emu.stop()


def test_a_token_from_token_request_verifies_with_the_published_keys(secured: Emulator) -> None:
    with admin(secured) as api:
        token = request_token(api, "default", "default")
        with client(secured, token) as sa:  # a pod's own token may read the documents
            claims = verify_as_outsider(sa, token, ISSUER)
        assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
        assert claims["kubernetes.io"]["serviceaccount"]["name"] == "default"
        assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"] and claims["jti"]
        assert sa_document(api)["jwks_uri"] == f"{secured.api_url}{JWKS}"
        # the emulator still accepts its token, and refuses one re-signed with HS256 keyed by the published key
        assert review(api, token)["authenticated"] is True
        kid = jwt.get_unverified_header(token)["kid"]
        public_pem = jwt.PyJWKSet.from_dict(api.get(JWKS).json())[kid].key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        payload = token.split(".")[1]
        header = b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
        signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        forged = review(api, f"{header}.{payload}.{signature}")
        assert forged["authenticated"] is False and "HS256" in forged["error"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sa_document(api: httpx.Client) -> dict[str, Any]:
    return api.get(CONFIGURATION).json()


def test_discovery_needs_a_valid_token_when_the_api_requires_them(secured: Emulator) -> None:
    with client(secured) as anonymous:
        for path in (CONFIGURATION, JWKS):
            status(anonymous.get(path), 401, "Unauthorized")
    with client(secured, "not-a-token") as bad:
        status(bad.get(JWKS), 401, "Unauthorized")
    with admin(secured) as api:
        token = request_token(api, "kube-system", "default")
    with client(secured, token) as sa:
        assert sa.get(JWKS).status_code == 200
        status(sa.post(JWKS, json={}), 403, "Forbidden")  # only get is granted, as by the ClusterRole


def test_the_kubernetes_client_reads_the_documents_with_a_service_account_token(secured: Emulator, tmp_path: Path) -> None:
    with admin(secured) as api:
        token = request_token(api, "default", "default")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(tls_ca(secured))
    configuration = kubernetes.client.Configuration()
    configuration.host = secured.api_url
    configuration.ssl_ca_cert = str(ca)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with kubernetes.client.ApiClient(configuration) as api_client:
        # the generated client would turn the JSON into a Python repr: read the raw answers, as its users do
        well_known: Any = kubernetes.client.WellKnownApi(api_client)
        document = json.loads(well_known.get_service_account_issuer_open_id_configuration(_preload_content=False).data)
        openid: Any = kubernetes.client.OpenidApi(api_client)
        keys = json.loads(openid.get_service_account_issuer_open_id_keyset(_preload_content=False).data)
    assert document["issuer"] == ISSUER and document["jwks_uri"] == f"{secured.api_url}{JWKS}"
    assert keys["keys"][0]["kty"] == "RSA"


def tls_ca(emu: Emulator) -> bytes:
    return base64.b64decode(kubeconfig_of(emu)["clusters"][0]["cluster"]["certificate-authority-data"])


def test_kubectl_reads_the_key_set_with_a_service_account_token(secured: Emulator, tmp_path: Path) -> None:
    kubectl = require_tool("kubectl")
    base = [kubectl, "--kubeconfig", secured.faces["kubeconfig"], "--cache-dir", str(tmp_path / "cache")]
    created = subprocess.run([*base, "create", "token", "default", "--audience", "vault"], capture_output=True, text=True, timeout=30)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    with admin(secured) as api:
        api_token = request_token(api, "default", "default")
    for path in (CONFIGURATION, JWKS):
        read = subprocess.run([*base, "--token", api_token, "get", "--raw", path], capture_output=True, text=True, timeout=30)
        assert read.returncode == 0, read.stderr
    keys = jwt.PyJWKSet.from_dict(json.loads(read.stdout))
    claims = jwt.decode(token, keys[jwt.get_unverified_header(token)["kid"]], algorithms=["RS256"], audience="vault", issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:default:default"
