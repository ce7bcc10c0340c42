"""Property tests of terminal.fares.rules.decide over arbitrary valid card images.

- decide never raises;
- an accepted decision never debits more than the wallet holds, nor more trips than a counter has;
- a refused decision, a bike-shelter door and an inspector never write;
- inspect never raises either.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fares_builders import PARIS, TARIFF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terminal.fares.denylist import DenyList
from terminal.fares.inspection import inspect
from terminal.fares.model import (
    CardImage,
    Contract,
    Environment,
    Event,
    EventKind,
    GateKind,
    HolderProfile,
    MobilityAid,
    Mode,
    Place,
    ProfileCode,
    SchoolTransportEntitlement,
    Tap,
)
from terminal.fares.rules import decide

PRODUCTS = [p.fare_product_id for p in TARIFF.fare_products] + ["INCONNU"]
NETWORKS = [n.network_id for n in TARIFF.networks] + [999_999]
SERIALS = ["0102030405060708", "A1B2C3D4", "FFFFFFFFFFFFFFFF"]

# Around the edges that matter: month ends, a leap year, both DST changes of 2025.
days = st.dates(min_value=date(2023, 12, 1), max_value=date(2026, 3, 31))
instants = st.builds(
    lambda d, seconds, fold: (
        datetime.combine(d, datetime.min.time(), PARIS).replace(fold=fold)
        + timedelta(seconds=seconds)
    ),
    days,
    st.integers(0, 86_399),
    st.integers(0, 1),
)
naive_or_aware = st.one_of(instants, instants.map(lambda t: t.replace(tzinfo=None)))
zones = st.frozensets(st.integers(1, 5), max_size=3)

places = st.builds(
    Place,
    station_id=st.integers(1, 5),
    zone=st.integers(1, 5),
    network_id=st.sampled_from(NETWORKS),
    mode=st.sampled_from(list(Mode)),
    line_id=st.one_of(st.none(), st.integers(1, 3)),
)
contracts = st.builds(
    Contract,
    slot=st.integers(1, 4),
    product_id=st.sampled_from(PRODUCTS),
    start=st.one_of(days, naive_or_aware),
    end=st.one_of(st.none(), days, naive_or_aware),
    zones=zones,
    network_id=st.sampled_from([250_000, 250_149, 1]),
    modes=st.frozensets(st.sampled_from(list(Mode))),
    includes_bike_shelter=st.booleans(),
    counter_slot=st.one_of(st.none(), st.integers(0, 3)),
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    when = draw(naive_or_aware)
    place = draw(places)
    return Event(
        when=when,
        station_id=place.station_id,
        line_id=place.line_id,
        network_id=place.network_id,
        kind=draw(st.sampled_from(list(EventKind))),
        journey_start=when - timedelta(seconds=draw(st.integers(-600, 7200))),
        contract_slot=draw(st.one_of(st.none(), st.integers(1, 4))),
        product_id=draw(st.one_of(st.none(), st.sampled_from(PRODUCTS))),
        transfers=draw(st.integers(0, 5)),
    )


cards = st.builds(
    CardImage,
    serial=st.sampled_from(SERIALS),
    environment=st.builds(
        Environment, valid_until=days, network_id=st.sampled_from([250_000, 250_149, 1])
    ),
    invalidated=st.booleans(),
    profiles=st.lists(
        st.builds(
            HolderProfile,
            code=st.sampled_from(list(ProfileCode)),
            valid_until=st.one_of(st.none(), days),
            valid_from=st.one_of(st.none(), days),
        ),
        max_size=3,
    ).map(tuple),
    contracts=st.lists(contracts, max_size=4).map(tuple),
    counters=st.dictionaries(st.integers(0, 3), st.integers(0, 20), max_size=4),
    events=st.lists(events(), max_size=3).map(tuple),
    sv_balance=st.one_of(st.none(), st.integers(-500, 5000)),
    school_transport=st.one_of(
        st.none(),
        st.builds(
            SchoolTransportEntitlement,
            zones=zones,
            valid_from=days,
            valid_until=days,
            school_weekdays=st.frozensets(st.integers(0, 6)),
            non_school_days=st.frozensets(days, max_size=3),
        ),
    ),
    mobility_aid=st.one_of(
        st.none(),
        st.builds(
            MobilityAid,
            record=st.integers(1, 4),
            valid_from=days,
            valid_until=days,
            trips_remaining=st.one_of(st.none(), st.integers(0, 5)),
            amount_remaining=st.one_of(st.none(), st.integers(0, 1000)),
        ),
    ),
)
taps = st.builds(Tap, when=naive_or_aware, place=places, gate=st.sampled_from(list(GateKind)))
deny_lists = st.builds(
    DenyList, version=st.integers(0, 9), serials=st.frozensets(st.sampled_from(SERIALS))
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(card=cards, tap=taps, deny_list=deny_lists)
def test_decide_never_raises_and_never_overspends(
    card: CardImage, tap: Tap, deny_list: DenyList
) -> None:
    decision = decide(card, tap, TARIFF, deny_list)

    assert decision.accepted is decision.reason.accepts
    assert decision.display.startswith(decision.reason.text)
    assert decision.sv_debit >= 0
    if decision.sv_debit:
        assert decision.accepted
        assert card.sv_balance is not None and decision.sv_debit <= card.sv_balance
    if decision.counter_debit is not None:
        assert decision.accepted
        assert (
            0 < decision.counter_debit.trips <= card.remaining(decision.counter_debit.counter_slot)
        )
    if decision.entitlement_debit is not None:
        aid = card.mobility_aid
        assert aid is not None and decision.accepted
        assert decision.entitlement_debit.trips <= (aid.trips_remaining or 0)
        assert decision.entitlement_debit.amount <= (aid.amount_remaining or 0)
    if not decision.accepted or tap.gate is not GateKind.GATE:
        assert not decision.writes
    if card.serial in deny_list and tap.gate is not GateKind.INSPECTOR:
        assert not decision.accepted
    if decision.accepted and tap.gate is GateKind.GATE:
        assert decision.event is not None
        assert decision.event.station_id == tap.place.station_id


@FAST
@given(card=cards, now=naive_or_aware, place=st.one_of(st.none(), places))
def test_inspect_never_raises(card: CardImage, now: datetime, place: Place | None) -> None:
    report = inspect(card, now, TARIFF, place)
    assert len(report.contracts) == len(card.contracts)
    assert report.text()
