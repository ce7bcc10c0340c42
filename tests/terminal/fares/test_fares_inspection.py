"""Tests of terminal.fares.inspection: the inspector reads and explains, in French, never writes."""

from __future__ import annotations

from datetime import date

from fares_builders import (
    BUS_12,
    BUS_ZONE2,
    METRO,
    SERIAL,
    TARIFF,
    at,
    card,
    carnet,
    contract,
    event,
)

from terminal.fares.denylist import DenyList
from terminal.fares.inspection import inspect
from terminal.fares.model import (
    CardImage,
    Environment,
    HolderProfile,
    MobilityAid,
    ProfileCode,
    SchoolTransportEntitlement,
)
from terminal.fares.rules import ContractStatus

NOW = at(2025, 3, 10, 8, 20)


def full_card() -> CardImage:
    return card(
        contracts=(
            contract(slot=1, includes_bike_shelter=True),
            contract(start=date(2025, 2, 1), slot=2),
            contract(start=date(2025, 4, 1), slot=3),
            carnet(slot=4),
        ),
        counters={1: 7},
        events=(event(at(2025, 3, 10, 8, 5), BUS_12, product_id="PASS_MOIS_1Z", contract_slot=1),),
        sv_balance=1230,
        profiles=(HolderProfile(ProfileCode.JOB_SEEKER, valid_until=date(2025, 6, 30)),),
        school_transport=SchoolTransportEntitlement(
            frozenset({1}), date(2024, 9, 2), date(2025, 7, 4)
        ),
        mobility_aid=MobilityAid(1, date(2025, 3, 1), date(2025, 3, 31), trips_remaining=4),
    )


def test_each_contract_is_explained() -> None:
    report = inspect(full_card(), NOW, TARIFF)
    statuses = {line.slot: line.status for line in report.contracts}
    assert statuses == {
        1: ContractStatus.VALID,
        2: ContractStatus.EXPIRED,
        3: ContractStatus.NOT_YET_VALID,
        4: ContractStatus.VALID,
    }
    first = report.contracts[0].text
    assert first.startswith("Contrat 1 : Pass Pass mensuel 1 zone — valide — zone 1")
    assert "du 01/03/2025 au 31/03/2025 inclus" in first
    assert "option abri vélo" in first
    assert "expiré" in report.contracts[1].text
    assert "pas encore valide" in report.contracts[2].text
    assert "7 voyage(s) restant(s)" in report.contracts[3].text
    assert report.has_valid_contract


def test_last_validation_and_other_applications() -> None:
    report = inspect(full_card(), NOW, TARIFF)
    assert report.last_validation is not None
    assert "correspondance" not in report.last_validation
    assert "entrée le 10/03/2025 à 08:05 (il y a 15 min)" in report.last_validation
    assert "ligne 12" in report.last_validation
    assert report.validated_recently
    text = report.text()
    assert "Porte-monnaie : 12,30 €" in text
    assert "Transport scolaire gratuit : zone 1" in text and "jour scolaire" in text
    assert "Aide mobilité emploi : valide" in text
    assert "Tarif réduit : tarif solidaire" in text
    assert "demandeur" not in text.lower()  # no employment situation on the inspector's screen


def test_place_changes_the_status() -> None:
    report = inspect(full_card(), NOW, TARIFF, BUS_ZONE2)
    assert report.contracts[0].status is ContractStatus.OUT_OF_ZONE
    assert "hors zone" in report.contracts[0].text


def test_blocked_states_and_empty_card() -> None:
    report = inspect(
        card(invalidated=True, environment=Environment(date(2025, 1, 31))),
        NOW,
        TARIFF,
        METRO,
        deny_list=DenyList(7, serials=frozenset({SERIAL})),
    )
    assert report.card_lines == (
        "Carte bloquée (liste d'opposition v7)",
        "Carte invalidée",
        "Carte expirée le 31/01/2025",
    )
    assert not report.has_valid_contract
    assert not report.validated_recently
    text = report.text()
    assert "Aucun contrat sur la carte" in text
    assert "Aucune validation enregistrée" in text


def test_inspection_reads_only() -> None:
    image = full_card()
    inspect(image, NOW, TARIFF)
    assert image == full_card()


def test_datetime_bounded_contract() -> None:
    day_ticket = contract(start=at(2025, 3, 10, 6), end=at(2025, 3, 11, 6))
    report = inspect(card(contracts=(day_ticket,)), NOW, TARIFF)
    assert "du 10/03/2025 06:00 au 11/03/2025 06:00" in report.contracts[0].text
