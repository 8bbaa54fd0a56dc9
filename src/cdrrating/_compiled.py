"""A rate plan compiled once into the form both rating engines read (private).

:class:`Compiled` holds, per direction, the candidate rates of every prefix in the order
rating-rules §5 tries them (highest priority first). The object engine reads the dict
index (:class:`_Index`); the table engine reads :meth:`Compiled.table`, numpy arrays
derived from the same groups on first use and cached. Neither engine restates which
rates are candidates: both take them from here.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cdrrating._bands import Clock, Scheduled
from cdrrating._rules import in_window, normalise_number
from cdrrating.cdr import Direction
from cdrrating.rates import Rate, RateStatus

# What a prefix maps to in _Index.buckets when its candidates are in _Index.candidates.
_SEE_CANDIDATES: Any = object()
_HEAD = 5  # digits of a number that key the head table (see _Index)
_SAMPLE = 20_000  # deck prefixes used to choose the probe strategy at build


class _Index:
    """The fast path for one direction: a dict from prefix to its candidate rates.

    ``buckets`` maps a prefix to its rate when it has one rate with no validity window
    or schedule (nearly every prefix of a real deck), and to ``_SEE_CANDIDATES``
    otherwise; ``candidates`` then holds its rates (highest priority first) or its
    :class:`Scheduled` bucket. A hit is returned after one identity test, without
    reading the object it found (``benchmarks/bench_rating.py`` compares ``plan.lookup``
    with a bare dict loop and with one that also does the ASCII-digit check of §5).

    The trie stays the source of truth (``rates_under``, ``check``, ``explain``); this is
    derived once at build. A lookup probes ``number[:length]`` for the deck's prefix
    lengths, longest first; the first prefix with a rate in force wins (a longer prefix
    with no candidate does not block a shorter one).

    Decks differ in shape, so the probe list is chosen at build. Plain: every length in
    the deck. Head table: ``heads`` maps a number's first five digits to the lengths that
    occur under them (or straight to the answer when nothing longer exists there), which
    saves probes on decks of mixed short and long prefixes and costs one on decks where
    most prefixes are long. The build counts the probes each would need for a sample of
    the deck's own prefixes and keeps the cheaper.
    """

    __slots__ = (
        "access",
        "buckets",
        "candidates",
        "fallback",
        "heads",
        "raw_digits_ok",
        "scheduled",
    )

    def __init__(
        self,
        groups: Iterable[tuple[str, list[Rate]]],
        clock: Clock,
        access_prefixes: tuple[str, ...],
    ) -> None:
        # Groups arrive in plan order (highest priority first within a prefix). A group
        # with a schedule is a Scheduled bucket: rating prices its calls across bands (§6).
        buckets: dict[str, Rate] = {}
        candidates: dict[str, tuple[Rate, ...] | Scheduled] = {}
        scheduled = False
        for prefix, group in groups:
            only = group[0]
            plain = only.schedule is None and only.valid_from is None and only.valid_until is None
            if len(group) == 1 and plain:
                buckets[prefix] = only
                continue
            buckets[prefix] = _SEE_CANDIDATES
            if any(r.schedule is not None for r in group):
                candidates[prefix] = Scheduled(tuple(group), clock)
                scheduled = True
            else:
                candidates[prefix] = tuple(group)
        self.access = access_prefixes
        self.buckets = buckets
        self.candidates = candidates
        self.scheduled = scheduled
        # A number of plain ASCII digits needs no normalising unless it starts with an
        # access prefix. When no prefix of the deck starts with one (or is the start of
        # one, as the catch-all is), such a number can only miss where the stripped
        # number would hit: lookups may then skip the startswith test, and retry
        # normalised on a miss (rating-rules §5 is unchanged; it is a third of the
        # per-lookup overhead on a 287k deck, benchmarks/bench_rating.py).
        self.raw_digits_ok = not any(
            p.startswith(a) or a.startswith(p) for p in buckets for a in access_prefixes if a
        )
        every = tuple(sorted({len(p) for p in buckets}, reverse=True))
        short = tuple(n for n in every if n < _HEAD)
        deeper: dict[str, set[int]] = defaultdict(set)
        for prefix in buckets:
            if len(prefix) >= _HEAD:
                deeper[prefix[:_HEAD]].add(len(prefix))
        heads: dict[str, Rate | tuple[int, ...]] = {}
        for head, lengths in deeper.items():
            best = buckets.get(head) if lengths == {_HEAD} else None
            if type(best) is Rate:
                heads[head] = best
            else:
                below = tuple(n for n in short if head[:n] in buckets)
                heads[head] = tuple(sorted(lengths, reverse=True)) + below
        # Numbers under the deck's own prefixes stand in for traffic: each prefix once.
        sample = [p + "0" * 15 for p in list(buckets)[:: max(1, len(buckets) // _SAMPLE)]]
        plain_cost = sum(_probes(p, every, buckets) for p in sample)
        head_cost = 0
        for p in sample:
            entry = heads.get(p[:_HEAD], short)
            head_cost += 1 + (0 if type(entry) is Rate else _probes(p, entry, buckets))  # type: ignore[arg-type]
        self.heads = heads if head_cost < plain_cost else {}
        self.fallback = short if self.heads else every

    def in_force(self, prefix: str, at: datetime | None) -> Rate | None:
        """The rate of a ``_SEE_CANDIDATES`` prefix that prices a call started at ``at``
        (None: now; only windows and schedules need the time)."""
        bucket = self.candidates[prefix]
        when = at if at is not None else datetime.now(UTC)
        return _in_force(bucket, when) if type(bucket) is tuple else bucket.find(when)  # type: ignore[union-attr]

    def match(self, number: str, at: datetime | None) -> tuple[str | None, Rate | None]:
        """rating-rules §5 for a dialled number: (the number normalised, or None if it is
        not one; the rate that prices a call to it started at ``at``, or None).

        One method on purpose: it is the look-up of every call, and a call per look-up
        is a fifth of its cost (``benchmarks/bench_rating.py``).
        """
        # isascii() first: it is O(1), isdigit() reads the string. A number of plain
        # digits is normal unless it starts with an access prefix; where no prefix of
        # the deck can match a number as dialled with one (raw_digits_ok), the test for
        # one waits until the number has missed.
        normal = number
        if not (number.isascii() and number.isdigit()) or (
            not self.raw_digits_ok and number.startswith(self.access)
        ):
            maybe = normalise_number(number, self.access)
            if maybe is None:
                return None, None
            normal = maybe
        buckets, heads = self.buckets, self.heads
        while True:
            if heads:
                entry = heads.get(normal[:_HEAD], self.fallback)
                if type(entry) is Rate:
                    return normal, entry
            else:
                entry = self.fallback
            # No check that length <= len(normal) is needed: past the end the slice is
            # the whole number, and if that is a prefix it is the longest possible match.
            for length in entry:  # type: ignore[union-attr]
                bucket = buckets.get(normal[:length])
                if bucket is None:
                    continue
                if bucket is not _SEE_CANDIDATES:
                    return normal, bucket
                found = self.in_force(normal[:length], at)
                if found is not None:
                    return normal, found
            if normal is number and self.raw_digits_ok and number.startswith(self.access):
                # Dialled with an access prefix, kept for the first try: strip it once.
                stripped = normalise_number(number, self.access)
                if stripped is None:
                    return None, None  # nothing but the access prefix: not a number
                normal = stripped
                continue
            return normal, None


def _in_force(bucket: tuple[Rate, ...], at: datetime) -> Rate | None:
    """The first rate of a bucket (highest priority first) whose window contains ``at``."""
    for rate in bucket:
        if in_window(at, rate.valid_from, rate.valid_until):
            return rate
    return None


def _probes(number: str, lengths: tuple[int, ...], buckets: dict[str, Any]) -> int:
    for i, length in enumerate(lengths, 1):
        if number[:length] in buckets:
            return i
    return len(lengths)


def _indexes(
    rates: Iterable[Rate], clock: Clock, access_prefixes: tuple[str, ...]
) -> dict[Direction, _Index]:
    # ``rates`` are sorted by (prefix, direction, -priority, ...): every group the
    # rules care about is a run of neighbours, so one pass finds them all.
    active: dict[Direction, list[tuple[str, list[Rate]]]] = defaultdict(list)
    directions: set[Direction] = set()
    last: tuple[str, Direction] | None = None
    run: list[Rate] = []
    for rate in rates:
        directions.add(rate.direction)
        if rate.status is not RateStatus.ACTIVE:
            continue
        key = (rate.prefix, rate.direction)
        if key != last:
            run = [rate]
            active[rate.direction].append((rate.prefix, run))
            last = key
        else:
            run.append(rate)
    return {d: _Index(active.get(d, ()), clock, access_prefixes) for d in directions}


class Compiled:
    """A plan's rates grouped for rating: what both engines read.

    ``indexes`` maps each direction the plan has rates for (in any status) to its
    :class:`_Index`; a direction with rates but no active one has an empty index (its
    calls are ``NO_RATE``, not ``DIRECTION_NOT_RATED``). :meth:`table` is the numpy form
    of the same groups, built on first use and kept.
    """

    __slots__ = ("_access", "_lock", "_source", "_table", "clock", "indexes")

    _source: Callable[[], Iterable[Rate]]
    _access: tuple[str, ...]

    def __init__(
        self,
        rates: Iterable[Rate],
        clock: Clock,
        access_prefixes: tuple[str, ...],
    ) -> None:
        self.clock = clock
        self.indexes = _indexes(rates, clock, access_prefixes)
        self._table: Any = None  # a cdrrating._table_plan.TablePlan, once built
        # Re-entrant: building the table form reads ``indexes``, which a loaded plan
        # builds under the same lock.
        self._lock = threading.RLock()

    @classmethod
    def deferred(
        cls,
        rates: Callable[[], Iterable[Rate]],
        clock: Clock,
        access_prefixes: tuple[str, ...],
        table: Any,
    ) -> Compiled:
        """A plan loaded from a pickle: ``indexes`` is built from ``rates()`` when
        first read (a worker that only rates tables never needs it), ``table`` is the
        table form that came with the plan, or None."""
        self = _Deferred.__new__(_Deferred)
        self.clock = clock
        self._source = rates
        self._access = access_prefixes
        self._table = table
        self._lock = threading.RLock()
        return self

    def shared(self) -> list[tuple[Rate, ...]]:
        """The groups of more than one active rate (one prefix and direction): the only
        ones two rates can be ambiguous in."""
        out: list[tuple[Rate, ...]] = []
        for index in self.indexes.values():
            for found in index.candidates.values():
                group = found.rates if isinstance(found, Scheduled) else found
                if len(group) > 1:
                    out.append(group)
        return out

    def table(self, plan: Any) -> Any:
        """The numpy form (needs numpy): built once per plan, on first use."""
        found = self._table
        if found is None:
            with self._lock:
                found = self._table
                if found is None:
                    from cdrrating._table_plan import TablePlan  # noqa: PLC0415 - needs numpy

                    found = self._table = TablePlan(plan, self)
        return found


class _Deferred(Compiled):
    """A loaded plan's Compiled: ``indexes`` is built when first read.

    A class of its own because defining ``__getattr__`` keeps Python 3.11 from
    specialising any attribute read of the class: a plan built in this process reads
    ``indexes`` on every look-up and rated CDR, and pays nothing for the deferral.
    """

    __slots__ = ()

    if not TYPE_CHECKING:  # to mypy every other attribute stays checked

        def __getattr__(self, name: str) -> Any:
            # Called only while a slot is unset: ``indexes``, once; then the slot is
            # found before this is asked.
            if name != "indexes":
                raise AttributeError(name)
            with self._lock:
                try:
                    return object.__getattribute__(self, "indexes")
                except AttributeError:
                    pass
                indexes = _indexes(self._source(), self.clock, self._access)
                self.indexes = indexes
                return indexes
