"""What the admission configuration kinds (admissionregistration.k8s.io/v1, cluster-scoped) share: their
models, the API server's defaults and validation of webhooks, and their `kubectl get` columns. Each kind
has its module (mutatingwebhookconfiguration.py, validatingwebhookconfiguration.py,
validatingadmissionpolicy.py, validatingadmissionpolicybinding.py).

They are stored and validated (their contents against 1.32's schema, as the decoder checks them, and the
names and references a manifest gets wrong), never acted on: the emulator calls no webhook and
evaluates no policy's CEL. Charts that install them (ingress-nginx, cert-manager, operators) apply as on
a cluster; what they would admit or refuse there is not checked here (docs/concepts.md says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator import errors
from emulator.errors import FieldError
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

GROUP = "admissionregistration.k8s.io"
CATEGORIES = ("api-extensions",)


class WebhookConfigurationObject(TypedObject):
    webhooks: Any = None  # checked against 1.32's schema (emulator/schemas.py): every field of every webhook


class PolicyObject(TypedObject):
    spec: Any = None
    status: Any = None


class BindingObject(TypedObject):
    spec: Any = None


def _webhook_problems(obj: dict[str, Any], mutating: bool) -> list[FieldError]:
    """ValidateValidatingWebhookConfiguration / ...Mutating... (in part): unique webhook names, a client
    config that is a URL or a service, side effects, and the admission review versions the API server
    speaks."""
    problems: list[FieldError] = []
    seen: set[str] = set()
    for i, hook in enumerate(obj.get("webhooks") or []):
        if not isinstance(hook, dict):
            continue
        at = f"webhooks[{i}]"
        name = hook.get("name") or ""
        if not name:
            problems.append(errors.required(f"{at}.name"))
        elif name in seen:
            problems.append(errors.duplicate(f"{at}.name", name))
        seen.add(name)
        config = hook.get("clientConfig") or {}
        if bool(config.get("url")) == bool(config.get("service")):
            problems.append(FieldError(f"{at}.clientConfig", "FieldValueRequired", "Required value: exactly one of url or service is required"))
        versions = hook.get("admissionReviewVersions")
        if not versions:
            problems.append(FieldError(f"{at}.admissionReviewVersions", "FieldValueRequired",
                                       "Required value: must specify one of v1, v1beta1"))
        elif not any(v in ("v1", "v1beta1") for v in versions):
            problems.append(errors.invalid_strings(f"{at}.admissionReviewVersions", versions, "must include at least one of v1, v1beta1"))
        if hook.get("sideEffects") is None:
            problems.append(FieldError(f"{at}.sideEffects", "FieldValueRequired", 'Required value: must specify one of "None", "NoneOnDryRun"'))
        elif hook["sideEffects"] not in ("None", "NoneOnDryRun"):
            problems.append(errors.not_supported(f"{at}.sideEffects", hook["sideEffects"], ["None", "NoneOnDryRun"]))
        policy = hook.get("reinvocationPolicy")
        if mutating and policy is not None and policy not in ("Never", "IfNeeded"):
            problems.append(errors.not_supported(f"{at}.reinvocationPolicy", policy, ["IfNeeded", "Never"]))
    return problems


def _default_webhooks(obj: dict[str, Any], mutating: bool) -> None:
    """SetDefaults_*Webhook: failurePolicy Fail, matchPolicy Equivalent, timeoutSeconds 10, empty selectors,
    a service's port 443 (and reinvocationPolicy Never for a mutating one)."""
    for hook in obj.get("webhooks") or []:
        if not isinstance(hook, dict):
            continue
        hook.setdefault("failurePolicy", "Fail")
        hook.setdefault("matchPolicy", "Equivalent")
        hook.setdefault("timeoutSeconds", 10)
        hook.setdefault("namespaceSelector", {})
        hook.setdefault("objectSelector", {})
        service = (hook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            service.setdefault("port", 443)
        for rule in hook.get("rules") or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")
        if mutating:
            hook.setdefault("reinvocationPolicy", "Never")


class WebhookRules(Strategy):
    """A webhook configuration's defaults and validation (its kind module names the resource)."""

    mutating = False

    def prepare_create(self, obj: dict[str, Any]) -> None:
        _default_webhooks(obj, self.mutating)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        _default_webhooks(new, self.mutating)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        return _webhook_problems(obj, self.mutating)


class PolicyRules(Strategy):
    """ValidatingAdmissionPolicy's defaults and validation (its kind module names the resource)."""

    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
        obj["metadata"]["generation"] = 1

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        spec = new.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
        previous = int(old["metadata"].get("generation") or 1)
        new["metadata"]["generation"] = previous + 1 if new.get("spec") != old.get("spec") else previous

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        if not spec.get("validations") and not spec.get("auditAnnotations"):
            return [FieldError("spec.validations", "FieldValueRequired", "Required value: validations or auditAnnotations must contain at least one item")]
        return []


class BindingRules(Strategy):
    """ValidatingAdmissionPolicyBinding's validation (its kind module names the resource)."""


    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems: list[FieldError] = []
        if not spec.get("policyName"):
            problems.append(errors.required("spec.policyName"))
        if not spec.get("validationActions"):
            problems.append(FieldError("spec.validationActions", "FieldValueRequired", "Required value: at least one validation action is required"))
        for i, action in enumerate(spec.get("validationActions") or []):
            if action not in ("Deny", "Warn", "Audit"):
                problems.append(errors.not_supported(f"spec.validationActions[{i}]", action, ["Audit", "Deny", "Warn"]))
        return problems


def _webhook_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    return [name, len(obj.get("webhooks") or []), created]


def _policy_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    spec = spec_of(obj)
    param = spec.get("paramKind") or {}
    shown = f"{param.get('apiVersion')}/{param.get('kind')}" if param else "<unset>"
    return [name, len(spec.get("validations") or []), shown, created]


def _binding_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    spec = spec_of(obj)
    ref = spec.get("paramRef") or {}
    shown = "/".join(p for p in (ref.get("namespace"), ref.get("name")) if p) if ref else "<unset>"
    return [name, spec.get("policyName") or "", shown or "*", created]


WEBHOOKS = Column("Webhooks", "Webhooks is a list of webhooks and the affected resources and operations.", type="integer")
WEBHOOK_PRINTER = Printer((NAME, WEBHOOKS, AGE), _webhook_cells)
POLICY_PRINTER = Printer((NAME, Column("Validations", "Validations contain CEL expressions which is used to apply the validation.", type="integer"),
                          Column("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"), AGE), _policy_cells)
BINDING_PRINTER = Printer((NAME, Column("PolicyName", "PolicyName references a ValidatingAdmissionPolicy name which the ValidatingAdmissionPolicyBinding binds to."),
                           Column("ParamRef", "paramRef specifies the parameter resource used to configure the admission control policy."), AGE), _binding_cells)
