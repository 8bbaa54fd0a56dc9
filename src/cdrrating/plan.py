"""Rate plans: a deck of rates in one currency, and the rule that picks a rate for a call."""

from __future__ import annotations

import itertools
import operator
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import pygtrie  # type: ignore[import-untyped]  # pygtrie ships no type information

from cdrrating import _html
from cdrrating._bands import Clock, Scheduled, can_be_in_force, gaps
from cdrrating._validate import check_int
from cdrrating.cdr import Direction
from cdrrating.errors import PlanError, ValidationError
from cdrrating.money import Rounding, format_micros
from cdrrating.rates import Rate, RateStatus
from cdrrating.schedule import BandPolicy, to_holidays

__all__ = ["Finding", "RatePlan", "normalise_number"]

# What people type between digits; rating-rules §5 strips these before lookup.
_NUMBER_FORMATTING = str.maketrans("", "", " -.()\t")
_CURRENCY = re.compile(r"[A-Z]{3}")


def normalise_number(number: str, access_prefixes: Sequence[str] = ("00",)) -> str | None:
    """Normalise a dialled number as rating-rules §5 says, or None if it is not a number.

    Strips spaces, ``-``, ``.``, ``(``, ``)``, a leading ``+``, then one international
    access prefix (the first of ``access_prefixes`` that matches). What remains must be
    ASCII digits.
    """
    n = number.translate(_NUMBER_FORMATTING)
    if n.startswith("+"):
        n = n[1:]
    for access in access_prefixes:
        if access and n.startswith(access):
            n = n[len(access) :]
            break
    if n and n.isascii() and n.isdigit():
        return n
    return None


@attrs.frozen
class Finding:
    """Something a rate-deck editor should look at, from :meth:`RatePlan.check`."""

    code: str  # "never_wins", "expired", "non_digit_prefix", ...
    message: str
    rates: tuple[Rate, ...] = ()


# What a prefix maps to in _Index.buckets when its candidates are in _Index.candidates.
_SEE_CANDIDATES: Any = object()
_HEAD = 5  # digits of a number that key the head table (see _Index)
_SAMPLE = 20_000  # deck prefixes used to choose the probe strategy at build


_CODE_PART = re.compile(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*")


def _clean_code_list(text: str) -> bool:
    """A rate notice's code cell of plain codes and same-length ranges (``"49152,
    49172-49174"``): its rates were expanded from it as written, nothing was dropped."""
    for part in re.split(r"[,;]", text):
        m = _CODE_PART.fullmatch(part)
        if m is None or (m.group(2) is not None and len(m.group(1)) != len(m.group(2))):
            return False
    return True


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

    __slots__ = ("buckets", "candidates", "fallback", "heads", "raw_digits_ok", "scheduled")

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

    def in_force(self, prefix: str, at: datetime) -> Rate | None:
        """The rate of a ``_SEE_CANDIDATES`` prefix that prices a call started at ``at``."""
        bucket = self.candidates[prefix]
        return _in_force(bucket, at) if type(bucket) is tuple else bucket.find(at)  # type: ignore[union-attr]

    def find(self, number: str, at: datetime) -> Rate | None:
        if self.heads:
            entry = self.heads.get(number[:_HEAD], self.fallback)
            if type(entry) is Rate:
                return entry
        else:
            entry = self.fallback
        buckets = self.buckets
        # No check that length <= len(number) is needed: past the end the slice is the
        # whole number, and if that is a prefix it is the longest possible match.
        for length in entry:  # type: ignore[union-attr]
            bucket = buckets.get(number[:length])
            if bucket is None:
                continue
            if bucket is not _SEE_CANDIDATES:
                return bucket
            found = self.in_force(number[:length], at)
            if found is not None:
                return found
        return None


def _in_force(bucket: tuple[Rate, ...], at: datetime) -> Rate | None:
    """The first rate of a bucket (highest priority first) whose window contains ``at``."""
    for rate in bucket:
        if (rate.valid_from is None or rate.valid_from <= at) and (
            rate.valid_until is None or at < rate.valid_until
        ):
            return rate
    return None


def _probes(number: str, lengths: tuple[int, ...], buckets: dict[str, Any]) -> int:
    for i, length in enumerate(lengths, 1):
        if number[:length] in buckets:
            return i
    return len(lengths)


def _sort_key(rate: Rate) -> tuple[Any, ...]:
    # The fields rating looks at first; the rest only breaks ties (inactive rates, or
    # active ones of one priority with disjoint schedules), so that a plan's order, and
    # so its equality, never depends on the order its rates were given in.
    return (
        rate.prefix,
        rate.direction.value,
        -rate.priority,
        rate.valid_from or _NEVER,
        rate.status.value,
        rate.per_minute_micros,
        rate.id or "",
    )


def _tiebreak_key(r: Rate) -> tuple[Any, ...]:
    """The remaining fields, for rates whose _sort_key ties (rare: computed only then)."""
    return (
        str(r.schedule) if r.schedule is not None else "",
        r.connection_fee_micros,
        r.initial_seconds,
        r.increment_seconds,
        tuple((t.after_seconds, t.per_minute_micros, t.increment_seconds) for t in r.tiers),
        r.grace_seconds,
        r.minimum_charge_micros,
        -1 if r.maximum_charge_micros is None else r.maximum_charge_micros,
        r.valid_until or _NEVER,
        r.destination,
        r.tenant or "",
        r.source_prefix or "",
    )


_NEVER = datetime.min.replace(tzinfo=UTC)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    # A typed converter: with a bare ``converter=tuple`` mypy infers the parameter as
    # ``Iterable[_T_co]`` and rejects every caller's ``access_prefixes=("00",)``.
    return tuple(values)


def _to_rounding(value: Rounding | str) -> Rounding:
    return Rounding.parse(value)


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _to_zone(value: str | ZoneInfo) -> str:
    if isinstance(value, ZoneInfo):
        return value.key
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return value
    raise ValidationError(
        "timezone", value, "an IANA time zone name such as 'Europe/Berlin' or 'UTC'"
    )


def _to_band_policy(value: BandPolicy | str) -> BandPolicy:
    return BandPolicy.parse(value)


def _sorted_rates(rates: Iterable[Rate]) -> tuple[Rate, ...]:
    # A converter runs before validators, so the type check has to happen here.
    items = tuple(rates)
    for i, rate in enumerate(items):
        if not isinstance(rate, Rate):
            raise ValidationError(f"rates[{i}]", rate, "a cdrrating.Rate")
    keys = list(map(_sort_key, items))
    order = sorted(range(len(items)), key=keys.__getitem__)
    ordered_keys = list(map(keys.__getitem__, order))
    equal = list(map(operator.eq, ordered_keys, ordered_keys[1:]))
    if any(equal):
        # Runs of equal keys (rare) are put in the order of the remaining fields.
        for _same, run in itertools.groupby(range(len(order)), key=ordered_keys.__getitem__):
            span = list(run)
            if len(span) > 1:
                first, last = span[0], span[-1] + 1
                order[first:last] = sorted(order[first:last], key=lambda k: _tiebreak_key(items[k]))
    return tuple(items[k] for k in order)


@attrs.frozen(eq=False)
class RatePlan:
    """A rate deck in one currency, with its rounding, quantum and number normalisation.

    Rates are selected exactly as rating-rules §5 says: among the active rates of the
    call's direction that are in force at ``started_at``, the longest prefix wins, then
    the higher priority. Two active rates with the same prefix, direction and priority
    that can be in force at one instant (validity windows and schedules) make the plan
    ambiguous: building it raises :class:`~cdrrating.PlanError` naming both.

    Schedules (rating-rules §6) are read in ``timezone`` (an IANA name); ``holidays``
    names the calendars they refer to (name → dates); ``band_policy`` says how a call
    that crosses a band is priced (``split``, the default, or ``start``).
    """

    rates: tuple[Rate, ...] = attrs.field(converter=_sorted_rates)
    currency: str = attrs.field(kw_only=True)
    rounding: Rounding = attrs.field(default=Rounding.UP, kw_only=True, converter=_to_rounding)
    quantum_micros: int = attrs.field(default=1, kw_only=True)
    access_prefixes: tuple[str, ...] = attrs.field(
        default=("00",), kw_only=True, converter=_str_tuple
    )
    name: str = attrs.field(default="", kw_only=True)
    timezone: str = attrs.field(default="UTC", kw_only=True, converter=_to_zone)
    holidays: Mapping[str, frozenset[date]] = attrs.field(
        factory=dict, kw_only=True, converter=to_holidays
    )
    band_policy: BandPolicy = attrs.field(
        default=BandPolicy.SPLIT, kw_only=True, converter=_to_band_policy
    )

    _clock: Clock = attrs.field(init=False, repr=False)
    _trie: pygtrie.CharTrie | None = attrs.field(init=False, repr=False)
    _trie_lock: threading.Lock = attrs.field(init=False, repr=False)
    _indexes: dict[Direction, _Index] = attrs.field(init=False, repr=False)
    _directions: frozenset[Direction] = attrs.field(init=False, repr=False)

    @currency.validator
    def _check_currency(self, _attr: Any, value: Any) -> None:
        if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
            raise ValidationError(
                "currency", value, "an ISO 4217 code of three capital letters, e.g. 'EUR'"
            )

    @quantum_micros.validator
    def _check_quantum(self, _attr: Any, value: Any) -> None:
        check_int("quantum_micros", value, minimum=1)

    @access_prefixes.validator
    def _check_access(self, _attr: Any, value: tuple[Any, ...]) -> None:
        for p in value:
            if not isinstance(p, str) or not (p.isascii() and p.isdigit()):
                raise ValidationError(
                    "access_prefixes", value, "a sequence of digit strings, e.g. ('00', '011')"
                )

    def __attrs_post_init__(self) -> None:
        clock = Clock(ZoneInfo(self.timezone), self.holidays)
        object.__setattr__(self, "_clock", clock)
        # self.rates is sorted by (prefix, direction, -priority, ...): every group the
        # rules care about is a run of neighbours, so one pass finds them all.
        active: dict[Direction, list[tuple[str, list[Rate]]]] = defaultdict(list)
        directions: set[Direction] = set()
        last: tuple[str, Direction] | None = None
        run: list[Rate] = []
        for rate in self.rates:
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
        known: dict[Any, bool] = {}
        for rate in self.rates:
            if rate.schedule is not None and rate.schedule not in known:
                known[rate.schedule] = True
                missing = [n for n in rate.schedule.calendars if n not in self.holidays]
                if missing:
                    raise PlanError(
                        "holidays",
                        missing,
                        f"a calendar for each name the schedules use (rate {_label(rate)}); "
                        f"the plan has {sorted(self.holidays)}",
                    )
        overlaps: dict[tuple[Any, ...], bool] = {}
        for groups in active.values():
            for _prefix, group in groups:
                if len(group) > 1:
                    _check_ambiguity(group, clock, overlaps)
        object.__setattr__(self, "_directions", frozenset(directions))
        object.__setattr__(
            self,
            "_indexes",
            {d: _Index(active.get(d, ()), clock, self.access_prefixes) for d in directions},
        )
        object.__setattr__(self, "_trie", None)
        object.__setattr__(self, "_trie_lock", threading.Lock())

    @property
    def _prefix_trie(self) -> pygtrie.CharTrie:
        """prefix → all its rates (any status or direction), in plan order.

        Built on first use: the rating hot path needs only the dict index, and a
        300k-prefix trie costs more to build than the rest of the plan together.
        """
        trie = self._trie
        if trie is None:
            with self._trie_lock:
                trie = self._trie
                if trie is None:
                    trie = pygtrie.CharTrie()
                    for prefix, group in itertools.groupby(self.rates, key=lambda r: r.prefix):
                        trie[prefix] = tuple(group)
                    object.__setattr__(self, "_trie", trie)
        return trie

    # -- lookup --------------------------------------------------------------------------

    def normalise(self, number: str) -> str:
        """The number as this plan looks it up; a :class:`ValidationError` if it is not one."""
        if not isinstance(number, str):
            raise ValidationError("number", number, "a str")
        result = normalise_number(number, self.access_prefixes)
        if result is None:
            raise ValidationError(
                "number",
                number,
                "digits after removing spaces, '-', '.', '(', ')', '+' and the access prefix",
            )
        return result

    def lookup(
        self,
        number: str,
        at: datetime | None = None,
        *,
        direction: Direction | str = Direction.OUTBOUND,
    ) -> Rate | None:
        """The rate that prices a call to ``number`` started at ``at``, or None.

        ``at=None`` means now. An invalid number has no rate (None); use
        :meth:`normalise` to see why.
        """
        # Direction is a StrEnum, so a plain "outbound" finds the same dict entry.
        index = self._indexes.get(direction)  # type: ignore[arg-type]
        if index is None:
            # Not a direction this plan prices, or spelled otherwise ("OUTBOUND"):
            # parse it, which refuses a direction that does not exist.
            index = self._indexes.get(Direction.parse(direction))
            if index is None:
                return None
        # isascii() first: it is O(1), isdigit() reads the string.
        if not (number.isascii() and number.isdigit()) or (
            not index.raw_digits_ok and number.startswith(self.access_prefixes)
        ):
            maybe = normalise_number(number, self.access_prefixes)
            if maybe is None:
                return None
            number = maybe
        # _Index.find, inlined: a call per lookup is a fifth of its cost (benchmarks/).
        if index.heads:
            entry = index.heads.get(number[:_HEAD], index.fallback)
            if type(entry) is Rate:
                return entry
        else:
            entry = index.fallback
        buckets = index.buckets
        for length in entry:  # type: ignore[union-attr]
            bucket = buckets.get(number[:length])
            if bucket is None:
                continue
            if bucket is not _SEE_CANDIDATES:
                return bucket
            # Only here is the time needed: most prefixes have one rate and no window.
            found = index.in_force(number[:length], at or datetime.now(UTC))
            if found is not None:
                return found
        if index.raw_digits_ok and number.startswith(self.access_prefixes):
            # Dialled with an access prefix, which was not stripped above: no rate of
            # this deck can match it as dialled (see _Index), so the stripped number's
            # answer is the answer.
            stripped = normalise_number(number, self.access_prefixes)
            return index.find(stripped, at or datetime.now(UTC)) if stripped is not None else None
        return None

    def has_direction(self, direction: Direction) -> bool:
        """Whether any rate of the plan (in any status) prices calls in ``direction``."""
        return direction in self._directions

    def rates_under(self, prefix: str) -> tuple[Rate, ...]:
        """Every rate whose prefix starts with ``prefix``, in prefix order."""
        try:
            groups = [group for _key, group in self._prefix_trie.iteritems(prefix=prefix)]
        except KeyError:
            return ()
        return tuple(sorted((r for g in groups for r in g), key=_sort_key))

    def matching_rates(self, number: str) -> tuple[Rate, ...]:
        """Every rate whose prefix is a prefix of the normalised ``number``, longest first,
        whatever its status, direction or window: what ``explain()`` weighs."""
        normalised = normalise_number(number, self.access_prefixes)
        if normalised is None:
            return ()
        found: list[Rate] = []
        for _key, group in self._prefix_trie.prefixes(normalised):
            found[:0] = group  # pygtrie yields shortest first
        return tuple(found)

    def __len__(self) -> int:
        return len(self.rates)

    def __iter__(self) -> Iterator[Rate]:
        return iter(self.rates)

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"RatePlan({label}{len(self.rates)} rates, {self.currency}, "
            f"rounding={self.rounding.value}, quantum_micros={self.quantum_micros}"
            + (f", timezone={self.timezone!r}" if self.timezone != "UTC" else "")
            + ")"
        )

    def _repr_html_(self) -> str:
        """The plan's settings and its first rates, for notebooks (escaped, row-limited)."""
        rows = (
            (
                r.prefix or "(catch-all)",
                r.destination,
                format_micros(r.per_minute_micros, self.currency),
                r.increment,
                format_micros(r.connection_fee_micros),
                r.priority,
                r.status.value,
                r.direction.value,
            )
            for r in self.rates
        )
        header = [
            "prefix",
            "destination",
            "per minute",
            "increment",
            "fee",
            "priority",
            "status",
            "direction",
        ]
        return _html.table(header, rows, total=len(self.rates), caption=repr(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RatePlan):
            return NotImplemented
        return (
            self.rates == other.rates
            and self.currency == other.currency
            and self.rounding == other.rounding
            and self.quantum_micros == other.quantum_micros
            and self.access_prefixes == other.access_prefixes
            and self.name == other.name
            and self.timezone == other.timezone
            and self.holidays == other.holidays
            and self.band_policy == other.band_policy
        )

    __hash__ = object.__hash__

    # -- checking ------------------------------------------------------------------------

    def check(self, *, at: datetime | None = None) -> list[Finding]:
        """Findings a rate-deck editor wants to see (the plan itself is valid).

        ``never_wins``: an active rate whose whole window is covered by higher-priority
        rates of the same prefix and direction. ``expired``: a rate whose window ended
        before ``at`` (default now). ``non_digit_prefix``: the source wrote the prefix
        with other characters (``"+44 20"``), which were dropped (a notice's list of plain
        codes and ranges, ``"49152, 49172-49174"``, is expanded as written: no finding).
        ``schedule_never_matches``: an active rate whose schedule covers no instant of its
        validity window. ``schedule_gap``: a prefix and direction with a schedule, and
        times in the year from ``at`` when one of its rates' windows is open but no rate
        is in force (a call that reaches such a time cannot be priced).
        """
        when = at if at is not None else datetime.now(UTC)
        findings: list[Finding] = []
        groups: dict[tuple[str, Direction], list[Rate]] = defaultdict(list)
        for rate in self.rates:
            if rate.status is RateStatus.ACTIVE:
                groups[(rate.prefix, rate.direction)].append(rate)
        for (prefix, direction), group in groups.items():
            for rate in group:
                # A higher-priority rate with a schedule covers only part of the time.
                higher = [r for r in group if r.priority > rate.priority and r.schedule is None]
                if higher and _covered(rate, higher):
                    findings.append(
                        Finding(
                            "never_wins",
                            f"rate {_label(rate)} can never win: higher-priority rates for "
                            f"prefix {prefix!r} ({direction.value}) cover its whole validity "
                            "window",
                            (rate, *higher),
                        )
                    )
        findings.extend(self._check_schedules(groups, when))
        for rate in self.rates:
            if rate.valid_until is not None and rate.valid_until <= when:
                findings.append(
                    Finding(
                        "expired",
                        f"rate {_label(rate)} expired at {rate.valid_until.isoformat()}",
                        (rate,),
                    )
                )
            if rate.source_prefix is not None and not _clean_code_list(rate.source_prefix):
                findings.append(
                    Finding(
                        "non_digit_prefix",
                        f"rate {_label(rate)}: the source wrote the prefix as "
                        f"{rate.source_prefix!r}; only the digits {rate.prefix!r} are used",
                        (rate,),
                    )
                )
        return findings

    def _check_schedules(
        self, groups: Mapping[tuple[str, Direction], list[Rate]], when: datetime
    ) -> list[Finding]:
        clock: Clock = self._clock
        findings: list[Finding] = []
        never: dict[tuple[Any, ...], bool] = {}
        found_gaps: dict[tuple[Any, ...], tuple[list[tuple[datetime, datetime]], int]] = {}
        horizon = when + timedelta(days=SCHEDULE_HORIZON_DAYS)
        for (prefix, direction), group in groups.items():
            if not any(r.schedule is not None for r in group):
                continue
            for rate in group:
                if rate.schedule is None:
                    continue
                key = (rate.schedule, rate.valid_from, rate.valid_until)
                if key not in never:
                    never[key] = not can_be_in_force(
                        clock, [rate.schedule], rate.valid_from, rate.valid_until
                    )
                if never[key]:
                    findings.append(
                        Finding(
                            "schedule_never_matches",
                            f"rate {_label(rate)}: its schedule '{rate.schedule}' covers no "
                            f"instant of its validity window ({self.timezone})",
                            (rate,),
                        )
                    )
            signature = tuple((r.schedule, r.valid_from, r.valid_until) for r in group)
            if signature not in found_gaps:
                found_gaps[signature] = gaps(clock, group, when, horizon)
            spans, count = found_gaps[signature]
            if count:
                tz = clock.tz
                shown = "; ".join(
                    f"{a.astimezone(tz):%a %Y-%m-%d %H:%M} to {b.astimezone(tz):%a %Y-%m-%d %H:%M}"
                    for a, b in spans
                )
                more = f" and {count - len(spans)} more" if count > len(spans) else ""
                findings.append(
                    Finding(
                        "schedule_gap",
                        f"prefix {prefix!r} ({direction.value}) has no rate in force from "
                        f"{shown}{more} ({self.timezone}); a call there cannot be priced",
                        tuple(group),
                    )
                )
        return findings


#: How far ahead ``RatePlan.check`` looks for schedule gaps, in days from ``at``.
SCHEDULE_HORIZON_DAYS = 366


def _label(rate: Rate) -> str:
    parts = [f"prefix {rate.prefix!r}", f"{rate.per_minute_micros} micros/min"]
    if rate.id is not None:
        parts.insert(0, f"id {rate.id!r}")
    if rate.destination:
        parts.append(repr(rate.destination))
    parts.append(f"{rate.direction.value}, priority {rate.priority}")
    if rate.valid_from or rate.valid_until:
        start = rate.valid_from.isoformat() if rate.valid_from else "-inf"
        end = rate.valid_until.isoformat() if rate.valid_until else "+inf"
        parts.append(f"valid [{start}, {end})")
    if rate.schedule is not None:
        parts.append(f"schedule '{rate.schedule}'")
    return "(" + ", ".join(parts) + ")"


def _window(rate: Rate) -> tuple[datetime, datetime]:
    lo = rate.valid_from or datetime.min.replace(tzinfo=UTC)
    hi = rate.valid_until or datetime.max.replace(tzinfo=UTC)
    return lo, hi


def _ambiguous(a: Rate, b: Rate) -> PlanError:
    return PlanError(
        "rates",
        f"{_label(a)} and {_label(b)}",
        "at most one active rate per prefix, direction and priority at any time: "
        "these two overlap, so the plan cannot say which one prices a call; "
        "give one a higher priority or make their validity windows "
        + ("or schedules " if a.schedule is not None or b.schedule is not None else "")
        + "disjoint",
    )


def _check_ambiguity(group: list[Rate], clock: Clock, cache: dict[tuple[Any, ...], bool]) -> None:
    """Refuse two active rates of one prefix and direction, at one priority, that can be
    in force at the same instant: validity windows overlap and, where they have
    schedules, both schedules cover some instant of the overlap (rating-rules §5, §6)."""
    for _priority, same in itertools.groupby(group, key=lambda r: r.priority):
        ordered = sorted(same, key=_window)
        if len(ordered) < 2:
            continue
        if any(r.schedule is not None for r in ordered):
            for i, a in enumerate(ordered):
                for b in ordered[i + 1 :]:
                    lo = max(_window(a)[0], _window(b)[0])
                    hi = min(_window(a)[1], _window(b)[1])
                    if lo >= hi:
                        continue
                    key = (a.schedule, b.schedule, lo, hi)
                    found = cache.get(key)
                    if found is None:
                        found = cache[key] = can_be_in_force(
                            clock,
                            [a.schedule, b.schedule],
                            _bound(a.valid_from, b.valid_from, max),
                            _bound(a.valid_until, b.valid_until, min),
                        )
                    if found:
                        raise _ambiguous(a, b)
            continue
        latest = ordered[0]
        for rate in ordered[1:]:
            if _window(rate)[0] < _window(latest)[1]:
                raise _ambiguous(latest, rate)
            if _window(rate)[1] > _window(latest)[1]:
                latest = rate


def _bound(a: datetime | None, b: datetime | None, pick: Any) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)  # type: ignore[no-any-return]


def _covered(rate: Rate, others: Sequence[Rate]) -> bool:
    """Whether the union of the others' windows covers the rate's whole window."""
    lo, hi = _window(rate)
    for start, end in sorted(_window(o) for o in others):
        if start > lo:
            return False
        lo = max(lo, end)
        if lo >= hi:
            return True
    return lo >= hi
