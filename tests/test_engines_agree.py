"""The two engines are one: ``rate_table`` equals ``rate()`` row by row.

Plans and CDRs come from the shipped strategies, with everything a plan can hold:
schedules in a time zone with daylight-saving changes, holidays, both band policies,
tiers, windows, priorities, fallback chains and tenants (``Rater``), amounts near the
library's limits, numbers written with ``+``, access prefixes, formatting and garbage.
A call ``rate()`` refuses (a step in a schedule gap) is an ``ERROR`` row of the table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

from cdrrating import CDR, Charge, PlanError, Rate, RatePlan, Rater  # noqa: E402
from cdrrating.frame import rate_table  # noqa: E402
from cdrrating.testing import strategies as cs  # noqa: E402

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC")

# Instants near the daylight-saving changes of the zones above, so that calls start,
# are answered and end across them.
_CHANGES = [
    datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # Berlin spring forward
    datetime(2025, 10, 26, 1, 0, tzinfo=UTC),  # Berlin fall back
    datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # New York spring forward
    datetime(2025, 11, 2, 6, 0, tzinfo=UTC),  # New York fall back
    datetime(2025, 4, 5, 16, 0, tzinfo=UTC),  # Sydney fall back
    datetime(2025, 10, 4, 16, 0, tzinfo=UTC),  # Sydney spring forward
    datetime(2025, 12, 25, 7, 0, tzinfo=UTC),  # a holiday
]


@st.composite
def start_times(draw: st.DrawFn) -> datetime:
    """Call starts near a daylight-saving change or a band edge, in a zone of ZONES."""
    base = draw(st.sampled_from(_CHANGES))
    delta = timedelta(
        seconds=draw(st.integers(-4 * 3600, 4 * 3600)),
        microseconds=draw(st.sampled_from([0, 1, 999_999, 500_000])),
    )
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    return (base + delta).astimezone(zone)


_TIMES = start_times() | cs.timestamps()
_GARBAGE = st.sampled_from(["", "abc", "+", "00", "١٢٣", "44-20-x", "(0)", " ", "+4420"])


@st.composite
def setups(draw: st.DrawFn) -> tuple[Any, list[CDR]]:
    """A plan, a chain or a Rater, and CDRs to rate against it."""
    zone = draw(st.sampled_from(ZONES))

    def plan_s() -> st.SearchStrategy[RatePlan]:
        return cs.rate_plans(
            max_size=8,
            timezone=zone,
            band_policy=st.sampled_from(["split", "start"]),
            with_schedules=True,
            access_prefixes=st.sampled_from([("00",), ("011", "00"), ("0",)]),
        )

    first = draw(plan_s())
    shape = draw(st.sampled_from(["plan", "chain", "rater"]))
    plans = [first]
    target: Any = first
    if shape == "chain":
        plans.append(draw(plan_s()))
        target = plans
    elif shape == "rater":
        second = draw(plan_s())
        plans.append(second)
        target = Rater({"t1": first, "t2": [second, first]}, default=second)
    numbers = st.one_of(
        *(cs.dialled_numbers(plan=p, formatted=True) for p in plans if len(p)),
        cs.dialled_numbers(formatted=True),
        _GARBAGE,
    )
    calls = draw(
        st.lists(
            cs.cdrs(
                numbers=numbers,
                timestamps=_TIMES,
                billsec=st.integers(0, 400) | st.integers(3_000, 100_000),
                tenants=st.sampled_from([None, "t1", "t2", "t3"]),
            ),
            min_size=1,
            max_size=12,
        )
    )
    return target, calls


@st.composite
def extreme_setups(draw: st.DrawFn) -> tuple[Any, list[CDR]]:
    """Amounts near the limits: sums past 2**61, maxima of 10**17, big quanta."""
    price = draw(st.sampled_from([1, 10**6, 10**12, 10**15, 10**17]))
    rate_ = Rate(
        "44",
        price,
        connection_fee_micros=draw(st.sampled_from([0, 10**12, 10**15])),
        grace_seconds=draw(st.sampled_from([0, 5])),
        maximum_charge_micros=draw(st.sampled_from([None, 10**17, 10**6])),
        initial_seconds=draw(st.sampled_from([0, 60])),
        increment_seconds=draw(st.sampled_from([1, 6, 60])),
    )
    plan = RatePlan(
        [rate_],
        currency="EUR",
        quantum_micros=draw(st.sampled_from([1, 10_000, 10**9])),
        rounding=draw(st.sampled_from(["up", "down", "half_up", "half_even"])),
    )
    calls = draw(
        st.lists(
            cs.cdrs(
                numbers=st.just("+44 20 7946 0000"),
                billsec=st.integers(0, 10) | st.integers(10**5, 10**7),
            ),
            min_size=1,
            max_size=6,
        )
    )
    return plan, calls


def expected(target: Any, cdr: CDR) -> dict[str, Any]:
    try:
        if isinstance(target, Rater):
            charge: Charge = target.rate(cdr)
        elif isinstance(target, list):
            charge = Rater(default=target).rate(cdr)
        else:
            from cdrrating import rate  # noqa: PLC0415

            charge = rate(cdr, target)
    except PlanError:
        return {"status": "ERROR"}
    out: dict[str, Any] = {
        "status": charge.status.value,
        "reason": charge.reason.value if charge.reason else None,
        "cost_micros": charge.cost_micros,
        "billed_seconds": charge.billed_seconds,
        "prefix": charge.prefix,
        "currency": charge.currency,
        "destination": charge.rate.destination if charge.rate is not None else None,
    }
    if out["cost_micros"] is not None and out["cost_micros"] >= 2**63:
        return {"status": "ERROR"}  # the table's int64 column cannot hold it
    return out


def table_of(calls: list[CDR]) -> Any:
    """The CDRs as an Arrow table, each timestamp column in the zone of the first call."""
    zone = calls[0].started_at.tzinfo
    key = getattr(zone, "key", "UTC")

    def stamps(values: list[datetime | None]) -> Any:
        return pa.array(
            [v.astimezone(UTC) if v is not None else None for v in values],
            pa.timestamp("us", tz=key),
        )

    return pa.table(
        {
            "call_id": [c.call_id for c in calls],
            "started_at": stamps([c.started_at for c in calls]),
            "answered_at": stamps([c.answered_at for c in calls]),
            "ended_at": stamps([c.ended_at for c in calls]),
            "destination_number": [c.destination_number for c in calls],
            "direction": [c.direction.value for c in calls],
            "disposition": [c.disposition.value for c in calls],
            "billsec": pa.array([c.billsec for c in calls], pa.int64()),
            "duration": pa.array([c.duration for c in calls], pa.int64()),
            "tenant": [c.tenant for c in calls],
        }
    )


def check(target: Any, calls: list[CDR], rows: list[dict[str, Any]]) -> None:
    assert len(rows) == len(calls)
    totals: dict[str, int] = {}
    table_totals: dict[str, int] = {}
    for position, (cdr, row) in enumerate(zip(calls, rows, strict=True)):
        want = expected(target, cdr)
        if want["status"] == "ERROR":
            assert row["status"] == "ERROR", (position, cdr, row)
            continue
        got = {k: row.get(k) for k in want}
        assert got == want, (position, cdr, row["error"])
        if want["cost_micros"] is not None:
            totals[want["currency"]] = totals.get(want["currency"], 0) + want["cost_micros"]
            table_totals[row["currency"]] = (
                table_totals.get(row["currency"], 0) + row["cost_micros"]
            )
    assert totals == table_totals


def as_records(out: Any) -> list[dict[str, Any]]:
    if isinstance(out, pa.Table):
        return list(out.to_pylist())
    if isinstance(out, pd.DataFrame):
        records = out.astype(object).where(out.notna(), None).to_dict("records")
        return [
            {k: (int(v) if hasattr(v, "__index__") else v) for k, v in r.items()} for r in records
        ]
    return list(out.to_dicts())


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(setups())
def test_rate_table_on_arrow_equals_rate(setup: tuple[Any, list[CDR]]) -> None:
    target, calls = setup
    out = rate_table(table_of(calls), target, destination=True)
    check(target, calls, as_records(out))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setups(), st.sampled_from(["pandas", "polars"]))
def test_rate_table_on_pandas_and_polars_equals_rate(
    setup: tuple[Any, list[CDR]], kind: str
) -> None:
    target, calls = setup
    table = table_of(calls)
    data = table.to_pandas() if kind == "pandas" else pl.from_arrow(table)
    out = rate_table(data, target, destination=True)
    check(target, calls, as_records(out))


@_SETTINGS
@given(extreme_setups())
def test_extreme_amounts_agree(setup: tuple[Any, list[CDR]]) -> None:
    target, calls = setup
    check(target, calls, as_records(rate_table(table_of(calls), target, destination=True)))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("change", ["spring", "fall"])
def test_durations_across_daylight_saving_are_exact_in_both_engines(zone: str, change: str) -> None:
    # A call answered 60 s before the clocks change and ended 60 s after it lasted 120 s,
    # whatever the wall clocks say.
    instants = {
        ("Europe/Berlin", "spring"): datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
        ("Europe/Berlin", "fall"): datetime(2025, 10, 26, 1, 0, tzinfo=UTC),
        ("America/New_York", "spring"): datetime(2025, 3, 9, 7, 0, tzinfo=UTC),
        ("America/New_York", "fall"): datetime(2025, 11, 2, 6, 0, tzinfo=UTC),
        ("Australia/Sydney", "spring"): datetime(2025, 10, 4, 16, 0, tzinfo=UTC),
        ("Australia/Sydney", "fall"): datetime(2025, 4, 5, 16, 0, tzinfo=UTC),
    }
    tz = ZoneInfo(zone)
    at = instants[(zone, change)]
    answered = (at - timedelta(seconds=60)).astimezone(tz)
    ended = (at + timedelta(seconds=60)).astimezone(tz)
    assert answered.utcoffset() != ended.utcoffset()  # the clocks did change in between
    cdr = CDR(
        call_id="dst",
        started_at=answered,
        answered_at=answered,
        ended_at=ended,
        destination_number="4420",
    )
    assert cdr.billsec == 120
    plan = RatePlan([Rate("44", 60_000)], currency="EUR", timezone=zone)
    table = pa.table(
        {
            "call_id": ["dst"],
            "started_at": pa.array([answered.astimezone(UTC)], pa.timestamp("us", tz=zone)),
            "answered_at": pa.array([answered.astimezone(UTC)], pa.timestamp("us", tz=zone)),
            "ended_at": pa.array([ended.astimezone(UTC)], pa.timestamp("us", tz=zone)),
            "destination_number": ["4420"],
        }
    )
    row = rate_table(table, plan).to_pylist()[0]
    assert (row["billed_seconds"], row["cost_micros"]) == (120, 120_000)
    # The same instants written as ISO 8601 text with their own offsets.
    text = table.set_column(2, "answered_at", pa.array([answered.isoformat()])).set_column(
        3, "ended_at", pa.array([ended.isoformat()])
    )
    assert rate_table(text, plan).to_pylist()[0]["billed_seconds"] == 120


def test_naive_timestamps_need_assume_tz_and_refuse_skipped_times() -> None:
    plan = RatePlan([Rate("44", 60_000)], currency="EUR")
    table = pa.table(
        {
            "call_id": ["a", "b"],
            "started_at": ["2025-03-30T01:30:00", "2025-03-30T02:30:00"],  # 02:30 never was
            "destination_number": ["4420", "4420"],
            "billsec": [60, 60],
        }
    )
    rows = rate_table(table, plan, assume_tz="Europe/Berlin").to_pylist()
    assert rows[0]["status"] == "RATED"
    assert rows[1]["status"] == "ERROR"
    assert "the clocks skip it" in rows[1]["error"]
    out = rate_table(table, plan).to_pylist()
    assert [r["status"] for r in out] == ["ERROR", "ERROR"]
    assert "assume_tz" in out[0]["error"]


def test_a_column_of_floats_that_is_not_read_is_ignored() -> None:
    # pandas reads a column of phone numbers as floats; rate_table does not need it.
    frame = pd.DataFrame(
        {
            "call_id": ["a"],
            "started_at": pd.to_datetime(["2025-06-01T12:00:00Z"]),
            "destination_number": [4420],
            "caller_number": [4930123.0],
            "notes": [[1, 2]],
            "billsec": [60],
        }
    )
    out = rate_table(frame, RatePlan([Rate("44", 60_000)], currency="EUR"))
    assert out["cost_micros"].tolist() == [60_000]
    assert out["notes"].tolist() == [[1, 2]]


@st.composite
def banded_setups(draw: st.DrawFn) -> tuple[Any, list[CDR]]:
    """Peak and off-peak rates of one prefix, and calls that cross their edges."""
    from cdrrating import Schedule, Tier  # noqa: PLC0415

    zone = draw(st.sampled_from(ZONES))
    peak = draw(
        st.sampled_from(["08:00-18:00", "Mon-Fri 08:00-18:00", "09:30-02:00", "04:00-18:00"])
    )
    tiers = draw(st.sampled_from([(), (Tier(120, 500, 30),)]))
    rates = [
        Rate("44", draw(st.integers(1, 10**6)), schedule=Schedule.parse(peak), priority=1,
             connection_fee_micros=draw(st.sampled_from([0, 1_000])), tiers=tiers,
             initial_seconds=draw(st.sampled_from([0, 30, 60])),
             increment_seconds=draw(st.sampled_from([1, 6, 60]))),
        Rate("44", draw(st.integers(1, 10**6)), grace_seconds=draw(st.sampled_from([0, 5])),
             minimum_charge_micros=draw(st.sampled_from([0, 50_000]))),
    ]  # fmt: skip
    if draw(st.booleans()):
        rates.append(Rate("4420", 7, schedule=Schedule.parse("Sat,Sun"), priority=2))
    plan = RatePlan(
        rates,
        currency="EUR",
        timezone=zone,
        band_policy=draw(st.sampled_from(["split", "start"])),
        rounding=draw(st.sampled_from(["up", "half_even"])),
    )
    tz = ZoneInfo(zone)
    # Edges, and 01:30 local: on a day the clocks change at 02:00 or 03:00, the wall
    # clock to 04:00 is an hour longer (or shorter) than the time that passes.
    local_edges = [8 * 3600, 18 * 3600, 9 * 3600 + 1800, 2 * 3600, 0, 5400]

    @st.composite
    def near_edges(draw: st.DrawFn) -> datetime:
        day = draw(st.sampled_from([c.date() for c in _CHANGES]))
        edge = draw(st.sampled_from(local_edges)) + draw(st.integers(-7_200, 600))
        wall = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(seconds=edge)
        return wall.astimezone(UTC).astimezone(tz)

    calls = draw(
        st.lists(
            cs.cdrs(
                numbers=st.sampled_from(["+44 20 7946 0000", "4412345", "004420"]),
                timestamps=near_edges(),
                billsec=st.integers(0, 10_000),
            ),
            min_size=1,
            max_size=10,
        )
    )
    return plan, calls


@_SETTINGS
@given(banded_setups())
def test_calls_across_schedule_bands_agree(setup: tuple[Any, list[CDR]]) -> None:
    target, calls = setup
    check(target, calls, as_records(rate_table(table_of(calls), target, destination=True)))


@pytest.mark.parametrize("peak_price", [120_000, 10**17])
def test_calls_across_one_band_edge_are_laid_like_rate(peak_price: int) -> None:
    # 07:59:30 Berlin: 30 s off-peak, then peak. At 10**17 a minute the exact sum of
    # some calls no longer fits the table engine's int64 arithmetic: those are priced
    # by the object engine (or are error rows where the cost does not fit either).
    from cdrrating import Schedule, rate  # noqa: PLC0415

    plan = RatePlan(
        [
            Rate("44", peak_price, schedule=Schedule.parse("Mon-Fri 08:00-18:00"), priority=1,
                 initial_seconds=0, increment_seconds=1),
            Rate("44", 60_000, increment_seconds=1, connection_fee_micros=500),
        ],
        currency="EUR",
        timezone="Europe/Berlin",
    )  # fmt: skip
    answered = datetime(2026, 1, 5, 6, 59, 30, tzinfo=UTC)
    calls = [
        CDR(
            call_id=str(k),
            started_at=answered - timedelta(seconds=k % 7),
            answered_at=answered + timedelta(microseconds=k % 3 * 250_000),
            destination_number="4412",
            billsec=billsec,
        )
        for k, billsec in enumerate([1, 29, 30, 31, 60, 61, 600, 3_600, 40_000] * 40)
    ]
    rows = as_records(rate_table(table_of(calls), plan, destination=True))
    check(plan, calls, rows)
    if peak_price == 120_000:
        # 30 s at 60,000 a minute, 30 s at 120,000, the fee once: 90,500.
        assert rate(calls[4], plan).cost_micros == rows[4]["cost_micros"] == 90_500


def test_a_band_edge_after_the_clocks_change_is_found_on_the_time_line() -> None:
    # Berlin, 30 March 2025: answered 01:30 CET; the clocks jump from 02:00 to 03:00, so
    # peak (04:00) starts 5,400 s later, not the 9,000 s the wall clock suggests.
    from cdrrating import Schedule, rate  # noqa: PLC0415

    plan = RatePlan(
        [Rate("44", 1_000, schedule=Schedule.parse("04:00-18:00"), priority=1), Rate("44", 5)],
        currency="EUR",
        timezone="Europe/Berlin",
    )
    answered = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)
    cdr = CDR(
        call_id="a", started_at=answered, answered_at=answered, destination_number="4412",
        billsec=7_000,
    )  # fmt: skip
    off, peak = 5_400 * 5, 1_600 * 1_000
    assert rate(cdr, plan).cost_micros == -(-(off + peak) // 60) == 27_117
    row = rate_table(table_of([cdr]), plan).to_pylist()[0]
    assert row["cost_micros"] == 27_117


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        cs.dialled_numbers(formatted=True)
        | st.text(st.sampled_from("0123456789 +-.()\t#a٣"), max_size=25),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([("00",), ("011", "00"), ("0",), ()]),
)
def test_the_column_normaliser_is_normalise_number(numbers: list[str], access: Any) -> None:
    # The table engine normalises a whole column at once; the rule is normalise_number.
    from cdrrating import normalise_number  # noqa: PLC0415
    from cdrrating.frame._columns import _normalise  # noqa: PLC0415

    out = _normalise(pa.array(numbers, pa.large_string()), access)
    for k, number in enumerate(numbers):
        want = normalise_number(number, access)
        assert bool(out.valid[k]) == (want is not None), number
        if want is not None:
            assert int(out.lengths[k]) == len(want), number
            assert int(out.keys[k]) == int(want[:18].ljust(18, "0")), number
