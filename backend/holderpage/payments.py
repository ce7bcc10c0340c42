"""Payment providers: the interface the holder's page pays through, and the sandbox default.

A real provider (a bank's or a payment service's hosted payment page) implements
:class:`PaymentProvider`; only the sandbox ships. The sandbox moves no money: it approves the test
card ``sandbox-ok`` and declines ``sandbox-declined`` (any other means is refused as unknown), so
the page and the tests go through both outcomes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from backend.errors import BackendError, InvalidRequest


class PaymentDeclined(BackendError):
    """The payment provider refused the payment: nothing was sold."""

    status_code = 402
    code = "payment_declined"


@dataclass(frozen=True)
class PaymentResult:
    """A payment the provider approved."""

    provider: str
    reference: str


class PaymentProvider(Protocol):
    """What the holder's page needs from a payment provider."""

    name: str

    def charge(self, *, amount_cents: int, description: str, means: str) -> PaymentResult:
        """Take ``amount_cents`` with the payment means the holder gave.

        Raises:
            PaymentDeclined: the provider refused the payment.
        """
        ...


class SandboxProvider:
    """The embedded default: approves ``sandbox-ok``, declines ``sandbox-declined``."""

    name = "sandbox"
    APPROVED = "sandbox-ok"
    DECLINED = "sandbox-declined"

    def charge(self, *, amount_cents: int, description: str, means: str) -> PaymentResult:
        """Approve or decline at once, by the test means given."""
        if means == self.DECLINED:
            raise PaymentDeclined(
                "paiement refusé par la banque (carte de test refusée) : rien n'a été vendu",
                "payment declined (sandbox declined card): nothing was sold",
            )
        if means != self.APPROVED:
            raise InvalidRequest(
                "moyen de paiement inconnu", f"unknown payment means for the sandbox: {means!r}"
            )
        return PaymentResult(provider=self.name, reference="SBX-" + secrets.token_hex(8).upper())


PROVIDERS: dict[str, type[SandboxProvider]] = {"sandbox": SandboxProvider}


def provider_named(name: str) -> PaymentProvider:
    """The provider configured by name.

    Raises:
        InvalidRequest: no such provider is built in.
    """
    factory = PROVIDERS.get(name)
    if factory is None:
        raise InvalidRequest("paiement en ligne indisponible", f"unknown payment provider {name!r}")
    return factory()
