"""Tenants' plan settings in SQL, beside the rates (needs ``pip install 'cdrrating[sql]'``).

:class:`SQLPlanSettingsRepository` keeps each tenant's
:class:`~cdrrating.plancache.PlanSettings` (currency, rounding, time zone, …) in one
table, ``cdrrating_plan_settings``, so that a tenant's deck and the currency it is
priced in live in one database. :class:`SQLPlanGenerations` keeps the write counters
that let the :class:`~cdrrating.plancache.PlanCache` of every process see rate writes
made through the others (table ``cdrrating_plan_generations``). The tables are in this
module's own :data:`metadata` (same naming convention as :data:`cdrrating.sql.metadata`);
add both to an Alembic ``target_metadata``.
"""

from __future__ import annotations

try:
    import sqlalchemy as sa
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cdrrating.sqlplans needs SQLAlchemy, which is not installed: pip install 'cdrrating[sql]'"
    ) from _error

import hashlib
import json
from collections.abc import Hashable, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cdrrating._storage.rows import check_tenant
from cdrrating.errors import NotFound, StorageError, ValidationError
from cdrrating.plancache import PlanSettings, check_settings
from cdrrating.sql import NAMING_CONVENTION, make_engine

__all__ = [
    "SQLPlanGenerations",
    "SQLPlanSettingsRepository",
    "define_plan_generations_table",
    "define_plan_settings_table",
    "metadata",
]


def _check_prefix(prefix: str) -> None:
    if not (prefix.replace("_", "").isalnum() and prefix.isascii() and len(prefix) <= 30):
        raise ValidationError("prefix", prefix, "ASCII letters, digits and '_', at most 30")


def define_plan_settings_table(
    prefix: str = "cdrrating_", metadata: sa.MetaData | None = None
) -> sa.Table:
    """The table ``<prefix>plan_settings``, in ``metadata`` or a new ``MetaData``.

    Rows are keyed by the SHA-256 of the tenant (``''`` for none), hex: a key of ASCII
    letters that every database compares the same way, whatever its collation (MariaDB's
    default would make ``Acme`` and ``acme`` one tenant). ``tenant`` keeps it readable.
    """
    _check_prefix(prefix)
    md = metadata if metadata is not None else sa.MetaData(naming_convention=NAMING_CONVENTION)
    return sa.Table(
        f"{prefix}plan_settings",
        md,
        sa.Column("tenant_hash", sa.String(64), primary_key=True, comment="sha256 of tenant"),
        sa.Column("tenant", sa.String(255), comment="the tenant, NULL for none"),
        sa.Column("settings", sa.Text(), nullable=False, comment="JSON: PlanSettings"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def define_plan_generations_table(
    prefix: str = "cdrrating_", metadata: sa.MetaData | None = None
) -> sa.Table:
    """The table ``<prefix>plan_generations``, in ``metadata`` or a new ``MetaData``:
    per tenant (keyed as the settings are; ``*`` counts writes to every tenant), the
    rate writes begun and ended through the caches."""
    _check_prefix(prefix)
    md = metadata if metadata is not None else sa.MetaData(naming_convention=NAMING_CONVENTION)
    return sa.Table(
        f"{prefix}plan_generations",
        md,
        sa.Column("tenant_hash", sa.String(64), primary_key=True, comment="sha256 of tenant"),
        sa.Column("tenant", sa.String(255), comment="the tenant, NULL for none or every"),
        sa.Column("begun", sa.BigInteger(), nullable=False, comment="rate writes begun"),
        sa.Column("ended", sa.BigInteger(), nullable=False, comment="rate writes ended"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


#: This module's tables, for ``metadata.create_all`` or an Alembic ``target_metadata``.
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
plan_settings_table = define_plan_settings_table(metadata=metadata)
plan_generations_table = define_plan_generations_table(metadata=metadata)
_EVERY = "*"  # not a hex digest: the row of writes to every tenant


def _hash(tenant: str | None) -> str:
    return hashlib.sha256(check_tenant(tenant).encode("utf-8")).hexdigest()


class SQLPlanSettingsRepository:
    """A :class:`~cdrrating.plancache.PlanSettingsRepository` in SQL.

    ``engine_or_url`` is an engine (e.g. ``SQLRateRepository(...).engine``, so the
    settings live beside the decks) or a URL for :func:`cdrrating.sql.make_engine`.
    Database failures raise :class:`~cdrrating.StorageError`.
    """

    def __init__(
        self,
        engine_or_url: Engine | str | None = None,
        *,
        table: sa.Table | None = None,
        create: bool = False,
    ) -> None:
        self.engine = (
            engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
        )
        self.table = table if table is not None else plan_settings_table
        if create:
            self._run(lambda conn: self.table.create(conn, checkfirst=True), "creating")

    def __repr__(self) -> str:
        return f"<SQLPlanSettingsRepository {self.engine.url.render_as_string()}>"

    def _run(self, work: Any, what: str) -> Any:
        try:
            with self.engine.begin() as conn:
                return work(conn)
        except SQLAlchemyError as error:
            raise StorageError(f"{what} plan settings failed: {error}") from error

    def get(self, tenant: str | None) -> PlanSettings:
        key, t = _hash(tenant), self.table
        text = self._run(
            lambda conn: conn.execute(
                sa.select(t.c.settings).where(t.c.tenant_hash == key)
            ).scalar_one_or_none(),
            "reading",
        )
        if text is None:
            raise NotFound(f"no plan settings are stored for tenant {tenant!r}")
        return PlanSettings.from_mapping(json.loads(text))

    def put(self, tenant: str | None, settings: PlanSettings) -> PlanSettings:
        key, text = _hash(tenant), json.dumps(check_settings(settings).to_mapping())
        t = self.table

        def work(conn: Any) -> None:
            changed = conn.execute(
                t.update().where(t.c.tenant_hash == key).values(settings=text)
            ).rowcount
            if not changed:
                conn.execute(t.insert().values(tenant_hash=key, tenant=tenant, settings=text))

        try:
            self._run(work, "writing")
        except StorageError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
            # Two first writes of one tenant raced and the other inserted first: this
            # one is the later write, and now finds the row to update.
            self._run(work, "writing")
        return settings

    def delete(self, tenant: str | None) -> None:
        key, t = _hash(tenant), self.table
        gone = self._run(
            lambda conn: conn.execute(t.delete().where(t.c.tenant_hash == key)).rowcount,
            "deleting",
        )
        if not gone:
            raise NotFound(f"no plan settings are stored for tenant {tenant!r}")


class SQLPlanGenerations:
    """A :class:`~cdrrating.plancache.PlanGenerations` in SQL: give the same database
    to the :class:`~cdrrating.plancache.PlanCache` of every process.

    A write through a cache counts in (``begun``) in a transaction of its own before the
    rate write starts, and out (``ended``) after it has committed or failed; a cache
    reads the tenant's row and the every-tenant row in one primary-key query before it
    serves a plan, and serves its cached plan only if both are unchanged since the plan
    was built and no write is in flight (begun = ended). A process that dies between
    the two leaves a write in flight: the tenant's plans are then built for every call
    (correct, slower) until :meth:`repair` is called for it.
    """

    def __init__(
        self,
        engine_or_url: Engine | str | None = None,
        *,
        table: sa.Table | None = None,
        create: bool = False,
    ) -> None:
        self.engine = (
            engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
        )
        self.table = t = table if table is not None else plan_generations_table
        # Built once: this query runs before every rating, so it should cost the round
        # trip and little else (an OR of two keys compiles to one cached statement).
        self._stamp = sa.select(t.c.tenant_hash, t.c.begun, t.c.ended).where(
            sa.or_(t.c.tenant_hash == sa.bindparam("key"), t.c.tenant_hash == _EVERY)
        )
        if create:
            _run(self.engine, lambda conn: self.table.create(conn, checkfirst=True), "creating")

    def __repr__(self) -> str:
        return f"<SQLPlanGenerations {self.engine.url.render_as_string()}>"

    def _rows(self, tenants: Sequence[str | None], every: bool) -> list[tuple[str, str | None]]:
        rows = {_hash(t): t for t in tenants}
        if every:
            rows[_EVERY] = None
        # One order for every writer: two writers never wait for each other's rows.
        return sorted(rows.items())

    def begin(self, tenants: Sequence[str | None], *, every: bool = False) -> None:
        rows, t = self._rows(tenants, every), self.table

        def work(conn: Any) -> None:
            for key, tenant in rows:
                bumped = conn.execute(
                    t.update().where(t.c.tenant_hash == key).values(begun=t.c.begun + 1)
                ).rowcount
                if not bumped:
                    conn.execute(
                        t.insert().values(tenant_hash=key, tenant=tenant, begun=1, ended=0)
                    )

        try:
            _run(self.engine, work, "writing")
        except StorageError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
            # Another process inserted the tenant's first row meanwhile: bump it.
            _run(self.engine, work, "writing")

    def end(self, tenants: Sequence[str | None], *, every: bool = False) -> None:
        rows, t = self._rows(tenants, every), self.table

        def work(conn: Any) -> None:
            for key, _tenant in rows:
                conn.execute(t.update().where(t.c.tenant_hash == key).values(ended=t.c.ended + 1))

        _run(self.engine, work, "writing")

    def stamp(self, tenant: str | None) -> Hashable | None:
        key = _hash(tenant)
        try:
            with self.engine.connect() as conn:  # one statement: no write, nothing to commit
                found = conn.execute(self._stamp, {"key": key}).all()
        except SQLAlchemyError as error:
            raise StorageError(f"reading plan generations failed: {error}") from error
        counts = {row.tenant_hash: (row.begun, row.ended) for row in found}
        mine, every = counts.get(key, (0, 0)), counts.get(_EVERY, (0, 0))
        if mine[0] != mine[1] or every[0] != every[1]:
            return None
        return (mine[0], every[0])

    def repair(self, tenant: str | None = None, *, every: bool = False) -> None:
        """Count out the writes of ``tenant`` (and of every tenant with ``every``) that
        were never counted out because their process died. Only when no write to it is
        in flight: one still running would be counted out before it commits."""
        rows, t = self._rows([tenant], every), self.table
        _run(
            self.engine,
            lambda conn: conn.execute(
                t.update().where(t.c.tenant_hash.in_([k for k, _ in rows])).values(ended=t.c.begun)
            ),
            "repairing",
        )


def _run(engine: Engine, work: Any, what: str) -> Any:
    try:
        with engine.begin() as conn:
            return work(conn)
    except SQLAlchemyError as error:
        raise StorageError(f"{what} plan generations failed: {error}") from error
