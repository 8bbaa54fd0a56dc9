"""SQL repositories on SQLAlchemy Core 2.x: SQLite, PostgreSQL (psycopg 3), MariaDB/MySQL.

Needs the ``[sql]`` extra: ``pip install 'cdrrating[sql]'``.

- :data:`metadata` holds the tables (``cdrrating_cdrs``, ``cdrrating_rates``) under a
  naming convention; add it to your Alembic ``target_metadata`` to migrate them with
  your own tables, or call :func:`create_all` in notebooks and tests.
- Money is BIGINT micros; timestamps are BIGINT microseconds since the Unix epoch, UTC
  (columns ``*_at_us``): exact, sortable and the same on every database.
- Text columns compare by code point on every database (``COLLATE "C"`` on
  PostgreSQL, a binary no-pad collation on MariaDB/MySQL), so ordering, ties and
  equality agree with the in-memory adapter.
- Listing uses keyset pagination on (sort field, id) with signed cursors.
"""

from __future__ import annotations

try:
    import sqlalchemy as sa
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cdrrating.sql needs SQLAlchemy, which is not installed: pip install 'cdrrating[sql]'"
    ) from _error

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import attrs
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator, TypeEngine

from cdrrating.errors import Conflict, ValidationError
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.repository import (
    CDR_COLUMNS,
    CDR_ENTITY,
    RATE_ENTITY,
    CDRRecord,
    Clock,
    Compiled,
    CursorCodec,
    Node,
    Page,
    Query,
    StoredCDR,
    StoredRate,
    build_page,
    cdr_row,
    cdr_values,
    check_batch_size,
    check_id,
    check_same_tenant,
    compile_query,
    not_found,
    now_micros,
    patch_cdr,
    patch_rate,
    prune_cutoff,
    rate_row,
    stored_cdr,
    stored_rate,
    system_clock,
    to_micros_epoch,
    unpack_cdr,
    unpack_rate,
    values_matching,
)

__all__ = [
    "DEFAULT_URL",
    "NAMING_CONVENTION",
    "SQLCDRRepository",
    "SQLRateRepository",
    "Tables",
    "cdrs_table",
    "create_all",
    "define_tables",
    "make_engine",
    "metadata",
    "rates_table",
]

#: Where the SQL repositories and the CLI keep data when given no URL: a file in the
#: working directory, opened in WAL mode.
DEFAULT_URL = "sqlite:///cdrrating.sqlite3"

#: Constraint and index names that Alembic can diff and that stay under the 63/64
#: character identifier limits of PostgreSQL and MySQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_INSERT_CHUNK = 5_000
_IN_CHUNK = 1_000  # ids per IN (...) list: far under every driver's parameter limit


class _Text(TypeDecorator[str]):
    """VARCHAR (or TEXT without a length) that compares by code point everywhere.

    Default collations disagree (PostgreSQL's follow the locale, MySQL's fold case and
    pad spaces); a byte-order collation makes ORDER BY, ``=`` and keyset cursors give
    what Python gives.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__(length)
        self.text_length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        n = self.text_length
        if dialect.name == "postgresql":
            return dialect.type_descriptor(
                postgresql.VARCHAR(n, collation="C") if n else postgresql.TEXT(collation="C")
            )
        if dialect.name in ("mysql", "mariadb"):
            # MariaDB's nopad_bin and MySQL 8's 0900_bin both compare code points without
            # treating trailing spaces as insignificant.
            collation = (
                "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
            )
            return dialect.type_descriptor(
                mysql.VARCHAR(n, charset="utf8mb4", collation=collation)
                if n
                else mysql.MEDIUMTEXT(charset="utf8mb4", collation=collation)
            )
        return dialect.type_descriptor(sa.String(n) if n else sa.Text())


@attrs.frozen
class Tables:
    """The tables of one installation (one prefix) in one :class:`sqlalchemy.MetaData`."""

    metadata: sa.MetaData
    cdrs: sa.Table
    rates: sa.Table


def define_tables(prefix: str = "cdrrating_", metadata: sa.MetaData | None = None) -> Tables:
    """Define the tables named ``<prefix>cdrs`` and ``<prefix>rates``.

    The module-level :data:`metadata` is ``define_tables()``; call this for another
    prefix (several installations in one database, isolated test runs) or to add the
    tables to a ``MetaData`` of your own.
    """
    if not (prefix.replace("_", "").isalnum() and prefix.isascii() and len(prefix) <= 30):
        raise ValidationError("prefix", prefix, "ASCII letters, digits and '_', at most 30")
    md = metadata if metadata is not None else sa.MetaData(naming_convention=NAMING_CONVENTION)
    big = sa.BigInteger
    cdrs = sa.Table(
        f"{prefix}cdrs",
        md,
        sa.Column("call_id", _Text(255), primary_key=True),
        sa.Column("started_at_us", big, nullable=False, comment="µs since the epoch, UTC"),
        sa.Column("answered_at_us", big),
        sa.Column("ended_at_us", big),
        sa.Column("destination_number", _Text(50), nullable=False),
        sa.Column("caller_number", _Text(50), nullable=False),
        sa.Column("direction", _Text(50), nullable=False),
        sa.Column("disposition", _Text(50), nullable=False),
        sa.Column("billsec", big, nullable=False),
        sa.Column("duration", big, nullable=False),
        sa.Column("tenant", _Text(255)),
        sa.Column("extension", _Text(255)),
        sa.Column("currency", _Text(3)),
        sa.Column("hangup_cause", _Text(255)),
        sa.Column("queue_id", _Text(255)),
        sa.Column("agent_id", _Text(255)),
        sa.Column("cost_micros", big, comment="micro-units of currency"),
        sa.Column("status", _Text(32)),
        sa.Column("reason", _Text(32)),
        sa.Column("in_progress", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("extra", _Text(), nullable=False, comment="JSON object"),
        sa.Column("created_at_us", big, nullable=False),
        sa.Column("updated_at_us", big, nullable=False),
        # Case-folded copies for search: Python folds so that every database agrees.
        sa.Column("caller_number_fold", _Text(200), nullable=False),
        sa.Column("destination_number_fold", _Text(200), nullable=False),
        sa.CheckConstraint("billsec >= 0 AND duration >= 0", name="seconds"),
        sa.CheckConstraint("cost_micros >= 0", name="cost"),
        sa.Index(None, "started_at_us", "call_id"),
        sa.Index(None, "tenant", "started_at_us", "call_id"),
        sa.Index(None, "updated_at_us"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    rates = sa.Table(
        f"{prefix}rates",
        md,
        sa.Column("id", _Text(255), primary_key=True),
        sa.Column("tenant", _Text(255)),
        sa.Column("prefix", _Text(50), nullable=False),
        sa.Column("destination", _Text(255), nullable=False),
        sa.Column("per_minute_micros", big, nullable=False),
        sa.Column("connection_fee_micros", big, nullable=False),
        sa.Column("initial_seconds", big, nullable=False),
        sa.Column("increment_seconds", big, nullable=False),
        sa.Column("grace_seconds", big, nullable=False),
        sa.Column("minimum_charge_micros", big, nullable=False),
        sa.Column("maximum_charge_micros", big),
        sa.Column("priority", big, nullable=False),
        sa.Column("status", _Text(32), nullable=False),
        sa.Column("direction", _Text(50), nullable=False),
        sa.Column("valid_from_us", big),
        sa.Column("valid_until_us", big),
        sa.Column("source_prefix", _Text(255)),
        sa.Column("tiers", _Text(), nullable=False, comment="JSON [[after_s, micros, incr_s]]"),
        sa.Column("schedule", _Text(), comment="compact form, e.g. Mon-Fri 08:00-20:00"),
        sa.Column("created_at_us", big, nullable=False),
        sa.Column("updated_at_us", big, nullable=False),
        sa.Column("destination_fold", _Text(), nullable=False),
        sa.CheckConstraint(
            "per_minute_micros >= 0 AND connection_fee_micros >= 0 AND minimum_charge_micros >= 0",
            name="amounts",
        ),
        sa.CheckConstraint("increment_seconds >= 1 AND initial_seconds >= 0", name="increments"),
        sa.Index(None, "created_at_us", "id"),
        sa.Index(None, "tenant", "created_at_us", "id"),
        sa.Index(None, "tenant", "prefix"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    return Tables(md, cdrs, rates)


_DEFAULT_TABLES = define_tables()
#: The library's tables, for ``create_all`` or an Alembic ``target_metadata``.
metadata: sa.MetaData = _DEFAULT_TABLES.metadata
cdrs_table: sa.Table = _DEFAULT_TABLES.cdrs
rates_table: sa.Table = _DEFAULT_TABLES.rates


def create_all(engine: Engine | str, tables: Tables | None = None) -> None:
    """Create the tables and indexes that do not exist yet (for notebooks and tests;
    services should migrate with Alembic)."""
    eng = make_engine(engine) if isinstance(engine, str) else engine
    (tables or _DEFAULT_TABLES).metadata.create_all(eng)


def make_engine(url: str | sa.URL | None = None, **kwargs: Any) -> Engine:
    """An engine set up the way the repositories expect.

    SQLite (default :data:`DEFAULT_URL`): WAL journal, a 30 s busy timeout, usable from
    several threads, and write transactions that start with ``BEGIN IMMEDIATE`` so two
    writers queue instead of failing. MariaDB/MySQL: the ``utf8mb4`` character set.
    """
    u = sa.make_url(url if url is not None else DEFAULT_URL)
    backend = u.get_backend_name()
    if backend in ("mysql", "mariadb") and "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    if backend == "sqlite":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", 30.0)
        engine = sa.create_engine(u, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(u, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling starts transactions lazily (and never for a
    # SELECT), which would let a read-then-write race; we emit BEGIN ourselves
    # (SQLAlchemy's documented recipe) and take the write lock up front for writes.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL is durable across application crashes; a power loss may
            # drop the last commits, never corrupt the file.
            cursor.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB, taken only as used (the default is 2 MiB): bulk adds keep the hot
        # pages of five growing B-trees in memory, ~15% faster at a million rows.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("cdrrating_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# -- translation of the shared filter tree --------------------------------------------------


def _where(node: Node, t: sa.Table) -> sa.ColumnElement[bool]:
    tag = node[0]
    if tag == "and":
        return sa.and_(sa.true(), *(_where(n, t) for n in node[1]))
    if tag == "or":
        return sa.or_(*(_where(n, t) for n in node[1]))
    col = t.c[node[1]]
    if tag == "cmp":
        op, arg = node[2], node[3]
        if op == "eq":
            return col.is_(None) if arg is None else col == arg
        if op == "ne":
            return col.is_not(None) if arg is None else sa.or_(col != arg, col.is_(None))
        return cast(
            sa.ColumnElement[bool],
            {"gt": col > arg, "gte": col >= arg, "lt": col < arg, "lte": col <= arg}[op],
        )
    if tag == "in":
        values = [v for v in node[2] if v is not None]
        has_null = len(values) != len(node[2])
        if not node[3]:
            return sa.or_(col.in_(values), col.is_(None)) if has_null else col.in_(values)
        if has_null:
            return sa.and_(col.not_in(values), col.is_not(None))
        return sa.or_(col.not_in(values), col.is_(None))
    if tag == "exists":
        return col.is_not(None) if node[2] else col.is_(None)
    if tag == "regex":
        return col.regexp_match(node[2])
    raise AssertionError(tag)


def _conditions(compiled: Compiled, t: sa.Table) -> list[sa.ColumnElement[bool]]:
    out = [_where(compiled.filter, t)]
    needle = compiled.search
    if needle is not None:
        entity = compiled.entity
        options: list[sa.ColumnElement[bool]] = [
            # autoescape makes %, _ and the escape character itself literal.
            t.c[name + "_fold"].contains(needle, autoescape=True)
            for name in entity.fold_fields
        ]
        options.extend(t.c[name].contains(needle, autoescape=True) for name in entity.plain_fields)
        for name, values in entity.enum_search:
            found = values_matching(needle, values)
            if found:
                options.append(t.c[name].in_(found))
        out.append(sa.or_(*options))
    return out


def _page_select(compiled: Compiled, t: sa.Table) -> sa.Select[Any]:
    sort, key = t.c[compiled.sort_column], t.c[compiled.key_column]
    conditions = _conditions(compiled, t)
    if compiled.after is not None:
        value, last = compiled.after
        # The redundant outer bound lets every planner use the (sort, key) index as a
        # range scan; the OR alone would often defeat it.
        if compiled.scan_descending:
            conditions.append(sa.and_(sort <= value, sa.or_(sort < value, key < last)))
        else:
            conditions.append(sa.and_(sort >= value, sa.or_(sort > value, key > last)))
    order = (sort.desc(), key.desc()) if compiled.scan_descending else (sort.asc(), key.asc())
    return sa.select(t).where(*conditions).order_by(*order).limit(compiled.limit + 1)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _copy_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """PostgreSQL with psycopg: COPY, inside the caller's transaction (4x an executemany
    of INSERTs, benchmarks/bench_storage.py). Values go as parameters of the protocol,
    never into the statement's text; a failure is raised as SQLAlchemy's error, as the
    INSERT path raises it, so that callers handle both alike."""
    quote = conn.dialect.identifier_preparer
    statement = (
        f"COPY {quote.format_table(table)} ({', '.join(quote.quote(c) for c in columns)}) "
        "FROM STDIN"
    )
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.IntegrityError as error:
        raise IntegrityError(statement, None, error) from None


class _Base:
    def __init__(
        self,
        engine: Engine | str | None,
        *,
        tables: Tables | None,
        clock: Clock,
        cursor_key: bytes | str | None,
        create: bool,
        chunk_size: int,
    ) -> None:
        self.engine = engine if isinstance(engine, Engine) else make_engine(engine)
        self.tables = tables if tables is not None else _DEFAULT_TABLES
        self._writer = self.engine.execution_options(cdrrating_write=True)
        self._clock = clock
        self._codec = CursorCodec(cursor_key)
        self._chunk = check_batch_size(chunk_size)
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql", "mysql", "mariadb"):
            raise ValidationError(
                "engine", self.engine.url.render_as_string(), "SQLite, PostgreSQL, MariaDB or MySQL"
            )
        if create:
            self.tables.metadata.create_all(self.engine)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    def _insert_many(
        self,
        conn: Connection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """INSERT ``rows`` (tuples in ``columns`` order) in chunks of ``chunk_size``."""
        if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
            _copy_rows(conn, table, columns, rows)
            return
        # The statement is compiled once and the rows go straight to the driver's
        # executemany: our columns need no bind processing, and SQLAlchemy's per-row
        # parameter handling would otherwise cost more than the database's own work.
        compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
        order = compiled.positiontup
        convert: Callable[[tuple[Any, ...]], Any] | None
        if order is None:  # named parameters (psycopg, PyMySQL)
            convert = lambda values: dict(zip(columns, values, strict=True))  # noqa: E731
        elif tuple(order) == tuple(columns):  # SQLite: the tuples are ready as they are
            convert = None
        else:
            convert = operator.itemgetter(*(list(columns).index(c) for c in order))
        for chunk in _chunks(rows, self._chunk):
            params = list(chunk) if convert is None else list(map(convert, chunk))
            conn.exec_driver_sql(compiled.string, params)

    def _existing(self, table: sa.Table, key: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, _IN_CHUNK):
                found.update(conn.scalars(sa.select(table.c[key]).where(table.c[key].in_(chunk))))
        return found

    def _query(
        self, compiled: Compiled, table: sa.Table, make: Callable[[Mapping[Any, Any]], Any]
    ) -> Any:
        with self.engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(_page_select(compiled, table))]
        return build_page(compiled, rows, self._codec, make)

    def _count(self, compiled: Compiled, table: sa.Table) -> int:
        stmt = sa.select(sa.func.count()).select_from(table).where(*_conditions(compiled, table))
        with self.engine.connect() as conn:
            return int(conn.scalar(stmt) or 0)

    def _lock_row(
        self,
        conn: Connection,
        table: sa.Table,
        key: str,
        value: Any,
        *,
        tenant: str | None,
        kind: str,
    ) -> Mapping[Any, Any]:
        ident = check_id(kind, value)
        stmt = sa.select(table).where(table.c[key] == ident)
        if tenant is not None:
            stmt = stmt.where(table.c.tenant == tenant)
        row = conn.execute(stmt.with_for_update()).first()
        if row is None:
            raise not_found(kind, ident)
        return row._mapping

    def _get(
        self, table: sa.Table, key: str, value: Any, tenant: str | None, kind: str
    ) -> Mapping[Any, Any]:
        ident = check_id(kind, value)
        stmt = sa.select(table).where(table.c[key] == ident)
        if tenant is not None:
            stmt = stmt.where(table.c.tenant == tenant)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise not_found(kind, ident)
        return row._mapping

    def _delete(self, table: sa.Table, key: str, value: Any, tenant: str | None, kind: str) -> None:
        ident = check_id(kind, value)
        stmt = sa.delete(table).where(table.c[key] == ident)
        if tenant is not None:
            stmt = stmt.where(table.c.tenant == tenant)
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise not_found(kind, ident)


def _upsert_statement(dialect: str, t: sa.Table, columns: Iterable[str]) -> sa.Executable:
    """INSERT ... or update by call_id, unless that would put a start row over a
    completed one; executed with one row or many. The one place where dialects differ."""
    keep_cols = ("call_id", "created_at_us")
    update_cols = [c for c in columns if c not in keep_cols]
    if dialect in ("postgresql", "sqlite"):
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
        return ins.on_conflict_do_update(
            index_elements=[t.c.call_id],
            set_={c: ins.excluded[c] for c in update_cols},
            where=sa.or_(t.c.in_progress == sa.true(), ins.excluded.in_progress == sa.false()),
        )
    mins = mysql.insert(t)
    late_start = sa.and_(t.c.in_progress == sa.false(), mins.inserted.in_progress == sa.true())
    # MySQL has no WHERE here; each column keeps its value on a late start row. MySQL
    # applies assignments left to right, so in_progress, which the test reads, goes last.
    ordered = [c for c in update_cols if c != "in_progress"] + ["in_progress"]
    return mins.on_duplicate_key_update(
        [(c, sa.case((late_start, t.c[c]), else_=mins.inserted[c])) for c in ordered]
    )


class SQLCDRRepository(_Base):
    """A :class:`~cdrrating.repository.CDRRepository` on an SQLAlchemy engine.

    ``engine`` is an :class:`~sqlalchemy.engine.Engine` or a URL (default
    :data:`DEFAULT_URL`); ``tables`` another prefix from :func:`define_tables`;
    ``create=True`` creates missing tables; ``chunk_size`` rows go per bulk INSERT.
    """

    def __init__(
        self,
        engine: Engine | str | None = None,
        *,
        tables: Tables | None = None,
        clock: Clock = system_clock,
        cursor_key: bytes | str | None = None,
        create: bool = False,
        chunk_size: int = _INSERT_CHUNK,
    ) -> None:
        super().__init__(
            engine,
            tables=tables,
            clock=clock,
            cursor_key=cursor_key,
            create=create,
            chunk_size=chunk_size,
        )
        self._t = self.tables.cdrs

    def __repr__(self) -> str:
        return f"<SQLCDRRepository {self.engine.url.render_as_string()} table={self._t.name}>"

    def add(self, record: CDRRecord) -> StoredCDR:
        cdr, status, reason = unpack_cdr(record)
        now = now_micros(self._clock)
        row = cdr_row(cdr, status, reason, False, created_us=now, updated_us=now)
        try:
            with self._write() as conn:
                conn.execute(sa.insert(self._t), row)
        except IntegrityError:
            if self._existing(self._t, "call_id", [cdr.call_id]):
                raise Conflict(f"a CDR with call_id {cdr.call_id!r} is already stored") from None
            raise
        return stored_cdr(row)

    def add_many(self, records: Iterable[CDRRecord | Mapping[str, Any]]) -> int:
        now = now_micros(self._clock)
        rows: list[tuple[Any, ...]] = []
        seen: dict[str, int] = {}
        # Everything is checked before the first row goes to the database.
        for i, record in enumerate(records):
            cdr, status, reason = unpack_cdr(record, i)
            if cdr.call_id in seen:
                raise Conflict(f"records[{i}]: call_id {cdr.call_id!r} is already in this batch")
            seen[cdr.call_id] = i
            rows.append(
                cdr_values(cdr, status, reason, False, created_us=now, updated_us=now, position=i)
            )
        if not rows:
            return 0
        try:
            with self._write() as conn:
                self._insert_many(conn, self._t, CDR_COLUMNS, rows)
        except IntegrityError:
            existing = self._existing(self._t, "call_id", list(seen))
            if existing:
                first = min(seen[c] for c in existing)
                raise Conflict(
                    f"records[{first}]: a CDR with call_id {rows[first][0]!r} is "
                    "already stored; nothing of this batch was written"
                ) from None
            raise
        return len(rows)

    def upsert(self, record: CDRRecord, *, in_progress: bool = False) -> StoredCDR:
        cdr, status, reason = unpack_cdr(record)
        now = now_micros(self._clock)
        row = cdr_row(cdr, status, reason, in_progress, created_us=now, updated_us=now)
        with self._write() as conn:
            conn.execute(_upsert_statement(conn.dialect.name, self._t, row), row)
            stored = conn.execute(sa.select(self._t).where(self._t.c.call_id == cdr.call_id)).one()
            return stored_cdr(stored._mapping)

    def upsert_many(
        self, records: Iterable[CDRRecord | Mapping[str, Any]], *, in_progress: bool = False
    ) -> int:
        now = now_micros(self._clock)
        rows: dict[str, dict[str, Any]] = {}
        for i, record in enumerate(records):
            cdr, status, reason = unpack_cdr(record, i)
            # The last record of a call wins, as if they had been upserted one by one.
            rows[cdr.call_id] = cdr_row(
                cdr, status, reason, in_progress, created_us=now, updated_us=now, position=i
            )
        if not rows:
            return 0
        batch = list(rows.values())
        with self._write() as conn:
            stmt = _upsert_statement(conn.dialect.name, self._t, batch[0])
            for chunk in _chunks(batch, self._chunk):
                conn.execute(stmt, list(chunk))
        return len(batch)

    def get(self, call_id: str, *, tenant: str | None = None) -> StoredCDR:
        return stored_cdr(self._get(self._t, "call_id", call_id, tenant, "CDR"))

    def replace(
        self, record: CDRRecord, *, tenant: str | None = None, in_progress: bool = False
    ) -> StoredCDR:
        cdr, status, reason = unpack_cdr(record)
        check_same_tenant(tenant, cdr.tenant)
        with self._write() as conn:
            old = self._lock_row(conn, self._t, "call_id", cdr.call_id, tenant=tenant, kind="CDR")
            row = cdr_row(
                cdr,
                status,
                reason,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            self._update_row(conn, row)
        return stored_cdr(row)

    def update(
        self, call_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredCDR:
        with self._write() as conn:
            old = self._lock_row(conn, self._t, "call_id", call_id, tenant=tenant, kind="CDR")
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
            self._update_row(conn, row)
        return stored_cdr(row)

    def _update_row(self, conn: Connection, row: Mapping[str, Any]) -> None:
        values = {k: v for k, v in row.items() if k not in ("call_id", "created_at_us")}
        conn.execute(sa.update(self._t).where(self._t.c.call_id == row["call_id"]).values(values))

    def delete(self, call_id: str, *, tenant: str | None = None) -> None:
        self._delete(self._t, "call_id", call_id, tenant, "CDR")

    def query(self, query: Query | None = None) -> Page[StoredCDR]:
        compiled = compile_query(CDR_ENTITY, query, self._codec)
        return cast(Page[StoredCDR], self._query(compiled, self._t, stored_cdr))

    def count(self, query: Query | None = None) -> int:
        return self._count(compile_query(CDR_ENTITY, query, self._codec), self._t)

    def prune(
        self,
        older_than: datetime | timedelta,
        *,
        archive: Callable[[Sequence[StoredCDR]], object] | None = None,
        tenant: str | None = None,
        batch_size: int = 10_000,
    ) -> int:
        check_batch_size(batch_size)
        cutoff = prune_cutoff(older_than, self._clock)
        t = self._t
        deleted = 0
        while True:
            stmt = sa.select(t).where(t.c.started_at_us < cutoff)
            if tenant is not None:
                stmt = stmt.where(t.c.tenant == tenant)
            stmt = stmt.order_by(t.c.started_at_us, t.c.call_id).limit(batch_size)
            # One transaction per batch: the rows stay locked while the archive runs,
            # and an archive that raises rolls the batch back untouched.
            with self._write() as conn:
                rows = [r._mapping for r in conn.execute(stmt.with_for_update())]
                if not rows:
                    return deleted
                if archive is not None:
                    archive([stored_cdr(r) for r in rows])
                for chunk in _chunks([r["call_id"] for r in rows], _IN_CHUNK):
                    conn.execute(sa.delete(t).where(t.c.call_id.in_(chunk)))
            deleted += len(rows)
            if len(rows) < batch_size:
                return deleted


class SQLRateRepository(_Base):
    """A :class:`~cdrrating.repository.RateRepository` on an SQLAlchemy engine."""

    def __init__(
        self,
        engine: Engine | str | None = None,
        *,
        tables: Tables | None = None,
        clock: Clock = system_clock,
        cursor_key: bytes | str | None = None,
        create: bool = False,
        chunk_size: int = _INSERT_CHUNK,
    ) -> None:
        super().__init__(
            engine,
            tables=tables,
            clock=clock,
            cursor_key=cursor_key,
            create=create,
            chunk_size=chunk_size,
        )
        self._t = self.tables.rates

    def __repr__(self) -> str:
        return f"<SQLRateRepository {self.engine.url.render_as_string()} table={self._t.name}>"

    def add(self, rate: Rate) -> StoredRate:
        r = unpack_rate(rate)
        now = now_micros(self._clock)
        row = rate_row(r, now, now)
        try:
            with self._write() as conn:
                conn.execute(sa.insert(self._t), row)
        except IntegrityError:
            if self._existing(self._t, "id", [row["id"]]):
                raise Conflict(f"a rate with id {row['id']!r} is already stored") from None
            raise
        return stored_rate(row)

    def add_many(self, rates: Iterable[Rate | Mapping[str, Any]]) -> int:
        now = now_micros(self._clock)
        rows: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for i, rate in enumerate(rates):
            row = rate_row(unpack_rate(rate, i), now, now, i)
            if row["id"] in seen:
                raise Conflict(f"records[{i}]: rate id {row['id']!r} is already in this batch")
            seen[row["id"]] = i
            rows.append(row)
        if not rows:
            return 0
        try:
            with self._write() as conn:
                self._insert_many(conn, self._t, list(rows[0]), [tuple(r.values()) for r in rows])
        except IntegrityError:
            existing = self._existing(self._t, "id", list(seen))
            if existing:
                first = min(seen[c] for c in existing)
                raise Conflict(
                    f"records[{first}]: a rate with id {rows[first]['id']!r} is already "
                    "stored; nothing of this batch was written"
                ) from None
            raise
        return len(rows)

    def get(self, rate_id: str, *, tenant: str | None = None) -> StoredRate:
        return stored_rate(self._get(self._t, "id", rate_id, tenant, "rate"))

    def replace(self, rate: Rate, *, tenant: str | None = None) -> StoredRate:
        if not isinstance(rate, Rate) or rate.id is None:
            raise ValidationError("rate", rate, "a Rate with an id (the rate to replace)")
        check_same_tenant(tenant, rate.tenant)
        with self._write() as conn:
            old = self._lock_row(conn, self._t, "id", rate.id, tenant=tenant, kind="rate")
            row = rate_row(rate, old["created_at_us"], now_micros(self._clock))
            self._update_row(conn, row)
        return stored_rate(row)

    def update(
        self, rate_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredRate:
        with self._write() as conn:
            old = self._lock_row(conn, self._t, "id", rate_id, tenant=tenant, kind="rate")
            rate = patch_rate(stored_rate(old).rate, changes)
            check_same_tenant(tenant, rate.tenant)
            row = rate_row(rate, old["created_at_us"], now_micros(self._clock))
            self._update_row(conn, row)
        return stored_rate(row)

    def _update_row(self, conn: Connection, row: Mapping[str, Any]) -> None:
        values = {k: v for k, v in row.items() if k not in ("id", "created_at_us")}
        conn.execute(sa.update(self._t).where(self._t.c.id == row["id"]).values(values))

    def delete(self, rate_id: str, *, tenant: str | None = None) -> None:
        self._delete(self._t, "id", rate_id, tenant, "rate")

    def query(self, query: Query | None = None) -> Page[StoredRate]:
        compiled = compile_query(RATE_ENTITY, query, self._codec)
        return cast(Page[StoredRate], self._query(compiled, self._t, stored_rate))

    def count(self, query: Query | None = None) -> int:
        return self._count(compile_query(RATE_ENTITY, query, self._codec), self._t)

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
        t = self._t
        stmt = sa.select(t).where(t.c.tenant.is_(None) if tenant is None else t.c.tenant == tenant)
        if at is not None:
            at_us = to_micros_epoch(at)
            stmt = stmt.where(
                sa.or_(t.c.valid_from_us.is_(None), t.c.valid_from_us <= at_us),
                sa.or_(t.c.valid_until_us.is_(None), t.c.valid_until_us > at_us),
            )
        with self.engine.connect() as conn:
            rates = [stored_rate(r._mapping).rate for r in conn.execute(stmt)]
        return RatePlan(
            rates,
            currency=currency,
            rounding=rounding,
            quantum_micros=quantum_micros,
            access_prefixes=access_prefixes,
            name=name if name is not None else (tenant or ""),
            **plan_options,
        )
