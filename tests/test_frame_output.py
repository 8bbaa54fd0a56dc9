"""rate_table's output options: strings=, columns=, threads=, output_schema, assume_tz."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from unittest import mock

import pytest

pytest.importorskip("numpy", reason="cdrrating.frame needs the [frame] extra (numpy)")
pd = pytest.importorskip("pandas", reason="cdrrating.frame needs the [frame] extra (pandas)")
pa = pytest.importorskip("pyarrow", reason="cdrrating.frame needs the [frame] extra (pyarrow)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cdrrating import Rate, RatePlan, Rater, ValidationError  # noqa: E402
from cdrrating.frame import (  # noqa: E402
    ALL_OUTPUT_COLUMNS,
    OUTPUT_COLUMNS,
    STRINGS,
    _driver,
    output_schema,
    rate_table,
)
from tests import test_engines_agree as engines_agree  # noqa: E402
from tests.test_frame import T0, frame_of, plans, rows  # noqa: E402

# rate_table and output_schema take only these two; STRINGS holds the same values.
Strings = Literal["dictionary", "plain"]
TEXT_COLUMNS = ("currency", "status", "reason", "prefix", "destination", "error")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def arrow_of(records: list[dict[str, Any]]) -> Any:
    return pa.Table.from_pandas(frame_of(records), preserve_index=False)


def raters() -> st.SearchStrategy[Any]:
    """A plan, a chain of plans, a Rater over tenants or None."""
    return st.one_of(
        plans(),
        st.lists(plans(), max_size=2),
        st.builds(
            Rater,
            st.dictionaries(st.sampled_from(["a", "b"]), st.lists(plans(), max_size=2), max_size=2),
            default=st.lists(plans(), max_size=2),
        ),
        st.none(),
    )


def column_choices() -> st.SearchStrategy[list[str] | None]:
    return st.one_of(st.none(), st.lists(st.sampled_from(ALL_OUTPUT_COLUMNS), unique=True))


# -- strings= ------------------------------------------------------------------------------------


@SETTINGS
@given(plan=raters(), records=st.lists(rows(), max_size=25))
def test_plain_strings_hold_the_values_of_the_dictionaries(
    plan: Any, records: list[dict[str, Any]]
) -> None:
    table = arrow_of(records)
    encoded = rate_table(table, plan, destination=True)
    plain = rate_table(table, plan, destination=True, strings="plain")
    assert plain.column_names == encoded.column_names
    for name in TEXT_COLUMNS:
        assert encoded.schema.field(name).type == pa.dictionary(pa.int32(), pa.string())
        assert plain.schema.field(name).type == pa.string()
        assert plain.column(name).to_pylist() == encoded.column(name).to_pylist()
    for name in ("cost_micros", "billed_seconds"):
        assert plain.column(name).equals(encoded.column(name))


@SETTINGS
@given(plan=raters(), records=st.lists(rows(), max_size=25))
def test_a_dictionary_holds_only_the_values_used_in_the_order_rows_first_use_them(
    plan: Any, records: list[dict[str, Any]]
) -> None:
    out = rate_table(arrow_of(records), plan, destination=True)
    for name in TEXT_COLUMNS:
        column = out.column(name)
        assert column.num_chunks == 1
        values = column.to_pylist()
        first_use = list(dict.fromkeys(v for v in values if v is not None))
        assert column.chunk(0).dictionary.to_pylist() == first_use, name


def test_a_small_call_on_a_large_deck_carries_a_small_dictionary() -> None:
    prefixes = [f"3{k:05d}" for k in range(20_000)]
    plan = RatePlan(
        [Rate(p, 1_000 + k, destination=f"zone {k}") for k, p in enumerate(prefixes)],
        currency="EUR",
    )
    numbers = [prefixes[k * 97 % len(prefixes)] + "1234" for k in range(50)] * 20
    table = pa.table(
        {
            "call_id": [str(k) for k in range(len(numbers))],
            "started_at": pa.array([T0] * len(numbers), pa.timestamp("us", tz="UTC")),
            "destination_number": numbers,
            "billsec": [60] * len(numbers),
        }
    )
    out = rate_table(table, plan, destination=True)
    assert len(out.column("prefix").chunk(0).dictionary) == 50
    assert len(out.column("destination").chunk(0).dictionary) == 50
    assert out.column("status").chunk(0).dictionary.to_pylist() == ["RATED"]
    assert out.column("reason").null_count == len(numbers)
    assert out.column("reason").chunk(0).dictionary.to_pylist() == []


def test_plain_strings_in_pandas_and_polars() -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    frame = pd.DataFrame(
        {
            "call_id": ["a", "b"],
            "started_at": pd.to_datetime(["2026-03-01 10:00"] * 2, utc=True),
            "destination_number": ["4412", "x"],
            "billsec": [60, 60],
        }
    )
    out = rate_table(frame, plan, strings="plain")
    assert not isinstance(out["status"].dtype, pd.CategoricalDtype)
    assert out["status"].tolist() == ["RATED", "UNRATED"]
    assert out["prefix"].tolist()[0] == "44"
    assert pd.isna(out["prefix"].tolist()[1])
    assert isinstance(rate_table(frame, plan)["status"].dtype, pd.CategoricalDtype)
    pl = pytest.importorskip("polars")
    polars_out = rate_table(pl.from_pandas(frame), plan, strings="plain")
    assert polars_out.schema["status"] == pl.String
    assert polars_out["reason"].to_list() == [None, "INVALID_NUMBER"]


def test_pandas_categories_are_text_also_when_a_column_has_no_value() -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    frame = pd.DataFrame(
        {
            "call_id": ["a", "b", "c"],
            "started_at": pd.to_datetime(["2026-03-01 10:00"] * 3, utc=True),
            "destination_number": ["4412", "4413", "4412"],
            "billsec": [60, 0, 30],
        }
    )
    out = rate_table(frame, plan)
    arrow = rate_table(pa.Table.from_pandas(frame, preserve_index=False), plan)
    text = pd.Index(["-"]).dtype
    for name in ("currency", "status", "reason", "prefix", "error"):
        got = out[name]
        assert isinstance(got.dtype, pd.CategoricalDtype)
        assert got.cat.categories.dtype == text, name
        values = [None if pd.isna(v) else v for v in got.astype(object)]
        assert values == arrow.column(name).to_pylist(), name
        assert got.cat.categories.tolist() == arrow.column(name).chunk(0).dictionary.to_pylist()
    # No row has a reason or an error: Arrow alone would give those object categories.
    assert out["reason"].cat.categories.empty
    assert out["error"].cat.categories.empty
    assert out["status"].cat.codes.tolist() == [0, 1, 0]
    assert out["status"].cat.categories.tolist() == ["RATED", "UNANSWERED"]


# -- columns= ------------------------------------------------------------------------------------


@SETTINGS
@given(
    plan=raters(),
    records=st.lists(rows(), max_size=15),
    columns=column_choices(),
    destination=st.booleans(),
    strings=st.sampled_from(STRINGS),
)
def test_columns_adds_the_named_columns_in_order_with_the_full_outputs_values(
    plan: Any,
    records: list[dict[str, Any]],
    columns: list[str] | None,
    destination: bool,
    strings: Strings,
) -> None:
    table = arrow_of(records)
    full = rate_table(table, plan, destination=True, strings=strings)
    out = rate_table(table, plan, columns=columns, destination=destination, strings=strings)
    wanted = set(OUTPUT_COLUMNS if columns is None else columns) | (
        {"destination"} if destination else set()
    )
    added = [name for name in ALL_OUTPUT_COLUMNS if name in wanted]
    assert out.column_names == [*table.column_names, *added]
    for name in added:
        assert out.column(name).to_pylist() == full.column(name).to_pylist()


def test_columns_replace_only_the_input_columns_they_add() -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    table = pa.table(
        {
            "call_id": ["a"],
            "started_at": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "destination_number": ["4412"],
            "billsec": [60],
            "status": ["old"],
            "cost_micros": [1],
        }
    )
    out = rate_table(table, plan, columns=["cost_micros"])
    assert out.column_names == [
        "call_id",
        "started_at",
        "destination_number",
        "billsec",
        "status",
        "cost_micros",
    ]
    assert out.column("status").to_pylist() == ["old"]
    assert out.column("cost_micros").to_pylist() == [1_000]
    assert rate_table(table, plan, columns=[]).equals(table)


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"columns": ["cost_micros", "charge"]}, "columns", ["'charge'", "'prefix'", "'error'"]),
        ({"columns": "status"}, "columns", ["sequence", "'status'"]),
        ({"columns": 3}, "columns", ["sequence"]),
        ({"strings": "categorical"}, "strings", ["'dictionary'", "'plain'"]),
        ({"strings": None}, "strings", ["'dictionary'", "'plain'"]),
        ({"threads": 0}, "threads", [">= 1"]),
        ({"threads": 1.5}, "threads", [">= 1"]),
        ({"threads": True}, "threads", [">= 1"]),
        ({"destination": "yes"}, "destination", ["True or False"]),
        ({"errors": "ignore"}, "errors", ["'report' or 'raise'"]),
        ({"assume_tz": "Mars/Olympus"}, "assume_tz", ["IANA"]),
    ],
)
def test_options_are_checked_and_named(
    options: dict[str, Any], field: str, words: list[str]
) -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    table = pa.table(
        {
            "call_id": ["a"],
            "started_at": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "destination_number": ["4412"],
            "billsec": [60],
        }
    )
    with pytest.raises(ValidationError) as caught:
        rate_table(table, plan, **options)
    assert caught.value.field == field
    for word in words:
        assert word in str(caught.value)
    if set(options) <= {"columns", "strings", "destination"}:
        with pytest.raises(ValidationError) as caught:
            output_schema(table.schema, **options)
        assert caught.value.field == field


# -- threads= ------------------------------------------------------------------------------------


@SETTINGS
@given(
    plan=raters(),
    records=st.lists(rows(), max_size=30),
    threads=st.integers(2, 6),
    strings=st.sampled_from(STRINGS),
    chunk=st.integers(1, 30),
)
def test_threads_give_the_table_one_thread_gives(
    plan: Any, records: list[dict[str, Any]], threads: int, strings: Strings, chunk: int
) -> None:
    table = arrow_of(records)
    # Input chunks that do not line up with the slices must not matter either.
    table = pa.Table.from_batches(table.to_batches(max_chunksize=chunk), table.schema)
    one = rate_table(table, plan, destination=True, strings=strings)
    many = rate_table(table, plan, destination=True, strings=strings, threads=threads)
    assert many.equals(one)
    for name in many.column_names:
        assert many.column(name).num_chunks <= 1 or name not in ALL_OUTPUT_COLUMNS
    frame = frame_of(records)
    pd.testing.assert_frame_equal(rate_table(frame, plan, threads=threads), rate_table(frame, plan))


@SETTINGS
@given(plan=raters(), records=st.lists(rows(), min_size=1, max_size=30), threads=st.integers(2, 6))
def test_threads_raise_for_the_first_bad_row_in_table_order(
    plan: Any, records: list[dict[str, Any]], threads: int
) -> None:
    table = arrow_of(records)
    try:
        rate_table(table, plan, errors="raise")
    except ValidationError as error:
        expected: str | None = str(error)
    else:
        expected = None
    try:
        rate_table(table, plan, errors="raise", threads=threads)
    except ValidationError as error:
        got: str | None = str(error)
    else:
        got = None
    assert got == expected


@SETTINGS
@given(
    setup=st.one_of(engines_agree.setups(), engines_agree.extreme_setups()),
    threads=st.integers(2, 4),
    strings=st.sampled_from(STRINGS),
)
def test_threads_on_schedules_zones_chains_and_extreme_amounts(
    setup: tuple[Any, list[Any]], threads: int, strings: Strings
) -> None:
    """Plans with schedules in zones with daylight-saving changes, band policies,
    chains, tenants and amounts past 2**61: calls priced one by one by the object
    engine, now on several threads at once."""
    target, calls = setup
    table = engines_agree.table_of(calls * 3)
    one = rate_table(table, target, destination=True, strings=strings)
    assert rate_table(table, target, destination=True, strings=strings, threads=threads).equals(one)


def test_threads_raise_for_the_first_bad_row_of_a_late_slice_worked_example() -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    n = 100
    billsec = [60] * n
    billsec[73] = -5
    billsec[91] = -6
    table = pa.table(
        {
            "call_id": [str(k) for k in range(n)],
            "started_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
            "destination_number": ["4412"] * n,
            "billsec": billsec,
        }
    )
    with pytest.raises(ValidationError, match=r"^row 73: billsec: got -5.*\(2 bad row\(s\) in all"):
        rate_table(table, plan, errors="raise", threads=4)


@SETTINGS
@given(
    setup=st.one_of(engines_agree.setups(), engines_agree.extreme_setups()),
    chunk=st.integers(1, 12),
    strings=st.sampled_from(STRINGS),
)
def test_a_large_table_rated_in_slices_is_the_table_rated_in_one_pass(
    setup: tuple[Any, list[Any]], chunk: int, strings: Strings
) -> None:
    """rate_table rates a table of more than CHUNK_ROWS rows slice by slice: with the
    slices made tiny, every column (and the first bad row's message) is what one pass
    over the whole gives."""
    target, calls = setup
    table = engines_agree.table_of(calls * 3)

    def rated(chunk_rows: int, **options: Any) -> Any:
        with mock.patch.object(_driver, "CHUNK_ROWS", chunk_rows):
            try:
                return rate_table(table, target, destination=True, strings=strings, **options)
            except ValidationError as error:
                return str(error)

    whole = rated(10**9)
    assert isinstance(whole, pa.Table)
    sliced = rated(chunk)
    assert sliced.equals(whole)
    assert rated(chunk, errors="raise") == rated(10**9, errors="raise")


# -- text columns --------------------------------------------------------------------------------


@SETTINGS
@given(
    size=st.sampled_from([0, 1, 5, 64, 65, 100, 300]),  # about the small-column path
    count=st.sampled_from([1, 3, 8, 9, 40, 1_000]),  # about the handful and hashing paths
    nulls=st.booleans(),
    plain=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_a_text_column_is_its_values_in_the_order_rows_first_use_them(
    size: int, count: int, nulls: bool, plain: bool, seed: int
) -> None:
    """Each way _text builds a column (a few rows in Python; a handful of values; many
    rows; hashing) gives the column the rule defines: a row's value (null for -1), and a
    dictionary of the values used, each once, in the order rows first use them."""
    import numpy as np  # noqa: PLC0415

    from cdrrating.frame._output import _text  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    # Some values twice, as when two plans share a prefix.
    values = [f"v{k}" for k in rng.integers(0, count, count).tolist()]
    codes = rng.integers(-1 if nulls else 0, len(values), size).astype(np.int32)
    column = _text(codes, pa.array(values, pa.string()), plain, repeats=True)
    assert column.to_pylist() == [None if c < 0 else values[c] for c in codes.tolist()]
    if not plain:
        first_use = list(dict.fromkeys(values[c] for c in codes.tolist() if c >= 0))
        assert column.dictionary.to_pylist() == first_use


# -- output_schema -------------------------------------------------------------------------------

EXTRA_TYPES = [
    pa.int8(),
    pa.float64(),
    pa.string(),
    pa.large_string(),
    pa.bool_(),
    pa.dictionary(pa.int8(), pa.string()),
    pa.timestamp("ns"),
    pa.list_(pa.int64()),
]


@st.composite
def input_tables(draw: st.DrawFn) -> Any:
    """Tables of many shapes: extra columns of other types (some named as an output
    column), the columns in any order, schema metadata or none."""
    records = draw(st.lists(rows(), max_size=8))
    table = arrow_of(records)
    names = draw(
        st.lists(
            st.sampled_from(["note", "x", "cost_micros", "status", "prefix", "error", "z"]),
            unique=True,
            max_size=4,
        )
    )
    for name in names:
        kind = draw(st.sampled_from(EXTRA_TYPES))
        table = table.append_column(pa.field(name, kind), pa.nulls(table.num_rows, kind))
    order = draw(st.permutations(table.column_names))
    table = table.select(order)
    if draw(st.booleans()):
        table = table.replace_schema_metadata({"source": "switch 7"})
    elif draw(st.booleans()):
        table = table.replace_schema_metadata(None)
    return table


@SETTINGS
@given(
    plan=raters(),
    table=input_tables(),
    options=st.fixed_dictionaries(
        {
            "columns": column_choices(),
            "destination": st.booleans(),
            "strings": st.sampled_from(STRINGS),
        }
    ),
    threads=st.integers(1, 3),
)
def test_output_schema_is_the_schema_rate_table_returns(
    plan: Any, table: Any, options: dict[str, Any], threads: int
) -> None:
    out = rate_table(table, plan, threads=threads, **options)
    schema = output_schema(table.schema, **options)
    assert schema.equals(out.schema, check_metadata=True)
    assert rate_table(table.slice(0, 0), plan, **options).schema.equals(schema, check_metadata=True)
    batch = table.combine_chunks().to_batches()
    if batch:
        assert rate_table(batch[0], plan, **options).schema.equals(schema, check_metadata=True)


def test_output_schema_worked_example() -> None:
    schema = pa.schema(
        [
            ("call_id", pa.string()),
            ("started_at", pa.timestamp("ms", tz="UTC")),
            ("destination_number", pa.string()),
            ("billsec", pa.int32()),
            ("status", pa.string()),
        ]
    )
    assert output_schema(schema, strings="plain", columns=["status", "cost_micros"]) == pa.schema(
        [
            ("call_id", pa.string()),
            ("started_at", pa.timestamp("ms", tz="UTC")),
            ("destination_number", pa.string()),
            ("billsec", pa.int32()),
            ("cost_micros", pa.int64()),
            ("status", pa.string()),
        ]
    )
    text = pa.dictionary(pa.int32(), pa.string())
    assert output_schema(schema).names[4:] == list(OUTPUT_COLUMNS)
    assert output_schema(schema).field("prefix").type == text
    assert output_schema(schema, destination=True).names[-2:] == ["destination", "error"]
    with pytest.raises(ValidationError, match="input_schema"):
        output_schema({"call_id": "string"})


# -- naive timestamps ----------------------------------------------------------------------------


def naive_table(started: Any) -> Any:
    return pa.table(
        {
            "call_id": ["a", "b"],
            "started_at": started,
            "destination_number": ["4412", "4413"],
            "billsec": [60, 30],
        }
    )


def test_a_naive_timestamp_column_is_refused_naming_assume_tz() -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    naive = datetime(2026, 3, 1, 10, 0)
    table = naive_table(pa.array([naive, naive + timedelta(hours=1)], pa.timestamp("us")))
    for errors in ("report", "raise"):
        with pytest.raises(ValidationError, match="assume_tz") as caught:
            rate_table(table, plan, errors=errors)
        assert caught.value.field == "started_at"
    with pytest.raises(ValidationError, match="assume_tz"):
        rate_table(table.to_pandas(), plan)
    pl = pytest.importorskip("polars")
    with pytest.raises(ValidationError, match="assume_tz"):
        rate_table(pl.from_arrow(table), plan)
    berlin = rate_table(table, plan, assume_tz="Europe/Berlin")
    assert berlin.column("status").to_pylist() == ["RATED", "RATED"]


def test_naive_text_is_never_guessed_each_row_names_assume_tz() -> None:
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    table = naive_table(["2026-03-01T10:00:00", "2026-03-01T10:00:00+01:00"])
    out = rate_table(table, plan)
    assert out.column("status").to_pylist() == ["ERROR", "RATED"]
    assert "assume_tz" in out.column("error")[0].as_py()
    with pytest.raises(ValidationError, match=r"row 0: started_at.*assume_tz"):
        rate_table(table, plan, errors="raise")
    assert rate_table(table, plan, assume_tz="Europe/Berlin").column("status").to_pylist() == [
        "RATED",
        "RATED",
    ]


@SETTINGS
@given(records=st.lists(rows(), max_size=8), strings=st.sampled_from(STRINGS))
def test_output_schema_of_tables_polars_and_duckdb_make(
    records: list[dict[str, Any]], strings: Strings
) -> None:
    """Arrow as other libraries write it: polars (large or view strings), DuckDB."""
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    table = arrow_of(records)
    shapes = [pl.from_arrow(table).to_arrow(), pa.table(pl.from_arrow(table))]
    connection = duckdb.connect()
    connection.register("cdrs", table)
    shapes.append(connection.sql("select * from cdrs").to_arrow_table())
    for shaped in shapes:
        out = rate_table(shaped, plan, strings=strings, destination=True)
        schema = output_schema(shaped.schema, strings=strings, destination=True)
        assert schema.equals(out.schema, check_metadata=True)
