"""The in-memory image of the card: what the engine has read, updated after every exchange.

Raw records only (29 bytes each, by application, file and record number), the counters, the
stored-value state, the transaction counter and the ratification flag seen at the last Open Secure
Session. Decoding into domain values is :mod:`terminal.cardimage`'s job (Metrodroid's split between
``card/`` and ``transit/``). Modifications made in a secure session reach the image only when the
card has committed them (a verified close), so the image never shows what the card does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from card_schema.calypso import StartupInfo
from card_schema.layout import CARD_LAYOUT, COUNTER_SIZE, ApplicationLayout, CardLayout, FileType


@dataclass
class SVState:
    """Stored-value state from the last SV Get (or SV operation) of the wallet.

    Attributes:
        tnum: SV transaction number.
        balance: balance in eurocents.
        last_log: the log record returned with it (load or debit log, as the card's 29-byte
            record: Calypso's 22 or 19 bytes, zero padded).
        kvc: KVC of the SV key (from the SV Get).
    """

    tnum: int
    balance: int
    last_log: bytes = b""
    kvc: int = 0


@dataclass
class ApplicationImage:
    """What is known of one application.

    Attributes:
        layout: the application's layout (``CARD_LAYOUT``).
        df_name: the DF name it was selected with.
        fci: the FCI returned at selection.
        invalidated: the selection answered ``6283``.
        records: file name -> record number -> record bytes, for what was read or written.
        sv: stored-value state, when read.
        startup_info: the Calypso startup information of its FCI (``None`` if none).
    """

    layout: ApplicationLayout
    df_name: bytes
    fci: bytes = b""
    invalidated: bool = False
    records: dict[str, dict[int, bytes]] = field(default_factory=dict)
    sv: SVState | None = None
    startup_info: StartupInfo | None = None

    @property
    def rev32_mode(self) -> bool:
        """Whether the card declared the Rev 3.2 extended mode for this application."""
        return self.startup_info is not None and self.startup_info.rev32_mode

    @property
    def session_buffer_bytes(self) -> int:
        """The session buffer budget the card declared (215 bytes when it declared nothing)."""
        return self.startup_info.session_buffer_bytes if self.startup_info is not None else 215

    @property
    def name(self) -> str:
        return self.layout.name

    def record(self, file: str, number: int = 1) -> bytes | None:
        """Record ``number`` of ``file``, or ``None`` when it was never read."""
        return self.records.get(file, {}).get(number)

    def has_file(self, file: str) -> bool:
        """Whether any record of ``file`` was read."""
        return bool(self.records.get(file))

    def file_records(self, file: str) -> list[bytes]:
        """Records of ``file`` read so far, by record number (for a cyclic log: newest first)."""
        known = self.records.get(file, {})
        return [known[n] for n in sorted(known)]

    def set_record(self, file: str, number: int, data: bytes) -> None:
        """Record ``number`` of ``file`` is now ``data``."""
        self.records.setdefault(file, {})[number] = bytes(data)

    def append_record(self, file: str, data: bytes) -> None:
        """A record was appended to the cyclic ``file``: it becomes record 1, the oldest drops."""
        count = self.layout.file(file).record_count
        known = self.records.setdefault(file, {})
        shifted = {n + 1: r for n, r in known.items() if n + 1 <= count}
        shifted[1] = bytes(data)
        self.records[file] = shifted

    def counter(self, file: str, number: int) -> int | None:
        """Value of counter ``number`` (1..9) of the counters ``file``, or ``None`` if unread."""
        record = self.record(file, 1)
        if record is None:
            return None
        start = (number - 1) * COUNTER_SIZE
        return int.from_bytes(record[start : start + COUNTER_SIZE], "big")

    def set_counter(self, file: str, number: int, value: int) -> None:
        """Counter ``number`` of ``file`` is now ``value``."""
        f = self.layout.file(file)
        if f.type is not FileType.COUNTERS:
            raise ValueError(f"{file} is not a counters file")
        record = self.record(file, 1) or bytes(f.record_size)
        start = (number - 1) * COUNTER_SIZE
        new = value.to_bytes(COUNTER_SIZE, "big")
        self.set_record(file, 1, record[:start] + new + record[start + COUNTER_SIZE :])


@dataclass
class CalypsoCard:
    """The card as the engine knows it (Keyple's ``CalypsoCard``).

    Attributes:
        atr: the card's ATR.
        serial: card serial number (8 bytes, from the FCI).
        applications: application name -> what is known of it; an application that answered
            ``6A82`` at selection is absent.
        current: name of the application selected now.
        transaction_counter: value answered by the last Open Secure Session (before it), or by
            Get Data; Calypso counts down from ``FFFFFF``.
        previous_session_ratified: the ratification byte of the last Open Secure Session:
            ``False`` means the previous session was committed but not ratified (its terminal
            may not have seen the close response: check the journal before charging).
        layout: the card layout.
    """

    atr: bytes
    serial: bytes = b""
    applications: dict[str, ApplicationImage] = field(default_factory=dict)
    current: str | None = None
    transaction_counter: int | None = None
    previous_session_ratified: bool | None = None
    layout: CardLayout = CARD_LAYOUT

    def application(self, name: str) -> ApplicationImage:
        """What is known of application ``name``.

        Raises:
            KeyError: the application was never selected (or is absent from the card).
        """
        return self.applications[name]

    @property
    def current_application(self) -> ApplicationImage:
        """The application selected now.

        Raises:
            KeyError: none is.
        """
        if self.current is None:
            raise KeyError("no application selected")
        return self.applications[self.current]
