"""The table engine's fast paths rate exactly as ``rate()`` does.

``rate_table`` takes shortcuts that only large or uniform tables reach: rows sorted by
number before the look-up (tables past a few thousand rows), columns read in place
(string, large_string, sliced, with nulls), a column whose every row holds one value,
the overflow test skipped when no call can overflow, calls to prefixes with schedules
priced over arrays when the rate in force does not change across a band edge, which
rate is in force asked once per (schedules, local day, interval between the plan's
wall-clock edges) and shared by the calls that have it. The
property tests in ``test_engines_agree.py`` use small tables; these use tables large
enough to take every shortcut, and compare each row with ``rate()``.
"""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")
pa = pytest.importorskip("pyarrow")

from cdrrating import (  # noqa: E402
    CDR,
    Disposition,
    PlanError,
    Rate,
    RatePlan,
    Schedule,
    Tier,
    normalise_number,
    rate,
)
from cdrrating._table_plan import SORT_FROM  # noqa: E402
from cdrrating.frame import rate_table  # noqa: E402
from cdrrating.frame._columns import _codes, _normalise, _timestamps  # noqa: E402

ROWS = SORT_FROM + 1_500  # past the size from which rows are sorted by number
T0 = datetime(2025, 3, 24, tzinfo=UTC)  # a Monday; Berlin changes its clocks on the 30th


def _prefixes(rng: Any, count: int) -> list[str]:
    found = {"", "1", "44", "4420", "49", "491", "0044", "1234567890123456789"}
    while len(found) < count:
        found.add(str(rng.integers(1, 10 ** rng.integers(1, 9))))
    return sorted(found)


def _plain_plan(rng: Any) -> RatePlan:
    rates = []
    for i, prefix in enumerate(_prefixes(rng, 400)):
        rates.append(
            Rate(
                prefix,
                int(rng.integers(1, 10**6)),
                initial_seconds=(0, 1, 30, 60)[i % 4],
                increment_seconds=(1, 6, 60)[i % 3],
                connection_fee_micros=10_000 if i % 7 == 0 else 0,
                grace_seconds=5 if i % 11 == 0 else 0,
                minimum_charge_micros=50_000 if i % 13 == 0 else 0,
                maximum_charge_micros=10**8 if i % 17 == 0 else None,
                tiers=(Tier(120, 500, 30),) if i % 19 == 0 else (),
                direction="inbound" if i % 23 == 0 else "outbound",
            )
        )
    # Calls of more than a minute at this price overflow int64 before the rounding.
    rates.append(Rate("44", 2**55, priority=5, valid_until=T0 + timedelta(days=5)))
    return RatePlan(rates, currency="EUR")


def _number(rng: Any, prefixes: list[str]) -> str | None:
    prefix = prefixes[int(rng.integers(len(prefixes)))]
    digits = prefix + "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(0, 12))))
    form = int(rng.integers(0, 12))
    if form == 0:
        return "+" + digits
    if form == 1:
        return "00" + digits
    if form == 2:
        return f"+{digits[:2]} ({digits[2:5]}) {digits[5:]}-1"
    if form == 3:
        return ("", "abc", "+", "00", "١٢٣", "4420x")[int(rng.integers(6))]
    if form == 4:
        return None
    if form == 5:
        return digits + "1" * 20  # longer than the keys
    if form == 6:
        return "44" + digits
    return digits


def _table(rng: Any, plan: RatePlan, rows: int, *, answered_later: bool = False) -> Any:
    prefixes = [r.prefix for r in plan.rates] + ["999999"]
    started = [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 10 * 86_400, rows)]
    answered = [
        s + timedelta(seconds=int(d), microseconds=int(u))
        for s, d, u in zip(
            started, rng.integers(0, 900, rows), rng.integers(0, 10**6, rows), strict=True
        )
    ]
    billsec = rng.integers(0, 5_000, rows)
    billsec[::97] = rng.integers(10**6, 10**9, billsec[::97].size)  # past the int64 path
    billsec[::401] = 10**9 + 1  # longer than a CDR may be: a bad row
    columns: dict[str, Any] = {
        "call_id": [f"c{i}" for i in range(rows)],
        "started_at": pa.array(started, pa.timestamp("us", tz="UTC")),
        "destination_number": [_number(rng, prefixes) for _ in range(rows)],
        "direction": rng.choice(["outbound", "outbound", "inbound", "internal"], rows).tolist(),
        "disposition": rng.choice(
            ["ANSWERED", "ANSWERED", "answered", "NO ANSWER", "BUSY", ""], rows
        ).tolist(),
        "billsec": pa.array(billsec, pa.int64()),
    }
    if answered_later:
        columns["answered_at"] = pa.array(answered, pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def _expected(plan: RatePlan, row: dict[str, Any]) -> tuple[Any, ...]:
    cells = {k: v for k, v in row.items() if v is not None}
    try:
        cdr = CDR.from_mapping(cells)
    except ValueError:
        return ("ERROR",)
    try:
        charge = rate(cdr, plan)
    except PlanError:
        return ("ERROR",)
    if charge.cost_micros is not None and charge.cost_micros >= 2**63:
        return ("ERROR",)
    reason = None if charge.reason is None else charge.reason.value
    return (
        charge.status.value,
        reason,
        charge.cost_micros,
        charge.billed_seconds,
        charge.prefix,
    )


def _check(plan: RatePlan, table: Any) -> None:
    out = rate_table(table, plan).to_pylist()
    for position, (row, got) in enumerate(zip(table.to_pylist(), out, strict=True)):
        want = _expected(plan, row)
        if want == ("ERROR",):
            assert got["status"] == "ERROR", (position, row, got)
            continue
        have = (
            got["status"],
            got["reason"],
            got["cost_micros"],
            got["billed_seconds"],
            got["prefix"],
        )
        assert have == want, (position, row, got["error"])


def test_a_large_table_equals_rate_row_by_row() -> None:
    rng = np.random.default_rng(7)
    plan = _plain_plan(rng)
    _check(plan, _table(rng, plan, ROWS))


def test_a_large_uniform_table_equals_rate_row_by_row() -> None:
    # Every row answered, outbound and dialled as plain digits: each column takes its
    # all-one-value path, and no call can overflow.
    rng = np.random.default_rng(8)
    plan = RatePlan(
        [Rate(p, int(rng.integers(1, 10**5)), initial_seconds=30, increment_seconds=6)
         for p in _prefixes(rng, 300)],
        currency="EUR",
    )  # fmt: skip
    prefixes = [r.prefix for r in plan.rates if r.prefix]
    numbers = [p + "0123456789"[: int(rng.integers(0, 10))] for p in prefixes]
    table = pa.table(
        {
            "call_id": [f"c{i}" for i in range(ROWS)],
            "started_at": pa.array([T0] * ROWS, pa.timestamp("ns", tz="Europe/Berlin")),
            "destination_number": [numbers[int(i)] for i in rng.integers(0, len(numbers), ROWS)],
            "direction": ["outbound"] * ROWS,
            "disposition": ["ANSWERED"] * ROWS,
            "billsec": pa.array(rng.integers(1, 3_600, ROWS), pa.int64()),
        }
    )
    _check(plan, table)
    # The same rows as a slice of a larger table, in large_string columns.
    wide = pa.concat_tables([table, table]).combine_chunks()
    wide = wide.cast(
        pa.schema(
            [
                pa.field(f.name, pa.large_string()) if pa.types.is_string(f.type) else f
                for f in wide.schema
            ]
        )
    )
    _check(plan, wide.slice(ROWS - 100, ROWS))


@pytest.mark.parametrize("policy", ["split", "start"])
def test_a_large_table_with_schedules_equals_rate_row_by_row(policy: str) -> None:
    # Peak on weekdays by day, an always rate under it, a weekend rate for a longer
    # prefix; calls around the edges, midnight and Berlin's change of clocks, answered
    # after they start.
    rng = np.random.default_rng(9)
    rates = []
    for prefix in _prefixes(rng, 60):
        price = int(rng.integers(1, 10**5))
        rates.append(
            Rate(prefix, price * 2, schedule=Schedule.parse("Mon-Fri 08:00-18:00"), priority=1,
                 initial_seconds=60, increment_seconds=60)
        )  # fmt: skip
        rates.append(Rate(prefix, price, connection_fee_micros=1_000))
    rates.append(Rate("4420", 7, schedule=Schedule.parse("Sat,Sun"), priority=2))
    rates.append(Rate("4420", 9, schedule=Schedule.parse("22:00-06:00"), priority=1))
    plan = RatePlan(rates, currency="EUR", timezone="Europe/Berlin", band_policy=policy)
    _check(plan, _table(rng, plan, ROWS, answered_later=True))
    _check(plan, _table(rng, plan, ROWS))  # answered when started


@pytest.mark.parametrize("count", [3, 6])  # 7 edges a day (compared), 13 (searched)
def test_a_large_table_with_many_schedules_holidays_and_windows_equals_rate(count: int) -> None:
    # Which rate is in force is asked once per (label's schedules, local day, interval
    # between the plan's wall-clock edges) and shared: here with calls at the edges,
    # with few edges (compared) and more (searched), holiday calendars and date ranges
    # (the day matters, not only the weekday), a rate with a validity window among
    # scheduled ones (those labels are asked row by row), instants outside the years of
    # the offset table, and gaps (hours with no rate in force).
    rng = np.random.default_rng(11)
    holidays = {"de": [date(2025, 3, 26), date(2025, 4, 1)]}
    texts = [
        "Mon-Fri 07:15-09:45",
        "Tue,Thu 11:00-13:30 except:de",
        "12:05-12:55 only:de",
        "Sat 03:00-05:00",
        "2025-03-27..2025-03-28 16:20-19:40",
        "Sun 23:10-01:50",
    ]
    schedules = [Schedule.parse(t) for t in texts[:count]]
    rates = []
    for k, prefix in enumerate(_prefixes(rng, 80)):
        price = int(rng.integers(1, 10**5))
        mine = [schedules[(k + j) % len(schedules)] for j in range(1 + k % 3)]
        for j, schedule in enumerate(mine):
            rates.append(
                Rate(prefix, price + j + 1, schedule=schedule, priority=5 - j,
                     initial_seconds=30, increment_seconds=6)
            )  # fmt: skip
        if k % 5 == 0:
            rates.append(
                Rate(prefix, price * 3, priority=9, valid_from=T0 + timedelta(days=3),
                     valid_until=T0 + timedelta(days=6, hours=5))
            )  # fmt: skip
        if k % 7 != 0:  # the others have hours with no rate in force
            rates.append(Rate(prefix, price))
    plan = RatePlan(rates, currency="EUR", timezone="Europe/Berlin", holidays=holidays)
    table = _table(rng, plan, ROWS)
    berlin = ZoneInfo("Europe/Berlin")
    edges = [  # a second before, at and after each wall-clock edge, each day
        datetime.combine(date(2025, 3, 24) + timedelta(days=d), time(h, m), berlin)
        + timedelta(seconds=e)
        for d in range(10)
        for h, m in ((7, 15), (9, 45), (11, 0), (12, 5), (13, 30), (16, 20), (23, 10), (1, 50))
        for e in (-1, 0, 1)
    ]
    early = [datetime(1850, 6, 2, 10, tzinfo=UTC) + timedelta(minutes=7 * i) for i in range(300)]
    odd = pa.array(edges + early, pa.timestamp("us", tz="UTC"))
    started = table.column("started_at").combine_chunks()[: -len(odd)]
    _check(plan, table.set_column(1, "started_at", pa.concat_arrays([started, odd])))
    _check(plan, _table(rng, plan, ROWS, answered_later=True))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.none()
        | st.text(st.sampled_from("0123456789+-. ()\t#a٣"), max_size=25)
        | st.text("0123456789", min_size=1, max_size=22),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([("00",), ("011", "00"), ("0",), (), ("",)]),
    st.integers(0, 5),
    st.booleans(),
)
def test_the_column_normaliser_reads_any_string_column(
    numbers: list[str | None], access: tuple[str, ...], cut: int, large: bool
) -> None:
    # string or large_string, a slice of a larger array (offsets not at 0), nulls.
    kind = pa.large_string() if large else pa.string()
    array = pa.array(["#"] * cut + numbers + ["9"] * cut, kind).slice(cut, len(numbers))
    out = _normalise(array, access)
    for k, number in enumerate(numbers):
        want = None if number is None else normalise_number(number, access)
        assert bool(out.valid[k]) == (want is not None), number
        if want is not None:
            assert int(out.lengths[k]) == len(want), number
            assert int(out.keys[k]) == int(want[:18].ljust(18, "0")), number


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.none() | st.sampled_from(["ANSWERED", "answered", "NO ANSWER", "busy", " ", "", "x"]),
        min_size=1,
        max_size=20,
    )
    | st.builds(lambda n: ["ANSWERED"] * n, st.integers(1, 20)),
    st.integers(0, 3),
)
def test_a_text_column_is_parsed_through_its_values(values: list[str | None], cut: int) -> None:
    array = pa.array(["NO ANSWER"] * cut + values).slice(cut, len(values))
    codes, parsed, failures = _codes(array, len(values), Disposition.parse, "dflt", "ANSWERED")
    for k, value in enumerate(values):
        code = int(codes[k])
        if value is None or not value.strip():
            assert parsed[code] == "dflt"
        elif value == "x":
            assert failures[-2 - code][0] == "x"
        else:
            assert parsed[code] is Disposition.parse(value)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.none() | st.integers(-(2**62), 2**62), min_size=1, max_size=20),
    st.sampled_from(["us", "ns"]),
    st.integers(0, 3),
)
def test_aware_timestamps_are_read_in_place(values: list[int | None], unit: str, cut: int) -> None:
    kind = pa.timestamp(unit, tz="America/New_York")
    array = pa.array([0] * cut + values, kind).slice(cut, len(values))
    read, problems = _timestamps(pa.table({"started_at": array}), ("started_at",), None)
    micros, nulls = read["started_at"]
    assert problems == {"started_at": {}}
    for k, value in enumerate(values):
        assert bool(nulls[k]) == (value is None)
        assert int(micros[k]) == (0 if value is None else value // (1000 if unit == "ns" else 1))


@pytest.mark.parametrize("schedules", [False, True])
def test_a_pickled_table_form_rates_as_the_original(schedules: bool) -> None:
    rng = np.random.default_rng(10)
    plan = _plain_plan(rng)
    if schedules:
        peak = Rate("44", 3, schedule=Schedule.parse("Mon-Fri 08:00-18:00"), priority=9)
        plan = RatePlan([*plan.rates, peak], currency="EUR", timezone="Europe/Berlin")
    table = _table(rng, plan, 2_000, answered_later=True)
    before = rate_table(table, plan)
    form = plan._compiled.table(plan)
    loaded = pickle.loads(pickle.dumps(form))
    assert loaded is not form
    assert loaded.plan._compiled.table(loaded.plan) is loaded  # the loaded plan's own
    assert rate_table(table, loaded.plan).equals(before)
