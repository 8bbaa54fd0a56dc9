from __future__ import annotations

import subprocess
import sys
from importlib.resources import files

import cdrrating

HEAVY = (
    "sqlalchemy",
    "hypothesis",
    "pandas",
    "pyarrow",
    "polars",
    "numpy",
    "tqdm",
    "click",
    "psycopg",
    "pymysql",
)


def test_import_is_cheap() -> None:
    code = (
        "import sys, cdrrating; "
        f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_are_sorted_and_exist() -> None:
    # The order itself is ruff's RUF022 (isort-style); here: no duplicates, nothing missing.
    assert len(set(cdrrating.__all__)) == len(cdrrating.__all__)
    for name in cdrrating.__all__:
        assert hasattr(cdrrating, name), name


def test_version_and_typed_marker() -> None:
    assert cdrrating.__version__
    assert files("cdrrating").joinpath("py.typed").is_file()
