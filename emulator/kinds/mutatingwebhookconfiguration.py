"""MutatingWebhookConfiguration (admissionregistration.k8s.io/v1, cluster-scoped). The webhooks the API
server would call to change objects as they are written: stored, never called. The model, defaults,
validation and columns are shared with the other admission configuration kinds (admission_common.py)."""

from __future__ import annotations

from emulator.kinds.admission_common import CATEGORIES, GROUP, WEBHOOK_PRINTER, WebhookConfigurationObject, WebhookRules
from emulator.kinds.base import Kind, ResourceType

MUTATING_WEBHOOK_CONFIGURATIONS = ResourceType(GROUP, "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False, "mutatingwebhookconfiguration", categories=CATEGORIES)


class MutatingWebhookConfiguration(WebhookConfigurationObject):
    """The model: the shared one, under this kind's name (decode errors name it)."""


class MutatingWebhookConfigurationStrategy(WebhookRules):
    model = MutatingWebhookConfiguration
    resource = MUTATING_WEBHOOK_CONFIGURATIONS
    mutating = True


KIND = Kind(MUTATING_WEBHOOK_CONFIGURATIONS, MutatingWebhookConfigurationStrategy, WEBHOOK_PRINTER)
