"""The Mongo-style filter language: one parse into a tree, one evaluator (private)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from cdrrating._storage.entities import (
    Entity,
    Field,
    Kind,
)
from cdrrating._storage.records import (
    _BIGINT_MAX,
    parse_instant,
)
from cdrrating._storage.rows import (
    _check_text,
    to_micros_epoch,
)
from cdrrating.errors import (
    ValidationError,
)

# -- the Mongo-style filter -----------------------------------------------------------------

# A parsed filter is a small tree of tuples, the same for every adapter:
#   ("and", [node, ...]) | ("or", [node, ...])
#   ("cmp", column, op, value)        op in eq ne gt gte lt lte; value may be None for eq/ne
#   ("in", column, [values], negate)  values may hold None
#   ("exists", column, bool)
#   ("regex", column, pattern)
#   ("contains", column, folded_needle)   a literal substring (search)
# ("and", []) is true and ("or", []) false. Search and the keyset condition are built
# into the same tree (compile_query), so each adapter has one interpreter to write:
# cdrrating.memory evaluates it with evaluate(), cdrrating.sql translates it to SQL.
Node: TypeAlias = tuple[Any, ...]
TRUE: Node = ("and", [])
FALSE: Node = ("or", [])

_CMP = {"$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def parse_filter(entity: Entity, spec: Mapping[str, Any], path: str = "where") -> Node:
    """Validate a MongoDB-style filter and bring its values to storage form."""
    if not isinstance(spec, Mapping):
        raise ValidationError(path, spec, "a mapping")
    parts: list[Node] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not value:
                raise ValidationError(f"{path}.{key}", value, "a non-empty list of filters")
            parts.append(
                (
                    key[1:],
                    [parse_filter(entity, v, f"{path}.{key}[{i}]") for i, v in enumerate(value)],
                )
            )
        elif isinstance(key, str) and key.startswith("$"):
            raise ValidationError(f"{path}.{key}", value, "a field name, '$and' or '$or'")
        else:
            field = _filter_field(entity, key, path)
            parts.extend(_parse_field_ops(field, value, f"{path}.{key}"))
    return ("and", parts)


def _filter_field(entity: Entity, name: Any, path: str) -> Field:
    field = entity.fields.get(name) if isinstance(name, str) else None
    if field is None or field.kind is Kind.JSON:
        names = ", ".join(n for n, f in entity.fields.items() if f.kind is not Kind.JSON)
        raise ValidationError(f"{path}.{name}", name, f"a field name: {names}")
    return field


def _parse_field_ops(field: Field, value: Any, path: str) -> list[Node]:
    col = field.column
    if not (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    ):
        return [cmp(field, "eq", _coerce(field, value, path, allow_none=True))]
    out: list[Node] = []
    for op, arg in value.items():
        where = f"{path}.{op}"
        if op in _CMP:
            allow_none = op in ("$eq", "$ne")
            out.append(cmp(field, _CMP[op], _coerce(field, arg, where, allow_none=allow_none)))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list | tuple | set | frozenset):
                raise ValidationError(where, arg, "a list of values")
            values = [_coerce(field, v, where, allow_none=True) for v in arg]
            out.append(("in", col, values, op == "$nin"))
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise ValidationError(where, arg, "true or false")
            out.append(("exists", col, arg))
        elif op == "$regex":
            if field.kind not in (Kind.STR, Kind.ENUM):
                raise ValidationError(where, arg, f"no $regex: {field.name} is not text")
            if not isinstance(arg, str):
                raise ValidationError(where, arg, "a regular expression as a str")
            _check_text(where, arg, 1000)
            try:
                re.compile(arg)
            except re.error as e:
                raise ValidationError(where, arg, f"a valid regular expression ({e})") from None
            out.append(("regex", col, arg))
        else:
            raise ValidationError(
                where, arg, "an operator: $eq $ne $gt $gte $lt $lte $in $nin $exists $regex"
            )
    return out


def _coerce(field: Field, value: Any, path: str, *, allow_none: bool) -> Any:
    if value is None:
        if allow_none:
            return None
        raise ValidationError(path, value, "a value (None only with $eq, $ne, $in, $nin)")
    kind = field.kind
    if kind is Kind.STR:
        if not isinstance(value, str):
            raise ValidationError(path, value, "a str")
        _check_text(path, value, None)
        return value
    if kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(path, value, "an int")
        if not -_BIGINT_MAX - 1 <= value <= _BIGINT_MAX:
            raise ValidationError(path, value, "an int that fits 64 bits")
        return value
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise ValidationError(path, value, "true or false")
        return value
    if kind is Kind.TIME:
        dt = parse_instant(path, value)
        if dt is None:
            raise ValidationError(path, value, "a timestamp")
        return to_micros_epoch(dt)
    assert field.parse is not None
    try:
        return field.parse(value).value
    except ValidationError as e:
        raise ValidationError(path, value, e.expected) from None


def cmp(field: Field, op: str, value: Any) -> Node:
    """A comparison node. Ordering comparisons of booleans are rewritten as equalities
    (False < True), which every database can evaluate on its boolean column."""
    col = field.column
    if field.kind is Kind.BOOL and op in _ORDER and value is not None:
        below = {"lt": False, "lte": True}.get(op)
        if below is not None:  # col < value, col <= value
            keep = [b for b in (False, True) if b < value or (below and b == value)]
        else:  # col > value, col >= value
            keep = [b for b in (False, True) if b > value or (op == "gte" and b == value)]
        if not keep:
            return FALSE
        if len(keep) == 2:
            return ("exists", col, True)
        return ("cmp", col, "eq", keep[0])
    return ("cmp", col, op, value)


def evaluate(node: Node, row: Mapping[str, Any]) -> bool:
    """The filter on one storage row, with SQL's meaning (a NULL matches no comparison
    but ``$ne``/``$nin`` match it, as in MongoDB)."""
    tag = node[0]
    if tag == "and":
        return all(evaluate(n, row) for n in node[1])
    if tag == "or":
        return any(evaluate(n, row) for n in node[1])
    v = row[node[1]]
    if tag == "cmp":
        op, arg = node[2], node[3]
        if op == "eq":
            return bool(v == arg) if arg is not None else v is None
        if op == "ne":
            return v is None or v != arg if arg is not None else v is not None
        if v is None:
            return False
        return bool(_ORDER[op](v, arg))
    if tag == "in":
        values, negate = node[2], node[3]
        hit = v in values if v is not None else None in values
        return not hit if negate else hit
    if tag == "exists":
        return (v is not None) is node[2]
    if tag == "regex":
        return v is not None and re.search(node[2], v) is not None
    if tag == "contains":
        return v is not None and node[2] in v
    raise AssertionError(tag)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
