"""Rating a Parquet archive of CDRs on one core, on Dask and on Spark, on a 287k-prefix deck.

    python3 benchmarks/bench_scaleout.py                       # 10,000,000 CDRs
    python3 benchmarks/bench_scaleout.py --rows 2000000        # a smaller archive
    python3 benchmarks/bench_scaleout.py --engines base,dask   # skip Spark

The deck is benchmarks/bench_frame.py's: the 287,454 prefixes of libphonenumber's
geocoding data with made-up prices. The CDRs are bench_frame's too (numbers written as
``+<digits>`` unless ``--numbers`` says otherwise, 80 % answered, January 2026), with a
``row`` column, written once to Parquet files of 1,000,000 rows in a temporary directory
named after the row count and seed (reused by later runs; deterministic).

The named baseline is **single-process ``rate_batches``** over the Parquet files, the
process pinned to one CPU and Arrow on one thread: the per-core rate. Then:

- **Dask**: a ``distributed.LocalCluster`` of 2 worker processes (1 thread each) with
  the worker settings docs/scaleout.md recommends (``cdrrating.dask.WORKER_CONFIG``:
  glibc's own memory trimming, no sampling profiler, slower ticks), ``dd.read_parquet``
  and ``cdrrating.dask.rate_dask``;
- **Spark**: ``local[2]`` with its default Arrow batch size (10,000 rows),
  ``spark.read.parquet`` and ``cdrrating.spark.rate_spark``, written to Spark's ``noop``
  sink.

Each engine runs once cold (the plan shipped, the workers started) and ``--repeat`` times
warm (the plan on the workers; the fastest warm run gives the rate printed, for the
baseline as for the others: on a shared machine the fastest run is the one least slowed
by other work), then once more to check its results: the
totals and an order-independent hash of every row's (row, cost, billed seconds,
status, reason, prefix, error) must equal the baseline's. Also printed: how many times
the plan reached the workers, the fixed cost of one rating call (median of 1-row
calls) and what it costs per 10,000-row batch, Spark's Arrow hand-over (a
``mapInArrow`` that returns its batches unchanged, less reading alone) with a table row
for that identity pass (what Spark reaches rating nothing: its ceiling) and the CPU
seconds per million CDRs of Spark's JVM and of its Python workers reading alone, handing
over and rating (what that ceiling is on two free cores), and the CPU
seconds the Dask workers spent per million CDRs in their fastest warm run beside the
baseline's (what the clock cannot show on a busy machine: how far two free cores would
take Dask). Nothing is asserted about speed; the table says which targets pass.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.dataset as pads  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from _machine import load
from bench_frame import DEFAULT_PREFIXES, build_cdrs, load_prefixes, plain_rates
from cdrrating import RatePlan
from cdrrating.frame import rate_batches, rate_table

FILE_ROWS = 1_000_000
BATCH_ROWS = 131_072  # the baseline's Arrow batches, and what rate_spark joins Spark's to
SPARK_BATCH = 10_000  # Spark's default spark.sql.execution.arrow.maxRecordsPerBatch
STATUSES = ("RATED", "UNANSWERED", "UNRATED", "DIRECTION_NOT_RATED", "ERROR")
HASHED = ("row", "cost_micros", "billed_seconds", "status", "reason", "prefix", "error")
TARGETS = {"dask": 1.5, "spark": 1.0}
# The worker settings docs/scaleout.md recommends for rating: a worker's sampling
# profiler and its event-loop and monitor ticks cost CPU for every second a task runs
# (or the worker idles) and tell nothing a rating run needs.
LABELS = {"base": "rate_batches, 1 process", "dask": "Dask LocalCluster", "spark": "Spark local[2]"}


# -- the archive -------------------------------------------------------------------------------


def archive(prefixes: list[str], rows: int, seed: int, numbers: str, root: Path) -> Path:
    """The Parquet files of ``rows`` CDRs, written once and reused."""
    where = root / f"cdrrating-scaleout-{rows}-{seed}-{numbers}"
    done = where / "_DONE"
    if done.exists():
        return where
    where.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        table = build_cdrs(prefixes, n, seed * 1_000 + k, numbers)
        table = table.add_column(0, "row", pa.array(np.arange(start, start + n), pa.int64()))
        pq.write_table(table, where / f"part-{k:04d}.parquet", row_group_size=BATCH_ROWS)
    done.write_text("ok\n")
    return where


# -- results: totals and an order-independent hash of every row --------------------------------

_MIX = np.uint64(0x9E3779B97F4A7C15)


def _text_hashes(column: Any) -> Any:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    words = [
        int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
        for v in array.dictionary.to_pylist()
    ]
    table = np.array([*words, 0], np.uint64)
    codes = pc.fill_null(array.indices, len(words)).to_numpy(zero_copy_only=False)
    return table[codes]


def digest(table: Any) -> Any:
    """[rows, cost total, a count per status, hash]: sums, so parts add up in any order."""
    out = np.zeros(3 + len(STATUSES), np.uint64)
    n = table.num_rows
    if n == 0:
        return out
    h = np.zeros(n, np.uint64)
    for name in HASHED:
        column = table.column(name)
        if pa.types.is_integer(column.type):
            values = np.asarray(pc.fill_null(column, -1).to_numpy(), np.int64).view(np.uint64)
        else:
            values = _text_hashes(column)
        h = (h ^ values) * _MIX
        h ^= h >> np.uint64(29)
    out[0] = n
    out[1] = np.uint64(pc.sum(column_or_zero(table, "cost_micros")).as_py() or 0)
    status = table.column("status").cast(pa.string())
    for k, name in enumerate(STATUSES):
        out[2 + k] = pc.sum(pc.equal(status, name)).as_py() or 0
    out[-1] = h.sum(dtype=np.uint64)
    return out


def column_or_zero(table: Any, name: str) -> Any:
    return pc.fill_null(table.column(name), 0)


def describe(d: Any) -> str:
    counts = ", ".join(f"{s} {int(c):,}" for s, c in zip(STATUSES, d[2:-1], strict=True) if c)
    return f"{int(d[0]):,} rows, cost {int(d[1]):,} µ ({counts}), hash {int(d[-1]):016x}"


# -- timing ------------------------------------------------------------------------------------


def wall(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def fastest(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs: (seconds, that run's result)."""
    return min((wall(fn) for _ in range(repeat)), key=lambda timed: timed[0])


def fixed_cost(plan: RatePlan, sample: pa.Table, calls: int = 300) -> float:
    """Median wall seconds of a 1-row rating call (the cost every call pays)."""
    one = sample.slice(0, 1)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        rate_table(one, plan, strings="plain")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def pin(cpus: set[int]) -> None:
    """Every thread of this process on ``cpus``: ``sched_setaffinity(0, ...)`` moves the
    calling thread only, and Arrow's I/O thread, started at import, would read the next
    batch on another core while this one rates."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread ended since the listing
            os.sched_setaffinity(int(task.name), cpus)


# -- the engines -------------------------------------------------------------------------------


def baseline(plan: RatePlan, where: Path, repeat: int) -> dict[str, Any]:
    def batches() -> Iterator[pa.RecordBatch]:
        dataset = pads.dataset(where, format="parquet")
        reader = dataset.scanner(batch_size=BATCH_ROWS, use_threads=False).to_reader()
        return rate_batches(reader, plan, strings="plain")

    def run() -> int:
        return sum(batch.num_rows for batch in batches())

    def check() -> Any:
        return sum((digest(batch) for batch in batches()), np.zeros(3 + len(STATUSES), np.uint64))

    def cpu_timed() -> tuple[int, float]:
        cpu0 = time.process_time()
        rows = run()
        return rows, time.process_time() - cpu0

    cold, _ = wall(run)
    warm, (rows, cpu) = fastest(cpu_timed, repeat)
    return {
        "cold": cold,
        "warm": warm,
        "cpu": cpu,
        "rows": rows,
        "digest": check(),
        "loads": "in process",
    }


def _process_cpu() -> float:
    return time.process_time()


def dask_engine(plan: RatePlan, where: Path, repeat: int) -> dict[str, Any]:
    import dask  # noqa: PLC0415
    import dask.dataframe as dd  # noqa: PLC0415
    from distributed import Client, LocalCluster  # noqa: PLC0415

    from cdrrating.dask import WORKER_CONFIG, rate_dask, worker_plan_loads  # noqa: PLC0415

    zeros = np.zeros(3 + len(STATUSES), np.uint64)
    # distributed leaves these constructors unannotated: typed as what they build.
    new_cluster: Callable[..., LocalCluster] = LocalCluster
    new_client: Callable[..., Client] = Client

    def computed(frame: dd.DataFrame, fn: Callable[..., Any], **options: Any) -> Any:
        """``frame.map_partitions(fn, **options).compute()``, the pandas result."""
        mapped: Callable[..., Any] = frame.map_partitions  # dask leaves it unannotated
        return mapped(fn, **options).compute()

    def part_digest(part: Any) -> Any:
        import pandas as pd  # noqa: PLC0415

        table = pa.Table.from_pandas(part[list(HASHED)], preserve_index=False)
        return pd.DataFrame([digest(table).view(np.int64)])

    with (
        dask.config.set(WORKER_CONFIG),
        new_cluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        new_client(cluster) as client,
    ):
        ddf = dd.read_parquet(str(where))

        def run() -> int:
            out = rate_dask(ddf, plan, client=client, strings="plain")
            return int(sum(computed(out, len)))

        def workers_cpu() -> float:
            return float(sum(client.run(_process_cpu).values()))

        def cpu_timed() -> tuple[int, float]:
            cpu0 = workers_cpu()
            rows = run()
            return rows, workers_cpu() - cpu0

        cold, _ = wall(run)
        warm, (rows, cpu) = fastest(cpu_timed, repeat)
        out = rate_dask(ddf, plan, client=client, strings="plain")
        meta = dict.fromkeys(range(3 + len(STATUSES)), np.int64)
        parts = computed(out, part_digest, meta=meta)
        total = zeros + parts.to_numpy().view(np.uint64).sum(axis=0, dtype=np.uint64)
        loads = worker_plan_loads(client)
        read, _ = wall(lambda: int(sum(computed(ddf, len))))
    return {
        "cold": cold,
        "warm": warm,
        "rows": rows,
        "digest": total,
        "loads": f"{sum(loads.values())} ({len(loads)} workers)",
        "cpu": cpu,
        "read": read,
        "partitions": ddf.npartitions,
    }


def _spark_cpu(jvm: Any) -> tuple[float, float]:
    """CPU seconds so far of the Spark JVM, and of its Python workers: the pyspark daemon
    and the workers it forked, live ones by their own time, ended ones by the time the
    daemon reaped."""
    times = jvm.cpu_times()
    python = 0.0
    for child in jvm.children(recursive=True):
        with contextlib.suppress(Exception):  # a worker that ended since the listing
            t = child.cpu_times()
            python += t.user + t.system + t.children_user + t.children_system
    return times.user + times.system, python


def spark_engine(plan: RatePlan, where: Path, repeat: int) -> dict[str, Any]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import psutil  # type: ignore[import-untyped]  # noqa: PLC0415  # (comes with distributed)
    from pyspark.sql import SparkSession  # noqa: PLC0415

    from cdrrating.spark import broadcast_plan, rate_spark  # noqa: PLC0415

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("bench-scaleout")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    # The JVM is this process's java child (spark-submit execs it); its Python workers
    # are its descendants.
    jvm = next(c for c in psutil.Process().children() if c.name().startswith("java"))
    try:
        batch = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
        assert batch is not None
        assert int(batch) == SPARK_BATCH
        df = spark.read.parquet(str(where))

        def noop(frame: Any) -> None:
            frame.write.format("noop").mode("overwrite").save()

        def timed(make: Callable[[], Any]) -> dict[str, float]:
            """The fastest of ``repeat`` runs, and the least JVM and Python CPU of any."""
            runs = []
            for _ in range(repeat):
                jvm0, py0 = _spark_cpu(jvm)
                seconds, _ = wall(lambda: noop(make()))
                jvm1, py1 = _spark_cpu(jvm)
                runs.append((seconds, jvm1 - jvm0, py1 - py0))
            return {
                "wall": min(r[0] for r in runs),
                "jvm": min(r[1] for r in runs),
                "python": min(r[2] for r in runs),
            }

        def identity(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            yield from batches

        cold, _ = wall(lambda: noop(rate_spark(df, plan)))
        rating = timed(lambda: rate_spark(df, plan))
        shipped = broadcast_plan(spark, plan)
        calls = shipped.calls
        read = timed(lambda: df)
        handed = timed(lambda: df.mapInArrow(identity, df.schema))

        def digests(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            total = np.zeros(3 + len(STATUSES), np.uint64)
            for batch in batches:
                total += digest(batch)
            signed = total.view(np.int64)  # Spark has no unsigned type: the same 64 bits
            yield pa.RecordBatch.from_pydict({f"d{k}": [int(v)] for k, v in enumerate(signed)})

        schema = ", ".join(f"d{k} long" for k in range(3 + len(STATUSES)))
        rows = rate_spark(df, plan).mapInArrow(digests, schema).collect()
        total = np.zeros(3 + len(STATUSES), np.uint64)
        for row in rows:
            total += np.array(list(row), np.int64).view(np.uint64)
        return {
            "cold": cold,
            "warm": rating["wall"],
            "rows": int(total[0]),
            "digest": total,
            "loads": f"{shipped.loads} ({shipped.worker_processes} processes)",
            "calls": calls,
            "cpu_split": {"rating": rating, "read": read, "identity": handed},
            "partitions": df.rdd.getNumPartitions(),
        }
    finally:
        spark.stop()


# -- report ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="CDRs in the archive")
    parser.add_argument("--engines", default="base,dask,spark", help="which to run, in order")
    parser.add_argument("--numbers", choices=["digits", "plus", "mixed"], default="plus")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--prefixes", type=Path, default=DEFAULT_PREFIXES)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=3, help="warm runs per engine; the fastest is reported"
    )
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "base" not in engines:
        engines.insert(0, "base")  # every engine is checked against it
    if not args.prefixes.exists():
        print(f"prefix file not found: {args.prefixes} (pass --prefixes)", file=sys.stderr)
        return 2

    started = datetime.now(UTC)
    load_before = load()
    prefixes = load_prefixes(args.prefixes)
    built, plan = wall(lambda: RatePlan(plain_rates(prefixes), currency="EUR", name="geocode"))
    made, where = wall(lambda: archive(prefixes, args.rows, args.seed, args.numbers, args.dir))
    sample = pq.ParquetFile(next(where.glob("part-*.parquet"))).read_row_group(0)
    compiled, _ = wall(lambda: rate_table(sample.slice(0, 1), plan))
    pickled, payload = wall(lambda: pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
    loaded, _ = wall(lambda: pickle.loads(payload))

    # The baseline on one core: pinned, Arrow on one thread.
    allowed = os.sched_getaffinity(0)
    pin({max(allowed)})
    threads = pa.cpu_count()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        fixed = fixed_cost(plan, sample)
        results = {"base": baseline(plan, where, args.repeat)}
    finally:
        pin(allowed)
        pa.set_cpu_count(threads)
    for engine in engines:
        if engine == "dask":
            results["dask"] = dask_engine(plan, where, args.repeat)
        elif engine == "spark":
            results["spark"] = spark_engine(plan, where, args.repeat)
        elif engine != "base":
            print(f"unknown engine {engine!r}", file=sys.stderr)
            return 2

    base = results["base"]
    base_rate = base["rows"] / base["warm"]
    per_row = 1 / base_rate
    print(
        f"# bench_scaleout: {args.rows:,} CDRs, {len(plan):,}-prefix deck, "
        f"{started:%Y-%m-%d %H:%M} UTC"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load before {load_before}")
    print(
        f"deck built in {built:.1f} s; archive {where} ready in {made:.1f} s; "
        f"plan compiled for tables in {compiled:.1f} s; pickled {len(payload) / 2**20:.1f} MiB "
        f"in {pickled:.2f} s, loaded in {loaded:.2f} s"
    )
    print()
    print(
        f"| engine | cores | cold s | warm s (fastest of {args.repeat}) | warm CDR/s "
        "| × 1-core baseline | target "
        "| plan loads | equal to baseline |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rate = r["rows"] / r["warm"]
        ratio = rate / base_rate
        target = TARGETS.get(name)
        passed = target is not None and ratio >= target
        verdict = "baseline" if target is None else f">= {target}x {'PASS' if passed else 'FAIL'}"
        same = bool((r["digest"] == base["digest"]).all())
        label = LABELS[name]
        print(
            f"| {label} | {1 if name == 'base' else 2} | {r['cold']:.1f} | {r['warm']:.1f} "
            f"| {rate:,.0f} | {ratio:.2f} | {verdict} | {r['loads']} | {'yes' if same else 'NO'} |"
        )
    if "spark" in results:
        # What Spark reaches rating nothing: its ceiling on this machine at this load.
        ident = results["spark"]["cpu_split"]["identity"]
        rate = results["spark"]["rows"] / ident["wall"]
        print(
            f"| Spark local[2], identity mapInArrow (no rating: the ceiling) | 2 | - "
            f"| {ident['wall']:.1f} | {rate:,.0f} | {rate / base_rate:.2f} | - | - | - |"
        )
    print()
    print(f"baseline results: {describe(base['digest'])}")
    for name, r in results.items():
        if name != "base" and not (r["digest"] == base["digest"]).all():
            print(f"{name} DIFFERS: {describe(r['digest'])}")
    print()
    print(
        f"fixed cost of a rating call (median of 1-row calls, one core): {fixed * 1e3:.2f} ms; "
        f"a 10,000-row batch rates in {(fixed + SPARK_BATCH * per_row) * 1e3:.1f} ms, of which "
        f"the fixed cost is {fixed / (fixed + SPARK_BATCH * per_row):.0%}; at {BATCH_ROWS:,} rows, "
        f"{fixed / (fixed + BATCH_ROWS * per_row):.1%}"
    )
    if "spark" in results:
        s = results["spark"]
        split = s["cpu_split"]
        base_cpu = base["cpu"] / base["rows"] * 1e6

        def per_million(run: dict[str, float]) -> float:
            return float((run["jvm"] + run["python"]) / s["rows"] * 1e6)

        def shown(run: dict[str, float]) -> str:
            jvm, python = (run[k] / s["rows"] * 1e6 for k in ("jvm", "python"))
            return f"{jvm:.2f} JVM + {python:.2f} Python = {jvm + python:.2f}"

        handover = split["identity"]["wall"] - split["read"]["wall"]
        print(
            f"Spark: {s['partitions']} partitions; {s['calls']} rating calls in the cold and warm "
            f"runs (Spark's {SPARK_BATCH:,}-row Arrow batches joined up to {BATCH_ROWS:,} rows); "
            f"reading alone {split['read']['wall']:.1f} s; Arrow hand-over (JVM -> Python -> JVM, "
            f"input columns, identity mapInArrow less reading) {handover:.1f} s = "
            f"{handover / s['warm']:.0%} of the warm run"
        )
        print(
            f"Spark CPU-s per million CDRs (least of {args.repeat} runs; baseline {base_cpu:.2f}): "
            f"reading alone {shown(split['read'])}; identity mapInArrow "
            f"{shown(split['identity'])}; rate_spark {shown(split['rating'])}. On two free "
            f"cores, CPU-bound: an identity pass reaches at most "
            f"{2 * base_cpu / per_million(split['identity']):.2f}x the baseline, rate_spark "
            f"{2 * base_cpu / per_million(split['rating']):.2f}x"
        )
    if "dask" in results:
        d = results["dask"]
        base_cpu = base["cpu"] / base["rows"] * 1e6
        dask_cpu = d["cpu"] / d["rows"] * 1e6
        print(
            f"Dask: {d['partitions']} partitions; reading alone (len of each partition) "
            f"{d['read']:.1f} s; the workers' CPU in the fastest warm run: {dask_cpu:.2f} "
            f"CPU-s per million CDRs (baseline {base_cpu:.2f}), {d['cpu'] / d['warm']:.2f} "
            f"cores busy on average; on two free cores Dask would reach "
            f"{2 * base_cpu / dask_cpu:.2f}x the baseline"
        )
    print(
        f"core-seconds per million CDRs at the baseline rate: {1e6 * per_row:.2f} wall, "
        f"{1e6 * base['cpu'] / base['rows']:.2f} CPU (the process's CPU time: what a free core "
        "would take)"
    )
    print(f"load after {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
