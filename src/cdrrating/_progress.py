"""Progress reporting for long batch work (private).

``progress=None`` (or True): a tqdm bar when tqdm is installed and stderr is a
terminal or the code runs in a notebook kernel (``tqdm.auto`` then draws a notebook
widget), else silent. ``False``: silent. A callable: called as
``progress(done, total)`` (total may be None) every ``every`` items and once at the
end. The core never prints otherwise.

With a ``total`` the bar shows a percentage and an ETA; without one, a count and a rate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

ProgressArg = Callable[[int, int | None], object] | bool | None


def _in_notebook() -> bool:
    # A Jupyter kernel's stderr is not a terminal, yet a bar is wanted there. IPython is
    # only ever looked up, never imported: in a kernel it is already loaded.
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and hasattr(shell, "kernel")


def shows_bar(progress: ProgressArg) -> bool:
    """Whether ``progress`` would draw a bar here (so that a caller can skip work, such
    as counting the input's lines for a total, that only a bar needs)."""
    if progress not in (None, True):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(callable(isatty) and isatty()) or _in_notebook()


class Progress:
    __slots__ = ("_bar", "_callback", "_done", "_every", "_total")

    def __init__(
        self,
        progress: ProgressArg,
        total: int | None,
        *,
        every: int = 1000,
        desc: str | None = None,
        unit: str = "CDR",
    ) -> None:
        self._callback: Callable[[int, int | None], object] | None = None
        self._bar: Any = None
        self._done = 0
        self._every = every
        self._total = total
        if callable(progress):
            self._callback = progress
        elif progress not in (None, False, True):
            raise TypeError("progress must be None, False or a callable(done, total)")
        elif shows_bar(progress):
            try:
                # Optional (not a core dependency): imported only when a bar is wanted.
                # tqdm.auto draws a widget in a notebook and text on a terminal.
                from tqdm.auto import tqdm  # noqa: PLC0415
            except ImportError:
                return
            self._bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)

    def step(self) -> None:
        self._done += 1
        if self._done % self._every == 0:
            if self._callback is not None:
                self._callback(self._done, self._total)
            if self._bar is not None:
                self._bar.update(self._every)

    def close(self) -> None:
        if self._callback is not None and self._done % self._every:
            self._callback(self._done, self._total)
        elif self._callback is not None and self._done == 0:
            self._callback(0, self._total)
        if self._bar is not None:
            self._bar.update(self._done % self._every)
            self._bar.close()
