"""The inspector's reading: explain every contract and the last validation, in French. Reads only.

An inspector's terminal never opens a secure session: :func:`inspect` is pure and returns a report;
nothing in it is ever written to the card. The report names the rights held in other applications
only as far as an inspector needs to check a free or reduced trip (school transport, mobility aid,
reduced-fare profile), without the holder's employment or social details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from terminal.fares.denylist import DenyList
from terminal.fares.local_time import elapsed, to_local
from terminal.fares.model import CardImage, Event, EventKind, Place
from terminal.fares.reasons import format_euros
from terminal.fares.rules import (
    ContractStatus,
    assess_contract,
    last_event,
    valid_profiles,
    validity_bounds,
)
from terminal.fares.tariff import ProductKind, Tariff

STATUS_TEXT: dict[ContractStatus, str] = {
    ContractStatus.VALID: "valide",
    ContractStatus.UNKNOWN_PRODUCT: "titre inconnu du tarif",
    ContractStatus.NOT_YET_VALID: "pas encore valide",
    ContractStatus.EXPIRED: "expiré",
    ContractStatus.NOT_VALID_HERE: "non valable sur ce réseau ou ce mode",
    ContractStatus.OUT_OF_ZONE: "hors zone",
    ContractStatus.PROFILE_EXPIRED: "justificatif de réduction expiré",
    ContractStatus.CARNET_EMPTY: "carnet épuisé",
}

PROFILE_TEXT = {"student": "étudiant", "job_seeker": "tarif solidaire", "senior": "senior"}


@dataclass(frozen=True)
class ContractLine:
    """One contract explained.

    Attributes:
        slot: contract record number.
        product_id: product code.
        status: status at the inspection instant (and place, if given).
        text: the French explanation line.
    """

    slot: int
    product_id: str
    status: ContractStatus
    text: str


@dataclass(frozen=True)
class InspectionReport:
    """What the inspector's screen shows.

    Attributes:
        serial: card serial.
        at: inspection instant, local time.
        card_lines: card status (blocked, invalidated, expired environment).
        contracts: one line per contract.
        last_validation: the last validation explained, or ``None`` if the log is empty.
        validated_recently: the last validation is within the transfer hour of the journey.
        other_lines: wallet balance, school transport, mobility aid, reduced-fare profiles.
    """

    serial: str
    at: datetime
    card_lines: tuple[str, ...]
    contracts: tuple[ContractLine, ...]
    last_validation: str | None
    validated_recently: bool
    other_lines: tuple[str, ...]

    @property
    def has_valid_contract(self) -> bool:
        """At least one contract is valid at the inspection instant (and place)."""
        return any(c.status is ContractStatus.VALID for c in self.contracts)

    def text(self) -> str:
        """The whole report as lines of French text."""
        lines = [f"Carte {self.serial} — contrôle du {self.at:%d/%m/%Y à %H:%M}"]
        lines += self.card_lines
        lines += [c.text for c in self.contracts] or ["Aucun contrat sur la carte"]
        lines.append(self.last_validation or "Aucune validation enregistrée")
        lines += self.other_lines
        return "\n".join(lines)


def _day(value: date) -> str:
    return f"{value:%d/%m/%Y}"


def _zones(zones: frozenset[int]) -> str:
    if not zones:
        return "toutes zones"
    listed = ", ".join(str(z) for z in sorted(zones))
    return f"zone{'s' if len(zones) > 1 else ''} {listed}"


def _event_text(event: Event, moment: datetime) -> str:
    when = to_local(event.when)
    kind = {EventKind.ENTRY: "entrée", EventKind.TRANSFER: "correspondance"}.get(
        event.kind, "sortie"
    )
    minutes = int(elapsed(event.when, moment) / timedelta(minutes=1))
    line = f", ligne {event.line_id}" if event.line_id is not None else ""
    used = event.product_id or "—"
    return (
        f"Dernière validation : {kind} le {when:%d/%m/%Y à %H:%M} (il y a {minutes} min), "
        f"arrêt {event.station_id}{line}, réseau {event.network_id}, titre {used}"
    )


def inspect(
    card: CardImage,
    now: datetime,
    tariff: Tariff,
    place: Place | None = None,
    *,
    deny_list: DenyList | None = None,
    recent_minutes: int = 60,
) -> InspectionReport:
    """Explain the card at ``now`` (and ``place``, where the inspector stands, if given).

    Args:
        card: the card image (read in plain, no secure session).
        now: inspection instant.
        tariff: the tariff table in force.
        place: where the inspection happens; ``None`` checks time and holder only.
        deny_list: the deny-list the inspector's terminal holds, if any.
        recent_minutes: a validation this recent counts as covering the current trip.

    Returns:
        The report; nothing is written anywhere.
    """
    moment = to_local(now)
    today = moment.date()
    card_lines: list[str] = []
    if deny_list is not None and card.serial in deny_list:
        card_lines.append(f"Carte bloquée (liste d'opposition v{deny_list.version})")
    if card.invalidated:
        card_lines.append("Carte invalidée")
    if today > card.environment.valid_until:
        card_lines.append(f"Carte expirée le {_day(card.environment.valid_until)}")

    contracts: list[ContractLine] = []
    for contract in sorted(card.contracts, key=lambda c: c.slot):
        check = assess_contract(contract, card, tariff, place, moment)
        product = check.product
        name = product.fare_product_name if product else contract.product_id
        bounds = validity_bounds(contract, product)
        if bounds.end is not None:
            period = f"du {bounds.first:%d/%m/%Y %H:%M} au {to_local(bounds.end):%d/%m/%Y %H:%M}"
        elif bounds.last_day is not None:
            period = f"du {_day(bounds.first.date())} au {_day(bounds.last_day)} inclus"
        else:
            period = f"depuis le {_day(bounds.first.date())}"
        extra = ""
        if product is not None and product.kind is ProductKind.CARNET:
            extra = f", {card.remaining(contract.counter_slot)} voyage(s) restant(s)"
        if contract.includes_bike_shelter:
            extra += ", option abri vélo"
        text = (
            f"Contrat {contract.slot} : {name} — {STATUS_TEXT[check.status]} — "
            f"{_zones(contract.zones)}, {period}{extra}"
        )
        contracts.append(ContractLine(contract.slot, contract.product_id, check.status, text))

    previous = last_event(card, moment)
    recent = previous is not None and elapsed(previous.journey_start, moment) <= timedelta(
        minutes=recent_minutes
    )

    other: list[str] = []
    if card.sv_balance is not None:
        other.append(f"Porte-monnaie : {format_euros(card.sv_balance)}")
    school = card.school_transport
    if school is not None:
        state = "jour scolaire" if school.is_school_day(today) else "pas d'école ce jour"
        other.append(
            f"Transport scolaire gratuit : {_zones(school.zones)}, année du "
            f"{_day(school.valid_from)} au {_day(school.valid_until)} — {state}"
        )
    aid = card.mobility_aid
    if aid is not None:
        state = "valide" if aid.valid_from <= today <= aid.valid_until else "non valide ce jour"
        other.append(f"Aide mobilité emploi : {state}")
    profiles = sorted(valid_profiles(card, today))
    if profiles:
        names = ", ".join(PROFILE_TEXT.get(p.value, p.value) for p in profiles)
        other.append(f"Tarif réduit : {names}")

    return InspectionReport(
        serial=card.serial,
        at=moment,
        card_lines=tuple(card_lines),
        contracts=tuple(contracts),
        last_validation=_event_text(previous, moment) if previous else None,
        validated_recently=recent,
        other_lines=tuple(other),
    )
