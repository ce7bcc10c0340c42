"""The whole card in one declarative description: applications, files, access conditions, key roles.

The emulator (hardware/), the terminals and the backend all read :data:`CARD_LAYOUT`; nothing
else in the project hard-codes a LID, an SFI or a record count. ``docs/card-layout.md`` explains
every entry.

Model (Calypso, ISO 7816-4):
- The card has a master file (MF, LID 3F00) holding the ICC file (serial, traceability).
- Each application is a DF selectable by DF name (``00 A4 04 00``) and by LID from the MF
  (legacy field readers: ``94 A4 ...`` select DF then EF by file identifier).
- Files hold fixed-size records of 29 bytes (Calypso/Intercode record size).
- Reading is free (no key). Every modification happens inside a secure session opened with the key
  role the file requires for that operation; otherwise the card answers 6982.
- A file may show the data of another file instead of holding its own: a *simulated counter file*
  (Calypso EF type 8) is one counter of a counters file seen as a file of its own. PLUM's
  per-contract counter files 202A-202D are counters 1-4 of the common counter file 2069
  (:attr:`ApplicationLayout.simulated_counters`), so one counter is read through two files and
  can never disagree with itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from card_schema.crypto import KeyRole
from card_schema.errors import SchemaError

RECORD_SIZE = 29  # Calypso / Intercode record size, in bytes
COUNTER_SIZE = 3  # a Calypso counter is 3 bytes, big-endian, inside a 29-byte counter record
COUNTERS_PER_RECORD = RECORD_SIZE // COUNTER_SIZE  # 9 counters per counter-file record


class FileType(Enum):
    """Elementary file structures (Calypso file types)."""

    LINEAR = "linear"  # fixed records, updated in place
    CYCLIC = "cyclic"  # append puts the new record first and drops the oldest (event logs)
    COUNTERS = "counters"  # one record of up to 9 three-byte counters; increase/decrease by number
    SV_LOG = "sv_log"  # stored-value load or debit log, written only by SV commands
    SIMULATED_COUNTER = "simulated_counter"  # one counter of a COUNTERS file, as a file of its own


class Operation(Enum):
    """What a command does to a file; each needs the key role the file's access table names."""

    UPDATE = "update"  # Update Record / Write Record
    APPEND = "append"  # Append Record (cyclic files)
    INCREASE = "increase"
    DECREASE = "decrease"


@dataclass(frozen=True)
class FileLayout:
    """One elementary file of an application.

    Attributes:
        name: short domain name (``"contracts"``), unique within the application.
        lid: 2-byte file identifier (selection by path or from the DF).
        sfi: short file identifier (1..30) used by Read Record and the write commands.
        type: file structure.
        record_count: number of records.
        record_type: name of the record layout in :mod:`card_schema.records` (``"plum.contract"``).
        access: key role needed for each modifying operation; an operation absent here is refused.
        record_size: bytes per record (29 everywhere on this card, but 3 for a simulated counter).
        shares: for a simulated counter, the name of the counters file whose data it shows.
        counter_number: for a simulated counter, which counter of that file (1 = the first).
    """

    name: str
    lid: int
    sfi: int
    type: FileType
    record_count: int
    record_type: str
    access: dict[Operation, KeyRole] = field(default_factory=dict)
    record_size: int = RECORD_SIZE
    shares: str | None = None
    counter_number: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.sfi <= 30:
            raise SchemaError(f"SFI {self.sfi} outside 1..30", field=f"{self.name}.sfi")
        if not 0 <= self.lid <= 0xFFFF:
            raise SchemaError("LID is two bytes", field=f"{self.name}.lid")
        simulated = self.type is FileType.SIMULATED_COUNTER
        if simulated != (self.shares is not None):
            raise SchemaError(
                "a simulated counter (and only it) names the file it shares", field=self.name
            )
        if simulated and (
            not 1 <= self.counter_number <= COUNTERS_PER_RECORD
            or self.record_count != 1
            or self.record_size != COUNTER_SIZE
            or self.access
        ):
            raise SchemaError(
                f"a simulated counter is one {COUNTER_SIZE}-byte record showing counter 1.."
                f"{COUNTERS_PER_RECORD} of its counters file, and is read only",
                field=self.name,
            )

    def simulated_record(self, counters_record: bytes) -> bytes:
        """The one record of a simulated counter file: its counter, cut from the shared record.

        Args:
            counters_record: record 1 of the counters file named by :attr:`shares`.
        """
        if self.type is not FileType.SIMULATED_COUNTER:
            raise SchemaError("not a simulated counter file", field=self.name)
        start = (self.counter_number - 1) * COUNTER_SIZE
        return counters_record[start : start + COUNTER_SIZE]

    def role_for(self, operation: Operation) -> KeyRole:
        """The key role a secure session needs to apply ``operation`` to this file.

        Raises:
            SchemaError: the file does not allow this operation at all.
        """
        try:
            return self.access[operation]
        except KeyError:
            raise SchemaError(
                f"{operation.value} is not allowed on this file", field=self.name
            ) from None


@dataclass(frozen=True)
class ApplicationLayout:
    """One application (DF) of the card.

    Attributes:
        name: short name used everywhere in the code (``"plum"``, ``"cursus"``...).
        title: the name people know it by.
        df_names: DF names it answers to in Select Application; the first is the canonical one.
        lid: file identifier of the DF under the MF.
        files: its elementary files that hold data (a card image stores their records).
        stored_value: whether the application carries a Calypso stored-value purse.
        simulated_counters: files that hold no data of their own and show one counter of a
            counters file in ``files`` (looked up by name, SFI and LID like the others).
        kifs: the KIF of its issuer, load and debit keys. A SAM finds a work key by KIF and KVC
            alone (Digest Init carries no application name), so each application has its own.
    """

    name: str
    title: str
    df_names: tuple[bytes, ...]
    lid: int
    files: tuple[FileLayout, ...]
    stored_value: bool = False
    simulated_counters: tuple[FileLayout, ...] = ()
    kifs: tuple[int, int, int] = (0x21, 0x27, 0x30)

    def __post_init__(self) -> None:
        for f in self.simulated_counters:
            if f.type is not FileType.SIMULATED_COUNTER:
                raise SchemaError("not a simulated counter file", field=f"{self.name}.{f.name}")
            shared = next((g for g in self.files if g.name == f.shares), None)
            if shared is None or shared.type is not FileType.COUNTERS:
                raise SchemaError(
                    f"shares {f.shares!r}, not a counters file of the application",
                    field=f"{self.name}.{f.name}",
                )

    def kif(self, role: KeyRole) -> int:
        """KIF of this application's ``role`` key."""
        return self.kifs[role.key_index - 1]

    @property
    def aid(self) -> bytes:
        """Canonical DF name, also used as the application id in key diversification."""
        return self.df_names[0]

    @property
    def all_files(self) -> tuple[FileLayout, ...]:
        """Every file a reader can select or read: data files, then simulated counter files."""
        return self.files + self.simulated_counters

    def file(self, name: str) -> FileLayout:
        for f in self.all_files:
            if f.name == name:
                return f
        raise SchemaError(f"no file {name!r} in application {self.name}", field="file")

    def file_by_sfi(self, sfi: int) -> FileLayout:
        for f in self.all_files:
            if f.sfi == sfi:
                return f
        raise SchemaError(f"no SFI {sfi:02X} in application {self.name}", field="sfi")

    def file_by_lid(self, lid: int) -> FileLayout:
        for f in self.all_files:
            if f.lid == lid:
                return f
        raise SchemaError(f"no LID {lid:04X} in application {self.name}", field="lid")


@dataclass(frozen=True)
class CardLayout:
    """The whole card."""

    applications: tuple[ApplicationLayout, ...]
    mf_lid: int = 0x3F00
    icc_lid: int = 0x0002  # ICC file: serial number and traceability (free read)
    serial_size: int = 8
    session_modifications_max: int = 6  # Calypso "session modifications" limit per secure session
    session_buffer_bytes: int = (
        215  # bytes of modification buffer per session (Calypso rev 3 class)
    )

    def application(self, name: str) -> ApplicationLayout:
        for app in self.applications:
            if app.name == name:
                return app
        raise SchemaError(f"no application {name!r} on the card", field="application")

    def application_by_df_name(self, df_name: bytes) -> ApplicationLayout:
        for app in self.applications:
            if df_name in app.df_names:
                return app
        raise SchemaError(f"no application with DF name {df_name!r}", field="df_name")

    def key_by_kif(self, kif: int) -> tuple[ApplicationLayout, KeyRole]:
        """The application and key role a KIF names.

        Raises:
            SchemaError: no application key has this KIF.
        """
        for app in self.applications:
            for role in KeyRole:
                if app.kif(role) == kif:
                    return app, role
        raise SchemaError(f"unknown key identifier 0x{kif:02X}", field="kif")

    def application_by_lid(self, lid: int) -> ApplicationLayout:
        for app in self.applications:
            if app.lid == lid:
                return app
        raise SchemaError(f"no application with LID {lid:04X}", field="lid")


_R = Operation
ISSUER, LOAD, DEBIT = KeyRole.ISSUER, KeyRole.LOAD, KeyRole.DEBIT

PLUM = ApplicationLayout(
    name="plum",
    title="PLUM — PLUs loin Ma région (transport)",
    # 1TIC.ICA is the Intercode DF name; 3MTR.ICA is what Lille-network field readers select.
    df_names=(b"1TIC.ICA", b"3MTR.ICA"),
    lid=0x2000,
    files=(
        FileLayout(
            "environment", 0x2001, 0x07, FileType.LINEAR, 1, "plum.environment", {_R.UPDATE: ISSUER}
        ),
        FileLayout("events", 0x2010, 0x08, FileType.CYCLIC, 3, "plum.event", {_R.APPEND: DEBIT}),
        FileLayout(
            "contracts", 0x2020, 0x09, FileType.LINEAR, 4, "plum.contract", {_R.UPDATE: LOAD}
        ),
        FileLayout(
            "counters",
            0x2069,
            0x19,
            FileType.COUNTERS,
            1,
            "plum.counters",
            {_R.INCREASE: LOAD, _R.DECREASE: DEBIT, _R.UPDATE: LOAD},
        ),
        FileLayout(
            "special_events",
            0x2040,
            0x1D,
            FileType.LINEAR,
            1,
            "plum.special_event",
            {_R.UPDATE: DEBIT},
        ),
        FileLayout(
            "contract_list",
            0x2050,
            0x1E,
            FileType.LINEAR,
            1,
            "plum.contract_list",
            {_R.UPDATE: LOAD},
        ),
    ),
    # Per-contract counter files, as Lille-network field readers look for them (202A-202D,
    # SFI 0A-0D: Metrodroid's TICKETING_COUNTERS_1..4): counter i of the common counter file
    # 2069, belonging to contract record i. Read only; counters change through 2069.
    simulated_counters=tuple(
        FileLayout(
            f"counter_{i}",
            0x2029 + i,
            0x09 + i,
            FileType.SIMULATED_COUNTER,
            1,
            "plum.contract_counter",
            record_size=COUNTER_SIZE,
            shares="counters",
            counter_number=i,
        )
        for i in range(1, 5)
    ),
)

WALLET = ApplicationLayout(
    name="wallet",
    title="Ma région numérique (porte-monnaie et services)",
    df_names=(b"HDF.WALLET",),
    lid=0x3000,
    stored_value=True,
    kifs=(0x22, 0x28, 0x31),
    files=(
        FileLayout(
            "services", 0x3001, 0x01, FileType.LINEAR, 1, "wallet.services", {_R.UPDATE: ISSUER}
        ),
        # Calypso SV logs live at SFI 14 (load) and 15 (debit); only SV commands write them.
        FileLayout("sv_load_log", 0x3014, 0x14, FileType.SV_LOG, 1, "wallet.sv_load_log"),
        FileLayout("sv_debit_log", 0x3015, 0x15, FileType.SV_LOG, 3, "wallet.sv_debit_log"),
    ),
)

CURSUS = ApplicationLayout(
    name="cursus",
    title="Cursus — carte tous services jeunes",
    df_names=(b"HDF.CURSUS",),
    lid=0x4000,
    kifs=(0x23, 0x29, 0x32),
    files=(
        FileLayout(
            "student", 0x4001, 0x01, FileType.LINEAR, 1, "cursus.student", {_R.UPDATE: ISSUER}
        ),
        # Ring-fenced aid in eurocents, one counter per funder purpose (books, sport, canteen).
        FileLayout(
            "aid_counters",
            0x4069,
            0x19,
            FileType.COUNTERS,
            1,
            "cursus.aid_counters",
            {_R.INCREASE: LOAD, _R.DECREASE: DEBIT, _R.UPDATE: LOAD},
        ),
        FileLayout(
            "canteen_log",
            0x4010,
            0x08,
            FileType.CYCLIC,
            3,
            "cursus.canteen_log",
            {_R.APPEND: DEBIT},
        ),
    ),
)

EMPLOYMENT = ApplicationLayout(
    name="employment",
    title="Mes droits pour l'emploi",
    df_names=(b"HDF.EMPLOI",),
    lid=0x5000,
    kifs=(0x24, 0x2A, 0x33),
    files=(
        FileLayout(
            "situation",
            0x5001,
            0x01,
            FileType.LINEAR,
            1,
            "employment.situation",
            {_R.UPDATE: ISSUER},
        ),
        FileLayout(
            "rights", 0x5020, 0x09, FileType.LINEAR, 4, "employment.right", {_R.UPDATE: LOAD}
        ),
        # Appended by any partner that reads the rights, so the holder sees who consulted them.
        FileLayout(
            "consultation_log",
            0x5010,
            0x08,
            FileType.CYCLIC,
            3,
            "employment.consultation",
            {_R.APPEND: DEBIT},
        ),
    ),
)

CARD_LAYOUT = CardLayout(applications=(PLUM, WALLET, CURSUS, EMPLOYMENT))
