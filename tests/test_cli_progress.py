"""The progress bar (a total and an ETA where the total is known, notebooks too) and the
flat memory of `cdrrating rate --no-store`."""

from __future__ import annotations

import io
import sys
import tracemalloc
import types
from pathlib import Path

import pytest

import cdrrating.cli._rate
from cdrrating import _progress
from cdrrating.cli import EXIT_OK, main

ROOT = Path(__file__).resolve().parents[1]
RATES = ROOT / "examples" / "rates.csv"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_with_a_total_shows_a_percentage_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = _progress.Progress(None, 2500, every=1000, desc="storing")
    for _ in range(2500):
        bar.step()
    bar.close()
    shown = terminal.getvalue()
    assert "storing" in shown and "100%" in shown and "2500/2500" in shown
    assert "<" in shown  # tqdm's "elapsed<remaining"


def test_no_bar_off_a_terminal_and_a_callback_gets_every_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not _progress.shows_bar(None)
    assert not _progress.shows_bar(False)
    seen: list[tuple[int, int | None]] = []
    bar = _progress.Progress(lambda done, total: seen.append((done, total)), 5, every=2)
    for _ in range(5):
        bar.step()
    bar.close()
    assert seen == [(2, 5), (4, 5), (5, 5)]
    with pytest.raises(TypeError):
        _progress.Progress("yes", None)  # type: ignore[arg-type]


def test_a_notebook_kernel_gets_a_bar_though_stderr_is_no_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert _progress.shows_bar(None)
    assert not _progress.shows_bar(False)
    # A terminal IPython (no kernel) is a terminal question again.
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=object))
    assert not _progress.shows_bar(None)


def _rate_no_store(path: Path) -> int:
    """Peak bytes allocated while rating ``path`` with --no-store, charges streamed out."""

    class Sink(io.StringIO):
        def write(self, text: str) -> int:
            return len(text)  # keeps nothing, as a pipe to another program would

    tracemalloc.start()
    try:
        code = main(
            [
                *("rate", str(path), "--rates", str(RATES), "--currency", "EUR", "--quiet"),
                *("--no-store", "--charges", "--format", "jsonl"),
            ],
            stdout=Sink(),
            stderr=io.StringIO(),
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == EXIT_OK
    return peak


def test_rate_without_storing_streams_in_flat_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cdrrating.cli._rate, "_CHUNK", 100)

    def calls(n: int) -> Path:
        path = tmp_path / f"calls-{n}.csv"
        rows = "".join(
            f"call-{i:06d},2026-10-01T10:00:00Z,00442079{i:06d},{i % 600}\n" for i in range(n)
        )
        path.write_text("call_id,started_at,destination_number,billsec\n" + rows)
        return path

    small, large = _rate_no_store(calls(300)), _rate_no_store(calls(1500))
    # Holding the calls costs about 900 bytes each (the CDR and its charge, measured);
    # what grows is only the set of call ids that spots a repeated call.
    assert (large - small) / 1200 < 400, (small, large)
