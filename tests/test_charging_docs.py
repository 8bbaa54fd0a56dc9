"""docs/charging.md runs: every Python block down to the storage section, in order, in
one namespace, and each text block after a block is exactly what that block prints."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from tests.test_docs import SKIP_MARK, blocks

PAGE = Path(__file__).resolve().parent.parent / "docs" / "charging.md"
# The storage section that follows is tested with storage.
END = "## Storing and listing sessions"


def test_charging_page_runs() -> None:
    text = PAGE.read_text(encoding="utf-8")
    end_line = text[: text.index(END)].count("\n") + 1
    namespace: dict[str, object] = {"__name__": "docs_charging"}
    ran = 0
    for block in blocks(PAGE):
        if block.line > end_line:
            break
        if block.code.lstrip().startswith(SKIP_MARK):
            continue
        code = compile("\n" * block.line + block.code, str(PAGE), "exec", dont_inherit=True)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        ran += 1
        if block.expected_output is not None:
            assert stdout.getvalue() == block.expected_output, (
                f"the output of the block at docs/charging.md:{block.line} differs from the "
                "text block after it"
            )
    assert ran >= 5
