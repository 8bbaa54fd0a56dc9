"""Registers cdrrating's strategies with Hypothesis (private).

Hypothesis calls :func:`_register` through the ``hypothesis`` entry point declared in
``pyproject.toml`` when Hypothesis itself is imported, so ``st.from_type(CDR)`` works
without importing :mod:`cdrrating.testing.strategies` first. ``import cdrrating`` never
imports this module.

The strategies are looked up lazily, when ``from_type`` first resolves a type: the
strategies module imports Hypothesis, and Hypothesis may be importing *us* because the
strategies module is being imported, so importing it here could be circular.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def _resolve(kind: type) -> SearchStrategy[Any]:
    # Lazy: see the module docstring (importing the strategies here could be circular).
    from cdrrating.testing import strategies  # noqa: PLC0415

    factories: dict[str, Callable[[], SearchStrategy[Any]]] = {
        "CDR": strategies.cdrs,
        "Rate": strategies.rates,
        "RatePlan": strategies.rate_plans,
        "Tier": strategies.tiers,
    }
    return factories[kind.__name__]()


def _register() -> None:
    # Imports inside the hook: Hypothesis loads this module while it is itself being
    # imported, and only needs it when the hook runs.
    from hypothesis import strategies as st  # noqa: PLC0415

    from cdrrating.cdr import CDR  # noqa: PLC0415
    from cdrrating.plan import RatePlan  # noqa: PLC0415
    from cdrrating.rates import Rate, Tier  # noqa: PLC0415

    for kind in (CDR, Rate, RatePlan, Tier):
        st.register_type_strategy(kind, _resolve)
