"""In-memory repositories: thread-safe, no dependencies, the reference behaviour.

Use them in notebooks, tests and small tools. They keep the same storage rows as the
SQL adapter (see :mod:`cdrrating.repository`), so filters, search, ordering and cursors
give the same answers. Every operation takes one lock; a query copies what matches
before building the page, so long scans never see a half-applied write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cdrrating.errors import Conflict, ValidationError
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.repository import (
    CDR_ENTITY,
    RATE_ENTITY,
    CDRRecord,
    Clock,
    Compiled,
    CursorCodec,
    Page,
    Query,
    StoredCDR,
    StoredRate,
    T,
    build_page,
    cdr_row,
    check_batch_size,
    check_id,
    check_same_tenant,
    compile_query,
    evaluate,
    not_found,
    now_micros,
    patch_cdr,
    patch_rate,
    prune_cutoff,
    rate_row,
    search_matches,
    stored_cdr,
    stored_rate,
    system_clock,
    to_micros_epoch,
    unpack_cdr,
    unpack_rate,
)

__all__ = ["MemoryCDRRepository", "MemoryRateRepository"]

Row = Mapping[Any, Any]


def _select(rows: Iterable[Row], compiled: Compiled) -> list[Row]:
    """Matching rows, sorted, after the cursor, ``limit + 1`` of them."""
    matching = [r for r in rows if evaluate(compiled.filter, r) and search_matches(compiled, r)]
    sort, key = compiled.sort_column, compiled.key_column
    desc = compiled.scan_descending
    matching.sort(key=lambda r: (r[sort], r[key]), reverse=desc)
    if compiled.after is not None:
        anchor = (compiled.after[0], compiled.after[1])
        if desc:
            matching = [r for r in matching if (r[sort], r[key]) < anchor]
        else:
            matching = [r for r in matching if (r[sort], r[key]) > anchor]
    return matching[: compiled.limit + 1]


def _count(rows: Iterable[Row], compiled: Compiled) -> int:
    return sum(1 for r in rows if evaluate(compiled.filter, r) and search_matches(compiled, r))


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
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<MemoryCDRRepository: {len(self._rows)} CDRs>"

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, record: CDRRecord) -> StoredCDR:
        cdr, status, reason = unpack_cdr(record)
        with self._lock:
            now = now_micros(self._clock)
            row = cdr_row(cdr, status, reason, False, created_us=now, updated_us=now)
            if cdr.call_id in self._rows:
                raise Conflict(f"a CDR with call_id {cdr.call_id!r} is already stored")
            self._rows[cdr.call_id] = row
            return stored_cdr(row)

    def add_many(self, records: Iterable[CDRRecord | Mapping[str, Any]]) -> int:
        with self._lock:
            now = now_micros(self._clock)
            batch: dict[str, dict[str, Any]] = {}
            for i, record in enumerate(records):
                cdr, status, reason = unpack_cdr(record, i)
                if cdr.call_id in batch or cdr.call_id in self._rows:
                    raise Conflict(
                        f"records[{i}]: a CDR with call_id {cdr.call_id!r} is already "
                        + ("in this batch" if cdr.call_id in batch else "stored")
                    )
                batch[cdr.call_id] = cdr_row(
                    cdr, status, reason, False, created_us=now, updated_us=now, position=i
                )
            self._rows.update(batch)
            return len(batch)

    def upsert(self, record: CDRRecord, *, in_progress: bool = False) -> StoredCDR:
        cdr, status, reason = unpack_cdr(record)
        with self._lock:
            now = now_micros(self._clock)
            old = self._rows.get(cdr.call_id)
            if old is not None and in_progress and not old["in_progress"]:
                return stored_cdr(old)  # a late start row never erases a completion
            created = old["created_at_us"] if old is not None else now
            row = cdr_row(cdr, status, reason, in_progress, created_us=created, updated_us=now)
            self._rows[cdr.call_id] = row
            return stored_cdr(row)

    def upsert_many(
        self, records: Iterable[CDRRecord | Mapping[str, Any]], *, in_progress: bool = False
    ) -> int:
        with self._lock:
            now = now_micros(self._clock)
            batch: dict[str, dict[str, Any]] = {}
            for i, record in enumerate(records):
                cdr, status, reason = unpack_cdr(record, i)
                batch[cdr.call_id] = cdr_row(
                    cdr, status, reason, in_progress, created_us=now, updated_us=now, position=i
                )
            for call_id, row in batch.items():
                old = self._rows.get(call_id)
                if old is None:
                    self._rows[call_id] = row
                elif not (in_progress and not old["in_progress"]):
                    row["created_at_us"] = old["created_at_us"]
                    self._rows[call_id] = row
            return len(batch)

    def _get_row(self, call_id: Any, tenant: str | None) -> Row:
        key = check_id("CDR", call_id)
        row = self._rows.get(key)
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise not_found("CDR", key)
        return row

    def get(self, call_id: str, *, tenant: str | None = None) -> StoredCDR:
        with self._lock:
            return stored_cdr(self._get_row(call_id, tenant))

    def replace(
        self, record: CDRRecord, *, tenant: str | None = None, in_progress: bool = False
    ) -> StoredCDR:
        cdr, status, reason = unpack_cdr(record)
        check_same_tenant(tenant, cdr.tenant)
        with self._lock:
            old = self._get_row(cdr.call_id, tenant)
            row = cdr_row(
                cdr,
                status,
                reason,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            self._rows[cdr.call_id] = row
            return stored_cdr(row)

    def update(
        self, call_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredCDR:
        with self._lock:
            old = self._get_row(call_id, tenant)
            cdr, status, reason, in_progress = patch_cdr(stored_cdr(old), changes)
            check_same_tenant(tenant, cdr.tenant)
            row = cdr_row(
                cdr,
                status,
                reason,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            self._rows[cdr.call_id] = row
            return stored_cdr(row)

    def delete(self, call_id: str, *, tenant: str | None = None) -> None:
        with self._lock:
            row = self._get_row(call_id, tenant)
            del self._rows[row["call_id"]]

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
        deleted = 0
        with self._lock:
            cutoff = prune_cutoff(older_than, self._clock)
            old = sorted(
                (
                    r
                    for r in self._rows.values()
                    if r["started_at_us"] < cutoff and (tenant is None or r["tenant"] == tenant)
                ),
                key=lambda r: (r["started_at_us"], r["call_id"]),
            )
            for start in range(0, len(old), batch_size):
                batch = old[start : start + batch_size]
                if archive is not None:
                    archive([stored_cdr(r) for r in batch])
                for r in batch:
                    del self._rows[r["call_id"]]
                deleted += len(batch)
        return deleted


def _page(
    compiled: Compiled, rows: Sequence[Row], codec: CursorCodec, make: Callable[[Row], T]
) -> Page[T]:
    # Counting is a second pass over rows already in memory: cheap, so pages carry it.
    return build_page(compiled, _select(rows, compiled), codec, make, _count(rows, compiled))


class MemoryRateRepository:
    """A :class:`~cdrrating.repository.RateRepository` in a dict, guarded by a lock."""

    def __init__(
        self, *, clock: Clock = system_clock, cursor_key: bytes | str | None = None
    ) -> None:
        self._clock = clock
        self._codec = CursorCodec(cursor_key)
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<MemoryRateRepository: {len(self._rows)} rates>"

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rate: Rate) -> StoredRate:
        r = unpack_rate(rate)
        with self._lock:
            now = now_micros(self._clock)
            row = rate_row(r, now, now)
            if row["id"] in self._rows:
                raise Conflict(f"a rate with id {row['id']!r} is already stored")
            self._rows[row["id"]] = row
            return stored_rate(row)

    def add_many(self, rates: Iterable[Rate | Mapping[str, Any]]) -> int:
        with self._lock:
            now = now_micros(self._clock)
            batch: dict[str, dict[str, Any]] = {}
            for i, rate in enumerate(rates):
                row = rate_row(unpack_rate(rate, i), now, now, i)
                if row["id"] in batch or row["id"] in self._rows:
                    raise Conflict(f"records[{i}]: a rate with id {row['id']!r} is already stored")
                batch[row["id"]] = row
            self._rows.update(batch)
            return len(batch)

    def _get_row(self, rate_id: Any, tenant: str | None) -> Row:
        key = check_id("rate", rate_id)
        row = self._rows.get(key)
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise not_found("rate", key)
        return row

    def get(self, rate_id: str, *, tenant: str | None = None) -> StoredRate:
        with self._lock:
            return stored_rate(self._get_row(rate_id, tenant))

    def replace(self, rate: Rate, *, tenant: str | None = None) -> StoredRate:
        if not isinstance(rate, Rate) or rate.id is None:
            raise ValidationError("rate", rate, "a Rate with an id (the rate to replace)")
        check_same_tenant(tenant, rate.tenant)
        with self._lock:
            old = self._get_row(rate.id, tenant)
            row = rate_row(rate, old["created_at_us"], now_micros(self._clock))
            self._rows[rate.id] = row
            return stored_rate(row)

    def update(
        self, rate_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredRate:
        with self._lock:
            old = self._get_row(rate_id, tenant)
            rate = patch_rate(stored_rate(old).rate, changes)
            check_same_tenant(tenant, rate.tenant)
            row = rate_row(rate, old["created_at_us"], now_micros(self._clock))
            self._rows[row["id"]] = row
            return stored_rate(row)

    def delete(self, rate_id: str, *, tenant: str | None = None) -> None:
        with self._lock:
            row = self._get_row(rate_id, tenant)
            del self._rows[row["id"]]

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
        at_us = to_micros_epoch(at) if at is not None else None
        with self._lock:
            rows = [r for r in self._rows.values() if r["tenant"] == tenant]
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
