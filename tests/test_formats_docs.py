"""The format pages are executable: every ```python block of docs/formats/ runs, with the
files it names made from the sample files, and a ```text block after one is its output.

The rules are those of tests/test_docs.py (whose block reader this uses).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from tests.test_docs import SKIP_MARK, blocks

DOCS = Path(__file__).resolve().parent.parent / "docs" / "formats"
FIXTURES = Path(__file__).parent / "fixtures" / "formats"
PAGES = sorted(p.name for p in DOCS.glob("*.md") if blocks(p))

# The files the pages name, per page: a sample file copied under the page's name for it.
_DECK = {"deck.csv": "rates_per_second.csv"}
FILES = {
    "index.md": {**_DECK, "Master.csv": "asterisk_master.csv"},
    "writers.md": {**_DECK, "Master.csv": "asterisk_master.csv"},
    "rate-deck-csv.md": {"deck.csv": "rates_deck_semicolon.csv"},
}
EXPORT = "Call;Called Number;Start;Talk Time\ne-1;442079460000;2026-09-23T10:00:00Z;61\n"


def test_every_page_with_code_is_checked() -> None:
    assert {"index.md", "writers.md", "generic-cdr.md", "rate-deck-csv.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_format_page_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, sample in FILES.get(page, {}).items():
        shutil.copy(FIXTURES / sample, tmp_path / name)
    (tmp_path / "export.csv").write_text(EXPORT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    path = DOCS / page
    namespace: dict[str, object] = {"__name__": f"docs_formats_{page.removesuffix('.md')}"}
    for block in blocks(path):
        if block.code.lstrip().startswith(SKIP_MARK):
            continue
        code = compile("\n" * block.line + block.code, str(path), "exec", dont_inherit=True)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        if block.expected_output is not None:
            assert stdout.getvalue() == block.expected_output, f"docs/formats/{page}:{block.line}"
