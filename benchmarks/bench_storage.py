"""Storage speed: single upserts, bulk adds and keyset pagination at depth, each beside a
named baseline measured in the same run.

    python benchmarks/bench_storage.py                 # SQLite file + PostgreSQL if reachable
    python benchmarks/bench_storage.py --depth 100000  # a quicker run
    python benchmarks/bench_storage.py --no-postgres

Targets: SQLite bulk add >= 50,000 CDRs/s and >= 0.8x a bare ``sqlite3.executemany``
of the same rows into the same table and indexes; one ``upsert`` at least 2x what it
was before its statement was built once (405-435/s on SQLite, 130-157/s on PostgreSQL
on the reference machine), beside a bare driver upsert with one commit per row; the
page at depth 1,000,000 no slower than 2x the first page (baseline LIMIT/OFFSET).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _machine import load
from cdrrating import CDR
from cdrrating._storage.entities import (
    CDR_ENTITY,
)
from cdrrating._storage.paging import (
    compile_query,
)
from cdrrating._storage.rows import (
    CDR_COLUMNS,
    UNRATED_OUTCOME,
    cdr_values,
    stored_cdr,
)
from cdrrating.repository import (
    Query,
)
from cdrrating.sql import SQLCDRRepository, Tables, define_tables, make_engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def cdrs(start: int, count: int) -> Iterator[CDR]:
    for i in range(start, start + count):
        # Two calls per second: the listing order has ties for the keyset to break.
        yield CDR(
            call_id=f"{i:012d}-{uuid.UUID(int=i).hex[:8]}",
            started_at=T0 + timedelta(seconds=i // 2),
            destination_number=f"44{i % 10_000_000:010d}",
            caller_number=f"1555{i % 1_000_000:07d}",
            billsec=i % 600,
            tenant=f"tenant-{i % 20}",
            cost_micros=(i % 600) * 1_000,
            currency="EUR",
        )


def timed(fn: Callable[[], Any], repeat: int = 7) -> float:
    """Median wall time of ``repeat`` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run(
    label: str, url: str, *, depth: int, page: int, naive_rows: int, chunk: int
) -> list[tuple[str, str, str]]:
    engine = make_engine(url)
    tables: Tables = define_tables(f"cdrrating_b{uuid.uuid4().hex[:6]}_")
    tables.metadata.create_all(engine)
    repo = SQLCDRRepository(engine, tables=tables)
    rows: list[tuple[str, str, str]] = []
    try:
        total = depth + 10 * page
        add_seconds = add_cpu = 0.0
        for start in range(0, total, chunk):
            batch = list(cdrs(start, min(chunk, total - start)))
            began, began_cpu = time.perf_counter(), time.process_time()
            repo.add_many(batch)
            add_seconds += time.perf_counter() - began
            add_cpu += time.process_time() - began_cpu
        bulk = total / add_seconds

        naive_batch = list(cdrs(total, naive_rows))
        began = time.perf_counter()
        for record in naive_batch:
            repo.add(record)
        naive = naive_rows / (time.perf_counter() - began)
        # CPU time shows what contention for the machine's cores hides; for a server
        # database it leaves out the server's own work, so it is shown for SQLite only.
        if engine.dialect.name == "sqlite":
            rows.append((f"{label}: add CDRs per CPU-second", f"{total / add_cpu:,.0f}", ""))
        rows.append(
            (
                f"{label}: add CDRs/s ({total:,} rows)",
                f"{bulk:,.0f} (add_many)",
                f"{naive:,.0f} (add per row)",
            )
        )

        with engine.begin() as conn:
            # Fresh planner statistics, as a service's autovacuum would have them.
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"ANALYZE {tables.cdrs.name}")
            elif engine.dialect.name == "sqlite":
                conn.exec_driver_sql("ANALYZE")

        query = Query(limit=page)
        first = timed(lambda: repo.query(query))
        # A cursor at the given depth, minted the way the repository mints its own (so
        # the run does not have to walk 1,000,000 rows first to obtain it).
        t = tables.cdrs
        with engine.connect() as conn:
            anchor = conn.execute(
                sa.select(t.c.started_at_us, t.c.call_id, t.c.tenant_key)
                .order_by(t.c.started_at_us.desc(), t.c.call_id.desc(), t.c.tenant_key.desc())
                .offset(depth - 1)
                .limit(1)
            ).one()
        codec = repo._codec
        fingerprint = compile_query(CDR_ENTITY, query, codec).fingerprint
        cursor = codec.encode("n", (anchor[0], anchor[1], anchor[2]), fingerprint)
        deep_query = query.after(cursor)
        deep = timed(lambda: repo.query(deep_query))
        assert len(repo.query(deep_query)) == page

        offset_stmt = (
            sa.select(t)
            .order_by(t.c.started_at_us.desc(), t.c.call_id.desc())
            .limit(page + 1)
            .offset(depth)
        )

        # The baseline builds the same objects a page holds, so only the paging differs.
        def offset_page() -> None:
            with engine.connect() as conn:
                [stored_cdr(r._mapping) for r in conn.execute(offset_stmt)]

        first_offset_stmt = offset_stmt.offset(0)

        def offset_first() -> None:
            with engine.connect() as conn:
                [stored_cdr(r._mapping) for r in conn.execute(first_offset_stmt)]

        off_first = timed(offset_first, repeat=3)
        off_deep = timed(offset_page, repeat=3)
        rows.append(
            (
                f"{label}: first page of {page}",
                f"{first * 1e3:.2f} ms (keyset)",
                f"{off_first * 1e3:.2f} ms (OFFSET)",
            )
        )
        rows.append(
            (
                f"{label}: page at depth {depth:,}",
                f"{deep * 1e3:.2f} ms = {deep / first:.2f}x first",
                f"{off_deep * 1e3:.2f} ms = {off_deep / off_first:.1f}x first",
            )
        )
    finally:
        tables.metadata.drop_all(engine)
        engine.dispose()
    return rows


def single_and_bulk(label: str, url: str, *, singles: int, bulk: int) -> list[tuple[str, str, str]]:
    """One upsert at a time, and one add_many, each beside the bare driver doing the same
    work on the same table: the driver's own executemany (SQLite: sqlite3 with the
    repository's pragmas) and one INSERT ... ON CONFLICT and one commit per row."""
    engine = make_engine(url)
    # Each side writes into its own empty tables of the same definition.
    tables: Tables = define_tables(f"cdrrating_o{uuid.uuid4().hex[:6]}_")
    tables.metadata.create_all(engine)
    bare_tables: Tables = define_tables(f"cdrrating_p{uuid.uuid4().hex[:6]}_")
    bare_tables.metadata.create_all(engine)
    repo = SQLCDRRepository(engine, tables=tables)
    t = bare_tables.cdrs
    cols = ", ".join(CDR_COLUMNS)
    keep = ("call_id", "tenant_key", "created_at_us")
    sets = ", ".join(f"{c} = excluded.{c}" for c in CDR_COLUMNS if c not in keep)
    marks = ", ".join(["?" if engine.dialect.name == "sqlite" else "%s"] * len(CDR_COLUMNS))
    insert = f"INSERT INTO {t.name} ({cols}) VALUES ({marks})"
    upsert = f"{insert} ON CONFLICT (tenant_key, call_id) DO UPDATE SET {sets}"
    rows: list[tuple[str, str, str]] = []
    try:
        raw: Any
        if engine.dialect.name == "sqlite":
            raw = sqlite3.connect(engine.url.database or "", isolation_level=None)
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA cache_size=-65536")
            begin = "BEGIN IMMEDIATE"
        else:
            import psycopg  # noqa: PLC0415 - only when a PostgreSQL server is there

            raw = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            raw.autocommit = True
            begin = "BEGIN"

        def values(start: int, count: int) -> list[tuple[Any, ...]]:
            return [
                cdr_values(c, UNRATED_OUTCOME, False, created_us=1, updated_us=1)
                for c in cdrs(start, count)
            ]

        records = list(cdrs(0, singles))
        began = time.perf_counter()
        for record in records:
            repo.upsert(record)
        ours = singles / (time.perf_counter() - began)
        bare_rows = values(10**8, singles)
        cur = raw.cursor()
        began = time.perf_counter()
        for row in bare_rows:
            cur.execute(begin)
            cur.execute(upsert, row)
            cur.execute("COMMIT")
        bare = singles / (time.perf_counter() - began)
        rows.append(
            (
                f"{label}: upsert one CDR per call, /s",
                f"{ours:,.0f} = {ours / bare:.2f}x bare",
                f"{bare:,.0f} (bare driver upsert + commit)",
            )
        )
        batch = list(cdrs(2 * 10**8, bulk))
        began, began_cpu = time.perf_counter(), time.process_time()
        repo.add_many(batch)
        ours = bulk / (time.perf_counter() - began)
        ours_cpu = bulk / (time.process_time() - began_cpu)
        # The baseline is handed finished tuples: it does none of the checking.
        bare_rows = values(3 * 10**8, bulk)
        began, began_cpu = time.perf_counter(), time.process_time()
        cur.execute(begin)
        if engine.dialect.name == "sqlite":
            cur.executemany(insert, bare_rows)
        else:
            with cur.copy(f"COPY {t.name} ({cols}) FROM STDIN") as copy:
                for row in bare_rows:
                    copy.write_row(row)
        cur.execute("COMMIT")
        bare = bulk / (time.perf_counter() - began)
        bare_cpu = bulk / (time.process_time() - began_cpu)
        what = "executemany" if engine.dialect.name == "sqlite" else "COPY"
        rows.append(
            (
                f"{label}: add_many {bulk:,} CDRs, /s",
                f"{ours:,.0f} = {ours / bare:.2f}x bare",
                f"{bare:,.0f} (bare {what} of ready tuples)",
            )
        )
        if engine.dialect.name == "sqlite":
            # SQLite works in this process: CPU time is the figure that other load on
            # the machine does not blur.
            rows.append(
                (
                    f"{label}: add_many, CDRs per CPU-second",
                    f"{ours_cpu:,.0f} = {ours_cpu / bare_cpu:.2f}x bare",
                    f"{bare_cpu:,.0f} (bare executemany)",
                )
            )
        raw.close()
    finally:
        tables.metadata.drop_all(engine)
        bare_tables.metadata.drop_all(engine)
        engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depth", type=int, default=1_000_000, help="rows before the deep page")
    parser.add_argument("--page", type=int, default=100, help="page size (default 100)")
    parser.add_argument(
        "--naive-rows", type=int, default=5_000, help="rows for the row-by-row baseline"
    )
    parser.add_argument("--chunk", type=int, default=100_000, help="CDRs per add_many call")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("CDRRATING_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--singles", type=int, default=3_000, help="upserts one at a time")
    parser.add_argument("--bulk", type=int, default=200_000, help="CDRs in one add_many")
    args = parser.parse_args()

    load_before = load()
    results: list[tuple[str, str, str]] = []
    sizes = {
        "depth": args.depth,
        "page": args.page,
        "naive_rows": args.naive_rows,
        "chunk": args.chunk,
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        ops = {"singles": args.singles, "bulk": args.bulk}
        results += single_and_bulk("SQLite file", f"sqlite:///{Path(tmp) / 'ops.sqlite3'}", **ops)
        results += run("SQLite file", url, **sizes)
    if not args.no_postgres:
        try:
            probe = make_engine(args.postgres_url)
            with probe.connect():
                pass
            probe.dispose()
        except sa.exc.OperationalError as e:
            print(f"PostgreSQL skipped: {args.postgres_url} unreachable ({e.orig})")
        else:
            results += single_and_bulk("PostgreSQL", args.postgres_url, **ops)
            results += run("PostgreSQL", args.postgres_url, **sizes)

    widths = [
        max(len(r[i]) for r in [*results, ("measure", "cdrrating", "baseline")]) for i in range(3)
    ]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format("measure", "cdrrating", "baseline"))
    print(line.format(*("-" * w for w in widths)))
    for r in results:
        print(line.format(*r))
    # Each ratio compares two runs made a moment apart on this machine: read them by the
    # load (figures from a busy machine vary run to run).
    print(f"load average: {load_before} before, {load()} after")


if __name__ == "__main__":
    main()
