"""Rate plans: a deck of rates in one currency, and the rule that picks a rate for a call."""

from __future__ import annotations

import itertools
import operator
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import pygtrie  # type: ignore[import-untyped]  # pygtrie ships no type information

from cdrrating import _html, _wire
from cdrrating._bands import Clock, can_be_in_force, gaps
from cdrrating._compiled import Compiled
from cdrrating._rules import normalise_number
from cdrrating._validate import check_aware, check_int
from cdrrating.cdr import Direction
from cdrrating.errors import PlanError, ValidationError
from cdrrating.money import Rounding, format_micros
from cdrrating.rates import Rate, RateStatus
from cdrrating.schedule import BandPolicy, to_holidays

__all__ = ["Finding", "RatePlan", "normalise_number"]

_CURRENCY = re.compile(r"[A-Z]{3}")
_OUTBOUND = Direction.OUTBOUND  # lookup's default direction: one identity test


@attrs.frozen
class Finding:
    """Something a rate-deck editor should look at, from :meth:`RatePlan.check`."""

    code: str  # "never_wins", "expired", "non_digit_prefix", ...
    message: str
    rates: tuple[Rate, ...] = ()


_CODE_PART = re.compile(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*")


def _clean_code_list(text: str) -> bool:
    """A rate notice's code cell of plain codes and same-length ranges (``"49152,
    49172-49174"``): its rates were expanded from it as written, nothing was dropped."""
    for part in re.split(r"[,;]", text):
        m = _CODE_PART.fullmatch(part)
        if m is None or (m.group(2) is not None and len(m.group(1)) != len(m.group(2))):
            return False
    return True


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


def _str_tuple(values: Iterable[str] | str) -> tuple[str, ...]:
    # One access prefix may be given as a str: "011" is that prefix, never the three
    # prefixes "0", "1", "1" that tuple("011") would make.
    if isinstance(values, str):
        return (values,)
    try:
        return tuple(values)
    except TypeError:
        raise ValidationError(
            "access_prefixes", values, "a sequence of digit strings, e.g. ('00', '011')"
        ) from None


def _to_rounding(value: Rounding | str) -> Rounding:
    return Rounding.parse(value)


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

    _compiled: Compiled = attrs.field(init=False, repr=False)
    _trie: pygtrie.CharTrie | None = attrs.field(init=False, repr=False)
    # Re-entrant: building the trie reads ``rates``, which a loaded plan makes under it.
    _lock: threading.RLock = attrs.field(init=False, repr=False)
    _hash: str | None = attrs.field(init=False, repr=False)  # content_hash, once computed
    # A plan loaded from a pickle: the payload it came from (see ``__reduce_ex__``).
    _wire: tuple[Any, ...] | None = attrs.field(init=False, repr=False)

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
        compiled = Compiled(self.rates, clock, self.access_prefixes)
        overlaps: dict[tuple[Any, ...], bool] = {}
        for group in compiled.shared():
            _check_ambiguity(list(group), clock, overlaps)
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_trie", None)
        object.__setattr__(self, "_lock", threading.RLock())
        object.__setattr__(self, "_hash", None)
        object.__setattr__(self, "_wire", None)

    @property
    def _prefix_trie(self) -> pygtrie.CharTrie:
        """prefix → all its rates (any status or direction), in plan order.

        Built on first use: the rating hot path needs only the dict index, and a
        300k-prefix trie costs more to build than the rest of the plan together.
        """
        trie = self._trie
        if trie is None:
            with self._lock:
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
        if not isinstance(number, str):
            raise ValidationError("number", number, "a dialled number as a str")
        # check_aware decides. A datetime in UTC itself passes all its checks (no offset
        # to leave the calendar by, no skipped hours), so the call is spared for the
        # usual value; tests/test_lookup_fast_path.py holds the two to the same answers.
        if at is not None and not (type(at) is datetime and at.tzinfo is UTC):
            check_aware("at", at)
        if direction is not _OUTBOUND and not isinstance(direction, str):
            direction = Direction.parse(direction)  # refuses it, naming the field
        try:
            # Direction is a StrEnum, so a plain "outbound" finds the same entry.
            index = self._compiled.indexes[direction]  # type: ignore[index]
        except KeyError:
            # Not a direction this plan prices, or spelled otherwise ("OUTBOUND"):
            # parse it, which refuses a direction that does not exist.
            found_index = self._compiled.indexes.get(Direction.parse(direction))
            if found_index is None:
                return None
            index = found_index
        found: Rate | None = index.match(number, at)[1]
        return found

    def has_direction(self, direction: Direction) -> bool:
        """Whether any rate of the plan (in any status) prices calls in ``direction``."""
        return direction in self._compiled.indexes

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
        wire = self._wire
        if wire is not None:
            return int(wire[1]["count"])  # without making the rates of a loaded plan
        return len(self.rates)

    def __iter__(self) -> Iterator[Rate]:
        return iter(self.rates)

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"RatePlan({label}{len(self)} rates, {self.currency}, "
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
        if other is self:
            return True
        if self._hash is not None or other._hash is not None:
            # The content hash encodes every field equality compares but the name, so
            # where one side has it (a loaded plan always does) it decides, and the
            # rates of a loaded plan are never made just to be compared.
            return self.name == other.name and self.content_hash == other.content_hash
        return self._fields_equal(other)

    def _fields_equal(self, other: RatePlan) -> bool:
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

    # -- identity and shipping -----------------------------------------------------------

    @property
    def content_hash(self) -> str:
        """A hex sha256 of everything that prices a call: every field of every rate
        (windows as instants), the currency, rounding, quantum, access prefixes, time
        zone, holidays and band policy; not the ``name``.

        Computed once and kept. It is the same in every process and Python version
        (no hash seed takes part), so it can be logged to say which plan priced a batch.
        """
        digest = self._hash
        if digest is None:
            digest = _wire.content_hash(self._settings(), _wire.transpose(self.rates))
            object.__setattr__(self, "_hash", digest)
        return digest

    def __dask_tokenize__(self) -> tuple[str, str, str]:
        """Dask's token for the plan: its content hash and name (equal plans, equal
        tokens), instead of hashing a pickle of it."""
        return ("cdrrating.RatePlan", self.content_hash, self.name)

    def _settings(self) -> dict[str, Any]:
        """The plan-wide fields that take part in pricing, as JSON values."""
        return {
            "currency": self.currency,
            "rounding": self.rounding.value,
            "quantum_micros": self.quantum_micros,
            "access_prefixes": list(self.access_prefixes),
            "timezone": self.timezone,
            "holidays": {k: sorted(d.isoformat() for d in v) for k, v in self.holidays.items()},
            "band_policy": self.band_policy.value,
        }

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        """Pickle as columns of rate fields plus the table form when it is built (or
        numpy is installed to build it): no lock, no index, nothing to rebuild."""
        wire = self._wire
        if wire is not None:
            return (RatePlan._from_wire, (_wire.reship(wire, int(protocol)),))
        fields = _wire.transpose(self.rates)
        settings = self._settings()
        if self._hash is None:
            object.__setattr__(self, "_hash", _wire.content_hash(settings, fields))
        table = self._compiled._table
        if table is None and _wire.has_numpy():
            table = self._compiled.table(self)
        header = {
            **settings,
            "name": self.name,
            "count": len(self.rates),
            "byteorder": sys.byteorder,
        }
        payload = (
            _wire.FORMAT,
            header,
            _wire.encode_rates(fields, int(protocol)),
            None if table is None else _wire.encode_table(table, self.rates, fields),
            self._hash,
        )
        return (RatePlan._from_wire, (payload,))

    def __copy__(self) -> RatePlan:
        return self  # immutable: a copy would be this plan again, at a pickle's cost

    def __deepcopy__(self, memo: dict[int, Any]) -> RatePlan:
        return self

    @classmethod
    def _from_wire(cls, payload: tuple[Any, ...]) -> RatePlan:
        """A plan from ``__reduce_ex__``'s payload: rates are made from the columns on
        first use, the index on first object-engine look-up; the table form is ready."""
        if not isinstance(payload, tuple) or not payload or payload[0] != _wire.FORMAT:
            found = payload[0] if isinstance(payload, tuple) and payload else payload
            raise _wire.WireError(
                f"a pickled RatePlan of format {_wire.FORMAT}, not {found!r}: pickle and "
                "load it with the same version of cdrrating"
            )
        _format, header, _columns, table_state, digest = payload
        self = object.__new__(cls)
        put = object.__setattr__
        holidays = {k: frozenset(map(date.fromisoformat, v)) for k, v in header["holidays"].items()}
        access = tuple(header["access_prefixes"])
        put(self, "currency", header["currency"])
        put(self, "rounding", Rounding(header["rounding"]))
        put(self, "quantum_micros", header["quantum_micros"])
        put(self, "access_prefixes", access)
        put(self, "name", header["name"])
        put(self, "timezone", header["timezone"])
        put(self, "holidays", holidays)
        put(self, "band_policy", BandPolicy(header["band_policy"]))
        put(self, "_trie", None)
        put(self, "_lock", threading.RLock())
        put(self, "_hash", digest)
        put(self, "_wire", payload)
        clock = Clock(ZoneInfo(header["timezone"]), holidays)
        compiled = Compiled.deferred(lambda: self.rates, clock, access, None)
        if table_state is not None:
            compiled._table = _wire.decode_table(table_state, self, compiled, _columns, header)
        put(self, "_compiled", compiled)
        return self

    if not TYPE_CHECKING:  # to mypy every other attribute stays checked

        def __getattr__(self, name: str) -> Any:
            # Called only while a slot is unset: ``rates`` of a loaded plan, made from
            # its payload once; then the slot is read directly.
            if name != "rates":
                raise AttributeError(name)
            wire = object.__getattribute__(self, "_wire")
            if wire is None:
                raise AttributeError(name)
            with self._lock:
                try:
                    return object.__getattribute__(self, "rates")
                except AttributeError:
                    pass
                header = wire[1]
                rates = _wire.decode_rates(wire[2], header["count"], header["byteorder"])
                object.__setattr__(self, "rates", rates)
                return rates

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
        clock: Clock = self._compiled.clock
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
