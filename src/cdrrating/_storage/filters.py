"""The Mongo-style filter language: one parse into a tree, one evaluator (private)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import attrs

from cdrrating._storage import paths
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
# and, for a dotted path into a JSON column (typed comparison, see _storage.paths):
#   ("jcmp", column, path, op, value)     value a JSON scalar; None only for eq/ne
#   ("jin", column, path, [values], negate)
#   ("jexists", column, path, bool)
#   ("jregex", column, path, pattern)
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
            ref = resolve(entity, key, f"{path}.{key}")
            if isinstance(ref, JsonPath):
                parts.extend(_parse_path_ops(ref, value, f"{path}.{key}"))
            else:
                parts.extend(_parse_field_ops(ref, value, f"{path}.{key}"))
    return ("and", parts)


@attrs.frozen
class JsonPath:
    """A value inside a JSON column: ``column`` holds a JSON object, ``path`` its keys."""

    name: str
    column: str
    path: tuple[str, ...]
    kind: Kind | None = None  # a named value's type; None: any JSON scalar


def resolve(entity: Entity, name: Any, where: str) -> Field | JsonPath:
    """What a name in a filter, a sort or ``fields`` addresses: a column, or a dotted
    path into a JSON column. Aliases (a list API's camelCase) come first."""
    if isinstance(name, str):
        canonical = entity.aliases.get(name, name)
        field = entity.fields.get(canonical)
        if field is not None and field.kind is not Kind.JSON:
            return field
        named = entity.json_names.get(canonical)
        if named is not None:
            return JsonPath(canonical, *named)
        head, dot, rest = canonical.partition(".")
        opened = entity.open_json.get(head)
        if opened is not None and dot:
            segments = paths.check_segments(name, rest.split("."), where)
            if len(opened[1]) + len(segments) > paths.MAX_DEPTH:
                paths.check_segments(name, [], where)
            return JsonPath(canonical, opened[0], opened[1] + segments)
    names = [n for n, f in entity.fields.items() if f.kind is not Kind.JSON]
    names += list(entity.json_names)
    names += [f"{n}.<key>[.<key>...]" for n in entity.open_json]
    if entity.aliases:
        names.append("or " + ", ".join(entity.aliases))
    raise ValidationError(where, name, "a field name: " + ", ".join(names))


def _parse_path_ops(ref: JsonPath, value: Any, path: str) -> list[Node]:
    col, keys = ref.column, ref.path
    typed = Field(ref.name, ref.kind) if ref.kind is not None else None

    def operand(where: str, arg: Any, *, allow_none: bool) -> Any:
        if typed is None:
            return paths.operand(where, arg, allow_none=allow_none)
        return _coerce(typed, arg, where, allow_none=allow_none)

    if not (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    ):
        return [("jcmp", col, keys, "eq", operand(path, value, allow_none=True))]
    out: list[Node] = []
    for op, arg in value.items():
        where = f"{path}.{op}"
        if op in _CMP:
            allow_none = op in ("$eq", "$ne")
            out.append(("jcmp", col, keys, _CMP[op], operand(where, arg, allow_none=allow_none)))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list | tuple | set | frozenset):
                raise ValidationError(where, arg, "a list of values")
            values = [operand(where, v, allow_none=True) for v in arg]
            out.append(("jin", col, keys, values, op == "$nin"))
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise ValidationError(where, arg, "true or false")
            out.append(("jexists", col, keys, arg))
        elif op == "$regex":
            if typed is not None and typed.kind is not Kind.STR:
                raise ValidationError(where, arg, f"no $regex: {ref.name} is not text")
            out.append(("jregex", col, keys, _pattern(where, arg)))
        else:
            raise ValidationError(
                where, arg, "an operator: $eq $ne $gt $gte $lt $lte $in $nin $exists $regex"
            )
    return out


def _pattern(where: str, arg: Any) -> str:
    if not isinstance(arg, str):
        raise ValidationError(where, arg, "a regular expression as a str")
    _check_text(where, arg, 1000)
    try:
        re.compile(arg)
    except re.error as e:
        raise ValidationError(where, arg, f"a valid regular expression ({e})") from None
    return arg


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
            out.append(("regex", col, _pattern(where, arg)))
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
    if tag[0] == "j":
        return _evaluate_path(node, paths.read(row[node[1]], node[2]))
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


def _evaluate_path(node: Node, v: Any) -> bool:
    tag = node[0]
    if tag == "jcmp":
        op, arg = node[3], node[4]
        if arg is None:
            return (v is None) is (op == "eq")
        if op == "eq":
            return paths.same(v, arg)
        if op == "ne":
            return not paths.same(v, arg)
        if paths.value_class(v) != paths.value_class(arg):
            return False
        return bool(_ORDER[op](v, arg))
    if tag == "jin":
        hit = any(v is None if a is None else paths.same(v, a) for a in node[3])
        return not hit if node[4] else hit
    if tag == "jexists":
        return (v is not None) is node[3]
    if tag == "jregex":
        return isinstance(v, str) and re.search(node[3], v) is not None
    raise AssertionError(tag)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
