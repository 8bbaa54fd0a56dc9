"""rate_table and rate_batches on several threads, against one thread, on a 287k-prefix deck.

    python3 benchmarks/bench_threads.py                  # 300,000 CDRs, threads 1 2, best of 5
    python3 benchmarks/bench_threads.py --threads 1 2 4 --rows 1000000
    python3 benchmarks/bench_threads.py --quick          # 50,000 CDRs, 3 rounds

The plan and the CDRs are bench_frame.py's: the 287,454 prefixes of libphonenumber's
geocoding data with made-up prices, CDRs dialling a random prefix of it (``--numbers``
as there). The named baseline is **threads=1**: each row of the table is the wall-clock
time of one call (best of ``--repeat`` rounds, every variant once per round, so a busy
machine slows them alike) and its ratio to the same call with ``threads=1``; below 1.0
is faster. ``cpu/wall`` near the thread count means the threads did run at once. Rated:
a pyarrow Table with ``rate_table`` (dictionary and plain strings), a pandas DataFrame,
and the same table as a stream of ``--batch`` row batches through ``rate_batches``.
Before anything is timed, every threaded result must equal the
one-thread result (and the stream, unified, the table's).

The process is not pinned (threads need cores) and Arrow's own pool is set to one thread,
so the only parallelism is rate_table's. On a machine with fewer free cores than threads
the ratios say so. Also printed: the dictionary sizes of a 1,000-row call on the deck
(a dictionary holds only the values its rows use), and the share of a one-thread call's
CPU time that threads split (reading and rating the slices; the output columns are made
once, after), with the bound it sets on the speed-up (Amdahl). Nothing is asserted about
speed.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from _machine import load
from bench_frame import DEFAULT_PREFIXES, build_cdrs, load_prefixes, plain_rates
from cdrrating import RatePlan
from cdrrating.frame import rate_batches, rate_table
from cdrrating.frame._driver import _rate
from cdrrating.frame._options import options

TEXT = ("currency", "status", "reason", "prefix", "error")


def wall(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def stream(table: pa.Table, plan: RatePlan, batch: int, **options: Any) -> pa.Table:
    out = rate_batches(table.to_batches(max_chunksize=batch), plan, **options)
    return pa.Table.from_batches(list(out)).unify_dictionaries().combine_chunks()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000, help="CDRs per table")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    parser.add_argument("--batch", type=int, default=65_536, help="rows per stream batch")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best of)")
    parser.add_argument("--numbers", choices=["digits", "plus", "mixed"], default="digits")
    parser.add_argument("--quick", action="store_true", help="50k rows, 3 rounds")
    parser.add_argument("--prefixes", type=Path, default=DEFAULT_PREFIXES)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 50_000, 3
    if not args.prefixes.exists():
        print(f"prefix file not found: {args.prefixes} (pass --prefixes)", file=sys.stderr)
        return 2
    counts = sorted({1, *args.threads})

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    load_before = load()
    started = datetime.now(UTC)
    prefixes = load_prefixes(args.prefixes)
    plan = RatePlan(plain_rates(prefixes), currency="EUR", name="geocode")
    table = build_cdrs(prefixes, args.rows, args.seed, args.numbers)
    frame = table.to_pandas()

    small = rate_table(table.slice(0, 1_000), plan, destination=True)
    sizes = {name: len(small.column(name).chunk(0).dictionary) for name in (*TEXT, "destination")}

    variants: dict[str, Callable[[int], object]] = {
        "rate_table(pyarrow)": lambda n: rate_table(table, plan, threads=n),
        "rate_table(pyarrow, strings='plain')": lambda n: rate_table(
            table, plan, threads=n, strings="plain"
        ),
        "rate_table(pandas)": lambda n: rate_table(frame, plan, threads=n),
        f"rate_batches({args.batch:,}-row batches)": lambda n: stream(
            table, plan, args.batch, threads=n
        ),
    }
    # Correctness first: every thread count gives the one-thread result.
    for name, run in variants.items():
        one = run(1)
        for n in counts[1:]:
            got = run(n)
            if not got.equals(one):  # type: ignore[attr-defined]
                print(f"MISMATCH: {name} with threads={n} differs from threads=1", file=sys.stderr)
                return 1
    whole = rate_table(table, plan)
    if not stream(table, plan, args.batch).equals(whole):
        print("MISMATCH: the stream differs from rate_table on the whole", file=sys.stderr)
        return 1

    best: dict[tuple[str, int], tuple[float, float]] = {}
    for _ in range(args.repeat):
        for name, run in variants.items():
            for n in counts:
                timing = wall(functools.partial(run, n))
                key = (name, n)
                best[key] = min(best.get(key, timing), timing)
    load_after = load()

    # What threads can split, in CPU time (which a busy machine disturbs less than wall
    # time): reading and rating the slices; making the columns happens once, after.
    one_thread = options(
        errors="report",
        assume_tz=None,
        destination=False,
        columns=None,
        strings="dictionary",
        threads=1,
    )
    whole_cpu = min(wall(lambda: rate_table(table, plan))[1] for _ in range(args.repeat))
    split_cpu = min(wall(lambda: _rate(table, plan, one_thread))[1] for _ in range(args.repeat))

    print(f"cdrrating threads benchmark, {started:%Y-%m-%d %H:%M} UTC")
    print(f"python {sys.version.split()[0]}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs")
    print(f"load average: {load_before} before, {load_after} after")
    print(
        f"plan: {len(prefixes):,} prefixes; {args.rows:,} CDRs ({args.numbers}); "
        f"best of {args.repeat} rounds, wall-clock; Arrow's pool: 1 thread"
    )
    print("baseline: the same call with threads=1")
    print()
    header = (
        f"{'variant':<42} {'threads':>7} {'seconds':>9} {'CDRs/s':>12} {'vs 1':>6} {'cpu/wall':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in variants:
        for n in counts:
            seconds, cpu = best[(name, n)]
            ratio = seconds / best[(name, 1)][0]
            print(
                f"{name:<42} {n:>7} {seconds:>9.3f} {args.rows / seconds:>12,.0f} "
                f"{ratio:>6.2f} {cpu / seconds:>8.2f}"
            )
    print("(cpu/wall: CPU seconds of all threads per wall-clock second, of the best round)")
    print()
    share = split_cpu / whole_cpu
    bounds = ", ".join(f"{n} threads {1 / (1 - share + share / n):.2f}x" for n in counts[1:] or [2])
    print(
        f"split across threads: {share:.0%} of a one-thread call's CPU time "
        f"({split_cpu * 1000:.0f} of {whole_cpu * 1000:.0f} ms, pyarrow input); "
        f"the most threads can give if that part runs fully in parallel: {bounds}"
    )
    print()
    listed = ", ".join(f"{name} {size}" for name, size in sizes.items())
    print(f"dictionary entries of a 1,000-row call on the deck: {listed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
