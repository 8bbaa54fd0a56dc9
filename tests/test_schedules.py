"""Schedules (rating-rules §6): worked examples, DST, holidays, policies, plan checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from cdrrating import (
    CDR,
    BandPolicy,
    PlanError,
    Rate,
    RatePlan,
    Rater,
    Schedule,
    Tier,
    ValidationError,
    rate,
)
from cdrrating._bands import bands, lay

BERLIN = ZoneInfo("Europe/Berlin")
DE = [date(2026, 1, 1), date(2026, 4, 3), date(2026, 12, 25), date(2026, 12, 26)]

PEAK = Rate("49", 120_000, id="peak", schedule=Schedule.parse("Mon-Fri 08:00-20:00 except:DE"))
OFF = Rate("49", 60_000, id="offpeak", schedule=Schedule.parse("Mon-Fri 20:00-08:00 except:DE"))
WEEKEND = Rate("49", 30_000, id="weekend", schedule=Schedule.parse("Sat-Sun"))
HOLIDAY = Rate("49", 20_000, id="holiday", priority=1, schedule=Schedule.parse("only:DE"))
NIGHT = Rate("44", 10_000, id="night", schedule=Schedule.parse("00:00-06:00"))
DAY = Rate("44", 40_000, id="day", schedule=Schedule.parse("06:00-24:00"))


def de_plan(**kw: object) -> RatePlan:
    rates = kw.pop("rates", [PEAK, OFF, WEEKEND, HOLIDAY, NIGHT, DAY])
    kw.setdefault("timezone", "Europe/Berlin")
    kw.setdefault("holidays", {"DE": DE})
    return RatePlan(rates, currency="EUR", **kw)  # type: ignore[arg-type]


def call(answered: datetime, billsec: int, number: str = "4930901820", **kw: object) -> CDR:
    kw.setdefault("started_at", answered - timedelta(seconds=5))
    return CDR(
        call_id="s1",
        answered_at=answered,
        destination_number=number,
        billsec=billsec,
        duration=billsec + 5,
        **kw,  # type: ignore[arg-type]
    )


def local(  # noqa: PLR0917  # reads like datetime(...)
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


# -- the worked examples of docs/schedules.md --------------------------------------------------


def test_across_eight_on_a_weekday() -> None:
    charge = rate(call(local(2026, 3, 2, 7, 58, 30), 180), de_plan())
    assert (charge.cost_micros, charge.billed_seconds, charge.rate) == (270_000, 180, OFF)
    assert [(b.rate.id, b.first_second, b.billed_seconds, b.amount) for b in charge.bands()] == [
        ("offpeak", 0, 90, Fraction(90_000)),
        ("peak", 90, 90, Fraction(180_000)),
    ]
    start = rate(call(local(2026, 3, 2, 7, 58, 30), 180), de_plan(band_policy="start"))
    assert (start.cost_micros, start.rate) == (180_000, OFF)
    assert len(start.bands()) == 1


def test_across_midnight_into_saturday() -> None:
    charge = rate(call(local(2026, 3, 6, 23, 59), 120), de_plan())
    assert charge.cost_micros == 60_000 + 30_000
    assert [b.rate.id for b in charge.bands()] == ["offpeak", "weekend"]


def test_across_the_autumn_change_the_repeated_hour_is_night_twice() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET. From 01:30 CEST to 06:00 CET is 5.5 h.
    answered = local(2026, 10, 25, 1, 30)
    charge = rate(call(answered, 20_400, "447700900000"), de_plan())
    night, day = charge.bands()
    assert (night.rate, night.billed_seconds, day.rate, day.billed_seconds) == (
        NIGHT,
        19_800,
        DAY,
        600,
    )
    assert day.starts_at == datetime(2026, 10, 25, 5, tzinfo=UTC)  # 06:00 CET
    assert charge.cost_micros == 3_300_000 + 400_000


def test_across_the_spring_change_the_missing_hour_is_skipped() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST. From 01:30 CET to 06:00 CEST is 3.5 h.
    charge = rate(call(local(2026, 3, 29, 1, 30), 14_400, "447700900000"), de_plan())
    assert [(b.rate.id, b.billed_seconds) for b in charge.bands()] == [
        ("night", 12_600),
        ("day", 1_800),
    ]
    assert charge.cost_micros == 2_100_000 + 1_200_000


def test_on_a_holiday() -> None:
    assert rate(call(local(2026, 12, 25, 10, 0), 600), de_plan()).cost_micros == 200_000
    # A Saturday holiday: the holiday rate outranks the weekend rate (priority 1).
    saturday = rate(call(local(2026, 12, 26, 10, 0), 600), de_plan())
    assert (saturday.rate, saturday.cost_micros) == (HOLIDAY, 200_000)
    # Christmas Eve is a working day in the calendar: off-peak into the holiday.
    eve = rate(call(local(2026, 12, 24, 23, 59), 120), de_plan())
    assert [b.rate.id for b in eve.bands()] == ["offpeak", "holiday"]
    assert eve.cost_micros == 60_000 + 20_000


def test_same_instant_written_in_any_zone_gives_the_same_charge() -> None:
    answered = local(2026, 3, 2, 7, 58, 30)
    costs = {
        rate(call(answered.astimezone(tz), 180), de_plan()).cost_micros
        for tz in (UTC, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"))
    }
    assert costs == {270_000}


# -- selection ------------------------------------------------------------------------------


def test_prefix_is_chosen_at_started_at_and_a_night_only_prefix_does_not_block() -> None:
    night_only = Rate("4930", 1_000, schedule=Schedule.parse("22:00-06:00"))
    plan = de_plan(rates=[PEAK, OFF, WEEKEND, HOLIDAY, night_only])
    by_day = rate(call(local(2026, 3, 2, 12, 0), 60), plan)
    assert (by_day.rate, by_day.cost_micros) == (PEAK, 120_000)
    by_night = rate(call(local(2026, 3, 2, 23, 0), 60), plan)
    assert (by_night.rate, by_night.cost_micros) == (night_only, 1_000)
    # Chosen at 21:59:30 (no 4930 rate then), the call stays on prefix 49 after 22:00.
    across = rate(
        call(local(2026, 3, 2, 21, 59, 30), 60, started_at=local(2026, 3, 2, 21, 59)), plan
    )
    assert (across.prefix, across.cost_micros) == ("49", 60_000)
    assert plan.lookup("4930901820", local(2026, 3, 2, 23, 0)) == night_only
    assert plan.lookup("4930901820", local(2026, 3, 2, 12, 0)) == PEAK


def test_answer_time_defaults_to_started_at() -> None:
    cdr = CDR(
        call_id="x",
        started_at=local(2026, 3, 2, 19, 59),
        destination_number="4930",
        billsec=120,
        duration=120,
    )
    assert rate(cdr, de_plan()).cost_micros == 120_000 + 60_000


def test_ringing_across_a_band_edge_prices_from_the_answer() -> None:
    # Chosen at 19:59:50 (peak), answered at 20:00:10: the whole call is off-peak.
    cdr = call(local(2026, 3, 2, 20, 0, 10), 60, started_at=local(2026, 3, 2, 19, 59, 50))
    charge = rate(cdr, de_plan())
    assert (charge.rate, charge.cost_micros) == (OFF, 60_000)


def test_fee_minimum_and_maximum_come_from_the_answer_time_rate() -> None:
    peak = Rate(
        "1",
        600_000,
        connection_fee_micros=50_000,
        minimum_charge_micros=50_000,
        schedule=Schedule.parse("08:00-20:00"),
    )
    off = Rate(
        "1",
        60_000,
        connection_fee_micros=1,
        minimum_charge_micros=7_000,
        maximum_charge_micros=100_000,
        schedule=Schedule.parse("20:00-08:00"),
    )
    plan = RatePlan([peak, off], currency="USD", timezone="America/New_York")
    ny = ZoneInfo("America/New_York")
    # Answered in peak: fee 50,000 + 30 s peak (300,000) + 30 s off-peak (30,000).
    assert rate(call(datetime(2026, 5, 4, 19, 59, 30, tzinfo=ny), 60, "1"), plan).cost_micros == (
        380_000
    )
    # Answered off-peak: fee 1, then capped at off-peak's maximum although peak follows.
    long = rate(call(datetime(2026, 5, 4, 7, 50, tzinfo=ny), 1_200, "1"), plan)
    assert long.cost_micros == 100_000
    # Off-peak's minimum, not peak's: fee 1 + 1 s off-peak (1,000) + 1 s peak (10,000).
    short = rate(call(datetime(2026, 5, 4, 7, 59, 59, tzinfo=ny), 2, "1"), plan)
    assert short.cost_micros == 11_001
    shorter = rate(call(datetime(2026, 5, 4, 7, 59, 59, tzinfo=ny), 1, "1"), plan)
    assert shorter.cost_micros == 7_000


def test_tiers_count_from_the_answer_not_from_the_band() -> None:
    a = Rate(
        "1",
        60_000,
        tiers=(Tier(100, 6_000, 10),),
        schedule=Schedule.parse("Mon-Sun 00:00-12:00"),
    )
    b = Rate("1", 120_000, tiers=(Tier(100, 12_000, 10),), schedule=Schedule.parse("12:00-24:00"))
    plan = RatePlan([a, b], currency="EUR")
    charge = rate(call(datetime(2026, 5, 4, 11, 59, tzinfo=UTC), 130, "1"), plan)
    # 60 s of a at 1/s; 40 s of b at 2/s; from position 100 b's tier: 3 steps of 10 s.
    assert [b.runs for b in charge.bands()] == [
        ((0, 1, 1, 60_000), (1, 59, 1, 60_000)),
        ((60, 40, 1, 120_000), (100, 3, 10, 12_000)),
    ]
    assert charge.cost_micros == 60_000 + 80_000 + 6_000


def test_a_step_that_started_in_a_band_keeps_its_price() -> None:
    peak = Rate(
        "1",
        60_000,
        initial_seconds=60,
        increment_seconds=60,
        schedule=Schedule.parse("08:00-20:00"),
    )
    off = Rate(
        "1", 6_000, initial_seconds=30, increment_seconds=30, schedule=Schedule.parse("20:00-08:00")
    )
    plan = RatePlan([peak, off], currency="EUR")
    charge = rate(call(datetime(2026, 5, 4, 19, 59, 30, tzinfo=UTC), 95, "1"), plan)
    # One 60 s peak step (its second half after 20:00), then 30 s off-peak steps.
    assert [b.runs for b in charge.bands()] == [((0, 1, 60, 60_000),), ((60, 2, 30, 6_000),)]
    assert (charge.billed_seconds, charge.cost_micros) == (120, 60_000 + 6_000)


def test_sub_second_answer_times() -> None:
    plan = RatePlan(
        [
            Rate("1", 60_000, schedule=Schedule.parse("00:00-12:00")),
            Rate("1", 120_000, schedule=Schedule.parse("12:00-24:00")),
        ],
        currency="EUR",
    )
    # Steps start at 11:59:58.5, 11:59:59.5, 12:00:00.5: one step before noon... two.
    answered = datetime(2026, 5, 4, 11, 59, 58, 500_000, tzinfo=UTC)
    charge = rate(call(answered, 3, "1"), plan)
    assert [(b.first_second, b.steps) for b in charge.bands()] == [(0, 2), (2, 1)]
    assert charge.cost_micros == 2_000 + 2_000


def test_a_long_call_costs_band_changes_not_seconds() -> None:
    plan = de_plan()
    answered = local(2026, 3, 6, 17, 0)  # Friday 17:00: peak, off-peak, weekend
    cdr = call(answered, 36_000)
    bucket = plan._compiled.indexes[cdr.direction].candidates["49"]
    laid = bands(bucket, cdr.started_at, answered, 36_000)  # type: ignore[arg-type]
    billed, _total, runs = lay(laid, 36_000, AssertionError)
    assert [b.rate.id for b in laid if b.rate] == ["peak", "offpeak", "weekend"]
    assert len(runs) == 4  # first step, then one run per band
    assert billed == 36_000
    assert rate(cdr, plan).cost_micros == (3 * 3600 * 2_000 + 4 * 3600 * 1_000 + 3 * 3600 * 500)


# -- schedules read in the plan's time zone ------------------------------------------------------


def test_repeated_hour_window_edge() -> None:
    # A window that starts at 02:30 is entered twice on the night the clocks go back.
    late = Rate("1", 1, schedule=Schedule.parse("02:30-04:00"))
    plan = RatePlan([late], currency="EUR", timezone="Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC)  # 02:15 CEST
    assert plan.lookup("1", first) is None
    assert plan.lookup("1", first + timedelta(minutes=15)) == late  # 02:30 CEST
    assert plan.lookup("1", first + timedelta(minutes=60)) is None  # 02:15 CET
    assert plan.lookup("1", first + timedelta(minutes=75)) == late  # 02:30 CET


def test_missing_hour_window_starts_when_the_clocks_jump_past_it() -> None:
    late = Rate("1", 60_000, schedule=Schedule.parse("02:30-05:00"))
    other = Rate("1", 0, schedule=Schedule.parse("05:00-02:30"))
    plan = RatePlan([late, other], currency="EUR", timezone="Europe/Berlin")
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 CET is 03:00 CEST
    assert plan.lookup("1", jump - timedelta(seconds=1)) == other
    assert plan.lookup("1", jump) == late
    charge = rate(call(jump - timedelta(seconds=60), 120, "1"), plan)
    assert [(b.rate, b.billed_seconds) for b in charge.bands()] == [(other, 60), (late, 60)]
    assert charge.cost_micros == 60_000


def test_wrapping_window_is_read_on_the_instant_own_day() -> None:
    fri_night = Rate("1", 1, schedule=Schedule.parse("Fri 20:00-08:00"))
    plan = RatePlan([fri_night], currency="EUR")
    assert plan.lookup("1", datetime(2026, 3, 6, 7, tzinfo=UTC)) == fri_night  # Fri 07:00
    assert plan.lookup("1", datetime(2026, 3, 6, 21, tzinfo=UTC)) == fri_night  # Fri 21:00
    assert plan.lookup("1", datetime(2026, 3, 7, 7, tzinfo=UTC)) is None  # Sat 07:00


def test_date_ranges() -> None:
    xmas = Rate(
        "1", 1, priority=1, schedule=Schedule(dates=[(date(2026, 12, 24), date(2026, 12, 26))])
    )
    base = Rate("1", 2)
    plan = RatePlan([xmas, base], currency="EUR", timezone="Europe/Berlin")
    assert plan.lookup("1", local(2026, 12, 23, 23, 59)) == base
    assert plan.lookup("1", local(2026, 12, 24, 0, 0)) == xmas
    assert plan.lookup("1", local(2026, 12, 26, 23, 59)) == xmas
    assert plan.lookup("1", local(2026, 12, 27, 0, 0)) == base


# -- the Schedule type ----------------------------------------------------------------------


def test_schedule_text_round_trip() -> None:
    for text in (
        "Mon-Fri 08:00-20:00 except:DE",
        "Sat-Sun",
        "Mon,Wed,Fri-Sun 20:00-08:00",
        "2026-12-24..2026-12-26,2027-01-01 only:DE,DE-BY",
        "22:00-24:00",
        "always",
        "07:30:15-08:00",
    ):
        assert str(Schedule.parse(text)) == text
    s = Schedule(weekdays=range(5), start=time(8), end=time(20))
    assert (
        s
        == Schedule.parse("mon-fri 8:00-20:00")
        == Schedule(weekdays="Mon-Fri", start="08:00", end="20:00")
    )
    assert Schedule.parse("Fri-Mon").weekdays == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": [7]}, "weekdays"),
        ({"weekdays": "Someday"}, "weekdays"),
        ({"start": "25:00"}, "start"),
        ({"start": time(8, tzinfo=UTC)}, "start"),
        ({"end": time(8, 0, 0, 5)}, "end"),
        ({"dates": [(date(2026, 2, 1), date(2026, 1, 1))]}, "dates"),
        ({"dates": [datetime(2026, 1, 1, tzinfo=UTC)]}, "dates"),
        ({"only_holidays": "DE", "except_holidays": "DE"}, "except_holidays"),
        ({"only_holidays": [""]}, "holidays"),
    ],
)
def test_schedule_refuses(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Schedule(**kwargs)
    assert info.value.field == field


def test_schedule_parse_refuses_nonsense() -> None:
    with pytest.raises(ValidationError, match="schedule"):
        Schedule.parse("weekdays please")
    with pytest.raises(ValidationError, match="schedule"):
        Rate("1", 1, schedule="Mon-Fri")  # type: ignore[arg-type]


def test_rate_parse_reads_schedules() -> None:
    compact = Rate.parse(
        {"prefix": "49", "rate": "0.12", "schedule": "Mon-Fri 08:00-20:00 except:DE"}
    )
    assert compact.schedule == PEAK.schedule
    columns = Rate.parse(
        {
            "prefix": "49",
            "rate": "0.12",
            "weekdays": "Mon-Fri",
            "hours": "08:00-20:00",
            "except_holidays": "DE",
        }
    )
    assert columns.schedule == PEAK.schedule
    split = Rate.parse(
        {
            "prefix": "49",
            "rate": "0.1",
            "time_from": "20:00",
            "time_until": "24:00",
            "dates": "2026-12-24",
        }
    )
    assert split.schedule == Schedule(start=time(20), end=time(0), dates=[date(2026, 12, 24)])
    assert Rate.parse({"prefix": "49", "rate": "0.1", "weekdays": " "}).schedule is None
    with pytest.raises(ValidationError, match="not both"):
        Rate.parse({"prefix": "49", "rate": "0.1", "schedule": "Sat", "weekdays": "Sun"})
    with pytest.raises(ValidationError) as info:
        Rate.parse({"prefix": "49", "rate": "0.1", "hours": "8-20"})
    assert info.value.field == "hours"


# -- the plan ----------------------------------------------------------------------------------


def test_plan_fields() -> None:
    plan = de_plan()
    assert plan.timezone == "Europe/Berlin"
    assert plan.holidays == {"DE": frozenset(DE)}
    assert plan.band_policy is BandPolicy.SPLIT
    assert plan == de_plan(holidays={"DE": [d.isoformat() for d in DE]})
    assert plan != de_plan(band_policy="start")
    assert plan != de_plan(timezone=ZoneInfo("Europe/Paris"))
    assert "timezone='Europe/Berlin'" in repr(plan)
    with pytest.raises(ValidationError) as info:
        RatePlan([], currency="EUR", timezone="Mars/Olympus")
    assert info.value.field == "timezone"
    with pytest.raises(ValidationError, match="band_policy"):
        RatePlan([], currency="EUR", band_policy="average")
    with pytest.raises(ValidationError, match="holidays"):
        RatePlan([], currency="EUR", holidays={"DE": "2026-12-25"})
    with pytest.raises(PlanError, match="DE"):
        RatePlan([PEAK], currency="EUR")  # names a calendar the plan lacks


def test_equal_priority_overlapping_schedules_are_ambiguous() -> None:
    wide = Rate("49", 1, schedule=Schedule.parse("Mon-Fri 07:00-09:00"))
    with pytest.raises(PlanError, match="schedules"):
        de_plan(rates=[PEAK, wide])
    # Disjoint by weekday, by window, or by holiday: fine.
    de_plan(rates=[PEAK, Rate("49", 1, schedule=Schedule.parse("Sat 07:00-09:00"))])
    de_plan(rates=[PEAK, OFF, Rate("49", 1, schedule=Schedule.parse("only:DE"), priority=0)])
    # Overlapping schedules whose validity windows never meet: fine.
    june = datetime(2026, 6, 1, tzinfo=UTC)
    de_plan(
        rates=[
            Rate("49", 1, schedule=PEAK.schedule, valid_until=june),
            Rate("49", 2, schedule=PEAK.schedule, valid_from=june),
        ]
    )
    # Windows overlap only on a Saturday night: the weekday schedules never meet there.
    sat = local(2026, 6, 6, 22, 0)
    de_plan(
        rates=[
            Rate("49", 1, schedule=PEAK.schedule, valid_until=sat + timedelta(hours=1)),
            Rate("49", 2, schedule=PEAK.schedule, valid_from=sat),
        ]
    )
    with pytest.raises(PlanError):
        de_plan(
            rates=[
                Rate("49", 1, schedule=PEAK.schedule, valid_until=sat + timedelta(days=3)),
                Rate("49", 2, schedule=PEAK.schedule, valid_from=sat),
            ]
        )
    # An unscheduled rate is in force whenever its window is.
    with pytest.raises(PlanError):
        de_plan(rates=[PEAK, Rate("49", 1)])


def test_check_reports_gaps_and_never_matching_schedules() -> None:
    at = local(2026, 1, 1)
    assert [f.code for f in de_plan().check(at=at)] == []
    # Without the holiday rate, weekday holidays have no rate.
    gaps = de_plan(rates=[PEAK, OFF, WEEKEND]).check(at=at)
    assert [f.code for f in gaps] == ["schedule_gap"]
    assert "Thu 2026-01-01 00:00 to Fri 2026-01-02 00:00" in gaps[0].message
    # Then Good Friday and Christmas Day (Boxing Day is a Saturday: the weekend rate).
    assert "Fri 2026-04-03 00:00 to Sat 2026-04-04 00:00" in gaps[0].message
    assert "Fri 2026-12-25 00:00 to Sat 2026-12-26 00:00 (Europe/Berlin)" in gaps[0].message
    assert "more" not in gaps[0].message
    nights = de_plan(rates=[NIGHT]).check(at=at)
    assert [f.code for f in nights] == ["schedule_gap"]
    assert "from Thu 2026-01-01 06:00 to Fri 2026-01-02 00:00" in nights[0].message
    assert "and 363 more" in nights[0].message  # every day of the year from `at`
    never = Rate("49", 1, priority=5, schedule=Schedule(weekdays="Mon", dates=[date(2026, 12, 25)]))
    expired = Rate("44", 1, priority=5, schedule=Schedule.parse("2025-12-25"), valid_from=at)
    findings = de_plan(rates=[PEAK, OFF, WEEKEND, HOLIDAY, NIGHT, DAY, never, expired]).check(at=at)
    assert sorted((f.code, f.rates[0].prefix) for f in findings) == [
        ("schedule_never_matches", "44"),
        ("schedule_never_matches", "49"),
    ]


def test_never_wins_ignores_higher_rates_with_schedules() -> None:
    base = Rate("49", 1)
    plan = RatePlan(
        [base, Rate("49", 9, priority=1, schedule=Schedule.parse("Sat"))], currency="EUR"
    )
    assert plan.check(at=datetime(2026, 1, 1, tzinfo=UTC)) == []
    assert rate(call(datetime(2026, 3, 6, 23, 59, tzinfo=UTC), 120, "49"), plan).cost_micros == 10


def test_a_step_in_a_gap_is_an_error() -> None:
    plan = de_plan(rates=[PEAK])  # weekday daytime only; no holiday calendar needed? it is
    cdr = call(local(2026, 3, 2, 19, 59), 120)
    with pytest.raises(PlanError, match="schedule_gap"):
        rate(cdr, plan)
    result = Rater({None: plan}).rate_many([cdr])
    assert result.charges == [None]
    assert "2026-03-02T20:00:00+01:00" in result.errors[0].error
    # A gap that no step starts in is no error: one 60 s step bridges it.
    gappy = RatePlan(
        [
            Rate(
                "1",
                60_000,
                initial_seconds=60,
                increment_seconds=60,
                schedule=Schedule.parse("00:00-12:00"),
            ),
            Rate(
                "1",
                60_000,
                initial_seconds=60,
                increment_seconds=60,
                schedule=Schedule.parse("12:00:30-24:00"),
            ),
        ],
        currency="EUR",
    )
    charge = rate(call(datetime(2026, 5, 4, 11, 59, 50, tzinfo=UTC), 100, "1"), gappy)
    assert charge.cost_micros == 120_000


def test_unanswered_and_grace_on_scheduled_prefixes() -> None:
    grace = Rate("1", 60_000, grace_seconds=10, schedule=Schedule.parse("00:00-12:00"))
    other = Rate("1", 600_000, schedule=Schedule.parse("12:00-24:00"))
    plan = RatePlan([grace, other], currency="EUR")
    noon = datetime(2026, 5, 4, 11, 59, 55, tzinfo=UTC)
    assert rate(call(noon, 10, "1"), plan).cost_micros == 0  # grace of the answer-time rate
    assert rate(call(noon, 11, "1"), plan).cost_micros == 5 * 1_000 + 6 * 10_000
    unanswered = rate(call(noon, 0, "1", disposition="NO ANSWER"), plan)
    assert (unanswered.cost_micros, unanswered.bands()) == (0, ())


def test_explain_shows_each_band() -> None:
    text = rate(call(local(2026, 3, 2, 7, 58, 30), 180), de_plan()).explain()
    assert "Bands: schedules read in Europe/Berlin, policy split" in text
    assert "Band 1 from Mon 2026-03-02 07:58:30 CET: rate 'offpeak'" in text
    assert "0-1 s: 1 × 1 s at 0.06 EUR/min = 1,000 micros" in text
    assert "Band 1: 90 steps, 90 s = 90,000 micros" in text
    assert "Band 2 from Mon 2026-03-02 08:00:00 CET: rate 'peak'" in text
    assert "Band 2: 90 steps, 90 s = 180,000 micros" in text
    assert "Exact sum: 270,000 micros" in text
    assert "its schedule 'Mon-Fri 08:00-20:00 except:DE' does not cover started_at" in text
    plain = rate(
        call(local(2026, 3, 2, 12, 0), 60, "1"), RatePlan([Rate("1", 60_000)], currency="EUR")
    )
    assert "Bands" not in plain.explain()
    assert [(b.steps, b.amount) for b in plain.bands()] == [(60, Fraction(60_000))]


def test_the_vectorised_path_rates_plans_with_schedules_as_rate_does() -> None:
    pd = pytest.importorskip("pandas")
    frame = pytest.importorskip("cdrrating.frame")
    started = datetime(2026, 3, 2, 6, 59, tzinfo=UTC)  # 07:59 in Berlin: across 08:00
    table = pd.DataFrame(
        {
            "call_id": ["a"],
            "started_at": pd.to_datetime([started], utc=True),
            "answered_at": pd.to_datetime([started], utc=True),
            "destination_number": ["4930901820"],
            "billsec": [120],
        }
    )
    cdr = call(started, 120, started_at=started)
    sleeping = Rate("49", 1, status="inactive", schedule=Schedule.parse("Sat"))
    for plan in (
        de_plan(),
        de_plan(rates=[WEEKEND]),
        de_plan(band_policy="start"),
        RatePlan([Rate("49", 60_000), sleeping], currency="EUR"),
    ):
        rated = frame.rate_table(table, plan)
        expected = rate(cdr, plan)
        costs = [None if pd.isna(v) else int(v) for v in rated["cost_micros"]]
        assert costs == [expected.cost_micros]
        assert list(rated["billed_seconds"]) == [expected.billed_seconds]


def test_plan_order_and_equality_do_not_depend_on_input_order() -> None:
    # Same prefix, priority and price, disjoint schedules: only the schedule tells them apart.
    day = Rate("1", 5, schedule=Schedule.parse("08:00-20:00"))
    evening = Rate("1", 5, schedule=Schedule.parse("20:00-08:00"))
    one, other = RatePlan([day, evening], currency="EUR"), RatePlan([evening, day], currency="EUR")
    assert one.rates == other.rates == (day, evening)
    assert one == other
