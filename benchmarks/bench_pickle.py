"""Shipping a plan to workers: pickle size, dump and load time, and the first rate_table
call after loading, against the naive way, on the 287k-prefix deck.

    python3 benchmarks/bench_pickle.py              # best of 3
    python3 benchmarks/bench_pickle.py --repeat 5 --schedules

The deck is ``bench_frame.py``'s: the 287,454 prefixes of libphonenumber's geocoding
data with made-up prices; ``--schedules`` adds its second deck (a peak and an
off-peak rate for every prefix, in Europe/Berlin).

The named baseline is **naive**: what a user does without help, pickling the list of
Rate objects (protocol 5) and, on the worker, rebuilding ``RatePlan(rates, ...)`` and
paying the table compile in the first ``rate_table`` call. Against it:

- **plan**: ``pickle.dumps(plan, protocol=5)`` of a freshly built plan (the dump
  computes the content hash and compiles the table form, once; both are kept);
- **plan, again**: the same plan pickled a second time (hash and table form known);
- **plan, out-of-band**: protocol 5 with ``buffer_callback`` (size: the stream plus
  the buffers).

Columns: the pickle's size; CPU seconds to dump, to load, and for the first 1-row
``rate_table`` call on the loaded plan; load + first call (what a worker pays before
its first batch), and its ratio to the baseline's. Each figure is the best of
``--repeat`` rounds on one pinned CPU. Also printed: a steady 1-row call, and what a
loaded plan pays on first use of the object engine (``rate()``: its Rate objects and
index are made then). Nothing is asserted; the table says which targets pass
(10 MiB, 0.5 s load).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import pyarrow as pa  # type: ignore[import-untyped]

from _machine import load, pin
from bench_frame import DEFAULT_PREFIXES, ZONE, load_prefixes, plain_rates, scheduled_rates
from cdrrating import CDR, RatePlan, rate
from cdrrating.frame import rate_table

T = TypeVar("T")
P = ParamSpec("P")
MIB = 2**20
SIZE_TARGET_MIB, LOAD_TARGET_S = 10.0, 0.5

ONE_ROW = pa.table(
    {
        "call_id": ["c1"],
        "started_at": pa.array([datetime(2026, 1, 5, 10, tzinfo=UTC)], pa.timestamp("us", "UTC")),
        "destination_number": ["4930123456"],
        "billsec": pa.array([61], pa.int64()),
        "disposition": ["ANSWERED"],
    }
)
ONE_CDR = CDR(
    call_id="c1",
    destination_number="4930123456",
    billsec=61,
    started_at=datetime(2026, 1, 5, 10, tzinfo=UTC),
)


def cpu(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[float, T]:
    gc.collect()
    start = time.process_time()
    out = fn(*args, **kwargs)
    return time.process_time() - start, out


def settings_of(plan: RatePlan) -> dict[str, Any]:
    return {
        "currency": plan.currency,
        "rounding": plan.rounding,
        "quantum_micros": plan.quantum_micros,
        "access_prefixes": plan.access_prefixes,
        "name": plan.name,
        "timezone": plan.timezone,
        "holidays": plan.holidays,
        "band_policy": plan.band_policy,
    }


def rebuild(data: bytes, settings: dict[str, Any]) -> RatePlan:
    """The naive worker side: unpickle the Rates and build the plan again."""
    return RatePlan(pickle.loads(data), **settings)


class Row:
    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0.0
        self.dump = self.load = self.first = float("inf")
        self.both = float("inf")

    def add(self, size: int, dump: float, load_s: float, first: float) -> None:
        self.size = size / MIB
        self.dump = min(self.dump, dump)
        self.load = min(self.load, load_s)
        self.first = min(self.first, first)
        self.both = min(self.both, load_s + first)


def naive(build: Callable[[], RatePlan], repeat: int) -> Row:
    row = Row("naive (baseline): list of Rates, rebuild")
    plan = build()
    settings = settings_of(plan)
    for _ in range(repeat):
        dump, data = cpu(pickle.dumps, list(plan.rates), protocol=5)
        load_s, loaded = cpu(rebuild, data, settings)
        first, _out = cpu(rate_table, ONE_ROW, loaded)
        row.add(len(data), dump, load_s, first)
        del loaded
    return row


def ours(build: Callable[[], RatePlan], repeat: int) -> tuple[list[Row], dict[str, float]]:
    fresh, again, oob = Row("plan"), Row("plan, again"), Row("plan, out-of-band")
    extra: dict[str, float] = {}
    for _ in range(repeat):
        plan = build()
        dump, data = cpu(pickle.dumps, plan, protocol=5)
        load_s, loaded = cpu(pickle.loads, data)
        first, _out = cpu(rate_table, ONE_ROW, loaded)
        fresh.add(len(data), dump, load_s, first)
        extra["steady"] = min(extra.get("steady", 1e9), cpu(rate_table, ONE_ROW, loaded)[0])
        extra["rate"] = min(extra.get("rate", 1e9), cpu(rate, ONE_CDR, loaded)[0])
        assert loaded == plan
        assert loaded.content_hash == plan.content_hash
        del loaded

        dump, data = cpu(pickle.dumps, plan, protocol=5)
        load_s, loaded = cpu(pickle.loads, data)
        first, _out = cpu(rate_table, ONE_ROW, loaded)
        again.add(len(data), dump, load_s, first)
        del loaded

        buffers: list[pickle.PickleBuffer] = []
        dump, data = cpu(pickle.dumps, plan, protocol=5, buffer_callback=buffers.append)
        size = len(data) + sum(b.raw().nbytes for b in buffers)
        received = [bytes(b.raw()) for b in buffers]
        load_s, loaded = cpu(pickle.loads, data, buffers=received)
        first, _out = cpu(rate_table, ONE_ROW, loaded)
        oob.add(size, dump, load_s, first)
        del loaded, plan
    return [fresh, again, oob], extra


def report(title: str, build: Callable[[], RatePlan], repeat: int) -> None:
    t_build, plan = cpu(build)
    print(f"\n{title}: {len(plan):,} rates (built in {t_build:.2f} s)")
    del plan
    base = naive(build, repeat)
    rows, extra = ours(build, repeat)
    header = (
        f"{'variant':44} {'MiB':>7} {'dump s':>8} {'load s':>8} {'1st table s':>12} "
        f"{'load+1st s':>11} {'vs naive':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in [base, *rows]:
        print(
            f"{row.name:44} {row.size:7.2f} {row.dump:8.3f} {row.load:8.3f} {row.first:12.4f} "
            f"{row.both:11.3f} {base.both / row.both:8.1f}x"
        )
    best = rows[0]
    size_ok = "pass" if best.size <= SIZE_TARGET_MIB else "FAIL"
    print(
        f"targets (set for the plain deck): size <= {SIZE_TARGET_MIB} MiB: {size_ok} "
        f"({best.size:.2f}); "
        f"load <= {LOAD_TARGET_S} s: "
        f"{'pass' if best.load <= LOAD_TARGET_S else 'FAIL'} ({best.load:.3f}); "
        f"first rate_table - steady 1-row call: {best.first - extra['steady']:+.4f} s "
        f"(steady {extra['steady']:.4f} s)"
    )
    print(
        f"first rate() on a loaded plan (makes its Rate objects and index): "
        f"{extra['rate']:.2f} s; size vs naive {base.size / best.size:.1f}x smaller"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--schedules", action="store_true", help="also the scheduled deck")
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(argv)
    pinned = pin(args.cpu)
    before = load()
    prefixes = load_prefixes(DEFAULT_PREFIXES)
    print(f"python {platform.python_version()} on {platform.machine()}, {pinned}")
    print(f"load before: {before}")
    report(
        "plain deck",
        lambda: RatePlan(plain_rates(prefixes), currency="EUR", name="geocode"),
        args.repeat,
    )
    if args.schedules:
        report(
            "scheduled deck",
            lambda: RatePlan(scheduled_rates(prefixes), currency="EUR", timezone=ZONE),
            args.repeat,
        )
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
