"""A pod's /etc/hosts and /etc/resolv.conf: the cluster's names for processes that cannot use the cluster DNS.

The emulator's DNS server listens on a port other than 53, and resolv.conf cannot name a port, so a
process's resolver cannot be pointed at it. Instead each sandboxed process gets a private hosts file that
lists what the cluster DNS would answer (emulator/kubelet/launch.py bind-mounts it over /etc/hosts):

- every Service as `name.ns.svc.<zone>` — its cluster IP, or for a headless service each ready endpoint's
  address, plus `hostname.name.ns.svc.<zone>` for endpoints with a hostname (StatefulSet pods);
- the forms a pod's search path (`ns.svc.<zone> svc.<zone> <zone>`) would complete: `name.ns.svc` and
  `name.ns` everywhere, and the bare `name` for services of the pod's own namespace (a hosts file has no
  search list, so the completed names are written out);
- the pod's own hostname (and `hostname.subdomain.ns.svc.<zone>`), localhost and `spec.hostAliases`, as the
  kubelet's managed hosts file has them.

What each service and endpoint means (headless or not, which endpoints are ready, slices before
Endpoints) is read from a `DnsIndex` (emulator/dns/index.py) fed by the same store events: the names agree
with the DNS server's answers. ExternalName services cannot be written in a hosts file (no CNAME) and
are left out. `ClusterHosts` keeps every tracked pod's file current as services and endpoints change; the
file is rewritten in place, since a bind mount pins its inode (a rename would not be seen).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.store.events import DELETED

if TYPE_CHECKING:  # the file rendering is also used by `emulator run`, which imports no engine code
    from emulator.dns.index import DnsIndex
    from emulator.dns.records import EndpointRecord, ServiceRecord
    from emulator.store.events import Event

log = logging.getLogger("emulator.kubelet")

HOSTS_FILE = "etc-hosts"  # in the pod directory, named as the kubelet names it
RESOLV_CONF_FILE = "resolv.conf"
HOSTNAME_FILE = "etc-hostname"
HOST_RESOLV_CONF = "/etc/resolv.conf"
NDOTS = 5  # the kubelet's `options ndots:5` for ClusterFirst pods
MAX_HOSTNAME = 63  # a pod name longer than a DNS label is cut, as the kubelet does
REWRITE_DELAY = 0.05  # seconds: a burst of endpoint changes becomes one rewrite per file
# The kubelet's managed hosts file, before the pod's own line.
_HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


@dataclass(frozen=True)
class PodIdentity:
    """What a pod's hosts file says about the pod itself."""

    namespace: str
    ip: str
    hostname: str
    subdomain: str = ""
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # spec.hostAliases: (ip, hostnames)

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> PodIdentity:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        aliases = tuple(
            (str(a.get("ip") or ""), tuple(str(h) for h in a.get("hostnames") or ()))
            for a in spec.get("hostAliases") or ()
            if a.get("ip")
        )
        return cls(
            namespace=str(meta.get("namespace") or "default").lower(),
            ip=str(status.get("podIP") or ""),
            hostname=pod_hostname(pod),
            subdomain=str(spec.get("subdomain") or "").lower(),
            aliases=aliases,
        )


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """spec.hostname, else the pod's name cut to a DNS label (the kubelet's GeneratePodHostNameAndDomain)."""
    spec = pod.get("spec") or {}
    name = str(spec.get("hostname") or (pod.get("metadata") or {}).get("name") or "")
    return name[:MAX_HOSTNAME].rstrip("-.").lower()


def service_lines(
    services: Iterable[ServiceRecord],
    endpoints: Callable[[str, str], Sequence[EndpointRecord]],
    zone: str,
    namespace: str,
) -> list[str]:
    """`ip<TAB>names...` for every service, as seen from a pod of `namespace`."""
    lines = []
    for service in services:
        names = _names(service.name, service.namespace, zone, service.namespace == namespace)
        if service.kind == "cluster":
            lines += [f"{ip}\t{names}" for ip in service.cluster_ips]
        elif service.kind == "headless":
            for ep in endpoints(service.namespace, service.name):
                lines.append(f"{ep.ip}\t{names}")
                if ep.label != _dashed(ep.ip):  # a hostname (StatefulSet pods): its own name too
                    lines.append(f"{ep.ip}\t{_names(f'{ep.label}.{service.name}', service.namespace, zone, service.namespace == namespace)}")
    return lines


def _names(name: str, namespace: str, zone: str, own_namespace: bool) -> str:
    names = [f"{name}.{namespace}.svc.{zone}", f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    if own_namespace:
        names.append(name)
    return " ".join(names)


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def render_hosts(pod: PodIdentity, service_part: Sequence[str], zone: str) -> str:
    """The whole hosts file: the kubelet's header and the pod's own line, then the cluster's services."""
    out = [_HEADER]
    if pod.ip:
        own = [pod.hostname]
        if pod.subdomain:
            own.insert(0, f"{pod.hostname}.{pod.subdomain}.{pod.namespace}.svc.{zone}")
        out.append(f"{pod.ip}\t{' '.join(own)}\n")
    for ip, hostnames in pod.aliases:
        out.append(f"\n# Entries added by HostAliases.\n{ip}\t{chr(9).join(hostnames)}\n")
    if service_part:
        out.append("\n# Cluster services (what the cluster DNS would answer).\n")
        out.append("\n".join(service_part) + "\n")
    return "".join(out)


def uses_cluster_dns(pod: Mapping[str, Any]) -> bool:
    """dnsPolicy ClusterFirst (the default; Default on the host network) or ClusterFirstWithHostNet: the
    pod resolves the cluster's names. Default and None pods do not, and their hosts file has no services."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    return policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.get("hostNetwork"))


def _parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return nameservers, search, options


def render_resolv_conf(namespace: str, zone: str, host_resolv_conf: str, pod: Mapping[str, Any] | None = None) -> str:
    """The pod's resolv.conf as the kubelet makes it for its dnsPolicy, with the host's nameservers in
    place of the cluster DNS (whose port resolv.conf cannot name): names outside the cluster resolve as on
    the host; the cluster's own names are in the hosts file. ClusterFirst: the cluster's search path, then
    the host's, `ndots:5`; Default: the host's file; None: `spec.dnsConfig` alone; dnsConfig's
    nameservers, searches and options are added in every case."""
    spec = (pod or {}).get("spec") or {}
    config = spec.get("dnsConfig") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    nameservers, search, options = _parse_resolv_conf(host_resolv_conf)
    if policy == "None":
        nameservers, search, options = [], [], []
    elif pod is None or uses_cluster_dns(pod):
        search = [f"{namespace}.svc.{zone}", f"svc.{zone}", zone, *search]
        options = [f"ndots:{NDOTS}", *(o for o in options if not o.startswith("ndots:"))]
    nameservers += [str(n) for n in config.get("nameservers") or ()]
    search += [str(s) for s in config.get("searches") or ()]
    for option in config.get("options") or ():
        name, value = str(option.get("name") or ""), option.get("value")
        options = [o for o in options if o.split(":", 1)[0] != name] + [f"{name}:{value}" if value is not None else name]
    lines = [f"nameserver {ns}" for ns in dict.fromkeys(nameservers)]
    if search:
        lines.append("search " + " ".join(dict.fromkeys(search)))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> bool:
    """Replace a file's content without replacing the file (a bind mount of it pins the inode): the new
    bytes are written over the old, then the file is cut to length. False when it already said `text`."""
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return True


class ClusterHosts:
    """The cluster's names as hosts-file lines, and the tracked pods' files kept current.

    `apply` is a store listener (subscribe it and replay services, endpoints, slices and namespaces).
    `index`: the DNS server's index of the same zone, already fed by the same events (subscribed before
    this), read instead of a second one kept beside it; without it (no DNS server) this keeps its own.
    """

    def __init__(self, zone: str = "cluster.local", host_resolv_conf: str | None = None, index: DnsIndex | None = None) -> None:
        from emulator.kinds.endpointslice import ENDPOINT_SLICES

        self.zone = zone.strip(".").lower()
        self._own_index = index is None
        if index is None:
            from emulator.dns.index import DnsIndex
            from emulator.dns.settings import DnsSettings

            index = DnsIndex(DnsSettings(zone=self.zone))
        self.index = index
        self._watched = frozenset({"services", "endpoints", ENDPOINT_SLICES.key, "namespaces"})
        self._services: dict[str, set[str]] = {}  # namespace → service names
        self._tracked: dict[str, tuple[PodIdentity, bool, Path]] = {}  # pod uid → (pod, cluster DNS?, its hosts file)
        self._lines: dict[str, list[str]] | None = None  # per namespace, until the next change
        self._pending: asyncio.TimerHandle | None = None
        self._host_resolv = host_resolv_conf

    # -- store events ------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource not in self._watched:
            return
        if self._own_index:
            self.index.apply(event)
        if event.resource == "services":
            names = self._services.setdefault(event.namespace.lower(), set())
            if event.type == DELETED:
                names.discard(event.name.lower())
            else:
                names.add(event.name.lower())
        self._lines = None
        if self._tracked and self._pending is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a replay at start, tests): written on the next flush
                return
            self._pending = loop.call_later(REWRITE_DELAY, self.flush)

    # -- what a pod sees ---------------------------------------------------------------------------

    def service_lines(self, namespace: str) -> list[str]:
        if self._lines is None:
            self._lines = {}
        lines = self._lines.get(namespace)
        if lines is None:
            records = [
                record
                for ns in sorted(self._services)
                for name in sorted(self._services[ns])
                if (record := self.index.service(ns, name)) is not None
            ]
            lines = self._lines[namespace] = service_lines(records, self.index.ready_endpoints, self.zone, namespace)
        return lines

    def hosts_for(self, pod: Mapping[str, Any]) -> str:
        identity = PodIdentity.of(pod)
        return render_hosts(identity, self._lines_for(identity, uses_cluster_dns(pod)), self.zone)

    def _lines_for(self, pod: PodIdentity, cluster_dns: bool) -> list[str]:
        return self.service_lines(pod.namespace) if cluster_dns else []

    def resolv_conf_for(self, pod: Mapping[str, Any]) -> str:
        if self._host_resolv is None:
            try:
                self._host_resolv = Path(HOST_RESOLV_CONF).read_text()
            except OSError:
                self._host_resolv = ""
        return render_resolv_conf(PodIdentity.of(pod).namespace, self.zone, self._host_resolv, pod)

    # -- the files ---------------------------------------------------------------------------------

    def write(self, pod: Mapping[str, Any], pod_dir: Path, track: bool = True) -> tuple[Path, Path]:
        """Write the pod's hosts file and resolv.conf into its directory; with `track`, keep the hosts
        file current until `untrack`."""
        pod_dir.mkdir(parents=True, exist_ok=True)
        hosts, resolv = pod_dir / HOSTS_FILE, pod_dir / RESOLV_CONF_FILE
        write_in_place(hosts, self.hosts_for(pod))
        write_in_place(resolv, self.resolv_conf_for(pod))
        write_in_place(pod_dir / HOSTNAME_FILE, pod_hostname(pod) + "\n")
        uid = str((pod.get("metadata") or {}).get("uid") or pod_dir)
        if track:
            self._tracked[uid] = (PodIdentity.of(pod), uses_cluster_dns(pod), hosts)
        return hosts, resolv

    def untrack(self, uid: str) -> None:
        self._tracked.pop(uid, None)

    def flush(self) -> None:
        """Rewrite the tracked hosts files whose content changed."""
        self._pending = None
        for uid, (pod, cluster_dns, path) in list(self._tracked.items()):
            try:
                write_in_place(path, render_hosts(pod, self._lines_for(pod, cluster_dns), self.zone))
            except FileNotFoundError:
                self._tracked.pop(uid, None)  # the pod's directory is gone
            except OSError as exc:
                log.warning("could not rewrite %s: %s", path, exc)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
