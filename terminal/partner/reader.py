"""The employment partners' reader: « Mes droits pour l'emploi » read with the holder present.

A partner agency (France Travail, Mission Locale, a training body, a pension fund: the
``PARTNERS`` table of ``card_schema.records.employment``) reads the holder's situation and rights,
and the card keeps a consultation record of it (who, which site, when, what was read), appended
**in a secure session** with the partner's debit key of the employment application, journaled
and uploaded like every other session (``docs/partner.md``).

What it cannot do, and how that is enforced:

- It selects **only** ``HDF.EMPLOI``: no other application is ever selected, so no PLUM event
  or Cursus record is read (the card's reads are free, so this is the reader's own rule; the
  tests check every APDU it sends).
- Its SAM holds only the employment application's debit key (``partner_key_refs``): it cannot
  open a session on another application, nor a load session on the employment application, so
  it cannot write rights (``rights`` is updated with the load key only).
- The holder can refuse: then the reader sends nothing to the card, shows nothing and writes
  nothing.
- The rights are shown **only after** the consultation record is committed on the card: a
  reading the holder cannot see in their log is never shown to the partner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from card_schema.crypto import KeyRef, KeyRole
from card_schema.errors import SchemaError
from card_schema.records import decode_record, encode_record
from card_schema.records.employment import PARTNERS
from card_schema.uploads.records import TransactionIntent, TransactionKind
from firmware_host.readers.base import Reader, ReaderError
from terminal.canteen.screen import Screen
from terminal.engine import (
    APDUCounter,
    CalypsoCard,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMResource,
    SessionOpening,
    sam_unreachable,
)
from terminal.engine.journaled import SessionOutcome, run_journaled_session
from terminal.fares.local_time import to_local
from terminal.journal.store import Journal

log = logging.getLogger(__name__)

EMPLOYMENT = "employment"
READ_FILES = ("situation", "rights", "consultation_log")
BLANK_RECORD = bytes(29)
TRACE_KEY_REF = KeyRef("trace", KeyRole.DEBIT, 1)  # the SAM's traceable-signature key

PARTNER_NAMES_FR = {
    "none": "aucun",
    "france_travail": "France Travail",
    "mission_locale": "Mission Locale",
    "maison_emploi": "Maison de l'emploi",
    "cap_emploi": "Cap emploi",
    "training_body": "organisme de formation",
    "pension_fund": "caisse de retraite",
    "region": "Région Hauts-de-France",
    "apec": "Apec",
    "chamber": "chambre consulaire",
}
STATUS_FR = {
    "unknown": "non renseignée",
    "job_seeker": "demandeur d'emploi",
    "employee": "salarié",
    "apprentice": "apprenti",
    "student": "étudiant",
    "vocational_trainee": "stagiaire de la formation professionnelle",
    "self_employed": "travailleur indépendant",
    "senior": "senior",
    "inactive": "sans activité",
}
RIGHT_FR = {
    "training_account": "Compte personnel de formation",
    "mobility_aid": "Aide à la mobilité",
    "business_creation": "Aide à la création d'entreprise",
    "retraining": "Reconversion",
    "skills_assessment": "Bilan de compétences",
    "vae": "Validation des acquis de l'expérience",
    "apprenticeship": "Apprentissage",
    "internship_aid": "Aide au stage",
    "pension_info": "Information retraite",
    "driving_licence_aid": "Aide au permis de conduire",
    "childcare_aid": "Aide à la garde d'enfants",
}
RIGHT_STATUS_FR = {
    "pending": "en attente",
    "open": "ouvert",
    "used": "utilisé",
    "expired": "expiré",
    "suspended": "suspendu",
    "cancelled": "annulé",
}


def partner_key_refs(version: int = 1) -> list[KeyRef]:
    """The master keys of a partner's SAM: the employment debit key and the traceability key.

    No load or issuer key, and no key of another application: the SAM cannot open a session to
    write rights, nor any session outside « Mes droits pour l'emploi ».
    """
    return [KeyRef(EMPLOYMENT, KeyRole.DEBIT, version), TRACE_KEY_REF]


class ConsultationReason:
    """Why a consultation ended as it did (French text for the partner's screen)."""

    SHOWN = "Droits lus et consultation enregistrée sur la carte"
    REFUSED = "Lecture refusée par le titulaire : aucune donnée lue"
    NO_APPLICATION = "Pas d'application « Mes droits pour l'emploi » sur cette carte"
    INVALIDATED = "Application « Mes droits pour l'emploi » invalidée"
    NOT_LOGGED = "Consultation non enregistrée sur la carte : aucune donnée affichée, réessayer"
    TAP_AGAIN = "Carte retirée trop tôt : la présenter à nouveau"
    SAM_UNAVAILABLE = "Module de sécurité indisponible : lecture impossible"
    CARD_ERROR = "Carte illisible ou refusée"


@dataclass
class Right:
    """One right as shown to the partner."""

    right: str
    status: str
    valid_from: str | None
    valid_until: str | None
    unit: str
    granted: int
    remaining: int
    partner: str

    def line(self) -> str:
        """The right in one French line."""
        name = RIGHT_FR.get(self.right, str(self.right))
        status = RIGHT_STATUS_FR.get(self.status, str(self.status))
        if self.unit == "eurocents":
            amount = f"{_euros(self.remaining)} restants sur {_euros(self.granted)}"
        elif self.unit == "hours":
            amount = f"{self.remaining} h restantes sur {self.granted} h"
        else:
            amount = "sans montant"
        validity = f"du {_fr_date(self.valid_from)} au {_fr_date(self.valid_until)}"
        by = PARTNER_NAMES_FR.get(self.partner, str(self.partner))
        return f"{name} : {status}, {amount}, {validity} ({by})"


@dataclass
class Consultation:
    """What the reader did for one holder, and what the partner's screen shows.

    Attributes:
        reason: one of :class:`ConsultationReason`.
        situation: the decoded situation record (only when shown).
        rights: the rights (only when shown).
        outcome: the consultation log session, when one ran.
        lines: the French lines shown.
        card_apdus: APDUs sent to the card.
    """

    reason: str
    situation: dict[str, Any] | None = None
    rights: list[Right] = field(default_factory=list)
    outcome: SessionOutcome | None = None
    lines: list[str] = field(default_factory=list)
    card_apdus: int = 0

    @property
    def shown(self) -> bool:
        """Whether the partner saw the holder's data."""
        return self.reason == ConsultationReason.SHOWN


class PartnerReader:
    """A partner agency's desk reader.

    Args:
        card_reader: the holder's card reader.
        sam_reader: the partner SAM's reader (employment debit key only).
        journal: the reader's journal (opened as owner), uploaded like every terminal's.
        partner: the agency, a name of the ``PARTNERS`` table (``"mission_locale"``...).
        site: the agency's site number (16 bits), written in the consultation record.
        terminal_number: this desk's number (16 bits), written in the record.
        clock: the time source (timezone-aware).
        screen: where the partner reads the result.
    """

    def __init__(
        self,
        card_reader: Reader,
        sam_reader: Reader,
        journal: Journal,
        *,
        partner: str,
        site: int,
        terminal_number: int,
        clock: Callable[[], datetime],
        screen: Screen,
    ) -> None:
        if partner not in PARTNERS.values() or partner == "none":
            raise ValueError(f"unknown partner {partner!r}")
        if not 0 <= site < 1 << 16 or not 0 <= terminal_number < 1 << 16:
            raise ValueError("site and terminal number are 16-bit numbers")
        self.reader = card_reader
        self.sam = SAMResource(sam_reader)
        self.journal = journal
        self.partner = partner
        self.site = site
        self.terminal_number = terminal_number
        self.clock = clock
        self.screen = screen
        self.step_hook: Callable[[str], None] | None = None

    def consult(self, *, holder_agrees: bool) -> Consultation:
        """Read the rights of the card in the field, if the holder agrees, and log the reading.

        Never raises for a card, reader or SAM problem.

        Raises:
            JournalError: the journal itself failed (disk).
        """
        if not holder_agrees:
            # Nothing is sent to the card: nothing read, nothing written.
            result = Consultation(ConsultationReason.REFUSED)
            return self._show(result)
        counter = APDUCounter()
        self.sam.use_counter(counter)
        try:
            result = self._consult(counter)
        except (CommunicationError, ReaderError) as exc:
            if sam_unreachable(exc):
                result = Consultation(ConsultationReason.SAM_UNAVAILABLE)
            else:
                log.info("card left during the reading: %s", exc)
                result = Consultation(ConsultationReason.TAP_AGAIN)
        except (EngineError, SchemaError) as exc:
            log.warning("card refused or unreadable: %s", exc)
            result = Consultation(ConsultationReason.CARD_ERROR)
        result.card_apdus = counter.card
        return self._show(result)

    def _consult(self, counter: APDUCounter) -> Consultation:
        now = self.clock()
        atr = self.reader.atr if self.reader.connected else self.reader.connect()
        card = CalypsoCard(atr=atr)
        tm = CardTransactionManager(self.reader, card, self.sam, counter=counter)
        app = tm.process_select_application(EMPLOYMENT, reads=READ_FILES)
        if app is None:
            return Consultation(ConsultationReason.NO_APPLICATION)
        if app.invalidated:
            return Consultation(ConsultationReason.INVALIDATED)
        tx_counter = tm.process_get_traceability()
        before = _witness(app.file_records("consultation_log"))
        self.journal.resolve(card.serial, tx_counter, before)
        situation = _decode(app.record("situation"), "employment.situation")
        rights = [r for r in (_right(raw) for raw in app.file_records("rights")) if r is not None]
        read_items = ["situation"] + [
            f"right_{i}" for i in range(1, len(app.file_records("rights")) + 1)
        ]
        local = to_local(now).replace(tzinfo=None, second=0, microsecond=0)
        written = encode_record(
            "employment.consultation",
            {
                "consulted_at": local.isoformat(timespec="minutes"),
                "partner": self.partner,
                "partner_site": self.site,
                "read": read_items,
                "terminal_id": self.terminal_number,
            },
        )

        def prepare(opening: SessionOpening) -> None:
            tm.prepare_append_record("consultation_log", written)

        def intent(opening: SessionOpening) -> TransactionIntent:
            return TransactionIntent(
                kind=TransactionKind.CONSULTATION,
                application=EMPLOYMENT,
                card_serial=card.serial,
                card_tx_counter=opening.transaction_counter,
                occurred_at=now,
                station_id=self.site,
                last_events=before,
                written_event=written,
            )

        outcome = run_journaled_session(
            tm, self.sam, self.journal, prepare, intent, step=self._step
        )
        if not outcome.committed:
            if sam_unreachable(outcome.cause):
                reason = ConsultationReason.SAM_UNAVAILABLE
            else:
                reason = ConsultationReason.NOT_LOGGED
            return Consultation(reason, outcome=outcome)
        try:
            tm.process_ratification()
        except EngineError as exc:
            log.info("ratification not delivered: %s", exc)
        return Consultation(
            ConsultationReason.SHOWN, situation=situation, rights=rights, outcome=outcome
        )

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.step_hook(name)

    def _show(self, result: Consultation) -> Consultation:
        lines = [result.reason]
        if result.shown:
            situation = result.situation
            if situation is not None:
                status = STATUS_FR.get(str(situation["status"]), str(situation["status"]))
                referent = PARTNER_NAMES_FR.get(
                    str(situation["referent"]), str(situation["referent"])
                )
                lines.append(
                    f"Situation : {status}, à revoir le {_fr_date(situation['valid_until'])}, "
                    f"référent {referent}"
                )
            else:
                lines.append("Situation : non renseignée")
            if result.rights:
                lines += [f"- {right.line()}" for right in result.rights]
            else:
                lines.append("Aucun droit ouvert sur la carte")
        result.lines = lines
        self.screen.show(lines)
        return result


def _witness(records: Sequence[bytes]) -> tuple[bytes, ...]:
    return tuple(r for r in records if r != BLANK_RECORD)


def _decode(raw: bytes | None, record_type: str) -> dict[str, Any] | None:
    if raw is None or raw == BLANK_RECORD:
        return None
    try:
        return decode_record(record_type, raw)
    except SchemaError:
        return None


def _right(raw: bytes) -> Right | None:
    fields = _decode(raw, "employment.right")
    if fields is None:
        return None
    return Right(
        right=str(fields["right"]),
        status=str(fields["status"]),
        valid_from=fields["valid_from"],
        valid_until=fields["valid_until"],
        unit=str(fields["unit"]),
        granted=int(fields["granted"]),
        remaining=int(fields["remaining"]),
        partner=str(fields["partner"]),
    )


def _euros(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d} €"


def _fr_date(iso: str | None) -> str:
    if not iso:
        return "—"
    year, month, day = str(iso).split("-")
    return f"{day}/{month}/{year}"
