"""A rate plan as a compact columnar payload, and its content hash (private).

Pickling a :class:`~cdrrating.RatePlan` writes what this module makes: one column per
:class:`~cdrrating.Rate` field in plan order (a repeated value stored once, with a code
per rate: a 287k-prefix deck has a few hundred prices and three increments), the
prefixes as one joined text, and, when the plan had been compiled for tables, that
compiled form with its arrays stored compactly. Loading it makes no Rate object and
compiles nothing: rates are made from the columns when something first asks for them.

The content hash is a sha256 of a canonical encoding of everything that takes part in
a plan's equality except its ``name``: each field of each rate (datetimes as instants),
the currency, rounding, quantum, access prefixes, time zone, holidays and band policy.
It depends on no Python hash seed, process or pickle protocol.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import itertools
import json
import operator
import pickle
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import attrs

from cdrrating.rates import Rate

#: Bumped when the payload's layout changes; a payload of another format is refused.
FORMAT = 1
_HASH_TAG = b"cdrrating.RatePlan content v1\n"
_RATER_TAG = b"cdrrating.Rater content v1\n"

# Rate's attributes in the order its pickled state lists them.
RATE_FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(Rate))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
# Unsigned codes: the narrowest that holds the count of distinct values.
_CODE_TYPES = (("B", 1 << 8), ("H", 1 << 16), ("I", 1 << 32))


class WireError(ValueError):
    """A pickled plan written in a layout this version cannot read."""


# -- columns ---------------------------------------------------------------------------------


def _codes_type(distinct: int) -> str:
    for typecode, limit in _CODE_TYPES:
        if distinct <= limit:
            return typecode
    return "Q"


def _buffer(data: array[Any], protocol: int) -> Any:
    raw = data.tobytes()
    # Protocol 5 can hand large buffers to the caller instead of copying them into
    # the stream (``buffer_callback``); older protocols store the bytes inline.
    return pickle.PickleBuffer(raw) if protocol >= 5 else raw


def _column(values: list[Any], key: Callable[[Any], Any] | None, protocol: int) -> tuple[Any, ...]:
    """One field of every rate: ("c", value) when all are equal, else distinct values
    and a code per rate, or (ints only, most values distinct) the values themselves."""
    if not values:
        return ("c", None)
    if key is None and values.count(values[0]) == len(values):
        # One value (by ==; only time columns, keyed, can hold equal values that
        # differ): the common case of most fields, settled by one C loop.
        return ("c", values[0])
    index: dict[Any, int] = {}
    codes = [index.setdefault(v, len(index)) for v in (values if key is None else map(key, values))]
    firsts = list(index)
    if len(firsts) == 1:
        return ("c", firsts[0])
    if key is None and len(firsts) > len(values) // 4 and all(type(v) is int for v in firsts):
        return ("q", _buffer(array("q", values), protocol))
    return (
        "d",
        _codes_type(len(firsts)),
        _buffer(array(_codes_type(len(firsts)), codes), protocol),
        firsts,
    )


def _ints(typecode: str, data: Any, swap: bool) -> list[int]:
    view = memoryview(data).cast("B")
    if swap:
        swapped = array(typecode, view.tobytes())
        swapped.byteswap()
        return swapped.tolist()
    ints: list[int] = view.cast(typecode).tolist()  # type: ignore[call-overload]  # a code from _CODE_TYPES or "q"
    return ints


def _values(column: tuple[Any, ...], count: int, swap: bool) -> list[Any]:
    kind = column[0]
    if kind == "time":
        return list(map(_time_of, _values(column[1], count, swap)))
    if kind == "c":
        return [column[1]] * count
    if kind == "q":
        return _ints("q", column[1], swap)
    if kind == "d":
        return list(map(column[3].__getitem__, _ints(column[1], column[2], swap)))
    raise WireError(f"unknown column kind {kind!r}")


def _exact_time(value: datetime | None) -> Any:
    # Aware datetimes of one instant compare equal whatever their zone: as dictionary
    # keys they would merge. Kept as written (zone and fold), each is stored, and read
    # back identically; the fold apart, as pickle protocols before 4 drop it.
    if value is None:
        return None
    return (value.replace(tzinfo=None, fold=0), value.fold, value.tzinfo)


def _time_of(key: Any) -> datetime | None:
    if key is None:
        return None
    naive, fold, tz = key
    return naive.replace(tzinfo=tz, fold=fold)  # type: ignore[no-any-return]


def encode_rates(fields: dict[str, list[Any]], protocol: int) -> dict[str, Any]:
    """Every rate field (from :func:`transpose`) as a column (see the module docstring)."""
    columns: dict[str, Any] = {}
    for name, values in fields.items():
        if name == "prefix":
            columns[name] = _prefix_column(values, protocol)
        elif name in ("valid_from", "valid_until"):
            plain = values.count(None) == len(values)
            columns[name] = (
                ("c", None) if plain else ("time", _column(values, _exact_time, protocol))
            )
        else:
            columns[name] = _column(values, None, protocol)
    return columns


def _prefix_column(values: list[str], protocol: int) -> tuple[Any, ...]:
    # Prefixes are digits: a comma cannot occur in one, and one split of a single
    # string is much cheaper to load than a list of 287k strings. A plan's rates are
    # sorted by prefix, so a prefix with several rates is a run: written once, with
    # the length of its run.
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        counts = collections.Counter(values)
        runs = [counts[p] for p in unique]
        if _expand_runs(unique, runs) == values:
            typecode = _codes_type(max(runs))
            return ("tr", ",".join(unique), typecode, _buffer(array(typecode, runs), protocol))
    return ("t", ",".join(values))


def _expand_runs(unique: list[str], runs: Iterable[int]) -> list[str]:
    return list(itertools.chain.from_iterable(map(itertools.repeat, unique, runs)))


def prefixes(column: tuple[Any, ...], count: int, swap: bool, *, unique: bool = False) -> list[str]:
    """The prefix of every rate (``unique``: each prefix once, in plan order)."""
    if not count:
        return []
    listed: list[str] = column[1].split(",")
    if column[0] == "tr":
        return listed if unique else _expand_runs(listed, _ints(column[2], column[3], swap))
    return list(dict.fromkeys(listed)) if unique else listed


def transpose(rates: Sequence[Rate]) -> dict[str, list[Any]]:
    """Field name -> that field of every rate, in plan order."""
    # A pass per field (a C loop each) is several times faster than a tuple per rate.
    return {name: list(map(operator.attrgetter(name), rates)) for name in RATE_FIELDS}


def decode_rates(columns: dict[str, Any], count: int, byteorder: str) -> tuple[Rate, ...]:
    """The plan's rates, made from the columns without validating again (they were
    valid when the plan was built; the payload was written by :func:`encode_rates`)."""
    if count == 0:
        return ()
    swap = byteorder != sys.byteorder
    prefix = prefixes(columns["prefix"], count, swap)
    if len(prefix) != count:
        raise WireError(f"{len(prefix)} prefixes for {count} rates")
    cols = [prefix if n == "prefix" else _values(columns[n], count, swap) for n in RATE_FIELDS]
    new = object.__new__
    # attrs gives slotted classes a __setstate__ that takes the fields in order.
    setstate = Rate.__setstate__  # type: ignore[attr-defined]
    out = []
    for state in zip(*cols, strict=True):
        rate = new(Rate)
        setstate(rate, state)
        out.append(rate)
    return tuple(out)


def _rebuffer(data: Any, protocol: int) -> Any:
    raw = data if type(data) is bytes else bytes(memoryview(data))
    return pickle.PickleBuffer(raw) if protocol >= 5 else raw


def reship(payload: tuple[Any, ...], protocol: int) -> tuple[Any, ...]:
    """A loaded plan's payload, to pickle again: its buffers may be views of the buffers
    it was loaded from, which only protocol 5 can write as they are."""
    columns: dict[str, tuple[Any, ...]] = {}
    for name, column in payload[2].items():
        if column[0] == "time":
            columns[name] = ("time", reship_column(column[1], protocol))
        else:
            columns[name] = reship_column(column, protocol)
    return (*payload[:2], columns, *payload[3:])


def reship_column(column: tuple[Any, ...], protocol: int) -> tuple[Any, ...]:
    if column[0] == "q":
        return ("q", _rebuffer(column[1], protocol))
    if column[0] == "d":
        return ("d", column[1], _rebuffer(column[2], protocol), column[3])
    return column


@functools.cache
def has_numpy() -> bool:
    """Whether the table form can be built here (numpy is the ``frame`` extra's)."""
    return importlib.util.find_spec("numpy") is not None


# -- the content hash ------------------------------------------------------------------------


def _le(data: array[Any]) -> bytes:
    if sys.byteorder != "little":
        data.byteswap()
    return data.tobytes()


def _framed(h: Any, label: str, data: bytes) -> None:
    h.update(label.encode())
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def _canonical(value: Any) -> bytes:
    """One value of a rate's object field, as bytes that differ when the values differ."""
    if value is None:
        return b"n"
    if isinstance(value, str):
        return b"s" + _text(value)
    if isinstance(value, int):  # maximum_charge_micros
        return b"i%d" % value
    if isinstance(value, datetime):
        return b"t%d" % ((value - _EPOCH) // _MICRO)
    if isinstance(value, tuple):  # tiers
        return b"T" + b";".join(
            b"%d:%d:%d" % (t.after_seconds, t.per_minute_micros, t.increment_seconds) for t in value
        )
    # A Schedule: its text form round-trips exactly, so equal text is equal schedules.
    return b"S" + _text(str(value))


def _hash_objects(h: Any, label: str, values: list[Any]) -> None:
    first = values[0] if values else None
    # ``count`` compares with ==, as equality does (datetimes by instant): one C loop
    # settles the common column of one value (no window, no destination, ...).
    if values.count(first) == len(values):
        _framed(h, label + ".all", _canonical(first))
        return
    if any(isinstance(v, datetime) for v in values):
        # Keyed by instant: equal datetimes of two zones are one value.
        keys: list[Any] = [None if v is None else (v - _EPOCH) // _MICRO for v in values]
    else:
        keys = values
    index: dict[Any, int] = {}
    codes = array("i", [index.setdefault(k, len(index)) for k in keys])
    firsts = dict(zip(keys, values, strict=True))  # a value for each key (any: all equal)
    _framed(h, label + ".codes", _le(codes))
    for n, k in enumerate(index):
        _framed(h, f"{label}[{n}]", _canonical(firsts[k]))


_INT_FIELDS = (
    "per_minute_micros",
    "connection_fee_micros",
    "initial_seconds",
    "increment_seconds",
    "grace_seconds",
    "minimum_charge_micros",
    "priority",
)
# Equality ignores it (the deck's spelling of the prefix), so the hash does too.
_NOT_HASHED = frozenset({"source_prefix"})


def content_hash(settings: dict[str, Any], fields: dict[str, list[Any]]) -> str:
    """The hex sha256 of a plan's settings (everything but its name) and rate columns."""
    h = hashlib.sha256(_HASH_TAG)
    _framed(h, "settings", json.dumps(settings, sort_keys=True, ensure_ascii=True).encode())
    count = len(fields["prefix"])
    _framed(h, "count", b"%d" % count)
    _framed(h, "prefix", ",".join(fields["prefix"]).encode("ascii"))
    for name in _INT_FIELDS:
        _framed(h, name, _le(array("q", fields[name])))
    for name in RATE_FIELDS:
        if name in _INT_FIELDS or name == "prefix" or name in _NOT_HASHED:
            continue
        values = fields[name]
        if name in ("status", "direction"):
            # StrEnum members are their values as text.
            _framed(h, name, ",".join(values).encode("ascii"))
        else:
            _hash_objects(h, name, values)
    return h.hexdigest()


def tenant_order(chains: Iterable[str | None]) -> list[str | None]:
    """Tenants in one order whatever the mapping's: None (no tenant) first, then by name."""
    return sorted(chains, key=lambda t: (t is not None, t or ""))


def rater_hash(default: Sequence[str], chains: dict[str | None, Sequence[str]]) -> str:
    """The hex sha256 of a Rater's default chain and each tenant's chain (plan hashes)."""
    h = hashlib.sha256(_RATER_TAG)
    _framed(h, "default", ",".join(default).encode("ascii"))
    for tenant in tenant_order(chains):
        name = b"n" if tenant is None else b"s" + _text(tenant)
        _framed(h, "tenant", name)
        _framed(h, "chain", ",".join(chains[tenant]).encode("ascii"))
    return h.hexdigest()


# -- the table form --------------------------------------------------------------------------

# TablePlan attributes that refer back to the plan, or are per-process caches (keyed by
# object identity, or Arrow arrays built on demand): not shipped, restored on load.
_TABLE_BACKREFS = frozenset({"plan", "compiled", "rates"})
_TABLE_CACHES: dict[str, Callable[[], Any]] = {
    "_rate_id": lambda: None,
    "_arrow": dict,
    "_labels": lambda: None,
}
_SMALL = 1024  # arrays shorter than this are stored as they are


class PlanRates(Sequence[Rate]):
    """A table form's rates, as positions in the plan's rates: made on first use."""

    __slots__ = ("_order", "_plan")

    def __init__(self, plan: Any, order: Any) -> None:
        self._plan = plan
        self._order = order

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, k: int) -> Rate: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[Rate]: ...
    def __getitem__(self, k: int | slice) -> Rate | Sequence[Rate]:
        rates = self._plan.rates
        if isinstance(k, slice):
            return [rates[i] for i in self._order[k].tolist()]
        return rates[int(self._order[k])]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Rate]:
        rates = self._plan.rates
        return (rates[i] for i in self._order.tolist())


def _compact(arr: Any) -> tuple[Any, ...]:
    """An integer array as: a constant, a range, multiples of a power of ten, a
    narrower dtype, or codes into its distinct values; the smallest that applies."""
    import numpy as np  # noqa: PLC0415 - the table form needs numpy; plain plans do not

    if arr.ndim != 1 or arr.size < _SMALL or arr.dtype.kind not in "biu":
        return ("a", arr)
    dtype = arr.dtype.str
    if arr.dtype.kind == "b":
        return ("c", dtype, arr.size, bool(arr[0])) if not (arr != arr[0]).any() else ("a", arr)
    lo, hi = int(arr.min()), int(arr.max())
    if lo == hi:
        return ("c", dtype, arr.size, lo)
    first = int(arr[0])
    if hi - lo == arr.size - 1 and first == lo and np.array_equal(arr, np.arange(lo, hi + 1)):
        return ("r", dtype, lo, arr.size)
    if arr.itemsize == 8 and not (arr % 10).any():
        # Keys of prefixes are multiples of a power of ten: divided by it, they may
        # fit a narrower type.
        scale = 10
        while scale < 10**18 and not (arr % (scale * 10)).any():
            scale *= 10
        inner = _compact(arr // scale)
        if inner[0] != "a":
            return ("s", dtype, scale, inner)
    best: tuple[Any, ...] = ("a", arr)
    size = arr.nbytes
    for small in (np.int8, np.int16, np.int32):
        info = np.iinfo(small)
        if info.min <= lo and hi <= info.max and np.dtype(small).itemsize < arr.itemsize:
            best, size = ("n", dtype, arr.astype(small)), arr.size * np.dtype(small).itemsize
            break
    if size > arr.size:
        # Label codes and bucket starts of a deck with several rates a prefix climb by
        # small steps.
        steps = np.diff(arr.astype(np.int64))
        if steps.size and int(steps.min()) >= -128 and int(steps.max()) <= 127:
            return ("delta", dtype, first, steps.astype(np.int8))
    if size > arr.size:
        values, codes = np.unique(arr, return_inverse=True)
        width = 1 if values.size <= 1 << 8 else 2
        if values.size <= 1 << 16 and arr.size * width + values.nbytes < size:
            code_type = np.uint8 if width == 1 else np.uint16
            return ("d", dtype, codes.reshape(-1).astype(code_type), values)
    return best


def _expand(packed: tuple[Any, ...]) -> Any:
    import numpy as np  # noqa: PLC0415 - the table form needs numpy

    kind = packed[0]
    if kind == "a":
        return packed[1]
    dtype = np.dtype(packed[1])
    if kind == "c":
        return np.full(packed[2], packed[3], dtype)
    if kind == "r":
        return np.arange(packed[2], packed[2] + packed[3], dtype=dtype)
    if kind == "n":
        return packed[2].astype(dtype)
    if kind == "s":
        # The scale is a Python int: multiply first, then set the dtype, so that a
        # big-endian source comes back big-endian.
        return (_expand(packed[3]).astype(dtype) * packed[2]).astype(dtype, copy=False)
    if kind == "delta":
        steps = np.concatenate(([packed[2]], packed[3].astype(np.int64)))
        return np.cumsum(steps).astype(dtype)
    if kind == "d":
        return packed[3][packed[2]].astype(dtype, copy=False)
    raise WireError(f"unknown array kind {kind!r}")


class _Encoder:
    """Walks a table form's attributes; one encoded object per source object, so that
    arrays shared between attributes stay shared. What the plan's own columns already
    hold is written as a reference to them: a list of text equal to the plan's
    prefixes, an array equal to a rate field of the table's rates."""

    def __init__(self, fields: dict[str, list[Any]], order: Any) -> None:
        import numpy as np  # noqa: PLC0415 - the table form needs numpy

        self.np = np
        self.memo: dict[int, Any] = {}
        every = fields["prefix"]
        self.texts: list[tuple[list[str], tuple[Any, ...]]] = [
            (every, ("prefix",)),
            (list(dict.fromkeys(every)), ("prefix-unique",)),
        ]
        self.keep: list[Any] = []  # keeps sources alive, so that ids stay unique
        self.fields = fields
        self.order = order
        self.gathered: dict[str, Any] = {}

    def plan_field(self, arr: Any) -> str | None:
        """The rate field whose values, for the table's rates, are ``arr``, if any."""
        np = self.np
        if arr.ndim != 1 or arr.shape[0] != self.order.size or arr.dtype != np.int64:
            return None
        for name in _INT_FIELDS:
            column = self.gathered.get(name)
            if column is None:
                column = np.array(self.fields[name], np.int64)[self.order]
                self.gathered[name] = column
            if np.array_equal(arr, column):
                return name
        return None

    def __call__(self, value: Any) -> Any:
        found = self.memo.get(id(value))
        if found is not None:
            return found
        out = self._encode(value)
        self.memo[id(value)] = out
        self.keep.append(value)
        return out

    def _encode(self, value: Any) -> Any:
        from cdrrating._table_plan import Lookup  # noqa: PLC0415 - needs numpy

        if isinstance(value, self.np.ndarray):
            packed = _compact(value)
            if packed[0] not in ("c", "r") and value.size >= _SMALL:
                name = self.plan_field(value)
                if name is not None:
                    return ("field", name)
            return ("nd", packed)
        if type(value) is Lookup:
            return ("lookup", self.state(vars(value)))
        if type(value) is list:
            if len(value) >= _SMALL and all(type(v) is str for v in value):
                return self.text(value)
            return ("list", [self(v) for v in value])
        if type(value) is tuple:
            return ("tuple", [self(v) for v in value])
        if type(value) is dict:
            return ("dict", [(k, self(v)) for k, v in value.items()])
        return ("v", value)

    def text(self, value: list[str]) -> tuple[Any, ...]:
        for known, encoded in self.texts:
            if len(known) == len(value) and known == value:
                return encoded
        joined = "\n".join(value)
        # Joined only when the separator occurs in no element (prefixes never have one).
        encoded = (
            ("text", joined, len(value))
            if joined.count("\n") == len(value) - 1
            else ("list", [("v", v) for v in value])
        )
        self.texts.append((value, encoded))
        return encoded

    def state(self, attributes: dict[str, Any]) -> dict[str, Any]:
        return {
            k: self(v)
            for k, v in attributes.items()
            if k not in _TABLE_BACKREFS and k not in _TABLE_CACHES
        }


class _Decoder:
    def __init__(self, columns: dict[str, Any], count: int, byteorder: str) -> None:
        self.memo: dict[int, Any] = {}
        self.columns = columns
        self.count = count
        self.swap = byteorder != sys.byteorder
        self.order: Any = None

    def field(self, name: str) -> Any:
        """A rate field as an int64 array, for the table's rates."""
        import numpy as np  # noqa: PLC0415 - the table form needs numpy

        column = self.columns[name]
        if column[0] == "c":
            values = np.full(self.count, column[1], np.int64)
        elif column[0] == "q":
            values = self.array(column[1], "q")
        else:
            values = np.array(column[3], np.int64)[self.array(column[2], column[1])]
        order = self.order
        if order.size == self.count and np.array_equal(order, np.arange(self.count)):
            return values if values.flags.writeable else values.copy()
        return values[order]

    def array(self, data: Any, typecode: str) -> Any:
        import numpy as np  # noqa: PLC0415 - the table form needs numpy

        values = np.frombuffer(data, np.dtype(typecode))
        return values.byteswap() if self.swap else values

    def __call__(self, packed: Any) -> Any:
        found = self.memo.get(id(packed))
        if found is not None:
            return found
        out = self._decode(packed)
        self.memo[id(packed)] = out
        return out

    def _decode(self, packed: Any) -> Any:
        kind = packed[0]
        if kind == "nd":
            return _expand(packed[1])
        if kind == "v":
            return packed[1]
        if kind == "field":
            return self.field(packed[1])
        if kind in ("prefix", "prefix-unique"):
            unique = kind == "prefix-unique"
            return prefixes(self.columns["prefix"], self.count, self.swap, unique=unique)
        if kind == "text":
            return packed[1].split("\n") if packed[2] else []
        if kind == "list":
            return [self(v) for v in packed[1]]
        if kind == "tuple":
            return tuple(self(v) for v in packed[1])
        if kind == "dict":
            return {k: self(v) for k, v in packed[1]}
        if kind == "lookup":
            from cdrrating._table_plan import Lookup  # noqa: PLC0415 - needs numpy

            lookup = Lookup.__new__(Lookup)
            vars(lookup).update(self.state(packed[1]))
            return lookup
        raise WireError(f"unknown value kind {kind!r}")

    def state(self, encoded: dict[str, Any]) -> dict[str, Any]:
        out = {k: self(v) for k, v in encoded.items()}
        for name, fresh in _TABLE_CACHES.items():
            out[name] = fresh()
        return out


def encode_table(
    table: Any, plan_rates: Sequence[Rate], fields: dict[str, list[Any]]
) -> dict[str, Any]:
    """A plan's table form (``cdrrating._table_plan.TablePlan``) without its references
    to the plan; its rates as positions in the plan's rates (``fields``: theirs, from
    :func:`transpose`)."""
    import numpy as np  # noqa: PLC0415 - the table form needs numpy

    position = {id(r): i for i, r in enumerate(plan_rates)}
    order = np.fromiter((position[id(r)] for r in table.rates), np.int64, len(table.rates))
    encode = _Encoder(fields, order)
    state = encode.state(vars(table))
    state["rates"] = ("nd", _compact(order))
    return state


def decode_table(
    state: dict[str, Any], plan: Any, compiled: Any, columns: dict[str, Any], header: dict[str, Any]
) -> Any:
    """The table form again, reading the plan's rates only when a row needs one."""
    from cdrrating._table_plan import TablePlan  # noqa: PLC0415 - needs numpy

    decode = _Decoder(columns, header["count"], header["byteorder"])
    decode.order = order = decode(state["rates"])
    table = TablePlan.__new__(TablePlan)
    attributes = decode.state({k: v for k, v in state.items() if k != "rates"})
    attributes.update(plan=plan, compiled=compiled, rates=PlanRates(plan, order))
    vars(table).update(attributes)
    return table
