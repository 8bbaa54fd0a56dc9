"""Hypothesis strategies for cdrrating's public types.

Use them to property-test your own billing rules against random decks and calls::

    from hypothesis import given
    from cdrrating import rate
    from cdrrating.testing.strategies import cdrs, rate_plans

    @given(plan=rate_plans(), cdr=cdrs())
    def test_never_negative(plan, cdr):
        cost = rate(cdr, plan).cost_micros
        assert cost is None or cost >= 0

The names follow Hypothesis's own API style: plural nouns, keyword-only options,
options that vary accept either a plain value or a strategy, and impossible
combinations raise :class:`hypothesis.errors.InvalidArgument` when the strategy is
built. ``st.from_type(CDR)``, ``st.from_type(Rate)``, ``st.from_type(Tier)`` and
``st.from_type(RatePlan)`` use these strategies with their defaults (registered through
the ``hypothesis`` entry point). See ``docs/testing.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, TypeAlias, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from cdrrating.cdr import CDR, MAX_NUMBER_LEN, Direction, Disposition
from cdrrating.money import Rounding
from cdrrating.plan import RatePlan, normalise_number
from cdrrating.rates import MAX_PREFIX_LEN, Rate, RateStatus, Tier
from cdrrating.schedule import BandPolicy, Schedule

__all__ = [
    "DIGITS",
    "HOLIDAYS",
    "cdrs",
    "dialled_numbers",
    "micros",
    "prefixes",
    "rate_plans",
    "rates",
    "schedules",
    "tiers",
    "timestamps",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

#: An option that takes one value, a sequence of values to pick from, or a strategy.
_Choice: TypeAlias = "st.SearchStrategy[E] | Sequence[E | str] | E | str | None"

DIGITS = "0123456789"

#: The default span of call start times and validity-window boundaries. Rates and CDRs
#: drawn with the defaults share it, so windows actually matter to the calls.
MIN_TIMESTAMP = datetime(2024, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2026, 12, 31, tzinfo=UTC)

# Fixed offsets only: no time-zone database is needed, and every value is tz-aware.
_ZONES = (
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
)

_DEFAULT_MAX_MICROS = 10_000 * 1_000_000  # 10,000 currency units


# Defaults lean toward the common case, so that a random call usually meets a random
# deck (an outbound, answered call), while every other value still comes up often.
_MOSTLY_OUTBOUND = st.just(Direction.OUTBOUND) | st.sampled_from(Direction)
_MOSTLY_ANSWERED = st.just(Disposition.ANSWERED) | st.sampled_from(Disposition)


# -- argument checking ------------------------------------------------------------------


def _check_strategy(name: str, value: object) -> None:
    if not isinstance(value, st.SearchStrategy):
        raise InvalidArgument(f"{name}={value!r} must be a Hypothesis strategy")


def _check_size(name: str, value: object, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an int")
    if value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidArgument(f"{name}={value!r} must be at most {maximum}")
    return value


def _check_range(min_name: str, lo: int, max_name: str, hi: int) -> None:
    if lo > hi:
        raise InvalidArgument(f"{min_name}={lo!r} is greater than {max_name}={hi!r}")


def _as_strategy(
    name: str, value: object, parse: Any, default: st.SearchStrategy[T]
) -> st.SearchStrategy[T]:
    """``None`` → default; a strategy → itself mapped through ``parse``; a plain value →
    ``just(parse(value))``; a list/tuple of plain values → ``sampled_from`` them."""
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value.map(parse)
    try:
        if isinstance(value, list | tuple | frozenset | set):
            if not value:
                raise InvalidArgument(f"{name}={value!r} must not be empty")
            return st.sampled_from(sorted({parse(v) for v in value}, key=str))
        return st.just(parse(value))
    except ValueError as error:  # cdrrating.ValidationError is a ValueError
        raise InvalidArgument(f"{name}={value!r}: {error}") from None


def _check_digits(name: str, digits: object) -> str:
    if not isinstance(digits, str) or not digits or not all(c in DIGITS for c in digits):
        raise InvalidArgument(f"{name}={digits!r} must be a non-empty str of ASCII digits")
    return "".join(sorted(set(digits)))


# -- money and numbers ------------------------------------------------------------------


def micros(*, min_value: int = 0, max_value: int | None = None) -> st.SearchStrategy[int]:
    """Amounts of money as ``int`` micro-units (1 currency unit = 1,000,000 micros).

    ``max_value`` defaults to 10,000 currency units. Negative bounds are allowed (for
    amounts such as refunds); prices, fees and charges of a :class:`~cdrrating.Rate`
    must be ``>= 0``.
    """
    _check_size("min_value", min_value, minimum=-(2**63))
    if max_value is None:
        max_value = max(min_value, _DEFAULT_MAX_MICROS)
    _check_size("max_value", max_value, minimum=-(2**63))
    _check_range("min_value", min_value, "max_value", max_value)
    return st.integers(min_value, max_value)


def prefixes(
    *, min_size: int = 0, max_size: int = 6, digits: str = DIGITS
) -> st.SearchStrategy[str]:
    """Rate prefixes: strings of ``digits`` (ASCII), ``min_size`` to ``max_size`` long.

    The empty prefix is the catch-all of rating-rules §5; pass ``min_size=1`` to leave it
    out. A small ``digits`` alphabet (``digits="12"``) makes nested prefixes likely.
    Prefixes may start with ``0``; :func:`dialled_numbers` still produces numbers under
    them by writing the access prefix first.
    """
    _check_size("min_size", min_size)
    _check_size("max_size", max_size, maximum=MAX_PREFIX_LEN)
    _check_range("min_size", min_size, "max_size", max_size)
    alphabet = _check_digits("digits", digits)
    return st.text(st.sampled_from(alphabet), min_size=min_size, max_size=max_size)


_SEPARATORS = (" ", "-", ".")


@st.composite
def _numbers(
    draw: st.DrawFn,
    *,
    heads: st.SearchStrategy[str],
    min_size: int,
    max_size: int,
    formatted: bool,
    access_prefixes: tuple[str, ...],
) -> str:
    head = draw(heads)
    if len(head) > max_size:
        raise InvalidArgument(
            f"prefix {head!r} has {len(head)} digits, more than max_size={max_size}"
        )
    tail = draw(
        st.text(
            st.sampled_from(DIGITS),
            min_size=max(0, min_size - len(head)),
            max_size=max_size - len(head),
        )
    )
    digits = head + tail
    # Normalisation strips one access prefix: a number whose digits start with one must
    # be written after an access prefix, or it would be read as a shorter number.
    needs_access = bool(access_prefixes) and any(
        a and digits.startswith(a) for a in access_prefixes
    )
    access = access_prefixes[0] if access_prefixes else ""
    if not formatted:
        text = access + digits if needs_access else digits
    else:
        lead = draw(
            st.sampled_from(["", "+", "access"] if not needs_access else ["access", "+access"])
            if access
            else st.sampled_from(["", "+"])
        )
        text = lead.replace("access", access + draw(st.sampled_from(["", " "])))
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(digits) - 1)), max_size=4)))
        start = 0
        parts = []
        for cut in cuts:
            if cut < len(digits):
                parts.append(digits[start:cut])
                start = cut
        parts.append(digits[start:])
        separator = draw(st.sampled_from(_SEPARATORS))
        if len(parts) > 1 and draw(st.booleans()):
            parts[0] = f"({parts[0]})"
        text += separator.join(parts)
        if len(text) > MAX_NUMBER_LEN:  # too much decoration for a CDR field
            text = access + digits if needs_access else digits
    assert normalise_number(text, access_prefixes) == digits, (text, digits)
    return text


def dialled_numbers(
    *,
    prefixes: st.SearchStrategy[str] | Sequence[str] | None = None,
    plan: RatePlan | None = None,
    min_size: int = 1,
    max_size: int | None = None,
    formatted: bool = False,
    access_prefixes: Sequence[str] | None = None,
) -> st.SearchStrategy[str]:
    """Dialled numbers as a switch reports them, as ``str``.

    Each number *normalises* (:func:`cdrrating.normalise_number`) to ``min_size`` to
    ``max_size`` digits (default 15, the E.164 maximum, or the longest prefix of a
    sequence or plan when that is longer). With ``prefixes`` (a strategy or a sequence
    of digit strings)
    or ``plan`` (the prefixes of its rates, and its access prefixes), the normalised
    number starts with one of those prefixes. ``formatted=True`` writes numbers the way
    people do: a leading ``+`` or access prefix (``00``), spaces, ``-`` or ``.`` between
    digit groups, the first group in parentheses. A number whose digits start with an
    access prefix is always written after one, so that it normalises to itself.
    """
    if prefixes is not None and plan is not None:
        raise InvalidArgument("pass prefixes= or plan=, not both")
    _check_size("min_size", min_size, minimum=1)
    if max_size is None:
        known: list[str] = []
        if isinstance(plan, RatePlan):
            known = [r.prefix for r in plan.rates]
        elif isinstance(prefixes, list | tuple):
            known = [p for p in prefixes if isinstance(p, str)]
        max_size = min(MAX_NUMBER_LEN - 4, max([15, min_size, *map(len, known)]))
    _check_size("max_size", max_size, maximum=MAX_NUMBER_LEN - 4)
    _check_range("min_size", min_size, "max_size", max_size)
    if not isinstance(formatted, bool):
        raise InvalidArgument(f"formatted={formatted!r} must be a bool")
    if plan is not None:
        if not isinstance(plan, RatePlan):
            raise InvalidArgument(f"plan={plan!r} must be a cdrrating.RatePlan")
        if access_prefixes is not None:
            raise InvalidArgument("pass access_prefixes= or plan= (which has its own), not both")
        access = plan.access_prefixes
        pool = sorted({r.prefix for r in plan.rates})
        heads: st.SearchStrategy[str] = st.sampled_from(pool) if pool else st.just("")
        _check_prefix_lengths(pool, max_size)
    else:
        access = ("00",) if access_prefixes is None else tuple(access_prefixes)
        if prefixes is None:
            heads = st.just("")
        elif isinstance(prefixes, st.SearchStrategy):
            heads = prefixes
        elif isinstance(prefixes, str):
            raise InvalidArgument(
                f"prefixes={prefixes!r} must be a strategy or a sequence of prefixes, not a str"
            )
        else:
            pool = list(prefixes)
            if not pool:
                raise InvalidArgument("prefixes= must not be empty")
            for p in pool:
                if not isinstance(p, str) or (p and not (p.isascii() and p.isdigit())):
                    raise InvalidArgument(f"prefix {p!r} in prefixes= must be a str of digits")
            _check_prefix_lengths(pool, max_size)
            heads = st.sampled_from(pool)
    for a in access:
        if not isinstance(a, str) or not (a.isascii() and a.isdigit()):
            raise InvalidArgument(f"access prefix {a!r} must be a non-empty str of digits")
    if max_size + max(map(len, access), default=0) > MAX_NUMBER_LEN:
        raise InvalidArgument(
            f"max_size={max_size} digits after an access prefix would not fit a CDR's "
            f"{MAX_NUMBER_LEN}-character destination_number"
        )
    return _numbers(
        heads=heads,
        min_size=min_size,
        max_size=max_size,
        formatted=formatted,
        access_prefixes=tuple(access),
    )


_prefixes = prefixes  # the rates(prefixes=...) argument shadows the function


def _check_prefix_lengths(pool: Sequence[str], max_size: int) -> None:
    longest = max(pool, key=len, default="")
    if len(longest) > max_size:
        raise InvalidArgument(
            f"prefix {longest!r} has {len(longest)} digits, more than max_size={max_size}"
        )


# -- time ---------------------------------------------------------------------------------


def timestamps(
    *, min_value: datetime = MIN_TIMESTAMP, max_value: datetime = MAX_TIMESTAMP
) -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes between two aware bounds, in a few fixed UTC offsets.

    The defaults (2024-2026) are shared by :func:`rates` (validity windows) and
    :func:`cdrs` (start times).
    """
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidArgument(f"{name}={value!r} must be a timezone-aware datetime")
    if min_value > max_value:
        raise InvalidArgument(f"min_value={min_value!r} is later than max_value={max_value!r}")
    lo = min_value.astimezone(UTC).replace(tzinfo=None)
    hi = max_value.astimezone(UTC).replace(tzinfo=None)
    return st.builds(
        lambda naive, zone: naive.replace(tzinfo=UTC).astimezone(zone),
        st.datetimes(lo, hi),
        st.sampled_from(_ZONES),
    )


_timestamps = timestamps  # rates() and cdrs() take a timestamps= argument


# -- schedules ----------------------------------------------------------------------------

#: Holiday calendars that schedules drawn by default may name, and that
#: :func:`rate_plans` gives its plans when they have schedules.
HOLIDAYS: dict[str, frozenset[date]] = {
    "H1": frozenset({date(2025, 12, 25), date(2025, 12, 26), date(2026, 1, 1)}),
    "H2": frozenset({date(2025, 3, 30), date(2025, 10, 26), date(2026, 3, 29)}),
}

# Window edges on whole minutes and a few seconds; 00:00 both ends is the whole day.
_EDGES = st.sampled_from([0, 3_600, 7_200, 8 * 3_600, 9 * 3_600 + 30 * 60, 18 * 3_600, 86_399])


@st.composite
def _schedules(draw: st.DrawFn, *, calendars: tuple[str, ...]) -> Schedule:
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    start, end = draw(_EDGES), draw(_EDGES)
    kwargs: dict[str, Any] = {
        "weekdays": days,
        "start": time(start // 3600, start // 60 % 60, start % 60),
        "end": time(end // 3600, end // 60 % 60, end % 60),
    }
    if draw(st.integers(0, 4)) == 0:
        first = draw(st.dates(date(2024, 1, 1), date(2026, 12, 31)))
        kwargs["dates"] = ((first, first + timedelta(days=draw(st.integers(0, 60)))),)
    if calendars and draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(calendars))
        key = "only_holidays" if draw(st.booleans()) else "except_holidays"
        kwargs[key] = (name,)
    return Schedule(**kwargs)


def schedules(*, calendars: Sequence[str] | None = None) -> st.SearchStrategy[Schedule]:
    """Valid :class:`~cdrrating.Schedule` objects: some weekdays, a time-of-day window
    (sometimes wrapping midnight, sometimes the whole day), sometimes a date range, and
    sometimes ``only:`` or ``except:`` one of ``calendars`` (default the names of
    :data:`HOLIDAYS`; pass ``()`` for none). A plan using them needs those calendars."""
    names = tuple(HOLIDAYS) if calendars is None else tuple(calendars)
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"calendar name {name!r} must be a non-empty str")
    return _schedules(calendars=names)


# -- rates --------------------------------------------------------------------------------


def tiers(
    *,
    min_size: int = 0,
    max_size: int = 3,
    prices: st.SearchStrategy[int] | None = None,
    max_after_seconds: int = 600,
) -> st.SearchStrategy[tuple[Tier, ...]]:
    """Valid tier tuples for :class:`~cdrrating.Rate`: ``after_seconds`` strictly
    increasing from 1 to ``max_after_seconds``, increments 1-60 s, ``prices`` per
    minute (default :func:`micros` up to 10 units)."""
    _check_size("min_size", min_size)
    _check_size("max_size", max_size)
    _check_range("min_size", min_size, "max_size", max_size)
    _check_size("max_after_seconds", max_after_seconds, minimum=max(1, max_size))
    if prices is None:
        prices = micros(max_value=10_000_000)
    _check_strategy("prices", prices)
    return _tiers(
        afters=st.lists(
            st.integers(1, max_after_seconds), min_size=min_size, max_size=max_size, unique=True
        ),
        prices=prices,
    )


_TIER_INCREMENTS = st.integers(1, 60)


@st.composite
def _tiers(
    draw: st.DrawFn, *, afters: st.SearchStrategy[list[int]], prices: st.SearchStrategy[int]
) -> tuple[Tier, ...]:
    return tuple(
        Tier(after, draw(prices), draw(_TIER_INCREMENTS)) for after in sorted(draw(afters))
    )


_COMMON_INCREMENTS = ((60, 60), (30, 6), (1, 1), (0, 60), (60, 1), (30, 30), (6, 6))


def _parse_increment_pair(value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(type(v) is int for v in value)
        or value[0] < 0
        or value[1] < 1
    ):
        raise InvalidArgument(
            f"increment {value!r} must be a tuple (initial_seconds >= 0, increment_seconds >= 1)"
        )
    return value


@st.composite
def _rates(
    draw: st.DrawFn,
    *,
    prefix_s: st.SearchStrategy[str],
    price_s: st.SearchStrategy[int],
    direction_s: st.SearchStrategy[Direction],
    status_s: st.SearchStrategy[RateStatus],
    priority_s: st.SearchStrategy[int],
    increment_s: st.SearchStrategy[tuple[int, int]],
    with_tiers: bool,
    with_windows: bool,
    with_fees: bool,
    with_grace: bool,
    timestamp_s: st.SearchStrategy[datetime],
    schedule_s: st.SearchStrategy[Schedule] | None,
) -> Rate:
    kwargs: dict[str, Any] = {}
    if schedule_s is not None and draw(st.booleans()):
        kwargs["schedule"] = draw(schedule_s)
    initial, increment = draw(increment_s)
    kwargs["initial_seconds"], kwargs["increment_seconds"] = initial, increment
    if with_tiers and draw(st.booleans()):
        kwargs["tiers"] = draw(_SOME_TIERS)
    if with_fees:
        kwargs["connection_fee_micros"] = draw(_FEES)
        minimum = draw(_MINIMUMS)
        kwargs["minimum_charge_micros"] = minimum
        headroom = draw(_HEADROOM)
        kwargs["maximum_charge_micros"] = None if headroom is None else minimum + headroom
    if with_grace:
        kwargs["grace_seconds"] = draw(_GRACE)
    if with_windows:
        start = draw(st.none() | timestamp_s)
        end = draw(st.none() | timestamp_s)
        if start is not None and end is not None:
            if start == end:
                end = None
            elif end < start:
                start, end = end, start
        kwargs["valid_from"], kwargs["valid_until"] = start, end
    prefix = draw(prefix_s)
    if draw(st.booleans()):
        kwargs["destination"] = f"Zone {prefix or 'ROW'}"
    return Rate(
        prefix,
        draw(price_s),
        priority=draw(priority_s),
        status=draw(status_s),
        direction=draw(direction_s),
        **kwargs,
    )


# Built once: a strategy built inside a draw is validated again on every draw.
_SOME_TIERS = tiers(min_size=1)
_FEES = st.just(0) | micros(max_value=1_000_000)
_MINIMUMS = st.just(0) | micros(max_value=2_000_000)
_HEADROOM = st.none() | micros(max_value=20_000_000)
_GRACE = st.just(0) | st.integers(1, 10)


def rates(
    *,
    prefixes: st.SearchStrategy[str] | Sequence[str] | None = None,
    per_minute_micros: st.SearchStrategy[int] | int | None = None,
    directions: _Choice[Direction] = None,
    statuses: _Choice[RateStatus] = None,
    priorities: st.SearchStrategy[int] | int | None = None,
    increments: st.SearchStrategy[tuple[int, int]] | tuple[int, int] | None = None,
    with_tiers: bool = True,
    with_windows: bool = False,
    with_fees: bool = True,
    with_grace: bool = True,
    timestamps: st.SearchStrategy[datetime] | None = None,
    schedules: st.SearchStrategy[Schedule] | None = None,
) -> st.SearchStrategy[Rate]:
    """Valid :class:`~cdrrating.Rate` objects.

    - ``prefixes``: a strategy of digit strings or a sequence to pick from (default
      :func:`prefixes`, catch-all included).
    - ``per_minute_micros``: the price (default :func:`micros` up to 10 units a minute).
    - ``directions`` / ``statuses``: a value, a sequence to pick from, or a strategy
      (default: every direction, outbound more often than the others; ``active`` or
      ``inactive``).
    - ``priorities``: default integers 0-3.
    - ``increments``: ``(initial_seconds, increment_seconds)`` pairs (default: common
      deck values such as 60/60, 30/6, 1/1, 0/60, and random ones).
    - ``with_tiers``: sometimes add 1-3 :class:`~cdrrating.Tier`.
    - ``with_windows``: sometimes set ``valid_from``/``valid_until`` from ``timestamps``
      (default :func:`timestamps`).
    - ``with_fees``: sometimes a connection fee, minimum and maximum charge
      (maximum >= minimum). ``with_grace``: sometimes a grace period of 1-10 s.
    - ``schedules``: a strategy of :class:`~cdrrating.Schedule` (e.g. :func:`schedules`)
      to give about half the rates a schedule; default none.
    """
    if prefixes is None:
        prefix_s: st.SearchStrategy[str] = _prefixes()
    elif isinstance(prefixes, st.SearchStrategy):
        prefix_s = prefixes
    elif isinstance(prefixes, str):
        raise InvalidArgument(
            f"prefixes={prefixes!r} must be a strategy or a sequence of prefixes, not a str"
        )
    else:
        pool = list(prefixes)
        if not pool:
            raise InvalidArgument("prefixes= must not be empty")
        for p in pool:
            try:
                Rate(p, 0)
            except ValueError as error:
                raise InvalidArgument(f"prefix {p!r} in prefixes=: {error}") from None
        prefix_s = st.sampled_from(pool)

    def price(v: Any) -> int:
        if type(v) is not int or v < 0:
            raise InvalidArgument(f"per_minute_micros={v!r} must be an int >= 0")
        return int(v)

    def priority(v: Any) -> int:
        if type(v) is not int:
            raise InvalidArgument(f"priority {v!r} must be an int")
        return int(v)

    price_s = _as_strategy(
        "per_minute_micros", per_minute_micros, price, micros(max_value=10_000_000)
    )
    direction_s = _as_strategy("directions", directions, Direction.parse, _MOSTLY_OUTBOUND)
    status_s = _as_strategy("statuses", statuses, RateStatus.parse, st.sampled_from(RateStatus))
    priority_s = _as_strategy("priorities", priorities, priority, st.integers(0, 3))
    if isinstance(increments, tuple):
        increment_s = st.just(_parse_increment_pair(increments))
    else:
        increment_s = _as_strategy(
            "increments",
            increments,
            _parse_increment_pair,
            st.sampled_from(_COMMON_INCREMENTS)
            | st.tuples(st.integers(0, 120), st.integers(1, 60)),
        )
    for name, flag in (
        ("with_tiers", with_tiers),
        ("with_windows", with_windows),
        ("with_fees", with_fees),
        ("with_grace", with_grace),
    ):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name}={flag!r} must be a bool")
    if schedules is not None:
        _check_strategy("schedules", schedules)
    if timestamps is None:
        timestamp_s = _timestamps()
    else:
        _check_strategy("timestamps", timestamps)
        if not with_windows:
            raise InvalidArgument(
                "timestamps= only shapes validity windows: pass with_windows=True"
            )
        timestamp_s = timestamps
    return _rates(
        prefix_s=prefix_s,
        price_s=price_s,
        direction_s=direction_s,
        status_s=status_s,
        priority_s=priority_s,
        increment_s=increment_s,
        with_tiers=with_tiers,
        with_windows=with_windows,
        with_fees=with_fees,
        with_grace=with_grace,
        timestamp_s=timestamp_s,
        schedule_s=schedules,
    )


# -- plans --------------------------------------------------------------------------------


def _window(rate: Rate) -> tuple[datetime, datetime]:
    return (
        rate.valid_from or datetime.min.replace(tzinfo=UTC),
        rate.valid_until or datetime.max.replace(tzinfo=UTC),
    )


def _disambiguate(drawn: list[Rate]) -> list[Rate]:
    """Raise the priority of each active rate that would overlap an earlier one of the
    same prefix, direction and priority, so the plan is never ambiguous."""
    kept: list[Rate] = []
    taken: dict[tuple[str, Direction], list[Rate]] = {}
    for rate in drawn:
        if rate.status is not RateStatus.ACTIVE:
            kept.append(rate)
            continue
        group = taken.setdefault((rate.prefix, rate.direction), [])
        lo, hi = _window(rate)
        fixed = rate
        if any(
            other.priority == rate.priority and _window(other)[0] < hi and lo < _window(other)[1]
            for other in group
        ):
            fixed = attrs.evolve(rate, priority=max(o.priority for o in group) + 1)
        group.append(fixed)
        kept.append(fixed)
    return kept


@st.composite
def _nested_prefixes(draw: st.DrawFn) -> st.SearchStrategy[str]:
    """A pool of prefixes that nest (``4``, ``44``, ``4420``, ``""``), to draw rates from."""
    pool: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        parent = draw(st.sampled_from(["", *pool]))
        grown = parent + draw(st.text(st.sampled_from(DIGITS), max_size=3))
        pool.append(grown[:10])
    return st.sampled_from(pool)


@st.composite
def _plans(
    draw: st.DrawFn,
    *,
    rate_s: st.SearchStrategy[Rate] | None,
    min_size: int,
    max_size: int,
    currency_s: st.SearchStrategy[str],
    rounding_s: st.SearchStrategy[Rounding],
    quantum_s: st.SearchStrategy[int],
    access_s: st.SearchStrategy[tuple[str, ...]],
    name_s: st.SearchStrategy[str],
    timezone_s: st.SearchStrategy[str],
    band_policy_s: st.SearchStrategy[BandPolicy],
    with_schedules: bool,
) -> RatePlan:
    if rate_s is None:
        rate_s = rates(
            prefixes=draw(_nested_prefixes()),
            with_windows=draw(st.booleans()),
            schedules=_DEFAULT_SCHEDULES if with_schedules else None,
        )
    drawn = draw(st.lists(rate_s, min_size=min_size, max_size=max_size))
    access: tuple[str, ...] = draw(access_s)
    named = {n for r in drawn if r.schedule is not None for n in r.schedule.calendars}
    holidays = {n: HOLIDAYS.get(n, frozenset()) for n in named}
    return RatePlan(
        _disambiguate(drawn),
        currency=draw(currency_s),
        rounding=draw(rounding_s),
        quantum_micros=draw(quantum_s),
        access_prefixes=access,
        name=draw(name_s),
        timezone=draw(timezone_s),
        holidays=holidays,
        band_policy=draw(band_policy_s),
    )


_DEFAULT_SCHEDULES = schedules()


def rate_plans(
    *,
    rates: st.SearchStrategy[Rate] | None = None,
    min_size: int = 0,
    max_size: int = 12,
    currency: st.SearchStrategy[str] | str | None = None,
    rounding: st.SearchStrategy[Rounding] | Rounding | str | None = None,
    quantum_micros: st.SearchStrategy[int] | int | None = None,
    access_prefixes: st.SearchStrategy[tuple[str, ...]] | Sequence[str] | None = None,
    name: st.SearchStrategy[str] | str | None = None,
    timezone: st.SearchStrategy[str] | str | None = None,
    band_policy: st.SearchStrategy[BandPolicy] | BandPolicy | str | None = None,
    with_schedules: bool = False,
) -> st.SearchStrategy[RatePlan]:
    """Valid, never ambiguous :class:`~cdrrating.RatePlan` objects of ``min_size`` to
    ``max_size`` rates.

    ``rates`` defaults to :func:`rates` over a small pool of nested prefixes (``""``,
    ``3``, ``31``, ``3120`` …), with validity windows in about half the plans, so that
    longest-prefix selection, priorities and windows all get exercised. A drawn rate
    that would make the plan ambiguous (same prefix, direction and priority as an
    earlier active rate, overlapping window) gets a priority one above the highest of
    its group, so building the plan never raises :class:`~cdrrating.PlanError`.

    ``currency`` (default EUR, USD or GBP), ``rounding`` (default any mode),
    ``quantum_micros`` (default 1, 100 or 10,000) and ``name`` take a value or a
    strategy; ``access_prefixes`` a sequence of digit strings or a strategy of tuples
    (default ``("00",)``).

    ``timezone`` (default ``"UTC"``) and ``band_policy`` (default ``split``) take a value
    or a strategy. With ``with_schedules=True`` the default rates get schedules from
    :func:`schedules` about half the time; a plan gets the calendars of
    :data:`HOLIDAYS` its schedules name. Such plans may have schedule gaps (times when
    no rate of a prefix is in force): ``rate()`` raises :class:`~cdrrating.PlanError`
    for a call that has a step in one, as ``plan.check()`` warns.
    """
    if rates is not None:
        _check_strategy("rates", rates)
    _check_size("min_size", min_size)
    _check_size("max_size", max_size)
    _check_range("min_size", min_size, "max_size", max_size)

    def currency_code(v: Any) -> str:
        if not (isinstance(v, str) and len(v) == 3 and v.isascii() and v.isupper()):
            raise InvalidArgument(f"currency={v!r} must be an ISO 4217 code such as 'EUR'")
        return v

    def quantum(v: Any) -> int:
        if type(v) is not int or v < 1:
            raise InvalidArgument(f"quantum_micros={v!r} must be an int >= 1")
        return int(v)

    def text(v: Any) -> str:
        if not isinstance(v, str):
            raise InvalidArgument(f"name={v!r} must be a str")
        return v

    currency_s = _as_strategy(
        "currency", currency, currency_code, st.sampled_from(["EUR", "USD", "GBP"])
    )
    rounding_s = _as_strategy("rounding", rounding, Rounding.parse, st.sampled_from(Rounding))
    quantum_s = _as_strategy(
        "quantum_micros", quantum_micros, quantum, st.sampled_from([1, 100, 10_000])
    )
    name_s = _as_strategy("name", name, text, st.just(""))
    if access_prefixes is None:
        access_s: st.SearchStrategy[tuple[str, ...]] = st.just(("00",))
    elif isinstance(access_prefixes, st.SearchStrategy):
        access_s = access_prefixes
    elif isinstance(access_prefixes, str):
        raise InvalidArgument(
            f"access_prefixes={access_prefixes!r} must be a sequence of str, e.g. ('00', '011')"
        )
    else:
        access = tuple(access_prefixes)
        for a in access:
            if not isinstance(a, str) or not (a.isascii() and a.isdigit()):
                raise InvalidArgument(f"access prefix {a!r} must be a non-empty str of digits")
        access_s = st.just(access)
    timezone_s = _as_strategy("timezone", timezone, _zone_name, st.just("UTC"))
    band_policy_s = _as_strategy(
        "band_policy", band_policy, BandPolicy.parse, st.just(BandPolicy.SPLIT)
    )
    if not isinstance(with_schedules, bool):
        raise InvalidArgument(f"with_schedules={with_schedules!r} must be a bool")
    return _plans(
        rate_s=rates,
        min_size=min_size,
        max_size=max_size,
        currency_s=currency_s,
        rounding_s=rounding_s,
        quantum_s=quantum_s,
        access_s=access_s,
        name_s=name_s,
        timezone_s=timezone_s,
        band_policy_s=band_policy_s,
        with_schedules=with_schedules,
    )


def _zone_name(value: Any) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidArgument(f"timezone={value!r} must be an IANA zone name") from None
    return str(value)


# -- call detail records ----------------------------------------------------------------------


_IDS = st.text(st.sampled_from("abcdef0123456789-"), min_size=1, max_size=36).filter(
    lambda s: s.strip() != ""
)
_LABELS = st.text(st.sampled_from("abcxyz0123456789_-"), min_size=1, max_size=12)


@st.composite
def _cdrs(
    draw: st.DrawFn,
    *,
    number_s: st.SearchStrategy[str],
    disposition_s: st.SearchStrategy[Disposition],
    direction_s: st.SearchStrategy[Direction],
    billsec_s: st.SearchStrategy[int],
    timestamp_s: st.SearchStrategy[datetime],
    tenant_s: st.SearchStrategy[str | None],
    with_timestamps: bool,
    with_details: bool,
    allow_unanswered_billsec: bool,
) -> CDR:
    disposition = draw(disposition_s)
    answered = disposition is Disposition.ANSWERED
    billsec = draw(billsec_s)
    if billsec < 0:
        raise InvalidArgument(f"billsec= drew {billsec!r}; billsec must be >= 0")
    if not answered and not allow_unanswered_billsec:
        billsec = 0
    started = draw(timestamp_s)
    zone = started.tzinfo

    def later(delta: timedelta) -> datetime:
        # On the time line, then back to the start's zone: adding to a datetime in a
        # zone with daylight-saving changes would add wall-clock time.
        return (started.astimezone(UTC) + delta).astimezone(zone)

    fields: dict[str, Any] = {}
    if with_timestamps and (answered or billsec > 0):
        ring = timedelta(microseconds=draw(st.integers(0, 60_000_000)))
        # billsec = ceil(ended_at - answered_at), as rating-rules §2 derives it.
        short = draw(st.integers(0, 999_999)) if billsec > 0 else 0
        whole = ring + timedelta(seconds=billsec, microseconds=-short)
        fields["answered_at"], fields["ended_at"] = later(ring), later(whole)
        duration = whole.days * 86_400 + whole.seconds + (1 if whole.microseconds else 0)
    elif with_timestamps:
        ringing = draw(st.integers(0, 60_000_000))
        fields["ended_at"] = later(timedelta(microseconds=ringing))
        duration = -(-ringing // 1_000_000)
    else:
        duration = billsec + draw(st.integers(0, 60))
    if with_details:
        fields["extension"] = draw(st.none() | _LABELS)
        fields["hangup_cause"] = draw(
            st.none() | st.sampled_from(["NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER"])
        )
        fields["queue_id"] = draw(st.none() | _LABELS)
        fields["agent_id"] = draw(st.none() | _LABELS)
        fields["extra"] = draw(
            st.dictionaries(
                st.sampled_from(["codec", "mos", "jitter_ms", "sip_call_id"]),
                st.integers(0, 500) | _LABELS,
                max_size=3,
            )
        )
    return CDR(
        call_id=draw(_IDS),
        started_at=started,
        destination_number=draw(number_s),
        caller_number=draw(st.just("") | st.text(st.sampled_from(DIGITS), min_size=3, max_size=15)),
        direction=draw(direction_s),
        disposition=disposition,
        billsec=billsec,
        duration=duration,
        tenant=draw(tenant_s),
        **fields,
    )


def cdrs(
    *,
    numbers: st.SearchStrategy[str] | None = None,
    dispositions: _Choice[Disposition] = None,
    directions: _Choice[Direction] = None,
    billsec: st.SearchStrategy[int] | int | None = None,
    timestamps: st.SearchStrategy[datetime] | None = None,
    tenants: st.SearchStrategy[str | None] | Sequence[str | None] | str | None = None,
    with_timestamps: bool = True,
    with_details: bool = False,
    allow_unanswered_billsec: bool = False,
) -> st.SearchStrategy[CDR]:
    """Valid :class:`~cdrrating.CDR` objects.

    Every CDR keeps the invariants: tz-aware timestamps, ``billsec <= duration``,
    ``started_at <= answered_at <= ended_at``, and with ``with_timestamps`` (default)
    ``billsec == ceil(ended_at - answered_at)`` and ``duration == ceil(ended_at -
    started_at)``.

    - ``numbers``: destination numbers (default :func:`dialled_numbers` with formatting).
    - ``dispositions`` / ``directions``: a value, a sequence to pick from or a strategy
      (default: all of them, ANSWERED and outbound more often than the others). Calls
      that are not ANSWERED have ``billsec == 0`` and no ``answered_at`` unless
      ``allow_unanswered_billsec=True`` (some switches report billsec on BUSY or FAILED
      calls; rating must still charge 0).
    - ``billsec``: an int or a strategy of ints >= 0 (default 0, short and long calls
      up to two hours).
    - ``timestamps``: start times (default :func:`timestamps`, shared with rate windows).
    - ``tenants``: a value, a sequence to pick from or a strategy (default None).
    - ``with_details``: also fill extension, hangup cause, queue, agent and ``extra``.
    """
    if numbers is None:
        number_s = dialled_numbers(formatted=True)
    else:
        _check_strategy("numbers", numbers)
        number_s = numbers
    disposition_s = _as_strategy("dispositions", dispositions, Disposition.parse, _MOSTLY_ANSWERED)
    direction_s = _as_strategy("directions", directions, Direction.parse, _MOSTLY_OUTBOUND)

    def seconds(v: Any) -> int:
        if type(v) is not int or v < 0:
            raise InvalidArgument(f"billsec={v!r} must be an int >= 0")
        return int(v)

    billsec_s = _as_strategy(
        "billsec",
        billsec,
        seconds,
        st.just(0) | st.integers(1, 120) | st.integers(1, 7_200),
    )
    if timestamps is None:
        timestamp_s = _timestamps()
    else:
        _check_strategy("timestamps", timestamps)
        timestamp_s = timestamps.map(_aware)

    def tenant(v: Any) -> str | None:
        if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > 255):
            raise InvalidArgument(f"tenant {v!r} must be None or a non-blank str")
        return v

    tenant_s: st.SearchStrategy[str | None] = _as_strategy("tenants", tenants, tenant, st.none())
    for flag_name, flag in (
        ("with_timestamps", with_timestamps),
        ("with_details", with_details),
        ("allow_unanswered_billsec", allow_unanswered_billsec),
    ):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{flag_name}={flag!r} must be a bool")
    return _cdrs(
        number_s=number_s,
        disposition_s=disposition_s,
        direction_s=direction_s,
        billsec_s=billsec_s,
        timestamp_s=timestamp_s,
        tenant_s=tenant_s,
        with_timestamps=with_timestamps,
        with_details=with_details,
        allow_unanswered_billsec=allow_unanswered_billsec,
    )


def _aware(value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgument(f"timestamps= drew {value!r}; CDR timestamps must be tz-aware")
    return value


# EV-charging sessions and OCPI tariffs: strategies of their own module, offered here too.
from cdrrating.testing._charging import charging_sessions, tariffs  # noqa: E402

__all__ += ["charging_sessions", "tariffs"]
