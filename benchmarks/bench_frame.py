"""Table rating speed against a numpy floor, in one run on one core, on a 287k-prefix deck.

    python3 benchmarks/bench_frame.py                   # 300,000 CDRs, best of 5
    python3 benchmarks/bench_frame.py --quick           # under a minute
    python3 benchmarks/bench_frame.py --rows 1000000 --numbers mixed

The plan is built from the 287,454 prefixes of libphonenumber's geocoding data with
made-up prices (a third 60/60, a third 1/1, a third 30/6; every 11th with a connection
fee). CDRs dial a random prefix of the plan followed by random digits (12 digits in
all), 80 % answered with 1-600 s, started over January 2026. ``--numbers plus`` writes
them as ``+<digits>``; ``mixed`` adds ``00`` access prefixes, spaces, brackets and
dashes, and 2 % garbage.

The named baseline is **the floor** (``benchmarks/_floor.py``): the least work the job
needs, in numpy alone: normalising and validating the numbers, the longest-prefix lookup
and the integer increment cost. It has three lookups (a ``searchsorted`` per prefix
length, a dense table of the first digits, one search over flattened intervals); the
fastest in this run is the floor. Before anything is timed, each variant's results must
equal ``rate_table``'s row for row (cost, billed seconds, status, reason, prefix), and a
sample of ``rate_table``'s rows must equal ``rate()``'s charges.

Timed, on one CPU (the process is pinned; Arrow uses one thread), in rounds (each
measure once per round, best of ``--repeat`` rounds, CPU seconds): the floor variants;
``rate_table`` on a pyarrow Table and on a pandas DataFrame (built before timing); the
same deck with a peak and an off-peak rate for every prefix (``Mon-Fri 08:00-18:00``
at priority 1, always at priority 0, plan in Europe/Berlin) through ``rate_table``
(printed as "refused: ..." where ``rate_table`` refuses such plans); ``rate()`` per CDR
on a sample of prebuilt CDR objects. Then two fixed costs: compiling a plan for tables
(the first 1-row ``rate_table`` call on a fresh plan minus a steady 1-row call, against
the plan's build time) and the fixed overhead of a 1-row call (median of ``--calls``).
Nothing is asserted about speed; the table says which targets pass.
"""

from __future__ import annotations

import argparse
import functools
import gc
import gzip
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

import _floor
from _machine import load, pin
from cdrrating import CDR, Rate, RatePlan, Schedule, rate
from cdrrating.frame import rate_table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PREFIXES = ROOT.parent / "shared" / "data" / "e164-prefixes" / "geocode_prefixes.csv.gz"
DISPOSITIONS = ["ANSWERED", "NO ANSWER", "BUSY"]
PEAK = "Mon-Fri 08:00-18:00"
ZONE = "Europe/Berlin"
RESULT_COLUMNS = ["cost_micros", "billed_seconds", "status", "reason", "prefix"]

# Targets of the "one truth" work, as (ratio wanted, what it is measured against).
FLOOR_PLAIN, FLOOR_SCHEDULES, ABSOLUTE, OVER_RATE = 0.8, 0.5, 2_000_000, 10.0
COMPILE_VS_BUILD, FIXED_OVERHEAD_S = 0.5, 0.001


# -- the deck and the CDRs --------------------------------------------------------------------


def load_prefixes(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        next(handle)  # header: prefix,calling_code,...
        return [line.split(",", 1)[0] for line in handle if line.strip()]


def shape(i: int, prefix: str) -> tuple[int, int, int, int]:
    """Made-up price, initial and increment seconds and connection fee of prefix i."""
    price = 1_000 + (int(prefix) * 7919 % 997) * 137
    initial, increment = ((60, 60), (1, 1), (30, 6))[i % 3]
    return price, initial, increment, 10_000 if i % 11 == 0 else 0


def plain_rates(prefixes: list[str]) -> list[Rate]:
    rates = []
    for i, prefix in enumerate(prefixes):
        price, initial, increment, fee = shape(i, prefix)
        rates.append(
            Rate(
                prefix,
                price,
                initial_seconds=initial,
                increment_seconds=increment,
                connection_fee_micros=fee,
            )
        )
    return rates


def scheduled_rates(prefixes: list[str]) -> list[Rate]:
    """A peak rate (Mon-Fri by day, priority 1) and an always rate under it, per prefix."""
    peak = Schedule.parse(PEAK)
    rates = []
    for i, prefix in enumerate(prefixes):
        price, initial, increment, fee = shape(i, prefix)
        for per_minute, schedule, priority in ((price * 2, peak, 1), (price, None, 0)):
            rates.append(
                Rate(
                    prefix,
                    per_minute,
                    initial_seconds=initial,
                    increment_seconds=increment,
                    connection_fee_micros=fee,
                    schedule=schedule,
                    priority=priority,
                )
            )
    return rates


def build_cdrs(prefixes: list[str], n: int, seed: int, numbers: str) -> pa.Table:
    rng = np.random.default_rng(seed)
    pool = np.array([int(p) for p in prefixes], dtype=np.uint64)
    lengths = np.array([len(p) for p in prefixes], dtype=np.int64)
    pick = rng.integers(0, len(pool), n)
    scale = np.uint64(10) ** (12 - lengths[pick]).astype(np.uint64)
    digits = pool[pick] * scale + (rng.integers(0, 2**62, n).astype(np.uint64) % scale)
    text = pa.array(digits).cast(pa.string())
    if numbers == "plus":
        text = pc.binary_join_element_wise("+", text, "")
    elif numbers == "mixed":
        form = rng.choice(5, n, p=[0.6, 0.15, 0.1, 0.13, 0.02])
        spaced = pc.binary_join_element_wise(
            "+",
            pc.utf8_slice_codeunits(text, 0, 2),
            " (",
            pc.utf8_slice_codeunits(text, 2, 5),
            ") ",
            pc.utf8_slice_codeunits(text, 5, 8),
            "-",
            pc.utf8_slice_codeunits(text, 8),
            "",
        )
        forms = [
            text,
            pc.binary_join_element_wise("+", text, ""),
            pc.binary_join_element_wise("00", text, ""),
            spaced,
            pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 4), "x", "1", ""),
        ]
        text = pc.choose(pa.array(form, pa.int8()), *forms)
    disposition = rng.choice(len(DISPOSITIONS), n, p=[0.8, 0.15, 0.05])
    billsec = np.where(disposition == 0, rng.integers(1, 601, n), 0)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    started = start + rng.integers(0, 31 * 86_400, n) * 1_000_000
    return pa.table(
        {
            "call_id": pa.array(np.arange(n)).cast(pa.string()),
            "started_at": pa.array(started, pa.timestamp("us", tz="UTC")),
            "destination_number": text,
            "direction": pa.array(["outbound"], pa.string()).take(np.zeros(n, np.int64)),
            "disposition": pa.array(DISPOSITIONS, pa.string()).take(disposition),
            "billsec": pa.array(billsec, pa.int64()),
        }
    )


# -- checks ------------------------------------------------------------------------------------


Row = tuple[Any, ...]
T = TypeVar("T")


def table_rows(out: Any) -> list[Row]:
    """rate_table's result columns as (cost, billed, status, reason, prefix) tuples."""
    if isinstance(out, pd.DataFrame):
        out = pa.Table.from_pandas(out[RESULT_COLUMNS], preserve_index=False)
    columns = [out.column(name).to_pylist() for name in RESULT_COLUMNS]
    return list(zip(*columns, strict=True))


def charge_rows(cdrs: list[CDR], plan: RatePlan) -> list[Row]:
    rows = []
    for cdr in cdrs:
        charge = rate(cdr, plan)
        reason = None if charge.reason is None else str(charge.reason)
        rows.append(
            (charge.cost_micros, charge.billed_seconds, str(charge.status), reason, charge.prefix)
        )
    return rows


def first_difference(name: str, got: list[Row], expected: list[Row]) -> str | None:
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        if a != b:
            return f"{name}: row {i}: {a} != {b}"
    return None


# -- timing ------------------------------------------------------------------------------------


def cpu_time(fn: Callable[[], T]) -> tuple[float, T]:
    """CPU seconds of one call, and its result."""
    c0 = time.process_time()
    result = fn()
    return time.process_time() - c0, result


def once(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def rounds(repeat: int, fns: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """Best wall and best CPU seconds of each function, run in turn within each round, so
    a busy minute of the machine falls on all of them."""
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            wall, cpu = once(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: (min(walls[name]), min(cpus[name])) for name in fns}


def one_row_calls(table: pa.Table, plan: RatePlan, calls: int) -> float:
    """Median CPU seconds of a 1-row rate_table call."""
    times = []
    for _ in range(calls):
        c0 = time.process_time()
        rate_table(table, plan)
        times.append(time.process_time() - c0)
    return statistics.median(times)


def try_rate_table(table: Any, plan: RatePlan) -> tuple[Any, str | None]:
    """rate_table's result, or None and why it refused the plan."""
    try:
        return rate_table(table, plan), None
    except Exception as exc:  # a refusal today; whatever type it takes after the rewrite
        return None, f"{type(exc).__name__}: {exc}"


# -- report ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000, help="CDRs per table")
    parser.add_argument("--sample", type=int, default=50_000, help="CDRs for rate()")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best of)")
    parser.add_argument("--calls", type=int, default=300, help="1-row calls (median)")
    parser.add_argument("--numbers", choices=["digits", "plus", "mixed"], default="digits")
    parser.add_argument("--quick", action="store_true", help="50k rows, 3 rounds: < 1 min")
    parser.add_argument("--no-schedules", action="store_true", help="skip the schedules plan")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: last)")
    parser.add_argument("--prefixes", type=Path, default=DEFAULT_PREFIXES)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.sample, args.repeat, args.calls = 50_000, 10_000, 3, 100
    if not args.prefixes.exists():
        print(f"prefix file not found: {args.prefixes} (pass --prefixes)", file=sys.stderr)
        return 2

    pinned = pin(args.cpu)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    load_before = load()
    started = datetime.now(UTC)

    # Warm the process up (imports, Arrow kernels) on a tiny plan, so that the first
    # call on the big plan below costs only what that plan needs.
    tiny = build_cdrs(["44"], 10, 0, "digits")
    rate_table(tiny, RatePlan([Rate("44", 1_000)], currency="EUR"))

    prefixes = load_prefixes(args.prefixes)
    t_rates, rates = cpu_time(lambda: plain_rates(prefixes))
    t_plan, plan = cpu_time(lambda: RatePlan(rates, currency="EUR", name="geocode"))
    build_s = t_rates + t_plan

    table = build_cdrs(prefixes, args.rows, args.seed, args.numbers)
    one = pa.Table.from_pylist(table.slice(0, 1).to_pylist(), schema=table.schema)
    first_s, _ = cpu_time(lambda: rate_table(one, plan))
    overhead_s = one_row_calls(one, plan, args.calls)
    compile_s = first_s - overhead_s

    # -- correctness first: floor == rate_table == rate() -----------------------------------
    deck_s, deck = cpu_time(lambda: _floor.plain_deck(plan))
    out = rate_table(table, plan)
    expected = table_rows(out)
    problems = []
    for how in _floor.LOOKUPS:
        got = _floor.rows(deck, _floor.rate(deck, table, how))
        problems.append(first_difference(f"floor ({how}) vs rate_table", got, expected))
    frame = table.to_pandas()
    problems.append(
        first_difference(
            "rate_table(pandas) vs (pyarrow)", table_rows(rate_table(frame, plan)), expected
        )
    )
    sample = min(args.sample, args.rows)
    cdrs = [CDR.from_mapping(row) for row in table.slice(0, sample).to_pylist()]
    problems.append(
        first_difference("rate_table vs rate()", expected[:sample], charge_rows(cdrs, plan))
    )

    refused: str | None = "skipped (--no-schedules)"
    scheduled: RatePlan | None = None
    s_build = s_first = 0.0
    if not args.no_schedules:
        s_build, s_plan = cpu_time(
            lambda: RatePlan(scheduled_rates(prefixes), currency="EUR", timezone=ZONE)
        )
        s_first, (_, refused) = cpu_time(lambda: try_rate_table(one, s_plan))
        if refused is None:
            scheduled = s_plan
            problems.append(
                first_difference(
                    "rate_table (schedules) vs rate()",
                    table_rows(rate_table(table, s_plan))[:sample],
                    charge_rows(cdrs, s_plan),
                )
            )
    mismatches = [p for p in problems if p is not None]
    if mismatches:
        for problem in mismatches:
            print(f"MISMATCH: {problem}", file=sys.stderr)
        return 1

    # -- timing, in rounds ----------------------------------------------------------------
    fns: dict[str, Callable[[], object]] = {
        f"floor:{how}": functools.partial(_floor.rate, deck, table, how) for how in _floor.LOOKUPS
    }
    fns["pyarrow"] = lambda: rate_table(table, plan)
    fns["pandas"] = lambda: rate_table(frame, plan)
    if scheduled is not None:
        fns["schedules"] = lambda: rate_table(table, scheduled)
    timed = rounds(args.repeat, fns)

    def rate_loop() -> None:
        for cdr in cdrs:
            rate(cdr, plan)

    rate_wall, rate_cpu = rounds(max(1, args.repeat // 2), {"rate": rate_loop})["rate"]
    load_after = load()

    n = args.rows
    floor_name = min(_floor.LOOKUPS, key=lambda how: timed[f"floor:{how}"][1])
    floor_cpu = timed[f"floor:{floor_name}"][1]
    floor_rate = n / floor_cpu
    rate_rate = sample / rate_cpu

    print(f"cdrrating table-rating benchmark, {started:%Y-%m-%d %H:%M} UTC")
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, pyarrow {pa.__version__}, "
        f"pandas {pd.__version__}; {platform.machine()}; {pinned}; Arrow threads 1"
    )
    print(f"load average: {load_before} before, {load_after} after")
    print(
        f"deck: {len(prefixes):,} prefixes; plan built in {build_s:.2f} s "
        f"(Rate objects {t_rates:.2f} s + RatePlan {t_plan:.2f} s); floor's deck arrays "
        f"{deck_s:.2f} s (not timed below)"
    )
    print(
        f"CDRs: {n:,} per table, numbers '{args.numbers}', 80 % answered; rate() on "
        f"{sample:,} prebuilt CDRs; best of {args.repeat} rounds, CPU seconds on one core"
    )
    print(
        f"checked before timing: each floor variant == rate_table (pyarrow) row for row; "
        f"pandas == pyarrow; first {sample:,} rows == rate()"
    )
    print(f"baseline: the floor = benchmarks/_floor.py, lookup '{floor_name}' (fastest here)")
    print()
    header = f"{'measure':<44} {'wall s':>7} {'CPU s':>7} {'rows/CPU-s':>12} {'vs floor':>9}  "
    header += f"{'target':<24} {'result'}"
    print(header)
    print("-" * len(header))

    def line(
        label: str, wall: float, cpu: float, rows: int, *, target: str = "", ok: str = ""
    ) -> None:
        speed = rows / cpu
        print(
            f"{label:<44} {wall:>7.3f} {cpu:>7.3f} {speed:>12,.0f} {speed / floor_rate:>8.2f}x  "
            f"{target:<24} {ok}"
        )

    labels = {
        "per-length": "floor: searchsorted per prefix length",
        "dense": f"floor: dense {_floor.DENSE_DIGITS} digits + per length",
        "intervals": "floor: one search, flattened intervals",
    }
    for how in _floor.LOOKUPS:
        wall, cpu = timed[f"floor:{how}"]
        line(labels[how] + (" *" if how == floor_name else ""), wall, cpu, n)
    wall, cpu = timed["pyarrow"]
    table_rate = n / cpu
    line(
        "rate_table(pyarrow.Table), plain plan",
        wall,
        cpu,
        n,
        target=f">= {FLOOR_PLAIN:.1f}x floor",
        ok=verdict(table_rate >= FLOOR_PLAIN * floor_rate),
    )
    print(
        f"{'  same, absolute':<44} {'':>7} {'':>7} {table_rate:>12,.0f} {'':>9}  "
        f"{f'>= {ABSOLUTE:,} rows/s':<24} {verdict(table_rate >= ABSOLUTE)}"
    )
    print(
        f"{'  same, against rate()':<44} {'':>7} {'':>7} {table_rate / rate_rate:>11.1f}x {'':>9}  "
        f"{f'>= {OVER_RATE:.0f}x rate()':<24} {verdict(table_rate >= OVER_RATE * rate_rate)}"
    )
    wall, cpu = timed["pandas"]
    line("rate_table(pandas.DataFrame), plain plan", wall, cpu, n, target="(informational)")
    label = "rate_table(pyarrow.Table), schedules"
    target = f">= {FLOOR_SCHEDULES:.1f}x floor"
    if "schedules" in timed:
        wall, cpu = timed["schedules"]
        ok = verdict(n / cpu >= FLOOR_SCHEDULES * floor_rate)
        line(label, wall, cpu, n, target=target, ok=ok)
    else:
        what, ok = ("skipped", "-") if args.no_schedules else ("refused", "FAIL")
        print(f"{label:<44} {what:>7} {'':>7} {'':>12} {'':>9}  {target:<24} {ok}")
    line("rate() per CDR (prebuilt CDR objects)", rate_wall, rate_cpu, sample)
    if refused is not None:
        print(f"  schedules plan: {'' if args.no_schedules else 'refused: '}{refused}")
    print()

    header = f"{'fixed cost':<52} {'value':>10} {'ratio':>22}  {'target':<20} {'result'}"
    print(header)
    print("-" * len(header))
    ratio = compile_s / build_s
    print(
        f"{'compile for tables (1st 1-row call - steady call)':<52} {compile_s:>9.2f}s "
        f"{f'{ratio:.2f}x plan build':>22}  {f'<= {COMPILE_VS_BUILD}x plan build':<20} "
        f"{verdict(ratio <= COMPILE_VS_BUILD)}"
    )
    print(f"{'  plan build (Rate objects + RatePlan)':<52} {build_s:>9.2f}s")
    print(
        f"{f'rate_table fixed overhead, 1 row (median of {args.calls})':<52} "
        f"{overhead_s * 1000:>8.2f}ms {f'{1 / overhead_s:,.0f} calls/s':>22}  "
        f"{f'<= {FIXED_OVERHEAD_S * 1000:.0f} ms':<20} {verdict(overhead_s <= FIXED_OVERHEAD_S)}"
    )
    if not args.no_schedules:
        print(f"{'schedules plan build (2 rates per prefix)':<52} {s_build:>9.2f}s")
        if scheduled is not None:
            s_compile = s_first - overhead_s
            print(
                f"{'  compile for tables (1st 1-row call - steady call)':<52} {s_compile:>9.2f}s "
                f"{f'{s_compile / s_build:.2f}x its build':>22}"
            )
    print()
    print("* the floor. Ratios are rows per CPU-second over the floor's, measured in this run;")
    print("  builds, compiles and 1-row calls are CPU seconds too (the machine may be shared).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
