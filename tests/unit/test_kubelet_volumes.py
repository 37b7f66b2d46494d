"""The sandbox's pure parts: a pod's hosts file and resolv.conf from the cluster's objects, the atomic
writer, volume payloads (items, modes, optional), projected tokens, and what `prepare` hands a spawner."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest

from emulator.controllers.namespaces import NamespaceController
from emulator.kinds import (
    CONFIG_MAPS,
    ENDPOINT_SLICES,
    ENDPOINTS,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from emulator.kubelet import sandbox
from emulator.kubelet import volumes as volumes_module
from emulator.kubelet.context import ContainerContext
from emulator.kubelet.hosts import (
    HOSTS_FILE,
    ClusterHosts,
    PodIdentity,
    render_hosts,
    render_resolv_conf,
    write_in_place,
)
from emulator.kubelet.volumes import (
    DATA_LINK,
    Mount,
    VolumeError,
    Volumes,
    format_map,
    source_payload,
    write_atomically,
)
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.registry.tokens import TokenOperations
from emulator.security import auth
from emulator.security.tokens import ServiceAccountTokens, SigningKey, default_issuer
from emulator.store.backend import MemoryBackend
from emulator.store.store import Store

KEY = SigningKey()
ISSUER = default_issuer("cluster.local")


@pytest.fixture
def registry() -> Registry:
    store = Store(MemoryBackend())
    reg = Registry(Cluster(store, AddressPlan("10.96.0.0/24", "10.244.0.0/24", "10.250.0.0/24", "30000-30099")))
    NamespaceController(reg).bootstrap("127.0.0.1", 6443)
    for ns in ("shop", "other"):
        reg.create(NAMESPACES, "", {"metadata": {"name": ns}})
        reg.create(SERVICE_ACCOUNTS, ns, {"metadata": {"name": "default"}})
    return reg


def service(reg: Registry, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}
    return reg.create(SERVICES, ns, body).obj


def hosts_of(reg: Registry, pod: dict[str, Any]) -> ClusterHosts:
    names = ClusterHosts("cluster.local", host_resolv_conf="nameserver 10.0.0.53\nsearch corp.example\n")
    reg.store.replay(names.apply, (NAMESPACES.key, SERVICES.key, ENDPOINTS.key, ENDPOINT_SLICES.key))
    return names


def lines_for(text: str, name: str) -> list[str]:
    return [line.split("\t")[0] for line in text.splitlines() if not line.startswith("#") and name in line.split()]


POD = {"metadata": {"name": "client", "namespace": "shop", "uid": "u-1"}, "status": {"podIP": "10.244.0.9"}}


# -- names ------------------------------------------------------------------------------------------


def test_services_of_the_pods_namespace_have_their_short_names(registry: Registry) -> None:
    web = service(registry, "shop", "web")
    service(registry, "other", "db")
    text = hosts_of(registry, POD).hosts_for(POD)
    ip = web["spec"]["clusterIP"]
    assert f"{ip}\tweb.shop.svc.cluster.local web.shop.svc web.shop web" in text
    for name in ("web", "web.shop", "web.shop.svc", "web.shop.svc.cluster.local"):
        assert lines_for(text, name) == [ip]
    # another namespace's service: only the forms the search path completes from here
    assert lines_for(text, "db.other") and lines_for(text, "db.other.svc.cluster.local")
    assert lines_for(text, "db") == []
    # the kubernetes service of the default namespace
    assert lines_for(text, "kubernetes.default.svc.cluster.local")


def test_headless_services_list_ready_endpoints_and_hostnames(registry: Registry) -> None:
    service(registry, "shop", "nginx", clusterIP="None")
    registry.create(ENDPOINTS, "shop", {
        "metadata": {"name": "nginx"},
        "subsets": [{
            "addresses": [{"ip": "10.244.0.20", "hostname": "web-0"}, {"ip": "10.244.0.21", "hostname": "web-1"}],
            "notReadyAddresses": [{"ip": "10.244.0.22", "hostname": "web-2"}],
            "ports": [{"port": 80}],
        }],
    })
    text = hosts_of(registry, POD).hosts_for(POD)
    assert sorted(lines_for(text, "nginx")) == ["10.244.0.20", "10.244.0.21"]
    assert lines_for(text, "web-0.nginx") == ["10.244.0.20"]
    assert lines_for(text, "web-1.nginx.shop.svc.cluster.local") == ["10.244.0.21"]
    assert lines_for(text, "web-2.nginx") == []  # not ready: the DNS does not answer it either


def test_external_name_services_are_left_out(registry: Registry) -> None:
    service(registry, "shop", "ext", type="ExternalName", externalName="example.com", ports=[])
    assert lines_for(hosts_of(registry, POD).hosts_for(POD), "ext") == []


def test_the_pods_own_names_and_host_aliases() -> None:
    pod = PodIdentity.of({
        "metadata": {"name": "web-0", "namespace": "shop"},
        "spec": {"hostname": "web-0", "subdomain": "nginx", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo.local", "bar"]}]},
        "status": {"podIP": "10.244.0.20"},
    })
    text = render_hosts(pod, [], "cluster.local")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.244.0.20\tweb-0.nginx.shop.svc.cluster.local web-0\n" in text
    assert "1.2.3.4\tfoo.local\tbar\n" in text


def test_long_pod_names_are_cut_to_a_label() -> None:
    assert PodIdentity.of({"metadata": {"name": "a" * 70}}).hostname == "a" * 63


def test_resolv_conf_searches_the_cluster_then_the_host() -> None:
    text = render_resolv_conf("shop", "cluster.local", "nameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch corp.example\noptions ndots:1 rotate\n")
    assert text == (
        "nameserver 10.0.0.53\nnameserver 10.0.0.54\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:5 rotate\n"
    )


def test_dns_policies_and_dns_config() -> None:
    host = "nameserver 10.0.0.53\nsearch corp.example\noptions ndots:1\n"
    default = {"spec": {"dnsPolicy": "Default"}}
    assert render_resolv_conf("shop", "cluster.local", host, default) == "nameserver 10.0.0.53\nsearch corp.example\noptions ndots:1\n"
    host_network = {"spec": {"hostNetwork": True}}  # ClusterFirst on the host network means Default
    assert "svc.cluster.local" not in render_resolv_conf("shop", "cluster.local", host, host_network)
    with_host_net = {"spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}}
    assert "search shop.svc.cluster.local" in render_resolv_conf("shop", "cluster.local", host, with_host_net)
    none = {"spec": {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }}}
    assert render_resolv_conf("shop", "cluster.local", host, none) == "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 edns0\n"


def test_pods_outside_the_cluster_dns_get_no_service_names(registry: Registry) -> None:
    service(registry, "shop", "web")
    pod = {**POD, "spec": {"dnsPolicy": "Default"}}
    assert lines_for(hosts_of(registry, pod).hosts_for(pod), "web") == []


def test_tracked_hosts_files_follow_new_services_in_place(registry: Registry, tmp_path: Path) -> None:
    names = hosts_of(registry, POD)
    hosts, _ = names.write(POD, tmp_path)
    inode = hosts.stat().st_ino
    assert "web" not in hosts.read_text()
    web = service(registry, "shop", "web")
    names.apply(next(e for e in registry.store.events_since(0) if e.name == "web"))
    names.flush()
    assert lines_for(hosts.read_text(), "web") == [web["spec"]["clusterIP"]]
    assert hosts.stat().st_ino == inode  # rewritten in place: a bind mount of it sees the change
    names.untrack("u-1")
    assert (tmp_path / "etc-hostname").read_text() == "client\n"


def test_write_in_place_shrinks_and_skips_unchanged(tmp_path: Path) -> None:
    path = tmp_path / HOSTS_FILE
    assert write_in_place(path, "a long first version\n")
    assert write_in_place(path, "short\n")
    assert path.read_text() == "short\n"
    assert not write_in_place(path, "short\n")


# -- the atomic writer --------------------------------------------------------------------------------


def test_atomic_writer_swaps_data_and_links_visible_names(tmp_path: Path) -> None:
    assert write_atomically(tmp_path, {"a.txt": (b"one", 0o644), "dir/b.txt": (b"two", 0o600)})
    first = os.readlink(tmp_path / DATA_LINK)
    assert first.startswith("..") and (tmp_path / first).is_dir()
    assert os.readlink(tmp_path / "a.txt") == f"{DATA_LINK}/a.txt"
    assert (tmp_path / "dir" / "b.txt").read_text() == "two"
    assert stat.S_IMODE((tmp_path / "dir" / "b.txt").stat().st_mode) == 0o600
    assert not write_atomically(tmp_path, {"a.txt": (b"one", 0o644), "dir/b.txt": (b"two", 0o600)})
    assert write_atomically(tmp_path, {"a.txt": (b"new", 0o644)})
    second = os.readlink(tmp_path / DATA_LINK)
    assert second != first and not (tmp_path / first).exists()  # the old set is gone
    assert (tmp_path / "a.txt").read_text() == "new"
    assert not (tmp_path / "dir").exists()  # names no longer in the payload disappear
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DATA_LINK, second, "a.txt"])


@pytest.mark.parametrize("bad", ["/abs", "../up", "a/../../b", "..hidden"])
def test_atomic_writer_refuses_paths_out_of_the_volume(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        write_atomically(tmp_path, {bad: (b"", 0o644)})


# -- payloads --------------------------------------------------------------------------------------


CM = {"data": {"app.yaml": "a: 1\n", "other": "x"}, "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()}}


def test_config_map_items_and_modes() -> None:
    assert source_payload("v", "configmap", {"name": "cm"}, CM, 0o640) == {
        "app.yaml": (b"a: 1\n", 0o640), "other": (b"x", 0o640), "blob": (b"\x00\x01", 0o640),
    }
    items = {"name": "cm", "items": [{"key": "app.yaml", "path": "conf/app.yaml", "mode": 0o400}]}
    assert source_payload("v", "configmap", items, CM, 0o644) == {"conf/app.yaml": (b"a: 1\n", 0o400)}


def test_missing_sources_and_keys_as_the_kubelet_words_them() -> None:
    with pytest.raises(VolumeError) as missing:
        source_payload("cfg", "configmap", {"name": "app"}, None, 0o644)
    assert str(missing.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "app" not found'
    with pytest.raises(VolumeError) as key:
        source_payload("cfg", "configmap", {"name": "cm", "items": [{"key": "nope", "path": "x"}]}, CM, 0o644)
    assert key.value.detail == "configmap references non-existent config key: nope"
    assert source_payload("cfg", "secret", {"name": "s", "optional": True}, None, 0o644) == {}


def test_downward_labels_format() -> None:
    assert format_map({"b": "2", "a": 'say "hi"'}) == 'a="say \\"hi\\""\nb="2"'


# -- a pod's volumes -------------------------------------------------------------------------------


def pod_with(reg: Registry, volumes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body = {
        "metadata": {"name": "app", "labels": {"app": "shop"}},
        "spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": v["name"], "mountPath": f"/m/{v['name']}"} for v in volumes]}],
                 "volumes": volumes, **spec},
    }
    return reg.create(PODS, "shop", body).obj


def token_ops(reg: Registry) -> TokenOperations:
    return TokenOperations(reg, auth.Authenticator(reg.store, ServiceAccountTokens(KEY, ISSUER)), max_expiration=2**32)


def test_volumes_of_every_kind(registry: Registry, tmp_path: Path) -> None:
    registry.create(CONFIG_MAPS, "shop", {"metadata": {"name": "cfg"}, "data": {"k": "v1"}})
    registry.create(SECRETS, "shop", {"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}})
    host = tmp_path / "host" / "made"
    pod = pod_with(registry, [
        {"name": "scratch", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "cfg", "defaultMode": 0o600}},
        {"name": "creds", "secret": {"secretName": "sec"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                                   {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "k", "path": "from-cm"}]}},
            {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 7200, "path": "token"}},
        ]}},
        {"name": "host", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
    ])
    volumes = Volumes(registry, pod, tmp_path / "pod", token_ops(registry))
    volumes.setup()
    mounts = {m.volume: m for m in volumes.mounts_for(pod["spec"]["containers"][0])}
    assert mounts["scratch"].host_path.is_dir() and mounts["scratch"].mount_path == "/m/scratch"
    config = mounts["config"].host_path
    assert (config / "k").read_text() == "v1" and stat.S_IMODE((config / "k").stat().st_mode) == 0o600
    assert (mounts["creds"].host_path / "password").read_text() == "s3cret"
    assert (mounts["info"].host_path / "labels").read_text() == 'app="shop"'
    assert (mounts["info"].host_path / "name").read_text() == "app"
    projected = mounts["all"].host_path
    assert (projected / "from-cm").read_text() == "v1"
    claims = jwt.decode((projected / "token").read_text(), options={"verify_signature": False})
    assert claims["aud"] == ["vault"] and claims["exp"] - claims["iat"] == 7200
    assert claims["kubernetes.io"]["pod"] == {"name": "app", "uid": pod["metadata"]["uid"]}
    assert mounts["host"].host_path == host and host.is_dir()

    # a ConfigMap change: refresh swaps the files; the token is not yet due, so it stays
    token = (projected / "token").read_text()
    registry.update(CONFIG_MAPS, "shop", "cfg", {**registry.get(CONFIG_MAPS, "shop", "cfg"), "data": {"k": "v2"}})
    volumes.refresh()
    assert (config / "k").read_text() == "v2" and (projected / "from-cm").read_text() == "v2"
    assert (projected / "token").read_text() == token
    # a label change: the downwardAPI file follows on the next refresh
    current = registry.get(PODS, "shop", "app")
    registry.update(PODS, "shop", "app", {**current, "metadata": {**current["metadata"], "labels": {"app": "shop", "tier": "web"}}})
    volumes.refresh()
    assert (mounts["info"].host_path / "labels").read_text() == 'app="shop"\ntier="web"'
    volumes.teardown()
    assert not (tmp_path / "pod" / "volumes").exists() and host.is_dir()


def test_tokens_are_rotated_past_80_percent(registry: Registry, tmp_path: Path) -> None:
    pod = pod_with(registry, [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 1000}}]}}])
    volumes = Volumes(registry, pod, tmp_path, token_ops(registry))
    volumes.setup()
    path = volumes.paths["t"] / "token"
    first = path.read_text()
    token = volumes._tokens["t"][0]
    token.issued -= 790
    volumes.refresh()
    assert path.read_text() == first
    token.issued -= 20
    volumes.refresh()
    assert path.read_text() != first
    assert jwt.decode(path.read_text(), options={"verify_signature": False})["aud"] == [ISSUER]


def test_a_missing_config_map_waits_and_hostpath_types_are_checked(registry: Registry, tmp_path: Path) -> None:
    pod = pod_with(registry, [{"name": "cfg", "configMap": {"name": "later"}}])
    with pytest.raises(VolumeError, match='configmap "later" not found'):
        Volumes(registry, pod, tmp_path, None).setup()
    registry.create(CONFIG_MAPS, "shop", {"metadata": {"name": "later"}, "data": {"a": "b"}})
    Volumes(registry, pod, tmp_path, None).setup()
    registry.delete(PODS, "shop", "app")
    pod = pod_with(registry, [{"name": "h", "hostPath": {"path": str(tmp_path / "absent"), "type": "Directory"}}])
    with pytest.raises(VolumeError, match="hostPath type check failed: .*absent is not a directory"):
        Volumes(registry, pod, tmp_path, None).setup()


def test_empty_dir_size_limits_are_measured(registry: Registry, tmp_path: Path) -> None:
    pod = pod_with(registry, [{"name": "small", "emptyDir": {"sizeLimit": "1Ki"}}])
    volumes = Volumes(registry, pod, tmp_path, None)
    volumes.setup()
    assert volumes.over_limit() == []
    (volumes.paths["small"] / "big").write_bytes(b"x" * 2048)
    assert volumes.over_limit() == ['Usage of EmptyDir volume "small" exceeds the limit "1Ki". ']


NOBODY = 65534


def fake_shm(tmp_path: Path) -> Path:
    shm = tmp_path / "shm"
    shm.mkdir()
    os.chmod(shm, 0o1777)  # as /dev/shm: world-writable and sticky
    return shm


def test_memory_empty_dirs_are_private_and_ours(registry: Registry, tmp_path: Path) -> None:
    pod = pod_with(registry, [{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    volumes = Volumes(registry, pod, tmp_path / "pod", None)
    volumes.setup()
    memory = volumes.paths["cache"]
    try:
        st = os.lstat(memory)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
        assert memory.parent == Path(volumes_module.SHM_DIR) and memory.name.startswith(volumes_module.MEMORY_PREFIX)
        link = tmp_path / "pod" / "volumes" / "kubernetes.io~empty-dir" / "cache"
        assert link.is_symlink() and link.resolve() == memory
        # files keep the modes the pod gives them: the directory is what keeps others out
        fd = os.open(memory / "f", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        assert stat.S_IMODE((memory / "f").stat().st_mode) == 0o644 & ~current_umask()
        # set up again (a retry, an adoption after a restart): the same directory
        again = Volumes(registry, pod, tmp_path / "pod", None)
        again.setup()
        assert again.paths["cache"] == memory
    finally:
        volumes.teardown()
    assert not memory.exists() and not (tmp_path / "pod" / "volumes").exists()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_pre_created_shared_directory_cannot_redirect_a_memory_empty_dir(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    shm = fake_shm(tmp_path)
    monkeypatch.setattr(volumes_module, "SHM_DIR", str(shm))
    pod = pod_with(registry, [{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    uid = pod["metadata"]["uid"]
    # another local user made the old fixed path first, with the pod's directory pointing where they read
    theirs, spy = shm / "emulator-pods", tmp_path / "spy"
    theirs.mkdir(mode=0o777)
    spy.mkdir(mode=0o777)
    (theirs / uid).symlink_to(spy)
    if os.getuid() == 0:
        os.chown(theirs, NOBODY, NOBODY)
        os.chown(spy, NOBODY, NOBODY)
    volumes = Volumes(registry, pod, tmp_path / "pod", None)
    volumes.setup()
    memory = volumes.paths["cache"]
    (memory / "secret").write_text("x")
    assert memory.parent == shm and stat.S_IMODE(os.lstat(memory).st_mode) == 0o700 and os.lstat(memory).st_uid == os.getuid()
    assert list(spy.iterdir()) == [] and list((theirs / uid).iterdir()) == []
    # a link swapped to someone else's directory, or to one others may enter, is not used: a new one is made
    link = tmp_path / "pod" / "volumes" / "kubernetes.io~empty-dir" / "cache"
    open_dir = shm / (volumes_module.MEMORY_PREFIX + "open")
    open_dir.mkdir(mode=0o755)
    os.chmod(open_dir, 0o755)
    link.unlink()
    link.symlink_to(open_dir)
    again = Volumes(registry, pod, tmp_path / "pod", None)
    again.setup()
    assert again.paths["cache"] not in (open_dir, memory) and stat.S_IMODE(os.lstat(again.paths["cache"]).st_mode) == 0o700
    again.teardown()
    assert open_dir.is_dir()  # not ours to remove
    volumes_module.shutil.rmtree(memory)


def test_memory_empty_dirs_fall_back_to_the_runtime_dir_then_to_disk(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(volumes_module, "SHM_DIR", str(tmp_path / "no-shm"))
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    pod = pod_with(registry, [{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    volumes = Volumes(registry, pod, tmp_path / "pod", None)
    volumes.setup()
    assert volumes.paths["cache"].parent == runtime and stat.S_IMODE(os.lstat(volumes.paths["cache"]).st_mode) == 0o700
    volumes.teardown()
    assert list(runtime.iterdir()) == []
    # a world-writable directory without the sticky bit is no place for it (others could rename it away)
    os.chmod(runtime, 0o777)
    volumes = Volumes(registry, pod, tmp_path / "pod2", None)
    volumes.setup()
    assert volumes.paths["cache"] == tmp_path / "pod2" / "volumes" / "kubernetes.io~empty-dir" / "cache"
    assert volumes.paths["cache"].is_dir() and not volumes.paths["cache"].is_symlink()
    volumes.teardown()


def test_unsupported_volume_kinds_say_what_is_supported(registry: Registry, tmp_path: Path) -> None:
    pod = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"volumes": [{"name": "n", "nfs": {"server": "x", "path": "/"}}]}}
    with pytest.raises(VolumeError, match="nfs volume is not supported.*emptyDir"):
        Volumes(registry, pod, tmp_path, None).setup()


def test_sub_path_and_sub_path_expr(tmp_path: Path) -> None:
    mount = Mount("v", tmp_path, "/data", sub_path_expr="logs/$(POD_NAME)")
    assert mount.source({"POD_NAME": "web-0"}) == tmp_path / "logs" / "web-0"
    assert (tmp_path / "logs" / "web-0").is_dir()
    with pytest.raises(VolumeError):
        Mount("v", tmp_path, "/data", sub_path="../etc").source({})


# -- prepare --------------------------------------------------------------------------------------------


def test_mount_variables_name_the_mount_path() -> None:
    assert sandbox.mount_variable("/etc/config") == "EMULATOR_MOUNT_ETC_CONFIG"
    assert sandbox.mount_variable("/usr/share/nginx/html/") == "EMULATOR_MOUNT_USR_SHARE_NGINX_HTML"
    assert sandbox.mount_variable("/var/run/secrets/kubernetes.io/serviceaccount") == "EMULATOR_MOUNT_VAR_RUN_SECRETS_KUBERNETES_IO_SERVICEACCOUNT"


def test_without_the_sandbox_mounts_are_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "available", lambda: False)
    ctx = ContainerContext("shop", "app", "u", "c", "10.244.0.9", {"PATH": "/bin"}, None, tmp_path,
                           (Mount("cfg", tmp_path / "cfg", "/etc/config", True),))
    argv, env = sandbox.prepare(ctx, ["cat", "$(EMULATOR_MOUNT_ETC_CONFIG)/app.yaml"])
    assert argv == ["cat", f"{tmp_path}/cfg/app.yaml"]
    assert env == {"PATH": "/bin", "EMULATOR_MOUNT_ETC_CONFIG": str(tmp_path / "cfg")}


def test_with_the_sandbox_argv_runs_behind_the_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "available", lambda: True)
    ctx = ContainerContext("shop", "app", "u", "c", "10.244.0.9", {"PATH": os.environ["PATH"]}, "/work", tmp_path,
                           (Mount("cfg", tmp_path / "cfg", "/etc/config", True),))
    argv, env = sandbox.prepare(ctx, ["cat", "$(EMULATOR_MOUNT_ETC_CONFIG)/app.yaml"])
    assert argv[1:4] == ["-S", "-I", sandbox.LAUNCHER] and argv[-3:] == ["--", "cat", "/etc/config/app.yaml"]
    assert env["EMULATOR_MOUNT_ETC_CONFIG"] == "/etc/config"
    assert (tmp_path / "etc-hosts").exists() and (tmp_path / "resolv.conf").exists()
    # a command that exists nowhere is spawned as is: the spawner sees exec's own error
    assert sandbox.prepare(ctx, ["no-such-command-anywhere"])[0] == ["no-such-command-anywhere"]
    # ... but one a volume provides is found inside the sandbox
    assert sandbox.prepare(ctx, ["/etc/config/run.sh"])[0][-1] == "/etc/config/run.sh"
    assert sandbox.prepare(ctx, ["/etc/config/run.sh"])[0][0] != "/etc/config/run.sh"
