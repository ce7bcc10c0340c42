"""A sample card: what a lycéenne from Amiens carries, record by record.

Léa (fictitious) is in première in a lycée of Amiens (fictitious UAI), half-boarder. Her card holds:

- PLUM: a monthly student pass for zones 1-2 (FF contract), a 10-journey carnet with 7 left
  (compact contract, tariff type 20, journeys in the counter file), her last bus validation.
- Ma région numérique: the two digital services she enabled, a 20 € load and a canteen payment.
- Cursus: her student record with free school transport, her ring-fenced aid, a canteen meal.
- Mes droits pour l'emploi: her situation and one right (mobility aid), and the Mission locale's
  consultation of it.

No name, birth date or address is written on the chip: the name is printed on the card body, and
the profile (school pupil) with its end date is all the transit application needs.

:func:`sample_card` builds the records by encoding these dicts with the card schema, exactly as a
desk station would; :func:`decode_card` reads a whole card image back. Both are pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from card_schema.errors import SchemaError
from card_schema.layout import CARD_LAYOUT, CardLayout
from card_schema.records import decode_record, encode_record, record_type

CardImage = dict[str, dict[str, list[bytes]]]
"""application name -> file name -> records (raw bytes, record 1 first)."""

SCHOOL_UAI = "0801234G"  # fictitious lycée in Amiens
MONTHLY_PASS_TARIFF = (
    0x0FF1  # contract list: exploitation 0, tariff type FF (FF layout), priority 1
)
CARNET_TARIFF = 0x0202  # contract list: exploitation 0, tariff type 20 (compact layout), priority 2

SAMPLE_RECORDS: Mapping[str, Mapping[str, list[dict[str, Any]]]] = {
    "plum": {
        "environment": [
            {
                "EnvApplicationVersionNumber": 1,
                "EnvNetworkId": 250000,
                "EnvApplicationIssuerId": 1,
                "EnvApplicationValidityEndDate": "2031-08-31",
                "HolderProfiles": [
                    {
                        "HolderProfileNetworkId": 250000,
                        "HolderProfileNumber": 1,  # scolaire
                        "HolderProfileDate": "2027-08-31",
                    }
                ],
                "HolderData": {
                    "HolderDataCardStatus": 2,  # personalised
                    "HolderDataProfileStartDate1": "2026-09-01",
                },
            }
        ],
        "events": [
            {
                "EventDateStamp": "2026-11-27",
                "EventTimeStamp": "07:42",
                "EventNetworkId": 250000,
                "EventCode": 0x11,  # urban bus, entry
                "EventServiceProvider": 1,
                "EventSerialNumber": 4242,
                "EventLocationId": 1234,
                "EventDevice": 515,
                "EventRouteNumber": 1,
                "EventContractPointer": 1,
                "EventData": {
                    "EventDataDateFirstStamp": "2026-11-27",
                    "EventDataTimeFirstStamp": "07:42",
                },
            }
        ],
        "contracts": [
            {
                "_layout": "FF",
                "ContractNetworkId": 250000,
                "ContractProvider": 1,
                # Product codes are the `card_code`s of terminal/fares/data/default_tariff.json.
                "ContractTariff": 30,  # PASS_MOIS_ETUDIANT_1Z: student monthly pass, 1 zone
                "ContractSerialNumber": 123456,
                "ContractCustomerInfo": {"ContractCustomerProfile": 1},
                "ContractPriceAmount": 3200,
                "ContractValidityInfo": {
                    "ContractValidityStartDate": "2026-11-01",
                    "ContractValidityEndDate": "2026-11-30",
                    "ContractValidityZones": [1],
                },
                "ContractSaleData": {
                    "ContractSaleDate": "2026-10-28",
                    "ContractSaleAgent": 1,
                    "ContractSaleDevice": 301,
                },
                "ContractStatus": 1,
            },
            {
                "_layout": "20",
                "ContractProvider": 1,
                "ContractTariff": 2,  # CARNET_10: 10-journey carnet
                "ContractSerialNumber": 123457,
                "ContractPassengerClass": 1,
                "ContractValidityInfo": {
                    "ContractValidityStartDate": "2026-09-01",
                    "ContractValidityEndDate": "2027-08-31",
                },
                "ContractStatus": 1,
                "ContractData": {
                    "ContractZones": [1, 2],
                    "ContractSaleDate": "2026-09-02",
                    "ContractSaleDevice": 301,
                    "ContractSaleAgent": 1,
                    "ContractPayMethod": 0x90,  # cash
                    "ContractPriceAmount": 1450,
                    "ContractReceiptDelivered": 0,
                    "ContractSold": 10,
                    "ContractDebitSold": 1,
                },
            },
        ],
        "counters": [{f"counter_{i}": (7 if i == 2 else 0) for i in range(1, 10)}],
        "contract_list": [
            {
                "BestContracts": [
                    {
                        "BestContractNetworkId": 250000,
                        "BestContractTariff": MONTHLY_PASS_TARIFF,
                        "BestContractPointer": 1,
                    },
                    {
                        "BestContractNetworkId": 250000,
                        "BestContractTariff": CARNET_TARIFF,
                        "BestContractPointer": 2,
                    },
                ]
            }
        ],
    },
    "wallet": {
        "services": [
            {
                "version": 1,
                "enabled": ["my_menu_my_school", "realtime_transit"],
                "updated": "2026-09-02",
            }
        ],
        "sv_load_log": [
            {
                "date": "2026-11-02",
                "free_1": 0,
                "kvc": 1,
                "free_2": 0,
                "balance": 2350,
                "amount": 2000,
                "time": "17:05",
                "sam_id": 0x1A2B3C4D,
                "sam_tnum": 41,
                "sv_tnum": 12,
            }
        ],
        "sv_debit_log": [
            {
                "amount": -60,
                "date": "2026-11-26",
                "time": "12:31",
                "kvc": 1,
                "sam_id": 0x0C0FFEE0,
                "sam_tnum": 7,
                "balance": 2290,
                "sv_tnum": 13,
            }
        ],
    },
    "cursus": {
        "student": [
            {
                "version": 1,
                "school_uai": SCHOOL_UAI,
                "level": "premiere",
                "boarding": "half_board",
                "valid_from": "2026-09-01",
                "valid_until": "2027-07-04",
                "school_transport": "free",
                "transport_network_id": 250000,
                "transport_zones": [1, 2],
            }
        ],
        "aid_counters": [
            {
                "books_equipment": 5500,
                "sport_leisure": 3000,
                "canteen": 12160,
                **{f"counter_{i}": 0 for i in range(4, 9)},
                "last_action": 0,
            }
        ],
        "canteen_log": [
            {
                "served_at": "2026-11-26T12:31",
                "school_uai": SCHOOL_UAI,
                "service": "lunch",
                "funder": "region",
                "aid_amount": 320,
                "wallet_amount": 60,
                "terminal_id": 17,
            }
        ],
    },
    "employment": {
        "situation": [
            {
                "version": 1,
                "age_band": "16-17",
                "status": "student",
                "valid_from": "2026-09-01",
                "valid_until": "2027-08-31",
                "referent": "mission_locale",
            }
        ],
        "rights": [
            {
                "right": "mobility_aid",
                "status": "open",
                "valid_from": "2026-10-01",
                "valid_until": "2027-09-30",
                "unit": "eurocents",
                "granted": 20000,
                "remaining": 20000,
                "partner": "mission_locale",
                "reference": 20261234,
            }
        ],
        "consultation_log": [
            {
                "consulted_at": "2026-10-01T10:15",
                "partner": "mission_locale",
                "partner_site": 4021,
                "read": ["situation", "right_1"],
                "terminal_id": 5,
            }
        ],
    },
}


def contract_tariffs(contract_list: Mapping[str, Any]) -> dict[int, int]:
    """Contract record number -> tariff announced for it by a decoded contract list."""
    tariffs: dict[int, int] = {}
    for entry in contract_list.get("BestContracts", []):
        pointer, tariff = entry.get("BestContractPointer"), entry.get("BestContractTariff")
        if isinstance(pointer, int) and isinstance(tariff, int):
            tariffs.setdefault(pointer, tariff)
    return tariffs


def sample_card(layout: CardLayout = CARD_LAYOUT) -> CardImage:
    """The sample card's content: every file of every application, records as raw bytes.

    Records not used are all zero, as on a fresh card.

    Raises:
        SchemaError: a sample record does not fit its layout (a bug in this module).
    """
    image: CardImage = {}
    for app in layout.applications:
        image[app.name] = {}
        wanted = SAMPLE_RECORDS.get(app.name, {})
        tariffs = contract_tariffs(wanted.get("contract_list", [{}])[0])
        for file in app.files:
            records = [bytes(file.record_size)] * file.record_count
            values = wanted.get(file.name, [])
            if len(values) > file.record_count:
                raise SchemaError(f"{len(values)} records for {file.record_count}", field=file.name)
            for index, record in enumerate(values):
                tariff = tariffs.get(index + 1) if file.record_type == "plum.contract" else None
                records[index] = encode_record(file.record_type, record, tariff=tariff)
            image[app.name][file.name] = records
    return image


def decode_card(image: CardImage, layout: CardLayout = CARD_LAYOUT) -> dict[str, Any]:
    """Decode a card image: application -> file -> list of (record number, decoded record).

    All-zero records are left out (never written). A contract is decoded with the layout its
    contract-list entry announces.
    """
    decoded: dict[str, Any] = {}
    for app in layout.applications:
        files = image.get(app.name, {})
        tariffs: dict[int, int] = {}
        if "contract_list" in files and any(files["contract_list"][0]):
            tariffs = contract_tariffs(
                decode_record("plum.contract_list", files["contract_list"][0])
            )
        decoded[app.name] = {}
        for file in app.files:
            record_type(file.record_type)  # fail early on a layout naming an unknown type
            rows = []
            for number, raw in enumerate(files.get(file.name, []), start=1):
                if not any(raw):
                    continue
                tariff = tariffs.get(number) if file.record_type == "plum.contract" else None
                rows.append((number, decode_record(file.record_type, raw, tariff=tariff)))
            decoded[app.name][file.name] = rows
    return decoded
