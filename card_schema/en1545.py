"""The EN 1545 bit codec: one generic engine that runs declarative field lists.

EN 1545 (and Intercode, NF P99-405, which profiles it for French transit) packs records as bit
strings: fields are written MSB first, one after the other, from the first bit of the record,
with no alignment. Optional fields are announced by *presence bitmaps* and lists by *repeat
counters*. This module models every field kind as a small frozen dataclass and runs them with one
engine, in the manner of Metrodroid's ``En1545Parser`` (``transit/en1545/``): a layout is data.

Decoded records are JSON-friendly dicts:

- A scalar field gives one key: ``{"EventDateStamp": "2026-11-27"}``.
- A *named* bitmap or group gives a nested dict; an *unnamed* one puts its fields in the
  enclosing dict. A field inside a bitmap is present when its key is; absence clears its bit.
- A repeat gives a list (of dicts when the repeated item is a structure).
- A raw value that the field's usual form cannot show (a time of 25:10, a network id that is not
  BCD, an enum code this version does not know) is shown as ``{"raw": n}``; encoding accepts that
  form for every field, so nothing a card holds is ever unreadable or rewritten.
- Bits after the last field are kept under ``"_tail"`` (a string of ``0``/``1``, only when not
  all zero); a field of unknown length (:class:`Rest`, e.g. Intercode's ``EnvData2`` or
  ``ContractData``) keeps every remaining bit. Hence ``encode(decode(raw)) == raw`` for every
  record the layout can parse.

Errors are :class:`~card_schema.errors.SchemaError` naming the field (dotted path), never a bare
``ValueError`` and never a silent truncation: a value that does not fit its width, an unknown enum
name, a missing mandatory field, an unknown key, a record of the wrong length, or a record whose
fields run past its end.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from card_schema.errors import SchemaError

EPOCH = dt.date(1997, 1, 1)  # EN 1545 DateStamp: days since 1997-01-01 (0 means "no date")
MINUTES_PER_DAY = 1440
RAW = "raw"  # key of the escape form {"raw": n} for values outside a field's usual form
TAIL = "_tail"  # key of the bits left after the last field, when any is set
RECORD_BITS = 29 * 8  # Calypso / Intercode record: 29 bytes

# EN 1545 5-bit alphabet as read by the open field readers (Metrodroid En1545FixedString): 1..26 are
# A..Z and 0 is the space that pads a string. 27..31 have no letter; they are shown as the ASCII
# characters 0x40 + code so that any bit pattern survives a decode/encode round trip.
_ALPHA = " ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"


class NotShowable(Exception):
    """A raw value has no usual form for this field; it is shown as ``{"raw": n}``."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bit_string(value: int, width: int) -> str:
    return format(value, f"0{width}b") if width else ""


def _parse_bit_string(value: object, where: str) -> tuple[int, int]:
    if not isinstance(value, str) or any(c not in "01" for c in value):
        raise SchemaError("expected a string of 0 and 1 (raw bits)", field=where)
    return (int(value, 2) if value else 0), len(value)


class BitReader:
    """Reads big-endian bit fields from a record, MSB of the first byte first."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.pos = 0
        self.exhausted = False  # a Rest field took every remaining bit

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, width: int, where: str) -> int:
        """Read ``width`` bits as an unsigned integer.

        Raises:
            SchemaError: the field would run past the end of the record.
        """
        if width > self.remaining:
            raise SchemaError(
                f"needs {width} bits at bit {self.pos} but the record ends at bit {self.size}",
                field=where,
            )
        shift = self.size - self.pos - width
        self.pos += width
        return (self._value >> shift) & ((1 << width) - 1)


class BitWriter:
    """Appends big-endian bit fields; refuses to grow past ``capacity`` bits."""

    def __init__(self, capacity: int) -> None:
        self._value = 0
        self.size = 0
        self.capacity = capacity
        self.exhausted = False  # a Rest field filled the record

    @property
    def remaining(self) -> int:
        return self.capacity - self.size

    def write(self, value: int, width: int, where: str) -> None:
        """Append ``value`` on ``width`` bits.

        Raises:
            SchemaError: the value does not fit the width, or the record is full.
        """
        if not 0 <= value < (1 << width):
            raise SchemaError(f"{value} does not fit in {width} bits", field=where)
        if width > self.remaining:
            raise SchemaError(
                f"the record is full: {width} more bits needed at bit {self.size}, "
                f"only {self.capacity} bits in a record",
                field=where,
            )
        self._value = (self._value << width) | value
        self.size += width

    def to_bytes(self) -> bytes:
        """The record, zero-padded to its capacity."""
        return (self._value << self.remaining).to_bytes(self.capacity // 8, "big")


@dataclass(frozen=True)
class Row:
    """One line of a layout description (for docs/card-layout.md and ``regioncard schema``)."""

    path: str
    bits: str
    codec: str
    doc: str


class Field(ABC):
    """A field kind. Subclasses are frozen dataclasses; the engine only calls these methods."""

    name: str | None
    doc: str

    @abstractmethod
    def field_keys(self) -> tuple[str, ...]:
        """The keys this field occupies in the dict that encloses it."""

    def is_present(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` carries this field (sets its bit in an enclosing bitmap)."""
        return any(k in values for k in self.field_keys())

    def decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None:
        """Read this field from ``reader`` into ``out``; nothing once a Rest field took the end."""
        if not reader.exhausted:
            self._decode(reader, out, path)

    def encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None:
        """Write this field from ``values``; after a Rest field, only absence is accepted."""
        if writer.exhausted:
            if self.is_present(values):
                raise SchemaError(
                    "cannot follow a field that takes the rest of the record",
                    field=path + self.field_keys()[0],
                )
            return
        self._encode(writer, values, path)

    @abstractmethod
    def _decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None: ...

    @abstractmethod
    def _encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None: ...

    @abstractmethod
    def rows(self, prefix: str) -> Iterator[Row]:
        """Describe this field (and its children) for documentation."""


# --------------------------------------------------------------------------- scalar kinds


@dataclass(frozen=True)
class Scalar(Field):
    """A fixed-width field holding one value. Subclasses define its usual JSON form.

    Attributes:
        name: key in the decoded dict.
        width: bits on the card.
        doc: one line for the documentation.
    """

    name: str
    width: int
    doc: str = field(default="", kw_only=True)

    codec = "unsigned integer"

    def __post_init__(self) -> None:
        if self.width < 0:
            raise SchemaError("negative width", field=self.name)

    def field_keys(self) -> tuple[str, ...]:
        return (self.name,)

    def to_json(self, raw: int) -> Any:
        """The usual form of a raw value; raise ``NotShowable`` when it has none."""
        return raw

    def from_json(self, value: Any, where: str) -> int:
        """The raw value of a usual-form value; raise SchemaError when it has none."""
        if not _is_int(value):
            raise SchemaError(f"expected an integer, got {value!r}", field=where)
        return int(value)

    def show(self, raw: int) -> Any:
        try:
            return self.to_json(raw)
        except NotShowable:
            return {RAW: raw}

    def raw_of(self, value: Any, where: str) -> int:
        """Raw value of ``value`` (usual form or ``{"raw": n}``), checked against the width."""
        if isinstance(value, Mapping):
            if set(value) != {RAW} or not _is_int(value[RAW]):
                raise SchemaError(f'expected {{"{RAW}": <integer>}}, got {value!r}', field=where)
            raw = int(value[RAW])
        else:
            raw = self.from_json(value, where)
        if not 0 <= raw < (1 << self.width):
            raise SchemaError(f"{value!r} does not fit in {self.width} bits", field=where)
        return raw

    def _decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None:
        out[self.name] = self.show(reader.read(self.width, path + self.name))

    def _encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None:
        where = path + self.name
        if self.name not in values:
            raise SchemaError("missing", field=where)
        writer.write(self.raw_of(values[self.name], where), self.width, where)

    def rows(self, prefix: str) -> Iterator[Row]:
        yield Row(prefix + self.name, str(self.width), self.codec, self.doc)


@dataclass(frozen=True)
class UInt(Scalar):
    """Unsigned integer of any width (EN 1545 ``FixedInteger``)."""


@dataclass(frozen=True)
class Bool(Scalar):
    """One bit shown as ``true``/``false``."""

    width: int = field(default=1, init=False)
    codec = "boolean"

    def to_json(self, raw: int) -> Any:
        return bool(raw)

    def from_json(self, value: Any, where: str) -> int:
        if not isinstance(value, bool):
            raise SchemaError(f"expected true or false, got {value!r}", field=where)
        return int(value)


@dataclass(frozen=True)
class Amount(Scalar):
    """Money in eurocents, unsigned or two's complement (EN 1545 ``Amount``, euro cents).

    Attributes:
        signed: two's complement (stored-value balances may go below zero).
    """

    signed: bool = field(default=False, kw_only=True)

    @property
    def codec(self) -> str:  # type: ignore[override]
        return "amount, eurocents" + (" (signed)" if self.signed else "")

    def to_json(self, raw: int) -> Any:
        if self.signed and raw >= 1 << (self.width - 1):
            return raw - (1 << self.width)
        return raw

    def from_json(self, value: Any, where: str) -> int:
        if not _is_int(value):
            raise SchemaError(f"expected eurocents as an integer, got {value!r}", field=where)
        if self.signed:
            half = 1 << (self.width - 1)
            if not -half <= value < half:
                raise SchemaError(f"{value} does not fit in {self.width} signed bits", field=where)
            return int(value) % (1 << self.width)
        return int(value)


@dataclass(frozen=True)
class Enum(Scalar):
    """A code shown by its name; unknown codes decode as ``{"raw": n}``, unknown names are refused.

    Attributes:
        values: code -> name.
    """

    values: Mapping[int, str] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(set(self.values.values())) != len(self.values):
            raise SchemaError("duplicate enum names", field=self.name)
        for code in self.values:
            if not 0 <= code < (1 << self.width):
                raise SchemaError(
                    f"enum code {code} does not fit in {self.width} bits", field=self.name
                )

    @property
    def codec(self) -> str:  # type: ignore[override]
        return "enum: " + ", ".join(f"{k}={v}" for k, v in sorted(self.values.items()))

    def to_json(self, raw: int) -> Any:
        try:
            return self.values[raw]
        except KeyError:
            raise NotShowable from None

    def from_json(self, value: Any, where: str) -> int:
        for code, name in self.values.items():
            if name == value:
                return code
        known = ", ".join(self.values.values())
        raise SchemaError(f"unknown value {value!r} (known: {known})", field=where)


@dataclass(frozen=True)
class Flags(Scalar):
    """A set of flags shown as a list of names (bit 0, the least significant, first).

    A set bit without a name is listed by its bit number, so no bit is ever lost.

    Attributes:
        names: bit number -> name.
    """

    names: Mapping[int, str] = field(default_factory=dict, kw_only=True)

    @property
    def codec(self) -> str:  # type: ignore[override]
        return "flags (bit 0 = LSB): " + ", ".join(
            f"{k}={v}" for k, v in sorted(self.names.items())
        )

    def to_json(self, raw: int) -> Any:
        return [self.names.get(bit, bit) for bit in range(self.width) if raw >> bit & 1]

    def from_json(self, value: Any, where: str) -> int:
        if not isinstance(value, list):
            raise SchemaError(f"expected a list of flag names, got {value!r}", field=where)
        by_name = {n: b for b, n in self.names.items()}
        raw = 0
        for item in value:
            if _is_int(item) and 0 <= item < self.width:
                bit = int(item)
            elif isinstance(item, str) and item in by_name:
                bit = by_name[item]
            else:
                known = ", ".join(self.names.values())
                raise SchemaError(f"unknown flag {item!r} (known: {known})", field=where)
            raw |= 1 << bit
        return raw


@dataclass(frozen=True)
class Zones(Scalar):
    """Zone bitmap shown as the list of zone numbers: bit 0 (LSB) is zone 1 (Intercode
    ``ContractValidityZones``: "numéros des zones autorisées")."""

    codec = "zone bitmap (bit 0 = zone 1)"

    def to_json(self, raw: int) -> Any:
        return [bit + 1 for bit in range(self.width) if raw >> bit & 1]

    def from_json(self, value: Any, where: str) -> int:
        if not isinstance(value, list) or not all(_is_int(z) for z in value):
            raise SchemaError(f"expected a list of zone numbers, got {value!r}", field=where)
        raw = 0
        for zone in value:
            if not 1 <= zone <= self.width:
                raise SchemaError(f"zone {zone} outside 1..{self.width}", field=where)
            raw |= 1 << (zone - 1)
        return raw


def _date_of(days: int) -> str:
    return (EPOCH + dt.timedelta(days=days)).isoformat()


def _days_of(value: Any, where: str) -> int:
    if not isinstance(value, str):
        raise SchemaError(f"expected a date YYYY-MM-DD, got {value!r}", field=where)
    try:
        days = (dt.date.fromisoformat(value) - EPOCH).days
    except ValueError as exc:
        raise SchemaError(f"not a date YYYY-MM-DD: {value!r}", field=where) from exc
    if days < 1:
        raise SchemaError(f"{value} is not after 1997-01-01 (the EN 1545 epoch)", field=where)
    return days


def _minutes_of(value: Any, where: str) -> int:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise SchemaError(f"expected a time HH:MM, got {value!r}", field=where)
    try:
        hours, minutes = int(value[:2]), int(value[3:])
    except ValueError as exc:
        raise SchemaError(f"not a time HH:MM: {value!r}", field=where) from exc
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise SchemaError(f"not a time of day: {value!r}", field=where)
    return hours * 60 + minutes


@dataclass(frozen=True)
class Date(Scalar):
    """EN 1545 DateStamp: 14 bits, days since 1997-01-01; 0 is "no date" (``null``).

    ``width`` may be widened (16 bits: a 2-byte slot of a byte-aligned record, same meaning).
    """

    width: int = field(default=14, kw_only=True)
    codec = "date: days since 1997-01-01, 0 = none"

    def to_json(self, raw: int) -> Any:
        return _date_of(raw) if raw else None

    def from_json(self, value: Any, where: str) -> int:
        return 0 if value is None else _days_of(value, where)


@dataclass(frozen=True)
class Time(Scalar):
    """EN 1545 TimeStamp: 11 bits, minutes since midnight, shown ``HH:MM`` (``width`` may be
    widened, like :class:`Date`)."""

    width: int = field(default=11, kw_only=True)
    codec = "time: minutes since midnight"

    def to_json(self, raw: int) -> Any:
        if raw >= MINUTES_PER_DAY:
            raise NotShowable
        return f"{raw // 60:02d}:{raw % 60:02d}"

    def from_json(self, value: Any, where: str) -> int:
        return _minutes_of(value, where)


@dataclass(frozen=True)
class DateTime(Scalar):
    """A DateStamp (14 bits) followed by a TimeStamp (11 bits), shown ``YYYY-MM-DDTHH:MM``.

    Both zero is "none" (``null``), as Metrodroid's ``parseTime`` reads it.
    """

    width: int = field(default=25, init=False)
    codec = "date (14) + time (11), 0 = none"

    def to_json(self, raw: int) -> Any:
        days, minutes = raw >> 11, raw & 0x7FF
        if raw == 0:
            return None
        if days == 0 or minutes >= MINUTES_PER_DAY:
            raise NotShowable
        return f"{_date_of(days)}T{minutes // 60:02d}:{minutes % 60:02d}"

    def from_json(self, value: Any, where: str) -> int:
        if value is None:
            return 0
        if not isinstance(value, str) or len(value) != 16 or value[10] != "T":
            raise SchemaError(f"expected YYYY-MM-DDTHH:MM, got {value!r}", field=where)
        return _days_of(value[:10], where) << 11 | _minutes_of(value[11:], where)


@dataclass(frozen=True)
class BcdDate(Scalar):
    """Date as 8 BCD digits YYYYMMDD on 32 bits (Intercode ``HolderBirthDate``); 0 is ``null``."""

    width: int = field(default=32, init=False)
    codec = "BCD date YYYYMMDD"

    def to_json(self, raw: int) -> Any:
        if raw == 0:
            return None
        digits = f"{raw:08x}"
        if not digits.isdigit():
            raise NotShowable
        try:
            return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
        except ValueError:
            raise NotShowable from None

    def from_json(self, value: Any, where: str) -> int:
        if value is None:
            return 0
        if not isinstance(value, str):
            raise SchemaError(f"expected a date YYYY-MM-DD, got {value!r}", field=where)
        try:
            date = dt.date.fromisoformat(value)
        except ValueError as exc:
            raise SchemaError(f"not a date YYYY-MM-DD: {value!r}", field=where) from exc
        return int(date.strftime("%Y%m%d"), 16)


@dataclass(frozen=True)
class Bcd(Scalar):
    """Decimal digits, 4 bits each, shown as a string of digits (width = 4 x digits)."""

    codec = "BCD digits"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width % 4:
            raise SchemaError("BCD width must be a multiple of 4", field=self.name)

    def to_json(self, raw: int) -> Any:
        digits = format(raw, f"0{self.width // 4}x")
        if not digits.isdigit():
            raise NotShowable
        return digits

    def from_json(self, value: Any, where: str) -> int:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise SchemaError(f"expected a string of digits, got {value!r}", field=where)
        if len(value) != self.width // 4:
            raise SchemaError(f"expected {self.width // 4} digits, got {value!r}", field=where)
        return int(value, 16)


@dataclass(frozen=True)
class NetworkId(Scalar):
    """Intercode network id: 3 BCD digits of country (250 = France) then 3 of network, on 24
    bits, shown as the decimal number they spell (``0x250000`` -> ``250000``)."""

    width: int = field(default=24, init=False)
    codec = "network id, 6 BCD digits (country + network)"

    def to_json(self, raw: int) -> Any:
        digits = f"{raw:06x}"
        if not digits.isdigit():
            raise NotShowable
        return int(digits)

    def from_json(self, value: Any, where: str) -> int:
        if not _is_int(value) or not 0 <= value <= 999_999:
            raise SchemaError(
                f"expected a 6-digit network id like 250000, got {value!r}", field=where
            )
        return int(f"{value:06d}", 16)


@dataclass(frozen=True)
class Alpha(Scalar):
    """EN 1545 5-bit string: A=1..Z=26, 0 = space (padding); width = 5 x characters.

    Trailing spaces are padding and are not shown.
    """

    codec = "5-bit characters (A=1..Z=26, space=0)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width % 5:
            raise SchemaError("a 5-bit string width must be a multiple of 5", field=self.name)

    def to_json(self, raw: int) -> Any:
        count = self.width // 5
        chars = [_ALPHA[(raw >> (5 * (count - 1 - i))) & 0x1F] for i in range(count)]
        return "".join(chars).rstrip(" ")

    def from_json(self, value: Any, where: str) -> int:
        if not isinstance(value, str):
            raise SchemaError(f"expected a string, got {value!r}", field=where)
        count = self.width // 5
        if len(value) > count:
            raise SchemaError(f"{value!r} is longer than {count} characters", field=where)
        raw = 0
        for char in value.ljust(count):
            code = _ALPHA.find(char)
            if code < 0:
                raise SchemaError(
                    f"{char!r} is not in the 5-bit alphabet (A-Z, space)", field=where
                )
            raw = raw << 5 | code
        return raw


# --------------------------------------------------------------------------- structures


def _check_keys(
    level: Mapping[str, Any], fields: Sequence[Field], where: str, extra: tuple[str, ...] = ()
) -> None:
    known = {k for f in fields for k in f.field_keys()} | set(extra)
    unknown = sorted(set(level) - known)
    if unknown:
        raise SchemaError(f"unknown field {unknown[0]!r}", field=(where + unknown[0]))


def _level(values: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    if name not in values:
        raise SchemaError("missing", field=where.rstrip("."))
    level = values[name]
    if not isinstance(level, Mapping):
        raise SchemaError(f"expected an object, got {level!r}", field=where.rstrip("."))
    return level


@dataclass(frozen=True)
class Bitmap(Field):
    """Presence bitmap (EN 1545 ``Bitmap``): one bit per field, the least significant bit for the
    first field, then the present fields in order. Bitmaps nest.

    Attributes:
        name: key of the nested dict, or ``None`` to put the fields in the enclosing dict (only
            where the bitmap itself is always present: at record level or as a repeated item).
        fields: the optional fields, in mask order.
    """

    name: str | None
    fields: tuple[Field, ...]
    doc: str = field(default="", kw_only=True)

    def field_keys(self) -> tuple[str, ...]:
        return (self.name,) if self.name else tuple(k for f in self.fields for k in f.field_keys())

    def _decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None:
        mask = reader.read(len(self.fields), path + (self.name or "") + "<bitmap>")
        target: dict[str, Any] = out
        sub = path
        if self.name:
            target = out[self.name] = {}
            sub = f"{path}{self.name}."
        for i, child in enumerate(self.fields):
            if mask >> i & 1:
                child.decode(reader, target, sub)

    def _encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None:
        level, sub = values, path
        if self.name:
            sub = f"{path}{self.name}."
            level = _level(values, self.name, sub)
            _check_keys(level, self.fields, sub)
        mask = sum(1 << i for i, child in enumerate(self.fields) if child.is_present(level))
        writer.write(mask, len(self.fields), path + (self.name or "") + "<bitmap>")
        for i, child in enumerate(self.fields):
            if mask >> i & 1:
                child.encode(writer, level, sub)

    def rows(self, prefix: str) -> Iterator[Row]:
        yield Row(
            prefix + (self.name or "(bitmap)"), str(len(self.fields)), "presence bitmap", self.doc
        )
        sub = f"{prefix}{self.name}." if self.name else prefix + "  "
        for child in self.fields:
            yield from child.rows(sub)


@dataclass(frozen=True)
class Group(Field):
    """Fields that always come together (Metrodroid ``En1545Container``): one bit of a bitmap may
    announce a whole group. Unnamed, its fields go in the enclosing dict; all or none of them."""

    name: str | None
    fields: tuple[Field, ...]
    doc: str = field(default="", kw_only=True)

    def field_keys(self) -> tuple[str, ...]:
        return (self.name,) if self.name else tuple(k for f in self.fields for k in f.field_keys())

    def _decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None:
        target: dict[str, Any] = out
        sub = path
        if self.name:
            target = out[self.name] = {}
            sub = f"{path}{self.name}."
        for child in self.fields:
            child.decode(reader, target, sub)

    def _encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None:
        level, sub = values, path
        if self.name:
            sub = f"{path}{self.name}."
            level = _level(values, self.name, sub)
            _check_keys(level, self.fields, sub)
        for child in self.fields:
            child.encode(writer, level, sub)

    def rows(self, prefix: str) -> Iterator[Row]:
        total = sum(int(r.bits) for c in self.fields for r in c.rows("") if r.bits.isdigit())
        yield Row(prefix + (self.name or "(group)"), f"({total})", "group", self.doc)
        sub = f"{prefix}{self.name}." if self.name else prefix + "  "
        for child in self.fields:
            yield from child.rows(sub)


@dataclass(frozen=True)
class Repeat(Field):
    """A counter on ``count_width`` bits, then that many items (EN 1545 ``Repeat``), shown as a
    list (of dicts when the item is an unnamed bitmap or group)."""

    name: str
    count_width: int
    item: Field
    doc: str = field(default="", kw_only=True)

    def field_keys(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def _item_is_struct(self) -> bool:
        return isinstance(self.item, (Bitmap, Group)) and self.item.name is None

    def _decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None:
        count = reader.read(self.count_width, f"{path}{self.name}<count>")
        items: list[Any] = []
        for i in range(count):
            tmp: dict[str, Any] = {}
            self.item.decode(reader, tmp, f"{path}{self.name}[{i}].")
            items.append(tmp if self._item_is_struct else tmp[self.item.field_keys()[0]])
        out[self.name] = items

    def _encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None:
        where = path + self.name
        if self.name not in values:
            raise SchemaError("missing", field=where)
        items = values[self.name]
        if not isinstance(items, list):
            raise SchemaError(f"expected a list, got {items!r}", field=where)
        if len(items) >= 1 << self.count_width:
            raise SchemaError(
                f"{len(items)} items do not fit a {self.count_width}-bit counter", field=where
            )
        writer.write(len(items), self.count_width, where + "<count>")
        for i, item in enumerate(items):
            sub = f"{where}[{i}]."
            if self._item_is_struct:
                if not isinstance(item, Mapping):
                    raise SchemaError(f"expected an object, got {item!r}", field=sub.rstrip("."))
                assert isinstance(self.item, (Bitmap, Group))
                _check_keys(item, self.item.fields, sub)
                self.item.encode(writer, item, sub)
            else:
                self.item.encode(writer, {self.item.field_keys()[0]: item}, sub)

    def rows(self, prefix: str) -> Iterator[Row]:
        yield Row(prefix + self.name, str(self.count_width), "repeat counter", self.doc)
        yield from self.item.rows(f"{prefix}{self.name}[].")


@dataclass(frozen=True)
class Rest(Field):
    """A field of unknown length (Intercode ``EnvData2``, ``ContractData(0..255)``).

    When present it holds every remaining bit of the record, shown as a string of ``0``/``1``.
    Nothing can follow it, so it must be the last field of its bitmap (see :func:`check_layout`).
    """

    name: str
    doc: str = field(default="", kw_only=True)

    def field_keys(self) -> tuple[str, ...]:
        return (self.name,)

    def _decode(self, reader: BitReader, out: dict[str, Any], path: str) -> None:
        width = reader.remaining
        out[self.name] = _bit_string(reader.read(width, path + self.name), width)
        reader.exhausted = True

    def _encode(self, writer: BitWriter, values: Mapping[str, Any], path: str) -> None:
        where = path + self.name
        raw, width = _parse_bit_string(values.get(self.name), where)
        writer.write(raw, width, where)
        writer.exhausted = True

    def rows(self, prefix: str) -> Iterator[Row]:
        yield Row(prefix + self.name, "rest", "raw bits to the end of the record", self.doc)


# --------------------------------------------------------------------------- engine


def check_layout(fields: Sequence[Field], where: str = "") -> None:
    """Check that a field list can be run losslessly.

    - keys are unique within each dict level;
    - every bitmap child occupies at least one key, and no unnamed bitmap sits directly in a bitmap
      (its presence could not be told when its own mask is empty);
    - a Rest field is the last field of its bitmap or group, all the way up to the record level,
      and never inside a repeat (the items after it would be lost).

    Raises:
        SchemaError: naming the first offending field.
    """
    _check_level(fields, where, top=True)


def _check_level(fields: Sequence[Field], where: str, top: bool) -> None:
    seen: set[str] = set()
    for index, child in enumerate(fields):
        for key in child.field_keys():
            if key in seen:
                raise SchemaError("duplicate key", field=where + key)
            seen.add(key)
        if _contains_rest(child) and not top and index != len(fields) - 1:
            raise SchemaError(
                "a field of unknown length must come last", field=where + child.field_keys()[0]
            )
        if isinstance(child, (Bitmap, Group)):
            sub = f"{where}{child.name}." if child.name else where
            if isinstance(child, Bitmap):
                for grandchild in child.fields:
                    if not grandchild.field_keys():
                        raise SchemaError("a bitmap entry must carry a key", field=sub)
                    if isinstance(grandchild, Bitmap) and grandchild.name is None:
                        raise SchemaError("a bitmap inside a bitmap needs a name", field=sub)
            _check_level(child.fields, sub, top=False)
        if isinstance(child, Repeat):
            if _contains_rest(child.item):
                raise SchemaError(
                    "a field of unknown length cannot be repeated", field=where + child.name
                )
            item = child.item
            if isinstance(item, (Bitmap, Group)) and item.name is None:
                _check_level(item.fields, f"{where}{child.name}[].", top=False)


def _contains_rest(f: Field) -> bool:
    if isinstance(f, Rest):
        return True
    if isinstance(f, (Bitmap, Group)):
        return any(_contains_rest(c) for c in f.fields)
    if isinstance(f, Repeat):
        return _contains_rest(f.item)
    return False


def decode(fields: Sequence[Field], data: bytes, *, where: str = "") -> dict[str, Any]:
    """Decode ``data`` (a whole record) with a field list.

    Bits after the last field are kept under ``"_tail"`` when any of them is set.

    Raises:
        SchemaError: a present field runs past the end of the record.
    """
    reader = BitReader(data)
    out: dict[str, Any] = {}
    for f in fields:
        f.decode(reader, out, where)
    if not reader.exhausted and reader.remaining:
        width = reader.remaining
        tail = reader.read(width, where + TAIL)
        if tail:
            out[TAIL] = _bit_string(tail, width)
    return out


def encode(
    fields: Sequence[Field], values: Mapping[str, Any], *, size: int = 29, where: str = ""
) -> bytes:
    """Encode ``values`` with a field list into a record of ``size`` bytes (zero-padded).

    Raises:
        SchemaError: a missing, unknown or ill-fitting field, or a record longer than ``size``.
    """
    if not isinstance(values, Mapping):
        raise SchemaError(
            f"expected an object, got {type(values).__name__}", field=where.rstrip(".") or None
        )
    _check_keys(values, fields, where, extra=(TAIL,))
    writer = BitWriter(size * 8)
    for f in fields:
        f.encode(writer, values, where)
    if TAIL in values:
        if writer.exhausted:
            raise SchemaError(
                "no tail after a field that takes the rest of the record", field=where + TAIL
            )
        raw, width = _parse_bit_string(values[TAIL], where + TAIL)
        writer.write(raw, width, where + TAIL)
    return writer.to_bytes()


def bit_length(fields: Sequence[Field], values: Mapping[str, Any]) -> int:
    """Bits ``values`` take with this field list (without padding); for capacity checks in docs."""
    writer = BitWriter(1 << 20)
    for f in fields:
        f.encode(writer, values, "")
    return writer.size


def describe(fields: Sequence[Field]) -> list[Row]:
    """Rows describing a field list, for documentation."""
    return [row for f in fields for row in f.rows("")]
