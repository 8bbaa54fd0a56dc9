"""Progress reporting for long batch work (private).

``progress=None`` (or True): a tqdm bar when tqdm is installed and stderr is a
terminal, else silent. ``False``: silent. A callable: called as
``progress(done, total)`` (total may be None) every ``every`` items and once at
the end. The core never prints otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

ProgressArg = Callable[[int, int | None], object] | bool | None


class Progress:
    __slots__ = ("_bar", "_callback", "_done", "_every", "_total")

    def __init__(self, progress: ProgressArg, total: int | None, *, every: int = 1000) -> None:
        self._callback: Callable[[int, int | None], object] | None = None
        self._bar: Any = None
        self._done = 0
        self._every = every
        self._total = total
        if callable(progress):
            self._callback = progress
        elif progress in (None, True) and sys.stderr.isatty():
            try:
                # Optional (not a core dependency): imported only when a bar is wanted.
                from tqdm import tqdm  # noqa: PLC0415
            except ImportError:
                return
            self._bar = tqdm(total=total, unit="CDR", file=sys.stderr)
        elif progress not in (None, False, True):
            raise TypeError("progress must be None, False or a callable(done, total)")

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
