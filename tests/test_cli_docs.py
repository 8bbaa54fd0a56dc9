"""Every example of docs/cli.md runs, in order, and prints what the page shows.

Each ```console block of the page is a shell session: a ``$ `` line is a command (a
here-document continues it up to its end marker), the lines after it are what it
prints, standard output and standard error together, in the order they are written.
The commands run one after the other in one temporary folder holding a copy of the
bundled ``examples/``. A plain ``cdrrating …`` command (perhaps followed by
``; echo "exit $?"``) runs in this process through ``cdrrating.cli.main``, with both
streams written to one buffer, which keeps their order; anything else (pipes,
here-documents, other programs) runs in bash, with ``cdrrating`` the command line of
this checkout. Starting Python once per example would make this test slow, and the
subprocess tests of the command line already cover ``python -m cdrrating``.
In the expected text, a line ``...`` stands for any number of lines and ``…`` inside
a line for any text.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from cdrrating.cli import main

pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli.md"
_CONSOLE = re.compile(r"^```console[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


class Example(NamedTuple):
    line: int  # of the command in the page
    command: str
    expected: str


def examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    found: list[Example] = []
    for block in _CONSOLE.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise AssertionError(f"docs/cli.md:{first + i}: output before any command")
            start, command = i, lines[i][2:]
            i += 1
            heredoc = _HEREDOC.search(command)
            if heredoc is not None:
                while lines[i] != heredoc.group(1):
                    command += "\n" + lines[i]
                    i += 1
                command += "\n" + lines[i]
                i += 1
            output: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            found.append(Example(first + start, command, "\n".join(output)))
    return found


def matches(expected: str, actual: str) -> bool:
    pattern = []
    for line in expected.splitlines():
        if line == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*".join(map(re.escape, line.split("…"))) + r"[ \t]*\n")
    return (
        re.fullmatch(
            "".join(pattern), actual if actual.endswith("\n") or not actual else actual + "\n"
        )
        is not None
    )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-docs")
    shutil.copytree(ROOT / "examples", folder / "examples")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "cdrrating"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m cdrrating "$@"\n', encoding="utf-8")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    return folder


def test_the_page_has_examples() -> None:
    commands = [e.command for e in examples(PAGE)]
    assert len(commands) >= 10
    for name in ("rate", "check-plan", "import-rates", "import-cdrs", "query", "export"):
        assert any(c.startswith(f"cdrrating {name} ") for c in commands), name
    for name in ("rates list", "rates replace", "rates delete", "explain"):
        assert any(c.startswith(f"cdrrating {name}") for c in commands), name


_EXIT = '; echo "exit $?"'
_PLAIN = re.compile(r"cdrrating [^|<>;&$`\\]*")


def in_process(command: str) -> str | None:
    """What a plain ``cdrrating …`` command prints, run by ``main``; None for others."""
    echo = command.endswith(_EXIT)
    command = command.removesuffix(_EXIT)
    if _PLAIN.fullmatch(command) is None:
        return None
    both = io.StringIO()
    try:
        code = main(shlex.split(command)[1:], stdout=both, stderr=both)
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    # CSV ends its lines with CRLF; a terminal shows them as the page does.
    printed = both.getvalue().replace("\r\n", "\n")
    return printed + (f"exit {code}\n" if echo else "")


def test_every_example_prints_what_the_page_shows(
    session: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(session)
    for name in [k for k in os.environ if k.startswith("CDRRATING_")]:
        monkeypatch.delenv(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRRATING_")}
    env["PATH"] = f"{session / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # What a terminal shows: both streams, in the order the program wrote them.
    env["PYTHONUNBUFFERED"] = "1"
    for example in examples(PAGE):
        printed = in_process(example.command)
        if printed is None:
            printed = subprocess.run(
                ["bash", "-c", example.command],
                cwd=session,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
                check=False,
            ).stdout
        assert matches(example.expected, printed), (
            f"docs/cli.md:{example.line}: `{example.command}` printed:\n{printed}"
        )


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("a\n...\nz", "a\nb\nc\nz\n", True),
        ("a\n...\nz", "a\nz\n", True),
        ("a\nz", "a\nb\nz\n", False),
        ("total: …; 3 records", "total: 1.00 EUR; 3 records\n", True),
        ("total: …; 3 records", "total: 1.00 EUR; 4 records\n", False),
        ("", "", True),
    ],
)
def test_the_matching_rules(expected: str, actual: str, ok: bool) -> None:
    assert matches(expected, actual) is ok
