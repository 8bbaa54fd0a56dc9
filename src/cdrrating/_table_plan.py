"""The numpy form of a compiled plan, for the table engine (private; needs numpy).

Built once per plan (``Compiled.table``) from the same groups the object engine's index
holds: per direction, the prefixes that have active rates, each with its candidates in
the order rating-rules §5 tries them. Nothing here decides a rule: ``find`` walks the
candidates in that order and asks ``_rules.in_window`` and ``_rules.covers``.

Lookup: the numbers are keys of their first 18 digits, right-padded with zeros; every
prefix covers an interval of keys, and the nested intervals are flattened into disjoint
ones, each owned by the longest prefix covering it. One ``searchsorted`` then finds the
longest prefix of every number at once; the prefix's parent is the next one to try when
the number is shorter than it or none of its candidates is in force.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from cdrrating import _rules
from cdrrating._bands import Scheduled, lay_bands
from cdrrating.cdr import Direction
from cdrrating.rates import Rate

if TYPE_CHECKING:
    from cdrrating._compiled import Compiled
    from cdrrating.plan import RatePlan
    from cdrrating.schedule import Schedule

NDArray = Any

I64_MIN = int(np.iinfo(np.int64).min)
I64_MAX = int(np.iinfo(np.int64).max)
WIDTH = 18  # digits of a number the keys hold (10**18 < 2**63)
_POW10_INT = [10**k for k in range(WIDTH + 1)]
SAFE = 2**61  # an exact sum × 60 below this stays exact in int64 through the rounding
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_UNIX_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_US = 86_400 * 1_000_000
# Local times are computed from a table of UTC offsets sampled daily over the calls'
# range; calls outside these years are placed by the object engine's clock instead.
_LOCAL_RANGE = (
    (datetime(1900, 1, 1, tzinfo=UTC) - _EPOCH) // _MICRO,
    (datetime(2200, 1, 1, tzinfo=UTC) - _EPOCH) // _MICRO,
)


def _us(dt: datetime | None, none: int) -> int:
    if dt is None:
        return none
    return max(I64_MIN, min(I64_MAX, (dt - _EPOCH) // _MICRO))


def _weekday(day: NDArray) -> NDArray:
    """The weekdays (0 = Monday) of proleptic ordinals, as ``date.weekday()``."""
    # x - x // k * k, not x % k: numpy divides int64 by a constant several times faster
    # than it takes a remainder.
    week = day - 1
    week -= np.floor_divide(week, 7) * 7
    return week


class Local(NamedTuple):
    """Instants on a plan's local calendar: day (proleptic ordinal, whose weekday
    ``_weekday`` gives), wall-clock seconds of the day; ``placed`` is False for instants
    outside the offset table's years (``us``, the instants, lets the clock place those)."""

    day: NDArray
    seconds: NDArray
    placed: NDArray
    us: NDArray


class Lookup:
    """Longest-prefix look-up for one direction of one plan, over numpy arrays.

    A label is a prefix of this direction with active rates; ``members`` holds each
    label's candidates (rate ids, highest priority first) from ``bucket_start``.
    """

    def __init__(
        self,
        prefixes: list[str],
        members: NDArray,
        sizes: NDArray,
        simple: NDArray,
        scheduled: NDArray,
    ) -> None:
        count = len(prefixes)
        lengths = np.fromiter(map(len, prefixes), np.int64, count)
        self.longest = int(lengths.max()) if count else 0
        self.prefixes = prefixes
        # Compared with numbers' lengths only: narrow, so the look-up reads less memory.
        self.label_len = lengths.astype(np.int16) if self.longest < 2**15 else lengths
        self.members = members if members.size else np.zeros(1, np.int32)
        self.bucket_size = sizes
        self.bucket_start = np.concatenate(([0], np.cumsum(sizes)[:-1])) if count else sizes
        self.max_bucket = int(sizes.max()) if count else 0
        self.simple = simple
        self.all_simple = bool((simple >= 0).all())
        # One plain rate a prefix, in label order (a plain deck): a label's rate id is
        # the label plus this offset, an addition where a gather would read the column.
        in_order = self.all_simple and count > 0 and bool((np.diff(simple) == 1).all())
        self.simple_offset: int | None = int(simple[0]) if in_order else None
        self.scheduled = scheduled
        self.any_scheduled = bool(scheduled.any())
        # Per label, a bit per schedule id of its candidates (set by TablePlan; None:
        # no schedules, or too many for 64 bits).
        self.schedule_mask: NDArray | None = None
        # Per label, which of the distinct sequences of its candidates' schedule ids it
        # has (-1: a candidate has a validity window); set by TablePlan, None: no use.
        self.pattern: NDArray | None = None
        self.pattern_count = 0
        self.pattern_windowed = False  # some label's pattern is -1
        # Bits of the schedules every label with schedules has (band_room's rows).
        self.common_mask = 0
        # Every label has schedules, all the same ones (common_mask): band_room reads
        # the room to the next edge from one table for every row.
        self.uniform = False
        self._labels: dict[str, int] | None = None
        # The prefixes as disjoint intervals of 18-digit keys, each owned by the longest
        # prefix covering it (-1: none). Prefixes in text order come in key order with
        # an enclosing prefix before those under it, so one sweep with a stack of the
        # open intervals flattens them, and gives each prefix its parent (the longest
        # shorter prefix that is a label).
        bounds: list[int] = [0]
        owner: list[int] = [-1]
        parent = np.full(max(count, 1), -1, np.int32)
        stack: list[tuple[int, int]] = []  # (end key, label) of the open intervals
        for label, prefix in enumerate(prefixes):
            size = len(prefix)
            if size > WIDTH:
                continue  # looked up by the object engine (see TablePlan.find)
            key = int(prefix) * _POW10_INT[WIDTH - size] if prefix else 0
            while stack and stack[-1][0] <= key:
                bounds.append(stack.pop()[0])
                owner.append(stack[-1][1] if stack else -1)
            if stack:
                parent[label] = stack[-1][1]
            bounds.append(key)
            owner.append(label)
            stack.append((key + _POW10_INT[WIDTH - size], label))
        while stack:
            bounds.append(stack.pop()[0])
            owner.append(stack[-1][1] if stack else -1)
        edges = np.array(bounds, np.int64)
        owners = np.array(owner, np.int32)
        keep = np.append(edges[1:] != edges[:-1], True)  # of equal bounds, the last holds
        self.bounds, self.owner, self.parent = edges[keep], owners[keep], parent

    def label_of(self, prefix: str) -> int:
        """The label of a prefix (for rows the object engine looked up)."""
        if self._labels is None:
            self._labels = {p: i for i, p in enumerate(self.prefixes)}
        return self._labels[prefix]


class TablePlan:
    """A plan's rates as columns, and one :class:`Lookup` per direction."""

    def __init__(self, plan: RatePlan, compiled: Compiled) -> None:
        self.plan = plan
        self.compiled = compiled
        self.currency = plan.currency
        self.quantum = plan.quantum_micros
        self.rounding = plan.rounding
        self.access = tuple(plan.access_prefixes)
        self.band_split = plan.band_policy == "split"
        rates: list[Rate] = []
        prefix_values: list[str] = []
        prefix_code: list[NDArray] = []
        self.lookups: dict[Direction, Lookup] = {}
        for direction, index in compiled.indexes.items():
            prefixes = list(index.buckets)
            buckets = list(index.buckets.values())
            count = len(prefixes)
            base, offset = len(rates), len(prefix_values)
            prefix_values.extend(prefixes)
            if not index.candidates:
                # Every prefix has one plain rate: label k is rate base + k.
                rates.extend(buckets)
                members = np.arange(base, base + count, dtype=np.int32)
                sizes = np.ones(count, np.int64)
                simple = members.copy()
                scheduled = np.zeros(count, bool)
                codes = np.arange(offset, offset + count, dtype=np.int32)
            else:
                members_l: list[int] = []
                sizes_l: list[int] = []
                simple_l: list[int] = []
                sched_l: list[bool] = []
                codes_l: list[int] = []
                for k, (prefix, bucket) in enumerate(zip(prefixes, buckets, strict=True)):
                    if type(bucket) is Rate:
                        group: tuple[Rate, ...] = (bucket,)
                        simple_l.append(len(rates))
                        sched_l.append(False)
                    else:
                        found = index.candidates[prefix]
                        group = found.rates if isinstance(found, Scheduled) else found
                        simple_l.append(-1)
                        sched_l.append(type(found) is Scheduled)
                    sizes_l.append(len(group))
                    for rate in group:
                        members_l.append(len(rates))
                        codes_l.append(offset + k)
                        rates.append(rate)
                members = np.array(members_l, np.int32)
                sizes = np.array(sizes_l, np.int64)
                simple = np.array(simple_l, np.int32)
                scheduled = np.array(sched_l, bool)
                codes = np.array(codes_l, np.int32)
            prefix_code.append(codes)
            self.lookups[direction] = Lookup(prefixes, members, sizes, simple, scheduled)
        self.rates = rates
        self.prefix_values = prefix_values or [""]
        self.prefix_code = np.concatenate(prefix_code) if prefix_code else np.zeros(1, np.int32)
        # One rate a prefix, in order (a plain deck): a rate's id is its prefix's code.
        self.prefix_is_rate = bool(
            (self.prefix_code == np.arange(self.prefix_code.size, dtype=np.int32)).all()
        )
        self._rate_id: dict[int, int] | None = None
        self._destinations: tuple[NDArray, list[str]] | None = None
        self._arrow: dict[str, Any] = {}
        self._edge_rooms: dict[int, NDArray] = {}  # band_room's tables, by schedule bits
        self._columns(rates)
        # The wall-clock instants at which some schedule of the plan opens or closes:
        # between two of them, on one local day, every schedule covers all or nothing.
        walls = {0}
        for schedule in self.schedules:
            walls.update((schedule._start_s, schedule._end_s))
        self.walls = np.array(sorted(walls), np.int64)
        for lookup in self.lookups.values():
            lookup.schedule_mask = self._schedule_mask(lookup)
            if lookup.schedule_mask is not None and lookup.any_scheduled:
                of_scheduled = lookup.schedule_mask[lookup.scheduled]
                common = np.bitwise_and.reduce(of_scheduled)
                lookup.common_mask = int(common)
                lookup.uniform = bool(lookup.scheduled.all()) and bool(
                    (of_scheduled == common).all()
                )
            lookup.pattern = self._patterns(lookup)

    def __reduce__(self) -> tuple[Any, ...]:
        # A table form belongs to its plan: it is pickled with the plan (whose pickle
        # carries its table form) and loads as the loaded plan's own.
        return (_table_of, (self.plan,))

    @property
    def rate_id(self) -> dict[int, int]:
        """Rate (by identity) to its id, for rates the object engine found."""
        if self._rate_id is None:
            self._rate_id = {id(r): i for i, r in enumerate(self.rates)}
        return self._rate_id

    @property
    def destination_code(self) -> NDArray:
        return self._destination()[0]

    @property
    def destination_values(self) -> list[str]:
        return self._destination()[1]

    def _destination(self) -> tuple[NDArray, list[str]]:
        if self._destinations is None:
            labels: dict[str, int] = {}
            codes = np.array(
                [labels.setdefault(r.destination, len(labels)) for r in self.rates] or [0],
                np.int32,
            )
            self._destinations = (codes, list(labels) or [""])
        return self._destinations

    def _columns(self, rates: list[Rate]) -> None:
        n = max(len(rates), 1)
        ints = np.zeros((n, 6), np.int64)
        fields = operator.attrgetter(
            "initial_seconds",
            "increment_seconds",
            "per_minute_micros",
            "connection_fee_micros",
            "minimum_charge_micros",
            "grace_seconds",
        )
        rows = list(map(fields, rates))
        try:
            if rows:
                ints[: len(rates)] = np.array(rows, np.int64)
            huge = np.zeros(n, bool)
        except OverflowError:
            # An amount past int64: such rates are priced with Python ints only.
            wide = np.array(rows, object)
            huge = np.zeros(n, bool)
            huge[: len(rates)] = (wide >= 2**62).any(axis=1)
            ints[: len(rates)] = np.where(wide >= 2**62, 0, wide).astype(np.int64)
        self.initial, self.increment, self.per_minute, self.fee, self.minimum, self.grace = (
            np.ascontiguousarray(ints[:, k]) for k in range(6)
        )
        top = [r.maximum_charge_micros for r in rates]
        self.maximum = np.full(n, -1, np.int64)
        for k, value in enumerate(top):
            if value is not None:
                if value >= 2**62:
                    huge[k] = True
                else:
                    self.maximum[k] = value
        self.valid_from = np.full(n, I64_MIN, np.int64)
        self.valid_until = np.full(n, I64_MAX, np.int64)
        tiered: list[int] = []
        schedules: dict[Schedule, int] = {}
        self.schedule_id = np.zeros(n, np.int64)
        for k, r in enumerate(rates):
            # Windows, schedules and tiers are rare: only those rates are visited here.
            if r.valid_from is not None or r.valid_until is not None:
                self.valid_from[k] = _us(r.valid_from, I64_MIN)
                self.valid_until[k] = _us(r.valid_until, I64_MAX)
            if r.schedule is not None:
                self.schedule_id[k] = schedules.setdefault(r.schedule, len(schedules) + 1)
            if r.tiers:
                tiered.append(k)
        self.schedules: list[Schedule] = list(schedules)
        self.any_window = bool(
            (self.valid_from != I64_MIN).any() or (self.valid_until != I64_MAX).any()
        )
        tiers = max((len(rates[k].tiers) for k in tiered), default=0)
        self.tiers = tiers
        # Pieces (rating-rules §3, ``_rules.rate_pieces``) as columns: piece k runs to
        # ``piece_end[k]``; past a rate's own last piece, pieces are never reached.
        self.piece_end = [np.full(n, I64_MAX, np.int64) for _ in range(tiers + 1)]
        # Piece 0 is the rate's own increment and price: the columns themselves.
        self.piece_inc = [self.increment] + [np.ones(n, np.int64) for _ in range(tiers)]
        self.piece_price = [self.per_minute] + [np.zeros(n, np.int64) for _ in range(tiers)]
        # A rate is priced in int64 up to the longest call whose exact sum (× 60, fee
        # included) stays below SAFE; longer calls, and rates with amounts too large for
        # that, are priced with Python ints by the same rules (``safe`` = -1).
        price = self.per_minute.copy()
        step = np.maximum(self.initial, self.increment)
        big = self.per_minute >= 2**53
        for k in tiered:
            r = rates[k]
            for j, tier in enumerate(r.tiers):
                self.piece_end[j][k] = tier.after_seconds
                self.piece_inc[j + 1][k] = tier.increment_seconds
                self.piece_price[j + 1][k] = tier.per_minute_micros
                price[k] = max(int(price[k]), tier.per_minute_micros)
                step[k] = max(int(step[k]), tier.increment_seconds)
                big[k] |= tier.per_minute_micros >= 2**53 or tier.after_seconds >= 2**53
        big |= huge | (self.increment >= 2**53) | (self.initial >= 2**53)
        big |= (self.fee >= 2**53) | (self.minimum >= 2**53) | (self.grace >= 2**62)
        room = SAFE - np.where(big, 0, self.fee) * 60
        safe = np.where(big, -1, room // np.maximum(price, 1) - step)
        self.safe = np.maximum(safe, -1)
        if 60 * self.quantum >= 2**53 or tiers > 64:
            self.safe[:] = -1
        self.any_tiers = tiers > 0
        self.any_grace = bool((self.grace > 0).any())
        self.any_minimum = bool((self.minimum > 0).any())
        self.any_maximum = bool((self.maximum >= 0).any())
        self.any_fee = bool((self.fee > 0).any())
        # Derived once per plan rather than per call: each rate's first step (the same
        # rule function, over the plan's columns) and the shortest call any rate leaves
        # to Python ints (no billsec up to it needs the per-rate test).
        self.first = _rules.first_step(self.initial, self.increment)
        self.safe_min = int(self.safe.min())

    def labels(self, name: str) -> Any:
        """``prefix_values`` or ``destination_values`` as a pyarrow array (built once)."""
        import pyarrow as pa  # type: ignore[import-untyped]  # noqa: PLC0415 - the table engine's, lazily

        cache = self._arrow
        if name not in cache:
            cache[name] = pa.array(getattr(self, name), pa.string())
        return cache[name]

    # -- time in the plan's zone ---------------------------------------------------------------

    def local(self, us: NDArray) -> Local:
        """Instants (µs since the epoch) on the plan's local calendar and clock."""
        if not us.size or (int(us.min()) >= _LOCAL_RANGE[0] and int(us.max()) < _LOCAL_RANGE[1]):
            placed = np.ones(us.size, bool)
            local = us + self._offsets(us) if us.size else us.copy()
        else:
            placed = (us >= _LOCAL_RANGE[0]) & (us < _LOCAL_RANGE[1])
            offset = self._offsets(us[placed]) if placed.any() else 0
            local = us.copy()
            local[placed] += offset
        # In place (local is this call's own): on large arrays each temporary costs
        # about as much as the arithmetic.
        day = np.floor_divide(local, _DAY_US)
        local -= day * _DAY_US
        local //= 1_000_000
        day += _UNIX_ORDINAL
        return Local(day, local, placed, us)

    def _offsets(self, us: NDArray) -> NDArray | int:
        """UTC offsets in µs of instants, from the zone's transitions over their range
        (one int where every instant has the same)."""
        if self.compiled.clock.tz.key == "UTC":
            return 0
        at, off = self._changes(int(us.min()), int(us.max()))
        if off.size == 1:  # no change of offset over these instants: no search
            return int(off[0])
        return off[np.searchsorted(at, us, side="right") - 1]

    def _changes(self, lo: int, hi: int) -> tuple[NDArray, NDArray]:
        """The instants (µs) from which each UTC offset holds over ``[lo, hi]``, and the
        offsets (µs): the first instant is before ``lo``."""
        clock = self.compiled.clock
        if clock.tz.key == "UTC":
            return np.array([I64_MIN], np.int64), np.zeros(1, np.int64)
        start = (_EPOCH + timedelta(microseconds=lo)).replace(hour=0, minute=0, second=0)
        start -= timedelta(days=1)
        stop = _EPOCH + timedelta(microseconds=hi) + timedelta(days=1)
        instants = [start]
        offsets = [clock.offset(start)]
        day = start
        while day < stop:
            nxt = day + timedelta(days=1)
            after = clock.offset(nxt)
            if after != offsets[-1]:
                instants.append(clock._transition(day, nxt, after))
                offsets.append(after)
            day = nxt
        at = np.array([(t - _EPOCH) // _MICRO for t in instants], np.int64)
        off = np.array([(o or timedelta(0)) // _MICRO for o in offsets], np.int64)
        return at, off

    def covers(
        self, schedule: Schedule, weekday: NDArray, day: NDArray, seconds: NDArray
    ) -> NDArray:
        """``_rules.covers`` for one schedule over arrays of local instants."""
        holidays = self.compiled.clock.holidays

        def member(name: str) -> NDArray:
            days = np.fromiter((d.toordinal() for d in holidays[name]), np.int64)
            return np.isin(day, days)

        return _rules.covers(
            schedule._terms,
            weekday,
            day,
            seconds,
            only=[member(n) for n in schedule.only_holidays],
            excepted=[member(n) for n in schedule.except_holidays],
        )

    # -- look-up -----------------------------------------------------------------------------------

    def find(  # noqa: PLR0917 - one caller, the engine, passes the columns in order
        self,
        direction: Direction,
        keys: NDArray,
        lengths: NDArray,
        rows: NDArray,
        at_us: NDArray,
        python: Callable[[NDArray], tuple[NDArray, NDArray]],
        *,
        ordered: bool = False,
    ) -> tuple[NDArray, NDArray]:
        """(rate id, label) of the winning rate for the numbers of ``rows`` (-1: none).

        ``keys``/``lengths``/``at_us`` are indexed by row. A number longer than the keys
        while the plan has prefixes that long goes to ``python``, the object engine's
        look-up, which returns its (rate id, label) the same way. ``ordered``: the
        caller put ``rows`` in (nearly) ascending key order already (``key_order``).
        """
        lookup = self.lookups[direction]
        m = rows.size
        rate = np.full(m, -1, np.int32)
        label = np.full(m, -1, np.int32)
        if not lookup.label_len.size or not m:
            return rate, label
        size = lengths[rows]
        if lookup.longest > WIDTH:
            odd = size > WIDTH
            if odd.any():
                slow = np.flatnonzero(odd)
                rate[slow], label[slow] = python(rows[slow])
            fast: NDArray | None = np.flatnonzero(~odd)
            key = keys[rows[fast]]
        else:
            fast = None  # every row, in order: no gather and no scatter for them
            key = keys[rows]
        if key.size > SORT_FROM and not ordered:
            # searchsorted over needles in order reads the bounds in order: several
            # times faster on a large deck than random needles, and one sort pays for it.
            sort = key_order(key)
            fast, key = (sort if fast is None else fast[sort]), key[sort]
        found = lookup.owner[np.searchsorted(lookup.bounds, key, side="right") - 1]
        wanted = size if fast is None else size[fast]
        if lookup.all_simple and found.size:
            # The common deck: one plain rate a prefix. Only numbers shorter than the
            # prefix found need another look.
            short = (found < 0) | (lookup.label_len[found] > wanted)
            if not short.any():
                if fast is None:
                    offset = lookup.simple_offset
                    return (lookup.simple[found] if offset is None else found + offset), found
                rate[fast] = lookup.simple[found]
                label[fast] = found
                return rate, label
        if fast is None:
            fast = np.arange(m)
        # A number shorter than the prefix found, or a prefix with no candidate in
        # force: its parent is the next longest prefix to try.
        while fast.size:
            if int(found.min()) >= 0:  # every number under some prefix: fewer passes
                short = lookup.label_len[found] > wanted
            else:
                short = (found >= 0) & (lookup.label_len[np.maximum(found, 0)] > wanted)
            while short.any():
                found = np.where(short, lookup.parent[np.maximum(found, 0)], found)
                short = (found >= 0) & (lookup.label_len[np.maximum(found, 0)] > wanted)
            if int(found.min()) < 0:
                hit = np.flatnonzero(found >= 0)
                fast, found, wanted = fast[hit], found[hit], wanted[hit]
            if not fast.size:
                break
            every = fast.size == m  # still every row, in order: no gather, no scatter
            got = self._resolve(lookup, found, rows if every else rows[fast], at_us)
            ok = got >= 0
            if ok.all():
                if every:
                    return got, found
                rate[fast], label[fast] = got, found
                break
            rate[fast[ok]] = got[ok]
            label[fast[ok]] = found[ok]
            miss = ~ok
            fast, found, wanted = fast[miss], lookup.parent[found[miss]], wanted[miss]
        return rate, label

    def _resolve(self, lookup: Lookup, labels: NDArray, rows: NDArray, at_us: NDArray) -> NDArray:
        """The first candidate of each label in force at its row's start, or -1."""
        simple = lookup.simple[labels]
        if lookup.all_simple:
            return simple
        choose = simple < 0
        if choose.all():  # every label has candidates to choose from
            at = at_us[rows]
            return self.in_force(lookup, labels, at, at)
        todo = np.flatnonzero(choose)
        out = simple.copy()
        if todo.size:
            at = at_us[rows[todo]]
            out[todo] = self.in_force(lookup, labels[todo], at, at)
        return out

    def in_force(
        self,
        lookup: Lookup,
        labels: NDArray,
        window_us: NDArray,
        schedule_us: NDArray,
        local: Local | None = None,
    ) -> NDArray:
        """Per label, its first candidate whose validity window contains ``window_us``
        and whose schedule (if any) covers ``schedule_us``, or -1 (rating-rules §5–6:
        the window at the call's start, the schedule at the instant asked about).

        ``local``: ``schedule_us`` on the local calendar, if the caller has it already.
        """
        position = self._positions(lookup, labels, window_us, schedule_us, local)
        if int(position.min(initial=0)) >= 0:  # no label without a rate in force
            return lookup.members[lookup.bucket_start[labels] + position]
        member = lookup.members[lookup.bucket_start[labels] + np.maximum(position, 0)]
        return np.where(position >= 0, member, -1).astype(np.int32, copy=False)

    def _positions(
        self,
        lookup: Lookup,
        labels: NDArray,
        window_us: NDArray,
        schedule_us: NDArray,
        local: Local | None,
    ) -> NDArray:
        """``in_force`` as positions among each label's candidates (-1: none).

        Without validity windows, the answer depends only on the label's schedules and
        on the local day and the wall-clock interval between two of ``walls`` the
        instant falls in: it is asked once per such (schedules, day, interval) met, of
        one row that has it, and given to the others.
        """
        pattern = lookup.pattern
        if pattern is None or labels.size < _SHARE_FROM:
            return self._each(lookup, labels, window_us, schedule_us, local)
        if local is None:
            local = self.local(schedule_us)
        kind = pattern[labels]
        shared = local.placed & (kind >= 0) if lookup.pattern_windowed else local.placed
        every = bool(shared.all())
        if not every and not shared.any():
            return self._each(lookup, labels, window_us, schedule_us, local)
        day = local.day if every else local.day[shared]
        first_day = int(day.min())
        days = int(day.max()) - first_day + 1
        walls = self.walls.size
        cells = days * walls
        if cells * lookup.pattern_count > max(4 * labels.size, 1 << 16):
            return self._each(lookup, labels, window_us, schedule_us, local)
        key = kind * days + (local.day - first_day)
        key *= walls
        if walls <= 8:  # the interval between walls: a few comparisons beat a search
            for edge in self.walls[1:].tolist():
                key += local.seconds >= edge
        else:
            key += np.searchsorted(self.walls, local.seconds, side="right") - 1
        if not every:
            key = np.where(shared, key, -1)
        # One row of each key met: the last write of a repeated index wins, so writing
        # the rows backwards leaves each key's first row.
        first = np.full(cells * lookup.pattern_count + 1, -1, np.int64)
        first[key[::-1]] = np.arange(labels.size - 1, -1, -1)
        first[-1] = -1  # the rows not shared
        some = first[first >= 0]
        asked = self._each(
            lookup,
            labels[some],
            window_us[some],
            schedule_us[some],
            Local(*(field[some] for field in local)),
        )
        answer = np.full(first.size, -1, np.int32)
        answer[key[some]] = asked
        position = answer[key]
        if not every:
            alone = np.flatnonzero(~shared)
            position[alone] = self._each(
                lookup,
                labels[alone],
                window_us[alone],
                schedule_us[alone],
                Local(*(field[alone] for field in local)),
            )
        return position

    def _each(
        self,
        lookup: Lookup,
        labels: NDArray,
        window_us: NDArray,
        schedule_us: NDArray,
        local: Local | None,
    ) -> NDArray:
        """``_positions`` asked of every row: the candidates in order (rating-rules §5),
        each tried with ``_rules.in_window`` and ``_rules.covers``."""
        first = lookup.bucket_start[labels]
        count = lookup.bucket_size[labels]
        chosen = np.full(labels.size, -1, np.int32)
        open_ = np.arange(labels.size)  # rows with no candidate chosen yet
        for j in range(lookup.max_bucket):
            open_ = open_[count[open_] > j]
            if not open_.size:
                break
            member = lookup.members[first[open_] + j]
            if self.any_window:
                ok = _rules.in_window(
                    window_us[open_], self.valid_from[member], self.valid_until[member]
                )
            else:
                ok = np.ones(open_.size, bool)  # no rate has a window: all are open
            sched = self.schedule_id[member]
            if sched.any():
                if local is None:
                    local = self.local(schedule_us)
                for sid in (np.flatnonzero(np.bincount(sched)[1:]) + 1).tolist():
                    mine = np.flatnonzero(sched == sid)
                    ok[mine] &= self._covered(self.schedules[sid - 1], local, open_[mine])
            chosen[open_] = np.where(ok, j, -1)
            open_ = open_[~ok]
        return chosen

    def _covered(self, schedule: Schedule, local: Local, where: NDArray) -> NDArray:
        day = local.day[where]
        covered = self.covers(schedule, _weekday(day), day, local.seconds[where])
        # An instant outside the years of the offset table is placed by the clock.
        clock = self.compiled.clock
        for k in np.flatnonzero(~local.placed[where]).tolist():
            when = _EPOCH + timedelta(microseconds=int(local.us[where[k]]))
            d, s = clock.local(when)
            covered[k] = schedule.covers_local(d, s, clock.holidays)
        return covered

    def band_room(
        self, lookup: Lookup, labels: NDArray, from_us: NDArray, local: Local | None = None
    ) -> NDArray:
        """Microseconds from each instant to the first one after it at which the rate in
        force for its label can change, or -1 where that is not known here.

        A band can change only at a wall-clock edge of one of the label's schedules, at
        local midnight (weekdays, dates, holidays) or at a change of UTC offset; -1 where
        the offset changes before that edge (the object engine lays those bands), or
        the instant is outside the offset table's years. ``local``: ``from_us`` on the
        local calendar, if the caller has it already.
        """
        if local is None:
            local = self.local(from_us)
        seconds = local.seconds
        if lookup.uniform:
            room = self._edge_room(lookup.common_mask)[seconds]
        else:
            room = self._edges(lookup, labels, seconds)
            room -= seconds
        # In µs, less the part of a second ``from_us`` is past its whole second; in
        # place, as ``local``.
        room *= 1_000_000
        whole = from_us // 1_000_000
        whole *= 1_000_000
        room -= from_us
        room += whole
        same_offset = self._same_offset(from_us, room)
        if same_offset is None and local.placed.all():
            return room
        ok = local.placed if same_offset is None else local.placed & same_offset
        return np.where(ok, room, -1)

    def band_changes(
        self, lookup: Lookup, labels: NDArray, from_us: NDArray, billsec: NDArray
    ) -> tuple[NDArray, NDArray]:
        """The rows whose first possible change of band (``band_room``) comes before
        ``billsec`` seconds from ``from_us`` or is not known here, and its ``band_room``.
        """
        local = self.local(from_us)
        if lookup.uniform and from_us.size and local.placed.all():
            lo = int(from_us.min())
            hi = int(from_us.max()) + (int(billsec.max()) + 1) * 1_000_000
            if hi < _LOCAL_RANGE[1] and self._changes(lo, hi)[0].size == 1:
                # No change of UTC offset over the calls: a change comes before the end
                # only where the next edge is at most billsec seconds past the whole
                # second of ``from_us``; the µs to it are counted for those rows only.
                ahead = self._edge_room(lookup.common_mask)[local.seconds]
                near = np.flatnonzero(ahead <= billsec)
                room = self.band_room(
                    lookup, labels[near], from_us[near], Local(*(f[near] for f in local))
                )
                keep = (room < 0) | (room < billsec[near] * 1_000_000)
                return near[keep], room[keep]
        room = self.band_room(lookup, labels, from_us, local)
        near = np.flatnonzero((room < 0) | (room < billsec * 1_000_000))
        return near, room[near]

    def _edge_room(self, mask: int) -> NDArray:
        """Per second of the day, the seconds to the next wall-clock edge of the
        schedules whose ids are the bits of ``mask``, or to midnight (built once)."""
        found = self._edge_rooms.get(mask)
        if found is None:
            day = np.arange(86_400, dtype=np.int64)
            edges = self._edges(None, np.zeros(0, np.int32), day, mask)
            found = self._edge_rooms.setdefault(mask, edges - day)
        return found

    def _edges(
        self, lookup: Lookup | None, labels: NDArray, seconds: NDArray, mask: int = 0
    ) -> NDArray:
        """Per row, the next wall-clock second after ``seconds`` at which a schedule of
        its label's candidates opens or closes, or midnight (86,400). ``lookup`` None:
        the schedules of ``mask`` for every row."""
        edges = np.full(seconds.size, 86_400, np.int64)
        if lookup is None:
            self._edges_of(mask, seconds, edges)
            return edges
        masks = lookup.schedule_mask
        of_label: NDArray | None = None
        # The schedules every label with schedules has: rows of such labels only (the
        # engine's) need no per-row test of those.
        common = lookup.common_mask if lookup.scheduled[labels].all() else 0
        self._edges_of(common, seconds, edges)
        for sid, schedule in enumerate(self.schedules, 1):
            # Rows whose label has this schedule among its candidates.
            if common >> sid & 1:
                continue  # every row: above
            if masks is not None:
                if of_label is None:
                    of_label = masks[labels]
                has = (of_label >> np.uint64(sid)) & np.uint64(1) == 1
            else:
                has = np.zeros(labels.size, bool)
                first = lookup.bucket_start[labels]
                count = lookup.bucket_size[labels]
                for j in range(lookup.max_bucket):
                    live = count > j
                    has[live] |= self.schedule_id[lookup.members[first[live] + j]] == sid
            if not has.any():
                continue
            for edge in (schedule._start_s, schedule._end_s):
                if edge:  # midnight: the day's end, there already
                    later = (seconds < edge) & has
                    np.minimum(edges, np.where(later, edge, 86_400), out=edges)
        return edges

    def _edges_of(self, mask: int, seconds: NDArray, edges: NDArray) -> None:
        """``edges`` lowered to the next edge after ``seconds`` of the schedules of
        ``mask`` (bits of schedule ids)."""
        for sid, schedule in enumerate(self.schedules, 1):
            if mask >> sid & 1:
                for edge in (schedule._start_s, schedule._end_s):
                    if edge:  # midnight: the day's end, there already
                        np.minimum(edges, np.where(seconds < edge, edge, 86_400), out=edges)

    def _same_offset(self, before: NDArray, room: NDArray) -> NDArray | None:
        """Per pair of instants ``before`` and ``before + room`` (room >= 0), whether
        both are inside the offset table's years with no change of UTC offset between
        them; None: all are."""
        if not before.size:
            return None
        lo, hi = int(before.min()), int(before.max()) + int(room.max())
        if lo >= _LOCAL_RANGE[0] and hi < _LOCAL_RANGE[1]:
            # Every instant placed: the offset table over a range that holds them all
            # tells whether any change needs a search.
            at, _off = self._changes(lo, hi)
            if at.size == 1:
                return None
        after = before + room
        placed = (after >= _LOCAL_RANGE[0]) & (after < _LOCAL_RANGE[1])
        placed &= before >= _LOCAL_RANGE[0]
        every = bool(placed.all())
        if not every and not placed.any():
            return placed
        lo, hi = (int(before.min()), int(after.max())) if every else (
            int(before[placed].min()), int(after[placed].max())
        )  # fmt: skip
        at, _off = self._changes(lo, hi)
        if at.size == 1:
            return None if every else placed
        same = np.searchsorted(at, before, side="right") == np.searchsorted(at, after, side="right")
        return same if every else same & placed

    def price_bands(
        self, rates: list[NDArray], thresholds: list[NDArray], billsec: NDArray
    ) -> tuple[NDArray, NDArray, NDArray]:
        """Cost and billed seconds of billable calls whose steps start in the bands
        ``rates`` (rate ids in force, the first at the answer), band i + 1 from billed
        position ``thresholds[i]`` on: ``_bands.lay_bands`` over the rates' columns,
        then ``_rules.settle`` with the first band's fee, minimum and maximum, as
        ``rating.price_banded``. The third array is False where int64 cannot hold the
        sum (those rows' figures are not to be read).
        """
        first = rates[0]
        # As ``safe`` for one rate: the exact sum × 60 stays below SAFE when every
        # step is at most the longest and costs at most the dearest of the bands.
        fits = self.safe[first] >= 0
        longest = self.first[first].astype(np.float64)
        dearest = np.zeros(billsec.size, np.float64)
        laid: list[tuple[list[_rules.Piece], NDArray | None]] = []
        for b, rate in enumerate(rates):
            fits &= self.safe[rate] >= 0
            own: list[_rules.Piece] = []
            for k in range(self.tiers + 1):
                end, inc = self.piece_end[k][rate], self.piece_inc[k][rate]
                price = self.piece_price[k][rate]
                np.maximum(longest, inc, out=longest)
                np.maximum(dearest, price, out=dearest)
                own.append((end, inc, price, b))
            laid.append((own, thresholds[b] if b < len(thresholds) else None))
        bound = (billsec + longest) * dearest + 60.0 * self.fee[first]
        # In float64: its rounding is far inside the room int64 has above SAFE.
        fits &= bound < SAFE
        billed, total = lay_bands(billsec, self.first[first], self.per_minute[first], laid)
        cost = _rules.settle(
            np.where(fits, total, 0),
            self.fee[first],
            self.minimum[first],
            self.maximum[first],
            self.quantum,
            self.rounding,
        )
        grace = _rules.in_grace(billsec, self.grace[first])
        return np.where(grace, 0, cost), np.where(grace, 0, billed), fits

    def _schedule_mask(self, lookup: Lookup) -> NDArray | None:
        """Per label, a bit per schedule id (1..63) of its candidates."""
        if not self.schedules or len(self.schedules) > 63:
            return None
        count = lookup.bucket_size.size
        mask = np.zeros(count, np.uint64)
        label_of = np.repeat(np.arange(count), lookup.bucket_size)
        sid = self.schedule_id[lookup.members[: label_of.size]]
        mine = sid > 0
        np.bitwise_or.at(
            mask, label_of[mine], np.left_shift(np.uint64(1), sid[mine].astype(np.uint64))
        )
        return mask

    def _patterns(self, lookup: Lookup) -> NDArray | None:
        """Per label, the index of its candidates' schedule ids among the distinct such
        sequences; -1 where a candidate has a validity window."""
        if not lookup.any_scheduled or not 0 < lookup.max_bucket <= _SHARED_BUCKET:
            return None
        count = lookup.bucket_size.size
        label_of = np.repeat(np.arange(count), lookup.bucket_size)
        place = np.arange(label_of.size) - lookup.bucket_start[label_of]
        member = lookup.members[: label_of.size]
        table = np.full((count, lookup.max_bucket), -1, np.int64)
        table[label_of, place] = self.schedule_id[member]
        base = len(self.schedules) + 2  # a schedule id, 0 (none) or -1 (no candidate)
        if base**lookup.max_bucket < 2**62:
            # Each row as one number: a sort of ints, not of rows.
            packed = np.zeros(count, np.int64)
            for column in table.T:
                packed = packed * base + (column + 1)
            kinds, pattern = np.unique(packed, return_inverse=True)
        else:
            kinds, pattern = np.unique(table, axis=0, return_inverse=True)
        pattern = pattern.reshape(-1).astype(np.int64)
        windowed = (self.valid_from[member] != I64_MIN) | (self.valid_until[member] != I64_MAX)
        if windowed.any():
            pattern[np.unique(label_of[windowed])] = -1
            lookup.pattern_windowed = True
        lookup.pattern_count = len(kinds)
        return pattern

    def bucket(self, direction: Direction, label: int) -> Any:
        """The object engine's candidates of a label: a tuple of rates or a Scheduled."""
        lookup = self.lookups[direction]
        index = self.compiled.indexes[direction]
        prefix = lookup.prefixes[label]
        return index.candidates.get(prefix) or (index.buckets[prefix],)


def _table_of(plan: RatePlan) -> TablePlan:
    table: TablePlan = plan._compiled.table(plan)
    return table


SORT_FROM = 4096  # fewer needles than this are searched in any order
_SHARE_FROM = 256  # fewer instants than this are each asked which rate is in force
_SHARED_BUCKET = 16  # labels with more candidates than this: each instant asked


def key_order(keys: NDArray) -> NDArray:
    """Rows in nearly ascending key order, which is all searchsorted needs to read the
    bounds in order: one sort of a word per row (the key's high bits above the row
    number) is several times faster than an argsort. Keys are below 10**18 < 2**60."""
    bits = max(int(keys.size - 1).bit_length(), 1)
    # (Keys are >= 0: int64 keys are read as uint64 in place, not copied.)
    unsigned = keys.view(np.uint64) if keys.dtype == np.int64 else keys.astype(np.uint64)
    packed = (unsigned >> np.uint64(max(bits - 4, 0))) << np.uint64(bits)
    packed |= np.arange(keys.size, dtype=np.uint64)
    packed.sort()
    return (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
