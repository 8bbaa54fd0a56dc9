"""The example service over real HTTP: uvicorn started by the test on 127.0.0.1 (an
ephemeral port), a small bounded load of concurrent start rows and completions of the
same calls from several client threads, then the stored totals checked exactly; on SQLite,
and on PostgreSQL when ``CDRRATING_TEST_POSTGRES_URL`` is set.

Skipped with a reason when FastAPI, uvicorn or httpx is missing; a failure when
``CI=true``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    for _module in ("fastapi", "uvicorn", "httpx", "sqlalchemy"):
        pytest.importorskip(_module, reason=f"the service over HTTP needs {_module}")

import httpx

from cdrrating.repository import Query
from cdrrating.sql import SQLCDRRepository, define_tables, make_engine
from cdrrating.sqlplans import define_plan_generations_table, define_plan_settings_table

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "service"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WAIT = 60  # seconds: the bound on any one wait, never a pause
THREADS = 4
SHARED_CALLS = 24  # completed by every thread
OWN_CALLS = 10  # completed by one thread each


def http_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Bounded readiness poll: connect and ask for the OpenAPI document. The listening
    socket exists before the server starts, so a connect waits in its backlog until
    the server accepts; a server that died resets it."""
    for _attempt in range(5):
        assert proc.poll() is None, f"uvicorn exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
                conn.sendall(
                    b"GET /openapi.json HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
                )
                if conn.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            continue
    pytest.fail("the service did not answer on its socket")


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    else:
        db = os.environ.get("CDRRATING_TEST_POSTGRES_URL", "")
        if not db:
            pytest.skip("CDRRATING_TEST_POSTGRES_URL is not set: no PostgreSQL to test against")
    prefix = f"cdrrating_h{uuid.uuid4().hex[:8]}_"  # this run's own tables
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # port 0: the kernel picks a free one
    listener.listen(128)
    port = listener.getsockname()[1]
    env = {
        **os.environ,
        "CDRRATING_SERVICE_DB": db,
        "CDRRATING_SERVICE_TABLE_PREFIX": prefix,
        "CDRRATING_ARCHIVE_DIR": str(tmp_path),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(SERVICE), "app:create_app",
        "--factory", "--fd", str(listener.fileno()), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, pass_fds=[listener.fileno()], cwd=tmp_path)
    listener.close()  # the server holds the socket now: if it dies, connects are refused
    try:
        http_ready(port, proc)
        yield f"http://127.0.0.1:{port}", db, prefix
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)
        engine = make_engine(db)
        tables = define_tables(prefix)
        define_plan_settings_table(prefix, tables.metadata)
        define_plan_generations_table(prefix, tables.metadata)
        tables.metadata.drop_all(engine)
        engine.dispose()


def body(i: int) -> dict[str, Any]:
    return {
        "started_at": (T0 + timedelta(minutes=i)).isoformat(),
        "destination_number": "442079460000",
        "billsec": 7 + 13 * i,
        "duration": 7 + 13 * i,
    }


def expected_micros(i: int) -> int:
    # 0.0125 per minute in whole minutes (billing_increment 60): 12,500 micros a minute.
    billsec = 7 + 13 * i
    return -(-billsec // 60) * 12_500


def test_concurrent_completions_over_http_lose_and_double_nothing(
    service: tuple[str, str, str],
) -> None:
    base, db, prefix = service
    with httpx.Client(base_url=base, timeout=WAIT) as admin:
        assert admin.put("/tenants/acme/plan", json={"currency": "EUR"}).status_code == 200
        rate = {"prefix": "44", "cost_per_minute": "0.0125", "billing_increment": 60}
        assert admin.post("/tenants/acme/rates", json=rate).status_code == 201

    shared = [str(uuid.UUID(int=i + 1)) for i in range(SHARED_CALLS)]
    own = [[str(uuid.uuid4()) for _ in range(OWN_CALLS)] for _ in range(THREADS)]
    index = {c: i for i, c in enumerate(shared)}
    for t, calls in enumerate(own):
        index.update({c: SHARED_CALLS + t * OWN_CALLS + i for i, c in enumerate(calls)})
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def client(t: int) -> None:
        try:
            calls = shared + own[t]
            random.Random(t).shuffle(calls)  # each thread its own order, reproducibly
            with httpx.Client(base_url=base, timeout=WAIT) as http:
                start.wait(WAIT)
                for call in calls:
                    b = body(index[call])
                    started = http.put(f"/tenants/acme/calls/{call}/start", json=b)
                    assert started.status_code == 200, started.text
                    done = http.put(f"/tenants/acme/calls/{call}/completion", json=b)
                    assert done.status_code == 200, done.text
                    cost = Decimal(done.json()["cost"]) * 1_000_000
                    assert cost == expected_micros(index[call])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 5)
        assert not thread.is_alive()
    assert not errors, errors

    total_calls = SHARED_CALLS + THREADS * OWN_CALLS
    expected_total = sum(expected_micros(i) for i in range(total_calls))
    # Through the API: every call once, completed, priced exactly.
    with httpx.Client(base_url=base, timeout=WAIT) as http:
        listed = http.get("/tenants/acme/cdrs", params={"limit": 1000}).json()["items"]
    assert len(listed) == total_calls
    assert {c["call_id"] for c in listed} == set(index)
    assert not any(c["in_progress"] for c in listed)
    assert sum(Decimal(c["cost"]) for c in listed) == Decimal(expected_total) / 10**6
    # And in the database itself.
    repo = SQLCDRRepository(db, tables=define_tables(prefix))
    try:
        stored = repo.query(Query(tenant="acme", limit=1000)).items
        assert repo.count(Query()) == total_calls
        assert sum(s.cdr.cost_micros or 0 for s in stored) == expected_total
        assert {s.call_id: s.cdr.cost_micros for s in stored} == {
            c: expected_micros(i) for c, i in index.items()
        }
    finally:
        repo.engine.dispose()
