"""The study directory's tables: collect the finished cells, aggregate, write atomically.

The aggregation itself is :mod:`xfer.evaluate.tables` (shared with ``xfer transfer``).

A cell counts as finished only when its results (``cells/<id>.parquet``) and test days
(``days/<id>.parquet``) both read back whole (:func:`finished_cells`); an unreadable one, say
truncated by a full disk or a copy cut short, is moved to ``cells/corrupt/`` (``days/corrupt/``)
with a message naming it, and the cell runs again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.evaluate import tables as T
from xfer.evaluate.contract import PREDICTION_COLUMNS, RESULTS_COLUMNS
from xfer.io import move_aside, write_parquet

if TYPE_CHECKING:
    from xfer.study.spec import StudySpec


def unreadable(path: Path) -> str | None:
    """None when ``path`` is a whole parquet file (footer and every page decode), else what is wrong."""
    try:
        pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def set_aside(path: Path, why: str, say: Callable[[str], None]) -> Path:
    """Move an unreadable file to ``<its folder>/corrupt/<name>.<timestamp>`` and say so."""
    dest = move_aside(path)
    say(f"{path}: unreadable ({why}); moved to {dest}; its cell runs again")
    return dest


def finished_cells(study_dir: Path, cell_ids: Iterable[str], say: Callable[[str], None]) -> set[str]:
    """The cells whose results file reads back whole (and their test days, when present).

    A truncated or corrupt ``cells/<id>.parquet`` or ``days/<id>.parquet`` is set aside
    (:func:`set_aside`), both of the cell's files then, so the cell is pending and runs again.
    A missing days file is left to :func:`collect` (a study written by an older xfer).
    """
    done = set()
    for cid in cell_ids:
        cell, days = study_dir / "cells" / f"{cid}.parquet", study_dir / "days" / f"{cid}.parquet"
        if not cell.exists():
            continue
        bad = [(p, why) for p in (cell, days) if p.exists() and (why := unreadable(p)) is not None]
        if not bad:
            done.add(cid)
            continue
        for p, why in bad:
            set_aside(p, why, say)
        if cell.exists():
            set_aside(cell, f"its test days {days.name} were unreadable", say)
    return done


def _union(files: list[Path], columns: tuple[str, ...]) -> pd.DataFrame:
    """The files' rows in order. Concatenated as Arrow tables, converted once: a pandas frame per
    file and ``pd.concat`` took 5 of 6 s on a 486-file study (the string columns); files whose
    schemas differ go through ``pd.concat``, whose column union the tables have always had."""
    if not files:
        return pd.DataFrame(columns=list(columns))
    tables = [_read(f) for f in files]
    if not all(t.schema.equals(tables[0].schema) for t in tables):
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return _one_chunk(pa.concat_tables(tables)).to_pandas().reset_index(drop=True)


_READ: dict[Path, tuple[tuple[int, int, int], pa.Table]] = {}
"""Cell files read ahead of the tables (:func:`read_ahead`), keyed by path with the file's
(inode, size, mtime): a file replaced since is read again."""


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _read(path: Path) -> pa.Table:
    hit = _READ.pop(path, None)
    if hit is not None and hit[0] == _stamp(path):
        return hit[1]
    return pq.read_table(path)


def read_ahead(study_dir: Path, cell_id: str) -> None:
    """Read a finished cell's two files now (the driver calls it as each cell finishes), so the
    tables at the end of a study do not wait for every file (~1.7 s of the 1,920-fit benchmark's
    tables). A file that cannot be read now is left for the tables to read (and report)."""
    for path in (study_dir / "cells" / f"{cell_id}.parquet", study_dir / "days" / f"{cell_id}.parquet"):
        try:
            stamp = _stamp(path)
            _READ[path] = (stamp, pq.read_table(path))
        except (OSError, pa.ArrowException):
            _READ.pop(path, None)


def _one_chunk(table: pa.Table) -> pa.Table:
    """``table`` with one chunk per column: the tables' filters and groupbys on string columns of
    a file per chunk were 5-15x slower (1.9 s against 0.1 s for one filter of 1.6M rows). Kept
    chunked where a column's strings pass Arrow's 2 GiB offsets."""
    try:
        return table.combine_chunks()
    except pa.ArrowInvalid:
        return table


def collect(study_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The union of finished cells' fits, and of their test days (cells with a results file only).

    Raises :class:`~xfer.evaluate.tables.StaleTableError` naming the missing columns when a
    cell was written by an older xfer.
    """
    files = sorted((study_dir / "cells").glob("*.parquet"))
    res = _union(files, RESULTS_COLUMNS)
    day_files = [study_dir / "days" / f.name for f in files]
    missing = [p for p in day_files if not p.exists()]
    if missing:
        raise T.StaleTableError(
            file=missing[0], field="days", expected="the test days of every finished cell",
            found=f"no such file ({len(missing)} cell(s) without test days)",
            hint="written by an older xfer (before day-level verdicts); re-run the study into a new directory")
    days = _union(day_files, PREDICTION_COLUMNS)
    if len(res):
        T.require_columns(res, RESULTS_COLUMNS, str(files[0]))
    return res, days


def target_groups(days: pd.DataFrame) -> dict[str, str]:
    """Each target's asset class from the catalog (the pooled table's groups); a target the
    store no longer has is pooled in ``all`` only."""
    store = Store()
    out = {}
    for t in sorted(set(days["target"])) if "target" in days else []:
        try:
            out[str(t)] = store.info(str(t)).asset_class
        except XferInputError:
            continue
    return out


def write_tables(study_dir: Path) -> dict[str, pd.DataFrame]:
    """Collect the cells and (re)write every table of the study directory."""
    res, days = collect(study_dir)
    tables = T.all_tables(res, days, target_groups(days))
    for name, frame in tables.items():
        write_parquet(frame, study_dir / f"{name}.parquet")
    return tables


PROFILE_LABELS = {
    "open": "open: spec, checks, study directory",
    "screen": "pre-screen (screen: true)",
    "ray_start": "Ray start",
    "phase1": "phase 1: source pre-training (Tune)",
    "phase2": "phase 2: cells (Tune), wall",
    "tracking": "  cell: W&B run opened",
    "prepare": "  cell: features, folds, cached source loaded",
    "optuna": "  cell: Optuna ask/tell, journal, progress",
    "train": "  cell: training (populations)",
    "evaluate": "  cell: test evaluation and importance",
    "baselines": "  cell: practitioner baselines",
    "write": "  cell: results written",
    "outside": "  per-trial overhead outside the cell (Tune, actors, W&B finish)",
    "ray_stop": "Ray stop",
    "tables": "tables: verdicts, curves, sizing (bootstrap)",
    "summary": "W&B summary run",
    "report": "HTML report",
    "total": "total",
}


def profile(study_dir: Path) -> pd.DataFrame:
    """Where the last run's time went: one row per stage (``stage``, ``seconds``, ``share``).

    Stages come from ``profile.json`` (wall seconds of the run's stages); the parts of phase 2
    are the finished cells' ``time_<part>_s`` columns summed over the cells this run trained and
    divided by the number of concurrent trials (wall-equivalent seconds), and the rest of phase 2
    is the per-trial overhead outside the cells.
    """
    import json

    from xfer.errors import XferInputError

    path = study_dir / "profile.json"
    if not path.is_file():
        raise XferInputError(file=path, expected="the profile of a study run", found="no such file",
                             hint="run the study with this version of xfer")
    stages = json.loads(path.read_text())
    res = _union(sorted((study_dir / "cells").glob("*.parquet")), RESULTS_COLUMNS)
    parts = [c for c in res.columns if c.startswith("time_") and c.endswith("_s")]
    rows: list[tuple[str, float]] = []
    workers = max(1.0, float(stages.get("workers", 1.0)))
    ran = set(stages.get("cell_ids", []))  # the cells this run trained (a resume skips the others)
    if parts and ran:
        per_cell = res[res["cell_id"].isin(ran)].groupby("cell_id")[parts].first()
        cell_sums = {c.removeprefix("time_").removesuffix("_s"): float(per_cell[c].sum()) / workers for c in parts}
    else:
        cell_sums = {}
    for key in ("open", "screen", "ray_start", "phase1", "phase2"):
        if key in stages:
            rows.append((key, float(stages[key])))
    if cell_sums and "phase2" in stages:
        for key, v in cell_sums.items():
            rows.append((key, v))
        rows.append(("outside", max(0.0, float(stages["phase2"]) - sum(cell_sums.values()))))
    for key in ("ray_stop", "tables", "summary", "report", "total"):
        if key in stages:
            rows.append((key, float(stages[key])))
    total = float(stages.get("total", 0.0)) or 1.0
    return pd.DataFrame({"stage": [PROFILE_LABELS.get(k, k) for k, _ in rows], "key": [k for k, _ in rows],
                         "seconds": [v for _, v in rows], "share": [v / total for _, v in rows]})


SCREEN_FILE = "screen.parquet"


def screen_pairs(spec: StudySpec, store: Store) -> pd.DataFrame:
    """The pre-screen (:func:`xfer.experiment.screen.screen`) of every target's sources in the study,
    each target's sources ranked together, with the study's task and split; chains are screened by
    their first market (the one the model is pre-trained on)."""
    from xfer.experiment.screen import screen
    from xfer.study.spec import cells

    by_target: dict[str, list[str]] = {}
    base = {}
    for c in cells(spec):
        src = ",".join(c.setup.source)
        if src not in by_target.setdefault(c.setup.target, []):
            by_target[c.setup.target].append(src)
        base.setdefault(c.setup.target, c.setup)
    return pd.concat([screen(srcs, base[t], store) for t, srcs in by_target.items()], ignore_index=True)


def write_screen(study_dir: Path, spec: StudySpec, store: Store) -> pd.DataFrame:
    """:func:`screen_pairs` written to the study's ``screen.parquet`` (for ``screen: true``)."""
    table = screen_pairs(spec, store)
    write_parquet(table, study_dir / SCREEN_FILE)
    return table
