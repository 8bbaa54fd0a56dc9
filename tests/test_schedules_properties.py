"""Hypothesis properties of schedules and band crossing (rating-rules §6).

The reference is a naive per-step loop that looks up the rate in force at every step's
start with its own reading of a schedule: the fast path (bands counted with arithmetic)
must agree with it to the micro, including across daylight-saving changes.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, timezone
from fractions import Fraction
from zoneinfo import ZoneInfo

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st

from cdrrating import CDR, PlanError, Rate, RatePlan, Schedule, rate
from cdrrating._rules import round_once
from cdrrating.testing.strategies import tiers

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
# Days with a daylight-saving change in at least one of the zones, and plain ones.
DAYS = (
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 12, 24),
    date(2026, 12, 25),
    date(2026, 6, 5),
)
HOLIDAYS = {"H": frozenset({date(2026, 12, 25), date(2026, 10, 25), date(2026, 3, 29)})}
# Edges on, inside and around the hours that DST changes repeat or skip.
EDGES = [time(h, m) for h in (0, 1, 2, 3, 6, 8, 12, 20, 23) for m in (0, 30)] + [time(2, 15, 7)]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    kwargs: dict[str, object] = {}
    if draw(st.booleans()):
        kwargs["weekdays"] = draw(st.frozensets(st.integers(0, 6), min_size=1))
    if draw(st.integers(0, 4)):  # mostly a window: most bands change by time of day
        kwargs["start"] = draw(st.sampled_from(EDGES))
        kwargs["end"] = draw(st.sampled_from(EDGES))
    if draw(st.integers(0, 7)) == 0:
        first = draw(st.sampled_from(DAYS))
        kwargs["dates"] = [(first, first + timedelta(days=draw(st.integers(0, 2))))]
    holiday = draw(st.sampled_from(["", "", "", "", "", "only", "except"]))
    if holiday:
        kwargs[f"{holiday}_holidays"] = "H"
    return Schedule(**kwargs)


@st.composite
def priced_rates(draw: st.DrawFn, schedule: Schedule | None = None, priority: int = 0) -> Rate:
    initial, increment = draw(
        st.sampled_from([(1, 1), (60, 60), (30, 6), (0, 60), (60, 1), (7, 13)])
    )
    maximum = draw(st.none() | st.integers(0, 10_000_000))
    minimum = draw(st.integers(0, 100_000))
    return Rate(
        "1",
        draw(st.integers(0, 2_000_000)),
        initial_seconds=initial,
        increment_seconds=increment,
        tiers=draw(tiers(max_size=2, max_after_seconds=3_000)),
        connection_fee_micros=draw(st.sampled_from([0, 0, 150_000, 1])),
        minimum_charge_micros=minimum if maximum is None else min(minimum, maximum),
        maximum_charge_micros=maximum,
        grace_seconds=draw(st.sampled_from([0, 0, 5])),
        priority=priority,
        schedule=schedule,
    )


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """Instants on the DST and holiday dates, in UTC."""
    day = draw(st.sampled_from(DAYS))
    seconds = draw(st.integers(0, 86_399))
    micro = draw(st.sampled_from([0, 0, 500_000, 999_999]))
    wall = datetime.combine(day, time(0)) + timedelta(seconds=seconds, microseconds=micro)
    return wall.replace(tzinfo=ZoneInfo(zone), fold=draw(st.integers(0, 1))).astimezone(UTC)


@st.composite
def calls(draw: st.DrawFn, plan: RatePlan) -> tuple[datetime, int]:
    """(answer time, billsec): three calls in four answered shortly before a window edge of
    the plan's schedules (or a midnight) and lasting past it."""
    if not draw(st.integers(0, 3)):
        return draw(instants(plan.timezone)), draw(st.integers(1, 9_000))
    edges = {time(0)} | {
        t for r in plan.rates if r.schedule for t in (r.schedule.start, r.schedule.end)
    }
    edge = draw(st.sampled_from(sorted(edges)))
    wall = datetime.combine(draw(st.sampled_from(DAYS)), edge, tzinfo=ZoneInfo(plan.timezone))
    at = wall.replace(fold=draw(st.integers(0, 1))).astimezone(UTC)
    before = draw(st.integers(1, 5_000))
    micro = draw(st.sampled_from([0, 0, 500_000]))
    answered = at - timedelta(seconds=before, microseconds=micro)
    return answered, before + draw(st.integers(0, 4_000))


def cdr_at(answered: datetime, billsec: int, ring: int = 0, tz: timezone | ZoneInfo = UTC) -> CDR:
    return CDR(
        call_id="p",
        started_at=(answered - timedelta(seconds=ring)).astimezone(tz),
        answered_at=answered.astimezone(tz),
        destination_number="15550100",
        billsec=billsec,
        duration=billsec + ring,
    )


# -- the reference: one step at a time ---------------------------------------------------------


def covers(s: Schedule | None, wall: datetime) -> bool:
    if s is None:
        return True
    d, t = wall.date(), wall.time().replace(microsecond=0)
    if s.start < s.end:
        in_window = s.start <= t < s.end
    elif s.start > s.end:
        in_window = t >= s.start or t < s.end
    else:
        in_window = True
    return (
        d.weekday() in s.weekdays
        and in_window
        and (not s.dates or any(a <= d <= b for a, b in s.dates))
        and (not s.only_holidays or any(d in HOLIDAYS[n] for n in s.only_holidays))
        and not any(d in HOLIDAYS[n] for n in s.except_holidays)
    )


def reference(plan: RatePlan, cdr: CDR) -> tuple[int, int, int, list[tuple[Rate, int, int]]]:
    """(cost, billed, exact × 60, [(rate, position, step × price)]), or PlanError."""
    tz = ZoneInfo(plan.timezone)
    answered = (cdr.answered_at or cdr.started_at).astimezone(UTC)
    candidates = sorted(
        (r for r in plan.rates if r.in_force(cdr.started_at)), key=lambda r: -r.priority
    )

    def in_force(at: datetime) -> Rate:
        wall = at.astimezone(tz)
        for r in candidates:
            if covers(r.schedule, wall):
                return r
        raise PlanError("rates", at, "a rate in force")

    first = in_force(answered)
    if cdr.billsec <= first.grace_seconds:
        return 0, 0, 0, []
    position, steps = 0, []
    while position < cdr.billsec:
        r = (
            first
            if plan.band_policy == "start"
            else in_force(answered + timedelta(seconds=position))
        )
        if position == 0:
            length, price = r.initial_seconds or r.increment_seconds, r.per_minute_micros
        else:
            length, price = r.increment_seconds, r.per_minute_micros
            for tier in r.tiers:
                if tier.after_seconds <= position:
                    length, price = tier.increment_seconds, tier.per_minute_micros
        steps.append((r, position, length * price))
        position += length
    exact = first.connection_fee_micros * 60 + sum(a for _, _, a in steps)
    cost = round_once(exact, 60, plan.rounding)
    cost = max(cost, first.minimum_charge_micros)
    if first.maximum_charge_micros is not None:
        cost = min(cost, first.maximum_charge_micros)
    return cost, position, exact, steps


# -- properties ----------------------------------------------------------------------------------


@given(
    data=st.data(),
    zone=st.sampled_from(ZONES),
    billsec=st.integers(1, 5_000),
    ring=st.integers(0, 90),
)
def test_one_rate_in_force_all_week_split_equals_start_equals_no_schedule(
    data: st.DataObject, zone: str, billsec: int, ring: int
) -> None:
    base = data.draw(priced_rates())
    # All week: no condition, or two halves of the day with identical prices.
    halves = data.draw(st.booleans())
    if halves:
        edge = data.draw(st.sampled_from(EDGES[1:]))
        rates = [
            attrs.evolve(base, schedule=Schedule(start=time(0), end=edge)),
            attrs.evolve(base, schedule=Schedule(start=edge, end=time(0))),
        ]
    else:
        rates = [attrs.evolve(base, schedule=Schedule(weekdays=range(7)))]
    answered = data.draw(instants(zone))
    cdr = cdr_at(answered, billsec, ring)
    plain = rate(cdr, RatePlan([base], currency="EUR"))
    for policy in ("split", "start"):
        plan = RatePlan(rates, currency="EUR", timezone=zone, band_policy=policy, holidays=HOLIDAYS)
        charge = rate(cdr, plan)
        assert (charge.cost_micros, charge.billed_seconds) == (
            plain.cost_micros,
            plain.billed_seconds,
        )
        assert sum(b.amount for b in charge.bands()) == sum(b.amount for b in plain.bands())


@st.composite
def scheduled_plans(draw: st.DrawFn, zone: str) -> RatePlan:
    count = draw(st.integers(1, 3))
    rates = [draw(priced_rates(draw(schedules()), priority=count - i)) for i in range(count)]
    if draw(st.integers(0, 2)):  # a catch-all below them, so that gaps are rarer
        rates.append(draw(priced_rates(None, priority=-1)))
    policy = draw(st.sampled_from(["split", "split", "split", "start"]))
    return RatePlan(rates, currency="EUR", timezone=zone, holidays=HOLIDAYS, band_policy=policy)


@given(data=st.data(), zone=st.sampled_from(ZONES))
def test_bands_agree_with_a_step_by_step_reference(data: st.DataObject, zone: str) -> None:
    plan = data.draw(scheduled_plans(zone))
    answered, billsec = data.draw(calls(plan))
    cdr = cdr_at(answered, billsec, data.draw(st.integers(0, 60)))
    assume(plan.lookup("15550100", cdr.started_at) is not None)
    try:
        expected = reference(plan, cdr)
    except PlanError:
        try:
            rate(cdr, plan)
        except PlanError:
            return
        # The reference stops at any step in a gap; so must rate().
        raise AssertionError("rate() priced a call with a step in a schedule gap") from None
    cost, billed, exact, steps = expected
    charge = rate(cdr, plan)
    assert (charge.cost_micros, charge.billed_seconds) == (cost, billed)
    segments = charge.bands()
    if not billed:
        assert segments == ()
        return
    assert charge.rate is not None
    # The segments tile the billed seconds; each one's amount is its steps' exact sum.
    assert segments[0].first_second == 0
    for s, nxt in itertools.pairwise(segments):
        assert s.end_second == nxt.first_second
        assert s.rate is not nxt.rate
    assert segments[-1].end_second == billed
    for s in segments:
        inside = [(r, a) for r, p, a in steps if s.first_second <= p < s.end_second]
        assert all(r is s.rate for r, _ in inside)
        assert s.amount == Fraction(sum(a for _, a in inside), 60)
    # Split at any band boundary: the two sides' exact amounts sum to the whole.
    fee = charge.rate.connection_fee_micros
    for k in range(len(segments) + 1):
        before = sum((s.amount for s in segments[:k]), Fraction(0))
        after = sum((s.amount for s in segments[k:]), Fraction(0))
        assert fee + before + after == Fraction(exact, 60)


@given(
    data=st.data(),
    zone=st.sampled_from(ZONES),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    other=st.sampled_from(["Pacific/Chatham", "America/St_Johns", "Europe/Berlin", "UTC"]),
)
def test_rating_is_invariant_to_the_zone_timestamps_are_written_in(
    data: st.DataObject, zone: str, offset_minutes: int, other: str
) -> None:
    plan = data.draw(scheduled_plans(zone))
    answered, billsec = data.draw(calls(plan))
    ring = data.draw(st.integers(0, 60))
    results: list[object] = []
    for tz in (UTC, timezone(timedelta(minutes=offset_minutes)), ZoneInfo(other)):
        try:
            charge = rate(cdr_at(answered, billsec, ring, tz), plan)
        except PlanError as error:
            results.append(("error", str(error)))
            continue
        results.append(
            (
                charge.status,
                charge.cost_micros,
                charge.billed_seconds,
                charge.rate,
                # In UTC: an instant in a repeated hour never equals one in another zone.
                [
                    (b.rate, b.first_second, b.amount, b.starts_at.astimezone(UTC))
                    for b in charge.bands()
                ],
            )
        )
    assert results[0] == results[1] == results[2]


@given(schedules())
def test_schedule_text_round_trips_exactly(schedule: Schedule) -> None:
    # Storage keeps a schedule as this text (cdrrating.repository), so it must be exact.
    assert Schedule.parse(str(schedule)) == schedule
