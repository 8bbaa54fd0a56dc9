"""docs/testing.md stays true: its python blocks run, and each test_ function they
define is called (the user's billing-rule examples are real, passing property tests)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings

from tests.test_docs import SKIP_MARK, blocks

PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def test_testing_page_examples_run_and_pass() -> None:
    namespace: dict[str, object] = {"__name__": "docs_testing"}
    for block in blocks(PAGE):
        if block.code.lstrip().startswith(SKIP_MARK):
            continue
        # dont_inherit: this module's `from __future__ import annotations` must not turn the
        # page's annotations into strings (st.builds reads them).
        code = compile("\n" * block.line + block.code, str(PAGE), "exec", dont_inherit=True)
        exec(code, namespace)
    tests = {name: f for name, f in namespace.items() if name.startswith("test_") and callable(f)}
    assert set(tests) >= {
        "test_an_invoice_total_is_never_negative",
        "test_retail_is_never_below_wholesale",
        "test_no_call_costs_more_than_the_cap",
    }
    for test in tests.values():
        # The examples draw whole plans; they only need to hold, not to hunt for bugs.
        settings(max_examples=40)(test)()
