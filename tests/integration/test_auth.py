"""API access over real HTTP(S): tokens, TokenRequest/TokenReview, 401/403, kubectl with the written kubeconfig.

Tests can bind loopback only, so authenticated mode is forced with --require-auth (the same mode a
non-loopback --api-host gets by default).
"""

from __future__ import annotations

import base64
import json
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Emulator, require_tool, start_emulator

TOKEN = "/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("auth") / "data", "--require-auth")
    yield emu
    emu.stop()


def kubeconfig_of(emu: Emulator) -> dict[str, Any]:
    return yaml.safe_load(Path(emu.faces["kubeconfig"]).read_text())


def tls(emu: Emulator) -> ssl.SSLContext:
    ca = kubeconfig_of(emu)["clusters"][0]["cluster"]["certificate-authority-data"]
    return ssl.create_default_context(cadata=base64.b64decode(ca).decode())


def client(emu: Emulator, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=emu.api_url, verify=tls(emu), headers=headers, timeout=10)


def admin(emu: Emulator) -> httpx.Client:
    return client(emu, kubeconfig_of(emu)["users"][0]["user"]["token"])


def status(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["reason"] == reason and body["code"] == code
    return body


def request_token(api: httpx.Client, ns: str, name: str, **spec: Any) -> str:
    response = api.post(TOKEN.format(ns=ns, name=name), json={"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": spec})
    assert response.status_code == 201, response.text
    return response.json()["status"]["token"]


def grant_view(api: httpx.Client, ns: str, account: str = "default") -> None:
    """What a service account needs to read its namespace (RBAC grants nothing by default)."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": f"{account}-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
    }
    response = api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", json=binding)
    assert response.status_code == 201, response.text


def review(api: httpx.Client, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    response = api.post(REVIEWS, json={"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": spec})
    assert response.status_code == 201, response.text
    return response.json()["status"]


def test_auth_mode_serves_https_and_writes_private_credentials(secured: Emulator) -> None:
    assert secured.api_url.startswith("https://127.0.0.1:")
    data = secured.data_dir
    for name in ("admin-token", "kubeconfig", "api.key", "api.crt"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    config = kubeconfig_of(secured)
    assert config["current-context"] == "emulator"
    assert config["clusters"][0]["cluster"]["server"] == secured.api_url
    assert config["users"][0]["user"]["token"] == (data / "admin-token").read_text().strip()


def test_anonymous_requests_get_401_and_change_nothing(secured: Emulator) -> None:
    with client(secured) as anonymous, admin(secured) as api:
        status(anonymous.get("/api/v1/namespaces"), 401, "Unauthorized")
        status(anonymous.post("/api/v1/namespaces", json={"metadata": {"name": "sneaky"}}), 401, "Unauthorized")
        status(anonymous.get("/api"), 401, "Unauthorized")
        status(anonymous.get("/emulator/v1/networkpolicy/check"), 401, "Unauthorized")
        with client(secured, "not-a-token") as bad:
            status(bad.delete("/api/v1/namespaces/default/serviceaccounts/default"), 401, "Unauthorized")
        status(api.get("/api/v1/namespaces/sneaky"), 404, "NotFound")
        assert api.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200
        for path in ("/healthz", "/readyz", "/livez", "/version"):
            assert anonymous.get(path).status_code == 200, path


def test_plain_http_to_the_https_port_is_told_how_to_connect_and_changes_nothing(secured: Emulator, tmp_path: Path) -> None:
    plain = secured.api_url.replace("https://", "http://")
    kubeconfig = secured.faces["kubeconfig"]
    with httpx.Client(base_url=plain, timeout=10) as http:
        body = status(http.get("/api/v1/namespaces"), 400, "BadRequest")
        assert f"speaks HTTPS (it requires tokens): use {secured.api_url}" in body["message"]
        assert f"KUBECONFIG={kubeconfig}" in body["message"]
        status(http.post("/api/v1/namespaces", json={"metadata": {"name": "plain"}}), 400, "BadRequest")
    with admin(secured) as api:  # and TLS on the same port goes on as before
        status(api.get("/api/v1/namespaces/plain"), 404, "NotFound")
    kubectl = subprocess.run(
        [require_tool("kubectl"), "--server", plain, "--cache-dir", str(tmp_path / "cache"), "get", "pods"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    # an answer, not "Unable to connect to the server: EOF" (kubectl's discovery shows a 400's Status only as
    # "the server rejected our request", as it does a real API server's answer to plain HTTP; later
    # requests, with discovery cached, show its message)
    assert kubectl.returncode != 0
    assert "Error from server (BadRequest)" in kubectl.stderr and "EOF" not in kubectl.stderr, kubectl.stderr


def test_admin_token_does_everything(secured: Emulator) -> None:
    with admin(secured) as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "admin-made"}}).status_code == 201
        assert api.get("/api/v1/pods").status_code == 200
        assert api.get("/apis").status_code == 200
        assert api.delete("/api/v1/namespaces/admin-made").status_code == 200


def test_service_account_tokens_read_their_own_namespace_only(secured: Emulator) -> None:
    """With the `view` role bound in its namespace (and nothing else), a service account reads it."""
    with admin(secured) as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "shop"}}).status_code == 201
        assert api.post("/api/v1/namespaces/shop/pods", json={"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c"}]}}).status_code == 201
        token = request_token(api, "shop", "default")
        grant_view(api, "shop")
    with client(secured, token) as sa:
        pods = sa.get("/api/v1/namespaces/shop/pods")
        assert pods.status_code == 200 and [p["metadata"]["name"] for p in pods.json()["items"]] == ["web"]
        assert sa.get("/api/v1/namespaces/shop/pods/web").status_code == 200
        assert sa.get("/api/v1/namespaces/shop").status_code == 200
        watch = sa.get("/api/v1/namespaces/shop/pods", params={"watch": "1", "timeoutSeconds": "1"})
        assert watch.status_code == 200 and json.loads(watch.text.splitlines()[0])["type"] == "ADDED"
        assert sa.get("/api").status_code == 200 and sa.get("/apis/networking.k8s.io/v1").status_code == 200
        denied = status(sa.get("/api/v1/namespaces/kube-system/pods"), 403, "Forbidden")
        assert denied["message"] == (
            'pods is forbidden: User "system:serviceaccount:shop:default" cannot list resource "pods" in API group "" '
            'in the namespace "kube-system"'
        )
        status(sa.get("/api/v1/pods"), 403, "Forbidden")
        status(sa.post("/api/v1/namespaces/shop/pods", json={"metadata": {"name": "evil"}, "spec": {"containers": [{"name": "c"}]}}), 403, "Forbidden")
        status(sa.delete("/api/v1/namespaces/shop/pods/web"), 403, "Forbidden")
        status(sa.post(TOKEN.format(ns="shop", name="default"), json={}), 403, "Forbidden")
        status(sa.post(REVIEWS, json={"spec": {"token": token}}), 403, "Forbidden")
        status(sa.get("/emulator/v1/networkpolicy/check"), 403, "Forbidden")
    with admin(secured) as api:
        assert api.get("/api/v1/namespaces/shop/pods/web").status_code == 200
        status(api.get("/api/v1/namespaces/shop/pods/evil"), 404, "NotFound")


def test_head_is_authorized_like_get(secured: Emulator) -> None:
    """HEAD is a GET without the body, so the same verb (get, list): a token that may GET a path gets
    the same answer to HEAD as the admin does, not 403."""
    paths = ("/api/v1/namespaces/heads/pods/web", "/api/v1/namespaces/heads/pods", "/api/v1/namespaces/heads")
    with admin(secured) as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "heads"}}).status_code == 201
        assert api.post("/api/v1/namespaces/heads/pods", json={"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c"}]}}).status_code == 201
        token = request_token(api, "heads", "default")
        grant_view(api, "heads")
        as_admin = [api.head(path).status_code for path in paths]
    with client(secured, token) as sa:
        assert [sa.get(path).status_code for path in paths] == [200, 200, 200]
        assert [sa.head(path).status_code for path in paths] == as_admin
        assert 403 not in as_admin
        assert sa.head("/api/v1/namespaces/kube-system/pods").status_code == 403
        assert sa.head("/api/v1/pods").status_code == 403


def test_token_request_defaults_and_validation(secured: Emulator) -> None:
    with admin(secured) as api:
        before = time.time()
        response = api.post(TOKEN.format(ns="default", name="default"), json={"spec": {}})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["kind"] == "TokenRequest" and body["apiVersion"] == "authentication.k8s.io/v1"
        assert body["spec"] == {"audiences": [API_AUDIENCE], "expirationSeconds": 3600}
        expires = datetime.strptime(body["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs(expires.timestamp() - (before + 3600)) < 5
        short = api.post(TOKEN.format(ns="default", name="default"), json={"spec": {"expirationSeconds": 60}})
        assert status(short, 422, "Invalid")["details"]["causes"][0]["field"] == "spec.expirationSeconds"
        status(api.post(TOKEN.format(ns="default", name="nobody"), json={}), 404, "NotFound")
        status(api.post(TOKEN.format(ns="default", name="default"), json={"spec": {"boundObjectRef": {"kind": "Pod", "name": "ghost"}}}), 404, "NotFound")
        status(api.post(TOKEN.format(ns="default", name="default"), json={"spec": {"boundObjectRef": {"kind": "Secret", "name": "s"}}}), 422, "Invalid")
        status(api.get(TOKEN.format(ns="default", name="default")), 405, "MethodNotAllowed")
        status(api.get(REVIEWS), 405, "MethodNotAllowed")
        status(api.get(REVIEWS, params={"watch": "1"}), 405, "MethodNotAllowed")
        status(api.post(REVIEWS, json={"spec": {}}), 400, "BadRequest")


def test_token_review_accepts_valid_and_rejects_tampered_audience_and_deleted(secured: Emulator) -> None:
    with admin(secured) as api:
        token = request_token(api, "default", "default")
        ok = review(api, token)
        assert ok["authenticated"] is True and ok["audiences"] == [API_AUDIENCE]
        assert ok["user"]["username"] == "system:serviceaccount:default:default"
        assert "system:serviceaccounts:default" in ok["user"]["groups"]

        header, claims, signature = token.split(".")
        forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
        forged["sub"] = "system:serviceaccount:kube-system:default"
        forged_claims = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        tampered = review(api, f"{header}.{forged_claims}.{signature}")
        assert tampered["authenticated"] is False and "signature" in tampered["error"]
        with client(secured, f"{header}.{forged_claims}.{signature}") as sa:
            status(sa.get("/api/v1/namespaces/kube-system/pods"), 401, "Unauthorized")

        vault = request_token(api, "default", "default", audiences=["vault"])
        assert "audiences" in review(api, vault)["error"]
        assert review(api, vault, ["vault"])["audiences"] == ["vault"]
        with client(secured, vault) as sa:  # not meant for the API
            status(sa.get("/api/v1/namespaces/default/pods"), 401, "Unauthorized")

        assert api.post("/api/v1/namespaces/default/serviceaccounts", json={"metadata": {"name": "temp"}}).status_code == 201
        temp = request_token(api, "default", "temp")
        assert review(api, temp)["authenticated"] is True
        assert api.delete("/api/v1/namespaces/default/serviceaccounts/temp").status_code == 200
        gone = review(api, temp)
        assert gone["authenticated"] is False and "deleted" in gone["error"]
        with client(secured, temp) as sa:
            status(sa.get("/api/v1/namespaces/default/pods"), 401, "Unauthorized")


def test_pod_bound_tokens_die_with_the_pod(secured: Emulator) -> None:
    with admin(secured) as api:
        created = api.post("/api/v1/namespaces/default/pods", json={"metadata": {"name": "holder"}, "spec": {"containers": [{"name": "c"}]}})
        uid = created.json()["metadata"]["uid"]
        response = api.post(TOKEN.format(ns="default", name="default"), json={"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "holder"}}})
        assert response.status_code == 201 and response.json()["spec"]["boundObjectRef"]["uid"] == uid
        token = response.json()["status"]["token"]
        user = review(api, token)["user"]
        assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
        assert api.delete("/api/v1/namespaces/default/pods/holder").status_code == 200
        assert "no longer exists" in review(api, token)["error"]


def test_kubectl_with_the_written_kubeconfig(secured: Emulator, tmp_path: Path) -> None:
    kubectl = require_tool("kubectl")
    base = [kubectl, "--kubeconfig", secured.faces["kubeconfig"], "--cache-dir", str(tmp_path / "cache")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=30)

    listed = run("get", "namespaces", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "namespace/kube-system" in listed.stdout
    created = run("create", "token", "default", "--duration", "15m")  # a protobuf TokenRequest
    assert created.returncode == 0, created.stderr
    sa_token = created.stdout.strip()
    with admin(secured) as api:
        grant_view(api, "default")
    assert run("--token", sa_token, "get", "pods").returncode == 0
    forbidden = run("--token", sa_token, "get", "pods", "-n", "kube-system")
    assert forbidden.returncode != 0 and "cannot list resource" in forbidden.stderr
    anonymous = subprocess.run(
        [kubectl, "--server", secured.api_url, "--insecure-skip-tls-verify", "--cache-dir", str(tmp_path / "c2"), "get", "pods"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert anonymous.returncode != 0  # kubectl asks for a user name after the 401, and gets none


def test_loopback_default_needs_no_credentials_and_still_issues_tokens(emulator: Emulator, api: httpx.Client) -> None:
    assert emulator.api_url.startswith("http://") and "kubeconfig" not in emulator.faces
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "open"}}).status_code == 201
    assert not (emulator.data_dir / "admin-token").exists()
    token = request_token(api, "open", "default")
    assert review(api, token)["authenticated"] is True


def test_token_lifetime_is_cut_to_the_maximum(emulator: Emulator, api: httpx.Client) -> None:
    """--max-token-seconds (48 h by default), like the API server's --service-account-max-token-expiration:
    a longer request, even an anonymous one on the open API, is shortened, and the answer says so."""
    before = time.time()
    response = api.post(TOKEN.format(ns="kube-system", name="default"), json={"spec": {"expirationSeconds": 2**32}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["spec"]["expirationSeconds"] == 172800
    expires = datetime.strptime(body["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires.timestamp() - (before + 172800)) < 5
    claims = json.loads(base64.urlsafe_b64decode(body["status"]["token"].split(".")[1] + "=="))
    assert claims["exp"] - claims["iat"] == 172800
    status(api.post(TOKEN.format(ns="default", name="default"), json={"spec": {"expirationSeconds": 2**32 + 1}}), 422, "Invalid")


def test_the_maximum_token_lifetime_is_a_serve_flag(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path / "data", "--max-token-seconds", "900")
    try:
        with emu.client() as api:
            default = api.post(TOKEN.format(ns="default", name="default"), json={"spec": {}})
            assert default.status_code == 201 and default.json()["spec"]["expirationSeconds"] == 900
            short = api.post(TOKEN.format(ns="default", name="default"), json={"spec": {"expirationSeconds": 600}})
            assert short.status_code == 201 and short.json()["spec"]["expirationSeconds"] == 600
    finally:
        emu.stop()


def test_tokens_minted_while_the_api_was_open_die_when_it_requires_tokens(tmp_path: Path) -> None:
    """Anyone could ask the open API for a kube-system token; once tokens are required it must not work.
    The signing key turns over at that first start (and only then: later tokens survive restarts)."""
    data = tmp_path / "data"
    emu = start_emulator(data, in_memory=False)
    try:
        with emu.client() as anonymous:
            minted_open = request_token(anonymous, "kube-system", "default")
    finally:
        emu.stop()
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        assert "tokens minted before are no longer valid" in "".join(emu.output)
        with client(emu, minted_open) as old:
            status(old.get("/api/v1/namespaces/kube-system/pods"), 401, "Unauthorized")
        with admin(emu) as api:
            assert "another key" in review(api, minted_open)["error"]
            minted_secured = request_token(api, "kube-system", "default")
            grant_view(api, "kube-system")
    finally:
        emu.stop()
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        assert "no longer valid" not in "".join(emu.output)
        with client(emu, minted_secured) as sa:
            assert sa.get("/api/v1/namespaces/kube-system/pods").status_code == 200
        with client(emu, minted_open) as old:
            status(old.get("/api/v1/namespaces/kube-system/pods"), 401, "Unauthorized")
    finally:
        emu.stop()


def test_pod_with_a_missing_service_account_is_rejected(api: httpx.Client) -> None:
    body = {"metadata": {"name": "p"}, "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c"}]}}
    denied = status(api.post("/api/v1/namespaces/default/pods", json=body), 403, "Forbidden")
    assert 'serviceaccount "ghost" not found' in denied["message"]
    assert api.get("/api/v1/namespaces/default/pods/p").status_code == 404


def test_tokens_and_credentials_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        with admin(emu) as api:
            token = request_token(api, "default", "default")
            grant_view(api, "default")
        first_admin = (data / "admin-token").read_text()
        first_cert = (data / "api.crt").read_text()
    finally:
        emu.stop()
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        assert (data / "admin-token").read_text() == first_admin and (data / "api.crt").read_text() == first_cert
        assert stat.S_IMODE((data / "serviceaccount-signing.key").stat().st_mode) == 0o600
        with client(emu, token) as sa:
            assert sa.get("/api/v1/namespaces/default/pods").status_code == 200
    finally:
        emu.stop()


def test_empty_credential_files_are_made_again(tmp_path: Path) -> None:
    """A truncated signing key or admin token (a full disk, an editor) is replaced, not used as ''."""
    data = tmp_path / "data"
    start_emulator(data, "--require-auth", in_memory=False).stop()
    (data / "serviceaccount-signing.key").write_text("")
    (data / "admin-token").write_text("\n")
    emu = start_emulator(data, "--require-auth", in_memory=False)
    try:
        new_admin = (data / "admin-token").read_text().strip()
        assert new_admin.startswith("emulator-admin-")
        assert len((data / "serviceaccount-signing.key").read_text().strip()) >= 43  # 32 bytes, base64url
        assert kubeconfig_of(emu)["users"][0]["user"]["token"] == new_admin
        log = "".join(emu.output)
        assert "serviceaccount-signing.key was empty: made a new one" in log
        assert "admin-token was empty: made a new one" in log
        with admin(emu) as api:
            token = request_token(api, "default", "default")
            grant_view(api, "default")
        with client(emu, token) as sa:
            assert sa.get("/api/v1/namespaces/default/pods").status_code == 200
    finally:
        emu.stop()


# The child of `emulator run`: reads its token files and asks the API (a TokenReview) who it is.
REVIEW_CHILD = r"""
import json, os, sys, urllib.request
folder = os.environ["EMULATOR_SERVICEACCOUNT_DIR"]
token = open(os.environ["EMULATOR_SERVICEACCOUNT_TOKEN_FILE"]).read()
namespace = open(os.path.join(folder, "namespace")).read()
body = json.dumps({"spec": {"token": token}}).encode()
request = urllib.request.Request(sys.argv[1] + "/apis/authentication.k8s.io/v1/tokenreviews", body, {"Content-Type": "application/json"})
review = json.load(urllib.request.urlopen(request))["status"]
print(json.dumps({"folder": folder, "namespace": namespace, "mode": oct(os.stat(folder + "/token").st_mode & 0o777), "review": review}))
"""


def test_emulator_run_hands_the_process_a_pod_bound_token(emulator: Emulator) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "run", "--name", "holder", "--server", emulator.api_url, "--",
         sys.executable, "-c", REVIEW_CHILD, emulator.api_url],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["namespace"] == "default" and report["mode"] == "0o600"
    review = report["review"]
    assert review["authenticated"] is True, review
    assert review["user"]["username"] == "system:serviceaccount:default:default"
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
    assert not Path(report["folder"]).exists()  # removed with the pod
