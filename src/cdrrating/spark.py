"""Rating Spark DataFrames (extra ``[spark]``).

``rate_spark(df, plan_or_rater)`` returns ``df`` with the charge columns of
:func:`cdrrating.frame.rate_table` added, rated on the executors through
``DataFrame.mapInArrow``: row for row the result equals ``rate_table`` on the same rows.

The plan is shipped once: it is broadcast (``SparkContext.broadcast``) once per Spark
application and content (a second call with an equal plan reuses the broadcast), and a
Python worker process loads it once and keeps it for every later task and batch, keyed
by the plan's content hash. Spark hands Arrow batches of
``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (10,000 by default); each task
joins them into batches of ``batch_rows`` rows before rating, since every rating call
has a fixed cost.

Two ways through Spark, picked by the columns: ``mapInArrow`` hands every column to
Python and back; a DataFrame with :data:`PASSED_IN_JVM` or more columns that rating does
not read goes through an Arrow UDF of the read columns instead (pyspark 4.1 and later),
whose struct of charges becomes the added columns, so those other columns stay in the
JVM. Either way the rows are the same.

Time as Spark has it: a ``TimestampType`` column holds instants (the session time zone
only changes how they are shown), so it is read as instants whatever
``spark.sql.session.timeZone`` says; a ``TimestampNTZType`` column holds wall-clock
times and is refused unless ``assume_tz=`` names the zone they were written in; text is
read as ``rate_table`` reads it (ISO 8601 with an offset, or without one and
``assume_tz``).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

try:
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
    from pyspark import Accumulator, AccumulatorParam, Broadcast
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql import functions as sql
    from pyspark.sql.pandas.types import from_arrow_type, to_arrow_schema
    from pyspark.sql.types import StructField, StructType
except ImportError as _error:  # pragma: no cover - exercised by the import test in a subprocess
    raise ImportError(
        f"cdrrating.spark needs pyspark and pyarrow ({_error.name} is missing): "
        "pip install 'cdrrating[spark]'"
    ) from _error
try:
    from pyspark.sql.pandas.functions import arrow_udf

    _ARROW_UDFS = True
except ImportError:  # pragma: no cover - pyspark before 4.1: every frame goes through mapInArrow
    _ARROW_UDFS = False

# The "as" re-exports KEPT_PLANS: cdrrating.spark.KEPT_PLANS is a name users read.
from cdrrating._worker_plans import KEPT_PLANS as KEPT_PLANS  # noqa: PLC0414
from cdrrating._worker_plans import PlanArg, WorkerPlans, plan_key
from cdrrating.errors import ValidationError
from cdrrating.frame import INPUT_COLUMNS, output_schema, rate_table

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "PASSED_IN_JVM",
    "SparkPlan",
    "broadcast_plan",
    "rate_spark",
    "spark_schema",
]

#: Rows a task rates in one call: Spark's Arrow batches (10,000 rows by default) are
#: joined up to this many, so that the fixed cost of a call is paid rarely.
DEFAULT_BATCH_ROWS = 131_072

#: Columns rating does not read that a DataFrame may carry before ``rate_spark`` keeps
#: them in the JVM. Handing a column to Python and back through Arrow costs the JVM more
#: than queueing its rows beside an Arrow UDF of the read columns, but the queue holds
#: every column, read ones too: on 2,000,000 CDRs with the six read columns the UDF cost
#: 30 % more CPU than ``mapInArrow`` with one other column, as much with four, 17 % less
#: with eight and 21 % less with sixteen.
PASSED_IN_JVM = 8


# -- the plan on the driver ------------------------------------------------------------------


class _Sites(AccumulatorParam[list[str]]):
    """Accumulates the worker processes ("host:pid") that loaded a plan, one per load."""

    def zero(self, value: list[str]) -> list[str]:
        return []

    def addInPlace(self, value1: list[str], value2: list[str]) -> list[str]:  # noqa: N802 - Spark's name
        value1.extend(value2)
        return value1


@attrs.frozen
class SparkPlan:
    """A plan, fallback chain or :class:`~cdrrating.Rater` broadcast to a Spark
    application's executors, as :func:`broadcast_plan` returns it.

    ``key`` is the plan's content hash: worker processes keep one loaded plan per key.
    ``loads`` counts the times a worker process loaded the plan from the broadcast
    (once per process that rated with it) and ``worker_processes`` the distinct
    processes that did; ``calls`` counts the rating calls the tasks made (each on up to
    ``batch_rows`` rows). The counts are Spark accumulators, read on the driver once
    jobs have finished; a task that Spark runs again counts again.
    """

    key: str
    plan: PlanArg = attrs.field(repr=False)
    broadcast: Broadcast[Any] = attrs.field(repr=False)
    _sites: Accumulator[list[str]] = attrs.field(repr=False, alias="sites")
    _calls: Accumulator[int] = attrs.field(repr=False, alias="calls")

    @property
    def loads(self) -> int:
        return len(self._sites.value)

    @property
    def worker_processes(self) -> int:
        return len(set(self._sites.value))

    @property
    def calls(self) -> int:
        return self._calls.value

    def _shipment(self) -> _Shipment:
        return _Shipment(self.key, self.broadcast, self._sites, self._calls)


_BROADCASTS: dict[tuple[str, str], SparkPlan] = {}
_BROADCASTS_LOCK = threading.Lock()


def broadcast_plan(spark: SparkSession, plan_or_rater: PlanArg) -> SparkPlan:
    """Broadcast ``plan_or_rater`` to the executors of ``spark``'s application, once.

    A second call with a plan of the same content in the same application returns the
    same :class:`SparkPlan` without broadcasting again. :func:`rate_spark` calls this
    itself; call it to read the counts of a ``SparkPlan`` or to rate several
    DataFrames with one broadcast.
    """
    if not isinstance(spark, SparkSession):
        raise ValidationError("spark", spark, "a pyspark.sql.SparkSession")
    key = plan_key(plan_or_rater)
    context = spark.sparkContext
    slot = (context.applicationId, key)
    with _BROADCASTS_LOCK:
        found = _BROADCASTS.get(slot)
        if found is None:
            found = _BROADCASTS[slot] = SparkPlan(
                key,
                plan_or_rater,
                context.broadcast(plan_or_rater),
                sites=context.accumulator([], _Sites()),
                calls=context.accumulator(0),
            )
    return found


# -- the plan on the workers -----------------------------------------------------------------

# Loaded plans of this worker process, by content hash. Python workers are reused across
# tasks (spark.python.worker.reuse, on by default), so a plan is loaded once per process.
_PLANS = WorkerPlans()


@attrs.frozen
class _Shipment:
    """What a task needs to find its plan: pickled into every task, small."""

    key: str
    broadcast: Broadcast[Any]
    sites: Accumulator[list[str]]
    calls: Accumulator[int]

    def plan(self) -> Any:
        return _PLANS.get_or_load(self.key, self._load)

    def _load(self) -> Any:
        value = self.broadcast.value
        self.sites.add([f"{socket.gethostname()}:{os.getpid()}"])
        return value


@attrs.frozen
class _Options:
    assume_tz: str | None
    destination: bool
    columns: tuple[str, ...] | None
    batch_rows: int


def _rate_partition(
    shipment: _Shipment, options: _Options, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The function ``mapInArrow`` runs on a partition's batches."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= options.batch_rows:
            yield from _rate(shipment, options, pending)
            pending, rows = [], 0
    if pending:
        yield from _rate(shipment, options, pending)


def _rate(
    shipment: _Shipment, options: _Options, batches: list[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    rated = rate_table(
        pa.Table.from_batches(batches),
        shipment.plan(),
        assume_tz=options.assume_tz,
        destination=options.destination,
        columns=options.columns,
        strings="plain",
    )
    shipment.calls.add(1)
    yield from rated.to_batches()


def _charges(
    shipment: _Shipment, options: _Options, read: tuple[str, ...], added: pa.Schema
) -> Callable[[Iterator[tuple[pa.Array, ...]]], Iterator[pa.Array]]:
    """The Arrow UDF that rates the ``read`` columns into a struct of the ``added`` ones."""

    # Spark reads the UDF's kind from these annotations: they must stay as they are.
    def charge(arrays: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
        batches = (pa.RecordBatch.from_arrays(list(columns), names=read) for columns in arrays)
        for rated in _rate_partition(shipment, options, batches):
            yield pa.StructArray.from_arrays(
                [rated.column(name) for name in added.names], fields=list(added)
            )

    return charge


# -- the public call -------------------------------------------------------------------------


def spark_schema(
    input_schema: StructType,
    *,
    columns: Iterable[str] | None = None,
    destination: bool = False,
) -> StructType:
    """The Spark schema of what :func:`rate_spark` returns for a DataFrame of
    ``input_schema`` with the same ``columns`` and ``destination`` options.

    The input fields come first, in their order (those named as an added column are
    dropped: rating a rated table again replaces its charge), then the added columns,
    every one nullable: ``cost_micros`` and ``billed_seconds`` LongType, ``currency``,
    ``status``, ``reason``, ``prefix``, ``destination`` and ``error`` StringType.
    """
    if not isinstance(input_schema, StructType):
        raise ValidationError("input_schema", input_schema, "a pyspark StructType")
    added = output_schema(
        pa.schema([]),
        columns=None if columns is None else list(columns),
        strings="plain",
        destination=destination,
    )
    names = set(added.names)
    fields = [f for f in input_schema.fields if f.name not in names]
    fields += [StructField(f.name, from_arrow_type(f.type), nullable=True) for f in added]
    return StructType(fields)


def rate_spark(
    df: DataFrame,
    plan_or_rater: PlanArg | SparkPlan,
    *,
    assume_tz: str | None = None,
    destination: bool = False,
    columns: Iterable[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> DataFrame:
    """Rate a Spark DataFrame of CDRs: ``df`` with the charge columns added.

    ``plan_or_rater`` is what :func:`cdrrating.frame.rate_table` takes (a
    :class:`~cdrrating.RatePlan`, a fallback chain of plans, a
    :class:`~cdrrating.Rater` whose chains the ``tenant`` column picks, or None), or a
    :class:`SparkPlan` from :func:`broadcast_plan`. The plan is broadcast once per
    application and loaded once per Python worker process.

    Columns are read as ``rate_table`` reads them (named as the CDR fields; any other
    column is passed through untouched). ``TimestampType`` columns are instants, read
    as such whatever the session time zone; ``TimestampNTZType`` columns are wall-clock
    times, refused unless ``assume_tz`` names the zone they were written in (a time
    that zone skips or repeats is a bad row); text timestamps need an offset, or
    ``assume_tz``.

    The result has the schema :func:`spark_schema` gives: the input columns, then
    ``cost_micros``, ``currency``, ``billed_seconds``, ``status``, ``reason``,
    ``prefix`` (``destination`` with ``destination=True``) and ``error``, or the ones
    ``columns`` names; the text columns are plain strings. Each row equals what
    ``rate_table`` gives for it. A bad row (a null required cell, an unknown
    disposition, negative seconds, ...) is never dropped and never fails the job: it
    gets status ``ERROR`` and the reason in ``error``. Columns that are unusable as a
    whole (a missing required column, naive timestamps without ``assume_tz``, float
    seconds) raise :class:`~cdrrating.ValidationError` here, before any job runs.

    ``batch_rows``: each task rates its Arrow batches joined up to this many rows a
    call.

    A DataFrame with :data:`PASSED_IN_JVM` (8) or more columns that rating does not read
    is rated through an Arrow UDF of the columns it reads, the others kept in the JVM;
    one with fewer is handed to Python whole through ``mapInArrow``, cheaper then.

    Nothing runs until an action (``count``, ``write``, ...) asks for the result.
    """
    if not isinstance(df, DataFrame):
        raise ValidationError("df", df, "a pyspark.sql.DataFrame")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValidationError("batch_rows", batch_rows, "an int >= 1 (rows rated in one call)")
    names = None if columns is None else list(columns)
    spark = df.sparkSession
    shipped = (
        plan_or_rater
        if isinstance(plan_or_rater, SparkPlan)
        else broadcast_plan(spark, plan_or_rater)
    )
    read = StructType([f for f in df.schema.fields if f.name in INPUT_COLUMNS])
    zone = spark.conf.get("spark.sql.session.timeZone")
    # The columns a task will read, rated on no rows: a problem with the columns as a
    # whole is refused here, by the very checks each batch meets, not in a failed job.
    rate_table(
        to_arrow_schema(read, timezone=zone).empty_table(),
        None,
        assume_tz=assume_tz,
        destination=destination,
        columns=names,
        strings="plain",
    )
    schema = spark_schema(df.schema, columns=names, destination=destination)
    options = _Options(assume_tz, destination, None if names is None else tuple(names), batch_rows)
    added = output_schema(pa.schema([]), columns=names, strings="plain", destination=destination)
    kept = [f.name for f in schema.fields[: len(schema.fields) - len(added)]]
    if not _ARROW_UDFS or sum(name not in INPUT_COLUMNS for name in kept) < PASSED_IN_JVM:
        rate = functools.partial(_rate_partition, shipped._shipment(), options)
        if not any(_awkward(name) for name in df.columns):
            return df.mapInArrow(rate, schema)
        # Spark's mapInArrow reads its input columns by name, parsed: a name with a
        # backtick or a dot fails there, even for batches returned unchanged. Such
        # columns cross under stand-in names (rating never reads them) and get their
        # own names back after.
        taken = set(df.columns) | set(added.names)
        stand_in: dict[str, str] = {}
        for k, name in enumerate(df.columns):
            if _awkward(name):
                alias = f"_cdrrating_column_{k}"
                while alias in taken:
                    alias += "_"
                taken.add(alias)
                stand_in[name] = alias
        renamed = df.select(*(_column(name).alias(stand_in.get(name, name)) for name in df.columns))
        crossing = StructType(
            [StructField(stand_in.get(f.name, f.name), f.dataType, f.nullable) for f in schema]
        )
        return renamed.mapInArrow(rate, crossing).select(
            *(_column(c.name).alias(f.name) for c, f in zip(crossing, schema, strict=True))
        )
    # Many columns rating does not read: they stay in the JVM, and an Arrow UDF rates
    # the read ones into one struct, its fields then made columns.
    # pyspark's stubs overload arrow_udf for the UDF kinds it names, not for a struct
    # result: typed as what it builds.
    make_udf: Callable[..., Any] = arrow_udf
    charge = make_udf(
        _charges(shipped._shipment(), options, tuple(read.names), added),
        StructType(schema.fields[len(kept) :]).simpleString(),
    )
    struct = "_charge"
    while struct in df.columns:
        struct += "_"
    return df.select(*map(_column, kept), charge(*map(_column, read.names)).alias(struct)).select(
        *map(_column, kept), *(sql.col(struct).getField(name).alias(name) for name in added.names)
    )


def _awkward(name: str) -> bool:
    """Whether Spark would parse ``name`` as more than a plain column name."""
    return "`" in name or "." in name


def _column(name: str) -> Column:
    """The column named ``name``, whatever characters the name holds."""
    return sql.col("`" + name.replace("`", "``") + "`")
