"""What the library pieces under the example service buy, each beside a named baseline
measured in the same run (an SQLite file in a temporary directory unless --db):

    python3 examples/service/bench.py            # 2,000 completions, 50,000 CDRs exported
    python3 examples/service/bench.py --quick    # a tenth of each
    python3 examples/service/bench.py --db postgresql+psycopg://...  # another database
                                                 # (tables under a fresh prefix, dropped)

1. Rating at completion with the tenant's plan: ``PlanCache.rate`` (the plan built once)
   against the baseline of building the plan from the stored deck on every completion
   (``load_plan`` + ``rate``), on the bundled 343-rate deck; and what the check that
   lets several processes share their writes costs (``PlanCache`` with
   ``SQLPlanGenerations``: one primary-key query before each rating) against the
   cache without it.
2. Exporting every CDR of a query: peak Python memory of ``stream_records`` (one page
   and one chunk at a time) against the baseline of building the whole CSV first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from cdrrating import CDR, rate
from cdrrating.formats import read_rates
from cdrrating.plancache import PlanCache, PlanSettings
from cdrrating.repository import Query
from cdrrating.sql import SQLCDRRepository, SQLRateRepository, define_tables
from cdrrating.sqlplans import (
    SQLPlanGenerations,
    SQLPlanSettingsRepository,
    define_plan_generations_table,
    define_plan_settings_table,
)
from cdrrating.streaming import stream_records

DECK = Path(__file__).resolve().parents[1] / "rates.csv"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def calls(count: int) -> list[CDR]:
    numbers = ["442079460000", "4930123456", "12125550100", "33142685300", "61290000000"]
    return [
        CDR(call_id=f"c{i}", started_at=T0 + timedelta(seconds=i),
            destination_number=numbers[i % len(numbers)], billsec=30 + i % 300, tenant="acme")
        for i in range(count)
    ]  # fmt: skip


def per_second(work: int, seconds: float) -> str:
    return f"{work / seconds:,.0f}/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument("--db", help="an SQLAlchemy URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    completions, exported = (200, 5_000) if args.quick else (2_000, 50_000)
    one, five, _ = os.getloadavg()
    print(f"load {one:.2f} {five:.2f} (1/5 min), {os.cpu_count()} CPUs")
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    prefix = f"cdrrating_bench{uuid.uuid4().hex[:8]}_"
    tables = define_tables(prefix)
    settings_table = define_plan_settings_table(prefix, tables.metadata)
    generations_table = define_plan_generations_table(prefix, tables.metadata)
    cdrs = SQLCDRRepository(url, tables=tables, create=True)
    try:
        run(completions, exported, cdrs, settings_table=settings_table,
            generations_table=generations_table)  # fmt: skip
    finally:
        tables.metadata.drop_all(cdrs.engine)
        cdrs.engine.dispose()


def run(
    completions: int, exported: int, cdrs: SQLCDRRepository, *, settings_table: Any,
    generations_table: Any,
) -> None:  # fmt: skip
    database = cdrs.engine.dialect.name
    rates = SQLRateRepository(cdrs.engine, tables=cdrs.tables)
    rates.add_many(attrs.evolve(r, tenant="acme") for r in read_rates(DECK))
    settings = SQLPlanSettingsRepository(cdrs.engine, table=settings_table)
    plans = PlanCache(rates, settings)
    plans.put_settings("acme", PlanSettings(currency="EUR"))
    generations = SQLPlanGenerations(cdrs.engine, table=generations_table)
    shared = PlanCache(rates, settings, generations=generations)
    shared.put_settings("acme", PlanSettings(currency="EUR"))  # counted: the tenant has a row
    work = calls(completions)

    start = time.perf_counter()
    baseline = [rate(c, rates.load_plan("acme", currency="EUR")) for c in work]
    reload_s = time.perf_counter() - start
    plans.rate(work[0])  # the plan built before timing (it is built once either way)
    start = time.perf_counter()
    cached = [plans.rate(c) for c in work]
    cache_s = time.perf_counter() - start
    shared.rate(work[0])
    start = time.perf_counter()
    checked = [shared.rate(c) for c in work]
    shared_s = time.perf_counter() - start
    assert [c.cost_micros for c in cached] == [c.cost_micros for c in baseline]
    assert [c.cost_micros for c in checked] == [c.cost_micros for c in baseline]
    print(f"\nrating {completions:,} completions (343-rate deck, {database})")
    print(f"  {'baseline: load_plan + rate per call':44} {per_second(completions, reload_s):>12}")
    print(f"  {'PlanCache.rate':44} {per_second(completions, cache_s):>12}"
          f"   {reload_s / cache_s:,.0f}x the baseline")  # fmt: skip
    print(f"  {'PlanCache.rate + SQLPlanGenerations check':44}"
          f" {per_second(completions, shared_s):>12}"
          f"   {shared_s / cache_s:,.1f}x the time of PlanCache.rate;"
          f" {(shared_s - cache_s) / completions * 1e6:,.0f} us a call")  # fmt: skip

    cdrs.add_many(calls(exported))
    query = Query(tenant="acme", limit=1000)
    sum(len(chunk) for chunk in stream_records(cdrs, query))  # warm: statement caches
    tracemalloc.start()
    size = len("".join(stream_records(cdrs, attrs.evolve(query, limit=10_000))))
    buffered_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()  # the whole CSV is freed by now
    sum(len(chunk) for chunk in stream_records(cdrs, query))
    streamed_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    start = time.perf_counter()
    sum(len(chunk) for chunk in stream_records(cdrs, query))
    streamed_s = time.perf_counter() - start
    print(f"\nexporting {exported:,} CDRs as CSV ({size / 1e6:.1f} MB)")
    print(f"  {'baseline: the whole CSV built, then sent':44} {buffered_peak / 1e6:>9.1f} MB peak")
    print(f"  {'stream_records, 1,000-record pages':44} {streamed_peak / 1e6:>9.1f} MB peak"
          f"   {buffered_peak / streamed_peak:.1f}x less memory;"
          f" {per_second(exported, streamed_s)} without tracing")  # fmt: skip


if __name__ == "__main__":
    main()
