"""docs/frame.md is executable, like the pages tests/test_docs.py checks."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.test_docs import SKIP_MARK, blocks

PAGE = Path(__file__).resolve().parent.parent / "docs" / "frame.md"


def test_frame_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for extra in ("pandas", "pyarrow", "duckdb", "polars"):
        pytest.importorskip(extra, reason=f"docs/frame.md uses {extra}")
    monkeypatch.chdir(tmp_path)  # the page writes Parquet files where it runs
    namespace: dict[str, object] = {"__name__": "docs_frame"}
    found = blocks(PAGE)
    assert found
    for block in found:
        if block.code.lstrip().startswith(SKIP_MARK):
            continue
        code = compile("\n" * block.line + block.code, str(PAGE), "exec")
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        if block.expected_output is not None:
            assert stdout.getvalue() == block.expected_output, f"docs/frame.md:{block.line}"
