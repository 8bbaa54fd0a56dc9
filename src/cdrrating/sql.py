"""SQL repositories on SQLAlchemy Core 2.x: SQLite, PostgreSQL (psycopg 3), MariaDB/MySQL.

Needs the ``[sql]`` extra: ``pip install 'cdrrating[sql]'``.

- :data:`metadata` holds the tables (``cdrrating_cdrs``, ``cdrrating_rates``,
  ``cdrrating_sessions``) under a
  naming convention; add it to your Alembic ``target_metadata`` to migrate them with
  your own tables, or call :func:`create_all` in notebooks and tests.
- Money is BIGINT micros; timestamps are BIGINT microseconds since the Unix epoch, UTC
  (columns ``*_at_us``): exact, sortable and the same on every database.
- Text columns compare by code point on every database (``COLLATE "C"`` on
  PostgreSQL, a binary no-pad collation on MariaDB/MySQL), so ordering, ties and
  equality agree with the in-memory adapter.
- A record's identity is (tenant, id): the ``tenant_key`` column holds the tenant, or
  ``""`` for records without one, and is part of the primary key.
- Listing uses keyset pagination on (sort field, id, tenant key) with signed cursors;
  a sort field that may be empty puts NULL lowest (first ascending, last descending).
- No SQLAlchemy or driver exception reaches a caller: deadlocks and serialization
  failures are retried, other failures raise :class:`~cdrrating.repository.StorageError`.
"""

from __future__ import annotations

try:
    import sqlalchemy as sa
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cdrrating.sql needs SQLAlchemy, which is not installed: pip install 'cdrrating[sql]'"
    ) from _error

import hashlib
import json
import logging
import operator
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import attrs
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

from cdrrating._storage.entities import (
    CDR_ENTITY,
    RATE_ENTITY,
)
from cdrrating._storage.filters import (
    Node,
)
from cdrrating._storage.paging import (
    SORT_COLUMNS,
    Compiled,
    build_page,
    check_batch_size,
    compile_query,
    now_micros,
    plan_instant,
    prune_cutoff,
)
from cdrrating._storage.rows import (
    CDR_COLUMNS,
    RATE_COLUMNS,
    TENANT_KEY,
    cdr_row,
    cdr_values,
    check_id,
    check_plan,
    check_same_tenant,
    check_tenant,
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
    SESSION_COLUMNS,
    compile_session_query,
    session_query,
    session_row,
    stale,
    stored_session,
)
from cdrrating._storage.sql_json import JsonValue, extracted, path_condition
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
    StorageError,
    StoredCDR,
    StoredRate,
    StoredSession,
    system_clock,
)

__all__ = [
    "DEFAULT_URL",
    "NAMING_CONVENTION",
    "SQLCDRRepository",
    "SQLRateRepository",
    "SQLSessionRepository",
    "Tables",
    "cdrs_table",
    "create_all",
    "define_tables",
    "make_engine",
    "metadata",
    "rates_table",
    "sessions_table",
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
# Longer $in lists go as one parameter (a PostgreSQL array, SQLite JSON): PostgreSQL
# takes at most 65,535 parameters in a statement, SQLite 32,766.
_IN_AS_ONE = 500
_log = logging.getLogger("cdrrating.sql")
_ATTEMPTS = 5  # tries of a transaction that hit a deadlock or serialization failure
R = TypeVar("R")


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
    sessions: sa.Table


def define_tables(prefix: str = "cdrrating_", metadata: sa.MetaData | None = None) -> Tables:
    """Define the tables named ``<prefix>cdrs``, ``<prefix>rates`` and ``<prefix>sessions``.

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
        sa.Column("call_id", _Text(255), nullable=False),
        sa.Column(TENANT_KEY, _Text(255), nullable=False, comment="tenant, or '' for none"),
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
        sa.Column("prefix", _Text(50), comment="prefix of the rate that priced the call"),
        sa.Column("billed_seconds", big),
        sa.Column("in_progress", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("extra", _Text(), nullable=False, comment="JSON object"),
        sa.Column("created_at_us", big, nullable=False),
        sa.Column("updated_at_us", big, nullable=False),
        # Case-folded copies for search: Python folds so that every database agrees.
        sa.Column("caller_number_fold", _Text(200), nullable=False),
        sa.Column("destination_number_fold", _Text(200), nullable=False),
        # Id first: switches issue ids in order, so bulk adds append to the key's B-tree.
        sa.PrimaryKeyConstraint("call_id", TENANT_KEY),
        sa.CheckConstraint("billsec >= 0 AND duration >= 0", name="seconds"),
        sa.CheckConstraint("cost_micros >= 0", name="cost"),
        sa.Index(None, "started_at_us", "call_id", TENANT_KEY),
        sa.Index(None, TENANT_KEY, "started_at_us", "call_id"),
        sa.Index(None, "updated_at_us"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    rates = sa.Table(
        f"{prefix}rates",
        md,
        sa.Column("id", _Text(255), nullable=False),
        sa.Column(TENANT_KEY, _Text(255), nullable=False, comment="tenant, or '' for none"),
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
        sa.PrimaryKeyConstraint("id", TENANT_KEY),
        sa.CheckConstraint(
            "per_minute_micros >= 0 AND connection_fee_micros >= 0 AND minimum_charge_micros >= 0",
            name="amounts",
        ),
        sa.CheckConstraint("increment_seconds >= 1 AND initial_seconds >= 0", name="increments"),
        sa.Index(None, "created_at_us", "id", TENANT_KEY),
        sa.Index(None, TENANT_KEY, "created_at_us", "id"),
        sa.Index(None, TENANT_KEY, "prefix"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    sessions = sa.Table(
        f"{prefix}sessions",
        md,
        sa.Column("id", _Text(255), nullable=False),
        sa.Column("started_at_us", big, nullable=False, comment="µs since the epoch, UTC"),
        sa.Column("ended_at_us", big, comment="NULL while the session is ongoing"),
        sa.Column("updated_at_us", big, nullable=False, comment="the session's last update"),
        sa.Column("created_at_us", big, nullable=False, comment="first stored (repository clock)"),
        sa.Column("ongoing", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("operator_id", _Text(255)),
        sa.Column("company_id", _Text(255)),
        sa.Column("location_country", _Text(255)),
        sa.Column("evse_id", _Text(255)),
        sa.Column("session_id", _Text(255)),
        sa.Column("charge_box_id", _Text(255)),
        sa.Column("auth_uid", _Text(255)),
        sa.Column("data", _Text(), nullable=False, comment="the whole session, JSON"),
        sa.PrimaryKeyConstraint("id"),
        # The list API's default order (updatedAt, then id) and its since/before range.
        sa.Index(None, "updated_at_us", "id"),
        sa.Index(None, "started_at_us", "id"),
        # The filters a list API is asked most, each with the default order behind it.
        sa.Index(None, "operator_id", "updated_at_us", "id"),
        sa.Index(None, "company_id", "updated_at_us", "id"),
        sa.Index(None, "location_country", "updated_at_us"),
        sa.Index(None, "auth_uid", "updated_at_us"),
        sa.Index(None, "evse_id"),
        sa.Index(None, "session_id"),
        sa.Index(None, "charge_box_id"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    return Tables(md, cdrs, rates, sessions)


_DEFAULT_TABLES = define_tables()
#: The library's tables, for ``create_all`` or an Alembic ``target_metadata``.
metadata: sa.MetaData = _DEFAULT_TABLES.metadata
cdrs_table: sa.Table = _DEFAULT_TABLES.cdrs
rates_table: sa.Table = _DEFAULT_TABLES.rates
sessions_table: sa.Table = _DEFAULT_TABLES.sessions


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
        # Straight to sqlite3: SQLAlchemy's statement machinery would cost more than
        # the BEGIN itself, on every transaction.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.execute("BEGIN IMMEDIATE" if write else "BEGIN")


# -- translation of the shared filter tree --------------------------------------------------


def _flavour(dialect: Dialect) -> str:
    """The dialect's name; "mariadb" also when a mysql:// URL reached a MariaDB server
    (known once connected), whose collations differ from MySQL's (_storage.sql_json)."""
    return "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name


def _where(node: Node, t: sa.Table | sa.Subquery, dialect: str) -> sa.ColumnElement[bool]:
    """The filter tree of :mod:`cdrrating.repository` as SQL; ``cdrrating.memory``
    evaluates the same tree in Python (``evaluate``)."""
    tag = node[0]
    if tag == "and":
        return sa.and_(sa.true(), *(_where(n, t, dialect) for n in node[1]))
    if tag == "or":
        if not node[1]:
            return sa.false()
        return sa.or_(*(_where(n, t, dialect) for n in node[1]))
    if tag[0] == "j":
        return path_condition(node, t.c[node[1]], dialect)
    col = t.c[node[1]]
    if tag == "cmp":
        op, arg = node[2], node[3]
        if node[1] == SORT_COLUMNS[1] and dialect != "sqlite":
            # A cursor's number against NUMERIC/DECIMAL: as exact decimal text, as filters
            # bind it (_storage.sql_json), not as a double or a BIGINT.
            arg = Decimal(repr(arg)) if isinstance(arg, float) else Decimal(arg)
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
        hit = _in(col, values, dialect)
        if not node[3]:
            return sa.or_(hit, col.is_(None)) if has_null else hit
        if has_null:
            return sa.and_(sa.not_(hit), col.is_not(None))
        return sa.or_(sa.not_(hit), col.is_(None))
    if tag == "exists":
        return col.is_not(None) if node[2] else col.is_(None)
    if tag == "regex":
        return col.regexp_match(node[2])
    if tag == "contains":
        # autoescape makes %, _ and the escape character itself literal.
        return col.contains(node[2], autoescape=True)
    raise AssertionError(tag)


def _in(col: sa.ColumnElement[Any], values: list[Any], dialect: str) -> sa.ColumnElement[bool]:
    if not values:
        return sa.false()
    if len(values) <= _IN_AS_ONE or dialect in ("mysql", "mariadb"):
        # PyMySQL sends values inline in the statement text (escaped by the driver), so
        # MariaDB/MySQL have no parameter limit to meet.
        return col.in_(values)
    if dialect == "postgresql":
        item: TypeEngine[Any] = (
            sa.Boolean()
            if isinstance(values[0], bool)
            else sa.BigInteger()
            if isinstance(values[0], int)
            else sa.Text()
        )
        array = sa.bindparam(None, values, type_=postgresql.ARRAY(item))
        return col == sa.any_(array)
    items = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.Text)).table_valued(
        "value"
    )
    return col.in_(sa.select(items.c.value))


def _page_select(compiled: Compiled, t: sa.Table, dialect: str) -> sa.Select[Any]:
    source: sa.Table | sa.Subquery = t
    ref = compiled.sort_path
    if ref is not None:
        # A sort by a JSON path orders by computed columns: select them once, beside the
        # row, and let the keyset condition and ORDER BY name them.
        if dialect != "sqlite":
            # Read each document once (PostgreSQL casts it to jsonb, MariaDB parses it),
            # not once per expression of the sort key: the OFFSET keeps the database from
            # inlining the subquery, which would repeat the work in every expression.
            value = extracted(t.c[ref.column], ref.path, dialect)
            valued = sa.select(t, value.label("_sort_value"))
            inner = valued.offset(0).subquery("valued")
            keys = JsonValue(inner.c._sort_value, (), dialect).sort_columns()
            row: list[Any] = [inner.c[c.name] for c in t.c]
        else:
            keys = JsonValue(t.c[ref.column], ref.path, dialect).sort_columns()
            row = [t]
        labelled = [k.label(name) for k, name in zip(keys, SORT_COLUMNS, strict=True)]
        source = sa.select(*row, *labelled).subquery("sorted")
    columns = [source.c[c] for c in compiled.order]
    order = [c.desc() for c in columns] if compiled.scan_descending else [c.asc() for c in columns]
    if compiled.sort_nullable and dialect == "postgresql":
        # Empty sorts lowest on every backend. SQLite and MariaDB/MySQL already put NULL
        # below every value (and MySQL has no NULLS FIRST); PostgreSQL puts it above.
        lead = order[0]
        order[0] = lead.nulls_last() if compiled.scan_descending else lead.nulls_first()
    stmt = sa.select(source)
    if compiled.with_count:
        # One statement answers the page and how many match in all pages.
        total = sa.select(sa.func.count()).select_from(t).where(_where(compiled.filter, t, dialect))
        stmt = sa.select(source, total.scalar_subquery().label("_total"))
    return (
        stmt.where(_where(compiled.page_filter, source, dialect))
        .order_by(*order)
        .limit(compiled.limit + 1)
    )


def _sort_number(value: Any) -> Any:
    """A number of the JSON sort key as Python reads it: NUMERIC/DECIMAL results come
    back as Decimal, which a cursor (JSON) cannot carry."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


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
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi.IntegrityError as error:
        raise IntegrityError(statement, None, error) from None
    except dbapi.Error as error:
        raise DBAPIError(statement, None, error) from None


def _driver_execute(conn: Connection, statement: str, params: Any) -> Any:
    """Run a prepared statement on the driver's own cursor (a single upsert spends most
    of its time in SQLAlchemy's result set-up otherwise). Driver errors are raised as
    SQLAlchemy's, as every other statement raises them."""
    dbapi = conn.dialect.loaded_dbapi
    driver = conn.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(statement, params)
    except dbapi.Error as error:
        raise DBAPIError.instance(statement, params, error, dbapi.Error) from None
    return cursor


def _retryable(error: DBAPIError) -> bool:
    """A deadlock or serialization failure: the transaction can simply run again."""
    orig = error.orig
    code = getattr(orig, "sqlstate", None)  # psycopg
    if code in ("40001", "40P01"):
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1213, 1205):  # MySQL/MariaDB: deadlock, lock wait timeout
        return True
    return "database is locked" in str(orig)  # SQLite past its busy timeout


def _storage_error(error: SQLAlchemyError, what: str) -> StorageError:
    orig = getattr(error, "orig", None) or error
    return StorageError(f"{what} failed: {type(orig).__name__}: {orig}".strip())


class _Base:
    _t: sa.Table
    _kind: str  # what a record is, in messages
    _table: str  # the attribute of Tables that holds the records

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
        self._dialect = dialect
        if create:
            try:
                self.tables.metadata.create_all(self.engine)
            except SQLAlchemyError as e:
                raise _storage_error(e, "creating the tables") from e
        self._t = getattr(self.tables, self._table)
        self._prepare()

    def _prepare(self) -> None:
        """Build the statements a repository runs often, once (building an ON CONFLICT
        statement costs more than running it)."""

    # -- transactions: the one place driver errors are handled --------------------------------

    def _transaction(self, work: Callable[[Connection], R], *, conflicts: bool = False) -> R:
        """Run ``work`` in a write transaction, again (a bounded number of times, after
        a short random pause) when the database reports a deadlock or a serialization
        failure. With ``conflicts`` an IntegrityError is the caller's to explain; any
        other database error becomes a StorageError. Nothing of a failed attempt stays
        written."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._writer.begin() as conn:
                    return work(conn)
            except IntegrityError as e:
                if conflicts:
                    raise
                raise _storage_error(e, f"writing {self._kind}s") from e
            except DBAPIError as e:
                if attempt < _ATTEMPTS and _retryable(e):
                    _log.warning(
                        "writing %ss: %s, attempt %d of %d; retrying",
                        self._kind,
                        type(e.orig).__name__ if e.orig is not None else type(e).__name__,
                        attempt,
                        _ATTEMPTS,
                    )
                    # Jitter keeps two retrying writers from meeting again in lockstep.
                    time.sleep(random.uniform(0, 0.01 * 2**attempt))
                    continue
                raise _storage_error(e, f"writing {self._kind}s") from e
            except SQLAlchemyError as e:
                raise _storage_error(e, f"writing {self._kind}s") from e
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, work: Callable[[Connection], R]) -> R:
        try:
            with self.engine.connect() as conn:
                return work(conn)
        except SQLAlchemyError as e:
            raise _storage_error(e, f"reading {self._kind}s") from e

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

    def _existing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (tenant key, id) identities are stored."""
        t, key = self._t, self._t.c[self._key]

        def work(conn: Connection) -> set[tuple[str, str]]:
            found: set[tuple[str, str]] = set()
            for chunk in _chunks(keys, _IN_CHUNK):
                stmt = sa.select(t.c[TENANT_KEY], key).where(key.in_({k[1] for k in chunk}))
                found.update((a, b) for a, b in conn.execute(stmt))
            return found & set(keys)

        return self._read(work)

    @property
    def _key(self) -> str:
        return "call_id" if self._kind == "CDR" else "id"

    def _identity(self, value: Any, tenant: Any) -> sa.ColumnElement[bool]:
        ident = check_id(self._kind, value)
        t = self._t
        return sa.and_(t.c[TENANT_KEY] == check_tenant(tenant), t.c[self._key] == ident)

    def _query(self, compiled: Compiled, make: Callable[[Mapping[Any, Any]], Any]) -> Any:
        t = self._t

        def work(conn: Connection) -> Any:
            stmt = _page_select(compiled, t, _flavour(conn.dialect))
            rows: list[Mapping[Any, Any]] = [r._mapping for r in conn.execute(stmt)]
            if compiled.sort_path is not None:
                number = SORT_COLUMNS[1]
                rows = [{**r, number: _sort_number(r[number])} for r in rows]
            count = None
            if compiled.with_count:
                # With no row, no row carried the total: past the end, or nothing matches.
                count = int(rows[0]["_total"]) if rows else self._count_in(conn, compiled)
            return build_page(compiled, rows, self._codec, make, count)

        return self._read(work)

    def _count_in(self, conn: Connection, compiled: Compiled) -> int:
        t = self._t
        stmt = (
            sa.select(sa.func.count())
            .select_from(t)
            .where(_where(compiled.filter, t, _flavour(conn.dialect)))
        )
        return int(conn.scalar(stmt) or 0)

    def _count(self, compiled: Compiled) -> int:
        return self._read(lambda conn: self._count_in(conn, compiled))

    def _lock_row(self, conn: Connection, value: Any, tenant: Any) -> Mapping[Any, Any]:
        stmt = sa.select(self._t).where(self._identity(value, tenant))
        row = conn.execute(stmt.with_for_update()).first()
        if row is None:
            raise not_found(self._kind, value)
        return row._mapping

    def _get(self, value: Any, tenant: Any) -> Mapping[Any, Any]:
        stmt = sa.select(self._t).where(self._identity(value, tenant))
        row = self._read(lambda conn: conn.execute(stmt).first())
        if row is None:
            raise not_found(self._kind, value)
        return row._mapping

    def _delete(self, value: Any, tenant: Any) -> None:
        stmt = sa.delete(self._t).where(self._identity(value, tenant))

        def work(conn: Connection) -> None:
            if conn.execute(stmt).rowcount == 0:
                raise not_found(self._kind, value)

        self._transaction(work)

    def _update_row(self, conn: Connection, row: Mapping[str, Any]) -> None:
        t, key = self._t, self._key
        keep = (key, TENANT_KEY, "created_at_us")
        values = {k: v for k, v in row.items() if k not in keep}
        conn.execute(
            sa.update(t)
            .where(t.c[TENANT_KEY] == row[TENANT_KEY], t.c[key] == row[key])
            .values(values)
        )


def _late_start(stored: sa.ColumnElement[Any], incoming: sa.ColumnElement[Any]) -> Any:
    """:func:`cdrrating.storage_rows.late_start` in SQL: a start row arriving over a
    completed row."""
    return sa.and_(stored == sa.false(), incoming == sa.true())


def _upsert_statement(dialect: str, t: sa.Table) -> sa.Executable:
    """INSERT ... or update by identity, unless that would put a start row over a
    completed one; executed with one row or many. The one place where dialects differ."""
    keep_cols = ("call_id", TENANT_KEY, "created_at_us")
    update_cols = [c for c in CDR_COLUMNS if c not in keep_cols]
    if dialect in ("postgresql", "sqlite"):
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
        return ins.on_conflict_do_update(
            index_elements=[t.c.call_id, t.c[TENANT_KEY]],
            set_={c: ins.excluded[c] for c in update_cols},
            where=sa.not_(_late_start(t.c.in_progress, ins.excluded.in_progress)),
        )
    mins = mysql.insert(t)
    late = _late_start(t.c.in_progress, mins.inserted.in_progress)
    # MySQL has no WHERE here; each column keeps its value on a late start row. MySQL
    # applies assignments left to right, so in_progress, which the test reads, goes last.
    ordered = [c for c in update_cols if c != "in_progress"] + ["in_progress"]
    return mins.on_duplicate_key_update(
        [(c, sa.case((late, t.c[c]), else_=mins.inserted[c])) for c in ordered]
    )


@attrs.frozen
class _Prepared:
    """A statement compiled once for the engine's dialect, run through the driver."""

    sql: str
    order: tuple[str, ...] | None  # positional parameter order; None: named parameters

    @classmethod
    def of(cls, stmt: sa.Executable, dialect: Dialect) -> _Prepared:
        compiled = cast(
            SQLCompiler,
            cast(sa.ClauseElement, stmt).compile(dialect=dialect, column_keys=list(CDR_COLUMNS)),
        )
        order = compiled.positiontup
        return cls(compiled.string, tuple(order) if order is not None else None)

    def params(self, row: Mapping[str, Any]) -> Any:
        if self.order is None:
            return dict(row)
        return tuple(row[c] for c in self.order)


class SQLCDRRepository(_Base):
    """A :class:`~cdrrating.repository.CDRRepository` on an SQLAlchemy engine.

    ``engine`` is an :class:`~sqlalchemy.engine.Engine` or a URL (default
    :data:`DEFAULT_URL`); ``tables`` another prefix from :func:`define_tables`;
    ``create=True`` creates missing tables; ``chunk_size`` rows go per bulk INSERT.
    """

    _kind = "CDR"

    _table = "cdrs"

    def _prepare(self) -> None:
        t = self._t
        dialect = self.engine.dialect
        upsert = _upsert_statement(self._dialect, t)
        self._upsert_many = _Prepared.of(upsert, dialect)
        returning = self._dialect == "postgresql" or (
            self._dialect == "sqlite" and dialect.insert_returning
        )
        self._upsert_one = (
            _Prepared.of(cast(Any, upsert).returning(*t.c), dialect) if returning else None
        )
        self._select_one = _Prepared.of(
            sa.select(t).where(
                t.c[TENANT_KEY] == sa.bindparam(TENANT_KEY), t.c.call_id == sa.bindparam("call_id")
            ),
            dialect,
        )

    def __repr__(self) -> str:
        return f"<SQLCDRRepository {self.engine.url.render_as_string()} table={self._t.name}>"

    def _sorted(self, rows: list[Any], key: Callable[[Any], Any]) -> list[Any]:
        # Writers that lock rows in one order cannot deadlock each other. SQLite has one
        # writer at a time, and the order there would only cost time.
        return rows if self._dialect == "sqlite" else sorted(rows, key=key)

    def add(self, record: CDRRecord) -> StoredCDR:
        cdr, outcome = unpack_cdr(record)
        now = now_micros(self._clock)
        row = cdr_row(cdr, outcome, False, created_us=now, updated_us=now)
        stored = stored_cdr(row)  # reads back before anything is written
        try:
            self._transaction(lambda conn: conn.execute(sa.insert(self._t), row), conflicts=True)
        except IntegrityError as e:
            if self._existing([(row[TENANT_KEY], cdr.call_id)]):
                raise Conflict(f"a CDR with call_id {cdr.call_id!r} is already stored") from None
            raise _storage_error(e, "writing CDRs") from e
        return stored

    def add_many(self, records: Iterable[CDRRecord | Mapping[str, Any]]) -> int:
        now = now_micros(self._clock)
        rows: list[tuple[Any, ...]] = []
        seen: dict[tuple[str, str], int] = {}
        # Everything is checked before the first row goes to the database.
        for i, record in enumerate(records):
            cdr, outcome = unpack_cdr(record, i)
            values = cdr_values(cdr, outcome, False, created_us=now, updated_us=now, position=i)
            key = (values[1], values[0])
            if key in seen:
                raise Conflict(f"records[{i}]: call_id {cdr.call_id!r} is already in this batch")
            seen[key] = i
            rows.append(values)
        if not rows:
            return 0
        ordered = self._sorted(rows, operator.itemgetter(1, 0))
        try:
            self._transaction(
                lambda conn: self._insert_many(conn, self._t, CDR_COLUMNS, ordered), conflicts=True
            )
        except IntegrityError as e:
            existing = self._existing(list(seen))
            if existing:
                first = min(seen[k] for k in existing)
                raise Conflict(
                    f"records[{first}]: a CDR with call_id {rows[first][0]!r} is "
                    "already stored; nothing of this batch was written"
                ) from None
            raise _storage_error(e, "writing CDRs") from e
        _log.info("stored a batch of %d CDRs", len(rows))
        return len(rows)

    def upsert(self, record: CDRRecord, *, in_progress: bool = False) -> StoredCDR:
        cdr, outcome = unpack_cdr(record)
        now = now_micros(self._clock)
        row = cdr_row(cdr, outcome, in_progress, created_us=now, updated_us=now)
        one = self._upsert_one or self._upsert_many
        select = self._select_one

        def work(conn: Connection) -> StoredCDR:
            cursor = _driver_execute(conn, one.sql, one.params(row))
            written = cursor.fetchone() if self._upsert_one is not None else None
            if written is None:
                # A late start row changed nothing: what is stored is the completion.
                cursor.close()
                cursor = _driver_execute(conn, select.sql, select.params(row))
                written = cursor.fetchone()
            names = [d[0] for d in cursor.description]
            cursor.close()
            # Read back inside the transaction: if it could not be, nothing is written.
            return stored_cdr(dict(zip(names, written, strict=True)))

        return self._transaction(work)

    def upsert_many(
        self, records: Iterable[CDRRecord | Mapping[str, Any]], *, in_progress: bool = False
    ) -> int:
        now = now_micros(self._clock)
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        for i, record in enumerate(records):
            cdr, outcome = unpack_cdr(record, i)
            values = cdr_values(
                cdr, outcome, in_progress, created_us=now, updated_us=now, position=i
            )
            # The last record of a call wins, as if they had been upserted one by one.
            rows[(values[1], values[0])] = values
        if not rows:
            return 0
        prepared = self._upsert_many
        order = prepared.order
        batch = self._sorted(list(rows.values()), operator.itemgetter(1, 0))
        if order is None:
            params: list[Any] = [dict(zip(CDR_COLUMNS, v, strict=True)) for v in batch]
        elif order == CDR_COLUMNS:
            params = batch
        else:
            pick = operator.itemgetter(*(CDR_COLUMNS.index(c) for c in order))
            params = [pick(v) for v in batch]

        def work(conn: Connection) -> None:
            for chunk in _chunks(params, self._chunk):
                conn.exec_driver_sql(prepared.sql, list(chunk))

        self._transaction(work)
        return len(batch)

    def get(self, call_id: str, *, tenant: str | None = None) -> StoredCDR:
        return stored_cdr(self._get(call_id, tenant))

    def replace(
        self, record: CDRRecord, *, tenant: str | None = None, in_progress: bool = False
    ) -> StoredCDR:
        cdr, outcome = unpack_cdr(record)
        check_same_tenant(tenant, cdr.tenant)

        def work(conn: Connection) -> StoredCDR:
            old = self._lock_row(conn, cdr.call_id, cdr.tenant)
            row = cdr_row(
                cdr,
                outcome,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            stored = stored_cdr(row)
            self._update_row(conn, row)
            return stored

        return self._transaction(work)

    def update(
        self, call_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredCDR:
        def work(conn: Connection) -> StoredCDR:
            old = self._lock_row(conn, call_id, tenant)
            cdr, outcome, in_progress = patch_cdr(stored_cdr(old), changes)
            row = cdr_row(
                cdr,
                outcome,
                in_progress,
                created_us=old["created_at_us"],
                updated_us=now_micros(self._clock),
            )
            stored = stored_cdr(row)
            self._update_row(conn, row)
            return stored

        return self._transaction(work)

    def delete(self, call_id: str, *, tenant: str | None = None) -> None:
        self._delete(call_id, tenant)

    def query(self, query: Query | None = None) -> Page[StoredCDR]:
        compiled = compile_query(CDR_ENTITY, query, self._codec)
        return cast(Page[StoredCDR], self._query(compiled, stored_cdr))

    def count(self, query: Query | None = None) -> int:
        return self._count(compile_query(CDR_ENTITY, query, self._codec))

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
        scope = None if tenant is None else check_tenant(tenant)
        t = self._t
        order = (t.c.started_at_us, t.c.call_id, t.c[TENANT_KEY])

        def work(conn: Connection) -> int:
            # One transaction: every batch is read (its rows locked) and archived before
            # anything is deleted, so an archive that fails at any batch deletes nothing.
            keys: list[tuple[str, str]] = []
            after: tuple[Any, ...] | None = None
            while True:
                stmt = sa.select(t).where(t.c.started_at_us < cutoff)
                if scope is not None:
                    stmt = stmt.where(t.c[TENANT_KEY] == scope)
                if after is not None:
                    stmt = stmt.where(sa.tuple_(*order) > sa.tuple_(*after))
                stmt = stmt.order_by(*order).limit(batch_size).with_for_update()
                rows = [r._mapping for r in conn.execute(stmt)]
                if not rows:
                    break
                if archive is not None:
                    archive([stored_cdr(r) for r in rows])
                keys.extend((r[TENANT_KEY], r["call_id"]) for r in rows)
                last = rows[-1]
                after = (last["started_at_us"], last["call_id"], last[TENANT_KEY])
                if len(rows) < batch_size:
                    break
            # By identity, not by the cut-off: a row written since it was read is not
            # deleted unarchived.
            for chunk in _chunks(keys, _IN_CHUNK):
                conn.execute(
                    sa.delete(t).where(sa.tuple_(t.c[TENANT_KEY], t.c.call_id).in_(list(chunk)))
                )
            return len(keys)

        return self._transaction(work)


class SQLRateRepository(_Base):
    """A :class:`~cdrrating.repository.RateRepository` on an SQLAlchemy engine."""

    _kind = "rate"

    _table = "rates"

    def __repr__(self) -> str:
        return f"<SQLRateRepository {self.engine.url.render_as_string()} table={self._t.name}>"

    def _check_plans(self, conn: Connection, written: Sequence[Rate]) -> None:
        """Refuse a write that would make a tenant's deck ambiguous, in the write's own
        transaction, with the tenant's deck locked against concurrent writers."""
        t = self._t
        by_tenant: dict[str | None, dict[str, Rate]] = {}
        for r in written:
            assert r.id is not None
            by_tenant.setdefault(r.tenant, {})[r.id] = r
        for tenant in sorted(by_tenant, key=tenant_key):
            new = by_tenant[tenant]
            key = tenant_key(tenant)
            self._lock_deck(conn, key)
            prefixes = sorted({r.prefix for r in new.values()})
            kept: list[Rate] = []
            for chunk in _chunks(prefixes, _IN_CHUNK):
                stmt = sa.select(t).where(t.c[TENANT_KEY] == key, t.c.prefix.in_(chunk))
                kept.extend(
                    stored_rate(r._mapping).rate
                    for r in conn.execute(stmt)
                    if r._mapping["id"] not in new
                )
            check_plan(tenant, kept + list(new.values()))

    def _lock_deck(self, conn: Connection, key: str) -> None:
        if self._dialect == "postgresql":
            # A transaction-scoped lock on (table, tenant): two writers to one deck take
            # turns, so neither checks the deck while the other is changing it.
            digest = hashlib.blake2b(f"{self._t.name}\x00{key}".encode(), digest_size=8)
            conn.execute(
                sa.select(
                    sa.func.pg_advisory_xact_lock(
                        int.from_bytes(digest.digest(), "big", signed=True)
                    )
                )
            )
        elif self._dialect in ("mysql", "mariadb"):
            # InnoDB locks the tenant's index range, gaps included, until commit.
            conn.execute(
                sa.select(self._t.c.id).where(self._t.c[TENANT_KEY] == key).with_for_update()
            )
        # SQLite: write transactions begin with BEGIN IMMEDIATE, one writer at a time.

    def add(self, rate: Rate) -> StoredRate:
        r = unpack_rate(rate)
        now = now_micros(self._clock)
        row = rate_row(r, now, now)

        def work(conn: Connection) -> None:
            self._check_plans(conn, [r])
            conn.execute(sa.insert(self._t), row)

        try:
            self._transaction(work, conflicts=True)
        except IntegrityError as e:
            if self._existing([(row[TENANT_KEY], row["id"])]):
                raise Conflict(f"a rate with id {row['id']!r} is already stored") from None
            raise _storage_error(e, "writing rates") from e
        return stored_rate(row)

    def add_many(self, rates: Iterable[Rate | Mapping[str, Any]]) -> int:
        now = now_micros(self._clock)
        rows: list[dict[str, Any]] = []
        written: list[Rate] = []
        seen: dict[tuple[str, str], int] = {}
        for i, rate in enumerate(rates):
            r = unpack_rate(rate, i)
            row = rate_row(r, now, now, i)
            key = (row[TENANT_KEY], row["id"])
            if key in seen:
                raise Conflict(f"records[{i}]: rate id {row['id']!r} is already in this batch")
            seen[key] = i
            rows.append(row)
            written.append(r)
        if not rows:
            return 0
        ordered = sorted(rows, key=operator.itemgetter(TENANT_KEY, "id"))
        values = [tuple(r.values()) for r in ordered]

        def work(conn: Connection) -> None:
            self._check_plans(conn, written)
            self._insert_many(conn, self._t, RATE_COLUMNS, values)

        try:
            self._transaction(work, conflicts=True)
        except IntegrityError as e:
            existing = self._existing(list(seen))
            if existing:
                first = min(seen[k] for k in existing)
                raise Conflict(
                    f"records[{first}]: a rate with id {rows[first]['id']!r} is already "
                    "stored; nothing of this batch was written"
                ) from None
            raise _storage_error(e, "writing rates") from e
        return len(rows)

    def get(self, rate_id: str, *, tenant: str | None = None) -> StoredRate:
        return stored_rate(self._get(rate_id, tenant))

    def replace(self, rate: Rate, *, tenant: str | None = None) -> StoredRate:
        if not isinstance(rate, Rate) or rate.id is None:
            raise ValidationError("rate", rate, "a Rate with an id (the rate to replace)")
        check_same_tenant(tenant, rate.tenant)
        return self._transaction(lambda conn: self._write(conn, rate, rate.tenant, None))

    def update(
        self, rate_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredRate:
        return self._transaction(lambda conn: self._write(conn, rate_id, tenant, changes))

    def _write(
        self, conn: Connection, target: Any, tenant: Any, changes: Mapping[str, Any] | None
    ) -> StoredRate:
        rate_id = target.id if isinstance(target, Rate) else target
        old = self._lock_row(conn, rate_id, tenant)
        rate = target if changes is None else patch_rate(stored_rate(old).rate, changes)
        row = rate_row(rate, old["created_at_us"], now_micros(self._clock))
        self._check_plans(conn, [rate])
        self._update_row(conn, row)
        return stored_rate(row)

    def delete(self, rate_id: str, *, tenant: str | None = None) -> None:
        self._delete(rate_id, tenant)

    def query(self, query: Query | None = None) -> Page[StoredRate]:
        compiled = compile_query(RATE_ENTITY, query, self._codec)
        return cast(Page[StoredRate], self._query(compiled, stored_rate))

    def count(self, query: Query | None = None) -> int:
        return self._count(compile_query(RATE_ENTITY, query, self._codec))

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
        stmt = sa.select(t).where(t.c[TENANT_KEY] == check_tenant(tenant))
        at_us = plan_instant(at)
        if at_us is not None:
            stmt = stmt.where(
                sa.or_(t.c.valid_from_us.is_(None), t.c.valid_from_us <= at_us),
                sa.or_(t.c.valid_until_us.is_(None), t.c.valid_until_us > at_us),
            )
        rows = self._read(lambda conn: [r._mapping for r in conn.execute(stmt)])
        return RatePlan(
            [stored_rate(r).rate for r in rows],
            currency=currency,
            rounding=rounding,
            quantum_micros=quantum_micros,
            access_prefixes=access_prefixes,
            name=name if name is not None else (tenant or ""),
            **plan_options,
        )


def _session_upsert(dialect: str, t: sa.Table) -> sa.Executable:
    """INSERT ... or update by id, unless the stored session was updated later
    (:func:`cdrrating._storage.sessions.stale`); one row or many."""
    update_cols = [c for c in SESSION_COLUMNS if c not in ("id", "created_at_us")]
    if dialect in ("postgresql", "sqlite"):
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
        return ins.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={c: ins.excluded[c] for c in update_cols},
            where=t.c.updated_at_us <= ins.excluded.updated_at_us,
        )
    mins = mysql.insert(t)
    older = mins.inserted.updated_at_us < t.c.updated_at_us
    # Assignments apply left to right: updated_at_us, which the test reads, goes last.
    ordered = [c for c in update_cols if c != "updated_at_us"] + ["updated_at_us"]
    return mins.on_duplicate_key_update(
        [(c, sa.case((older, t.c[c]), else_=mins.inserted[c])) for c in ordered]
    )


class SQLSessionRepository(_Base):
    """A :class:`~cdrrating.repository.SessionRepository` on an SQLAlchemy engine: the
    table ``<prefix>sessions`` (indexed columns for the list API's common filters, the
    whole session as JSON text in ``data``). Arguments as for :class:`SQLCDRRepository`.
    """

    _kind = "session"

    _table = "sessions"

    def _prepare(self) -> None:
        self._upsert = _session_upsert(self._dialect, self._t)

    def __repr__(self) -> str:
        return f"<SQLSessionRepository {self.engine.url.render_as_string()} table={self._t.name}>"

    def _ids_stored(self, ids: Sequence[str]) -> set[str]:
        t = self._t

        def work(conn: Connection) -> set[str]:
            found: set[str] = set()
            for chunk in _chunks(ids, _IN_CHUNK):
                found.update(conn.scalars(sa.select(t.c.id).where(t.c.id.in_(list(chunk)))))
            return found

        return self._read(work)

    def add(self, session: ChargingSession) -> StoredSession:
        row = session_row(session, now_micros(self._clock))
        try:
            self._transaction(lambda conn: conn.execute(sa.insert(self._t), row), conflicts=True)
        except IntegrityError as e:
            if self._ids_stored([row["id"]]):
                raise Conflict(f"a session with id {row['id']!r} is already stored") from None
            raise _storage_error(e, "writing sessions") from e
        return stored_session(row)

    def add_many(self, sessions: Iterable[ChargingSession | Mapping[str, Any]]) -> int:
        now = now_micros(self._clock)
        rows: list[tuple[Any, ...]] = []
        seen: dict[str, int] = {}
        for i, session in enumerate(sessions):
            row = session_row(session, now, i)
            if row["id"] in seen:
                raise Conflict(f"records[{i}]: session id {row['id']!r} is already in this batch")
            seen[row["id"]] = i
            rows.append(tuple(row[c] for c in SESSION_COLUMNS))
        if not rows:
            return 0
        ordered = rows if self._dialect == "sqlite" else sorted(rows, key=operator.itemgetter(0))
        try:
            self._transaction(
                lambda conn: self._insert_many(conn, self._t, SESSION_COLUMNS, ordered),
                conflicts=True,
            )
        except IntegrityError as e:
            existing = self._ids_stored(list(seen))
            if existing:
                first = min(seen[k] for k in existing)
                raise Conflict(
                    f"records[{first}]: a session with id {rows[first][0]!r} is already "
                    "stored; nothing of this batch was written"
                ) from None
            raise _storage_error(e, "writing sessions") from e
        return len(rows)

    def upsert(self, session: ChargingSession) -> StoredSession:
        row = session_row(session, now_micros(self._clock))
        t = self._t

        def work(conn: Connection) -> StoredSession:
            conn.execute(self._upsert, row)
            written = conn.execute(sa.select(t).where(t.c.id == row["id"])).one()
            return stored_session(written._mapping)

        return self._transaction(work)

    def upsert_many(self, sessions: Iterable[ChargingSession | Mapping[str, Any]]) -> int:
        now = now_micros(self._clock)
        batch: dict[str, dict[str, Any]] = {}
        for i, session in enumerate(sessions):
            row = session_row(session, now, i)
            old = batch.get(row["id"])
            if old is None or not stale(old["updated_at_us"], row["updated_at_us"]):
                batch[row["id"]] = row
        if not batch:
            return 0
        rows = [batch[k] for k in sorted(batch)]  # one lock order: no deadlocks

        def work(conn: Connection) -> None:
            for chunk in _chunks(rows, self._chunk):
                conn.execute(self._upsert, list(chunk))

        self._transaction(work)
        return len(rows)

    def get(self, session_id: str) -> StoredSession:
        t = self._t
        stmt = sa.select(t).where(t.c.id == check_id("session", session_id))
        row = self._read(lambda conn: conn.execute(stmt).first())
        if row is None:
            raise not_found("session", session_id)
        return stored_session(row._mapping)

    def delete(self, session_id: str) -> None:
        t = self._t
        stmt = sa.delete(t).where(t.c.id == check_id("session", session_id))

        def work(conn: Connection) -> None:
            if conn.execute(stmt).rowcount == 0:
                raise not_found("session", session_id)

        self._transaction(work)

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
        return cast(Page[StoredSession], self._query(compiled, stored_session))

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
        return self._count(compiled)
