"""The environment a pod's container gets from the kubelet: service links and the container's own `env`.

Modelled on kubelet's `pkg/kubelet/envvars/envvars.go` (the variables of each service) and
`kubelet_pods.go` (which services, and how they merge with the container's `env`):

    {SVC}_SERVICE_HOST, {SVC}_SERVICE_PORT, {SVC}_SERVICE_PORT_{NAME} (named ports),
    {SVC}_PORT (first port), {SVC}_PORT_{port}_{PROTO} and its _PROTO, _PORT, _ADDR (every port)

with `{SVC}`/`{NAME}` upper-cased and `-` turned into `_`. Only services with a cluster IP count:
headless (`clusterIP: None`), ExternalName and not-yet-allocated services are skipped.

Decisions (the kubelet's behaviour leaves these open or random):
- Order: Go maps make the kubelet's order random; here it is deterministic — the `kubernetes` service
  first, then the namespace's services in the order given (callers pass them sorted, e.g. by name),
  each service's variables in envvars.go's order; in a container, its own `env` entries first (in
  declaration order), then the service variables it did not define, as the kubelet appends them.
- "Services that existed when the pod was created": `pod_service_env` keeps namespace services whose
  `metadata.creationTimestamp` is not later than the pod's (second resolution, so a service created in
  the same second counts). Objects without a timestamp are kept. Callers that know better may
  pre-filter the list; the check then changes nothing.
- `enableServiceLinks: false` leaves only the `kubernetes` service of namespace `default`, which is
  always present. A namespace's own service named `kubernetes` replaces it when links are enabled
  (as in the kubelet, whose map is keyed by service name).
- `$(VAR)` references in `env[].value` are expanded like the kubelet does (earlier container variables,
  then service variables; `$$` escapes; unknown references are left as written). `emulator run` expands
  its command and arguments with the same `expand`, from the environment it gives the process. `valueFrom` entries
  are resolved only through the optional `value_from` callback; without it they are left out. `envFrom`
  goes through the optional `env_from` callback: reading ConfigMaps and Secrets is emulator/podenv.py's part.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from emulator.timestamps import parse_rfc3339

if TYPE_CHECKING:
    # Only named in annotations: `emulator run` imports `expand` without loading the kinds (pydantic).
    from emulator.kinds.service import ServiceView

ValueFrom = Callable[[Mapping[str, Any]], "str | None"]
EnvFrom = Callable[[Mapping[str, Any]], Mapping[str, str]]


def env_name(name: str) -> str:
    """kubelet's makeEnvVariableName: `foo-bar` → `FOO_BAR`."""
    return name.replace("-", "_").upper()


def service_env(services: Iterable[ServiceView]) -> dict[str, str]:
    """The variables of each service with a cluster IP, in the order given (envvars.FromServices)."""
    env: dict[str, str] = {}
    for service in services:
        ip = service.cluster_ip
        if ip is None or not service.ports:
            # Validation requires ports for services with a cluster IP; kubelet would crash, we skip.
            continue
        prefix = env_name(service.name)
        ports = service.ports
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].port)
        for port in ports:
            if port.name:
                env[f"{prefix}_SERVICE_PORT_{env_name(port.name)}"] = str(port.port)
        # Docker-links compatible variables.
        host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort brackets IPv6
        for i, port in enumerate(ports):
            url = f"{port.protocol.lower()}://{host}:{port.port}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{port.port}_{port.protocol.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = port.protocol.lower()
            env[f"{port_prefix}_PORT"] = str(port.port)
            env[f"{port_prefix}_ADDR"] = ip
    return env


def pod_service_env(
    pod: Mapping[str, Any],
    services_in_namespace: Iterable[ServiceView],
    kubernetes_service: ServiceView | None,
) -> dict[str, str]:
    """The service variables the kubelet gives every container of `pod`.

    `services_in_namespace`: the services of the pod's namespace (others are ignored);
    `kubernetes_service`: the `kubernetes` service of namespace `default`, or None when it is missing.
    """
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    created = parse_rfc3339(meta.get("creationTimestamp"))

    # Keyed by service name like the kubelet's map, so a namespace's own `kubernetes` replaces the master one.
    chosen: dict[str, ServiceView] = {}
    if kubernetes_service is not None and kubernetes_service.cluster_ip is not None:
        chosen["kubernetes"] = kubernetes_service
    if links:
        for service in services_in_namespace:
            if (service.namespace or "default") != namespace or service.cluster_ip is None:
                continue
            born = parse_rfc3339(service.created)
            if created is not None and born is not None and born > created:
                continue
            chosen[service.name] = service
    return service_env(chosen.values())


def find_container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The pod's container of that name: an app, init or ephemeral container."""
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or []), *(spec.get("ephemeralContainers") or [])]:
        if container.get("name") == name:
            return container
    return None


def container_env(
    pod: Mapping[str, Any],
    container_name: str,
    services_in_namespace: Iterable[ServiceView],
    kubernetes_service: ServiceView | None,
    value_from: ValueFrom | None = None,
    env_from: EnvFrom | None = None,
) -> dict[str, str]:
    """The full environment of one container: its `envFrom` variables and its own `env` (later wins),
    then the service variables they did not define.

    `env_from(container)` gives the container's `envFrom` variables (emulator/podenv.py reads the
    ConfigMaps and Secrets); without it `envFrom` is ignored. Raises KeyError when the pod has no
    container (init or ephemeral container) of that name.
    """
    container = find_container(pod, container_name)
    if container is None:
        raise KeyError(f'container "{container_name}" not found in pod "{(pod.get("metadata") or {}).get("name", "")}"')

    services = pod_service_env(pod, services_in_namespace, kubernetes_service)
    # The kubelet processes envFrom first, so that `env` replaces what it defined.
    own: dict[str, str] = dict(env_from(container)) if env_from is not None else {}
    for entry in container.get("env") or []:
        name = entry.get("name")
        if not name:
            continue
        value = entry.get("value")
        if value:
            own[name] = expand(value, own, services)
        elif entry.get("valueFrom") is not None:
            resolved = value_from(entry["valueFrom"]) if value_from is not None else None
            if resolved is None:
                continue
            own[name] = resolved
        else:
            own[name] = ""
    env = dict(own)
    for name, value in services.items():
        env.setdefault(name, value)
    return env


# --- $(VAR) expansion ------------------------------------------------------------------------------


def expand(value: str, *contexts: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: first context that defines VAR wins; `$$` is a literal `$`;
    references to undefined variables and unterminated `$(` are kept as written."""
    if "$" not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = value.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = value[i + 2 : close]
            for context in contexts:
                if name in context:
                    out.append(context[name])
                    break
            else:
                out.append(f"$({name})")
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


# --- writing an environment out --------------------------------------------------------------------

_BARE_DOTENV = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")
_DOTENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def to_dotenv(env: Mapping[str, str]) -> str:
    """A `.env` file (docker compose, python-dotenv, systemd EnvironmentFile), one `NAME=value` a line.

    Plain values are written bare; others in single quotes (no escapes, no interpolation in those
    formats); values holding a `'`, a backslash or a line break in double quotes with `\\\\`, `\\"`, `\\n`, `\\r`, `\\t`
    escapes — there, `${...}` could be interpolated by some readers; service variables never need it.
    """
    lines = []
    for name, value in env.items():
        if not _DOTENV_NAME.fullmatch(name):
            # a name with spaces, `=` or line breaks would read back as something else (or inject a line)
            lines.append(f"# not a dotenv variable name, skipped: {name!r}\n")
            continue
        if _BARE_DOTENV.fullmatch(value):
            shown = value
        elif "'" not in value and "\n" not in value and "\r" not in value and "\\" not in value:
            shown = f"'{value}'"
        else:
            escaped = (
                value.replace("\\", "\\\\")
                .replace('"', '\\"')
                .replace("\n", "\\n")
                .replace("\r", "\\r")
                .replace("\t", "\\t")
            )
            shown = f'"{escaped}"'
        lines.append(f"{name}={shown}\n")
    return "".join(lines)


def to_shell_exports(env: Mapping[str, str]) -> str:
    """POSIX shell `export NAME=value` lines for `eval "$(...)"`. Values are quoted with shlex.quote;
    names that are no shell identifier (Kubernetes allows `my.var`) cannot be exported and become comments."""
    lines = []
    for name, value in env.items():
        if _SHELL_NAME.fullmatch(name):
            lines.append(f"export {name}={shlex.quote(value)}\n")
        else:
            lines.append(f"# not a shell variable name, skipped: {name!r}\n")
    return "".join(lines)


# -- the pod's own fields (what `valueFrom.fieldRef` reads) --------------------------------------------

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
# `metadata.labels['app']`, `metadata.annotations['x']`: the downward API's subscripted field paths.
_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['([^']*)'\]")


def default_container(pod: Mapping[str, Any]) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    named = annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    if named and any(c.get("name") == named for c in containers):
        return str(named)
    return str(containers[0]["name"]) if containers else None


def field_ref(pod: Mapping[str, Any], source: Mapping[str, Any]) -> str | None:
    """The value of a `valueFrom.fieldRef`, for the pod fields the downward API exposes; None otherwise."""
    ref = source.get("fieldRef")
    if not isinstance(ref, Mapping):
        return None
    path = ref.get("fieldPath") or ""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    subscript = _SUBSCRIPT.fullmatch(path)
    if subscript:
        # a missing key reads as empty, as in the kubelet
        return str((meta.get(subscript.group(1)) or {}).get(subscript.group(2)) or "")
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(a["ip"] for a in status.get("hostIPs") or [] if a.get("ip")),
        "status.podIPs": ",".join(a["ip"] for a in status.get("podIPs") or [] if a.get("ip")),
    }
    if path not in simple:
        return None
    value = simple[path]
    return "" if value is None else str(value)
