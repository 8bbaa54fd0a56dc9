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
from cdrrating._bands import Scheduled
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


class Local(NamedTuple):
    """Instants on a plan's local calendar: weekday (0 = Monday), day (proleptic
    ordinal), wall-clock seconds of the day; ``placed`` is False for instants outside
    the offset table's years (``us``, the instants, lets the clock place those)."""

    weekday: NDArray
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
        self.label_len = lengths
        self.members = members if members.size else np.zeros(1, np.int32)
        self.bucket_size = sizes
        self.bucket_start = np.concatenate(([0], np.cumsum(sizes)[:-1])) if count else sizes
        self.max_bucket = int(sizes.max()) if count else 0
        self.simple = simple
        self.all_simple = bool((simple >= 0).all())
        self.scheduled = scheduled
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
        self._rate_id: dict[int, int] | None = None
        self._destinations: tuple[NDArray, list[str]] | None = None
        self._arrow: dict[str, Any] = {}
        self._columns(rates)

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
        placed = (us >= _LOCAL_RANGE[0]) & (us < _LOCAL_RANGE[1])
        offset = self._offsets(us[placed]) if placed.any() else np.zeros(0, np.int64)
        local = us.copy()
        local[placed] += offset
        day = np.floor_divide(local, _DAY_US)
        seconds = np.floor_divide(local - day * _DAY_US, 1_000_000)
        return Local((day + 3) % 7, day + _UNIX_ORDINAL, seconds, placed, us)

    def _offsets(self, us: NDArray) -> NDArray:
        """UTC offsets in µs of instants, from the zone's transitions over their range."""
        tz = self.compiled.clock.tz
        if tz.key == "UTC":
            return np.zeros(us.size, np.int64)
        lo, hi = int(us.min()), int(us.max())
        start = (_EPOCH + timedelta(microseconds=lo)).replace(hour=0, minute=0, second=0)
        start -= timedelta(days=1)
        stop = _EPOCH + timedelta(microseconds=hi) + timedelta(days=1)
        clock = self.compiled.clock
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
        return off[np.searchsorted(at, us, side="right") - 1]

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
    ) -> tuple[NDArray, NDArray]:
        """(rate id, label) of the winning rate for the numbers of ``rows`` (-1: none).

        ``keys``/``lengths``/``at_us`` are indexed by row. A number longer than the keys
        while the plan has prefixes that long goes to ``python``, the object engine's
        look-up, which returns its (rate id, label) the same way.
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
            fast = np.flatnonzero(~odd)
        else:
            fast = np.arange(m)
        key = keys[rows[fast]]
        if fast.size > 4096:
            # searchsorted over needles in order reads the bounds in order: several
            # times faster on a large deck than random needles, and one sort pays for it.
            order = _order(key)
            fast, key = fast[order], key[order]
        found = lookup.owner[np.searchsorted(lookup.bounds, key, side="right") - 1]
        wanted = size[fast]
        if lookup.all_simple and found.size:
            # The common deck: one plain rate a prefix. Only numbers shorter than the
            # prefix found need another look.
            short = (found < 0) | (lookup.label_len[found] > wanted)
            if not short.any():
                rate[fast] = lookup.simple[found]
                label[fast] = found
                return rate, label
        # A number shorter than the prefix found, or a prefix with no candidate in
        # force: its parent is the next longest prefix to try.
        while fast.size:
            short = (found >= 0) & (lookup.label_len[np.maximum(found, 0)] > wanted)
            while short.any():
                found = np.where(short, lookup.parent[np.maximum(found, 0)], found)
                short = (found >= 0) & (lookup.label_len[np.maximum(found, 0)] > wanted)
            hit = np.flatnonzero(found >= 0)
            fast, found, wanted = fast[hit], found[hit], wanted[hit]
            if not fast.size:
                break
            got = self._resolve(lookup, found, rows[fast], at_us)
            ok = got >= 0
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
        out = simple.copy()
        todo = np.flatnonzero(simple < 0)
        if todo.size:
            at = at_us[rows[todo]]
            out[todo] = self.in_force(lookup, labels[todo], at, at)
        return out

    def in_force(
        self, lookup: Lookup, labels: NDArray, window_us: NDArray, schedule_us: NDArray
    ) -> NDArray:
        """Per label, its first candidate whose validity window contains ``window_us``
        and whose schedule (if any) covers ``schedule_us``, or -1 (rating-rules §5–6:
        the window at the call's start, the schedule at the instant asked about)."""
        first = lookup.bucket_start[labels]
        count = lookup.bucket_size[labels]
        local: Local | None = None
        chosen = np.full(labels.size, -1, np.int32)
        for j in range(lookup.max_bucket):
            open_ = np.flatnonzero((chosen < 0) & (count > j))
            if not open_.size:
                break
            member = lookup.members[first[open_] + j]
            ok = _rules.in_window(
                window_us[open_], self.valid_from[member], self.valid_until[member]
            )
            sched = self.schedule_id[member]
            if sched.any():
                if local is None:
                    local = self.local(schedule_us)
                for sid in np.unique(sched[sched > 0]).tolist():
                    mine = np.flatnonzero(sched == sid)
                    ok[mine] &= self._covered(self.schedules[sid - 1], local, open_[mine])
            chosen[open_[ok]] = member[ok]
        return chosen

    def _covered(self, schedule: Schedule, local: Local, where: NDArray) -> NDArray:
        covered = self.covers(
            schedule, local.weekday[where], local.day[where], local.seconds[where]
        )
        # An instant outside the years of the offset table is placed by the clock.
        clock = self.compiled.clock
        for k in np.flatnonzero(~local.placed[where]).tolist():
            when = _EPOCH + timedelta(microseconds=int(local.us[where[k]]))
            d, s = clock.local(when)
            covered[k] = schedule.covers_local(d, s, clock.holidays)
        return covered

    def single_band(
        self,
        lookup: Lookup,
        labels: NDArray,
        started_us: NDArray,
        answered_us: NDArray,
    ) -> tuple[NDArray, NDArray]:
        """For billable calls to prefixes with schedules: the rate in force at the
        answer (among the candidates in force at the start; -1 in a gap), and whether
        no band can change before ``limit_s`` seconds after the answer.

        A band can change only at a wall-clock edge of one of the label's schedules, at
        local midnight (weekdays, dates, holidays) or at a change of UTC offset; the
        seconds to the first such instant after the answer are returned, so that a
        call billed for fewer seconds is priced by that one rate, exactly as
        ``rating.price_banded`` would (one band). Others go to ``price_banded``.
        """
        rate = self.in_force(lookup, labels, started_us, answered_us)
        local = self.local(answered_us)
        seconds, placed = local.seconds, local.placed
        edges = np.full(labels.size, 86_400, np.int64)
        for sid, schedule in enumerate(self.schedules, 1):
            # Rows whose label has this schedule among its candidates.
            has = np.zeros(labels.size, bool)
            first = lookup.bucket_start[labels]
            count = lookup.bucket_size[labels]
            for j in range(lookup.max_bucket):
                live = count > j
                has[live] |= self.schedule_id[lookup.members[first[live] + j]] == sid
            if not has.any():
                continue
            for edge in (schedule._start_s, schedule._end_s):
                after = has & (edge > seconds)
                edges[after] = np.minimum(edges[after], edge)
        fraction = answered_us - np.floor_divide(answered_us, 1_000_000) * 1_000_000
        room_us = (edges - seconds) * 1_000_000 - fraction
        limit = np.floor_divide(room_us, 1_000_000)
        # A change of UTC offset within the room: let the object engine lay the bands.
        later = answered_us + np.maximum(room_us, 0)
        same_offset = self._offset_at(answered_us) == self._offset_at(later)
        limit = np.where(placed & same_offset, limit, -1)
        return rate, limit

    def _offset_at(self, us: NDArray) -> NDArray:
        placed = (us >= _LOCAL_RANGE[0]) & (us < _LOCAL_RANGE[1])
        out = np.zeros(us.size, np.int64)
        if placed.any():
            out[placed] = self._offsets(us[placed])
        return out

    def bucket(self, direction: Direction, label: int) -> Any:
        """The object engine's candidates of a label: a tuple of rates or a Scheduled."""
        lookup = self.lookups[direction]
        index = self.compiled.indexes[direction]
        prefix = lookup.prefixes[label]
        return index.candidates.get(prefix) or (index.buckets[prefix],)


def _order(keys: NDArray) -> NDArray:
    """Rows in nearly ascending key order, which is all searchsorted needs to read the
    bounds in order: one sort of a word per row (the key's high bits above the row
    number) is several times faster than an argsort. Keys are below 10**18 < 2**60."""
    bits = max(int(keys.size - 1).bit_length(), 1)
    packed = (keys.astype(np.uint64) >> np.uint64(max(bits - 4, 0))) << np.uint64(bits)
    packed |= np.arange(keys.size, dtype=np.uint64)
    packed.sort()
    return (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
