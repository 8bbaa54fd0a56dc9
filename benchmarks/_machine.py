"""Where a benchmark runs: one pinned CPU, and the machine's load to print beside it."""

from __future__ import annotations

import os


def pin(cpu: int | None = None) -> str:
    """Pin this process to one CPU (the last one allowed, unless told); say what was done."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no os.sched_setaffinity here)"
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen} of {allowed}"


def load() -> str:
    """The load averages, to read the figures by: on a busy machine they are noisier."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"
