"""The notebook in docs/ is executed: every code cell, in order, in one namespace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "rating-a-month.ipynb"


def test_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("CI"):
        for module in ("pandas", "pyarrow", "matplotlib"):
            pytest.importorskip(module, reason=f"the notebook needs {module} (the [test] extra)")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # no display: render to memory
    monkeypatch.chdir(NOTEBOOK.parent)
    import matplotlib  # noqa: PLC0415 - after MPLBACKEND is set

    matplotlib.use("Agg")
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    namespace: dict[str, object] = {}
    ran = 0
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name}[cell {index}]", "exec"), namespace)
        ran += 1
    assert ran >= 5
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close("all")
