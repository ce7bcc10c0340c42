"""The demo's region: stations, terminals, schools and the people who hold a card.

Everything is fictitious and deterministic: :func:`make_holders` draws the people from a
:class:`random.Random` seeded by ``--seed``. The figures (prices, aid amounts) are those of the
default tariff and canteen price list, which are examples, not the Region's.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from terminal.fares.model import GateKind, Mode, Place

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 11, 27)  # a Friday inside the school year: school transport applies
DAY_START = time(6, 0)
DAY_END = time(21, 0)
SCHOOL_YEAR = "2026-2027"


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A Paris wall-clock instant of the demo day."""
    return datetime.combine(DAY, time(hour, minute, second), tzinfo=PARIS)


class TerminalRole(enum.Enum):
    """What a demo terminal is."""

    DESK = "desk"
    GATE = "gate"
    COACH = "coach"
    BIKE_SHELTER = "bike_shelter"
    CANTEEN = "canteen"


@dataclass(frozen=True)
class TerminalSpec:
    """One terminal of the demo.

    Attributes:
        terminal_id: its id at the backend (and in its journal).
        role: what it is.
        label: French name shown in the report.
        place: where a gate, coach validator or shelter door stands.
        school_uai: the school of a canteen till.
        sam_serial: its SAM's serial (4 bytes).
        operator: the transit operator its taps are attributed to.
    """

    terminal_id: str
    role: TerminalRole
    label: str
    sam_serial: bytes
    place: Place | None = None
    school_uai: str | None = None
    operator: str | None = None

    @property
    def backend_kind(self) -> str:
        """The backend's terminal kind."""
        return {
            TerminalRole.DESK: "desk",
            TerminalRole.GATE: "gate",
            TerminalRole.COACH: "gate",
            TerminalRole.BIKE_SHELTER: "bike_shelter",
            TerminalRole.CANTEEN: "canteen",
        }[self.role]

    @property
    def gate_kind(self) -> GateKind:
        """The validator mode."""
        return GateKind.BIKE_SHELTER if self.role is TerminalRole.BIKE_SHELTER else GateKind.GATE


LILLE, BASSIN, CARS = 250001, 250002, 250003
OPERATORS = {LILLE: "ilevia", BASSIN: "tadao", CARS: "cars-hdf"}
SCHOOLS = {
    "0801234G": "Lycée de la Somme, Amiens",
    "0590001A": "Collège du Nord, Lille",
}


def _gate(tid: str, label: str, station: int, zone: int, network: int, sam: int) -> TerminalSpec:
    return TerminalSpec(
        tid,
        TerminalRole.GATE,
        label,
        sam.to_bytes(4, "big"),
        Place(station_id=station, zone=zone, network_id=network, mode=Mode.URBAN),
        operator=OPERATORS[network],
    )


DESK = TerminalSpec(
    "DESK-LILLE-1", TerminalRole.DESK, "Accueil Région, Lille", bytes.fromhex("5A000100")
)
FLANDRES = _gate("GATE-101", "Lille-Flandres (métro)", 101, 1, LILLE, 0x5A000101)
REPUBLIQUE = _gate("GATE-102", "République-Beaux-Arts (métro)", 102, 1, LILLE, 0x5A000102)
PORTE_POSTES = _gate("GATE-103", "Porte des Postes (métro)", 103, 1, LILLE, 0x5A000103)
LENS = _gate("GATE-201", "Lens Gare (bus Tadao)", 201, 2, BASSIN, 0x5A000201)
LIEVIN = _gate("GATE-202", "Liévin Centre (bus Tadao)", 202, 2, BASSIN, 0x5A000202)
COACH_AMIENS = TerminalSpec(
    "CAR-401",
    TerminalRole.COACH,
    "Car scolaire Poix — Amiens (ligne 41)",
    bytes.fromhex("5A000401"),
    Place(station_id=401, zone=4, network_id=CARS, mode=Mode.COACH, line_id=41),
    operator=OPERATORS[CARS],
)
COACH_LILLE = TerminalSpec(
    "CAR-402",
    TerminalRole.COACH,
    "Car scolaire Armentières — Lille (ligne 42)",
    bytes.fromhex("5A000402"),
    Place(station_id=402, zone=1, network_id=CARS, mode=Mode.COACH, line_id=42),
    operator=OPERATORS[CARS],
)
SHELTER = TerminalSpec(
    "ABRI-601",
    TerminalRole.BIKE_SHELTER,
    "Abri vélo de Lille-Flandres",
    bytes.fromhex("5A000601"),
    Place(station_id=601, zone=1, network_id=LILLE, mode=Mode.URBAN),
    operator=OPERATORS[LILLE],
)
CANTEEN_AMIENS = TerminalSpec(
    "CANTINE-0801234G-1",
    TerminalRole.CANTEEN,
    "Cantine du lycée de la Somme",
    bytes.fromhex("5A000701"),
    school_uai="0801234G",
)
CANTEEN_LILLE = TerminalSpec(
    "CANTINE-0590001A-1",
    TerminalRole.CANTEEN,
    "Cantine du collège du Nord",
    bytes.fromhex("5A000702"),
    school_uai="0590001A",
)
TERMINALS = (
    DESK,
    FLANDRES,
    REPUBLIQUE,
    PORTE_POSTES,
    LENS,
    LIEVIN,
    COACH_AMIENS,
    COACH_LILLE,
    SHELTER,
    CANTEEN_AMIENS,
    CANTEEN_LILLE,
)
OFFLINE_TERMINAL = PORTE_POSTES
OFFLINE_FROM, OFFLINE_UNTIL = at(10), at(11)


class HolderKind(enum.Enum):
    """The kinds of card holders of the demo, with their French label."""

    PUPIL = "eleve"
    STUDENT = "etudiant"
    JOB_SEEKER = "demandeur_emploi"
    SENIOR = "senior"
    WORKER = "actif"
    ANONYMOUS = "anonyme"

    @property
    def label(self) -> str:
        """French label."""
        return {
            "eleve": "Lycéens et collégiens (Cursus, aides)",
            "etudiant": "Étudiants",
            "demandeur_emploi": "Demandeurs d'emploi",
            "senior": "Seniors",
            "actif": "Actifs (abonnés)",
            "anonyme": "Cartes anonymes",
        }[self.value]


SHARES = {
    HolderKind.PUPIL: 0.36,
    HolderKind.STUDENT: 0.16,
    HolderKind.JOB_SEEKER: 0.14,
    HolderKind.SENIOR: 0.12,
    HolderKind.WORKER: 0.10,
    HolderKind.ANONYMOUS: 0.12,
}

GIVEN = [
    "Léa",
    "Lucas",
    "Chloé",
    "Hugo",
    "Manon",
    "Nathan",
    "Inès",
    "Théo",
    "Camille",
    "Louis",
    "Jade",
    "Enzo",
    "Emma",
    "Jules",
    "Zoé",
    "Rayan",
    "Lina",
    "Noah",
    "Sarah",
    "Arthur",
]
FAMILY = [
    "Lefebvre",
    "Dubois",
    "Leroy",
    "Lemaire",
    "Delattre",
    "Dupont",
    "Carpentier",
    "Duhamel",
    "Vasseur",
    "Deprez",
    "Lecomte",
    "Fournier",
    "Wattez",
    "Delcroix",
    "Hennebert",
    "Vanhove",
]


@dataclass
class Holder:
    """One person of the demo and what their card will carry.

    Attributes:
        index: 0-based number.
        kind: holder kind.
        serial: the card serial (8 bytes).
        given_name, family_name: ``None`` for an anonymous card.
        applications: card applications.
        product_codes: PLUM products sold at the desk (tariff card codes).
        wallet_load: wallet reload at the desk, eurocents (0 = none).
        school_uai: a pupil's school.
        canteen_aid: a pupil's canteen aid, eurocents.
        books_aid: a pupil's books and equipment aid, eurocents.
        bike: rides a bike to the station shelter.
        lost: will lose the card at midday.
        holder_id: the backend's id, once created.
    """

    index: int
    kind: HolderKind
    serial: bytes
    given_name: str | None
    family_name: str | None
    applications: list[str]
    product_codes: list[int] = field(default_factory=list)
    wallet_load: int = 0
    school_uai: str | None = None
    canteen_aid: int = 0
    books_aid: int = 0
    bike: bool = False
    lost: bool = False
    holder_id: int | None = None

    @property
    def serial_hex(self) -> str:
        """The serial as the backend writes it."""
        return self.serial.hex().upper()


def kind_counts(total: int) -> dict[HolderKind, int]:
    """How many holders of each kind: at least one each, the rest by share (largest remainder)."""
    kinds = list(SHARES)
    if total < len(kinds) + 2:
        raise ValueError(f"au moins {len(kinds) + 2} porteurs / at least {len(kinds) + 2} holders")
    counts = dict.fromkeys(kinds, 1)
    counts[HolderKind.PUPIL] = 3  # one per school and a second Amiens pupil, at least
    rest = total - sum(counts.values())
    quotas = {k: rest * SHARES[k] for k in kinds}
    for kind in kinds:
        counts[kind] += int(quotas[kind])
    left = total - sum(counts.values())
    for kind in sorted(kinds, key=lambda k: quotas[k] - int(quotas[k]), reverse=True)[:left]:
        counts[kind] += 1
    return counts


LOST_CARDS = 3


def make_holders(total: int, rng: random.Random) -> list[Holder]:
    """The people of the demo, deterministic for a seed.

    Pupils alternate between the two schools; three cards of non-pupils are lost at midday.
    """
    holders: list[Holder] = []
    serials: set[bytes] = set()
    for kind, count in kind_counts(total).items():
        for n in range(count):
            serial = b""
            while not serial or serial in serials:
                serial = bytes.fromhex("4844") + rng.randbytes(6)
            serials.add(serial)
            anonymous = kind is HolderKind.ANONYMOUS
            holder = Holder(
                index=len(holders),
                kind=kind,
                serial=serial,
                given_name=None if anonymous else rng.choice(GIVEN),
                family_name=None if anonymous else rng.choice(FAMILY),
                applications=["plum", "wallet"],
            )
            _equip(holder, n, rng)
            holders.append(holder)
    candidates = [h for h in holders if h.kind is not HolderKind.PUPIL]
    for holder in rng.sample(candidates, min(LOST_CARDS, len(candidates))):
        holder.lost = True
    return holders


def _equip(holder: Holder, n: int, rng: random.Random) -> None:
    """What the desk sells or grants to each kind."""
    kind = holder.kind
    if kind is HolderKind.PUPIL:
        holder.applications = ["plum", "wallet", "cursus"]
        holder.school_uai = "0801234G" if n % 2 == 0 else "0590001A"
        # Some pupils have little canteen aid left: the wallet pays the rest of the meal.
        holder.canteen_aid = rng.choice([12000, 12000, 8000, 200])
        holder.books_aid = 5000
        holder.wallet_load = rng.choice([500, 1000])
    elif kind is HolderKind.STUDENT:
        holder.product_codes = [30]  # PASS_MOIS_ETUDIANT_1Z
        holder.bike = n % 2 == 0
        holder.wallet_load = 1000
    elif kind is HolderKind.JOB_SEEKER:
        holder.applications = ["plum", "wallet", "employment"]
        holder.product_codes = [31]  # PASS_MOIS_SOLIDAIRE
    elif kind is HolderKind.SENIOR:
        holder.product_codes = [2] if n % 2 == 0 else []  # CARNET_10, or the wallet
        holder.wallet_load = 2000
    elif kind is HolderKind.WORKER:
        holder.product_codes = [20] if n % 2 == 0 else [12]  # annual (bike) or monthly 4 zones
        holder.bike = n % 2 == 0
    else:
        holder.product_codes = [2] if n % 2 else []
        holder.wallet_load = 1500
