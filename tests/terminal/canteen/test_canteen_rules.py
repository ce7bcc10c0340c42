"""decide_meal, table-driven: school, school year, one meal per service, aid then wallet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest
from canteen_builders import (
    DINNER_TIME,
    LUNCH_PRICE,
    LUNCH_TIME,
    OTHER_SCHOOL,
    POS,
    SCHOOL,
    YEAR_END,
    YEAR_START,
    aid,
    meal,
    student,
    tariff,
)

from terminal.canteen.model import (
    AidCounters,
    Boarding,
    CanteenLogEntry,
    Funder,
    MealService,
    Student,
    WalletDebit,
)
from terminal.canteen.reasons import SCREEN_TEXT, MealReason
from terminal.canteen.rules import MealDecision, decide_meal
from terminal.fares.local_time import PARIS


@dataclass
class Case:
    name: str
    reason: MealReason
    student: Student | None = field(default_factory=student)
    aid: AidCounters = field(default_factory=lambda: aid(10_000))
    wallet: int | None = 500
    log: tuple[CanteenLogEntry, ...] = ()
    now: datetime = LUNCH_TIME
    aid_debit: int = 0
    wallet_debit: int = 0


CASES = [
    Case("aid covers all", MealReason.SERVED, aid_debit=LUNCH_PRICE),
    Case(
        "aid covers part, wallet the rest",
        MealReason.SERVED,
        aid=aid(320),
        aid_debit=320,
        wallet_debit=60,
    ),
    Case(
        "no aid, wallet pays",
        MealReason.SERVED,
        aid=aid(0),
        wallet_debit=LUNCH_PRICE,
    ),
    Case(
        "aid exactly the price",
        MealReason.SERVED,
        aid=aid(LUNCH_PRICE),
        wallet=0,
        aid_debit=LUNCH_PRICE,
    ),
    Case("insufficient total", MealReason.INSUFFICIENT_BALANCE, aid=aid(300), wallet=79),
    Case(
        "no wallet on the card, aid short", MealReason.INSUFFICIENT_BALANCE, aid=aid(1), wallet=None
    ),
    Case(
        "no wallet on the card, aid enough",
        MealReason.SERVED,
        aid=aid(LUNCH_PRICE),
        wallet=None,
        aid_debit=LUNCH_PRICE,
    ),
    Case(
        "ring-fenced: books and sport aid never pay a meal",
        MealReason.INSUFFICIENT_BALANCE,
        aid=aid(0, books=50_000, sport=50_000),
        wallet=0,
    ),
    Case(
        "ring-fenced: books and sport untouched when canteen aid is short",
        MealReason.SERVED,
        aid=aid(100, books=50_000, sport=50_000),
        wallet=1_000,
        aid_debit=100,
        wallet_debit=280,
    ),
    Case("other school", MealReason.OTHER_SCHOOL, student=student(school=OTHER_SCHOOL)),
    Case("no student record", MealReason.NO_STUDENT_RECORD, student=None),
    Case(
        "school year not started",
        MealReason.OUT_OF_SCHOOL_YEAR,
        student=student(valid_from=date(2026, 11, 28)),
    ),
    Case(
        "school year over",
        MealReason.OUT_OF_SCHOOL_YEAR,
        student=student(valid_until=date(2026, 11, 26)),
    ),
    Case("school year unset", MealReason.OUT_OF_SCHOOL_YEAR, student=student(valid_from=None)),
    Case(
        "last day of the school year is inside",
        MealReason.SERVED,
        student=student(valid_until=date(2026, 11, 27)),
        aid_debit=LUNCH_PRICE,
    ),
    Case(
        "already taken this service",
        MealReason.ALREADY_SERVED,
        log=(meal(LUNCH_TIME - timedelta(minutes=40)),),
    ),
    Case(
        "breakfast today does not block lunch",
        MealReason.SERVED,
        log=(meal(LUNCH_TIME.replace(hour=7, minute=30), MealService.BREAKFAST),),
        aid_debit=LUNCH_PRICE,
    ),
    Case(
        "yesterday's lunch does not block today's",
        MealReason.SERVED,
        log=(meal(LUNCH_TIME - timedelta(days=1)),),
        aid_debit=LUNCH_PRICE,
    ),
    Case(
        "lunch in another school today does not block this school",
        MealReason.SERVED,
        log=(meal(LUNCH_TIME - timedelta(minutes=30), school=OTHER_SCHOOL),),
        aid_debit=LUNCH_PRICE,
    ),
    Case(
        "lunch logged behind two other entries still counts",
        MealReason.ALREADY_SERVED,
        log=(
            meal(LUNCH_TIME.replace(hour=7), MealService.BREAKFAST),
            meal(LUNCH_TIME - timedelta(minutes=50)),
            meal(LUNCH_TIME - timedelta(days=1)),
        ),
    ),
    Case("between services", MealReason.OUT_OF_SERVICE, now=LUNCH_TIME.replace(hour=15)),
    Case(
        "lunch window end is exclusive",
        MealReason.OUT_OF_SERVICE,
        now=LUNCH_TIME.replace(hour=14, minute=0),
    ),
    Case(
        "lunch window start is inclusive",
        MealReason.SERVED,
        now=LUNCH_TIME.replace(hour=11, minute=0),
        aid_debit=LUNCH_PRICE,
    ),
    Case("no dinner price for a half-boarder", MealReason.NO_TARIFF, now=DINNER_TIME),
    Case(
        "dinner for a boarder",
        MealReason.SERVED,
        student=student(boarding=Boarding.BOARDER),
        log=(meal(LUNCH_TIME),),
        now=DINNER_TIME,
        aid_debit=380,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_meal(case: Case) -> None:
    decision = decide_meal(
        case.student,
        case.aid,
        case.wallet,
        case.log,
        SCHOOL,
        tariff(),
        case.now,
        terminal_id=POS,
        wallet_log=[],
    )
    assert decision.reason is case.reason
    assert decision.message == SCREEN_TEXT[case.reason]
    assert decision.accepted is case.reason.serves
    assert (decision.aid_debit, decision.wallet_debit) == (case.aid_debit, case.wallet_debit)
    if decision.accepted:
        assert decision.aid_debit + decision.wallet_debit == decision.price
        assert decision.log_entry is not None
        assert decision.log_entry.aid_amount == case.aid_debit
        assert decision.log_entry.wallet_amount == case.wallet_debit
        assert decision.log_entry.school_uai == SCHOOL
        assert decision.log_entry.funder is (Funder.REGION if case.aid_debit else Funder.NONE)
    else:
        assert decision.log_entry is None


def test_served_meal_log_entry_is_the_tap_minute_in_paris_time() -> None:
    utc_tap = LUNCH_TIME.astimezone(PARIS).replace(second=42)
    decision = decide_meal(
        student(), aid(10_000), 0, [], SCHOOL, tariff(), utc_tap, terminal_id=POS
    )
    assert decision.log_entry is not None
    assert decision.log_entry.served_at == datetime(2026, 11, 27, 12, 5)
    assert decision.log_entry.service is MealService.LUNCH
    assert decision.log_entry.terminal_id == POS
    # The record round-trips through the card layout.
    raw = decision.log_entry.to_record()
    assert CanteenLogEntry.from_record(raw) == decision.log_entry


def test_receipt_line_in_french() -> None:
    decision = decide_meal(
        student(), aid(11_160), 1_000, [], SCHOOL, tariff(), LUNCH_TIME, terminal_id=POS
    )
    decision = MealDecision(
        decision.reason,
        decision.service,
        decision.day,
        price=380,
        aid_before=12_160,
        wallet_before=1_000,
        aid_debit=320,
        wallet_debit=60,
        log_entry=decision.log_entry,
    )
    assert decision.receipt_line() == (
        "Repas du 27/11 — aide cantine 3,20 € — porte-monnaie 0,60 € — reste aide 118,40 € "
        "— solde porte-monnaie 9,40 €"
    )


def test_receipt_line_aid_only_and_refusal() -> None:
    served = decide_meal(
        student(), aid(12_220), 0, [], SCHOOL, tariff(), LUNCH_TIME, terminal_id=POS
    )
    assert served.receipt_line() == "Repas du 27/11 — aide cantine 3,80 € — reste aide 118,40 €"
    refused = decide_meal(
        student(OTHER_SCHOOL), aid(12_220), 0, [], SCHOOL, tariff(), LUNCH_TIME, terminal_id=POS
    )
    assert refused.receipt_line() is None


def _wallet_debit(entry: CanteenLogEntry, amount: int | None = None) -> WalletDebit:
    return WalletDebit(
        at=entry.served_at,
        amount=entry.wallet_amount if amount is None else amount,
        balance=0,
        sv_tnum=1,
        sam_id=0x5A000001,
        sam_tnum=1,
        kvc=1,
    )


def _other_debit(at: datetime) -> WalletDebit:
    return WalletDebit(at=at, amount=150, balance=0, sv_tnum=1, sam_id=99, sam_tnum=2, kvc=1)


TORN = meal(LUNCH_TIME - timedelta(minutes=3), aid_amount=320, wallet_amount=60)
EARLIER = datetime(2026, 11, 20, 12, 0)
LATER = TORN.served_at + timedelta(minutes=1)

COMPLETION_CASES = [
    ("wallet part paid: already served", [_wallet_debit(TORN)], MealReason.ALREADY_SERVED),
    ("wallet log empty: part owed, paid now", [], MealReason.PAYMENT_COMPLETED),
    (
        "older debits only: part owed",
        [_other_debit(EARLIER), _other_debit(EARLIER), _other_debit(EARLIER)],
        MealReason.PAYMENT_COMPLETED,
    ),
    (
        "three newer debits: inconclusive, never charged twice",
        [_other_debit(LATER), _other_debit(LATER), _other_debit(LATER)],
        MealReason.ALREADY_SERVED,
    ),
    ("wallet log not read: never charged", None, MealReason.ALREADY_SERVED),
    (
        "debit of another amount is not this meal",
        [_wallet_debit(TORN, amount=61)],
        MealReason.PAYMENT_COMPLETED,
    ),
]


@pytest.mark.parametrize(
    ("wallet_log", "reason"),
    [(log, reason) for _, log, reason in COMPLETION_CASES],
    ids=[name for name, _, _ in COMPLETION_CASES],
)
def test_meal_whose_wallet_session_was_torn(
    wallet_log: list[WalletDebit] | None, reason: MealReason
) -> None:
    decision = decide_meal(
        student(),
        aid(10_000),
        500,
        [TORN],
        SCHOOL,
        tariff(),
        LUNCH_TIME,
        terminal_id=POS,
        wallet_log=wallet_log,
    )
    assert decision.reason is reason
    assert decision.log_entry is None  # the meal is on the card already: never logged twice
    assert decision.aid_debit == 0
    if reason is MealReason.PAYMENT_COMPLETED:
        assert decision.wallet_debit == 60
        assert decision.completes == TORN
        assert decision.receipt_line() == (
            "Repas du 27/11 — porte-monnaie 0,60 € — reste aide 100,00 € "
            "— solde porte-monnaie 4,40 €"
        )
    else:
        assert decision.wallet_debit == 0


def test_completion_with_an_empty_wallet_is_refused() -> None:
    decision = decide_meal(
        student(), aid(0), 10, [TORN], SCHOOL, tariff(), LUNCH_TIME, terminal_id=POS, wallet_log=[]
    )
    assert decision.reason is MealReason.INSUFFICIENT_BALANCE
    assert decision.wallet_debit == 0


def test_forced_service_overrides_the_clock() -> None:
    decision = decide_meal(
        student(boarding=Boarding.BOARDER),
        aid(1_000),
        0,
        [],
        SCHOOL,
        tariff(),
        LUNCH_TIME.replace(hour=15),
        terminal_id=POS,
        service=MealService.LUNCH,
    )
    assert decision.reason is MealReason.SERVED
    assert YEAR_START <= decision.day <= YEAR_END


def test_level_specific_price_wins() -> None:
    from terminal.canteen.tariff import load_tariff

    table = load_tariff()
    assert table.price(MealService.LUNCH, Boarding.HALF_BOARD, "seconde") == 380
    assert table.price(MealService.LUNCH, Boarding.HALF_BOARD, "sixieme") == 330
    assert table.price(MealService.DINNER, Boarding.HALF_BOARD, "seconde") is None
