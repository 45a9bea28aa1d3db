"""What the report reads from a study directory: the contract files, loaded once and validated.

The report reads only the study directory's contract files (:mod:`xfer.evaluate.contract`), so it
works on any study, finished or interrupted, without re-running anything. A directory written
before day-level verdicts (``n_pairs``, no ``p_adjusted``) is refused with
:class:`xfer.evaluate.tables.StaleTableError` naming every stale file and its missing columns,
before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from xfer.errors import XferInputError
from xfer.evaluate.contract import (
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    RESULTS_COLUMNS,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)

OPTIONAL_RESULTS_COLUMNS = ("best_epoch",)
"""Contract columns of results.parquet the report shows only when present (best_step is the
early-stopping point it reads)."""
REQUIRED_RESULTS_COLUMNS = tuple(c for c in RESULTS_COLUMNS if c not in OPTIONAL_RESULTS_COLUMNS)
OPTIONAL_FILES: dict[str, tuple[str, ...]] = {
    "verdicts": VERDICT_COLUMNS,
    "curves": CURVE_COLUMNS,
    "sizing": SIZING_COLUMNS,
    "comparisons": COMPARISON_COLUMNS,
}
"""Optional contract files and their required columns; a missing one omits its sections."""


@dataclass(frozen=True)
class Study:
    """Everything the report reads from a study directory, loaded once and validated."""

    root: Path
    name: str
    spec: Mapping[str, Any]
    results: pd.DataFrame
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    """Optional contract tables by stem (``verdicts``...); None when missing or empty."""
    notes: dict[str, str] = field(default_factory=dict)
    """Why an optional table is None, one line each, shown where its section would be."""

    @cached_property
    def metric(self) -> str:
        """The primary metric (the most common one if a study somehow mixes several)."""
        metrics = self.results["metric"].dropna().astype(str)
        return str(metrics.mode().iloc[0]) if len(metrics) else "score"

    def table(self, stem: str) -> pd.DataFrame | None:
        return self.tables.get(stem)


def missing_columns(frame: pd.DataFrame, required: Sequence[str]) -> list[str]:
    return [c for c in required if c not in frame.columns]


def stale_error(root: Path, problems: Sequence[tuple[Path, list[str]]]) -> XferInputError:
    """The error for contract files that lack columns: every such file with its missing columns.

    It is :class:`xfer.evaluate.tables.StaleTableError` (an :class:`XferInputError`, so the CLI
    exits 2 with the message), the type the study's own readers raise for the same cause;
    imported here, not at module level, because ``xfer.evaluate.tables`` loads the statistics
    stack (arch, statsmodels) and ``import xfer.report`` should stay cheap.
    """
    from xfer.evaluate.tables import StaleTableError

    if len(problems) == 1:
        (file, cols), = problems
        found = f"missing column(s) {', '.join(cols)}"
    else:
        file = root
        found = "; ".join(f"{path.name} missing column(s) {', '.join(cols)}" for path, cols in problems)
    return StaleTableError(
        file=file, field="columns", expected="the columns of this xfer's contract (xfer.evaluate.contract)",
        found=found, hint="written by an older xfer (before day-level verdicts) or by another tool; "
        "re-run the study into a new directory")


def read_parquet(path: Path) -> pd.DataFrame:
    """Read one contract table; a corrupt file is reported by name, not as a pyarrow trace."""
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise XferInputError(file=path, expected="a readable Parquet file",
                             found=f"{type(exc).__name__}: {exc}") from exc


def read_spec(root: Path) -> dict[str, Any]:
    """The resolved spec if present; the report still renders without it (title = folder)."""
    path = root / "spec.json"
    if not path.is_file():
        return {}
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def load_study(study_dir: Path) -> Study:
    """Load and validate the contract files of ``study_dir``.

    results.parquet is required because every section is about fits; the other tables are
    optional so that a study stopped half-way still gets a report of what it has.

    Raises:
        FileNotFoundError: no results.parquet.
        xfer.evaluate.tables.StaleTableError: a contract file lacks columns (a directory written
            before day-level verdicts, or by another tool); the message names every such file
            and its missing columns.
        XferInputError: an unreadable Parquet file, or results.parquet without rows.
    """
    root = Path(study_dir)
    results_path = root / "results.parquet"
    if not results_path.is_file():
        raise FileNotFoundError(
            f"{results_path}: results.parquet not found; a report needs the study's fits "
            f"(is {root} a study directory, and has the study finished at least one cell?)")
    results = read_parquet(results_path)
    stale = [(results_path, m)] if (m := missing_columns(results, REQUIRED_RESULTS_COLUMNS)) else []
    tables: dict[str, pd.DataFrame | None] = {}
    notes: dict[str, str] = {}
    for stem, columns in OPTIONAL_FILES.items():
        path = root / f"{stem}.parquet"
        if not path.is_file():
            tables[stem], notes[stem] = None, f"{stem}.parquet is missing: section omitted."
            continue
        frame = read_parquet(path)
        if missing := missing_columns(frame, columns):
            stale.append((path, missing))
        if frame.empty:
            tables[stem], notes[stem] = None, f"{stem}.parquet is empty: section omitted."
        else:
            tables[stem] = frame
    if stale:  # every stale file at once: the cure (re-run) is the same for all
        raise stale_error(root, stale)
    if results.empty:
        raise XferInputError(file=results_path, expected="at least one fit", found="0 rows")
    spec = read_spec(root)
    name = spec.get("name") if isinstance(spec.get("name"), str) and spec.get("name") else None
    return Study(root, name or root.resolve().name, spec, results, tables, notes)



def has_rows(path: Path) -> bool:
    """An optional table beyond the contract (pooled, screen) that exists and is not empty."""
    try:
        return path.is_file() and not read_parquet(path).empty
    except XferInputError:
        return False
