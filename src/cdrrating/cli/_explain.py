"""``cdrrating explain CALL_ID``: how a stored call's cost is made up (private)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import attrs

from cdrrating import repository
from cdrrating.errors import NotFound, ValidationError
from cdrrating.money import format_micros
from cdrrating.plan import RatePlan
from cdrrating.rating import Charge, rate

from ._common import (
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    InputError,
    SubParsers,
    UsageError,
    add_db_option,
    add_deck_options,
    add_text_options,
    open_repository,
    shown_db,
    user_words,
)
from ._rate import add_plan_options, plan_from_args
from ._store import tenant_words


def _cost(micros: int | None, currency: str | None) -> str:
    return "no cost" if micros is None else format_micros(micros, currency)


def _stored_plan(args: argparse.Namespace, currency: str) -> RatePlan:
    with open_repository(args.db, "rates", must_exist=True) as rates:
        try:
            plan: RatePlan = rates.load_plan(
                args.rate_tenant,
                currency=currency,
                rounding=args.rounding,
                quantum_micros=args.quantum_micros,
                access_prefixes=tuple(args.access_prefix or ("00",)),
                timezone=args.timezone,
            )
        except ValidationError as error:
            raise InputError(f"the stored rates: {user_words(str(error))}") from None
    if not len(plan):
        raise InputError(
            f"{shown_db(args.db)} holds no rates for {tenant_words(args.rate_tenant)}: "
            "give the deck the call was rated with, --rates FILE"
        )
    return plan


def _differences(stored: Any, charge: Charge) -> list[str]:
    """What the stored call says that re-rating it now does not."""
    cdr = stored.cdr
    out: list[str] = []
    if stored.status is not None and stored.status != charge.status:
        out.append(f"status: stored {stored.status.value}, now {charge.status.value}")
    same_cost = cdr.cost_micros == charge.cost_micros and (
        cdr.cost_micros is None or cdr.currency == charge.currency
    )
    if not same_cost:
        out.append(
            f"cost: stored {_cost(cdr.cost_micros, cdr.currency)}, "
            f"now {_cost(charge.cost_micros, charge.currency)}"
        )
    # Kept with the call by newer versions of the storage layer; compared when present.
    for name in ("prefix", "billed_seconds"):
        before = getattr(stored, name, None)
        if before is not None and before != getattr(charge, name):
            out.append(f"{name.replace('_', ' ')}: stored {before}, now {getattr(charge, name)}")
    return out


def _find(repo: Any, args: argparse.Namespace) -> Any:
    """The stored call: of ``--tenant`` when given, else of whichever tenant has it."""
    if args.tenant is not None:
        try:
            return repo.get(args.call_id, tenant=args.tenant)
        except NotFound:
            pass
        found = []
    else:
        found = repo.query(repository.Query(where={"call_id": args.call_id}, limit=10)).items
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        tenants = ", ".join(sorted(repr(s.cdr.tenant) for s in found))
        raise UsageError(f"call_id {args.call_id!r} is stored for tenants {tenants}: give --tenant")
    where = f" of {tenant_words(args.tenant)}" if args.tenant is not None else ""
    raise InputError(
        f"no call with call_id {args.call_id!r}{where} is stored in {shown_db(args.db)}"
    )


def _explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open_repository(args.db, must_exist=True) as repo:
        stored = _find(repo, args)
    currency = args.currency or stored.cdr.currency
    if args.rates is not None:
        plan, _ = plan_from_args(args, fallback_currency=currency)
    elif currency is None:
        raise UsageError(
            "give --currency: the stored call has no cost, so it does not say in which "
            "currency its rates are"
        )
    else:
        plan = _stored_plan(args, currency)
    # The stored cost must not feed the re-rating: the call is rated as it came in.
    charge = rate(attrs.evolve(stored.cdr, cost_micros=None, currency=None), plan)
    out.write(charge.explain().rstrip("\n") + "\n")
    differences = _differences(stored, charge)
    if stored.status is None:
        out.write("\nThe call was stored unrated: the above is how it rates now.\n")
        return EXIT_OK
    if differences:
        out.write(
            "\nTHE STORED CHARGE DIFFERS from this re-rating ("
            + "; ".join(differences)
            + "): the rates or the plan options are not those the call was rated with.\n"
        )
        err.write(f"{args.call_id}: the stored charge differs from the re-rating\n")
        return EXIT_REJECTED_ROWS
    out.write(f"\nThe stored charge ({_cost(charge.cost_micros, charge.currency)}) matches.\n")
    return EXIT_OK


def add_explain(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "explain",
        help="print how a stored call's cost is made up, re-rating it to check",
        description="Load a stored call, rate it again with the stored rates (or the deck "
        "given with --rates) and print the explanation: the matched prefix, the rate, the "
        "billed seconds and every step of the cost. If the stored charge differs from the "
        "re-rating, say so and exit 1.",
    )
    p.add_argument("call_id", metavar="CALL_ID", help="the call_id of the stored call")
    p.add_argument(
        "--tenant", help="the call's tenant (needed only when tenants share the call_id)"
    )
    p.add_argument(
        "--rate-tenant", help="whose stored rates to rate with (default: none, the system deck)"
    )
    p.add_argument("--rates", metavar="FILE", help="rate with this deck instead of stored rates")
    add_plan_options(p, currency_required=False)
    add_deck_options(p)
    add_text_options(p, "dates in the deck", cdrs=False, deck=True)
    add_db_option(p)
    p.set_defaults(handler=_explain)
