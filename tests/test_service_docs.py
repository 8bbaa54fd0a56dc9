"""docs/service.md is executable, like the pages tests/test_docs.py checks."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.test_docs import SKIP_MARK, blocks

PAGE = Path(__file__).resolve().parent.parent / "docs" / "service.md"


def test_service_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pydantic", reason="docs/service.md uses cdrrating.pydantic")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_service"}
    found = blocks(PAGE)
    assert found
    for block in found:
        if block.code.lstrip().startswith(SKIP_MARK):
            continue
        # dont_inherit: this module's `from __future__ import annotations` would turn the
        # page's annotations into strings that pydantic cannot resolve in a namespace.
        code = compile("\n" * block.line + block.code, str(PAGE), "exec", dont_inherit=True)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(code, namespace)
        if block.expected_output is not None:
            assert stdout.getvalue() == block.expected_output, f"docs/service.md:{block.line}"
