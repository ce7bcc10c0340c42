"""The gate's fare decision: a pure function from a card image, a tap and the tables in force.

:func:`decide` does no IO, reads no clock (``now`` is an argument) and never writes: it returns a
:class:`Decision` that says what the transaction engine must write on the card (one event, a
counter decrease, an SV debit, a debit of a right in another application) and what the display
says. The engine writes it in one secure session, then the gate opens.

Order of the checks (issue 4; ``docs/tariffs.md``):

1. deny-list (signed, versioned) -> "Carte bloquée";
2. card invalidated -> "Carte invalidée";
3. environment: a network the tariff accepts, and not past its validity end -> "Carte non
   reconnue" / "Carte expirée";
4. the contracts valid for this place and time (period passes, carnets with trips left);
5. anti-passback (same line or station within ``anti_passback_seconds`` -> "Déjà validé"), then
   the transfer window: a valid pass, or a journey paid trip by trip (carnet, wallet, mobility aid)
   within the transfer rule's limits, passes as "Correspondance" with nothing charged;
6. entitlements held in other applications: free school transport from Cursus (zones, school days,
   school year), then the mobility aid of Mes droits pour l'emploi;
7. then, trip by trip: one trip from a carnet, else pay-as-you-go from the wallet's SV at the
   holder's reduced fare -> "Solde insuffisant" when the balance is short;
8. otherwise the most useful refusal found on the contracts (:data:`REFUSAL_PRIORITY`).

Privacy: what a decision asks to write in the transit event log (:class:`Event`) is the place, the
time, the contract slot and the product or entitlement code. No holder profile, employment
situation or right detail is written there; the mobility aid appears only as its code
(``AIDE_MOBILITE_EMPLOI``). The debit of the aid itself goes to the employment application
(:class:`EntitlementDebit`), never to the transit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from terminal.fares.denylist import DenyList
from terminal.fares.local_time import elapsed, start_of_day, to_local
from terminal.fares.model import (
    CardImage,
    Contract,
    Event,
    EventKind,
    GateKind,
    Place,
    ProfileCode,
    Tap,
)
from terminal.fares.reasons import REFUSAL_PRIORITY, Reason, format_euros
from terminal.fares.tariff import (
    STANDARD_RIDER,
    BikeShelter,
    FareProduct,
    ProductKind,
    Tariff,
)

EMPLOYMENT_APPLICATION = "employment"  # card_schema.layout application name of the aid


@dataclass(frozen=True)
class CounterDebit:
    """Decrease of a PLUM counter (carnet trips)."""

    counter_slot: int
    trips: int


@dataclass(frozen=True)
class EntitlementDebit:
    """Debit of a right held in another application (today: the employment mobility aid).

    Attributes:
        application: card application holding the right (``"employment"``).
        record: rights record number.
        trips: trips spent (trip-based aid).
        amount: eurocents spent (amount-based aid).
    """

    application: str
    record: int
    trips: int = 0
    amount: int = 0


@dataclass(frozen=True)
class Decision:
    """What the gate does and what it asks the transaction engine to write.

    Attributes:
        accepted: open the gate or door.
        reason: why.
        display: the display line, in French (the reason's text, then a detail if any).
        event: event to append to the PLUM event log, or ``None`` (nothing written).
        counter_debit: carnet trip to take, or ``None``.
        sv_debit: eurocents to debit from the wallet's SV (0: none).
        entitlement_debit: right to debit in another application, or ``None``.
        contract_slot: contract used, or ``None``.
        product_id: product or entitlement used, or ``None``.
        is_transfer: the validation is a transfer within a journey.
    """

    accepted: bool
    reason: Reason
    display: str
    event: Event | None = None
    counter_debit: CounterDebit | None = None
    sv_debit: int = 0
    entitlement_debit: EntitlementDebit | None = None
    contract_slot: int | None = None
    product_id: str | None = None
    is_transfer: bool = False

    @property
    def writes(self) -> bool:
        """Whether the engine must open a secure session and write something."""
        return (
            self.event is not None
            or self.counter_debit is not None
            or self.sv_debit != 0
            or self.entitlement_debit is not None
        )


class ContractStatus(StrEnum):
    """How one contract stands for a place and an instant."""

    VALID = "valid"
    UNKNOWN_PRODUCT = "unknown_product"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    NOT_VALID_HERE = "not_valid_here"  # network or mode
    OUT_OF_ZONE = "out_of_zone"
    PROFILE_EXPIRED = "profile_expired"
    CARNET_EMPTY = "carnet_empty"


_STATUS_REASON: dict[ContractStatus, Reason] = {
    ContractStatus.UNKNOWN_PRODUCT: Reason.NO_VALID_CONTRACT,
    ContractStatus.NOT_YET_VALID: Reason.CONTRACT_NOT_YET_VALID,
    ContractStatus.EXPIRED: Reason.CONTRACT_EXPIRED,
    ContractStatus.NOT_VALID_HERE: Reason.NOT_VALID_HERE,
    ContractStatus.OUT_OF_ZONE: Reason.OUT_OF_ZONE,
    ContractStatus.PROFILE_EXPIRED: Reason.PROFILE_EXPIRED,
    ContractStatus.CARNET_EMPTY: Reason.CARNET_EMPTY,
}


@dataclass(frozen=True)
class ContractCheck:
    """A contract, its product (if the tariff knows it) and its status."""

    contract: Contract
    product: FareProduct | None
    status: ContractStatus


@dataclass(frozen=True)
class ValidityBounds:
    """When a contract is valid, resolved against its product.

    Attributes:
        first: first instant (inclusive), local time.
        last_day: last valid local date (inclusive) for date-based ends, else ``None``.
        end: end instant (exclusive) for datetime-based ends, else ``None``.
    """

    first: datetime
    last_day: date | None
    end: datetime | None

    def status(self, moment: datetime) -> ContractStatus:
        """``NOT_YET_VALID``, ``EXPIRED`` or ``VALID`` at ``moment`` (local time)."""
        if elapsed(self.first, moment) < timedelta(0):
            return ContractStatus.NOT_YET_VALID
        if self.last_day is not None and to_local(moment).date() > self.last_day:
            return ContractStatus.EXPIRED
        if self.end is not None and elapsed(self.end, moment) >= timedelta(0):
            return ContractStatus.EXPIRED
        return ContractStatus.VALID


def validity_bounds(contract: Contract, product: FareProduct | None) -> ValidityBounds:
    """Resolve a contract's validity: a ``date`` end is inclusive to the end of that day, a
    ``datetime`` end is exclusive, a missing end comes from the product's validity period (a
    calendar-month pass started in February ends on 28 or 29 February)."""
    start = contract.start
    if isinstance(start, datetime):
        first = to_local(start)
        start_day = first.date()
    else:
        first = start_of_day(start)
        start_day = start
    end = contract.end
    if isinstance(end, datetime):
        return ValidityBounds(first, None, to_local(end))
    if end is None and product is not None:
        end = product.end_date(start_day)
    return ValidityBounds(first, end, None)


def valid_profiles(card: CardImage, day: date) -> frozenset[ProfileCode]:
    """Holder profiles valid on the local date ``day``."""
    return frozenset(p.code for p in card.profiles if p.is_valid_on(day))


def assess_contract(
    contract: Contract, card: CardImage, tariff: Tariff, place: Place | None, moment: datetime
) -> ContractCheck:
    """Status of one contract at ``place`` (``None``: time and holder only) and ``moment``.

    Checks, in order: product known, time, network and mode, zone, holder profile, carnet trips.
    """
    product = tariff.product(contract.product_id)
    if product is None or product.kind not in (ProductKind.PERIOD_PASS, ProductKind.CARNET):
        return ContractCheck(contract, product, ContractStatus.UNKNOWN_PRODUCT)
    status = validity_bounds(contract, product).status(moment)
    if status is not ContractStatus.VALID:
        return ContractCheck(contract, product, status)
    if place is not None:
        modes = contract.modes or product.modes
        if (
            contract.network_id not in tariff.accepted_networks
            or (product.networks and place.network_id not in product.networks)
            or (modes and place.mode not in modes)
        ):
            return ContractCheck(contract, product, ContractStatus.NOT_VALID_HERE)
        if contract.zones and place.zone not in contract.zones:
            return ContractCheck(contract, product, ContractStatus.OUT_OF_ZONE)
    if product.rider_category_id != STANDARD_RIDER and product.rider_category_id not in {
        code.value for code in valid_profiles(card, to_local(moment).date())
    }:
        return ContractCheck(contract, product, ContractStatus.PROFILE_EXPIRED)
    if product.kind is ProductKind.CARNET and card.remaining(contract.counter_slot) <= 0:
        return ContractCheck(contract, product, ContractStatus.CARNET_EMPTY)
    return ContractCheck(contract, product, ContractStatus.VALID)


def _same_line_or_station(event: Event, place: Place) -> bool:
    if event.network_id != place.network_id:
        return False
    if place.line_id is not None or event.line_id is not None:
        return event.line_id == place.line_id
    return event.station_id == place.station_id


def _passback(card: CardImage, place: Place, moment: datetime, tariff: Tariff) -> bool:
    """A validation on the same line (or station) less than the anti-passback window ago."""
    window = timedelta(seconds=tariff.anti_passback_seconds)
    return any(
        event.kind is not EventKind.EXIT
        and _same_line_or_station(event, place)
        and timedelta(0) <= elapsed(event.when, moment) < window
        for event in card.events
    )


def last_event(card: CardImage, moment: datetime) -> Event | None:
    """The most recent event not after ``moment`` (events from the future are ignored)."""
    past = [e for e in card.events if elapsed(e.when, moment) >= timedelta(0)]
    return max(past, key=lambda e: elapsed(moment, e.when), default=None)


@dataclass(frozen=True)
class _Journey:
    """A transfer in progress: the journey it continues."""

    previous: Event
    journey_start: datetime
    transfers: int


def _leg_group(tariff: Tariff, network_id: int, zone: int | None) -> str | None:
    if zone is not None:
        rule = tariff.leg_rule(network_id, zone)
        return rule.leg_group_id if rule else None
    return next((r.leg_group_id for r in tariff.leg_rules if r.network_id == network_id), None)


def _transfer(card: CardImage, place: Place, moment: datetime, tariff: Tariff) -> _Journey | None:
    """The journey this tap continues, if the transfer rules allow it.

    The window runs from the journey's first validation and its bound is inclusive (60 min means
    a tap at exactly 60:00 still transfers); it is measured in real time, across midnight and DST.
    """
    previous = last_event(card, moment)
    if previous is None:
        return None
    from_group = _leg_group(tariff, previous.network_id, None)
    to_group = _leg_group(tariff, place.network_id, place.zone)
    if from_group is None or to_group is None:
        return None
    rule = tariff.transfer_rule(from_group, to_group)
    if rule is None:
        return None
    since_start = elapsed(previous.journey_start, moment)
    if not timedelta(0) <= since_start <= timedelta(seconds=rule.duration_limit):
        return None
    if rule.transfer_count >= 0 and previous.transfers >= rule.transfer_count:
        return None
    if not rule.allow_same_line and _same_line_or_station(previous, place):
        return None
    return _Journey(previous, to_local(previous.journey_start), previous.transfers + 1)


def _event(
    place: Place,
    moment: datetime,
    journey: _Journey | None,
    contract_slot: int | None,
    product_id: str | None,
) -> Event:
    # Only place, time, contract and product: see the privacy note in the module docstring.
    return Event(
        when=moment,
        station_id=place.station_id,
        line_id=place.line_id,
        network_id=place.network_id,
        kind=EventKind.TRANSFER if journey else EventKind.ENTRY,
        journey_start=journey.journey_start if journey else moment,
        contract_slot=contract_slot,
        product_id=product_id,
        transfers=journey.transfers if journey else 0,
    )


def _display(reason: Reason, detail: str | None = None) -> str:
    return f"{reason.text} — {detail}" if detail else reason.text


def _refuse(reason: Reason, detail: str | None = None) -> Decision:
    return Decision(accepted=False, reason=reason, display=_display(reason, detail))


def _accept(
    reason: Reason,
    place: Place,
    moment: datetime,
    journey: _Journey | None,
    *,
    contract_slot: int | None = None,
    product_id: str | None = None,
    detail: str | None = None,
    counter_debit: CounterDebit | None = None,
    sv_debit: int = 0,
    entitlement_debit: EntitlementDebit | None = None,
) -> Decision:
    return Decision(
        accepted=True,
        reason=reason,
        display=_display(reason, detail),
        event=_event(place, moment, journey, contract_slot, product_id),
        counter_debit=counter_debit,
        sv_debit=sv_debit,
        entitlement_debit=entitlement_debit,
        contract_slot=contract_slot,
        product_id=product_id,
        is_transfer=journey is not None,
    )


def _serves(product: FareProduct | None, place: Place) -> bool:
    """Whether an entitlement product covers the network and mode of ``place``."""
    return (
        product is not None
        and (not product.networks or place.network_id in product.networks)
        and (not product.modes or place.mode in product.modes)
    )


def trip_fare(card: CardImage, place: Place, day: date, tariff: Tariff) -> tuple[str, int] | None:
    """Pay-as-you-go product and fare of one trip here, after the holder's best reduction.

    Returns:
        ``(fare_product_id, eurocents)``, or ``None`` where the leg rules sell no trip (TER).
    """
    rule = tariff.leg_rule(place.network_id, place.zone)
    product = tariff.product(rule.fare_product_id if rule else None)
    if product is None or product.kind is not ProductKind.PAY_AS_YOU_GO:
        return None
    if product.modes and place.mode not in product.modes:
        return None
    fare = tariff.reduced_amount(product.amount, valid_profiles(card, day))
    return product.fare_product_id, fare


def _trip_based(product: FareProduct | None, tariff: Tariff) -> bool:
    """Products whose journey continues free within the transfer window."""
    if product is None:
        return False
    return product.kind in (ProductKind.CARNET, ProductKind.PAY_AS_YOU_GO) or (
        product.fare_product_id == tariff.mobility_aid_product_id
    )


def _bike_shelter(card: CardImage, place: Place, moment: datetime, tariff: Tariff) -> Decision:
    """The door opens for a PLUM contract that includes the bike shelter; nothing is written."""
    found: set[Reason] = set()
    for contract in card.contracts:
        product = tariff.product(contract.product_id)
        if product is None or not (
            product.bike_shelter is BikeShelter.INCLUDED
            or (product.bike_shelter is BikeShelter.OPTION and contract.includes_bike_shelter)
        ):
            continue
        check = assess_contract(contract, card, tariff, None, moment)
        status = check.status
        if status is ContractStatus.VALID and contract.zones and place.zone not in contract.zones:
            status = ContractStatus.OUT_OF_ZONE
        if status is ContractStatus.VALID:
            return Decision(
                accepted=True,
                reason=Reason.BIKE_SHELTER_OPEN,
                display=Reason.BIKE_SHELTER_OPEN.text,
                contract_slot=contract.slot,
                product_id=product.fare_product_id,
            )
        found.add(_STATUS_REASON[status])
    return _refuse(_refusal_reason(found, default=Reason.BIKE_SHELTER_REFUSED))


def _refusal_reason(reasons: set[Reason], *, default: Reason) -> Reason:
    """The most useful of ``reasons`` (:data:`REFUSAL_PRIORITY`), else ``default``."""
    reasons = reasons - {Reason.NO_VALID_CONTRACT}
    return next((r for r in REFUSAL_PRIORITY if r in reasons), default)


def decide(
    card: CardImage,
    tap: Tap,
    tariff: Tariff,
    deny_list: DenyList,
    now: datetime | None = None,
) -> Decision:
    """Decide what the gate does with this card. Pure: no IO, no clock, no writes.

    Args:
        card: the card image read by the transaction engine.
        tap: where and when the card was presented, and to which kind of terminal.
        tariff: the tariff table in force.
        deny_list: the deny-list in force.
        now: decision instant; defaults to ``tap.when``. Naive = Europe/Paris wall-clock time.

    Returns:
        The decision; on a refusal nothing is to be written.
    """
    moment = to_local(now if now is not None else tap.when)
    today = moment.date()
    place = tap.place
    if tap.gate is GateKind.INSPECTOR:
        return _refuse(Reason.READ_ONLY)  # inspectors read and explain: see inspection.inspect

    # 1-3: the card itself.
    if card.serial in deny_list:
        return _refuse(Reason.CARD_BLOCKED)
    if card.invalidated:
        return _refuse(Reason.CARD_INVALIDATED)
    if card.environment.network_id not in tariff.accepted_networks:
        return _refuse(Reason.UNKNOWN_NETWORK)
    if today > card.environment.valid_until:
        return _refuse(Reason.CARD_EXPIRED)
    if tap.gate is GateKind.BIKE_SHELTER:
        return _bike_shelter(card, place, moment, tariff)

    # 4: contracts valid for this place and time.
    checks = [assess_contract(c, card, tariff, place, moment) for c in card.contracts]
    valid = [c for c in checks if c.status is ContractStatus.VALID and c.product is not None]
    passes = [c for c in valid if c.product and c.product.kind is ProductKind.PERIOD_PASS]
    carnets = [
        c
        for c in valid
        if c.product
        and c.product.kind is ProductKind.CARNET
        and c.contract.counter_slot is not None
    ]

    # 5: anti-passback, then the transfer window.
    if _passback(card, place, moment, tariff):
        return _refuse(Reason.ALREADY_VALIDATED)
    journey = _transfer(card, place, moment, tariff)
    if passes:
        chosen = min(passes, key=lambda c: c.contract.slot)
        return _accept(
            Reason.TRANSFER if journey else Reason.OK,
            place,
            moment,
            journey,
            contract_slot=chosen.contract.slot,
            product_id=chosen.contract.product_id,
        )
    if journey is not None and _trip_based(tariff.product(journey.previous.product_id), tariff):
        return _accept(
            Reason.TRANSFER,
            place,
            moment,
            journey,
            contract_slot=journey.previous.contract_slot,
            product_id=journey.previous.product_id,
        )

    # 6: entitlements held in the other applications.
    school = card.school_transport
    school_product = tariff.product(tariff.school_transport_product_id)
    if (
        school is not None
        and school.is_school_day(today)
        and place.zone in school.zones
        and _serves(school_product, place)
    ):
        return _accept(
            Reason.SCHOOL_TRANSPORT,
            place,
            moment,
            journey,
            product_id=tariff.school_transport_product_id,
        )
    fare = trip_fare(card, place, today, tariff)
    aid = card.mobility_aid
    if (
        aid is not None
        and aid.valid_from <= today <= aid.valid_until
        and _serves(tariff.product(tariff.mobility_aid_product_id), place)
    ):
        debit: EntitlementDebit | None = None
        if aid.trips_remaining:
            debit = EntitlementDebit(EMPLOYMENT_APPLICATION, aid.record, trips=1)
        elif fare is not None and (aid.amount_remaining or 0) >= fare[1] > 0:
            debit = EntitlementDebit(EMPLOYMENT_APPLICATION, aid.record, amount=fare[1])
        if debit is not None:
            return _accept(
                Reason.MOBILITY_AID,
                place,
                moment,
                journey,
                product_id=tariff.mobility_aid_product_id,
                entitlement_debit=debit,
            )

    # 7: trip by trip: a carnet, then the wallet.
    if carnets:
        chosen = min(carnets, key=lambda c: c.contract.slot)
        counter = chosen.contract.counter_slot or 0  # never 0: carnets above have a counter
        left = card.remaining(counter) - 1
        plural = "s" if left > 1 else ""
        return _accept(
            Reason.OK,
            place,
            moment,
            journey,
            contract_slot=chosen.contract.slot,
            product_id=chosen.contract.product_id,
            counter_debit=CounterDebit(counter, 1),
            detail=f"{left} voyage{plural} restant{plural}",
        )
    found = {_STATUS_REASON[c.status] for c in checks if c.status in _STATUS_REASON}
    if fare is not None and card.sv_balance is not None:
        product_id, amount = fare
        if card.sv_balance >= amount:
            return _accept(
                Reason.OK,
                place,
                moment,
                journey,
                product_id=product_id,
                sv_debit=amount,
                detail=f"solde {format_euros(card.sv_balance - amount)}",
            )
        found.add(Reason.INSUFFICIENT_BALANCE)
        reason = _refusal_reason(found, default=Reason.INSUFFICIENT_BALANCE)
        if reason is Reason.INSUFFICIENT_BALANCE:
            return _refuse(
                reason, f"solde {format_euros(card.sv_balance)}, trajet {format_euros(amount)}"
            )
        return _refuse(reason)

    # 8: nothing pays for this trip.
    return _refuse(_refusal_reason(found, default=Reason.NO_VALID_CONTRACT))
