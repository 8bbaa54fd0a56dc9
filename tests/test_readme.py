"""The README's promises: the tour runs and prints what it shows; the commands match CI."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_tour_prints_what_the_readme_shows() -> None:
    (tour,) = blocks("python")
    (shown,) = blocks("text")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(tour, "README.md", "exec"), {})
    assert out.getvalue() == shown


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    first, second = blocks("sh")[:2]
    assert README.index(first) < README.index("**cdrrating**")
    assert "examples/cdrs.csv" in first and "--rates examples/rates.csv" in first
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second.strip() in ci.splitlines()
