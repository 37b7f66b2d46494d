"""ValidatingAdmissionPolicyBinding (admissionregistration.k8s.io/v1, cluster-scoped). What a
ValidatingAdmissionPolicy applies to: stored, never evaluated. The model, defaults, validation and
columns are shared with the other admission configuration kinds (admission_common.py)."""

from __future__ import annotations

from emulator.kinds.admission_common import BINDING_PRINTER, CATEGORIES, GROUP, BindingObject, BindingRules
from emulator.kinds.base import Kind, ResourceType

VALIDATING_ADMISSION_POLICY_BINDINGS = ResourceType(GROUP, "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False, "validatingadmissionpolicybinding", categories=CATEGORIES)


class ValidatingAdmissionPolicyBinding(BindingObject):
    """The model: the shared one, under this kind's name (decode errors name it)."""


class ValidatingAdmissionPolicyBindingStrategy(BindingRules):
    model = ValidatingAdmissionPolicyBinding
    resource = VALIDATING_ADMISSION_POLICY_BINDINGS


KIND = Kind(VALIDATING_ADMISSION_POLICY_BINDINGS, ValidatingAdmissionPolicyBindingStrategy, BINDING_PRINTER)
