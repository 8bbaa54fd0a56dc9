"""The user docs are executable: every ```python block of the checked pages runs.

Blocks of one page share one namespace and run in order, so a page reads like one
session. A block whose first line is ``# not run`` is skipped. A ```text block that
directly follows a python block is that block's expected standard output and must
match it exactly (this keeps pasted ``charge.explain()`` output true). The exact
figures themselves are ``assert`` lines inside the snippets.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import NamedTuple

import pytest

import cdrrating

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ("concepts.md", "api.md")
SKIP_MARK = "# not run"

# An opening fence is a line of three backticks and an optional language, nothing else.
_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


class Block(NamedTuple):
    line: int  # 1-based line of the opening fence
    code: str
    expected_output: str | None


def blocks(page: Path) -> list[Block]:
    """The python blocks of a page, each with the text block that follows it, if any."""
    text = page.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    out: list[Block] = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        expected = None
        following = fences[i + 1] if i + 1 < len(fences) else None
        if (
            following is not None
            and following.group(1) == "text"
            and not text[fence.end() : following.start()].strip()
        ):
            expected = following.group(2)
        line = text.count("\n", 0, fence.start()) + 1
        out.append(Block(line, fence.group(2), expected))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_page_has_python_blocks(page: str) -> None:
    assert blocks(DOCS / page), f"docs/{page} has no ```python blocks"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page: str) -> None:
    path = DOCS / page
    namespace: dict[str, object] = {"__name__": f"docs_{page.removesuffix('.md')}"}
    for block in blocks(path):
        if block.code.lstrip().startswith(SKIP_MARK):
            continue
        where = f"docs/{page}:{block.line}"
        # Padding the code with the lines above it makes tracebacks point at the page's
        # own line numbers (and show the failing line of the snippet).
        code = compile("\n" * block.line + block.code, str(path), "exec", dont_inherit=True)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        if block.expected_output is not None:
            assert stdout.getvalue() == block.expected_output, (
                f"the output of the block at {where} differs from the text block after it"
            )


def test_api_page_has_an_entry_for_every_public_name() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} `([\w.]+)`", text, re.MULTILINE))
    missing = sorted(set(cdrrating.__all__) - headings)
    assert not missing, f"docs/api.md needs a '### `Name`' entry for each of {missing}"
