"""Wires the parts together and owns their start/stop order.

Start: open the store and read it back → bind the API socket (its port is needed next) → claim stored
addresses → controllers, the policy engine, the DNS index and the proxy subscribe to store events and
are handed the current objects → create the built-in objects → bind DNS and the proxy → serve the API.
Stop: the API first, then DNS and the proxy, and the store last, once everything unsaved is on disk.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import logging
import os
import shlex
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from emulator import addresses
from emulator.config import Config, parse_size
from emulator.controllers.clusterroleaggregation import ClusterRoleAggregationController, ensure_bootstrap_policy
from emulator.controllers.crd import CrdController
from emulator.controllers.cronjob import CronJobController
from emulator.controllers.daemonset import DaemonSetController
from emulator.controllers.deployment import DeploymentController
from emulator.controllers.endpoints import EndpointsController
from emulator.controllers.events import EventTTL
from emulator.controllers.garbagecollector import GarbageCollector
from emulator.controllers.gatewayapi import GatewayApiStatusController
from emulator.controllers.horizontalpodautoscaler import HorizontalPodAutoscalerController
from emulator.controllers.ingressstatus import IngressStatusController
from emulator.controllers.job import JobController
from emulator.controllers.namespaces import NamespaceController
from emulator.controllers.podconfig import PodConfigController
from emulator.controllers.replicaset import ReplicaSetController
from emulator.controllers.scheduler import SchedulerController
from emulator.controllers.statefulset import StatefulSetController
from emulator.controllers.volumes import VolumeController
from emulator.dns.index import DnsIndex
from emulator.dns.server import start_dns
from emulator.dns.settings import DnsSettings
from emulator.dns.sources import parse_forward_from
from emulator.flows.log import FlowLog
from emulator.flows.reader import FlowReader, PodNames
from emulator.kinds import (
    CLUSTER_ROLES,
    CONTROLLER_REVISIONS,
    CRON_JOBS,
    DAEMON_SETS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    ENDPOINTS,
    EVENTS,
    JOBS,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    REPLICA_SETS,
    REPLICATION_CONTROLLERS,
    RESOURCE_TYPES,
    SERVICES,
    STATEFUL_SETS,
)
from emulator.kinds.horizontalpodautoscaler import HORIZONTAL_POD_AUTOSCALERS
from emulator.kinds.pod import RUNNABLE_CONDITION
from emulator.kubelet.hosts import ClusterHosts
from emulator.netpol.engine import PolicyEngine
from emulator.observability.metrics import Collectors, install
from emulator.observability.stats import DataPathStats
from emulator.proxy.server import Proxy, ProxySettings
from emulator.registry.ipam import AddressPlan
from emulator.registry.registry import Cluster, Registry
from emulator.registry.tokens import TokenOperations
from emulator.registry.watch import Census as WatchCensus
from emulator.routing.sources import RoutingSettings
from emulator.security import auth, datadir, tokens
from emulator.security import tls as auth_tls
from emulator.store.backend import Backend, MemoryBackend, SqliteBackend
from emulator.store.store import Store
from emulator.timestamps import now_rfc3339

if TYPE_CHECKING:  # the kubelet package loads only with --kubelet (or over leftovers to stop): start-up time
    from emulator.kubelet.kubelet import Kubelet

log = logging.getLogger("emulator")

ApiFactory = Callable[["Runtime"], web.Application]
# the stored objects the kubelet may run: kinds with a pod template (where it is) and pods
_POD_SPECS = (
    (DEPLOYMENTS, ("spec", "template", "spec")), (REPLICA_SETS, ("spec", "template", "spec")),
    (REPLICATION_CONTROLLERS, ("spec", "template", "spec")), (STATEFUL_SETS, ("spec", "template", "spec")),
    (DAEMON_SETS, ("spec", "template", "spec")), (JOBS, ("spec", "template", "spec")),
    (CRON_JOBS, ("spec", "jobTemplate", "spec", "template", "spec")), (PODS, ("spec",)),
)
LISTED_AT_MOST = 20  # stored objects named in a refusal to start
# serves a set-up runner on the bound API socket (with TLS or None); the HTTP layer provides it
# (runner, bound socket, TLS context or None, the kubeconfig written for a TLS API or None) -> the listener
ApiServer = Callable[[web.AppRunner, socket.socket, "ssl.SSLContext | None", "Path | None"], Awaitable[asyncio.AbstractServer]]
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
KEEPALIVE_TIMEOUT = 75.0  # seconds an idle keep-alive API connection is kept (aiohttp's default is an hour)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, where there is one (Linux): returns free heap pages to the system. Large
    buffers (a watch's backlog, a request body) are kept out of the heap altogether: glibc otherwise
    raises its mmap threshold after the first ones are freed, and later ones fragment the heap for good."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        trim: Callable[[int], int] = libc.malloc_trim
        return trim
    except (OSError, AttributeError):
        return None


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening socket, bound now so that its port is known before anything is advertised."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _upstreams(text: str) -> list[str] | None:
    """`--dns-upstream`: empty = the host's resolvers, `none` = refuse, else a comma-separated list."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "none":
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


class StartRefused(Exception):
    """`emulator serve` must not start as configured; the message says why and what to do."""


def stored_pod_specs(store: Store) -> list[tuple[str, str]]:
    """The stored objects the kubelet may run, as ("kind/name -n namespace", what runs): every object with a
    pod template, and the pods marked to run (not finished). Those with a command or args come first."""
    found: list[tuple[bool, str, str]] = []
    for rt, path in _POD_SPECS:
        for obj in store.objects(rt.key):
            if rt is PODS and (
                (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                or not any(c.get("type") == RUNNABLE_CONDITION and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])
            ):
                continue
            spec: Any = obj
            for key in path:
                spec = spec.get(key) if isinstance(spec, dict) else None
            containers = [*((spec or {}).get("initContainers") or []), *((spec or {}).get("containers") or [])]
            commands = [shlex.join([*(c.get("command") or []), *(c.get("args") or [])]) for c in containers if c.get("command") or c.get("args")]
            images = ", ".join(f"image {c.get('image') or '(none)'}" for c in containers)
            what = "; ".join(commands) or images
            meta = obj["metadata"]
            name = f"{rt.singular}/{meta['name']}" + (f" -n {meta['namespace']}" if meta.get("namespace") else "")
            found.append((not commands, name, what if len(what) <= 120 else what[:117] + "..."))
    found.sort(key=lambda entry: entry[0])
    return [(name, what) for _, name, what in found]


def untrusted_store_message(data_dir: Path, record: dict[str, str], found: list[tuple[str, str]], user: str) -> str:
    """Why a start with the kubelet is refused over a data directory served without authentication, what it
    holds, and how to review it and go on."""
    when = f" (first {record['first']}, last {record['last']}" + (f", at {record['api']})" if record.get("api") else ")") if record.get("first") else ""
    shown = [f"  {name}: {what}" for name, what in found[:LISTED_AT_MOST]]
    if len(found) > LISTED_AT_MOST:
        shown.append(f"  ... and {len(found) - LISTED_AT_MOST} more")
    kinds = ",".join(rt.plural for rt, _ in _POD_SPECS)
    return "\n".join([
        f"not started: {data_dir} was served without authentication{when}. Anyone who could reach the API then "
        f"(on loopback: every local user) could store workloads, and the kubelet (--kubelet) runs their "
        f"commands as {user}. {len(found)} stored object(s) it may run:",
        *shown,
        "Review them with the kubelet off and the API closed:",
        f"  emulator serve --data-dir {data_dir} --require-auth",
        f"  KUBECONFIG={data_dir / datadir.KUBECONFIG_FILE} kubectl get {kinds} -A -o yaml",
        "Delete what you did not create, then start once with --trust-stored-objects: it removes "
        f"{data_dir / datadir.SERVED_OPEN_FILE}, and later starts need no flag (docs/security.md).",
    ])


def routing_settings(config: Config) -> RoutingSettings:
    """What Ingress and Gateway API routing need to know of the gateway (emulator/routing/)."""
    https_port = config.gateway_https_port
    return RoutingSettings(
        gateway_host=config.gateway_host, http_port=config.gateway_port,
        https_port=https_port if https_port >= 0 else None, zone=config.cluster_domain,
    )


@dataclass
class Runtime:
    config: Config
    api_factory: ApiFactory
    api_server: ApiServer | None = None  # None: aiohttp's own site
    store: Store = field(init=False)
    registry: Registry = field(init=False)
    api_port: int = 0
    started_in: float = 0.0
    faces: dict[str, str] = field(default_factory=dict)  # what listens where, for the banner
    dns_index: DnsIndex | None = None
    proxy: Proxy | None = None
    policy_engine: PolicyEngine = field(init=False)
    authenticator: auth.Authenticator = field(init=False)
    auth_required: bool = False
    kubeconfig_path: Path | None = None  # written when the API needs tokens
    api_tls: ssl.SSLContext | None = None  # the API speaks HTTPS when it needs tokens
    root_ca: str | None = None  # then the CA of its certificate (PEM): pods' kube-root-ca.crt
    kubelet: Kubelet | None = None  # with --kubelet / --image-map: pods run as local processes
    cluster_hosts: ClusterHosts | None = None  # each pod's /etc/hosts (emulator/kubelet/hosts.py)
    data_path: DataPathStats = field(default_factory=DataPathStats)  # DNS and proxy counters, for /metrics
    flows: FlowLog | None = None  # every DNS query, connection and request (emulator/flows/); None with --no-flows
    flow_reader: FlowReader = field(default_factory=FlowReader)  # renders them, with pod and service names
    _pod_stats: Any = None  # emulator/kubelet/stats.py's Stats, made with the first look at a pod's usage
    _runner: web.AppRunner | None = None
    _api_listener: asyncio.AbstractServer | None = None
    _closers: list[Any] = field(default_factory=list)

    def _backend(self) -> Backend:
        if self.config.in_memory:
            return MemoryBackend()
        return SqliteBackend(self.config.store_path, "FULL" if self.config.fsync == "full" else "NORMAL")

    async def start(self) -> None:
        began = time.perf_counter()
        config = self.config
        self.store = Store(self._backend(), history_size=config.watch_history)
        loaded = self.store.load()
        self._check_stored_objects()  # before anything listens: a refused start leaves nothing behind
        plan = AddressPlan(config.service_cidr, config.pod_cidr, config.lb_cidr, config.node_port_range)
        api_sock = bind_tcp(config.api_host, config.api_port)
        self.api_port = api_sock.getsockname()[1]
        self.faces["API"] = f"http://{config.api_host}:{self.api_port}"
        cluster = Cluster(self.store, plan, config.node_address, config.api_host if config.api_host not in ("0.0.0.0", "::") else "127.0.0.1", self.api_port)
        self.registry = Registry(cluster)
        if config.runs_pods:
            self.kubelet = self._make_kubelet()
            cluster.unrunnable = self.kubelet.unrunnable
        self.registry.claim_stored()
        if self.kubelet is None and not config.in_memory and (Path(config.data_dir) / "pods").is_dir():
            from emulator.kubelet.kubelet import stop_leftovers  # what a run killed with -9 left running

            stop_leftovers(self.registry, Path(config.data_dir) / "pods")
        self._start_auth(cluster.api_address, plan.service_ips.first_address)
        cluster.root_ca = self.root_ca
        if self.api_tls is not None:
            self.faces["API"] = f"https://{config.api_host}:{self.api_port}"

        namespaces = NamespaceController(self.registry)
        endpoints = EndpointsController(self.registry)
        self.store.subscribe(namespaces.apply)
        self.store.subscribe(endpoints.apply)
        # stored custom resource definitions are served before anything reads their resources
        crds = CrdController(self.registry)
        self.store.subscribe(crds.apply)
        crds.start()
        endpoints.start()
        event_ttl = EventTTL(self.registry, config.event_ttl, config.max_events)
        self.store.subscribe(event_ttl.apply)
        self.store.replay(event_ttl.apply, (EVENTS.key,))
        event_ttl.start()
        self._closers.append(event_ttl.stop)
        volumes = VolumeController(self.registry, None if config.in_memory else config.data_dir)
        self.store.subscribe(volumes.apply)
        volumes.start()
        # the workload controllers and the garbage collector: each marks keys dirty from events (and from
        # the stored objects, replayed) and syncs them in its own task
        workloads = (
            (ReplicaSetController(self.registry), (REPLICA_SETS.key, REPLICATION_CONTROLLERS.key, PODS.key)),
            (DeploymentController(self.registry), (DEPLOYMENTS.key, REPLICA_SETS.key)),
            (JobController(self.registry), (JOBS.key, PODS.key)),
            (CronJobController(self.registry), (CRON_JOBS.key, JOBS.key)),
            (StatefulSetController(self.registry), (STATEFUL_SETS.key, CONTROLLER_REVISIONS.key, PODS.key)),
            (DaemonSetController(self.registry), (DAEMON_SETS.key, CONTROLLER_REVISIONS.key, PODS.key, NODES.key)),
            (GarbageCollector(self.registry), tuple(rt.key for rt in RESOURCE_TYPES)),
            (PodConfigController(self.registry), (PODS.key,)),
            (SchedulerController(self.registry), (PODS.key, NODES.key)),
            (ClusterRoleAggregationController(self.registry), (CLUSTER_ROLES.key,)),
            (ingress_status := IngressStatusController(self.registry, routing_settings(config)), ingress_status.watched),
            (gateway_status := GatewayApiStatusController(self.registry, routing_settings(config)), gateway_status.watched),
        )
        for controller, watched in workloads:
            self.store.subscribe(controller.apply)
            self.store.replay(controller.apply, watched)
            controller.queue.start()
            self._closers.append(controller.queue.stop)
        autoscalers = HorizontalPodAutoscalerController(self.registry, lambda: self.kubelet, self.pod_stats, float(config.hpa_sync_period))
        self.store.subscribe(autoscalers.apply)
        self.store.replay(autoscalers.apply, (HORIZONTAL_POD_AUTOSCALERS.key,))
        autoscalers.start()
        self._closers.append(autoscalers.stop)
        self.policy_engine = PolicyEngine(config.proxy and config.network_policy, lambda: self.store.objects(PODS.key))
        self.store.subscribe(self.policy_engine.apply)
        if config.flows:  # recorded by DNS and the proxy, counted for /metrics from the records (flows/log.py)
            self.flows = FlowLog(config.flow_buffer, self.data_path)
            self.flows.start(asyncio.get_running_loop())
            self._closers.append(self.flows.stop)
            pod_names = PodNames(self.policy_engine)
            self.store.subscribe(pod_names.apply)
            self.flow_reader = FlowReader(pod_names)
        self.store.replay(self.policy_engine.apply, (NAMESPACES.key, NETWORK_POLICIES.key))
        for part in await self._start_faces():
            self.store.subscribe(part.apply)
            self.store.replay(part.apply, (NAMESPACES.key, SERVICES.key, ENDPOINTS.key, ENDPOINT_SLICES.key, PODS.key))
        if self.proxy is not None:  # and what its Ingress / Gateway API routing reads
            replayed = (NAMESPACES.key, SERVICES.key)
            self.store.replay(self.proxy.apply, tuple(k for k in self.proxy.routing_watched if k not in replayed))
            # a Gateway listener whose port the gateway cannot bind says so in its Gateway's status
            self.proxy.bind_observers.append(gateway_status.set_unbound)
        namespaces.bootstrap(cluster.api_address, self.api_port)
        ensure_bootstrap_policy(self.registry)  # the default RBAC roles and bindings
        await self.store.settled(self.store.rv)  # the built-ins are stored and every index has them
        # the cluster's names as hosts-file lines: for the kubelet's pods and `emulator run` (api/podhosts.py)
        # (reading the DNS server's index, fed by the same events, rather than keeping a second one)
        self.cluster_hosts = hosts = ClusterHosts(config.cluster_domain, index=self.dns_index)
        self.store.subscribe(hosts.apply)
        self.store.replay(hosts.apply, (NAMESPACES.key, SERVICES.key, ENDPOINTS.key, ENDPOINT_SLICES.key))
        self._closers.append(hosts.close)
        if self.kubelet is not None:
            # the node's pods run (or are adopted) once every index knows the stored objects
            self.kubelet.settings.hosts = hosts
            self.kubelet.settings.tokens = TokenOperations(self.registry, self.authenticator, max_expiration=config.max_token_seconds)
            self.store.subscribe(self.kubelet.apply)
            self.kubelet.start()
        self._closers.append(install(Collectors(self.store, lambda: self.kubelet, self.data_path)))  # /metrics
        await self._serve_faces()

        self._runner = web.AppRunner(
            self.api_factory(self), access_log=None, handle_signals=False, shutdown_timeout=1.0,
            auto_decompress=False,  # api/http.py decompresses, bounded (no gzip bomb) and with Status errors
            # a client that goes away ends its request at once (a watch with no events frees everything)
            handler_cancellation=True,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        await self._runner.setup()
        if self.api_server is not None:
            self._api_listener = await self.api_server(self._runner, api_sock, self.api_tls, self.kubeconfig_path)
        else:
            await web.SockSite(self._runner, api_sock, ssl_context=self.api_tls).start()
        self._warn_exposure()
        housekeeping = asyncio.get_running_loop().create_task(self._give_memory_back())
        self._closers.append(housekeeping.cancel)
        self.faces["data"] = "in memory (nothing is kept)" if config.in_memory else f"{config.store_path} ({loaded} objects)"
        # Everything loaded at start lives as long as the process: keep the collector from rescanning it.
        # No collection first: it found ~100 unreachable objects for 20-50 ms before the API answers.
        gc.freeze()
        self.started_in = time.perf_counter() - began

    def _check_stored_objects(self) -> None:
        """The kubelet runs what the store holds, as the owner. Over a data directory that was served without
        authentication (anyone who reached the API could store a workload), a start that requires tokens and
        runs pods refuses until the owner has reviewed the stored objects and says so once
        (`--trust-stored-objects`). Open starts keep the record; in memory nothing was stored (docs/security.md)."""
        config = self.config
        if config.in_memory:
            return
        data_dir = Path(config.data_dir)
        record = datadir.served_open(data_dir)
        if record is None and datadir.recorded(data_dir, datadir.SIGNING_MODE_FILE) == tokens.OPEN_MODE:
            record = {}  # served open by a version that kept no record
        if record is None or not auth.auth_required(config.api_host, config.require_auth, config.allow_anonymous, config.runs_pods):
            return
        if config.trust_stored_objects:
            datadir.clear_served_open(data_dir)
            log.warning("--trust-stored-objects: the objects stored while %s was served without authentication are trusted from now on", data_dir)
            return
        if not config.runs_pods:
            return  # nothing runs them: the record stays for the next start with the kubelet
        found = stored_pod_specs(self.store)
        if not found:
            datadir.clear_served_open(data_dir)  # nothing stored that could run
            return
        self.store.close()
        raise StartRefused(untrusted_store_message(data_dir, record, found, getpass.getuser()))

    def _make_kubelet(self) -> Kubelet:
        from emulator.kubelet.images import ImageMap, ImageMapError
        from emulator.kubelet.kubelet import Kubelet, KubeletSettings
        from emulator.kubelet.podworker import Backoff

        config = self.config
        try:
            images = ImageMap.load(config.image_map) if config.image_map else ImageMap()
        except ImageMapError as exc:
            raise SystemExit(f"error: {exc}") from None
        # EMULATOR_KUBELET_BACKOFF_SECONDS: the CrashLoopBackOff base (10 s), shortened by tests only; so is
        # EMULATOR_KUBELET_LISTENER_LOOKS, when containers' listeners are looked at ("1,4,25": kubelet/ports.py)
        base = float(os.environ.get("EMULATOR_KUBELET_BACKOFF_SECONDS") or Backoff.base)
        looks = os.environ.get("EMULATOR_KUBELET_LISTENER_LOOKS")
        settings = KubeletSettings(
            data_dir=None if config.in_memory else Path(config.data_dir), images=images,
            log_max_bytes=parse_size(config.container_log_max_size) or 10 * 1024 * 1024,
            log_max_files=config.container_log_max_files, backoff=Backoff(base=base, limit=max(base * 30, base)),
        )
        if looks:
            settings.listener_looks = tuple(float(wait) for wait in looks.split(","))
        user = getpass.getuser()
        self.faces["kubelet"] = f"runs pods' commands as {user} ({len(images.entries)} images mapped; docs/pods.md)"
        return Kubelet(self.registry, settings)

    async def _start_faces(self) -> list[Any]:
        """DNS and proxy: each optional, each fed by store events (replayed before they serve)."""
        config = self.config
        parts: list[Any] = []
        if config.dns_port >= 0:
            settings = DnsSettings(
                host=config.dns_host, port=config.dns_port, zone=config.cluster_domain.strip(".").lower(),
                ttl=config.dns_ttl, default_namespace=config.default_namespace,
                upstreams=_upstreams(config.dns_upstream), forward_from=parse_forward_from(config.dns_forward_from),
                gateway_domains=tuple(d.strip(". ").lower() for d in config.gateway_domain.split(",") if d.strip(". ")),
            )
            self.dns_index = DnsIndex(settings)
            parts.append(self.dns_index)
        if config.proxy:
            self.proxy = Proxy(ProxySettings(
                node_address=config.node_address, gateway_host=config.gateway_host,
                gateway_port=config.gateway_port if config.gateway_port >= 0 else None,
                gateway_https_port=config.gateway_https_port if config.gateway_https_port >= 0 else None,
                zone=config.cluster_domain.strip(".").lower(), default_namespace=config.default_namespace,
                listen_beyond_loopback=config.listen_beyond_loopback, protected=self._api_endpoints(), flows=self.flows,
            ), policy=self.policy_engine if config.network_policy else None)
            parts.append(self.proxy)
            if self.dns_index is not None and (config.gateway_port >= 0 or config.gateway_https_port >= 0):
                # Ingress and Gateway API hostnames answer with the gateway's address (a wildcard bind: the node's)
                dns, address = self.dns_index, config.gateway_host
                if address in ("", "0.0.0.0", "::"):
                    address = config.node_address
                self.proxy.routing_observers.append(lambda routing: dns.set_gateway_names(address, *routing.served_names()))
        return parts

    def _api_endpoints(self) -> frozenset[tuple[str, int]]:
        """Where the API itself answers: the gateway never forwards there."""
        host = self.config.api_host
        address = "*" if host in ("", "0.0.0.0", "::") else host.strip("[]")
        return frozenset({(address, self.api_port), ("127.0.0.1", self.api_port)})

    def _warn_exposure(self) -> None:
        """Say what listens beyond loopback, and what that exposes: only ever what the user asked for."""
        config = self.config
        exposed = [
            (config.api_host, "the API", "anyone who reaches it with a token can change the cluster"),
            (config.gateway_host, "the service gateway", "every HTTP service of the cluster is reachable through it"),
            (config.node_address, "NodePort services", "every NodePort service is reachable there"),
            (config.dns_host, "DNS", "the cluster's names are answered there"),
        ]
        for host, what, meaning in exposed:
            if not addresses.is_loopback(host):
                log.warning("%s listens on %s, beyond loopback (as asked): %s from the network", what, host, meaning)
        if config.listen_beyond_loopback:
            log.warning("--listen-beyond-loopback: services' externalIPs and load-balancer IPs outside 127.0.0.0/8 are listened on and reachable from the network")

    def _start_auth(self, api_address: str, kubernetes_ip: str) -> None:
        """Service-account tokens always work; bearer tokens are required for the API only when
        `auth_required` says so. Then the API speaks HTTPS (kubectl sends tokens over TLS only), and
        the admin token, the certificate and a kubeconfig with both are kept in the data dir (even with
        --in-memory: they are how the user gets in)."""
        config = self.config
        data_dir = Path(config.data_dir)
        self.auth_required = auth.auth_required(config.api_host, config.require_auth, config.allow_anonymous, config.runs_pods)
        if config.runs_pods and config.allow_anonymous:
            log.warning("--kubelet with --allow-anonymous: anyone who can reach the API (every local user) can run commands as %s", getpass.getuser())
        # In memory, tokens die with the process like the accounts they name; on disk, they survive
        # restarts, except the first one that requires tokens after an open one (the key turns over).
        issuer = tokens.ServiceAccountTokens(
            tokens.signing_key(None if config.in_memory else data_dir, auth_required=self.auth_required),
            tokens.default_issuer(config.cluster_domain),
        )
        if not self.auth_required:
            self.authenticator = auth.Authenticator(self.store, issuer)
            if not config.in_memory:  # whatever is stored from now on, anyone may have written
                datadir.mark_served_open(data_dir, now_rfc3339(), self.faces["API"])
            if not addresses.is_loopback(config.api_host):
                log.warning("the API on %s accepts anyone who can reach it (--allow-anonymous)", config.api_host)
            return
        admin = auth.admin_token(data_dir)
        self.authenticator = auth.Authenticator(self.store, issuer, admin)
        zone = config.cluster_domain.strip(".")
        in_cluster = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{zone}", kubernetes_ip]
        names = auth_tls.server_names(config.api_host, [api_address, *in_cluster, socket.gethostname()])
        cert, key, pem = auth_tls.api_certificate(data_dir, names)
        self.api_tls = auth_tls.server_context(cert, key)
        self.root_ca = auth_tls.certificate_pem(pem)
        host = f"[{api_address}]" if ":" in api_address else api_address
        self.kubeconfig_path = auth.write_admin_kubeconfig(
            data_dir, f"https://{host}:{self.api_port}", admin, self.root_ca
        )
        self.faces["auth"] = "bearer token required over HTTPS (admin token and CA in the kubeconfig below)"
        if config.runs_pods and not config.require_auth and addresses.is_loopback(config.api_host):
            # why loopback is closed: a pod is a command run as the owner, and loopback is every local user's
            self.faces["auth"] += "; the kubelet runs pods' commands as you, so loopback needs tokens too (docs/security.md)"
        self.faces["kubeconfig"] = str(self.kubeconfig_path)

    async def _serve_faces(self) -> None:
        if self.dns_index is not None:
            server = await start_dns(self.dns_index.settings, self.dns_index, self.flows)
            self.flow_reader.dns_address = (self.dns_index.settings.host, server.port)
            self._closers.append(server.close)
            self.faces["DNS"] = f"{server.addresses[0].rsplit('/', 1)[0]} (udp+tcp, zone {self.dns_index.settings.zone})"
        if self.proxy is not None:
            await self.proxy.start()
            self._closers.append(self.proxy.close)
            if self.proxy.gateway_address:
                self.faces["gateway"] = f"http://{self.proxy.gateway_address}"
            if self.proxy.gateway_tls_address:
                self.faces["gateway-https"] = f"https://{self.proxy.gateway_tls_address}"

    def pod_stats(self) -> Any:
        """The one measure of the running containers' usage (psutil, loaded with the first look): what
        metrics.k8s.io answers (`kubectl top`) and what autoscalers scale by, from the same samples."""
        if self._pod_stats is None:
            from emulator.kubelet.stats import Stats

            self._pod_stats = Stats()
        return self._pod_stats

    async def stop(self) -> None:
        if self._api_listener is not None:
            self._api_listener.close()  # no new connections; the runner's cleanup ends the open ones
        if self._runner is not None:
            await self._runner.cleanup()
        if self.kubelet is not None:
            await self.kubelet.stop()  # first: whatever fails later, no container outlives the emulator
        for close in reversed(self._closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
        await self.store.drain()
        self.store.close()

    async def _give_memory_back(self, interval: float = 2.0) -> None:
        """After many watches went away at once (clients that left, or were cut off), hand the freed heap
        back to the system: CPython keeps it otherwise, and RSS would stay at the high-water mark."""
        trim = _malloc_trim()
        high = self.store.listener_count
        due = 0  # trims still to do
        while True:
            await asyncio.sleep(interval)
            now = self.store.listener_count
            # watches that came and went between two looks count too (the census keeps their peak)
            high = max(high, now, now - WatchCensus.open + WatchCensus.take_peak())
            if high - now >= 20:
                due = 2  # now, and at the next look: their connections are torn down a moment after the watches
                high = now
            if due:
                due -= 1
                gc.collect()
                if trim is not None:
                    trim(0)

    def process_status(self) -> dict[str, Any]:
        """How much the process holds right now: for people (and benchmarks) checking that load goes away."""
        import psutil

        process = psutil.Process()
        with process.oneshot():
            memory = process.memory_info()
            return {
                "kind": "ProcessStatus",
                "apiVersion": "emulator/v1",
                "pid": process.pid,
                "rssBytes": memory.rss,
                "openFiles": process.num_fds() if hasattr(process, "num_fds") else None,
                "threads": process.num_threads(),
                "tasks": len(asyncio.all_tasks()),
                "storeListeners": self.store.listener_count,
                "resourceVersion": self.store.rv,
            }

    def banner(self) -> str:
        """Where each face listens, then what to try first (after a blank line, so tools can stop reading)."""
        lines = [f"emulator ready in {self.started_in:.2f}s"]
        lines += [f"  {name:<8} {where}" for name, where in self.faces.items()]
        lines += ["", *self.first_steps()]
        return "\n".join(lines) + "\n"

    def first_steps(self) -> list[str]:
        config = self.config
        api = self.faces["API"]
        if self.kubeconfig_path is not None:
            kubectl = f"KUBECONFIG={self.kubeconfig_path} kubectl"
        elif api == "http://127.0.0.1:8080":
            kubectl = "kubectl"  # kubectl without any kubeconfig goes to localhost:8080
        else:
            kubectl = f"kubectl --server {api}"
        steps = [f"try: {kubectl} get services -A"]
        if "DNS" in self.faces:
            host = "127.0.0.1" if config.dns_host in ("0.0.0.0", "::") else config.dns_host
            port = self.faces["DNS"].split()[0].rsplit(":", 1)[1]
            steps.append(f"     dig @{host} -p {port} kubernetes.default.svc.{config.cluster_domain} +short")
        return steps
