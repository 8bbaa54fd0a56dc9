"""Pricing many sessions, never stopping at a bad one: :func:`price_sessions` and its
:class:`SessionBatchResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import tzinfo
from typing import Any

from cdrrating import _html
from cdrrating._validate import check_int, to_tzinfo
from cdrrating.batch import RowError
from cdrrating.charging import ChargingSession
from cdrrating.errors import ValidationError
from cdrrating.money import Rounding, format_micros
from cdrrating.tariffs._charge import SessionCharge, SessionChargeStatus, StepPolicy, UnpricedReason
from cdrrating.tariffs._model import Tariff
from cdrrating.tariffs._pricing import _MAX_QUANTUM, price_session

# -- batches ---------------------------------------------------------------------------------

#: What :func:`price_sessions` accepts to find each session's tariff: one tariff for
#: all, a mapping of tariff ids to tariffs, or a function of the session.
TariffSource = Tariff | Mapping[str, Tariff] | Callable[[ChargingSession], Tariff | None]


class SessionBatchResult:
    """Charges of many sessions in input order, with every bad record reported.

    ``charges[i]`` belongs to the i-th input; it is None exactly when that input is in
    ``errors`` (with its position and reason). Nothing is dropped.
    """

    def __init__(self) -> None:
        self.charges: list[SessionCharge | None] = []
        self.errors: list[RowError] = []
        self.by_status: dict[str, int] = {}
        self.by_reason: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        self.totals_incl_vat: dict[str, int] = {}

    def _add(self, charge: SessionCharge) -> None:
        self.charges.append(charge)
        self.by_status[charge.status.value] = self.by_status.get(charge.status.value, 0) + 1
        if charge.reason is not None:
            self.by_reason[charge.reason.value] = self.by_reason.get(charge.reason.value, 0) + 1
        if charge.cost_micros is not None and charge.currency is not None:
            self.totals[charge.currency] = self.totals.get(charge.currency, 0) + charge.cost_micros
        if charge.cost_incl_vat_micros is not None and charge.currency is not None:
            self.totals_incl_vat[charge.currency] = (
                self.totals_incl_vat.get(charge.currency, 0) + charge.cost_incl_vat_micros
            )

    def _fail(self, position: int, error: ValidationError, record: Any) -> None:
        self.charges.append(None)
        self.errors.append(RowError(position, str(error), error.field, record))

    def __len__(self) -> int:
        return len(self.charges)

    def __iter__(self) -> Iterator[SessionCharge | None]:
        return iter(self.charges)

    @property
    def ok(self) -> bool:
        """True when no input was refused (unpriced sessions are not errors)."""
        return not self.errors

    def unpriced(self) -> list[tuple[int, SessionCharge]]:
        """The positions and charges of the sessions that could not be priced."""
        return [
            (i, c)
            for i, c in enumerate(self.charges)
            if c is not None and c.status is SessionChargeStatus.UNPRICED
        ]

    def summary(self) -> str:
        parts = [f"{len(self)} sessions"]
        parts += [f"{k} {v}" for k, v in sorted(self.by_status.items())]
        if self.errors:
            parts.append(f"errors {len(self.errors)}")
        totals = ", ".join(format_micros(v, k) for k, v in sorted(self.totals.items()))
        return "; ".join(parts) + (f"; total {totals} excl. VAT" if totals else "")

    def __repr__(self) -> str:
        return f"<SessionBatchResult {self.summary()}>"

    def _repr_html_(self) -> str:
        rows = []
        for i, c in enumerate(self.charges):
            if c is None:
                continue
            rows.append(
                (
                    i,
                    c.session.id,
                    c.status.value,
                    c.reason.value if c.reason else "",
                    "" if c.cost_micros is None else format_micros(c.cost_micros, c.currency),
                    ""
                    if c.cost_incl_vat_micros is None
                    else format_micros(c.cost_incl_vat_micros, c.currency),
                )
            )
        parts = [
            _html.table(
                ["position", "session", "status", "reason", "excl. VAT", "incl. VAT"],
                rows,
                total=len(rows),
                caption=self.summary(),
            )
        ]
        if self.errors:
            parts.append(
                _html.table(
                    ["position", "field", "error"],
                    ((e.position, e.field or "", e.error) for e in self.errors),
                    total=len(self.errors),
                    caption="rejected records",
                )
            )
        return "".join(parts)


def _resolver(source: Any) -> Callable[[ChargingSession], Tariff | None]:
    if isinstance(source, Tariff):
        return lambda _session: source
    if isinstance(source, Mapping):
        table = source

        def by_id(session: ChargingSession) -> Tariff | None:
            ids = [p.tariff_id for p in session.charging_periods if p.tariff_id is not None]
            for tid in (*ids, *session.tariff_ids):
                found = table.get(tid)
                if found is not None:
                    return found  # type: ignore[no-any-return]
            return None

        return by_id
    if callable(source):
        return source  # type: ignore[no-any-return]
    raise ValidationError(
        "tariff", source, "a Tariff, a mapping of tariff ids to Tariff, or a function"
    )


def price_sessions(
    sessions: Iterable[ChargingSession | Mapping[str, Any]],
    tariff: TariffSource,
    *,
    time_zone: tzinfo | str | None = None,
    quantum_micros: int | None = None,
    rounding: Rounding | str = Rounding.HALF_UP,
    step_policy: StepPolicy | str = StepPolicy.PER_DIMENSION,
) -> SessionBatchResult:
    """Price many sessions; never stops at a bad one.

    ``sessions`` holds :class:`ChargingSession` objects or mappings (read with
    ``ChargingSession.from_mapping``, either shape). ``tariff`` is one tariff for all,
    a mapping of tariff ids to tariffs (a session's tariff is the first of its periods'
    ``tariff_id`` and its ``tariff_ids`` found there), or a function that returns the
    tariff of a session (or None). A session without a tariff is UNPRICED with reason
    NO_TARIFF; a record that is not a valid session is in ``errors`` with its position
    and the field at fault. The other options are :func:`price_session`'s.
    """
    # The options are the caller's: refused once, here, not once per session.
    resolve = _resolver(tariff)
    Rounding.parse(rounding)
    StepPolicy.parse(step_policy)
    if time_zone is not None:
        to_tzinfo("time_zone", time_zone)
    if quantum_micros is not None:
        check_int("quantum_micros", quantum_micros, minimum=1, maximum=_MAX_QUANTUM)
    result = SessionBatchResult()
    for position, record in enumerate(sessions):
        try:
            session = (
                record
                if isinstance(record, ChargingSession)
                else ChargingSession.from_mapping(record)
            )
            found = resolve(session)
            if found is None:
                result._add(
                    SessionCharge(
                        session=session,
                        tariff=None,
                        status=SessionChargeStatus.UNPRICED,
                        reason=UnpricedReason.NO_TARIFF,
                        detail="no tariff was found for this session",
                        currency=session.currency,
                    )
                )
                continue
            charge = price_session(
                session,
                found,
                time_zone=time_zone,
                quantum_micros=quantum_micros,
                rounding=rounding,
                step_policy=step_policy,
            )
        except ValidationError as error:
            result._fail(position, error, record)
            continue
        result._add(charge)
    return result
