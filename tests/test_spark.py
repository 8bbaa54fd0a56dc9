"""cdrrating.spark on a real local Spark: every row equals rate_table's on the same rows.

One Spark session for the module (local[2], no UI, small Arrow batches so that a task
sees many). Skipped when pyspark or Java is missing, a failure when CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow")

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]  # (same)

from cdrrating import Rate, RatePlan, Rater, Schedule, ValidationError
from cdrrating.frame import rate_table

pytestmark = [
    # pyspark warns about the pandas version when it sets up mapInArrow; nothing here
    # goes through pandas.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ADDED = ["cost_micros", "currency", "billed_seconds", "status", "reason", "prefix", "error"]


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"{module} is not installed: pip install 'cdrrating[spark]'")


def _java_home() -> str | None:
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return os.environ.get("JAVA_HOME")
    for candidate in sorted(Path("/usr/lib/jvm").glob("java-17*")):
        if (candidate / "bin" / "java").exists():
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    sql = _require("pyspark.sql")
    home = _java_home()
    if home is None and not shutil.which("java"):
        if os.environ.get("CI") == "true":
            pytest.fail("Spark needs Java 17+: set JAVA_HOME")
        pytest.skip("Spark needs Java 17+ (no JAVA_HOME, no java on PATH)")
    patch = pytest.MonkeyPatch()
    if home is not None:
        patch.setenv("JAVA_HOME", home)
    # The workers must run this interpreter (with cdrrating importable), not "python3".
    patch.setenv("PYSPARK_PYTHON", sys.executable)
    session = (
        sql.SparkSession.builder.master("local[2]")
        .appName("cdrrating-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Small batches: every task hands over several, as 10,000-row batches do at scale.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
        .config("spark.driver.memory", "512m")
        # A test session lives seconds: the quick JIT and a small collector start it about
        # twice as fast as the defaults tuned for long jobs.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    patch.undo()


# -- the plans and the rows ------------------------------------------------------------------

PLAN = RatePlan(
    [
        Rate("4420", 2_000, initial_seconds=60, increment_seconds=60),
        Rate("44", 1_000, initial_seconds=1, increment_seconds=1, connection_fee_micros=150_000),
        Rate("1", 6_000, initial_seconds=30, increment_seconds=6, grace_seconds=5),
        Rate("33", 60_000, initial_seconds=30, increment_seconds=7, minimum_charge_micros=50_000),
        Rate("44", 300, direction="inbound"),
    ],
    currency="EUR",
    name="retail",
)
# Peak and off-peak for Germany in Berlin time, across the change to summer time.
SCHEDULED = RatePlan(
    [
        Rate("49", 4_000, schedule=Schedule.parse("Mon-Fri 08:00-18:00"), priority=1),
        Rate("49", 1_000, priority=0),
        Rate("4930", 9_000, initial_seconds=60, increment_seconds=60),
    ],
    currency="EUR",
    timezone="Europe/Berlin",
    name="germany",
)
WHOLESALE = RatePlan([Rate("", 100_000)], currency="USD", name="catch-all")
RATER = Rater({"acme": PLAN, "beta": [SCHEDULED, PLAN]}, default=WHOLESALE)

NUMBERS = [
    "442079460000",
    "+44 20 7946 0001",
    "0044 161 496 0000",
    "4412",
    "12125550100",
    "+1 (212) 555-0199",
    "33142685300",
    "4930123456",
    "491701234567",
    "+49 89 1234567",
    "x-not-a-number",
    "999999",
    "",
]
TENANTS = ["acme", "beta", None, "zeta", ""]
# Around Berlin's change to summer time (Sunday 29 March 2026, 01:00 UTC).
T0 = datetime(2026, 3, 27, 5, 0, tzinfo=UTC)


def cdr_rows(n: int = 240, seed: int = 7) -> pa.Table:
    """CDRs with every kind of row: rated, unanswered, unrated, bad, nulls, tenants."""
    import random  # noqa: PLC0415  # a seeded generator for one deterministic table

    rng = random.Random(seed)
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "row",
            "call_id",
            "started_at",
            "destination_number",
            "direction",
            "disposition",
            "billsec",
            "duration",
            "tenant",
            "note",
        )
    }

    def pick(common: list[Any], rare: list[Any]) -> Any:
        # Mostly good rows; one in about twelve bad or unusual in this column.
        return rng.choice(rare) if rng.random() < 0.08 else rng.choice(common)

    for i in range(n):
        billsec = pick([0, 1, 5, 6, 29, 31, 59, 61, 75, 600, 3_601], [None, -3])
        extra = pick([0, 3, 20], [-1, None])  # -1: billsec greater than duration
        duration = None if billsec is None or extra is None else billsec + extra
        rows["row"].append(i)
        rows["call_id"].append(pick([f"c{i}"], [None, ""]))
        rows["started_at"].append(
            None if i % 37 == 5 else T0 + timedelta(minutes=rng.randrange(0, 4 * 24 * 60, 7))
        )
        rows["destination_number"].append(None if i % 41 == 3 else rng.choice(NUMBERS))
        rows["direction"].append(pick(["outbound", None], ["inbound", "INBOUND", "sideways"]))
        rows["disposition"].append(
            pick(["ANSWERED", "ANSWERED", "answered", None], ["NO ANSWER", "BUSY", "BOGUS"])
        )
        rows["billsec"].append(billsec)
        rows["duration"].append(duration)
        rows["tenant"].append(rng.choice(TENANTS))
        rows["note"].append(f"kept {i}")
    schema = pa.schema(
        [
            ("row", pa.int64()),
            ("call_id", pa.string()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("destination_number", pa.string()),
            ("direction", pa.string()),
            ("disposition", pa.string()),
            ("billsec", pa.int64()),
            ("duration", pa.int64()),
            ("tenant", pa.string()),
            ("note", pa.string()),
        ]
    )
    return pa.table(rows, schema=schema)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by("row")


def expected(table: pa.Table, plan: Any, **options: Any) -> pa.Table:
    return _sorted(rate_table(table, plan, strings="plain", **options))


def rated(df: Any) -> pa.Table:
    return _sorted(df.toArrow())


def assert_same_rows(got: pa.Table, want: pa.Table, columns: list[str] | None = None) -> None:
    for name in columns or want.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


# -- the two ways through Spark ---------------------------------------------------------------


@pytest.fixture(params=["mapInArrow", "arrow_udf"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way rate_spark takes: the frames here carry few columns rating does not read
    (mapInArrow hands them over); with the threshold at 0 every frame takes the Arrow
    UDF that keeps them in the JVM."""
    if request.param == "arrow_udf":
        import cdrrating.spark  # noqa: PLC0415

        monkeypatch.setattr(cdrrating.spark, "PASSED_IN_JVM", 0)
    return str(request.param)


def taken(df: Any, capsys: pytest.CaptureFixture[str]) -> str:
    """The way Spark's physical plan for ``df`` rates: "mapInArrow" or "arrow_udf"."""
    capsys.readouterr()
    df.explain()
    plan = capsys.readouterr().out
    ways = {"MapInArrow" in plan: "mapInArrow", "ArrowEvalPython" in plan: "arrow_udf"}
    assert len([way for found, way in ways.items() if found]) == 1, plan
    return ways[True]


# -- one documented call ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "plan", [PLAN, SCHEDULED, [SCHEDULED, PLAN], RATER, None], ids=lambda p: type(p).__name__
)
def test_rows_equal_rate_table(
    spark: Any, plan: Any, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdrrating.spark import rate_spark  # noqa: PLC0415

    table = cdr_rows()
    df = spark.createDataFrame(table)
    want = expected(table, plan)
    out = rate_spark(df, plan)
    assert taken(out, capsys) == path
    got = rated(out)
    assert got.column_names == want.column_names
    assert_same_rows(got, want)
    # The table holds every kind of row.
    statuses = set(got.column("status").to_pylist())
    if plan is not None:
        assert {"RATED", "UNANSWERED", "UNRATED", "ERROR"} <= statuses


def test_columns_rating_does_not_read_stay_in_the_jvm_when_many(
    spark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdrrating.spark import PASSED_IN_JVM, rate_spark, spark_schema  # noqa: PLC0415

    table = cdr_rows(n=120, seed=13)
    # Awkward names: a dot, a backtick, the name the charge struct would take.
    odd = ["a.b", "with `tick`", "_charge"]
    extra = [*odd, *(f"x{k}" for k in range(PASSED_IN_JVM))]
    for k, name in enumerate(extra):
        values = pa.array([f"{name}:{i}" if k % 2 else i * k for i in range(table.num_rows)])
        table = table.append_column(name, values)
    # "row" and "note" are not read either: the frame has more than the threshold.
    df = spark.createDataFrame(table)
    out = rate_spark(df, RATER)
    assert taken(out, capsys) == "arrow_udf"
    assert out.schema == spark_schema(df.schema)
    got = rated(out)
    want = expected(table, RATER)
    assert got.column_names == want.column_names
    assert_same_rows(got, want)
    # With "row" and "note", one column fewer than the threshold: through mapInArrow.
    dropped = [*odd, *extra[len(odd) + PASSED_IN_JVM - 3 :]]
    few = spark.createDataFrame(table.drop_columns(dropped))
    assert taken(rate_spark(few, RATER), capsys) == "mapInArrow"


def test_awkward_column_names_either_way(
    spark: Any, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names Spark parses (a backtick, a dot: mapInArrow alone fails on either) and the
    stand-in name such a column would take come back as they went in, with their rows."""
    from cdrrating.spark import rate_spark, spark_schema  # noqa: PLC0415

    table = cdr_rows(n=60, seed=17)
    odd = ["with `tick`", "a.b", "_cdrrating_column_7", "``"]
    for k, name in enumerate(odd):
        table = table.append_column(name, pa.array([f"{k}:{i}" for i in range(table.num_rows)]))
    df = spark.createDataFrame(table)
    out = rate_spark(df, RATER)
    assert taken(out, capsys) == path
    assert out.schema == spark_schema(df.schema)
    got = rated(out)
    want = expected(table, RATER)
    assert got.column_names == want.column_names
    assert_same_rows(got, want)  # the pass-through columns too, by name


def test_instants_are_instants_whatever_the_session_zone(spark: Any, path: str) -> None:
    from cdrrating.spark import rate_spark  # noqa: PLC0415

    table = cdr_rows(seed=11)
    chain = [SCHEDULED, PLAN]
    df = spark.createDataFrame(table)
    want = expected(table, chain)
    results = []
    try:
        for zone in ("America/New_York", "Asia/Kolkata"):
            spark.conf.set("spark.sql.session.timeZone", zone)
            results.append(rated(rate_spark(df, chain)))
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    for got in results:
        assert_same_rows(got, want)
    # The rows are such that reading New York's wall clock as the instant would change
    # costs (peak and off-peak in Berlin): the equality above is not by luck.
    shifted = table.set_column(
        2, "started_at", pc.subtract(table["started_at"], pa.scalar(timedelta(hours=4)))
    )
    misread = expected(shifted, chain)
    assert misread["cost_micros"].to_pylist() != want["cost_micros"].to_pylist()


def test_naive_timestamps_need_assume_tz(spark: Any, path: str) -> None:
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    from cdrrating.spark import rate_spark  # noqa: PLC0415

    walls = [
        datetime(2026, 3, 27, 7, 59),
        datetime(2026, 3, 27, 8, 0),
        datetime(2026, 3, 29, 2, 30),  # Berlin skips 02:00-03:00 that night: a bad row
        datetime(2026, 10, 25, 2, 30),  # and repeats 02:00-03:00 in October: a bad row
        datetime(2026, 3, 30, 17, 59, 30),  # crosses into off-peak during the call
    ]
    table = pa.table(
        {
            "row": list(range(len(walls))),
            "call_id": [f"n{i}" for i in range(len(walls))],
            "started_at": pa.array(walls, pa.timestamp("us")),
            "destination_number": ["491701234567"] * len(walls),
            "billsec": [120] * len(walls),
        }
    )
    # Spark reads a naive Arrow column as local times: make the wall clocks in Spark.
    text = table.set_column(2, "started_at", table["started_at"].cast(pa.string()))
    df = spark.createDataFrame(text).withColumn(
        "started_at", F.to_timestamp_ntz(F.col("started_at"))
    )
    assert dict(df.dtypes)["started_at"] == "timestamp_ntz"
    with pytest.raises(ValidationError, match=r"started_at.*assume_tz"):
        rate_spark(df, SCHEDULED)  # refused at the call: no job runs
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        got = rated(rate_spark(df, SCHEDULED, assume_tz="Europe/Berlin"))
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    want = expected(table, SCHEDULED, assume_tz="Europe/Berlin")
    assert_same_rows(got, want)
    assert got["status"].to_pylist() == ["RATED", "RATED", "ERROR", "ERROR", "RATED"]
    # Berlin wall clock: a minute off-peak then a minute at peak; two minutes at peak.
    assert got["cost_micros"].to_pylist()[:2] == [1_000 + 4_000, 8_000]


def test_text_timestamps_are_read_as_rate_table_reads_them(spark: Any, path: str) -> None:
    from cdrrating.spark import rate_spark  # noqa: PLC0415

    texts = [
        "2026-03-27T07:59:00+01:00",
        "2026-03-27T07:00:00Z",
        "2026-03-27 09:00:00",  # no offset: a bad row without assume_tz
        "yesterday",
        None,
    ]
    table = pa.table(
        {
            "row": list(range(len(texts))),
            "call_id": [f"t{i}" for i in range(len(texts))],
            "started_at": pa.array(texts, pa.string()),
            "destination_number": ["491701234567"] * len(texts),
            "billsec": [60] * len(texts),
        }
    )
    df = spark.createDataFrame(table)
    for assume_tz in (None, "Europe/Berlin"):
        got = rated(rate_spark(df, SCHEDULED, assume_tz=assume_tz))
        assert_same_rows(got, expected(table, SCHEDULED, assume_tz=assume_tz))
        assert got["status"].to_pylist()[3:] == ["ERROR", "ERROR"]


def test_schema_columns_destination_and_replaced_columns(spark: Any, path: str) -> None:
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    from cdrrating.spark import rate_spark, spark_schema  # noqa: PLC0415

    table = cdr_rows(n=40, seed=3)
    df = (
        spark.createDataFrame(table)
        .withColumn("status", F.lit("stale"))
        .withColumn("amount", F.lit(1.5).cast("decimal(10,2)"))
    )
    out = rate_spark(df, PLAN, destination=True)
    assert out.schema == spark_schema(df.schema, destination=True)
    names = [f.name for f in out.schema.fields]
    assert names[: len(table.column_names)] == table.column_names
    assert names[len(table.column_names) :] == [
        "amount",
        "cost_micros",
        "currency",
        "billed_seconds",
        "status",
        "reason",
        "prefix",
        "destination",
        "error",
    ]
    types = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    assert (types["cost_micros"], types["billed_seconds"], types["status"]) == (
        "bigint",
        "bigint",
        "string",
    )
    got = rated(out)
    want = expected(table, PLAN, destination=True)
    assert_same_rows(got, want, [*ADDED, "destination", "note"])
    assert set(got["amount"].to_pylist()) == {__import__("decimal").Decimal("1.50")}

    few = rate_spark(df, PLAN, columns=["cost_micros", "status"])
    assert [f.name for f in few.schema.fields][-3:] == ["amount", "cost_micros", "status"]
    assert_same_rows(rated(few), want, ["cost_micros", "status"])


def test_empty_dataframe(spark: Any, path: str) -> None:
    from cdrrating.spark import rate_spark  # noqa: PLC0415

    table = cdr_rows(n=0)
    out = rate_spark(spark.createDataFrame(table), PLAN)
    got = out.toArrow()
    assert got.num_rows == 0
    assert got.column_names == [*table.column_names, *ADDED]


def test_unusable_columns_are_refused_at_the_call(spark: Any) -> None:
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    from cdrrating.spark import rate_spark  # noqa: PLC0415

    df = spark.createDataFrame(cdr_rows(n=4))
    with pytest.raises(ValidationError, match="destination_number"):
        rate_spark(df.drop("destination_number"), PLAN)
    with pytest.raises(ValidationError, match="billsec"):
        rate_spark(df.withColumn("billsec", F.col("billsec").cast("double")), PLAN)
    with pytest.raises(ValidationError, match="plan_or_rater"):
        rate_spark(df, "retail")  # type: ignore[arg-type]  # a wrong type on purpose
    with pytest.raises(ValidationError, match="batch_rows"):
        rate_spark(df, PLAN, batch_rows=0)
    with pytest.raises(ValidationError, match="columns"):
        rate_spark(df, PLAN, columns=["price"])
    with pytest.raises(ValidationError, match="df"):
        rate_spark(table := cdr_rows(n=1), PLAN)  # a pyarrow table is not a Spark DataFrame
    assert table.num_rows == 1
    from cdrrating.spark import broadcast_plan, spark_schema  # noqa: PLC0415

    with pytest.raises(ValidationError, match="input_schema"):
        spark_schema(table.schema)  # an Arrow schema is not a Spark one
    with pytest.raises(ValidationError, match="spark"):
        broadcast_plan(df, PLAN)


# -- the plan shipped once -------------------------------------------------------------------


def test_plan_is_broadcast_once_and_loaded_once_per_worker_process(spark: Any, path: str) -> None:
    from cdrrating.spark import broadcast_plan, rate_spark  # noqa: PLC0415

    plan = RatePlan([Rate("4420", 2_500), Rate("44", 1_200)], currency="GBP", name="loads")
    twin = RatePlan([Rate("44", 1_200), Rate("4420", 2_500)], currency="GBP", name="loads")
    shipped = broadcast_plan(spark, plan)
    assert broadcast_plan(spark, twin) is shipped  # equal content: the same broadcast

    table = cdr_rows(n=400, seed=5)
    df = spark.createDataFrame(table).repartition(4)
    want = expected(table, plan)
    for _ in range(2):
        # batch_rows=1: a rating call for each of Spark's 16-row batches.
        assert_same_rows(rated(rate_spark(df, twin, batch_rows=1)), want)
    assert shipped.calls >= 2 * 400 // 16
    assert 1 <= shipped.loads == shipped.worker_processes <= 4

    calls = shipped.calls
    assert_same_rows(rated(rate_spark(df, shipped)), want)  # joined: one call per task
    assert shipped.calls - calls <= 4
    assert shipped.loads == shipped.worker_processes


def test_importing_without_pyspark_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "try:\n    import cdrrating.spark\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'cdrrating[spark]'" in out.stdout


def test_holidays_round_trip_through_the_broadcast(spark: Any) -> None:
    """A plan with holiday calendars and the 'start' band policy prices on the workers
    as it does here (everything that prices a call survives the trip)."""
    from cdrrating.spark import rate_spark  # noqa: PLC0415

    plan = RatePlan(
        [
            Rate("49", 8_000, schedule=Schedule.parse("Mon-Fri 08:00-18:00 except:de"), priority=1),
            Rate("49", 1_000, priority=0),
        ],
        currency="EUR",
        timezone="Europe/Berlin",
        holidays={"de": [date(2026, 3, 27)]},
        band_policy="start",
    )
    table = cdr_rows(n=120, seed=9)
    got = rated(rate_spark(spark.createDataFrame(table), plan))
    want = expected(table, plan)
    assert_same_rows(got, want)
    assert len(set(want["cost_micros"].to_pylist())) > 3


def test_docs_spark_examples_run(spark: Any) -> None:
    """docs/scaleout.md: the plan and the Spark examples run as printed (in the session
    of these tests, which ``SparkSession.builder.getOrCreate()`` returns)."""
    from tests.test_docs import SKIP_MARK, blocks  # noqa: PLC0415

    page = Path(__file__).resolve().parent.parent / "docs" / "scaleout.md"
    namespace: dict[str, object] = {"__name__": "docs_scaleout_spark"}
    ran = 0
    for block in blocks(page):
        if block.code.lstrip().startswith(SKIP_MARK) or "dask" in block.code:
            continue
        exec(compile("\n" * block.line + block.code, str(page), "exec"), namespace)
        ran += 1
    assert ran >= 4
