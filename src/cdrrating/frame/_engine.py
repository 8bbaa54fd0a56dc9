"""The table engine: a thin driver of ``cdrrating._rules`` over columns (private).

Every rule is the object engine's: candidates come from the plan's compiled form
(``RatePlan._compiled.table``), and steps, the exact sum, rounding, the clamps, grace
and billability are the functions of ``cdrrating._rules`` applied to int64 arrays.
Calls the arrays cannot carry exactly (sums past 2**61, schedule bands a call crosses)
are priced by the object engine's own functions, one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from cdrrating import _rules
from cdrrating._table_plan import I64_MAX, TablePlan
from cdrrating.errors import CdrRatingError, ValidationError
from cdrrating.frame._columns import _DIRECTIONS, _Columns, _normalise, _Numbers
from cdrrating.frame._output import (
    _ERROR,
    _INVALID,
    _NO_PLAN,
    _NO_RATE,
    _NOT_RATED,
    _RATED,
    _UNANSWERED,
    _UNRATED,
    _Result,
)
from cdrrating.plan import RatePlan
from cdrrating.rating import Rater, price_banded, price_rate

NDArray = Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def chains_of(value: Any) -> tuple[list[tuple[RatePlan, ...]], Callable[[str | None], int]]:
    """The distinct plan chains and a function from a tenant to its chain's index."""
    if isinstance(value, Rater):
        chains: list[tuple[RatePlan, ...]] = []
        index: dict[tuple[int, ...], int] = {}
        rater = value

        def tenant_of(tenant: str | None) -> int:
            chain = rater.chain(tenant)
            key = tuple(id(p) for p in chain)
            if key not in index:
                index[key] = len(chains)
                chains.append(chain)
            return index[key]

        return chains, tenant_of
    if value is None:
        single: tuple[RatePlan, ...] = ()
    elif isinstance(value, RatePlan):
        single = (value,)
    elif isinstance(value, Sequence) and all(isinstance(p, RatePlan) for p in value):
        single = tuple(value)
    else:
        raise ValidationError(
            "plan_or_rater", value, "a RatePlan, a sequence of RatePlans, a Rater or None"
        )
    return [single], lambda _tenant: 0


def rate_columns(
    cols: _Columns, chains: list[tuple[RatePlan, ...]], chain_of: Callable[[str | None], int]
) -> _Result:
    n = cols.n
    status = np.full(n, _UNRATED, np.int8)
    reason = np.full(n, -1, np.int8)
    cost = np.zeros(n, np.int64)
    cost_null = np.zeros(n, bool)
    billed = np.zeros(n, np.int64)
    currency = np.full(n, -1, np.int32)
    row_plan = np.full(n, -1, np.int32)  # index into plans
    row_rate = np.full(n, -1, np.int32)  # rate id in that plan's table form
    currencies: list[str] = []
    plans: list[TablePlan] = []
    billable = _rules.billable(cols.answered, cols.billsec)
    numbers_cache: dict[tuple[str, ...], _Numbers] = {}

    def currency_code(code: str) -> int:
        if code not in currencies:
            currencies.append(code)
        return currencies.index(code)

    def slot(table: TablePlan) -> int:
        for k, known in enumerate(plans):
            if known is table:
                return k
        plans.append(table)
        return len(plans) - 1

    tenant_chain = np.array([chain_of(t) for t in cols.tenants], np.int32)
    good = ~cols.bad
    row_chain = None if len(chains) == 1 else tenant_chain[cols.tenant_codes]
    for chain_index, chain in enumerate(chains):
        mask = good if row_chain is None else good & (row_chain == chain_index)
        rows = np.flatnonzero(mask)
        if not rows.size:
            continue
        m = rows.size
        found_plan = np.full(m, -1, np.int32)
        found_rate = np.full(m, -1, np.int32)
        found_label = np.full(m, -1, np.int32)
        banded = np.zeros(m, bool)
        priced = np.zeros(m, bool)  # some plan prices calls of this direction
        number_ok = np.zeros(m, bool)
        direction = cols.direction[rows]
        tables = [plan._compiled.table(plan) for plan in chain]
        for plan_index, table in enumerate(tables):
            numbers = numbers_cache.get(table.access)
            if numbers is None:
                numbers = numbers_cache[table.access] = _normalise(cols.numbers, table.access)
            for dir_value, lookup in table.lookups.items():
                code = _DIRECTIONS.index(dir_value)
                sel = np.flatnonzero((found_rate < 0) & (direction == code))
                if not sel.size:
                    continue
                priced[sel] = True
                ok = numbers.valid[rows[sel]]
                number_ok[sel] |= ok
                sel = sel[ok]
                found, label = table.find(
                    dir_value,
                    numbers.keys,
                    numbers.lengths,
                    rows[sel],
                    cols.started_us,
                    _python_lookup(table, dir_value, cols),
                )
                hit = found >= 0
                target = sel[hit]
                found_rate[target] = found[hit]
                found_label[target] = label[hit]
                found_plan[target] = plan_index
                banded[target] = lookup.scheduled[label[hit]]
        bill = billable[rows]
        for plan_index, table in enumerate(tables):
            mine = np.flatnonzero(found_plan == plan_index)
            if not mine.size:
                continue
            target = rows[mine]
            currency[target] = currency_code(table.currency)
            row_plan[target] = slot(table)
            row_rate[target] = found_rate[mine]
            paying = bill[mine]
            status[target] = np.where(paying, np.int8(_RATED), np.int8(_UNANSWERED))
            payers = mine[paying]
            if not payers.size:
                continue
            band_rows = payers[banded[payers]]
            plain_rows = payers[~banded[payers]]
            if plain_rows.size:
                at = rows[plain_rows]
                c, b, bad = _price(table, found_rate[plain_rows], cols.billsec[at])
                cost[at], billed[at] = c, b
                for k, message in bad:
                    cols.errors[int(at[k])] = message
            if band_rows.size:
                band_rows = _price_single_band(
                    table, band_rows, rows, direction, found_label, cols, cost, billed, row_rate
                )
            for k in band_rows.tolist():
                row = int(rows[k])
                try:
                    rate_id, b, c = _price_banded_row(
                        table, _DIRECTIONS[direction[k]], int(found_label[k]), cols, row
                    )
                except CdrRatingError as error:
                    cols.errors[row] = (
                        getattr(error, "field", "plan"),
                        getattr(error, "value", None),
                        getattr(error, "expected", str(error)),
                    )
                    continue
                row_rate[row], billed[row], cost[row] = rate_id, b, c
        # Not found in any plan: as the end of the object engine's chain.
        missing = np.flatnonzero(found_plan < 0)
        if not missing.size:
            continue
        target = rows[missing]
        if chain:
            currency[target] = currency_code(chain[0].currency)
        paying = bill[missing]
        status[target[~paying]] = _UNANSWERED
        target, miss_priced, miss_ok = (
            target[paying],
            priced[missing][paying],
            number_ok[missing][paying],
        )
        if not chain:
            status[target] = _UNRATED
            reason[target] = _NO_PLAN
            cost_null[target] = True
            continue
        status[target[~miss_priced]] = _NOT_RATED
        unrated = target[miss_priced]
        status[unrated] = _UNRATED
        reason[unrated] = np.where(miss_ok[miss_priced], _NO_RATE, _INVALID)
        cost_null[unrated] = True
    error_rows = np.array(sorted(cols.errors), np.int64)
    status[error_rows] = _ERROR
    reason[error_rows] = -1
    cost_null[error_rows] = True
    currency[error_rows] = -1
    row_plan[error_rows] = -1
    billed[error_rows] = 0
    return _Result(
        n,
        status,
        reason,
        cost,
        cost_null,
        billed,
        currency,
        currencies,
        row_plan,
        row_rate,
        plans,
        error_rows,
        [cols.errors[int(i)] for i in error_rows],
    )


def _python_lookup(
    table: TablePlan, direction: Any, cols: _Columns
) -> Callable[[NDArray], tuple[NDArray, NDArray]]:
    """The object engine's look-up, for rows the arrays do not answer."""
    index = table.compiled.indexes[direction]
    lookup = table.lookups[direction]

    def find(rows: NDArray) -> tuple[NDArray, NDArray]:
        rates = np.full(rows.size, -1, np.int32)
        labels = np.full(rows.size, -1, np.int32)
        for k, row in enumerate(rows.tolist()):
            number = cols.numbers[row].as_py()
            found = index.match(number, _instant(int(cols.started_us[row])))[1]
            if found is not None:
                rates[k] = table.rate_id[id(found)]
                labels[k] = lookup.label_of(found.prefix)
        return rates, labels

    return find


def _price(
    table: TablePlan, rate: NDArray, billsec: NDArray
) -> tuple[NDArray, NDArray, list[tuple[int, tuple[str, Any, str]]]]:
    """Cost and billed seconds of billable calls priced by one rate each (§3–4)."""
    m = rate.size
    cost = np.zeros(m, np.int64)
    billed = np.zeros(m, np.int64)
    grace = _rules.in_grace(billsec, table.grace[rate]) if table.any_grace else None
    slow = billsec > table.safe[rate]
    if grace is not None:
        slow &= ~grace
    if slow.any() or grace is not None:
        fast = ~slow if grace is None else ~slow & ~grace
        idx = np.flatnonzero(fast)
        r, b = rate[idx], billsec[idx]
    else:
        idx = None
        r, b = rate, billsec
    if r.size:
        last = table.tiers
        pieces = [
            (
                None if k == last else table.piece_end[k][r],
                table.piece_inc[k][r],
                table.piece_price[k][r],
                0,
            )
            for k in range(last + 1)
        ]
        seconds, total = _rules.lay(
            b, _rules.first_step(table.initial[r], table.increment[r]), table.per_minute[r], pieces
        )
        value = _rules.settle(
            total,
            table.fee[r] if table.any_fee else 0,
            table.minimum[r] if table.any_minimum else 0,
            table.maximum[r] if table.any_maximum else None,
            table.quantum,
            table.rounding,
        )
        if idx is None:
            cost, billed = value, seconds
        else:
            cost[idx], billed[idx] = value, seconds
    bad: list[tuple[int, tuple[str, Any, str]]] = []
    for k in np.flatnonzero(slow).tolist():
        seconds_k, value_k = price_rate(
            table.rates[int(rate[k])], int(billsec[k]), table.quantum, table.rounding
        )
        if value_k > I64_MAX or seconds_k > I64_MAX:
            bad.append(
                (
                    k,
                    (
                        "cost_micros",
                        value_k,
                        "a cost that fits in an int64 column (rate this call with rate())",
                    ),
                )
            )
            continue
        cost[k], billed[k] = value_k, seconds_k
    return cost, billed, bad


def _price_single_band(  # noqa: PLR0917 - private: the engine's columns, in order
    table: TablePlan,
    band_rows: NDArray,
    rows: NDArray,
    direction: NDArray,
    found_label: NDArray,
    cols: _Columns,
    cost: NDArray,
    billed: NDArray,
    row_rate: NDArray,
) -> NDArray:
    """Price, over arrays, the billable calls to prefixes with schedules that stay in
    one band (most calls: bands last hours); return the rest for ``price_banded``."""
    rest: list[NDArray] = []
    for dir_value, lookup in table.lookups.items():
        mine = band_rows[direction[band_rows] == _DIRECTIONS.index(dir_value)]
        if not mine.size:
            continue
        at = rows[mine]
        rate, limit = table.single_band(
            lookup, found_label[mine], cols.started_us[at], cols.answered_us[at]
        )
        ok = np.flatnonzero(rate >= 0)
        c, b, bad = _price(table, rate[ok], cols.billsec[at[ok]])
        done = np.ones(ok.size, bool)
        if table.band_split:
            done &= b <= limit[ok]
        for k, _message in bad:
            done[k] = False  # let the object engine say why
        take = ok[done]
        cost[at[take]], billed[at[take]], row_rate[at[take]] = c[done], b[done], rate[take]
        left = np.ones(mine.size, bool)
        left[take] = False
        rest.append(mine[left])
    return np.concatenate(rest) if rest else band_rows[:0]


def _price_banded_row(
    table: TablePlan, direction: Any, label: int, cols: _Columns, row: int
) -> tuple[int, int, int]:
    """One billable call to a prefix with schedules, by the object engine's function."""
    bucket = table.bucket(direction, label)
    started = _instant(int(cols.started_us[row]))
    answered = _instant(int(cols.answered_us[row]))
    rate, billed, cost = price_banded(table.plan, bucket, started, answered, int(cols.billsec[row]))
    if cost > I64_MAX:
        raise ValidationError(
            "cost_micros", cost, "a cost that fits in an int64 column (rate this call with rate())"
        )
    return table.rate_id[id(rate)], billed, cost
