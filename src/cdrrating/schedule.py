"""Schedules: when a rate is in force (weekdays, time of day, dates, holidays).

A :class:`Schedule` is a conjunction of conditions on the *local* date and wall-clock
time of an instant, read in the plan's time zone (rating-rules §6). Every condition is
tested on the instant itself: a window ``20:00-08:00`` on ``Fri`` covers Friday
00:00-08:00 and Friday 20:00-24:00, not Saturday morning (give Saturday its own rate).
Wall-clock time is what the clock on the wall shows, so a window ``08:00-20:00`` is
right on both sides of a daylight-saving change; on the night the clocks go back a
window that contains the repeated hour is in force for both of its occurrences, and a
window that starts in the missing hour starts when the clocks jump past it.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import attrs

from cdrrating._enum import EnumParser
from cdrrating._rules import ScheduleTerms, covers
from cdrrating._validate import text_value
from cdrrating.errors import ValidationError

__all__ = ["BandPolicy", "Schedule"]

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_ALIASES: dict[str, int] = {}
for _i, _name in enumerate(calendar.day_name):
    _DAY_ALIASES[_name.lower()] = _i
    _DAY_ALIASES[_name[:3].lower()] = _i
    _DAY_ALIASES[_name[:2].lower()] = _i
_DAY_ALIASES["tues"] = 1
_DAY_ALIASES["thur"] = _DAY_ALIASES["thurs"] = 3

ALL_DAYS = frozenset(range(7))
_DAY = 86_400


class BandPolicy(enum.StrEnum):
    """How a plan prices a call that crosses a band (rating-rules §6).

    ``split`` (the default): every step is priced by the rate in force at the step's
    start. ``start``: the rate in force at the answer time prices the whole call.
    """

    SPLIT = "split"
    START = "start"

    @classmethod
    def parse(cls, value: BandPolicy | str, field: str = "band_policy") -> BandPolicy:
        return _PARSE_BAND_POLICY(value, field)


_PARSE_BAND_POLICY = EnumParser(BandPolicy)


# -- converters (lossless normalisation only) -----------------------------------------------


def _parse_days(text: str, field: str) -> frozenset[int]:
    days: set[int] = set()
    spec = text.strip().lower()
    if spec in ("*", "all", "daily", "every day"):
        return ALL_DAYS
    for part in re.split(r"\s*[,;]\s*", spec):
        ends = [p.strip() for p in part.split("-")]
        if len(ends) not in (1, 2) or not all(e in _DAY_ALIASES for e in ends):
            raise ValidationError(
                field, text, "weekday names such as 'Mon-Fri', 'Sat,Sun' or 'all'"
            )
        first, last = _DAY_ALIASES[ends[0]], _DAY_ALIASES[ends[-1]]
        day = first
        days.add(day)
        while day != last:  # 'Fri-Mon' wraps through the weekend
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _to_weekdays(value: Any) -> frozenset[int]:
    if isinstance(value, frozenset) and value <= ALL_DAYS:
        return value
    if isinstance(value, str):
        return _parse_days(value, "weekdays")
    try:
        days = frozenset(value)
    except TypeError:
        raise ValidationError(
            "weekdays", value, "weekday numbers 0 (Monday) to 6 (Sunday), or text like 'Mon-Fri'"
        ) from None
    for day in days:
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise ValidationError(
                "weekdays", value, "weekday numbers 0 (Monday) to 6 (Sunday), as date.weekday()"
            )
    return days


# ASCII digits only, as everywhere: other scripts' digits are refused.
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")


def _parse_time(text: str, field: str) -> time:
    match = _TIME.fullmatch(text.strip())
    if match is not None:
        h, m, s = int(match[1]), int(match[2]), int(match[3] or 0)
        if (h, m, s) == (24, 0, 0):
            return time(0)  # "24:00" ends a window at midnight
        if h < 24 and m < 60 and s < 60:
            return time(h, m, s)
    raise ValidationError(field, text, "a time of day such as '08:00', '20:30:00' or '24:00'")


def _to_start(value: Any) -> time:
    return _parse_time(value, "start") if isinstance(value, str) else value


def _to_end(value: Any) -> time:
    return _parse_time(value, "end") if isinstance(value, str) else value


def _parse_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(field, text, "an ISO date such as 2026-12-25") from None


def _to_date_ranges(value: Any) -> tuple[tuple[date, date], ...]:
    if value == ():
        return ()
    if isinstance(value, str):
        ranges = []
        for part in re.split(r"\s*[,;]\s*", value.strip()):
            ends = part.split("..")
            if len(ends) > 2:
                raise ValidationError(
                    "dates", value, "dates or ranges such as '2026-12-24..2026-12-26'"
                )
            ranges.append((_parse_date(ends[0], "dates"), _parse_date(ends[-1], "dates")))
        return tuple(sorted(ranges))
    out: list[tuple[date, date]] = []
    try:
        items = list(value)
    except TypeError:
        raise ValidationError(
            "dates", value, "a sequence of dates or (first, last) pairs"
        ) from None
    for item in items:
        pair = (item, item) if isinstance(item, date) else item
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValidationError("dates", value, "a sequence of dates or (first, last) pairs")
        for end in pair:  # checked before sorting, which cannot order other types
            if not isinstance(end, date) or isinstance(end, datetime):
                raise ValidationError("dates", end, "a datetime.date (not a datetime)")
        out.append((pair[0], pair[1]))
    return tuple(sorted(out))


def _to_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [p for p in re.split(r"\s*,\s*", value.strip()) if p]
    try:
        names = tuple(sorted(set(value)))
    except TypeError:
        raise ValidationError("holidays", value, "holiday calendar names (str)") from None
    for name in names:
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ValidationError("holidays", value, "holiday calendar names (non-empty str)")
    return names


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


@attrs.frozen(kw_only=True)
class Schedule:
    """When a rate is in force, read in its plan's time zone (rating-rules §6).

    An instant is covered when every condition holds for its local date and wall-clock
    time: its weekday is in ``weekdays`` (0 = Monday, as ``date.weekday()``; text such
    as ``"Mon-Fri"`` is accepted); its time of day is in ``[start, end)`` (``end <=
    start`` wraps midnight; ``start == end``, the default, is the whole day); its date
    lies in one of the inclusive ``dates`` ranges (none: any date); it is a date of one
    of the plan's holiday calendars named in ``only_holidays`` (none: any date); and it
    is not a date of a calendar named in ``except_holidays``.

    ``Schedule.parse("Mon-Fri 08:00-20:00 except:DE")`` reads the compact form that
    ``str(schedule)`` writes.
    """

    weekdays: frozenset[int] = attrs.field(default=ALL_DAYS, converter=_to_weekdays)
    start: time = attrs.field(default=time(0), converter=_to_start)
    end: time = attrs.field(default=time(0), converter=_to_end)
    dates: tuple[tuple[date, date], ...] = attrs.field(default=(), converter=_to_date_ranges)
    only_holidays: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    except_holidays: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    # Derived for the rating path: the window in seconds of the day.
    _start_s: int = attrs.field(init=False, eq=False, hash=False, repr=False)
    _end_s: int = attrs.field(init=False, eq=False, hash=False, repr=False)
    # The schedule as the one rule that reads it (``_rules.covers``) takes it.
    _terms: ScheduleTerms = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.weekdays:
            raise ValidationError("weekdays", set(), "at least one weekday")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None or value.microsecond:
                raise ValidationError(
                    name,
                    value,
                    "a naive datetime.time in whole seconds (the plan's time zone applies)",
                )
        for first, last in self.dates:
            for value in (first, last):
                if not isinstance(value, date) or isinstance(value, datetime):
                    raise ValidationError("dates", value, "a datetime.date (not a datetime)")
            if last < first:
                raise ValidationError("dates", (first, last), "ranges with first <= last")
        both = set(self.only_holidays) & set(self.except_holidays)
        if both:
            raise ValidationError(
                "except_holidays", sorted(both), "calendars not also named in only_holidays"
            )
        if self.start == self.end != time(0):
            # Every start == end is the whole day: one form, so that equal schedules
            # compare equal and str() -> parse() gives back the same schedule.
            object.__setattr__(self, "start", time(0))
            object.__setattr__(self, "end", time(0))
        object.__setattr__(self, "_start_s", _seconds(self.start))
        object.__setattr__(self, "_end_s", _seconds(self.end))
        terms = (
            sum(1 << d for d in self.weekdays),
            self._start_s,
            self._end_s,
            tuple((a.toordinal(), b.toordinal()) for a, b in self.dates),
        )
        object.__setattr__(self, "_terms", terms)

    @property
    def calendars(self) -> tuple[str, ...]:
        """Every holiday calendar the schedule names."""
        return tuple(sorted({*self.only_holidays, *self.except_holidays}))

    def covers_local(self, day: date, seconds: int, holidays: Mapping[str, Any]) -> bool:
        """Whether a local date and second of the day (wall clock) are covered, given
        the plan's holiday calendars (name → set of dates)."""
        return bool(
            covers(
                self._terms,
                day.weekday(),
                day.toordinal(),
                seconds,
                only=[day in holidays[n] for n in self.only_holidays],
                excepted=[day in holidays[n] for n in self.except_holidays],
            )
        )

    def __str__(self) -> str:
        parts = []
        if self.weekdays != ALL_DAYS:
            parts.append(_days_text(self.weekdays))
        if self._start_s != self._end_s:
            end = "24:00" if self._end_s == 0 else _time_text(self.end)
            parts.append(f"{_time_text(self.start)}-{end}")
        if self.dates:
            parts.append(
                ",".join(
                    a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}"
                    for a, b in self.dates
                )
            )
        if self.only_holidays:
            parts.append("only:" + ",".join(self.only_holidays))
        if self.except_holidays:
            parts.append("except:" + ",".join(self.except_holidays))
        return " ".join(parts) or "always"

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Read the compact form: space-separated weekdays (``Mon-Fri``, ``Sat,Sun``),
        a time window (``08:00-20:00``, ``20:00-08:00``), dates (``2026-12-24..2026-12-26``),
        ``only:NAME[,NAME]`` and ``except:NAME[,NAME]`` (holiday calendars); ``always``
        is a schedule with no condition."""
        if not isinstance(text, str):
            raise ValidationError("schedule", text, "a schedule text such as 'Mon-Fri 08:00-20:00'")
        kwargs: dict[str, Any] = {}
        # Collected in lists: one tuple grown per token would make the work quadratic.
        dates: list[tuple[date, date]] = []
        names: dict[str, list[str]] = {"only_holidays": [], "except_holidays": []}
        for token in text.split():
            lower = token.lower()
            if lower == "always":
                continue
            if lower.startswith(("only:", "except:")):
                key = "only_holidays" if lower.startswith("only:") else "except_holidays"
                names[key].extend(_to_names(token.split(":", 1)[1]))
            elif _WINDOW.fullmatch(token):
                first, last = token.split("-")
                kwargs["start"] = _parse_time(first, "schedule")
                kwargs["end"] = _parse_time(last, "schedule")
            elif _DATES.fullmatch(token):
                dates.extend(_to_date_ranges(token))
            else:
                try:
                    kwargs["weekdays"] = _parse_days(token, "schedule")
                except ValidationError:
                    raise ValidationError(
                        "schedule",
                        text,
                        "weekdays ('Mon-Fri'), a window ('08:00-20:00'), dates "
                        "('2026-12-24..2026-12-26'), 'only:DE' or 'except:DE'",
                    ) from None
        if dates:
            kwargs["dates"] = dates
        kwargs.update({key: found for key, found in names.items() if found})
        return cls(**kwargs)


_WINDOW = re.compile(r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?-[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?")
_DATES = re.compile(r"[0-9.,;-]+")


def _days_text(days: frozenset[int]) -> str:
    # Runs of consecutive days as "Mon-Fri"; a run through Sunday into Monday is kept
    # apart ("Mon,Sat-Sun") so that the text reads in calendar order.
    runs: list[tuple[int, int]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day - 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return ",".join(
        _DAY_NAMES[a] if a == b else f"{_DAY_NAMES[a]}-{_DAY_NAMES[b]}" for a, b in runs
    )


def _time_text(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


_SCHEDULE_COLUMNS = (
    "schedule",
    "weekdays",
    "days",
    "hours",
    "time_window",
    "time_from",
    "time_until",
    "dates",
    "only_holidays",
    "except_holidays",
)


def schedule_from_row(data: Mapping[str, Any]) -> Schedule | None:
    """The schedule of a rate-deck row (lower-cased keys, blanks removed), or None.

    A ``schedule`` column in the compact form, or separate columns: ``weekdays``
    (``days``), ``hours`` (``time_window``, ``"08:00-20:00"``) or ``time_from`` and
    ``time_until``, ``dates``, ``only_holidays``, ``except_holidays``.
    """
    if not any(key in data for key in _SCHEDULE_COLUMNS):
        return None
    if "schedule" in data:
        others = [k for k in _SCHEDULE_COLUMNS[1:] if k in data]
        if others:
            raise ValidationError(
                "schedule", data["schedule"], f"either a schedule column or {others}, not both"
            )
        return Schedule.parse(text_value("schedule", data["schedule"], max_len=_MAX_CELL))
    kwargs: dict[str, Any] = {}
    days_key = "weekdays" if "weekdays" in data else "days"
    if days_key in data:
        kwargs["weekdays"] = _parse_days(
            text_value(days_key, data[days_key], max_len=_MAX_CELL), days_key
        )
    window_key = "hours" if "hours" in data else "time_window"
    if window_key in data:
        window = text_value(window_key, data[window_key], max_len=_MAX_CELL)
        ends = window.split("-")
        if len(ends) != 2:
            raise ValidationError(window_key, window, "a window such as '08:00-20:00'")
        kwargs["start"] = _parse_time(ends[0], window_key)
        kwargs["end"] = _parse_time(ends[1], window_key)
    for key, name in (("time_from", "start"), ("time_until", "end")):
        if key in data:
            kwargs[name] = _parse_time(text_value(key, data[key], max_len=_MAX_CELL), key)
    for key in ("dates", "only_holidays", "except_holidays"):
        if key in data:
            kwargs[key] = text_value(key, data[key], max_len=_MAX_CELL)
    return Schedule(**kwargs)


# A schedule cell longer than this is not a schedule (a year of dates fits in 4,000).
_MAX_CELL = 10_000


def to_holidays(value: Any) -> Mapping[str, frozenset[date]]:
    """The plan's ``holidays`` argument as name → frozenset of dates (ISO text accepted)."""
    if isinstance(value, Mapping) and all(
        isinstance(v, frozenset) and all(type(d) is date for d in v) for v in value.values()
    ):
        items = value
    else:
        if not isinstance(value, Mapping):
            raise ValidationError(
                "holidays", value, "a mapping of calendar name to dates, e.g. {'DE': [...]}"
            )
        items = {}
        for name, dates in value.items():
            if isinstance(dates, str | date):
                raise ValidationError(f"holidays[{name!r}]", dates, "a collection of dates")
            try:
                listed = list(dates)
            except TypeError:
                raise ValidationError(
                    f"holidays[{name!r}]", dates, "a collection of dates"
                ) from None
            out = set()
            for item in listed:
                d = _parse_date(item, f"holidays[{name!r}]") if isinstance(item, str) else item
                if not isinstance(d, date) or isinstance(d, datetime):
                    raise ValidationError(f"holidays[{name!r}]", d, "a datetime.date")
                out.add(d)
            items[name] = frozenset(out)
    for name in items:
        if not isinstance(name, str) or not name:
            raise ValidationError("holidays", name, "calendar names as non-empty str")
    return dict(items)


# -- what a priced call reports ---------------------------------------------------------------
