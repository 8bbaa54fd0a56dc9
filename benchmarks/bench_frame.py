"""Benchmark: rate_table (vectorised) against rate() (object path) on a 287k-prefix plan.

    python benchmarks/bench_frame.py                 # 2,000,000 CDRs
    python benchmarks/bench_frame.py -n 200000       # smaller
    python benchmarks/bench_frame.py --prefixes path/to/geocode_prefixes.csv.gz

The plan is built from the prefixes of libphonenumber's geocoding data with made-up
prices (a third 60/60, a third 1/1, a third 30/6; some with a connection fee). CDRs
dial a random prefix of the plan followed by random digits (12 digits in all), 80 %
answered with 1-600 s. The object path rates a sample with ``rate()`` on prebuilt CDR
objects (its best case: no parsing) and is extrapolated; the sample's charges are
compared with the table's rows, which must be equal. Arrow is limited to one thread.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from cdrrating import CDR, Rate, RatePlan, rate
from cdrrating.frame import _compiled, rate_table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PREFIXES = ROOT / ".." / "shared" / "data" / "e164-prefixes" / "geocode_prefixes.csv.gz"
DISPOSITIONS = ["ANSWERED", "NO ANSWER", "BUSY"]


def load_prefixes(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        next(handle)  # header: prefix,calling_code,...
        return [line.split(",", 1)[0] for line in handle if line.strip()]


def build_plan(prefixes: list[str]) -> RatePlan:
    rates = []
    for i, prefix in enumerate(prefixes):
        price = 1_000 + (int(prefix) * 7919 % 997) * 137  # made-up micros per minute
        shape = i % 3
        initial, increment = ((60, 60), (1, 1), (30, 6))[shape]
        fee = 10_000 if i % 11 == 0 else 0
        rates.append(
            Rate(
                prefix,
                price,
                initial_seconds=initial,
                increment_seconds=increment,
                connection_fee_micros=fee,
            )
        )
    return RatePlan(rates, currency="EUR", name="geocode")


def build_cdrs(prefixes: list[str], n: int, seed: int, plus: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    pool = np.array([int(p) for p in prefixes], dtype=np.uint64)
    lengths = np.array([len(p) for p in prefixes], dtype=np.int64)
    pick = rng.integers(0, len(pool), n)
    tail = 12 - lengths[pick]
    scale = np.uint64(10) ** tail.astype(np.uint64)
    numbers = pool[pick] * scale + (rng.integers(0, 2**62, n).astype(np.uint64) % scale)
    text = pa.array(numbers).cast(pa.string())
    if plus:
        text = pc.binary_join_element_wise("+", text, "")
    disposition = rng.choice(len(DISPOSITIONS), n, p=[0.8, 0.15, 0.05])
    billsec = np.where(disposition == 0, rng.integers(1, 601, n), 0)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    started = start + rng.integers(0, 31 * 86_400, n) * 1_000_000
    return pa.table(
        {
            "call_id": pa.array(np.arange(n)).cast(pa.string()),
            "started_at": pa.array(started, pa.timestamp("us", tz="UTC")),
            "destination_number": text,
            "direction": pa.array(["outbound"] * 1, pa.string()).take(np.zeros(n, np.int64)),
            "disposition": pa.array(DISPOSITIONS, pa.string()).take(disposition),
            "billsec": pa.array(billsec, pa.int64()),
        }
    )


def timed(func, repeat: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Median wall-clock and CPU seconds of ``repeat`` calls, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = func()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return statistics.median(walls), statistics.median(cpus), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cdrs", type=int, default=2_000_000, help="CDRs to rate")
    parser.add_argument("--sample", type=int, default=20_000, help="CDRs for the object path")
    parser.add_argument("--repeat", type=int, default=3, help="runs of rate_table (median)")
    parser.add_argument("--prefixes", type=Path, default=DEFAULT_PREFIXES)
    parser.add_argument("--plus", action="store_true", help="write numbers as +<digits>")
    parser.add_argument("--pandas", action="store_true", help="also time a pandas DataFrame")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    if not args.prefixes.exists():
        print(f"prefix file not found: {args.prefixes} (pass --prefixes)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    prefixes = load_prefixes(args.prefixes)
    plan = build_plan(prefixes)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    _compiled(plan)
    compile_s = time.perf_counter() - t0
    table = build_cdrs(prefixes, args.cdrs, args.seed, args.plus)

    vector_s, vector_cpu, out = timed(lambda: rate_table(table, plan), args.repeat)
    assert isinstance(out, pa.Table)
    pandas_s = pandas_cpu = None
    if args.pandas:
        frame = table.to_pandas()
        pandas_s, pandas_cpu, _ = timed(lambda: rate_table(frame, plan), args.repeat)

    sample = min(args.sample, args.cdrs)
    rows = table.slice(0, sample).to_pylist()
    cdrs = [CDR.from_mapping(row) for row in rows]
    w0, c0 = time.perf_counter(), time.process_time()
    charges = [rate(cdr, plan) for cdr in cdrs]
    object_cpu_per = (time.process_time() - c0) / sample
    object_per = (time.perf_counter() - w0) / sample
    got = out.slice(0, sample).select(["cost_micros", "billed_seconds", "status", "prefix"])
    for charge, row in zip(charges, got.to_pylist(), strict=True):
        expected = {
            "cost_micros": charge.cost_micros,
            "billed_seconds": charge.billed_seconds,
            "status": charge.status.value,
            "prefix": charge.prefix,
        }
        if row != expected:
            print(f"MISMATCH: {row} != {expected}", file=sys.stderr)
            return 1

    n = args.cdrs
    object_s, object_cpu = object_per * n, object_cpu_per * n
    print(
        f"plan: {len(plan):,} rates (built in {build:.1f} s, compiled for rate_table in "
        f"{compile_s:.2f} s); {n:,} CDRs; numbers {'+digits' if args.plus else 'digits'}"
    )
    print(f"{'path':<31} {'wall s':>7} {'CDRs/s':>11} {'CPU s':>7} {'CDRs/CPU-s':>11} {'ratio':>6}")

    def line(name: str, wall: float, cpu: float) -> None:
        print(
            f"{name:<31} {wall:>7.2f} {n / wall:>11,.0f} {cpu:>7.2f} {n / cpu:>11,.0f} "
            f"{object_s / wall:>6.1f}"
        )

    line("rate() per CDR (extrapolated)", object_s, object_cpu)
    line("rate_table(pyarrow.Table)", vector_s, vector_cpu)
    if pandas_s is not None and pandas_cpu is not None:
        line("rate_table(pandas.DataFrame)", pandas_s, pandas_cpu)
    print(f"sample of {sample:,}: rate_table rows equal rate() charges")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
