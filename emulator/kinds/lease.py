"""Lease (coordination.k8s.io/v1): the model, the API server's validation (a positive duration, transitions
not negative) and the columns of `kubectl get leases`.

Nothing here holds a Lease: they are what controllers use for leader election (client-go's and
controller-runtime's `leaselock`), so an operator developed against the emulator can run with leader
election on, as it will in a cluster. `strategy` and `preferredHolder` belong to the alpha
CoordinatedLeaderElection gate, off in 1.32: they are decoded and dropped, as the API server does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of
from emulator.models.base import Int32
from emulator.models.meta import ApiModel, TypedObject
from emulator.registry.strategy import Strategy

LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, "lease")


class LeaseSpec(ApiModel):
    holder_identity: str | None = None
    lease_duration_seconds: Int32 | None = None
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: Int32 | None = None
    strategy: str | None = Field(default=None, exclude=True)
    preferred_holder: str | None = Field(default=None, exclude=True)


class Lease(TypedObject):
    spec: LeaseSpec = Field(default_factory=LeaseSpec)


class LeaseStrategy(Strategy):
    resource = LEASES
    model = Lease

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        """ValidateLeaseSpec."""
        spec = obj.get("spec") or {}
        problems: list[FieldError] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            problems.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            problems.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
        return problems


def _cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    return [name, spec_of(obj).get("holderIdentity") or "", created]


PRINTER = Printer(
    (NAME, Column("Holder", "The holder of the lease"), AGE),
    _cells,
)

KIND = Kind(LEASES, LeaseStrategy, PRINTER)
