"""Namespace lifecycle: the built-in namespaces and the `kubernetes` service exist from the start, every
namespace has a `default` service account, and deleting a namespace deletes what is in it.

When the API speaks HTTPS (`Cluster.root_ca`), every namespace also has the `kube-root-ca.crt` ConfigMap
with the API's CA in `ca.crt`, as kube-controller-manager's root-CA publisher keeps it: made again when
deleted, its data put back when changed or when the CA changes (at start). Pods' `kube-api-access-*`
volumes read it (kinds/serviceaccount.py).

Deletion takes two steps, as in a cluster: the namespace turns `Terminating` at once (no new content
may be created in it), and shortly after its contents are deleted and then the namespace itself. The
short delay is what lets `kubectl delete -f` of a file holding a namespace and its objects delete
each of them without NotFound errors, as it does against a real cluster.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from emulator import errors
from emulator.controllers import builtins
from emulator.kinds import CONFIG_MAPS, ENDPOINTS, NAMESPACES, RESOURCE_TYPES, SERVICE_ACCOUNTS, SERVICES
from emulator.kinds.serviceaccount import ROOT_CA_CONFIG_MAP, ROOT_CA_KEY
from emulator.registry.registry import Registry, marked_for_deletion
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_SERVICE_ACCOUNT = "default"
TERMINATION_DELAY = 0.5  # seconds between a namespace turning Terminating and its contents going
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
ROOT_CA_DESCRIPTION = (  # the publisher's own words
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)


class NamespaceController:
    def __init__(self, registry: Registry, termination_delay: float = TERMINATION_DELAY) -> None:
        self.registry = registry
        self.store = registry.store
        self.termination_delay = termination_delay
        self._terminating: dict[str, asyncio.TimerHandle] = {}

    def bootstrap(self, api_address: str, api_port: int) -> None:
        """Create what a fresh cluster has; a no-op for objects that already exist."""
        for name in BUILTIN_NAMESPACES:
            if self.store.get_raw(NAMESPACES.key, "", name) is None:
                self.registry.create(NAMESPACES, "", {"metadata": {"name": name}})
            self._ensure_service_account(name)
        if self.registry.cluster.root_ca is not None:  # every namespace, also those a previous run stored
            for ns in self.store.objects(NAMESPACES.key):
                if not marked_for_deletion(ns):
                    try:
                        self._ensure_root_ca(ns["metadata"]["name"])
                    except errors.StatusError as exc:  # say an immutable one a user made: never a refused start
                        log.warning("kube-root-ca.crt of namespace %s not updated: %s", ns["metadata"]["name"], exc.message)
        self._ensure_kubernetes_service(api_address, api_port)
        builtins.ensure_node(self.registry)
        builtins.ensure_node_lease(self.registry)
        builtins.ensure_ingress_class(self.registry)
        builtins.ensure_gateway_class(self.registry)
        builtins.ensure_storage_class(self.registry)
        builtins.ensure_priority_classes(self.registry)
        # a namespace whose termination a previous run did not finish
        for ns in self.store.objects(NAMESPACES.key):
            if marked_for_deletion(ns):
                self._schedule_termination(ns["metadata"]["name"], ns["metadata"].get("uid", ""))

    def apply(self, event: Event) -> None:
        if event.resource == NAMESPACES.key:
            if event.type == DELETED:
                self._cancel_termination(event.name)
            elif marked_for_deletion(event.obj):
                self._schedule_termination(event.name, event.obj["metadata"].get("uid", ""))
            else:
                self._ensure_service_account(event.name)
                if self.registry.cluster.root_ca is not None:
                    self._ensure_root_ca(event.name)
        elif event.resource == SERVICE_ACCOUNTS.key and event.type == DELETED and event.name == DEFAULT_SERVICE_ACCOUNT:
            # like the service-account controller: `default` comes back while its namespace lives
            if self._lives(event.namespace):
                self._ensure_service_account(event.namespace)
        elif event.resource == CONFIG_MAPS.key and event.name == ROOT_CA_CONFIG_MAP and self.registry.cluster.root_ca is not None:
            if self._lives(event.namespace):
                self._ensure_root_ca(event.namespace)

    def _lives(self, namespace: str) -> bool:
        found = self.store.get(NAMESPACES.key, "", namespace)
        return found is not None and not marked_for_deletion(found)

    def _ensure_service_account(self, namespace: str) -> None:
        if self.store.get_raw(SERVICE_ACCOUNTS.key, namespace, DEFAULT_SERVICE_ACCOUNT) is None:
            self.registry.ensure(SERVICE_ACCOUNTS, {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}})

    def _ensure_root_ca(self, namespace: str) -> None:
        """kube-root-ca.crt as the publisher keeps it: its data the CA alone, its description annotation
        present; other labels and annotations someone added stay."""
        data = {ROOT_CA_KEY: self.registry.cluster.root_ca}
        current = self.store.get(CONFIG_MAPS.key, namespace, ROOT_CA_CONFIG_MAP)
        if current is None:
            self.registry.create(CONFIG_MAPS, namespace, {
                "metadata": {"name": ROOT_CA_CONFIG_MAP, "annotations": {DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}}, "data": data,
            })
            return
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
            return
        wanted = copy.deepcopy(current)
        wanted["data"] = data
        wanted["metadata"]["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}
        self.registry.update(CONFIG_MAPS, namespace, ROOT_CA_CONFIG_MAP, wanted)

    def _schedule_termination(self, namespace: str, uid: str) -> None:
        if namespace in self._terminating:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (direct use of the controller): finish now
            self._finish_termination(namespace, uid)
            return
        self._terminating[namespace] = loop.call_later(self.termination_delay, self._finish_termination, namespace, uid)

    def _cancel_termination(self, namespace: str) -> None:
        timer = self._terminating.pop(namespace, None)
        if timer is not None:
            timer.cancel()

    def _finish_termination(self, namespace: str, uid: str) -> None:
        """Delete what is in the namespace, then the namespace (the API server's order: nothing is left
        for a namespace of the same name created right after)."""
        self._terminating.pop(namespace, None)
        current = self.store.get(NAMESPACES.key, "", namespace)
        if current is None or current["metadata"].get("uid") != uid:
            return  # already gone, or a new namespace of the same name
        try:
            self._delete_contents(namespace)
            self.registry.finalize(NAMESPACES, "", namespace)
        except Exception:
            log.exception("could not finish deleting namespace %s", namespace)

    def _delete_contents(self, namespace: str) -> None:
        # services before pods so endpoints are not recomputed pod by pod for a dying namespace
        order = sorted((rt for rt in RESOURCE_TYPES if rt.namespaced), key=lambda rt: rt is not SERVICES)
        for rt in order:
            # finalize: a namespace going away takes objects with finalizers too
            for name in [name for _, name, _, _ in self.store.entries(rt.key, namespace)]:
                self.registry.finalize(rt, namespace, name)

    def _ensure_kubernetes_service(self, api_address: str, api_port: int) -> None:
        """`default/kubernetes` takes the first service IP and points at the API itself."""
        if self.store.get_raw(SERVICES.key, "default", "kubernetes") is None:
            first = self.registry.cluster.plan.service_ips.first_address
            self.registry.create(SERVICES, "default", {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]},
            })
        self.registry.ensure(ENDPOINTS, {
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": api_address}], "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}],
        })
