"""ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, cluster-scoped). CEL rules the API server
would check writes against: stored, never evaluated. The model, defaults, validation and columns are
shared with the other admission configuration kinds (admission_common.py)."""

from __future__ import annotations

from emulator.kinds.admission_common import CATEGORIES, GROUP, POLICY_PRINTER, PolicyObject, PolicyRules
from emulator.kinds.base import Kind, ResourceType, Subresource

VALIDATING_ADMISSION_POLICIES = ResourceType(GROUP, "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False, "validatingadmissionpolicy", categories=CATEGORIES, subresources=(Subresource("status"),))


class ValidatingAdmissionPolicy(PolicyObject):
    """The model: the shared one, under this kind's name (decode errors name it)."""


class ValidatingAdmissionPolicyStrategy(PolicyRules):
    model = ValidatingAdmissionPolicy
    resource = VALIDATING_ADMISSION_POLICIES


KIND = Kind(VALIDATING_ADMISSION_POLICIES, ValidatingAdmissionPolicyStrategy, POLICY_PRINTER)
