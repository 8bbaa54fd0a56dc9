"""cdrrating.frame: rate_table equals rate() / Rater.rate() row for row."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("numpy", reason="cdrrating.frame needs the [frame] extra (numpy)")
pd = pytest.importorskip("pandas", reason="cdrrating.frame needs the [frame] extra (pandas)")
pa = pytest.importorskip("pyarrow", reason="cdrrating.frame needs the [frame] extra (pyarrow)")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cdrrating import (  # noqa: E402
    CDR,
    PlanError,
    Rate,
    RatePlan,
    Rater,
    Rounding,
    Tier,
    ValidationError,
    rate,
)
from cdrrating.frame import micros_column, rate_table  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)


# -- generators (own ones: independent of cdrrating.testing.strategies) ------------------------

PREFIXES = ["", "1", "12", "123", "1234567", "4", "44", "4420", "442079", "44207946", "0"]


@st.composite
def rates_(draw: st.DrawFn) -> Rate:
    initial = draw(st.integers(0, 90))
    tiers: tuple[Tier, ...] = ()
    if draw(st.booleans()):
        bounds = sorted(draw(st.sets(st.integers(1, 200), min_size=1, max_size=3)))
        tiers = tuple(
            Tier(b, draw(st.integers(0, 2_000_000)), draw(st.integers(1, 60))) for b in bounds
        )
    minimum = draw(st.sampled_from([0, 0, 5_000, 50_000]))
    maximum = draw(st.sampled_from([None, None, minimum, minimum + 100_000]))
    start = draw(st.sampled_from([None, None, T0 - timedelta(days=1), T0 + timedelta(hours=1)]))
    end = draw(st.sampled_from([None, None, T0 + timedelta(hours=2), T0 + timedelta(days=3)]))
    if start is not None and end is not None and end <= start:
        end = None
    return Rate(
        draw(st.sampled_from(PREFIXES)),
        draw(st.sampled_from([0, 1, 999, 6_000, 60_000, 1_000_000, 1_234_567])),
        connection_fee_micros=draw(st.sampled_from([0, 0, 150_000, 7])),
        initial_seconds=initial,
        increment_seconds=draw(st.integers(1, 60)),
        tiers=tiers,
        grace_seconds=draw(st.sampled_from([0, 0, 5, 30])),
        minimum_charge_micros=minimum,
        maximum_charge_micros=maximum,
        priority=draw(st.integers(0, 3)),
        status=draw(st.sampled_from(["active", "active", "active", "inactive"])),
        direction=draw(st.sampled_from(["outbound", "outbound", "inbound", "internal"])),
        valid_from=start,
        valid_until=end,
    )


@st.composite
def plans(draw: st.DrawFn) -> RatePlan:
    rates = draw(st.lists(rates_(), max_size=12))
    try:
        return RatePlan(
            rates,
            currency=draw(st.sampled_from(["EUR", "USD"])),
            rounding=draw(st.sampled_from(list(Rounding))),
            quantum_micros=draw(st.sampled_from([1, 1, 7, 100, 10_000])),
            access_prefixes=draw(st.sampled_from([("00",), ("011", "00"), ("0",)])),
        )
    except PlanError:
        assume(False)
        raise


NUMBERS = st.one_of(
    st.sampled_from(
        [
            "+44 20 7946 0000",
            "442079460000",
            "0044 (20) 7946-0000",
            "011442079",
            "1234567890",
            "12",
            "1",
            "",
            "x",
            "+",
            "00",
            "4",
            "0123",
            "٣٣",
            "+1.234.567",
            "44207946",
            "4\t4",
        ]
    ),
    st.text("0123456789", max_size=22),
    st.text("0123456789 +-.()x", max_size=12),
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    billsec = draw(st.one_of(st.integers(0, 400), st.sampled_from([-1, 0, 1, 5, 6, 3_600])))
    return {
        "call_id": draw(st.sampled_from(["c", "call-1", ""])),
        "started_at": T0 + timedelta(minutes=draw(st.integers(-2000, 6000))),
        "destination_number": draw(NUMBERS),
        "direction": draw(
            st.sampled_from(["outbound", "OUTBOUND ", "inbound", "internal", None, "", "sideways"])
        ),
        "disposition": draw(
            st.sampled_from(["ANSWERED", "ANSWERED", "NO ANSWER", "busy", None, "nope"])
        ),
        "billsec": billsec,
        "duration": draw(st.sampled_from([None, None, billsec, billsec + 3, billsec - 1])),
        "tenant": draw(st.sampled_from([None, "a", "b", "", "zz"])),
    }


def frame_of(records: list[dict[str, Any]]) -> Any:
    frame = pd.DataFrame.from_records(records, columns=list(rows_columns()))
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    for name in ("billsec", "duration"):
        frame[name] = pd.array(frame[name].tolist(), dtype="Int64")
    return frame


def rows_columns() -> tuple[str, ...]:
    return (
        "call_id",
        "started_at",
        "destination_number",
        "direction",
        "disposition",
        "billsec",
        "duration",
        "tenant",
    )


def expected_row(record: dict[str, Any], rater: Rater) -> dict[str, Any]:
    given_ = {k: v for k, v in record.items() if v is not None}
    try:
        cdr = CDR.from_mapping(given_)
    except ValidationError:
        return {"status": "ERROR"}
    charge = rater.rate(cdr)
    return {
        "status": charge.status.value,
        "reason": charge.reason.value if charge.reason else None,
        "cost_micros": charge.cost_micros,
        "currency": charge.currency,
        "billed_seconds": charge.billed_seconds,
        "prefix": charge.prefix,
        "error": None,
    }


def got_rows(table: Any) -> list[dict[str, Any]]:
    names = ["status", "reason", "cost_micros", "currency", "billed_seconds", "prefix", "error"]
    return [
        {"status": "ERROR"} if r["status"] == "ERROR" else r
        for r in table.select(names).to_pylist()
    ]


# -- the property --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tenant_plans=st.dictionaries(
        st.sampled_from(["a", "b"]), st.lists(plans(), max_size=2), max_size=2
    ),
    default=st.lists(plans(), max_size=2),
    records=st.lists(rows(), min_size=1, max_size=25),
)
def test_rate_table_equals_rater_row_for_row(
    tenant_plans: dict[str | None, list[RatePlan]],
    default: list[RatePlan],
    records: list[dict[str, Any]],
) -> None:
    rater = Rater(tenant_plans, default=default)
    frame = frame_of(records)
    out = rate_table(pa.Table.from_pandas(frame, preserve_index=False), rater)
    got = got_rows(out)
    for position, record in enumerate(records):
        assert got[position] == expected_row(record, rater), (position, record)


@settings(max_examples=60, deadline=None)
@given(plan=plans(), records=st.lists(rows(), min_size=1, max_size=20))
def test_single_plan_equals_rate(plan: RatePlan, records: list[dict[str, Any]]) -> None:
    out = rate_table(pa.Table.from_pandas(frame_of(records), preserve_index=False), plan)
    got = got_rows(out)
    for position, record in enumerate(records):
        given_ = {k: v for k, v in record.items() if v is not None}
        try:
            charge = rate(CDR.from_mapping(given_), plan)
        except ValidationError:
            assert got[position] == {"status": "ERROR"}
            continue
        assert got[position]["cost_micros"] == charge.cost_micros
        assert got[position]["billed_seconds"] == charge.billed_seconds
        assert got[position]["status"] == charge.status.value
        assert got[position]["prefix"] == charge.prefix


# -- worked examples of rating-rules.md through the table path ----------------------------------


def one(
    rate_: Rate,
    billsec: int,
    number: str = "442079460000",
    disposition: str = "ANSWERED",
    **plan: Any,
) -> tuple[int | None, int, str]:
    table = pa.table(
        {
            "call_id": ["x"],
            "started_at": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "destination_number": [number],
            "disposition": [disposition],
            "billsec": [billsec],
        }
    )
    row = rate_table(table, RatePlan([rate_], currency="EUR", **plan)).to_pylist()[0]
    return row["cost_micros"], row["billed_seconds"], row["status"]


@pytest.mark.parametrize(
    ("rate_", "billsec", "cost", "billed"),
    [
        (Rate("44", 1_000_000, initial_seconds=60, increment_seconds=60), 61, 2_000_000, 120),
        (Rate("44", 1_000_000), 61, 1_016_667, 61),
        (Rate("44", 6_000, initial_seconds=30, increment_seconds=6), 32, 3_600, 36),
        (Rate("44", 6_000, initial_seconds=30, increment_seconds=6), 57, 6_000, 60),
        (Rate("44", 6_000, initial_seconds=30, increment_seconds=6), 75, 7_800, 78),
        (Rate("44", 60_000, initial_seconds=30, increment_seconds=7), 32, 37_000, 37),
        (Rate("44", 100_000, connection_fee_micros=150_000), 24, 190_000, 24),
        (Rate("44", 100_000, connection_fee_micros=100_000), 0, 0, 0),
        (Rate("44", 100_000), 180, 300_000, 180),
        (
            Rate("44", 1_000_000, initial_seconds=60, tiers=[Tier(60, 500_000, 1)]),
            90,
            1_250_000,
            90,
        ),
        (
            Rate(
                "44", 10_000, initial_seconds=60, increment_seconds=60, minimum_charge_micros=50_000
            ),
            10,
            50_000,
            60,
        ),
        (Rate("44", 1_000_000, maximum_charge_micros=10_000_000), 3_600, 10_000_000, 3_600),
        (Rate("44", 1_000_000, grace_seconds=5), 5, 0, 0),
        (Rate("44", 1_000_000, grace_seconds=5), 6, 100_000, 6),
        (
            Rate(
                "1",
                1_000_000,
                initial_seconds=1,
                increment_seconds=1,
                tiers=[Tier(30, 500_000, 60)],
            ),
            60,
            1_000_000,
            90,
        ),
    ],
)
def test_worked_examples(rate_: Rate, billsec: int, cost: int, billed: int) -> None:
    number = "15550000" if rate_.prefix == "1" else "442079460000"
    assert one(rate_, billsec, number)[:2] == (cost, billed)


def test_e6_unanswered_with_fee_costs_zero() -> None:
    assert one(Rate("44", 1, connection_fee_micros=100_000), 0, disposition="NO ANSWER") == (
        0,
        0,
        "UNANSWERED",
    )


def test_e13_e14_longest_active_prefix() -> None:
    plan = RatePlan(
        [
            Rate("4420", 2_000, initial_seconds=60, increment_seconds=60),
            Rate("44", 1_000, initial_seconds=60, increment_seconds=60),
        ],
        currency="EUR",
    )
    table = pa.table(
        {
            "call_id": ["a"],
            "started_at": pa.array([T0], pa.timestamp("us", "UTC")),
            "destination_number": ["+44 20 7946 0000"],
            "billsec": [60],
        }
    )
    assert rate_table(table, plan)["cost_micros"].to_pylist() == [2_000]
    inactive = RatePlan(
        [
            Rate("4420", 2_000, status="inactive"),
            Rate("44", 1_000, initial_seconds=60, increment_seconds=60),
        ],
        currency="EUR",
    )
    assert rate_table(table, inactive)["prefix"].to_pylist() == ["44"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("up", 200), ("down", 100), ("half_up", 200), ("half_even", 200)],
)
def test_rounding_modes_with_quantum(mode: str, expected: int) -> None:
    # 90 s at 100 micros/min = 150 micros exactly; quantum 100: tie between 100 and 200.
    assert one(Rate("44", 100), 90, quantum_micros=100, rounding=mode)[0] == expected


# -- kinds of tables, columns, errors -----------------------------------------------------------


def sample_frame() -> Any:
    return pd.DataFrame(
        {
            "call_id": ["a", "b", "c", "d"],
            "started_at": pd.to_datetime([T0] * 4, utc=True),
            "destination_number": ["+44 20 7946 0000", "x", "4412", "4413"],
            "billsec": pd.array([60, 5, 0, -1], dtype="Int64"),
            "note": ["keep", "me", "as", "is"],
        },
        index=[10, 11, 11, 12],
    )


PLAN = RatePlan([Rate("44", 1_000, initial_seconds=60, increment_seconds=60)], currency="EUR")


def test_pandas_in_pandas_out_keeps_columns_and_index() -> None:
    frame = sample_frame()
    out = rate_table(frame, PLAN)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == [10, 11, 11, 12]
    assert list(out.columns) == [
        *frame.columns,
        "cost_micros",
        "currency",
        "billed_seconds",
        "status",
        "reason",
        "prefix",
        "error",
    ]
    assert out["note"].tolist() == ["keep", "me", "as", "is"]
    assert str(out["cost_micros"].dtype) == "Int64"
    assert out["cost_micros"].tolist()[:3] == [1_000, pd.NA, 0]
    assert out["status"].astype(str).tolist() == ["RATED", "UNRATED", "UNANSWERED", "ERROR"]
    assert out["error"].astype(object).tolist()[3].startswith("billsec: got -1")
    assert list(frame.columns) == [
        "call_id",
        "started_at",
        "destination_number",
        "billsec",
        "note",
    ]  # the input is not modified


def test_arrow_and_polars_give_the_same_rows() -> None:
    frame = sample_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    arrow_out = rate_table(table, PLAN)
    assert isinstance(arrow_out, pa.Table)
    assert arrow_out.column_names[: table.num_columns] == table.column_names
    batch_out = rate_table(table.to_batches()[0], PLAN)
    assert isinstance(batch_out, pa.RecordBatch)
    names = ["cost_micros", "status", "prefix", "billed_seconds"]
    expected = arrow_out.select(names).to_pylist()
    assert pa.Table.from_batches([batch_out]).select(names).to_pylist() == expected
    pl = pytest.importorskip("polars", reason="polars is optional")
    polars_out = rate_table(pl.from_pandas(frame), PLAN)
    assert isinstance(polars_out, pl.DataFrame)
    assert polars_out.select(names).to_arrow().to_pylist() == expected


def test_rerating_replaces_output_columns() -> None:
    once = rate_table(sample_frame(), PLAN)
    twice = rate_table(once, PLAN)
    assert list(twice.columns) == list(once.columns)
    assert twice["cost_micros"].tolist() == once["cost_micros"].tolist()


def test_errors_raise_names_the_first_bad_position() -> None:
    with pytest.raises(ValidationError, match=r"row 3: billsec.*1 bad row"):
        rate_table(sample_frame(), PLAN, errors="raise")


def test_bad_rows_are_reported_not_dropped() -> None:
    frame = pd.DataFrame(
        {
            "call_id": ["ok", "", "x", "y", "z", "w"],
            "started_at": pd.to_datetime([T0] * 6, utc=True),
            "destination_number": ["44", "44", "4" * 51, "44", "44", "44"],
            "disposition": ["ANSWERED", "ANSWERED", "ANSWERED", "maybe", "ANSWERED", "ANSWERED"],
            "billsec": pd.array([1, 1, 1, 1, 10, 1], dtype="Int64"),
            "duration": pd.array([1, 1, 1, 1, 5, 1], dtype="Int64"),
            "answered_at": pd.to_datetime([T0] * 5 + [T0 - timedelta(seconds=1)], utc=True),
        }
    )
    out = rate_table(frame, PLAN)
    assert len(out) == 6
    assert out["status"].astype(str).tolist() == ["RATED"] + ["ERROR"] * 5
    errors = out["error"].astype(object).tolist()
    assert errors[0] is None or errors[0] != errors[0]  # null
    for text, field in zip(
        errors[1:],
        ["call_id", "destination_number", "disposition", "billsec", "answered_at"],
        strict=True,
    ):
        assert text.startswith(field + ":")
    assert out["cost_micros"].isna().tolist() == [False] + [True] * 5


def test_billsec_derived_from_timestamps() -> None:
    ended = [T0 + timedelta(seconds=61, microseconds=1), T0, None]
    table = pa.table(
        {
            "call_id": ["a", "b", "c"],
            "started_at": pa.array([T0] * 3, pa.timestamp("us", "UTC")),
            "destination_number": ["44", "44", "44"],
            "answered_at": pa.array([T0] * 3, pa.timestamp("us", "UTC")),
            "ended_at": pa.array(ended, pa.timestamp("us", "UTC")),
        }
    )
    out = rate_table(table, PLAN).to_pylist()
    assert [r["billed_seconds"] for r in out] == [120, 0, 0]
    assert [r["status"] for r in out] == ["RATED", "UNANSWERED", "UNANSWERED"]


def test_other_time_zones_and_units_are_the_same_instant() -> None:
    window = RatePlan([Rate("44", 60_000, valid_from=T0)], currency="EUR")
    east = timezone(timedelta(hours=2))
    at = [T0.astimezone(east), T0 - timedelta(microseconds=1)]
    frame = pd.DataFrame(
        {
            "call_id": ["a", "b"],
            "destination_number": ["44", "44"],
            "started_at": pd.to_datetime(at, utc=True).tz_convert("Europe/Berlin"),
            "billsec": [60, 60],
        }
    )
    frame["started_at"] = frame["started_at"].astype("datetime64[ns, Europe/Berlin]")
    out = rate_table(frame, window)
    assert out["status"].astype(str).tolist() == ["RATED", "UNRATED"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"started_at": pd.to_datetime([T0.replace(tzinfo=None)])}, "naive timestamps"),
        ({"started_at": [1.5]}, "a timestamp column, or ISO 8601 text"),
        ({"billsec": [1.0]}, "integer column"),
        ({"call_id": None}, "missing: call_id"),
    ],
)
def test_unusable_columns_raise(change: dict[str, Any], message: str) -> None:
    data = {
        "call_id": ["a"],
        "started_at": pd.to_datetime([T0], utc=True),
        "destination_number": ["44"],
        "billsec": [1],
    }
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(ValidationError, match=message):
        rate_table(pd.DataFrame(data), PLAN)


def test_no_billsec_and_no_timestamps_is_refused() -> None:
    frame = pd.DataFrame(
        {
            "call_id": ["a"],
            "started_at": pd.to_datetime([T0], utc=True),
            "destination_number": ["44"],
        }
    )
    with pytest.raises(ValidationError, match="billsec column"):
        rate_table(frame, PLAN)


def test_prefixes_longer_than_the_keys_are_rated_as_rate_does() -> None:
    # The arrays key the first 18 digits; a longer prefix is looked up by rate()'s index.
    long_prefix = "4" * 19
    plan = RatePlan([Rate(long_prefix, 2_000), Rate("44", 1_000)], currency="EUR")
    table = pa.table(
        {
            "call_id": ["long", "short"],
            "started_at": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "destination_number": [long_prefix + "1", "4412"],
            "billsec": [60, 60],
        }
    )
    out = rate_table(table, plan)
    assert out["prefix"].to_pylist() == [long_prefix, "44"]
    assert out["cost_micros"].to_pylist() == [2_000, 1_000]


def test_no_plan_and_chain() -> None:
    out = rate_table(sample_frame(), None)
    reasons = out["reason"].astype(object).where(out["reason"].notna(), None).tolist()
    assert reasons[:3] == ["NO_PLAN", "NO_PLAN", None]
    other = RatePlan([Rate("33", 5)], currency="USD")
    chained = rate_table(sample_frame(), [other, PLAN])
    assert chained["currency"].astype(str).tolist()[:3] == ["EUR", "USD", "EUR"]


def test_big_prices_use_exact_python_ints() -> None:
    huge = Rate("44", 10**17, connection_fee_micros=10**15)
    cost, billed, _ = one(huge, 3_600)
    assert cost == 10**15 + 60 * 10**17
    assert billed == 3_600
    # A cost past the int64 column is that row's error, named; rate() still prices it.
    table = pa.table(
        {
            "call_id": ["x"],
            "started_at": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "destination_number": ["4412"],
            "billsec": [10**8],
        }
    )
    row = rate_table(table, RatePlan([Rate("44", 10**17)], currency="EUR")).to_pylist()[0]
    assert (row["status"], row["cost_micros"]) == ("ERROR", None)
    assert "fits in an int64" in row["error"]


def test_micros_column_floats_through_decimal_text_half_even() -> None:
    values = pd.Series([0.0125, 0.1, 1e-7, 2.5e-6, 3.5e-6, None, 1.0])
    assert micros_column(values).to_pylist() == [12_500, 100_000, 0, 2, 4, None, 1_000_000]
    assert micros_column(pa.array(["0.0125", None])).to_pylist() == [12_500, None]
    assert micros_column(pa.array([2])).to_pylist() == [2_000_000]
    with pytest.raises(ValidationError, match="6 decimal places"):
        micros_column(pa.array(["0.0000001"]))


def test_batch_result_to_pandas_and_arrow() -> None:
    rater = Rater(default=PLAN)
    good = {"call_id": "a", "started_at": T0, "destination_number": "44", "billsec": 60}
    bad = {"call_id": "b", "started_at": T0, "destination_number": "44", "billsec": -1}
    result = rater.rate_many([good, bad, {**good, "call_id": "c", "destination_number": "9"}])
    frame = result.to_pandas()
    assert frame["position"].tolist() == [0, 1, 2]
    assert frame["call_id"].tolist() == ["a", "b", "c"]
    assert frame["status"].tolist() == ["RATED", "ERROR", "UNRATED"]
    assert frame["cost_micros"].tolist() == [1_000, pd.NA, pd.NA]
    assert str(frame["billed_seconds"].dtype) == "Int64"
    assert frame["error"].tolist()[1].startswith("billsec")
    table = result.to_arrow()
    assert table.column_names == list(frame.columns)
    assert table["reason"].to_pylist() == [None, None, "NO_RATE"]


def test_import_cdrrating_does_not_import_frame_dependencies() -> None:
    code = (
        "import sys, cdrrating; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy', 'polars') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_without_the_extra_names_the_pip_install() -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "try:\n    import cdrrating.frame\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'cdrrating[frame]'" in out.stdout
