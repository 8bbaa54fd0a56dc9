"""Dotted paths into JSON text columns, in each dialect's SQL (private; needs SQLAlchemy,
imported by :mod:`cdrrating.sql` only).

The meaning is :mod:`cdrrating._storage.paths` (typed comparison); here it is spelt with
SQLite's ``json_type``/``json_extract``, PostgreSQL's ``jsonb`` operators (``#>``,
``#>>``, ``jsonb_typeof``, casts) and MariaDB/MySQL's ``JSON_EXTRACT``/``JSON_TYPE``/
``JSON_UNQUOTE``. Paths are bound as parameters (a ``'$.a.b'`` text, or a ``text[]``
on PostgreSQL) built from segments :func:`paths.check_segments` accepted; values are
bound too. Every value read is guarded by its type (``CASE WHEN type THEN value END``),
so a cast never meets a value of another type.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from cdrrating._storage import paths

_NUMERIC = sa.Numeric(65, 30, asdecimal=True)


def extracted(
    column: sa.ColumnElement[Any], path: tuple[str, ...], dialect: str
) -> sa.ColumnElement[Any]:
    """PostgreSQL and MariaDB/MySQL: the JSON value at ``path`` (jsonb, or JSON text), to
    select once and read with ``JsonValue(<that column>, (), dialect)``."""
    if dialect == "postgresql":
        keys = sa.bindparam(None, list(path), type_=postgresql.ARRAY(sa.Text()))
        return sa.cast(column, postgresql.JSONB).op("#>", return_type=postgresql.JSONB)(keys)
    dotted = "$." + ".".join(path)
    return sa.func.json_extract(column, sa.bindparam(None, dotted, type_=sa.Text()))


class JsonValue:
    """The value at one path of one JSON column, as SQL expressions of a dialect."""

    def __init__(self, column: sa.ColumnElement[Any], path: tuple[str, ...], dialect: str):
        self.dialect = dialect
        dotted = "$." + ".".join(path)
        value: sa.ColumnElement[Any]
        names: dict[str, str | tuple[str, ...]]
        if dialect == "postgresql":
            # An empty path: ``column`` is already the jsonb value (see extracted()).
            doc = sa.cast(column, postgresql.JSONB) if path else column
            keys = sa.bindparam(None, list(path), type_=postgresql.ARRAY(sa.Text()))
            value = doc.op("#>", return_type=postgresql.JSONB)(keys) if path else column
            self.type: sa.ColumnElement[Any] = sa.func.jsonb_typeof(value)
            names = {"null": "null", "number": ("number",), "string": "string", "bool": "boolean"}
            text: sa.ColumnElement[Any] = doc.op("#>>", return_type=sa.Text())(
                sa.bindparam(None, list(path), type_=postgresql.ARRAY(sa.Text()))
            )
            self._text: sa.ColumnElement[Any] = sa.collate(text, "C")
            self._number: sa.ColumnElement[Any] = sa.cast(value, sa.Numeric())
        elif dialect == "sqlite":
            where = sa.bindparam(None, dotted, type_=sa.Text())
            self.type = sa.func.json_type(column, where)
            names = {
                "null": "null",
                "number": ("integer", "real"),
                "string": "text",
                "bool": ("true", "false"),
            }
            extracted = sa.func.json_extract(column, sa.bindparam(None, dotted, type_=sa.Text()))
            self._text = extracted
            self._number = extracted
        else:  # MariaDB / MySQL; an empty path: ``column`` is the extracted value
            value = (
                sa.func.json_extract(column, sa.bindparam(None, dotted, type_=sa.Text()))
                if path
                else column
            )
            self.type = sa.func.json_type(value)
            names = {
                "null": "NULL",
                "number": ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL"),
                "string": "STRING",
                "bool": "BOOLEAN",
            }
            unquoted = sa.func.json_unquote(value)
            # JSON_UNQUOTE gives utf8mb4_bin, which pads: compare by code point instead.
            bin_ = "utf8mb4_nopad_bin" if dialect == "mariadb" else "utf8mb4_0900_bin"
            self._text = sa.collate(unquoted, bin_)
            self._number = sa.cast(unquoted, mysql.DECIMAL(65, 30))
        self._names = names

    def _is(self, name: str) -> sa.ColumnElement[bool]:
        spelt = self._names[name]
        if isinstance(spelt, tuple):
            return self.type.in_(spelt)
        return self.type == spelt

    @property
    def present(self) -> sa.ColumnElement[bool]:
        """Not missing and not null (never NULL itself)."""
        return sa.and_(self.type.is_not(None), self.type != self._names["null"])

    def _bool_int(self) -> sa.ColumnElement[Any]:
        if self.dialect == "sqlite":
            return sa.case((self.type == "true", 1), else_=0)
        return sa.case((self._text == "true", 1), else_=0)

    def compare(self, op: str, arg: Any) -> sa.ColumnElement[bool]:
        """``value <op> arg`` within ``arg``'s class; NULL or false outside it."""
        rank = paths.value_class(arg)
        guard: sa.ColumnElement[Any]
        value: sa.ColumnElement[Any]
        param: sa.ColumnElement[Any]
        if rank == paths.STRING:
            guard, value, param = self._is("string"), self._text, sa.literal(arg, sa.Text())
            if self.dialect == "postgresql":
                param = sa.collate(param, "C")
        elif rank == paths.BOOL:
            guard, value, param = self._is("bool"), self._bool_int(), sa.literal(int(arg))
        else:
            guard = self._is("number")
            value = sa.case((guard, self._number))
            param = self._number_param(arg)
        test = {
            "eq": value == param,
            "ne": value != param,
            "gt": value > param,
            "gte": value >= param,
            "lt": value < param,
            "lte": value <= param,
        }[op]
        return sa.and_(guard, test)

    def _number_param(self, arg: int | float) -> sa.ColumnElement[Any]:
        if self.dialect == "sqlite":
            return sa.literal(arg)
        # The shortest text that reads back as the float: exact in NUMERIC/DECIMAL, and
        # the order of these decimals is the order of the floats.
        exact = Decimal(repr(arg)) if isinstance(arg, float) else Decimal(arg)
        return sa.literal(exact, _NUMERIC)

    def equals(self, arg: Any) -> sa.ColumnElement[bool]:
        """Never NULL: true when the value is ``arg`` (None: missing or null)."""
        if arg is None:
            return sa.not_(self.present)
        return sa.func.coalesce(self.compare("eq", arg), sa.false())

    def regex(self, pattern: str) -> sa.ColumnElement[bool]:
        # The guard goes inside: SQLite would hand a number to its Python REGEXP.
        text = sa.case((self._is("string"), self._text))
        return sa.and_(self._is("string"), text.regexp_match(pattern))

    # -- sorting: (class rank, number, text), never NULL -------------------------------------

    def sort_columns(self) -> tuple[sa.ColumnElement[Any], ...]:
        rank = sa.case(
            (sa.not_(self.present), paths.NULL),
            (self._is("number"), paths.NUMBER),
            (self._is("string"), paths.STRING),
            (self._is("bool"), paths.BOOL),
            else_=paths.OTHER,
        )
        number: sa.ColumnElement[Any] = sa.case(
            (self._is("number"), self._number),
            (self._is("bool"), self._bool_int()),
            else_=0,
        )
        text: sa.ColumnElement[Any] = sa.case((self._is("string"), self._text), else_="")
        if self.dialect == "postgresql":
            text = sa.collate(text, "C")
        if self.dialect != "sqlite":
            # Cursor positions compared with it are bound as NUMERIC/DECIMAL, not BIGINT.
            number = sa.type_coerce(number, _NUMERIC)
        return rank, number, text


def path_condition(
    node: tuple[Any, ...], column: sa.ColumnElement[Any], dialect: str
) -> sa.ColumnElement[bool]:
    """One ``j*`` node of the filter tree (see ``_storage.filters``) as SQL."""
    tag = node[0]
    value = JsonValue(column, node[2], dialect)
    if tag == "jcmp":
        op, arg = node[3], node[4]
        if op == "eq":
            return value.equals(arg)
        if op == "ne":
            return sa.not_(value.equals(arg))
        return sa.func.coalesce(value.compare(op, arg), sa.false())
    if tag == "jin":
        hit = sa.or_(sa.false(), *(value.equals(a) for a in node[3]))
        return sa.not_(hit) if node[4] else hit
    if tag == "jexists":
        return value.present if node[3] else sa.not_(value.present)
    if tag == "jregex":
        return sa.func.coalesce(value.regex(node[3]), sa.false())
    raise AssertionError(tag)
