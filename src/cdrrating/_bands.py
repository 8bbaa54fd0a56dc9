"""Bands: which scheduled rate is in force when, and pricing across them (private).

Work is proportional to the number of band changes, not to the length of a call: the
instants where a schedule can change its answer are enumerated from the local calendar
(every wall-clock window edge on every local date, both occurrences of a repeated
wall-clock time, and every UTC-offset change), the answer is evaluated once per instant,
and the steps that fall in one band are counted with one division per run (as
``_rules.lay`` does for tiers).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from cdrrating._rules import Num, Piece, first_step, in_window, minimum, rate_pieces
from cdrrating._rules import lay as rules_lay
from cdrrating.errors import PlanError

if TYPE_CHECKING:
    from cdrrating.rates import Rate
    from cdrrating.schedule import Schedule

_ONE_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICRO = timedelta(microseconds=1)
_CACHE_LIMIT = 50_000  # cached (schedule set, local date) entries per plan


class Clock:
    """A plan's time zone and holiday calendars, with a cache of per-day band changes."""

    __slots__ = ("_days", "_keys", "_next_key", "_starts", "holidays", "tz")

    def __init__(self, tz: ZoneInfo, holidays: Mapping[str, frozenset[date]]) -> None:
        self.tz = tz
        self.holidays = holidays
        self._keys: dict[tuple[Schedule | None, ...], int] = {}
        self._next_key = itertools.count()  # never repeats, even under threads
        self._days: dict[tuple[int, date], list[tuple[datetime, int]]] = {}
        self._starts: dict[date, datetime] = {}

    def key(self, scheds: tuple[Schedule | None, ...]) -> int:
        # Not len(self._keys): two threads (rate_table(threads=n)) could both read one
        # length and give two schedule sets one key, and so one another's day cache.
        found = self._keys.get(scheds)
        return self._keys.setdefault(scheds, next(self._next_key)) if found is None else found

    def local(self, at: datetime) -> tuple[date, int]:
        wall = at.astimezone(self.tz)
        return wall.date(), wall.hour * 3600 + wall.minute * 60 + wall.second

    def winner(self, scheds: Sequence[Schedule | None], at: datetime) -> int:
        """Index of the first schedule (None: always) covering ``at``, or -1."""
        day, seconds = self.local(at)
        holidays = self.holidays
        for i, s in enumerate(scheds):
            if s is None or s.covers_local(day, seconds, holidays):
                return i
        return -1

    def start_of(self, day: date) -> datetime:
        """The first instant of a local date (at a midnight gap: the jump)."""
        found = self._starts.get(day)
        if found is None:
            if len(self._starts) >= _CACHE_LIMIT:
                self._starts.clear()
            found = datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)
            self._starts[day] = found
        return found

    def offset(self, at: datetime) -> timedelta | None:
        return at.astimezone(self.tz).utcoffset()

    def points(self, walls: Iterable[int], lo: datetime, hi: datetime) -> list[datetime]:
        """``lo`` and every instant in ``(lo, hi)`` where a condition on the local date or
        on one of the wall-clock times ``walls`` (seconds of the day) can change."""
        tz = self.tz
        lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
        times = [time(w // 3600, w // 60 % 60, w % 60) for w in sorted({0, *walls})]
        found: set[datetime] = set()
        day, last = lo.astimezone(tz).date(), hi.astimezone(tz).date()
        while day <= last:
            for t in times:
                wall = datetime.combine(day, t, tzinfo=tz)
                for candidate in (wall, wall.replace(fold=1)):
                    u = candidate.astimezone(UTC)
                    if lo < u < hi:
                        found.add(u)
            day += _ONE_DAY
        ordered = [lo, *sorted(found)]
        # A change of UTC offset is a jump of the wall clock: find each one by bisection
        # between neighbours whose offsets differ (zones change offset at whole seconds).
        offsets = [self.offset(u) for u in ordered]
        jumps = [
            self._transition(a, b, ob)
            for (a, oa), (b, ob) in itertools.pairwise(
                zip([*ordered, hi], [*offsets, self.offset(hi)], strict=True)
            )
            if oa != ob
        ]
        if jumps:
            ordered = sorted({*ordered, *(j for j in jumps if lo < j < hi)})
        return ordered

    def _transition(self, a: datetime, b: datetime, after: timedelta | None) -> datetime:
        lo_s = (a - _EPOCH) // _SECOND
        hi_s = -((_EPOCH - b) // _SECOND)
        tz = self.tz
        while hi_s - lo_s > 1:
            mid = (lo_s + hi_s) // 2
            if datetime.fromtimestamp(mid, tz).utcoffset() == after:
                hi_s = mid
            else:
                lo_s = mid
        return _EPOCH + timedelta(seconds=hi_s)

    def day_changes(
        self, key: int, scheds: tuple[Schedule | None, ...], day: date
    ) -> list[tuple[datetime, int]]:
        """(instant, winner index) at each change within one local date, from its start."""
        cached = self._days.get((key, day))
        if cached is not None:
            return cached
        walls = {w for s in scheds if s is not None for w in (s._start_s, s._end_s)}
        out: list[tuple[datetime, int]] = []
        for at in self.points(walls, self.start_of(day), self.start_of(day + _ONE_DAY)):
            index = self.winner(scheds, at)
            if not out or out[-1][1] != index:
                out.append((at, index))
        if len(self._days) >= _CACHE_LIMIT:
            self._days.clear()
        self._days[(key, day)] = out
        return out

    def changes(
        self, key: int, scheds: tuple[Schedule | None, ...], lo: datetime, hi: datetime
    ) -> list[tuple[datetime, int]]:
        """(instant, winner index) from ``lo`` (first entry) at each change before ``hi``."""
        day = lo.astimezone(self.tz).date()
        while self.start_of(day) > lo:  # pragma: no cover - zones whose midnight is odd
            day -= _ONE_DAY
        out: list[tuple[datetime, int]] = []
        while True:
            for at, index in self.day_changes(key, scheds, day):
                if at >= hi:
                    return out
                if at <= lo:
                    out[:] = [(lo, index)]
                elif out[-1][1] != index:
                    out.append((at, index))
            day += _ONE_DAY
            if self.start_of(day) >= hi:
                return out


class Scheduled:
    """A bucket of the plan index whose rates (or some of them) have schedules.

    ``rates`` are the active rates of one prefix and direction, highest priority first.
    """

    __slots__ = ("_every", "_subsets", "clock", "rates")

    def __init__(self, rates: tuple[Rate, ...], clock: Clock) -> None:
        self.rates = rates
        self.clock = clock
        self._subsets: dict[int, tuple[tuple[Rate, ...], tuple[Schedule | None, ...], int]] = {}
        # No rate has a validity window: all are candidates at every instant, and the
        # priced-one-by-one path skips asking each.
        timeless = all(r.valid_from is None and r.valid_until is None for r in rates)
        self._every = (1 << len(rates)) - 1 if timeless else -1

    def find(self, at: datetime) -> Rate | None:
        """The highest-priority rate whose window and schedule contain ``at``."""
        local: tuple[date, int] | None = None
        for rate in self.rates:
            if in_window(at, rate.valid_from, rate.valid_until):
                schedule = rate.schedule
                if schedule is None:
                    return rate
                if local is None:
                    local = self.clock.local(at)
                if schedule.covers_local(local[0], local[1], self.clock.holidays):
                    return rate
        return None

    def candidates(self, at: datetime) -> tuple[tuple[Rate, ...], tuple[Schedule | None, ...], int]:
        """The rates whose validity window contains ``at`` (the deck version of a call
        started then), their schedules, and the clock's key for that set."""
        mask = self._every
        if mask < 0:
            mask = 0
            for i, rate in enumerate(self.rates):
                if in_window(at, rate.valid_from, rate.valid_until):
                    mask |= 1 << i
        found = self._subsets.get(mask)
        if found is None:
            rates = tuple(r for i, r in enumerate(self.rates) if mask >> i & 1)
            scheds = tuple(r.schedule for r in rates)
            found = self._subsets[mask] = (rates, scheds, self.clock.key(scheds))
        return found


class Run(NamedTuple):
    """``steps`` steps of ``length`` s from billed position ``start`` at a price, in one band."""

    band: int
    start: int
    steps: int
    length: int
    per_minute_micros: int


class Band(NamedTuple):
    rate: Rate | None  # None: no rate in force (a schedule gap)
    starts_at: datetime  # the instant the band begins (or the answer time, for the first)
    threshold: int  # the first billed position whose step starts in this band


def bands(
    bucket: Scheduled, started_at: datetime, answered_at: datetime, billsec: int
) -> list[Band]:
    """The bands a call's steps can start in: the rate in force from each threshold on."""
    rates, scheds, key = bucket.candidates(started_at)
    clock = bucket.clock
    # In UTC: adding seconds to a datetime in a ZoneInfo zone adds wall-clock time.
    answered_at = answered_at.astimezone(UTC)
    end = answered_at + timedelta(seconds=billsec)
    out: list[Band] = []
    for at, index in clock.changes(key, scheds, answered_at, end):
        delta = (at - answered_at) // _MICRO
        threshold = -(-delta // 1_000_000)
        if out and out[-1].threshold == threshold:
            out.pop()  # a band that no step starts in
        rate = rates[index] if index >= 0 else None
        if not out or out[-1].rate is not rate:
            out.append(Band(rate, at, threshold))
    return out


def gap_error(bucket: Scheduled, band: Band) -> PlanError:
    """The error for a step that starts when no rate of its prefix is in force."""
    rate, clock = bucket.rates[0], bucket.clock
    return PlanError(
        "rates",
        f"prefix {rate.prefix!r} ({rate.direction.value})",
        f"a rate in force at every step of a call; none is at "
        f"{band.starts_at.astimezone(clock.tz).isoformat()} ({clock.tz.key}). "
        "plan.check() reports such gaps as 'schedule_gap'",
    )


def tiers_of(rate: Rate) -> tuple[tuple[int, int, int], ...]:
    """A rate's tiers as ``(after_seconds, per_minute_micros, increment_seconds)``."""
    if not rate.tiers:
        return ()  # most rates: no generator to run
    return tuple((t.after_seconds, t.per_minute_micros, t.increment_seconds) for t in rate.tiers)


def cut(pieces: Sequence[Piece], end: Num | None) -> list[Piece]:
    """A band's own rate pieces cut to end by the band's end (None: the last band).

    Pieces are cut, never dropped: a piece that ends before the band starts, or after
    an earlier piece reached the band's end, lays no step (``_rules.lay`` lays none
    where the position is already at the piece's end), so Python ints and int64 arrays
    (a rate's columns, one row a call) go through the same code.
    """
    if end is None:
        return list(pieces)
    return [
        (end if piece_end is None else minimum(piece_end, end), increment, price, tag)
        for piece_end, increment, price, tag in pieces
    ]


def lay_bands(
    billsec: Num,
    first: Num,
    first_price: Num,
    bands: Sequence[tuple[Sequence[Piece], Num | None]],
    *,
    runs: list[tuple[int, int, int, int, int]] | None = None,
    on_gap: Callable[[int], Exception] | None = None,
) -> tuple[Num, Num]:
    """Lay the steps of a call across bands (rating-rules §3, §6): the one kernel of
    both engines (``lay`` below for one call, the table engine over arrays of calls).

    ``bands``: per band, the pieces of the rate in force in it (``rate_pieces``; one
    piece with no increment for a gap) and the first billed position after it (None:
    the last band). Each step takes its length and price from the band it starts in,
    at its billed position (tiers count from the answer, not from the band); the first
    step is ``first`` seconds at ``first_price``, the first band's. Returns billed
    seconds and the exact amount × 60 without the connection fee, as ``_rules.lay``.
    """
    pieces: list[Piece] = []
    for own, end in bands:
        pieces += cut(own, end)
    return rules_lay(billsec, first, first_price, pieces, runs=runs, on_gap=on_gap)


def lay(
    bands: Sequence[Band], billsec: int, on_gap: Callable[[Band], Exception]
) -> tuple[int, int, list[Run]]:
    """Lay the steps of a ``billsec``-second call across bands (``lay_bands``): billed
    seconds, the exact amount × 60 without the connection fee, and the runs."""
    first_rate = bands[0].rate
    if first_rate is None:
        raise on_gap(bands[0])
    last = len(bands) - 1
    laid: list[tuple[Sequence[Piece], int | None]] = []
    for b, band in enumerate(bands):
        rate = band.rate
        own = (
            [(None, None, None, b)]
            if rate is None
            else rate_pieces(rate.increment_seconds, rate.per_minute_micros, tiers_of(rate), b)
        )
        laid.append((own, bands[b + 1].threshold if b < last else None))
    runs: list[tuple[int, int, int, int, int]] = []
    billed, total = lay_bands(
        billsec,
        first_step(first_rate.initial_seconds, first_rate.increment_seconds),
        first_rate.per_minute_micros,
        laid,
        runs=runs,
        on_gap=lambda tag: on_gap(bands[tag]),
    )
    return billed, total, [Run(*run) for run in runs]


# -- plan checks --------------------------------------------------------------------------------


def _windows(scheds: Sequence[Schedule]) -> list[tuple[int, int]]:
    """The wall-clock seconds of the day every schedule's window contains."""
    span = [(0, 86_400)]
    for s in scheds:
        a, b = s._start_s, s._end_s
        own = [(0, 86_400)] if a == b else [(a, b)] if a < b else [(a, 86_400), (0, b)]
        span = [(max(x, p), min(y, q)) for x, y in span for p, q in own if max(x, p) < min(y, q)]
    return span


def _date_ok(
    scheds: Sequence[Schedule], day: date, holidays: Mapping[str, frozenset[date]]
) -> bool:
    return all(s.covers_local(day, _any_second(s), holidays) for s in scheds)


def _any_second(s: Schedule) -> int:
    return s._start_s  # always inside the schedule's own window


def can_be_in_force(
    clock: Clock,
    scheds: Sequence[Schedule | None],
    lo: datetime | None,
    hi: datetime | None,
) -> bool:
    """Whether some instant in ``[lo, hi)`` (None: unbounded) is covered by every schedule."""
    if lo is not None and hi is not None and lo >= hi:
        return False
    real = [s for s in scheds if s is not None]
    if not real:
        return True
    windows = _windows(real)
    if not windows or not frozenset.intersection(*(s.weekdays for s in real)):
        return False
    holidays = clock.holidays
    first = lo.astimezone(clock.tz).date() if lo is not None else None
    last = hi.astimezone(clock.tz).date() if hi is not None else None
    listed = [s for s in real if s.only_holidays or s.dates]
    if listed:
        # Finitely many dates can match: those of the first such schedule.
        s = listed[0]
        pool: set[date] = set()
        for name in s.only_holidays:
            pool |= holidays[name]
        if not s.only_holidays:
            ranges = [(max(a, first or a), min(b, last or b)) for a, b in s.dates]
            days: Iterable[date] = itertools.chain.from_iterable(
                _dates(a, b) for a, b in ranges if a <= b
            )
        else:
            days = sorted(
                d for d in pool if (first is None or first <= d) and (last is None or d <= last)
            )
    elif first is None and last is None:
        return True  # every week has days of the common weekdays, most of them plain
    else:
        # Weekly: among 7 × (excepted dates + 4) consecutive dates from a bound, one of
        # the common weekdays is neither excepted nor a day the clocks change.
        excepted = sum(len(holidays[n]) for s in real for n in s.except_holidays)
        count = 7 * (excepted + 4)
        if first is not None:
            stop = (
                first + timedelta(days=count)
                if last is None
                else min(last, first + timedelta(days=count))
            )
            days = _dates(first, stop)
        else:
            assert last is not None
            days = _dates(last - timedelta(days=count), last)
    walls = {w for s in real for w in (s._start_s, s._end_s)}
    for day in days:
        if not _date_ok(real, day, holidays):
            continue
        start, stop = clock.start_of(day), clock.start_of(day + _ONE_DAY)
        inside = (lo is None or lo <= start) and (hi is None or stop <= hi)
        if inside and clock.offset(start) == clock.offset(stop):
            return True  # a whole, plain day: every wall-clock second exists once
        a = start if lo is None else max(start, lo)
        b = stop if hi is None else min(stop, hi)
        if a < b:
            for at in clock.points(walls, a, b):
                d, seconds = clock.local(at)
                if all(s.covers_local(d, seconds, holidays) for s in real):
                    return True
    return False


def _dates(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += _ONE_DAY


def gaps(
    clock: Clock, rates: Sequence[Rate], lo: datetime, hi: datetime, limit: int = 3
) -> tuple[list[tuple[datetime, datetime]], int]:
    """Intervals in ``[lo, hi)`` when some rate's validity window is open but no rate
    is in force (window and schedule): the first ``limit`` and how many in all."""
    walls = {
        w for r in rates if r.schedule is not None for w in (r.schedule._start_s, r.schedule._end_s)
    }
    bounds = {
        t for r in rates for t in (r.valid_from, r.valid_until) if t is not None and lo < t < hi
    }
    points = sorted({*clock.points(walls, lo, hi), *(t.astimezone(UTC) for t in bounds)})
    found: list[tuple[datetime, datetime]] = []
    count = 0
    open_at: datetime | None = None
    holidays = clock.holidays
    for at in points:
        day, seconds = clock.local(at)
        valid = [r for r in rates if r.in_force(at)]
        gap = bool(valid) and not any(
            r.schedule is None or r.schedule.covers_local(day, seconds, holidays) for r in valid
        )
        if gap and open_at is None:
            open_at = at
        elif not gap and open_at is not None:
            count += 1
            if len(found) < limit:
                found.append((open_at, at))
            open_at = None
    if open_at is not None:
        count += 1
        if len(found) < limit:
            found.append((open_at, hi))
    return found, count
