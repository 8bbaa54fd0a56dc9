"""Band-crossing calls: rate() against a naive per-step loop, in the same run.

    python benchmarks/bench_schedules.py [--repeat 5] [--calls 20000]

A plan in Europe/Berlin with four bands a day (night, morning, midday, afternoon), 1/1
increments. Times, on one core:

* one 10-hour call across the four bands (36,000 one-second steps): ``rate()`` against
  a naive loop that looks up the rate in force at every step's start and adds its price
  (the result is checked to be the same, micro for micro);
* ``rate()`` per second for ``--calls`` ordinary calls (1-600 s, random start times over
  a month) on the scheduled plan and on the same prices without schedules;
* ``rate_table`` per second on the same calls (a pyarrow Table) on the scheduled plan
  (its rows are checked to equal ``rate()``'s first), and on ``--calls`` calls that all
  cross a band edge (answered 1-599 s before one).

Each timing is the best of ``--repeat`` runs. Nothing here is asserted; it prints a table.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pyarrow as pa  # type: ignore[import-untyped]

from cdrrating import CDR, Rate, RatePlan, Schedule, rate
from cdrrating.frame import rate_table
from cdrrating.money import round_micros

BERLIN = ZoneInfo("Europe/Berlin")
BANDS = (
    ("00:00-07:00", 10_000),
    ("07:00-09:00", 60_000),
    ("09:00-13:00", 120_000),
    ("13:00-24:00", 40_000),
)


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def naive(plan: RatePlan, cdr: CDR) -> int:
    """Cost of a 1/1 call, one step at a time: the rate in force at each step's start."""
    answered = (cdr.answered_at or cdr.started_at).astimezone(UTC)
    total = 0
    for second in range(cdr.billsec):
        found = plan.lookup(cdr.destination_number, answered + timedelta(seconds=second))
        assert found is not None
        total += found.per_minute_micros
    return round_micros(Fraction(total, 60), mode=plan.rounding)


def as_table(cdrs: list[CDR]) -> pa.Table:
    """CDRs as the columns ``rate_table`` reads (instants in UTC)."""
    return pa.table(
        {
            "call_id": [c.call_id for c in cdrs],
            "started_at": pa.array(
                [c.started_at.astimezone(UTC) for c in cdrs], pa.timestamp("us", tz="UTC")
            ),
            "destination_number": [c.destination_number for c in cdrs],
            "billsec": pa.array([c.billsec for c in cdrs], pa.int64()),
        }
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)

    scheduled = RatePlan(
        [Rate("49", price, schedule=Schedule.parse(window)) for window, price in BANDS],
        currency="EUR",
        timezone="Europe/Berlin",
    )
    plain = RatePlan([Rate("49", 60_000)], currency="EUR")

    answered = datetime(2026, 3, 2, 5, 30, tzinfo=BERLIN)  # 05:30-15:30: four bands
    long_call = CDR(
        call_id="long",
        started_at=answered,
        answered_at=answered,
        destination_number="4930901820",
        billsec=36_000,
        duration=36_000,
    )
    fast_cost = rate(long_call, scheduled).cost_micros
    assert fast_cost == naive(scheduled, long_call), "the two methods disagree"
    bands = len(rate(long_call, scheduled).bands())
    t_fast = best_of(args.repeat, lambda: rate(long_call, scheduled))
    t_naive = best_of(min(args.repeat, 3), lambda: naive(scheduled, long_call))

    rng = random.Random(3)
    month = datetime(2026, 3, 1, tzinfo=UTC)
    cdrs = [
        CDR(
            call_id=f"c{i}",
            started_at=month + timedelta(seconds=rng.randrange(31 * 86_400)),
            destination_number="4930" + str(rng.randrange(10**7)),
            billsec=rng.randint(1, 600),
            duration=600,
        )
        for i in range(args.calls)
    ]

    def loop(plan: RatePlan) -> Callable[[], None]:
        def run() -> None:
            for cdr in cdrs:
                rate(cdr, plan)

        return run

    rate_scheduled = best_of(args.repeat, loop(scheduled))
    table = as_table(cdrs)
    expected = [rate(c, scheduled).cost_micros for c in cdrs]
    assert rate_table(table, scheduled)["cost_micros"].to_pylist() == expected, "rate_table"
    table_scheduled = best_of(args.repeat, lambda: rate_table(table, scheduled))
    edges = [datetime(2026, 3, d, h, tzinfo=BERLIN) for d in range(2, 28) for h in (7, 9, 13)]
    crossing_cdrs = []
    for i in range(args.calls):
        before = rng.randint(1, 599)  # seconds from the answer to the edge
        crossing_cdrs.append(
            CDR(
                call_id=f"x{i}",
                started_at=rng.choice(edges) - timedelta(seconds=before),
                destination_number="4930" + str(rng.randrange(10**7)),
                billsec=before + rng.randint(1, 600),
                duration=1_200,
            )
        )
    crossing_table = as_table(crossing_cdrs)
    expected = [rate(c, scheduled).cost_micros for c in crossing_cdrs]
    got = rate_table(crossing_table, scheduled)["cost_micros"].to_pylist()
    assert got == expected, "rate_table (crossing)"
    table_crossing = best_of(args.repeat, lambda: rate_table(crossing_table, scheduled))
    rate_plain = best_of(args.repeat, loop(plain))
    crossing = sum(len(rate(c, scheduled).bands()) > 1 for c in cdrs)

    print(f"cdrrating schedules benchmark: best of {args.repeat}, Python {sys.version.split()[0]}")
    print()
    print(f"{'measure':<58}{'value':>14}  {'vs naive':>9}")
    print("-" * 83)
    rows = [
        (f"10 h call, 36,000 1 s steps, {bands} bands: naive per-step loop", t_naive, "1.00x"),
        ("10 h call: rate() (bands counted with arithmetic)", t_fast, f"{t_naive / t_fast:,.0f}x"),
    ]
    for label, seconds, ratio in rows:
        print(f"{label:<58}{seconds * 1e3:>12.3f}ms  {ratio:>9}")
    for label, seconds in (
        (
            f"rate(), 1-600 s calls, scheduled plan ({crossing} of {len(cdrs)} cross)",
            rate_scheduled,
        ),
        ("rate(), the same calls, plan without schedules", rate_plain),
        ("rate_table, the same calls, scheduled plan", table_scheduled),
        ("rate_table, calls that all cross a band edge", table_crossing),
    ):
        print(f"{label:<58}{len(cdrs) / seconds:>12,.0f}/s")


if __name__ == "__main__":
    main()
