"""ValidatingWebhookConfiguration (admissionregistration.k8s.io/v1, cluster-scoped). The webhooks the API
server would call to accept or refuse writes: stored, never called. The model, defaults, validation and
columns are shared with the other admission configuration kinds (admission_common.py)."""

from __future__ import annotations

from emulator.kinds.admission_common import CATEGORIES, GROUP, WEBHOOK_PRINTER, WebhookConfigurationObject, WebhookRules
from emulator.kinds.base import Kind, ResourceType

VALIDATING_WEBHOOK_CONFIGURATIONS = ResourceType(GROUP, "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False, "validatingwebhookconfiguration", categories=CATEGORIES)


class ValidatingWebhookConfiguration(WebhookConfigurationObject):
    """The model: the shared one, under this kind's name (decode errors name it)."""


class ValidatingWebhookConfigurationStrategy(WebhookRules):
    model = ValidatingWebhookConfiguration
    resource = VALIDATING_WEBHOOK_CONFIGURATIONS


KIND = Kind(VALIDATING_WEBHOOK_CONFIGURATIONS, ValidatingWebhookConfigurationStrategy, WEBHOOK_PRINTER)
