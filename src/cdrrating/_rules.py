"""Each rating rule, written once (private).

Both engines call these functions: the object engine (``rate()``, ``Rater``) with Python
ints, the table engine (``cdrrating.frame``) with numpy int64 arrays of many calls at
once. Every function here is written with operators that mean the same on both (``+``,
``//``, comparisons, ``&``, ``|``, ``divmod``) and three helpers (:func:`where`,
:func:`maximum`, :func:`minimum`) that pick Python or numpy by the type of their
argument, so one body states each rule. This module imports no numpy: an array argument
implies numpy is already imported.

docs/concepts.md links each rule to its function here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timezone
from typing import Any

# Anything an engine passes: a Python int (or bool), or a numpy array of them.
Num = Any

__all__ = [
    "FORMATTING",
    "Piece",
    "ScheduleTerms",
    "billable",
    "billsec_between",
    "billsec_fits",
    "ceil_div",
    "clamp",
    "covers",
    "first_step",
    "in_grace",
    "in_window",
    "lay",
    "maximum",
    "minimum",
    "normalise_number",
    "rate_pieces",
    "round_once",
    "settle",
    "where",
]


def _np() -> Any:
    return sys.modules["numpy"]


def where(condition: Num, if_true: Num, if_false: Num) -> Num:
    """``if_true`` where ``condition`` holds, else ``if_false`` (elementwise on arrays)."""
    if condition is True or condition is False:
        return if_true if condition else if_false
    return _np().where(condition, if_true, if_false)


def maximum(a: Num, b: Num) -> Num:
    if type(a) is int and type(b) is int:
        return a if a >= b else b
    return _np().maximum(a, b)


def minimum(a: Num, b: Num) -> Num:
    if type(a) is int and type(b) is int:
        return a if a <= b else b
    return _np().minimum(a, b)


def ceil_div(a: Num, b: Num) -> Num:
    """``ceil(a / b)`` for ``b > 0``, in integers only."""
    return -(-a // b)


# -- §2 what is billed ------------------------------------------------------------------------


def billable(answered: Num, billsec: Num) -> Num:
    """rating-rules §2: only an answered call with ``billsec > 0`` is billable."""
    return answered & (billsec > 0)


def billsec_between(answered_us: Num, ended_us: Num) -> Num:
    """rating-rules §2: billsec from answer and end, as instants in microseconds since
    the epoch: the elapsed seconds, rounded up (never negative)."""
    return maximum(ceil_div(ended_us - answered_us, 1_000_000), 0)


def billsec_fits(billsec: Num, answered_us: Num, ended_us: Num) -> Num:
    """rating-rules §2: a billsec the record's own clock allows: at most the elapsed
    seconds from answer to end, plus one when both are written to the whole second
    (answered 10:00:00.1 and ended 10:00:05.9 read as 5 s; the switch bills 6)."""
    whole = (answered_us % 1_000_000 == 0) & (ended_us % 1_000_000 == 0)
    return billsec <= billsec_between(answered_us, ended_us) + whole


# -- §4 grace, §3 steps and tiers ---------------------------------------------------------------


def in_grace(billsec: Num, grace_seconds: Num) -> Num:
    """rating-rules §4: a billable call of at most ``grace_seconds`` costs 0, no fee."""
    return billsec <= grace_seconds


#: One run of steps (rating-rules §3): the pieces a call's billed seconds are laid in.
#: ``(end, increment, per_minute, tag)``: from the end of the previous piece to ``end``
#: (None: unbounded) steps are ``increment`` seconds long at ``per_minute`` micros; a
#: piece whose increment is None has no rate (a schedule gap); ``tag`` is carried into
#: the runs (the band a step was priced in).
Piece = tuple[Num, Num, Num, int]


def lay(
    billsec: Num,
    first: Num,
    first_price: Num,
    pieces: Sequence[Piece],
    *,
    runs: list[tuple[int, int, int, int, int]] | None = None,
    on_gap: Callable[[int], Exception] | None = None,
) -> tuple[Num, Num]:
    """Lay the steps of a billable call (rating-rules §3) and sum their price exactly.

    The first step is ``first`` seconds at ``first_price``; then, piece by piece, steps
    of the piece's increment while the billed total is below ``billsec`` and below the
    piece's end. A step completes at its own length even past the piece's end, and the
    next piece starts from where it ended. Returns ``(billed seconds, Σ step seconds ×
    per-minute micros)``: the exact amount is that sum / 60, connection fee excluded.

    ``runs`` (Python ints only) collects ``(tag, start, steps, length, per_minute)`` per
    run of equal steps, the first step included, for ``explain()``.
    """
    position = first
    total = first * first_price
    if runs is not None:
        runs.append((pieces[0][3] if pieces else 0, 0, 1, first, first_price))
    for end, increment, price, tag in pieces:
        limit = billsec if end is None else minimum(billsec, end)
        if increment is None:
            if position < limit and on_gap is not None:
                raise on_gap(tag)
            continue
        steps = maximum(-((position - limit) // increment), 0)  # ceil_div, inlined: hot
        seconds = steps * increment
        if runs is not None and steps:
            runs.append((tag, position, steps, increment, price))
        total = total + seconds * price
        position = position + seconds
    return position, total


def rate_pieces(
    increment: Num, price: Num, tiers: Sequence[tuple[Num, Num, Num]], tag: int = 0
) -> list[Piece]:
    """The pieces of one rate: its own price and increment until the first tier's
    ``after_seconds``, then each tier ``(after_seconds, per_minute, increment)``."""
    pieces: list[Piece] = []
    for after, tier_price, tier_increment in tiers:
        pieces.append((after, increment, price, tag))
        increment, price = tier_increment, tier_price
    pieces.append((None, increment, price, tag))
    return pieces


def first_step(initial_seconds: Num, increment_seconds: Num) -> Num:
    """rating-rules §3: the first step is the initial block, or an increment if it is 0."""
    return where(initial_seconds > 0, initial_seconds, increment_seconds)


# -- §4 price ------------------------------------------------------------------------------------


def round_once(numerator: Num, denominator: Num, mode: str) -> Num:
    """``numerator / denominator`` (denominator > 0) rounded to an integer with a named
    mode (rating-rules §4: once, never per step). ``mode`` is a ``Rounding`` value."""
    if mode == "up":  # one division, not divmod's two results (the common mode)
        return -(-numerator // denominator)  # ceil_div, inlined: hot
    if mode == "down":
        return numerator // denominator
    q, r = divmod(numerator, denominator)  # floor division: 0 <= r < denominator
    twice = 2 * r
    if mode == "half_up":  # a tie rounds away from zero
        return q + ((twice > denominator) | ((twice == denominator) & (q >= 0)))
    # half_even: a tie rounds to the even neighbour
    return q + ((twice > denominator) | ((twice == denominator) & (q % 2 == 1)))


def clamp(cost: Num, minimum_charge: Num, maximum_charge: Num) -> Num:
    """rating-rules §4, after the one rounding: at least the minimum, at most the maximum
    (a maximum of None, or below 0 in an array, means none)."""
    if type(cost) is int:  # one call: plain comparisons, no dispatch
        cost = max(cost, minimum_charge)
        if maximum_charge is not None and cost > maximum_charge:
            cost = maximum_charge
        return cost
    if type(minimum_charge) is not int or minimum_charge > 0:
        # (A cost is never below 0: every amount is >= 0, so no minimum is no pass.)
        cost = maximum(cost, minimum_charge)
    if maximum_charge is None:
        return cost
    return where(maximum_charge >= 0, minimum(cost, maximum_charge), cost)


def settle(  # noqa: PLR0917 - the hot path of both engines: positional is faster
    total: Num, fee: Num, minimum_charge: Num, maximum_charge: Num, quantum: int, mode: str
) -> Num:
    """rating-rules §4: the exact sum (``total`` / 60 micros, from :func:`lay`) plus the
    connection fee, rounded once to a multiple of ``quantum``, then the minimum and
    maximum."""
    exact = total if type(fee) is int and fee == 0 else fee * 60 + total
    cost = round_once(exact, 60 * quantum, mode)
    if quantum != 1:  # a whole pass over an array's calls, for nothing at 1 micro
        cost = cost * quantum
    return clamp(cost, minimum_charge, maximum_charge)


# -- §5 which rate --------------------------------------------------------------------------------

#: What people type between the digits of a number; rating-rules §5 strips these.
FORMATTING = " -.()\t"
_STRIP = str.maketrans("", "", FORMATTING)


def normalise_number(number: str, access_prefixes: Sequence[str] = ("00",)) -> str | None:
    """Normalise a dialled number as rating-rules §5 says, or None if it is not a number.

    Strips spaces, ``-``, ``.``, ``(``, ``)``, a leading ``+``, then one international
    access prefix (the first of ``access_prefixes`` that matches). What remains must be
    ASCII digits.
    """
    n = number.translate(_STRIP)
    if n.startswith("+"):
        n = n[1:]
    for access in access_prefixes:
        if access and n.startswith(access):
            n = n[len(access) :]
            break
    if n and n.isascii() and n.isdigit():
        return n
    return None


def instant(dt: datetime) -> datetime:
    """The same instant, in a form that compares and subtracts as an instant. Python
    compares and subtracts two datetimes that share a tzinfo object by their wall
    clocks, which is wrong across a daylight-saving change; for a fixed offset
    (``timezone``) the wall clock is the instant, so only other zones go to UTC."""
    return dt if type(dt.tzinfo) is timezone else dt.astimezone(UTC)


def in_window(at: Num, valid_from: Num, valid_until: Num) -> Num:
    """rating-rules §5: a rate is a candidate while ``valid_from <= at < valid_until``
    (None: unbounded on that side). Datetimes are compared as instants."""
    if isinstance(at, datetime):
        # Python compares two datetimes that share a zone by their wall clocks, which
        # is wrong in the hour the clocks go back.
        at = instant(at)
        valid_from = instant(valid_from) if valid_from is not None else None
        valid_until = instant(valid_until) if valid_until is not None else None
    if valid_from is None:
        return valid_until is None or at < valid_until
    if valid_until is None:
        return valid_from <= at
    return (valid_from <= at) & (at < valid_until)


# -- §6 schedules ---------------------------------------------------------------------------------


#: A schedule as :func:`covers` reads it: weekdays as a bit mask (bit 0 = Monday), the
#: window's start and end in seconds of the day, and inclusive date ranges as ordinals.
ScheduleTerms = tuple[int, int, int, tuple[tuple[int, int], ...]]


def covers(
    terms: ScheduleTerms,
    weekday: Num,
    day: Num,
    seconds: Num,
    *,
    only: Sequence[Num] = (),
    excepted: Sequence[Num] = (),
) -> Num:
    """rating-rules §6: whether a schedule covers a local instant.

    The instant is its local ``weekday`` (0 = Monday), ``day`` (proleptic ordinal, as
    ``date.toordinal()``) and wall-clock ``seconds`` of the day. The window ``[start,
    end)`` wraps midnight when ``end <= start``, and is the whole day when they are
    equal. ``only`` and ``excepted`` say, for each ``only:`` and ``except:`` holiday
    calendar of the schedule, whether the day is one of its dates (computed by the
    caller: a set look-up, or ``numpy.isin``).
    """
    weekday_mask, start_s, end_s, date_ranges = terms
    ok = (weekday_mask >> weekday) & 1 == 1
    if start_s < end_s:
        ok = ok & (start_s <= seconds) & (seconds < end_s)
    elif start_s > end_s:
        ok = ok & ((seconds >= start_s) | (seconds < end_s))
    if date_ranges:
        inside: Num = False
        for first, last in date_ranges:
            inside = inside | ((first <= day) & (day <= last))
        ok = ok & inside
    if only:
        listed: Num = False
        for holiday in only:
            listed = listed | holiday
        ok = ok & listed
    for holiday in excepted:
        ok = ok & (holiday == False)  # noqa: E712 - elementwise on arrays, not identity
    return ok
