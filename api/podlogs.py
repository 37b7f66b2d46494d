"""`kubectl logs`: the pods/log subresource, with the API server's checks and the kubelet's answers.

    GET /api/v1/namespaces/{namespace}/pods/{name}/log
        ?container=&follow=&previous=&tailLines=&sinceSeconds=&sinceTime=&timestamps=&limitBytes=
        &insecureSkipTLSVerifyBackend=     (accepted and ignored: there is no kubelet connection to verify)

What the API server decides (pkg/registry/core/pod): the options' validation (422 `PodLogOptions "p" is
invalid: ...`), which container (400 `a container name must be specified for pod p, choose one of: [a b]`,
`container x is not valid for pod p`), and an empty answer for a pod not bound to a node. What the kubelet
decides (validateContainerLogStatus): which instance of the container — the running or last terminated
one, or with `previous` the one before — else 400 `container "x" in pod "p" is waiting to start: <reason>`,
`previous terminated container "x" in pod "p" not found`, `container "x" in pod "p" is terminated`.

The lines come from the files the local kubelet writes (emulator/kubelet/logs.py): one file per container
instance, numbered by restart count, under the pod's directory. A pod the kubelet does not run (the kubelet
is off, the pod is a record, or `emulator run` registered it and its output went to that terminal) has no
files: its running container answers with no lines, as a kubelet answers for a container that wrote none,
and a Warning header (kubectl prints it) says why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from api.http import flag, warning_value
from emulator import errors
from emulator.errors import FieldError
from emulator.kinds import PODS
from emulator.kinds.pod import not_run_because
from emulator.kubelet.images import REGISTERED_BY_RUN
from emulator.kubelet.logs import LogOptions, log_path, read_log
from emulator.registry.registry import Registry
from emulator.timestamps import parse_rfc3339

PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"
NEGATIVE = "must be greater than or equal to 0"
NOT_POSITIVE = "must be greater than 0"


class LogSource(Protocol):
    """What this handler needs of the kubelet (emulator/kubelet/kubelet.py's `Kubelet` is one)."""

    def pod_dir_for(self, uid: str) -> Path: ...
    def restart_count(self, namespace: str, pod: str, container: str) -> int: ...
    def running_pids(self) -> dict[tuple[str, str, str], int]: ...


def routes(registry: Registry, kubelet: Callable[[], LogSource | None]) -> list[web.RouteDef]:
    """The routes to hand to `create_app(..., routes=...)`. `kubelet()` is the running kubelet, None when
    pods are records only (asked per request: the runtime starts it after building the application).
    Other methods on the path fall through to the generic handler (405: pods/log is get-only)."""
    return [web.get(PATH, PodLogs(registry, kubelet).get)]


def log_options(name: str, query: Any, now_ns: int) -> LogOptions:
    """PodLogOptions from the query, validated as ValidatePodLogOptions does."""
    tail = _int(query, "tailLines")
    limit = _int(query, "limitBytes")
    since_seconds = _int(query, "sinceSeconds")
    since_time = query.get("sinceTime") or None
    problems: list[FieldError] = []
    if tail is not None and tail < 0:
        problems.append(errors.invalid("tailLines", tail, NEGATIVE))
    if limit is not None and limit < 1:
        problems.append(errors.invalid("limitBytes", limit, NOT_POSITIVE))
    if since_seconds is not None and since_time is not None:
        problems.append(errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif since_seconds is not None and since_seconds < 1:
        problems.append(errors.invalid("sinceSeconds", since_seconds, NOT_POSITIVE))
    if problems:
        raise errors.invalid_object("PodLogOptions", "", name, problems)
    since_ns: int | None = None
    if since_seconds is not None:
        since_ns = now_ns - since_seconds * 1_000_000_000
    elif since_time is not None:
        parsed = parse_rfc3339(since_time)
        if parsed is None:
            raise errors.bad_request(f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": cannot parse')
        since_ns = int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000
    return LogOptions(tail=tail, since_ns=since_ns, timestamps=_bool(query, "timestamps"), limit_bytes=limit,
                      follow=_bool(query, "follow"))


def _int(query: Any, name: str) -> int | None:
    raw = query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{raw}" is not a number') from None


def _bool(query: Any, name: str) -> bool:
    return str(query.get(name, "")).strip() in ("1", "t", "T", "true", "TRUE", "True")


def container_names(spec: dict[str, Any]) -> list[str]:
    """Every container, in VisitContainers' order: init containers, containers, ephemeral containers."""
    return [c.get("name", "") for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def chosen_container(pod: dict[str, Any], wanted: str | None) -> str:
    """The API server's validateContainer: the one container, or the one asked for."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    if not wanted:
        containers = spec.get("containers") or []
        if len(containers) == 1:
            return str(containers[0].get("name", ""))
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(container_names(spec))}]"
        )
    if wanted not in container_names(spec):
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    """The container's status; a record pod without any (the emulator's pods are Running at creation)
    has its containers running in its phase, waiting to be created before."""
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return dict(entry)
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return {"name": container, "state": {"running": {}}}
    return {"name": container, "state": {"waiting": {"reason": "ContainerCreating"}}}


def instance_files(directory: Path) -> list[int]:
    """The container instances with a log (`<restartCount>.log`), oldest first."""
    try:
        names = [p.name for p in directory.iterdir()]
    except FileNotFoundError:
        return []
    return sorted(int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isdigit())


def chosen_instance(pod_name: str, container: str, status: dict[str, Any], previous: bool,
                    instances: list[int]) -> int | None:
    """Which instance's log to read (None: there is none to read, answer no lines), or the kubelet's
    error (validateContainerLogStatus). The newest file is the running or last terminated instance."""
    state, last = status.get("state") or {}, status.get("lastState") or {}
    latest = instances[-1] if instances else None
    before = instances[-2] if len(instances) > 1 else None
    if previous:
        if not last.get("terminated"):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{pod_name}" not found')
        # during a back-off the last terminated instance is the newest; beside a live one, the one before
        return before if "running" in state or "terminated" in state else latest
    if "running" in state or "terminated" in state or last.get("terminated"):
        return latest
    waiting = state.get("waiting")
    if waiting is not None:
        reason = waiting.get("reason") or ""
        if reason == "ErrImagePull":
            detail = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            detail = "trying and failing to pull image"
        else:
            detail = reason
        raise errors.bad_request(f'container "{container}" in pod "{pod_name}" is waiting to start: {detail}')
    raise errors.bad_request(f'container "{container}" in pod "{pod_name}" is waiting to start - no logs yet')


class PodLogs:
    def __init__(self, registry: Registry, kubelet: Callable[[], LogSource | None]) -> None:
        self.registry = registry
        self._kubelet = kubelet

    @property
    def kubelet(self) -> LogSource | None:
        return self._kubelet()

    def _log_dir(self, pod: dict[str, Any], container: str) -> Path | None:
        """By the pod's uid: the logs outlive the pod's worker (a finished Job's pod, a restarted emulator)."""
        kubelet = self.kubelet
        return None if kubelet is None else log_path(kubelet.pod_dir_for(pod["metadata"]["uid"]), container, 0).parent

    def _running_instance(self, namespace: str, pod: str, container: str, newest: int | None) -> int | None:
        """The instance the kubelet runs now (its log may not exist yet: a follower waits for it)."""
        if self.kubelet is None:
            return newest
        try:
            return self.kubelet.restart_count(namespace, pod, container)
        except (errors.StatusError, LookupError):
            return newest

    def _is_running(self, namespace: str, pod: str, container: str, instance: int) -> Callable[[], bool]:
        kubelet = self.kubelet
        if kubelet is None:
            return lambda: False

        def running() -> bool:
            if (namespace, pod, container) not in kubelet.running_pids():
                return False
            try:
                return kubelet.restart_count(namespace, pod, container) == instance
            except (errors.StatusError, LookupError):
                return False

        return running

    async def get(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        options = log_options(name, request.query, time.time_ns())
        pod = self.registry.get(PODS, namespace, name)
        container = chosen_container(pod, request.query.get("container"))
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache"})
        if not (pod.get("spec") or {}).get("nodeName"):
            return await _empty(request, response)  # not bound to a node: nothing to ask a kubelet for
        directory = self._log_dir(pod, container)
        instances = instance_files(directory) if directory is not None else []
        status = container_status(pod, container)
        previous = flag(request, "previous")
        instance = chosen_instance(name, container, status, previous, instances)
        if directory is not None and not previous and "running" in (status.get("state") or {}):
            instance = self._running_instance(namespace, name, container, instance)
        if directory is None or instance is None:
            why = _why_no_lines(pod, kubelet_on=directory is not None)  # beside the empty answer
            if why:
                response.headers.add("Warning", warning_value(why))
            return await _empty(request, response)
        is_running = self._is_running(namespace, name, container, instance)
        transport = request.transport

        def wanted() -> bool:  # a follower stops when the instance ends or its client goes away
            return transport is not None and not transport.is_closing() and is_running()

        response.enable_chunked_encoding()
        await response.prepare(request)
        path = directory / f"{instance}.log"
        with contextlib.suppress(ConnectionError):
            async with contextlib.aclosing(read_log(path, options, wanted)) as chunks:  # its file closes at once
                async for chunk in chunks:
                    await response.write(chunk)
            await response.write_eof()
        return response


def _why_no_lines(pod: dict[str, Any], kubelet_on: bool) -> str | None:
    """Why a pod's container has no log lines to give, when nothing runs it (None: it runs, or waits to)."""
    if REGISTERED_BY_RUN in ((pod.get("metadata") or {}).get("annotations") or {}):
        return "this pod was registered by `emulator run`: its output goes to the terminal that runs it"
    if not kubelet_on:
        return ("the emulator was started without --kubelet, so this pod's containers do not run and write no logs "
                "(start it with `emulator serve --kubelet` to run pods: docs/pods.md)")
    why = not_run_because(pod)
    if why is None:
        return None
    said = "the emulator's kubelet does not run this pod, so its containers write no logs"
    return f"{said}: {why}" if why else said


async def _empty(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    response.content_length = 0
    await response.prepare(request)
    await response.write_eof()
    return response
