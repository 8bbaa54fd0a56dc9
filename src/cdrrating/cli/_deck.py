"""``cdrrating rates list|replace|delete``: the stored deck from the command line (private).

``replace`` makes a tenant's stored deck equal to a deck file and says what changed;
``delete`` removes some or all of a tenant's rates. Each writes in one transaction:
the rate repositories offer one transaction per call, so until they offer a whole-deck
write this module issues the statements itself, on the repository's own engine, tables
and row conversion (``storage_rows.rate_row``/``stored_rate``), so the stored form has one
home still.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs

from cdrrating import repository
from cdrrating._storage import rows as storage_rows
from cdrrating.errors import ValidationError
from cdrrating.money import format_micros
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate

from ._common import (
    EXIT_OK,
    InputError,
    SubParsers,
    UsageError,
    add_db_option,
    add_deck_options,
    add_format_option,
    add_text_options,
    emit,
    open_repository,
    read_deck,
    shown_db,
    user_words,
)
from ._store import content_id

#: What ``rates list`` shows in a table; csv/json/jsonl show every stored field.
_LIST_TABLE = (
    "id", "prefix", "destination", "per_minute", "increments", "connection_fee", "priority",
    "status", "direction", "valid_from", "valid_until",
)  # fmt: skip

_MONEY_FIELDS = {
    "per_minute_micros": "price per minute",
    "connection_fee_micros": "connection fee",
    "minimum_charge_micros": "minimum charge",
    "maximum_charge_micros": "maximum charge",
}
# Fields that say which rate a row is, not what it charges: compared by the key.
_NOT_COMPARED = ("id", "tenant", "source_prefix")


def deck_words(tenant: str | None) -> str:
    return f"the deck of tenant {tenant!r}" if tenant is not None else "the system deck"


def _tenant_filter(tenant: str | None) -> dict[str, Any]:
    return {"tenant": tenant}  # None: the system deck (stored without a tenant)


def _stored_rates(repo: Any, tenant: str | None) -> list[Any]:
    """Every stored rate of ``tenant``, by prefix, page after page."""
    query = repository.Query(
        where=_tenant_filter(tenant), sort="prefix", order="asc", limit=repository.MAX_LIMIT
    )
    found: list[Any] = []
    while True:
        page = repo.query(query)
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        query = query.after(page.next_cursor)


def _increments(rate: Rate) -> str:
    return f"{rate.initial_seconds}/{rate.increment_seconds}"


def _list_record(stored: Any) -> dict[str, Any]:
    record: dict[str, Any] = stored.to_mapping()
    rate: Rate = stored.rate
    record["per_minute"] = format_micros(rate.per_minute_micros)
    record["increments"] = _increments(rate)
    record["connection_fee"] = format_micros(rate.connection_fee_micros)
    return record


# -- list ----------------------------------------------------------------------------------


def _list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open_repository(args.db, "rates", must_exist=True) as repo:
        stored = _stored_rates(repo, args.tenant)
    if args.prefix:
        stored = [s for s in stored if s.rate.prefix.startswith(args.prefix)]
    records = [_list_record(s) for s in stored]
    columns = _LIST_TABLE if args.format == "table" else None
    emit(records, args.format, out, columns=columns, csv_raw=args.csv_raw)
    err.write(f"{len(records)} rates in {deck_words(args.tenant)} in {shown_db(args.db)}\n")
    return EXIT_OK


# -- replace -------------------------------------------------------------------------------


def _slot(rate: Rate) -> tuple[Any, ...]:
    """Which rate of a deck a row is when the deck has no ids: the same prefix, direction,
    priority, start of validity and schedule is the same rate, perhaps at a new price."""
    schedule = str(rate.schedule) if rate.schedule is not None else None
    return (rate.prefix, rate.direction.value, rate.priority, rate.valid_from, schedule)


def _differences(old: Rate, new: Rate) -> list[str]:
    out: list[str] = []
    for field in attrs.fields(Rate):
        if field.name in _NOT_COMPARED:
            continue
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before == after:
            continue
        name = _MONEY_FIELDS.get(field.name, field.name.replace("_", " "))
        if field.name in _MONEY_FIELDS:
            before = format_micros(before) if before is not None else "none"
            after = format_micros(after) if after is not None else "none"
        out.append(f"{name} {_text(before)} -> {_text(after)}")
    return out


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(getattr(value, "value", value))


@attrs.frozen
class DeckChanges:
    added: list[Rate]
    changed: list[tuple[Any, Rate]]  # (the stored rate, the rate that replaces it)
    removed: list[Any]
    unchanged: int

    def records(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []

        def row(change: str, rate: Rate, what: str) -> None:
            rows.append(
                {
                    "change": change,
                    "id": rate.id,
                    "prefix": rate.prefix,
                    "destination": rate.destination,
                    "per_minute": format_micros(rate.per_minute_micros),
                    "what": what,
                }
            )

        for rate in self.added:
            row("added", rate, f"{_increments(rate)}")
        for stored, rate in self.changed:
            row("changed", rate, "; ".join(_differences(stored.rate, rate)))
        for stored in self.removed:
            row("removed", stored.rate, "")
        return rows


def _diff(stored: Sequence[Any], deck: Sequence[Rate], tenant: str | None) -> DeckChanges:
    by_id = {s.rate.id: s for s in stored}
    by_slot = {_slot(s.rate): s for s in stored}
    seen: dict[tuple[Any, ...], int] = {}
    matched: set[str] = set()
    added: list[Rate] = []
    changed: list[tuple[Any, Rate]] = []
    unchanged = 0
    for position, rate in enumerate(deck):
        key = _slot(rate)
        if rate.id is None and key in seen:
            raise InputError(
                f"the deck has two rates for prefix {rate.prefix!r} with the same direction, "
                f"priority, start and schedule (rates {seen[key] + 1} and {position + 1}): "
                "give the deck an id column to tell them apart"
            )
        seen[key] = position
        old = by_id.get(rate.id) if rate.id is not None else by_slot.get(key)
        if old is None or old.rate.id in matched:
            new = attrs.evolve(rate, tenant=tenant)
            added.append(new if new.id is not None else attrs.evolve(new, id=content_id(new)))
            continue
        matched.add(old.rate.id)
        new = attrs.evolve(rate, tenant=tenant, id=old.rate.id)
        if _differences(old.rate, new):
            changed.append((old, new))
        else:
            unchanged += 1
    removed = [s for s in stored if s.rate.id not in matched]
    return DeckChanges(added, changed, removed, unchanged)


def _write(repo: Any, tenant: str | None, read: Sequence[Any], changes: DeckChanges) -> None:
    """Apply ``changes`` (worked out from the stored rates ``read``) in one transaction,
    after checking in it that the stored deck is still what was read: a rate written
    in between by someone else fails the command, it is not overwritten."""
    import sqlalchemy as sa  # noqa: PLC0415 - the optional [sql] extra, present with a repo

    table = repo.tables.rates
    now = storage_rows.to_micros_epoch(datetime.now(UTC))
    tenant_is = table.c.tenant.is_(None) if tenant is None else table.c.tenant == tenant
    expected = {s.rate.id: storage_rows.to_micros_epoch(s.updated_at) for s in read}
    writer = repo.engine.execution_options(cdrrating_write=True)
    with writer.begin() as conn:
        current = {
            row[0]: row[1]
            for row in conn.execute(sa.select(table.c.id, table.c.updated_at_us).where(tenant_is))
        }
        if current != expected:
            raise InputError(
                "the stored deck changed while it was being compared; nothing was written "
                "(run the command again)"
            )
        clash = [r.id for r in changes.added if r.id in current]
        if clash:
            raise InputError(f"rate id {clash[0]!r} is already stored; nothing was written")
        for stored in changes.removed:
            conn.execute(sa.delete(table).where(table.c.id == stored.rate.id, tenant_is))
        for stored, rate in changes.changed:
            created = storage_rows.to_micros_epoch(stored.created_at)
            values = storage_rows.rate_row(rate, created, now)
            for key in ("id", "created_at_us"):
                values.pop(key)
            conn.execute(sa.update(table).where(table.c.id == rate.id, tenant_is).values(values))
        if changes.added:
            try:
                conn.execute(
                    sa.insert(table),
                    [storage_rows.rate_row(r, now, now, i) for i, r in enumerate(changes.added)],
                )
            except sa.exc.IntegrityError:
                # The ids of one tenant's deck are unique; this one is another tenant's.
                raise InputError(
                    "a rate id of the deck is already stored for another tenant; "
                    "nothing was written"
                ) from None


def _replace(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open_repository(args.db, "rates") as repo:
        deck, _ = read_deck(args.deck, args)
        try:
            # The stored deck becomes this deck: it must make a valid plan on its own.
            RatePlan([attrs.evolve(r, tenant=args.tenant) for r in deck], currency="XXX")
        except ValidationError as error:
            raise InputError(f"{args.deck}: {user_words(str(error))}") from None
        read = _stored_rates(repo, args.tenant)
        changes = _diff(read, deck, args.tenant)
        if not args.dry_run:
            _write(repo, args.tenant, read, changes)
    emit(
        changes.records(),
        args.format,
        out,
        columns=("change", "id", "prefix", "destination", "per_minute", "what"),
        csv_raw=args.csv_raw,
    )
    verb = "would change" if args.dry_run else "changed"
    err.write(
        f"{args.deck}: {verb} {deck_words(args.tenant)} in {shown_db(args.db)}: "
        f"{len(changes.added)} added, {len(changes.changed)} changed, "
        f"{len(changes.removed)} removed, {changes.unchanged} unchanged\n"
    )
    return EXIT_OK


# -- delete --------------------------------------------------------------------------------


def _delete(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not (args.id or args.prefix or args.all):
        raise UsageError("say which rates: --id ID, --prefix PREFIX (repeatable) or --all")
    if args.all and (args.id or args.prefix):
        raise UsageError("--all deletes every rate of the tenant: give it alone")
    with open_repository(args.db, "rates", must_exist=True) as repo:
        stored = _stored_rates(repo, args.tenant)
        chosen = _choose(stored, args)
        _write(repo, args.tenant, stored, DeckChanges([], [], chosen, 0))
    emit(
        DeckChanges([], [], chosen, 0).records(),
        args.format,
        out,
        columns=("change", "id", "prefix", "destination", "per_minute"),
        csv_raw=args.csv_raw,
    )
    err.write(f"deleted {len(chosen)} rates of {deck_words(args.tenant)} in {shown_db(args.db)}\n")
    return EXIT_OK


def _choose(stored: Iterable[Any], args: argparse.Namespace) -> list[Any]:
    stored = list(stored)
    if args.all:
        return stored
    ids = set(args.id or ())
    prefixes = set(args.prefix or ())
    missing = sorted(ids - {s.rate.id for s in stored})
    missing += sorted(p for p in prefixes if p not in {s.rate.prefix for s in stored})
    if missing:
        raise InputError(
            f"{deck_words(args.tenant)} holds no rate "
            + ", ".join(repr(m) for m in missing)
            + "; nothing was deleted"
        )
    return [s for s in stored if s.rate.id in ids or s.rate.prefix in prefixes]


# -- the parsers ---------------------------------------------------------------------------


def add_rates(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rates",
        help="list, replace or delete the stored rates of a tenant",
        description="The rates stored by import-rates. `rates list` prints them; "
        "`rates replace DECK` makes the stored deck equal to DECK in one transaction and "
        "prints what was added, changed and removed; `rates delete` removes some or all.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="print the stored rates of a tenant")
    listing.add_argument("--tenant", help="whose rates (default: none, the system deck)")
    listing.add_argument("--prefix", help="only rates whose prefix starts with this")
    add_format_option(listing, "table")
    add_db_option(listing)
    listing.set_defaults(handler=_list)

    replace = actions.add_parser(
        "replace",
        help="make the stored deck of a tenant equal to a deck file; print what changed",
        description="A rate of the file is the stored rate with the same id (when the "
        "deck has an id column) or else the same prefix, direction, priority, start of "
        "validity and schedule. Such a rate is changed if anything else differs; rates "
        "of the file that match none are added, stored rates that no rate of the file "
        "matches are removed. All in one transaction.",
    )
    replace.add_argument("deck", help="the rate deck ('-' for stdin)")
    replace.add_argument("--tenant", help="whose deck (default: none, the system deck)")
    replace.add_argument(
        "--dry-run", action="store_true", help="print what would change; write nothing"
    )
    add_deck_options(replace)
    add_text_options(replace, "dates in the deck", cdrs=False, deck=True)
    add_format_option(replace, "table")
    add_db_option(replace)
    replace.set_defaults(handler=_replace)

    delete = actions.add_parser("delete", help="delete stored rates, in one transaction")
    delete.add_argument("--tenant", help="whose rates (default: none, the system deck)")
    delete.add_argument("--id", action="append", help="the rate with this id (repeatable)")
    delete.add_argument(
        "--prefix", action="append", help="every rate with exactly this prefix (repeatable)"
    )
    delete.add_argument("--all", action="store_true", help="every rate of the tenant")
    add_format_option(delete, "table")
    add_db_option(delete)
    delete.set_defaults(handler=_delete)
