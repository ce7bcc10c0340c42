"""Hypothesis strategies derived from a field list (shared by the card_schema tests).

- :func:`values_for`: decoded-form dicts that fit a record (for ``decode(encode(x)) == x``).
  Every scalar value is drawn as a random raw number shown in its usual form, so the dicts are
  canonical (no trailing spaces, sorted flags...). Rest fields are never drawn: a Rest value
  shorter than the rest of the record comes back padded with zeros, by design.
- :func:`raw_for`: random raw records that the layout can parse (for ``encode(decode(raw)) ==
  raw``): random masks, counts and field bits, dropping a bitmap bit or repeat item only when the
  field would run past the end of the record (such a record is malformed and decoding it raises
  SchemaError, tested separately), then random bits to the end (the tail).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from card_schema import en1545

RECORD_BITS = 232


def _scalar_value(draw: st.DrawFn, f: en1545.Scalar) -> Any:
    return f.show(draw(st.integers(0, (1 << f.width) - 1)))


def _gen_values(draw: st.DrawFn, f: en1545.Field, level: dict[str, Any], budget: int) -> int:
    """Add ``f`` to ``level``; return the bits used, or -1 if it does not fit ``budget``."""
    if isinstance(f, en1545.Scalar):
        if f.width > budget:
            return -1
        level[f.name] = _scalar_value(draw, f)
        return f.width
    if isinstance(f, (en1545.Bitmap, en1545.Group)):
        target: dict[str, Any] = {} if f.name else level
        used = len(f.fields) if isinstance(f, en1545.Bitmap) else 0
        if used > budget:
            return -1
        for child in f.fields:
            if isinstance(f, en1545.Bitmap):
                if isinstance(child, en1545.Rest) or not draw(st.booleans()):
                    continue
                trial: dict[str, Any] = {}
                n = _gen_values(draw, child, trial, budget - used)
                if n < 0:
                    continue
                target.update(trial)
                used += n
            else:
                n = _gen_values(draw, child, target, budget - used)
                if n < 0:
                    return -1
                used += n
        if f.name:
            level[f.name] = target
        return used
    if isinstance(f, en1545.Repeat):
        used = f.count_width
        if used > budget:
            return -1
        items: list[Any] = []
        for _ in range(draw(st.integers(0, min(3, (1 << f.count_width) - 1)))):
            trial = {}
            n = _gen_values(draw, f.item, trial, budget - used)
            if n < 0:
                break
            items.append(
                trial
                if isinstance(f.item, (en1545.Bitmap, en1545.Group)) and f.item.name is None
                else trial[f.item.field_keys()[0]]
            )
            used += n
        level[f.name] = items
        return used
    raise AssertionError(f"no value strategy for {f!r}")


@st.composite
def values_for(
    draw: st.DrawFn, fields: tuple[en1545.Field, ...], bits: int = RECORD_BITS
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    used = 0
    for f in fields:
        n = _gen_values(draw, f, values, bits - used)
        assert n >= 0, "a mandatory field does not fit the record"
        used += n
    return values


class _Bits:
    def __init__(self) -> None:
        self.parts: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return sum(w for _, w in self.parts)

    def add(self, value: int, width: int) -> None:
        self.parts.append((value, width))

    def extend(self, other: _Bits) -> None:
        self.parts.extend(other.parts)


def _gen_raw(draw: st.DrawFn, f: en1545.Field, out: _Bits, budget: int) -> tuple[bool, bool]:
    """Append random bits for ``f``; return (fits, took_the_rest)."""
    if isinstance(f, en1545.Scalar):
        if f.width > budget:
            return False, False
        out.add(draw(st.integers(0, (1 << f.width) - 1)), f.width)
        return True, False
    if isinstance(f, en1545.Rest):
        out.add(draw(st.integers(0, (1 << budget) - 1)) if budget else 0, budget)
        return True, True
    if isinstance(f, en1545.Bitmap):
        width = len(f.fields)
        if width > budget:
            return False, False
        wanted = draw(st.integers(0, (1 << width) - 1))
        body, mask, used = _Bits(), 0, width
        for i, child in enumerate(f.fields):
            if not wanted >> i & 1:
                continue
            trial = _Bits()
            fits, rest = _gen_raw(draw, child, trial, budget - used)
            if not fits:
                continue
            mask |= 1 << i
            body.extend(trial)
            used += trial.size
            if rest:
                out.add(mask, width)
                out.extend(body)
                return True, True
        out.add(mask, width)
        out.extend(body)
        return True, False
    if isinstance(f, en1545.Group):
        used = 0
        for child in f.fields:
            trial = _Bits()
            fits, rest = _gen_raw(draw, child, trial, budget - used)
            if not fits:
                return False, False
            out.extend(trial)
            used += trial.size
            if rest:
                return True, True
        return True, False
    if isinstance(f, en1545.Repeat):
        if f.count_width > budget:
            return False, False
        wanted = draw(st.integers(0, min(4, (1 << f.count_width) - 1)))
        body, count, used = _Bits(), 0, f.count_width
        for _ in range(wanted):
            trial = _Bits()
            fits, _rest = _gen_raw(draw, f.item, trial, budget - used)
            if not fits:
                break
            body.extend(trial)
            used += trial.size
            count += 1
        out.add(count, f.count_width)
        out.extend(body)
        return True, False
    raise AssertionError(f"no raw strategy for {f!r}")


@st.composite
def raw_for(draw: st.DrawFn, fields: tuple[en1545.Field, ...], bits: int = RECORD_BITS) -> bytes:
    out = _Bits()
    for f in fields:
        fits, rest = _gen_raw(draw, f, out, bits - out.size)
        assert fits, "a mandatory field does not fit the record"
        if rest:
            break
    tail = bits - out.size
    if tail:
        out.add(draw(st.integers(0, (1 << tail) - 1)), tail)
    value = 0
    for part, width in out.parts:
        value = value << width | part
    return value.to_bytes(bits // 8, "big")


def record(bit_string: str, size: int = 29) -> bytes:
    """A record from a hand-written bit string (spaces ignored), zero-padded to ``size`` bytes."""
    bits = "".join(bit_string.split())
    assert set(bits) <= {"0", "1"} and len(bits) <= size * 8
    return (int(bits or "0", 2) << (size * 8 - len(bits))).to_bytes(size, "big")
