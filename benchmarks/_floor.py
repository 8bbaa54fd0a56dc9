"""The floor: the least work the table-rating job needs, written with numpy alone.

The baseline of ``bench_frame.py``. It rates an Arrow table of CDRs against a *plain*
plan (no tiers, windows, schedules, grace, minimum or maximum; every rate active and
outbound, one per prefix; rounding ``up`` to a quantum of 1 micro; access prefix ``00``)
and does only what that job cannot do without:

* normalise and validate every dialled number (rating-rules §5: strip spaces, tabs,
  ``-``, ``.``, ``(``, ``)``, then a leading ``+``, then one ``00``; the rest must be
  ASCII digits, else ``UNRATED``/``INVALID_NUMBER``). Digits, ``+digits`` and
  ``00digits`` take a fast path that reads each number eight bytes at a time; anything
  else takes a general path;
* find the longest prefix (``LOOKUPS``): ``per-length`` is a ``searchsorted`` per prefix
  length over the sorted integer keys of the deck, longest first; ``dense`` reads a
  table of the first ``DENSE_DIGITS`` digits, then searches the longer lengths per
  length; ``intervals`` is one ``searchsorted`` over the deck flattened into disjoint
  key intervals, each owned by its longest prefix. All three search the numbers in
  (roughly) sorted order, which keeps the deck's keys in cache;
* price with integer arithmetic (§3, §4): billed = initial if billsec <= initial, else
  initial + ceil((billsec - initial) / increment) × increment; cost = ceil((fee × 60 +
  billed × per_minute) / 60). A call that is not ANSWERED or has billsec 0 is
  ``UNANSWERED`` at 0 (its prefix is still reported, as ``rate()`` does).

It reads the Arrow buffers as numpy arrays (no copy) and returns numpy arrays. It does
not validate the other columns (a disposition is "ANSWERED" or not; billsec is taken as
given, without nulls) and builds no output table, both of which ``rate_table`` must do.
Amounts must fit int64. Building the deck's indexes is not part of the floor's timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]

from cdrrating import RatePlan

Lookup = Literal["per-length", "dense", "intervals"]
LOOKUPS: tuple[Lookup, ...] = ("per-length", "dense", "intervals")

WIDTH = 18  # digits in a key: 10**18 < 2**64
FAST = 24  # numbers of up to this many digits take the fast path (three 8-byte words)
DENSE_DIGITS = 6  # 10**6 int32 entries: 4 MB
RATED, UNANSWERED, UNRATED = 0, 1, 2
STATUS_NAMES = ("RATED", "UNANSWERED", "UNRATED")
NO_REASON, NO_RATE, INVALID_NUMBER = 0, 1, 2
REASON_NAMES = (None, "NO_RATE", "INVALID_NUMBER")

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

_POW10 = np.array([10**i for i in range(WIDTH + 1)], dtype=np.uint64)
_STRIP = np.frombuffer(b" -.()\t", dtype=np.uint8)
_ZERO, _PLUS = ord("0"), ord("+")
# Eight-byte words, read little-endian: byte 0 of a number is the word's lowest byte.
_ANSWERED = np.frombuffer(b"ANSWERED", dtype=np.uint64)[0]
_ZEROS = np.uint64(0x3030303030303030)  # "00000000"
_HIGH = np.uint64(0xF0F0F0F0F0F0F0F0)
_SIX = np.uint64(0x0606060606060606)
_LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [2**64 - 1], dtype=np.uint64)


@dataclass(frozen=True)
class Deck:
    """A plain plan as flat arrays, plus the index each lookup needs."""

    prefixes: list[str]
    plen: I64
    initial: I64
    increment: I64
    per_minute: I64
    fee60: I64  # connection fee × 60
    # per-length: (length, sorted prefix values, rate index), longest first
    by_length: list[tuple[int, U64, I64]]
    # dense: rate index of the longest prefix of <= DENSE_DIGITS digits (-1: none), and
    # whether a longer prefix starts with these digits
    dense: npt.NDArray[np.int32]
    dense_longer: Bool
    # intervals: [bounds[i], bounds[i + 1]) of 18-digit keys belongs to rate owner[i]
    bounds: U64
    owner: I64
    parent: I64  # rate index of the longest shorter prefix in the deck (-1: none)


@dataclass(frozen=True)
class Result:
    status: U8
    reason: U8
    cost: I64  # 0 where cost_null
    cost_null: Bool
    billed: I64
    rate: I64  # index into Deck.prefixes, -1: none


def plain_deck(plan: RatePlan) -> Deck:
    """The deck of a plain plan, or ValueError naming what the floor does not handle."""
    if str(plan.rounding) != "up" or plan.quantum_micros != 1:
        raise ValueError("the floor rounds up to 1 micro only")
    if tuple(plan.access_prefixes) != ("00",):
        raise ValueError("the floor strips the access prefix 00 only")
    if str(getattr(plan, "timezone", "UTC")) != "UTC" or getattr(plan, "holidays", None):
        raise ValueError("the floor takes no time zone and no holidays")
    rates = sorted(plan.rates, key=lambda r: r.prefix)
    for r in rates:
        if (
            r.tiers
            or r.grace_seconds
            or r.minimum_charge_micros
            or r.maximum_charge_micros is not None
            or r.schedule is not None
            or r.valid_from is not None
            or r.valid_until is not None
            or r.status != "active"
            or r.direction != "outbound"
            or len(r.prefix) > WIDTH
        ):
            raise ValueError(f"not a plain rate: {r!r}")
    prefixes = [r.prefix for r in rates]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("the floor takes one rate per prefix")

    def column(name: str) -> I64:
        return np.array([getattr(r, name) for r in rates], dtype=np.int64)

    plen = np.array([len(p) for p in prefixes], dtype=np.int64)
    values = np.array([int(p) if p else 0 for p in prefixes], dtype=np.uint64)
    keys = values * _POW10[WIDTH - plen]  # 18 digits, right-padded with zeros

    by_length = []
    for length in sorted(set(plen.tolist()), reverse=True):
        index = np.flatnonzero(plen == length)  # prefixes sorted as text: values sorted too
        by_length.append((length, values[index], index.astype(np.int64)))

    dense = np.full(10**DENSE_DIGITS, -1, dtype=np.int32)
    dense_longer = np.zeros(10**DENSE_DIGITS, dtype=bool)
    for i in np.argsort(plen, kind="stable").tolist():  # shorter first: longer overwrite
        length, value = int(plen[i]), int(values[i])
        if length <= DENSE_DIGITS:
            first = value * 10 ** (DENSE_DIGITS - length)
            dense[first : first + 10 ** (DENSE_DIGITS - length)] = i
        else:
            dense_longer[value // 10 ** (length - DENSE_DIGITS)] = True

    bounds, owner, parent = _intervals(keys, plen)
    return Deck(
        prefixes=prefixes,
        plen=plen,
        initial=column("initial_seconds"),
        increment=column("increment_seconds"),
        per_minute=column("per_minute_micros"),
        fee60=column("connection_fee_micros") * 60,
        by_length=by_length,
        dense=dense,
        dense_longer=dense_longer,
        bounds=bounds,
        owner=owner,
        parent=parent,
    )


def _intervals(keys: U64, plen: I64) -> tuple[U64, I64, I64]:
    """Flatten the nested prefix intervals into disjoint ones, each owned by the longest
    prefix that covers it. Prefixes sorted as text are sorted by key, then by length, so
    an enclosing prefix always comes before the prefixes under it."""
    bounds: list[int] = [0]
    owner: list[int] = [-1]
    parent = np.full(len(keys), -1, dtype=np.int64)
    stack: list[tuple[int, int]] = []  # (end key, rate index) of the open intervals
    for i, (key, length) in enumerate(zip(keys.tolist(), plen.tolist(), strict=True)):
        while stack and stack[-1][0] <= key:
            bounds.append(stack.pop()[0])
            owner.append(stack[-1][1] if stack else -1)
        if stack:
            parent[i] = stack[-1][1]
        bounds.append(key)
        owner.append(i)
        stack.append((key + 10 ** (WIDTH - length), i))
    while stack:
        bounds.append(stack.pop()[0])
        owner.append(stack[-1][1] if stack else -1)
    b = np.array(bounds, dtype=np.uint64)
    o = np.array(owner, dtype=np.int64)
    keep = np.append(b[1:] != b[:-1], True)  # of equal bounds, the last one holds
    return b[keep], o[keep], parent


# -- the kernel ---------------------------------------------------------------------------


def _buffers(column: Any, pad: int) -> tuple[I64, I64, U8]:
    """Start offsets, lengths and bytes (plus ``pad`` zero bytes) of an Arrow string column."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buf, data_buf = array.buffers()
    ends: I64 = np.frombuffer(offsets_buf, dtype=width).astype(np.int64)
    ends = ends[array.offset : array.offset + len(array) + 1]
    data = np.zeros(0, np.uint8) if data_buf is None else np.frombuffer(data_buf, dtype=np.uint8)
    return ends[:-1], ends[1:] - ends[:-1], np.concatenate((data, np.zeros(pad, np.uint8)))


def _words(data: U8) -> U64:
    """word[i] is the 8 bytes from data[i] on (unaligned; data must be padded by 7)."""
    return np.ndarray((data.size - 7,), dtype="<u8", buffer=data, strides=(1,))


def _eight_digits(word: U64) -> tuple[U64, Bool]:
    """The value of eight ASCII digits in a word, and whether they are all digits."""
    ok = ((word & _HIGH) == _ZEROS) & (((word + _SIX) & _HIGH) == _ZEROS)
    x = word - _ZEROS
    x = (x * np.uint64(10) + (x >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x * np.uint64(100) + (x >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x * np.uint64(10000) + (x >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    return x, ok


def normalise(column: Any) -> tuple[U64, I64, Bool]:
    """18-digit keys (right-padded with zeros), digit counts and validity of the numbers."""
    given, lengths, data = _buffers(column, pad=FAST + 8)
    words = _words(data)
    first = words[given]
    plus = ((first & np.uint64(0xFF)) == _PLUS) & (lengths > 0)
    after = np.where(plus, first >> np.uint64(8), first)
    zz = ((after & np.uint64(0xFFFF)) == np.uint64(0x3030)) & (lengths - plus >= 2)
    skip = plus + 2 * zz
    shifted = bool(skip.any())
    starts = given + skip
    count = lengths - skip

    keys = np.zeros(starts.size, dtype=np.uint64)
    valid = count > 0
    top = int(min(count.max(initial=0), FAST))
    for k, scale in ((0, 10**10), (8, 100), (16, 1)):
        if k >= top:
            break
        inside = _LOW_BYTES[np.clip(count - k, 0, 8)]
        word = first if k == 0 and not shifted else words[starts + k]
        value, ok = _eight_digits((word & inside) | (_ZEROS & ~inside))  # past the end: "0"
        valid &= ok
        keys += value * np.uint64(scale) if k < 16 else value // np.uint64(10**6)
    other = np.flatnonzero(~valid | (count > FAST))
    if other.size:
        keys[other], count[other], valid[other] = _general(data, given[other], lengths[other])
    keys[~valid] = 0
    return keys, count, valid


def _general(data: U8, starts: I64, lengths: I64) -> tuple[U64, I64, Bool]:
    """Normalise from scratch: strip the formatting, then '+', then '00'."""
    width = max(int(lengths.max()), 2)
    cols = np.arange(width)
    chars = data[np.minimum(starts[:, None] + cols, data.size - 1)]
    keep = (cols < lengths[:, None]) & ~np.isin(chars, _STRIP)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept characters first, in order
    chars = np.take_along_axis(chars, order, axis=1)
    kept = keep.sum(axis=1)
    rows = np.arange(starts.size)
    skip = ((kept > 0) & (chars[:, 0] == _PLUS)).astype(np.int64)
    zz = (kept - skip >= 2) & (chars[rows, np.minimum(skip, width - 1)] == _ZERO)
    zz &= chars[rows, np.minimum(skip + 1, width - 1)] == _ZERO
    skip += 2 * zz
    count = kept - skip
    rest = (cols >= skip[:, None]) & (cols < kept[:, None])
    digit = (chars >= _ZERO) & (chars <= _ZERO + 9)
    valid = (count > 0) & ~(rest & ~digit).any(axis=1)
    take = np.minimum(skip[:, None] + np.arange(WIDTH), width - 1)
    digits = np.take_along_axis(chars, take, axis=1).astype(np.uint64) - np.uint64(_ZERO)
    digits[np.arange(WIDTH) >= count[:, None]] = 0
    keys = np.zeros(starts.size, dtype=np.uint64)
    for j in range(WIDTH):
        keys = keys * np.uint64(10) + digits[:, j]
    return keys, count, valid


def _order(keys: U64) -> I64:
    """Rows in roughly ascending key order: the searches then walk the deck in order.

    Sorting one word per row (the key's high bits, then the row number) is several times
    faster than an argsort; keys are below 2**60, so 4 bits of them make room for every
    row-number bit past the fourth, and only the lowest of the key's ~18 digits blur.
    """
    bits = max(int(keys.size - 1).bit_length(), 1)
    packed = (keys >> np.uint64(max(bits - 4, 0))) << np.uint64(bits)
    packed |= np.arange(keys.size, dtype=np.uint64)
    packed.sort()
    return (packed & np.uint64((1 << bits) - 1)).astype(np.int64)


def _per_length(deck: Deck, keys: U64, count: I64, rows: I64, found: I64, *, above: int) -> None:
    """Longest first, over the prefix lengths > ``above``; a row stops at its first hit."""
    for length, values, index in deck.by_length:
        if length <= above:
            return
        if not rows.size:
            return
        fits = count[rows] >= length
        here = rows if fits.all() else rows[fits]
        heads = keys[here] // _POW10[WIDTH - length]
        pos = np.minimum(np.searchsorted(values, heads), values.size - 1)
        hit = values[pos] == heads
        if hit.any():
            found[here[hit]] = index[pos[hit]]
            rows = rows[found[rows] < 0]


def lookup(deck: Deck, keys: U64, count: I64, valid: Bool, how: Lookup) -> I64:
    """Rate index of the longest prefix of each valid number, -1 where none."""
    if how == "intervals":
        found = deck.owner[np.searchsorted(deck.bounds, keys, side="right") - 1]
        found[~valid] = -1
        # A number shorter than the prefix found: walk up to one it can match.
        short = np.flatnonzero(found >= 0)
        short = short[deck.plen[found[short]] > count[short]]
        while short.size:
            found[short] = deck.parent[found[short]]
            short = short[found[short] >= 0]
            short = short[deck.plen[found[short]] > count[short]]
        return found
    found = np.full(keys.size, -1, dtype=np.int64)
    if how == "per-length":
        _per_length(deck, keys, count, np.flatnonzero(valid), found, above=-1)
        return found
    # dense: numbers of DENSE_DIGITS digits or more read the table, then look for a
    # longer prefix where the table says there is one; shorter numbers search per length.
    head = valid & (count >= DENSE_DIGITS)
    first = (keys[head] // _POW10[WIDTH - DENSE_DIGITS]).astype(np.int64)
    found[head] = deck.dense[first]
    rows = np.flatnonzero(head)[deck.dense_longer[first]]
    longer = np.full(keys.size, -1, dtype=np.int64)
    _per_length(deck, keys, count, rows, longer, above=DENSE_DIGITS)
    found = np.where(longer >= 0, longer, found)
    _per_length(deck, keys, count, np.flatnonzero(valid & ~head), found, above=-1)
    return found


def rate(deck: Deck, table: pa.Table, how: Lookup = "intervals") -> Result:
    """Rate an Arrow table with columns destination_number, disposition and billsec."""
    keys, count, valid = normalise(table.column("destination_number"))
    d_starts, d_lengths, d_data = _buffers(table.column("disposition"), pad=8)
    answered = (d_lengths == 8) & (_words(d_data)[d_starts] == _ANSWERED)
    billsec = np.asarray(table.column("billsec").to_numpy(), dtype=np.int64)

    # In key order from here: the deck's arrays are read in order too.
    order = _order(keys)
    found = lookup(deck, keys[order], count[order], valid[order], how)
    billsec = billsec[order]
    billable = answered[order] & (billsec > 0)
    r = np.maximum(found, 0)
    initial, increment = deck.initial[r], deck.increment[r]
    steps = (billsec - initial + increment - 1) // increment
    billed = np.where(billsec <= initial, initial, initial + steps * increment)
    cost = (deck.fee60[r] + billed * deck.per_minute[r] + 59) // 60
    rated = billable & (found >= 0)
    unrated = billable & (found < 0)

    def back(sorted_values: Any) -> Any:
        out = np.empty_like(sorted_values)
        out[order] = sorted_values
        return out

    status = np.where(unrated, np.uint8(UNRATED), np.uint8(UNANSWERED))
    status[rated] = RATED
    reason = np.where(unrated, np.where(valid[order], NO_RATE, INVALID_NUMBER), NO_REASON)
    return Result(
        status=back(status),
        reason=back(reason.astype(np.uint8)),
        cost=back(np.where(rated, cost, 0)),
        cost_null=back(unrated),
        billed=back(np.where(rated, billed, 0)),
        rate=back(found),
    )


def rows(deck: Deck, result: Result) -> list[tuple[int | None, int, str, str | None, str | None]]:
    """(cost, billed seconds, status, reason, prefix) per row, to compare with rate_table."""
    prefixes = [None if i < 0 else deck.prefixes[i] for i in result.rate.tolist()]
    return [
        (None if null else cost, billed, STATUS_NAMES[status], REASON_NAMES[reason], prefix)
        for cost, null, billed, status, reason, prefix in zip(
            result.cost.tolist(),
            result.cost_null.tolist(),
            result.billed.tolist(),
            result.status.tolist(),
            result.reason.tolist(),
            prefixes,
            strict=True,
        )
    ]
