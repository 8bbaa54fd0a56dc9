"""docs/schedules.md is executable: its ```python blocks run in order in one namespace,
and a ```text block right after a python block is that block's exact standard output."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "schedules.md"
_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def test_schedules_page_runs_with_its_figures() -> None:
    text = PAGE.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    namespace: dict[str, object] = {"__name__": "docs_schedules"}
    ran = 0
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        line = text.count("\n", 0, fence.start()) + 1
        code = compile("\n" * line + fence.group(2), str(PAGE), "exec")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code, namespace)
        ran += 1
        following = fences[i + 1] if i + 1 < len(fences) else None
        if (
            following is not None
            and following.group(1) == "text"
            and not text[fence.end() : following.start()].strip()
        ):
            assert out.getvalue() == following.group(2), f"output of docs/schedules.md:{line}"
    assert ran >= 8  # the page's examples did run
