"""In-memory repositories: thread-safe, no dependencies, the reference behaviour.

Use them in notebooks, tests and small tools. They keep the same storage rows as the
SQL adapter (see :mod:`cdrrating.repository`) and evaluate the same filter tree (search
and cursors included), so filters, search, ordering and cursors give the same answers.
Every operation takes one lock; a query copies what matches before building the page,
so long scans never see a half-applied write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cdrrating._storage.entities import (
    CDR_ENTITY,
    RATE_ENTITY,
)
from cdrrating._storage.filters import (
    evaluate,
)
from cdrrating._storage.paging import (
    Compiled,
    build_page,
    check_batch_size,
    compile_query,
    now_micros,
    plan_instant,
    prune_cutoff,
    with_sort_columns,
)
from cdrrating._storage.paths import JsonText
from cdrrating._storage.records import (
    T,
)
from cdrrating._storage.rows import (
    TENANT_KEY,
    cdr_row,
    check_id,
    check_plan,
    check_same_tenant,
    check_tenant,
    late_start,
    not_found,
    patch_cdr,
    patch_rate,
    rate_row,
    stored_cdr,
    stored_rate,
    tenant_key,
    unpack_cdr,
    unpack_rate,
)
from cdrrating._storage.sessions import (
    compile_session_query,
    session_query,
    session_row,
    stale,
    stored_session,
)
from cdrrating.charging import ChargingSession
from cdrrating.errors import Conflict, ValidationError
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.repository import (
    DEFAULT_LIMIT,
    CDRRecord,
    Clock,
    CursorCodec,
    Page,
    Query,
    StoredCDR,
    StoredRate,
    StoredSession,
    system_clock,
)

__all__ = ["MemoryCDRRepository", "MemoryRateRepository", "MemorySessionRepository"]

Row = Mapping[Any, Any]
Key = tuple[str, str]  # (tenant key, id): a record's identity


def _parsed(row: dict[str, Any], column: str) -> dict[str, Any]:
    """The row with its JSON column parsed once, for the scans of later queries."""
    row[column] = JsonText(row[column])
    return row


def _cdr_row(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return _parsed(cdr_row(*args, **kwargs), "extra")


def _select(rows: Iterable[Row], compiled: Compiled) -> list[Row]:
    """Matching rows after the cursor, in scan order, ``limit + 1`` of them."""
    node = compiled.page_filter
    if compiled.sort_path is not None:
        rows = [with_sort_columns(compiled, r) for r in rows]
    matching = [r for r in rows if evaluate(node, r)]
    matching.sort(key=compiled.scan_key, reverse=compiled.scan_descending)
    return matching[: compiled.limit + 1]


def _count(rows: Iterable[Row], compiled: Compiled) -> int:
    return sum(1 for r in rows if evaluate(compiled.filter, r))


def _page(
    compiled: Compiled, rows: Sequence[Row], codec: CursorCodec, make: Callable[[Row], T]
) -> Page[T]:
    # Counting is a second pass over rows already in memory: cheap, so pages carry it.
    return build_page(compiled, _select(rows, compiled), codec, make, _count(rows, compiled))


class MemoryCDRRepository:
    """A :class:`~cdrrating.repository.CDRRepository` in a dict, guarded by a lock.

    ``clock`` gives ``created_at``/``updated_at`` and the "now" of ``prune``;
    ``cursor_key`` signs cursors (random when omitted).
    """

    def __init__(
        self, *, clock: Clock = system_clock, cursor_key: bytes | str | None = None
    ) -> None:
        self._clock = clock
        self._codec = CursorCodec(cursor_key)
        self._rows: dict[Key, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<MemoryCDRRepository: {len(self._rows)} CDRs>"

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, record: CDRRecord) -> StoredCDR:
        cdr, outcome = unpack_cdr(record)
        with self._lock:
            now = now_micros(self._clock)
            row = _cdr_row(cdr, outcome, False, created_us=now, updated_us=now)
            stored = stored_cdr(row)
            key = (row[TENANT_KEY], cdr.call_id)
            if key in self._rows:
                raise Conflict(f"a CDR with call_id {cdr.call_id!r} is already stored")
            self._rows[key] = row
            return stored

    def add_many(self, records: Iterable[CDRRecord | Mapping[str, Any]]) -> int:
        with self._lock:
            now = now_micros(self._clock)
            batch: dict[Key, dict[str, Any]] = {}
            for i, record in enumerate(records):
                cdr, outcome = unpack_cdr(record, i)
                row = _cdr_row(cdr, outcome, False, created_us=now, updated_us=now, position=i)
                key = (row[TENANT_KEY], cdr.call_id)
                if key in batch or key in self._rows:
                    raise Conflict(
                        f"records[{i}]: a CDR with call_id {cdr.call_id!r} is already "
                        + ("in this batch" if key in batch else "stored")
                    )
                batch[key] = row
            self._rows.update(batch)
            return len(batch)

    def upsert(self, record: CDRRecord, *, in_progress: bool = False) -> StoredCDR:
        with self._lock:
            key = self._upsert([record], in_progress, single=True)[0]
            return stored_cdr(self._rows[key])

    def upsert_many(
        self, records: Iterable[CDRRecord | Mapping[str, Any]], *, in_progress: bool = False
    ) -> int:
        with self._lock:
            return len(self._upsert(records, in_progress, single=False))

    def _upsert(self, records: Iterable[Any], in_progress: bool, *, single: bool) -> list[Key]:
        now = now_micros(self._clock)
        batch: dict[Key, dict[str, Any]] = {}
        for i, record in enumerate(records):
            cdr, outcome = unpack_cdr(record, None if single else i)
            row = _cdr_row(
                cdr,
                outcome,
                in_progress,
                created_us=now,
                updated_us=now,
                position=None if single else i,
            )
            stored_cdr(row)  # what is written must read back; raise before any write
            batch[(row[TENANT_KEY], cdr.call_id)] = row
        for key, row in batch.items():
            old = self._rows.get(key)
            if old is None:
                self._rows[key] = row
            elif not late_start(old["in_progress"], in_progress):
                row["created_at_us"] = old["created_at_us"]
                self._rows[key] = row
        return list(batch)

    def _get_row(self, call_id: Any, tenant: Any) -> Row:
        key = (check_tenant(tenant), check_id("CDR", call_id))
        row = self._rows.get(key)
        if row is None:
            raise not_found("CDR", key[1])
        return row

    def get(self, call_id: str, *, tenant: str | None = None) -> StoredCDR:
        with self._lock:
            return stored_cdr(self._get_row(call_id, tenant))

    def replace(
        self, record: CDRRecord, *, tenant: str | None = None, in_progress: bool = False
    ) -> StoredCDR:
        cdr, outcome = unpack_cdr(record)
        check_same_tenant(tenant, cdr.tenant)
        with self._lock:
            old = self._get_row(cdr.call_id, cdr.tenant)
            row = _cdr_row(
                cdr,
                outcome,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            stored = stored_cdr(row)
            self._rows[(row[TENANT_KEY], cdr.call_id)] = row
            return stored

    def update(
        self, call_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredCDR:
        with self._lock:
            old = self._get_row(call_id, tenant)
            cdr, outcome, in_progress = patch_cdr(stored_cdr(old), changes)
            row = _cdr_row(
                cdr,
                outcome,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            stored = stored_cdr(row)
            self._rows[(row[TENANT_KEY], cdr.call_id)] = row
            return stored

    def delete(self, call_id: str, *, tenant: str | None = None) -> None:
        with self._lock:
            row = self._get_row(call_id, tenant)
            del self._rows[(row[TENANT_KEY], row["call_id"])]

    def query(self, query: Query | None = None) -> Page[StoredCDR]:
        compiled = compile_query(CDR_ENTITY, query, self._codec)
        with self._lock:
            rows = list(self._rows.values())
        return _page(compiled, rows, self._codec, stored_cdr)

    def count(self, query: Query | None = None) -> int:
        compiled = compile_query(CDR_ENTITY, query, self._codec)
        with self._lock:
            rows = list(self._rows.values())
        return _count(rows, compiled)

    def prune(
        self,
        older_than: datetime | timedelta,
        *,
        archive: Callable[[Sequence[StoredCDR]], object] | None = None,
        tenant: str | None = None,
        batch_size: int = 10_000,
    ) -> int:
        check_batch_size(batch_size)
        scope = None if tenant is None else check_tenant(tenant)
        with self._lock:
            cutoff = prune_cutoff(older_than, self._clock)
            old = sorted(
                (
                    r
                    for r in self._rows.values()
                    if r["started_at_us"] < cutoff and (scope is None or r[TENANT_KEY] == scope)
                ),
                key=lambda r: (r["started_at_us"], r["call_id"], r[TENANT_KEY]),
            )
            # Everything is archived before anything is deleted: an archive that raises
            # at any batch leaves every row in place.
            if archive is not None:
                for start in range(0, len(old), batch_size):
                    archive([stored_cdr(r) for r in old[start : start + batch_size]])
            for r in old:
                del self._rows[(r[TENANT_KEY], r["call_id"])]
            return len(old)


class MemoryRateRepository:
    """A :class:`~cdrrating.repository.RateRepository` in a dict, guarded by a lock."""

    def __init__(
        self, *, clock: Clock = system_clock, cursor_key: bytes | str | None = None
    ) -> None:
        self._clock = clock
        self._codec = CursorCodec(cursor_key)
        self._rows: dict[Key, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<MemoryRateRepository: {len(self._rows)} rates>"

    def __len__(self) -> int:
        return len(self._rows)

    def _check_plans(self, written: Sequence[Rate]) -> None:
        """The tenants' decks with ``written`` in place of rates of the same identity."""
        by_tenant: dict[str | None, dict[str, Rate]] = {}
        for r in written:
            assert r.id is not None
            by_tenant.setdefault(r.tenant, {})[r.id] = r
        for tenant, new in by_tenant.items():
            prefixes = {r.prefix for r in new.values()}
            key = tenant_key(tenant)
            kept = [
                stored_rate(row).rate
                for (tk, rid), row in self._rows.items()
                if tk == key and rid not in new and row["prefix"] in prefixes
            ]
            check_plan(tenant, kept + list(new.values()))

    def add(self, rate: Rate) -> StoredRate:
        r = unpack_rate(rate)
        with self._lock:
            now = now_micros(self._clock)
            row = rate_row(r, now, now)
            key = (row[TENANT_KEY], row["id"])
            if key in self._rows:
                raise Conflict(f"a rate with id {row['id']!r} is already stored")
            self._check_plans([r])
            self._rows[key] = row
            return stored_rate(row)

    def add_many(self, rates: Iterable[Rate | Mapping[str, Any]]) -> int:
        with self._lock:
            now = now_micros(self._clock)
            batch: dict[Key, dict[str, Any]] = {}
            written: list[Rate] = []
            for i, rate in enumerate(rates):
                r = unpack_rate(rate, i)
                row = rate_row(r, now, now, i)
                key = (row[TENANT_KEY], row["id"])
                if key in batch or key in self._rows:
                    raise Conflict(f"records[{i}]: a rate with id {row['id']!r} is already stored")
                batch[key] = row
                written.append(r)
            self._check_plans(written)
            self._rows.update(batch)
            return len(batch)

    def _get_row(self, rate_id: Any, tenant: Any) -> Row:
        key = (check_tenant(tenant), check_id("rate", rate_id))
        row = self._rows.get(key)
        if row is None:
            raise not_found("rate", key[1])
        return row

    def get(self, rate_id: str, *, tenant: str | None = None) -> StoredRate:
        with self._lock:
            return stored_rate(self._get_row(rate_id, tenant))

    def replace(self, rate: Rate, *, tenant: str | None = None) -> StoredRate:
        if not isinstance(rate, Rate) or rate.id is None:
            raise ValidationError("rate", rate, "a Rate with an id (the rate to replace)")
        check_same_tenant(tenant, rate.tenant)
        with self._lock:
            old = self._get_row(rate.id, rate.tenant)
            return self._write(rate, old)

    def update(
        self, rate_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredRate:
        with self._lock:
            old = self._get_row(rate_id, tenant)
            return self._write(patch_rate(stored_rate(old).rate, changes), old)

    def _write(self, rate: Rate, old: Row) -> StoredRate:
        row = rate_row(rate, old["created_at_us"], now_micros(self._clock))
        self._check_plans([rate])
        self._rows[(row[TENANT_KEY], row["id"])] = row
        return stored_rate(row)

    def delete(self, rate_id: str, *, tenant: str | None = None) -> None:
        with self._lock:
            row = self._get_row(rate_id, tenant)
            del self._rows[(row[TENANT_KEY], row["id"])]

    def query(self, query: Query | None = None) -> Page[StoredRate]:
        compiled = compile_query(RATE_ENTITY, query, self._codec)
        with self._lock:
            rows = list(self._rows.values())
        return _page(compiled, rows, self._codec, stored_rate)

    def count(self, query: Query | None = None) -> int:
        compiled = compile_query(RATE_ENTITY, query, self._codec)
        with self._lock:
            rows = list(self._rows.values())
        return _count(rows, compiled)

    def load_plan(
        self,
        tenant: str | None,
        at: datetime | None = None,
        *,
        currency: str,
        rounding: Any = "up",
        quantum_micros: int = 1,
        access_prefixes: Sequence[str] = ("00",),
        name: str | None = None,
        **plan_options: Any,
    ) -> RatePlan:
        at_us = plan_instant(at)
        key = check_tenant(tenant)
        with self._lock:
            rows = [r for r in self._rows.values() if r[TENANT_KEY] == key]
        if at_us is not None:
            rows = [r for r in rows if _in_force(r, at_us)]
        return RatePlan(
            [stored_rate(r).rate for r in rows],
            currency=currency,
            rounding=rounding,
            quantum_micros=quantum_micros,
            access_prefixes=access_prefixes,
            name=name if name is not None else (tenant or ""),
            **plan_options,
        )


def _in_force(row: Row, at_us: int) -> bool:
    start, end = row["valid_from_us"], row["valid_until_us"]
    return (start is None or start <= at_us) and (end is None or at_us < end)


class MemorySessionRepository:
    """A :class:`~cdrrating.repository.SessionRepository` in a dict, guarded by a lock."""

    def __init__(
        self, *, clock: Clock = system_clock, cursor_key: bytes | str | None = None
    ) -> None:
        self._clock = clock
        self._codec = CursorCodec(cursor_key)
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<MemorySessionRepository: {len(self._rows)} sessions>"

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, session: ChargingSession) -> StoredSession:
        with self._lock:
            row = _parsed(session_row(session, now_micros(self._clock)), "data")
            if row["id"] in self._rows:
                raise Conflict(f"a session with id {row['id']!r} is already stored")
            self._rows[row["id"]] = row
            return stored_session(row)

    def add_many(self, sessions: Iterable[ChargingSession | Mapping[str, Any]]) -> int:
        with self._lock:
            now = now_micros(self._clock)
            batch: dict[str, dict[str, Any]] = {}
            for i, session in enumerate(sessions):
                row = _parsed(session_row(session, now, i), "data")
                key = row["id"]
                if key in batch or key in self._rows:
                    raise Conflict(
                        f"records[{i}]: a session with id {key!r} is already "
                        + ("in this batch" if key in batch else "stored")
                    )
                batch[key] = row
            self._rows.update(batch)
            return len(batch)

    def upsert(self, session: ChargingSession) -> StoredSession:
        with self._lock:
            key = self._upsert([session], single=True)[0]
            return stored_session(self._rows[key])

    def upsert_many(self, sessions: Iterable[ChargingSession | Mapping[str, Any]]) -> int:
        with self._lock:
            return len(self._upsert(sessions, single=False))

    def _upsert(self, sessions: Iterable[Any], *, single: bool) -> list[str]:
        now = now_micros(self._clock)
        batch: dict[str, dict[str, Any]] = {}
        for i, session in enumerate(sessions):
            row = _parsed(session_row(session, now, None if single else i), "data")
            old = batch.get(row["id"])
            if old is None or not stale(old["updated_at_us"], row["updated_at_us"]):
                batch[row["id"]] = row
        for key, row in batch.items():
            old = self._rows.get(key)
            if old is None:
                self._rows[key] = row
            elif not stale(old["updated_at_us"], row["updated_at_us"]):
                row["created_at_us"] = old["created_at_us"]
                self._rows[key] = row
        return list(batch)

    def _get_row(self, session_id: Any) -> Row:
        key = check_id("session", session_id)
        row = self._rows.get(key)
        if row is None:
            raise not_found("session", key)
        return row

    def get(self, session_id: str) -> StoredSession:
        with self._lock:
            return stored_session(self._get_row(session_id))

    def delete(self, session_id: str) -> None:
        with self._lock:
            del self._rows[self._get_row(session_id)["id"]]

    def query(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: str | None = None,
        order: str = "asc",
        since: Any = None,
        before: Any = None,
        include_ongoing: bool = False,
        limit: int = DEFAULT_LIMIT,
        next_page_cursor: str | None = None,
        previous_page_cursor: str | None = None,
        fields: Sequence[str] | str | None = None,
        with_count: bool = False,
    ) -> Page[StoredSession]:
        """One page of the list API's request (see
        :class:`~cdrrating.repository.SessionRepository`)."""
        request, direction = session_query(
            filter=filter,
            sort=sort,
            order=order,
            since=since,
            before=before,
            include_ongoing=include_ongoing,
            limit=limit,
            next_page_cursor=next_page_cursor,
            previous_page_cursor=previous_page_cursor,
            fields=fields,
            with_count=with_count,
        )
        compiled = compile_session_query(request, direction, self._codec)
        with self._lock:
            rows = list(self._rows.values())
        return _page(compiled, rows, self._codec, stored_session)

    def count(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        since: Any = None,
        before: Any = None,
        include_ongoing: bool = False,
    ) -> int:
        request, direction = session_query(
            filter=filter, since=since, before=before, include_ongoing=include_ongoing
        )
        compiled = compile_session_query(request, direction, self._codec)
        with self._lock:
            rows = list(self._rows.values())
        return _count(rows, compiled)
