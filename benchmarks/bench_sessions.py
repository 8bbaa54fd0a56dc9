"""Charging-session listings: one list-API page on every backend, each request beside a
named baseline measured in the same run.

    python benchmarks/bench_sessions.py                  # 50,000 sessions, every backend
    python benchmarks/bench_sessions.py --rows 10000     # a quicker run
    python benchmarks/bench_sessions.py --no-postgres --no-mariadb

Stores ``--rows`` sessions (the contract suite's fleet: ties in every sort, three in
twenty ongoing, ``extra`` holding a nested value) with one ``add_many``, then times one
``query(limit=100, include_ongoing=True, ...)`` per request: a filter on an indexed
column (the baseline), a filter on a value inside the JSON document, a filter on an
``extra`` path, a sort by a JSON value, and sorts by ``endedAt`` (empty for ongoing
sessions) in both orders, with the page after a cursor. The ratio is against the
baseline on the same backend. PostgreSQL and MariaDB run when reachable (URLs from
``CDRRATING_TEST_POSTGRES_URL`` / ``CDRRATING_TEST_MYSQL_URL`` or the defaults below).
Each timing is the best of ``--repeat`` calls. Nothing here is asserted; it prints a table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _machine import load
from cdrrating.charging import ChargingSession
from cdrrating.memory import MemorySessionRepository
from cdrrating.repository import SessionRepository
from cdrrating.sql import SQLSessionRepository, define_tables, make_engine
from cdrrating.testing.contract import session

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"
PAGE = 100
BASELINE = "filter location.country=NL (indexed column)"
REQUESTS: dict[str, dict[str, Any]] = {
    BASELINE: {"filter": {"location.country": "NL"}},
    "filter consumed>=3000 (JSON value)": {"filter": {"consumed": {"$gte": 3000}}},
    "filter extra.tariff.kind=AD_HOC": {"filter": {"extra.tariff.kind": "AD_HOC"}},
    "sort consumed (JSON value)": {"sort": "consumed"},
    "sort endedAt asc (may be empty)": {"sort": "endedAt"},
    "sort endedAt desc (may be empty)": {"sort": "endedAt", "order": "desc"},
}


def fleet(rows: int) -> list[ChargingSession]:
    return [
        session(
            n % 20,
            id=f"s{n:07d}",
            extra={"tariff": {"kind": ("AD_HOC", "REGULAR")[n % 2]}, "n": n},
        )
        for n in range(rows)
    ]


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(
    name: str, repo: SessionRepository, sessions: list[ChargingSession], repeat: int
) -> list[tuple[str, str, str, str]]:
    start = time.perf_counter()
    repo.add_many(sessions)
    added = time.perf_counter() - start
    rows = [(name, f"add_many {len(sessions):,}", f"{added:.2f} s", "")]
    timings: dict[str, float] = {}
    for label, request in REQUESTS.items():

        def one(request: dict[str, Any] = request) -> object:
            return repo.query(limit=PAGE, include_ongoing=True, **request)

        timings[label] = best_of(repeat, one)
        if label.startswith("sort endedAt"):
            # The page after a cursor: the keyset condition over empty values is timed too.
            cursor = repo.query(limit=PAGE, include_ongoing=True, **request).next_cursor

            def after(request: dict[str, Any] = request, cursor: str | None = cursor) -> object:
                return repo.query(
                    limit=PAGE, include_ongoing=True, next_page_cursor=cursor, **request
                )

            timings[label + ", next page"] = best_of(repeat, after)
    base = timings[BASELINE]
    for label, seconds in timings.items():
        rows.append((name, label, f"{seconds * 1000:.1f} ms", f"x{seconds / base:.1f}"))
    return rows


def reachable(url: str) -> bool:
    try:
        engine = make_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError as e:
        print(f"skipped: {url} unreachable ({e.orig})")
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000, help="sessions stored")
    parser.add_argument("--repeat", type=int, default=5, help="calls per timing (best kept)")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("CDRRATING_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument(
        "--mariadb-url", default=os.environ.get("CDRRATING_TEST_MYSQL_URL", DEFAULT_MARIADB)
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-mariadb", action="store_true")
    args = parser.parse_args()

    load_before = load()
    sessions = fleet(args.rows)
    results = measure("memory", MemorySessionRepository(), sessions, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"SQLite file": f"sqlite:///{Path(tmp) / 'sessions.sqlite3'}"}
        if not args.no_postgres and reachable(args.postgres_url):
            urls["PostgreSQL"] = args.postgres_url
        if not args.no_mariadb and reachable(args.mariadb_url):
            urls["MariaDB"] = args.mariadb_url
        for name, url in urls.items():
            # Tables of their own: the benchmark never touches the library's default ones.
            tables = define_tables("bench_")
            repo = SQLSessionRepository(url, tables=tables, create=True)
            try:
                results += measure(name, repo, sessions, args.repeat)
            finally:
                tables.metadata.drop_all(repo.engine)
                repo.engine.dispose()

    header = ("backend", "measure", "time", "ratio")
    widths = [max(len(r[i]) for r in [*results, header]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"one page (limit={PAGE}) of {args.rows:,} sessions, best of {args.repeat};")
    print(f"ratio: against the baseline '{BASELINE}' on the same backend")
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for r in results:
        print(line.format(*r))
    # Ratios compare runs made a moment apart on this machine: read them by the load.
    print(f"load average: {load_before} before, {load()} after")


if __name__ == "__main__":
    main()
