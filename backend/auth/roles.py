"""Who may do what: agent roles, terminal kinds, and the tables that bind them to actions.

Tables, not scattered ifs: :data:`TERMINAL_WRITES` says which card applications a device kind may
write to (a canteen till never touches the transit application), :data:`TERMINAL_SELLS` which
applications it may sell products for. Agent roles are checked per endpoint with
:func:`backend.auth.dependencies.require_agent`; docs/backend.md has the full matrix.
"""

from __future__ import annotations

from enum import StrEnum


class AgentRole(StrEnum):
    """Role of a desk agent account."""

    AGENT = "agent"  # serves the public: holders, cards, loads, block and replace
    SUPERVISOR = "supervisor"  # an agent who also manages agents, terminals, catalogue, privacy
    AUDITOR = "auditor"  # reads everything, including the audit trail; never changes anything


class TerminalKind(StrEnum):
    """Kind of a registered device."""

    GATE = "gate"
    CANTEEN = "canteen"
    BIKE_SHELTER = "bike_shelter"
    INSPECTOR = "inspector"
    DESK = "desk"
    PARTNER = "partner"  # employment partner's reader (docs/partner.md)
    SHOP = "shop"  # partner shop's Cursus aid till (docs/shop.md)


class Application(StrEnum):
    """Card applications, named as in :mod:`card_schema.layout`.

    The upload batch format (docs/batch-format.md) spells the employment application ``emploi``;
    :meth:`from_wire` accepts both spellings.
    """

    PLUM = "plum"
    WALLET = "wallet"
    CURSUS = "cursus"
    EMPLOYMENT = "employment"

    @classmethod
    def from_wire(cls, name: str) -> Application:
        """The application for a name as found in a batch or a request (``emploi`` allowed)."""
        return cls.EMPLOYMENT if name == "emploi" else cls(name)


# Applications whose pending writes (action list) a device kind receives and writes at a tap.
TERMINAL_WRITES: dict[TerminalKind, frozenset[Application]] = {
    TerminalKind.GATE: frozenset({Application.PLUM, Application.CURSUS}),
    TerminalKind.CANTEEN: frozenset({Application.CURSUS, Application.WALLET}),
    TerminalKind.BIKE_SHELTER: frozenset({Application.PLUM}),
    TerminalKind.INSPECTOR: frozenset(),
    TerminalKind.DESK: frozenset(Application),
    TerminalKind.PARTNER: frozenset(),
    TerminalKind.SHOP: frozenset(),
}

# Applications a device kind may sell products for (a load initiated by the terminal itself).
TERMINAL_SELLS: dict[TerminalKind, frozenset[Application]] = {
    TerminalKind.GATE: frozenset(),
    TerminalKind.CANTEEN: frozenset({Application.WALLET}),
    TerminalKind.BIKE_SHELTER: frozenset(),
    TerminalKind.INSPECTOR: frozenset(),
    TerminalKind.DESK: frozenset(Application),
    TerminalKind.PARTNER: frozenset(),
    TerminalKind.SHOP: frozenset(),
}

WRITING_ROLES = (AgentRole.AGENT, AgentRole.SUPERVISOR)
READING_ROLES = tuple(AgentRole)
