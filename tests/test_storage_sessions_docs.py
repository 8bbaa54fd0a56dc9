"""The "Storing and listing sessions" section of docs/charging.md runs: its Python
blocks, in order, in one namespace, each printing exactly the text block after it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from tests.test_docs import SKIP_MARK, blocks

PAGE = Path(__file__).resolve().parent.parent / "docs" / "charging.md"
START = "## Storing and listing sessions"


def test_storing_and_listing_sessions_runs() -> None:
    text = PAGE.read_text(encoding="utf-8")
    start_line = text[: text.index(START)].count("\n") + 1
    namespace: dict[str, object] = {"__name__": "docs_charging_storage"}
    ran = 0
    for block in blocks(PAGE):
        if block.line < start_line or block.code.lstrip().startswith(SKIP_MARK):
            continue
        code = compile("\n" * block.line + block.code, str(PAGE), "exec", dont_inherit=True)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        ran += 1
        if block.expected_output is not None:
            assert stdout.getvalue() == block.expected_output, f"docs/charging.md:{block.line}"
    assert ran >= 1
