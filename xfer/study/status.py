"""`xfer study status DIR`: a study's progress read from its directory alone, while it runs or after.

Read-only: it opens nothing for writing (no Ray, no lock, no file set aside), so it is safe to
run against a study a cluster is writing. A cell is

- ``done`` when ``cells/<id>.parquet`` exists (``xfer study resume`` checks it reads back whole);
- ``searching`` when the Optuna journal holds its search but it has no results yet (running now,
  or interrupted: the driver's console or Tune's logs tell which);
- ``pending`` otherwise.

A study in an object store (``s3://...``) is read from a temporary local copy of its spec,
journal and results files; nothing is written there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xfer.study.runner import _load_spec
from xfer.study.spec import cells

JOURNAL = "optuna.journal"


@dataclass
class CellStatus:
    cell_id: str
    pair: str
    chain: str
    dann: bool
    strategy: str
    fraction: float
    state: str
    """done, searching or pending."""
    trials_done: int
    """Search trials told so far (the cell's budget when done)."""
    seconds: float | None = None
    """Wall seconds of a done cell."""


@dataclass
class StudyStatus:
    name: str
    study_dir: Path | str
    """The directory, or the object-store URI, as given."""
    trials_per_cell: int
    cells: list[CellStatus] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(c.state == state for c in self.cells)

    @property
    def finished(self) -> bool:
        return self.count("done") == len(self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "study_dir": str(self.study_dir), "cells": len(self.cells),
                **{s: self.count(s) for s in ("done", "searching", "pending")},
                "trials_done": sum(c.trials_done for c in self.cells),
                "trials_total": self.trials_per_cell * len(self.cells), "finished": self.finished,
                "per_cell": [c.__dict__ for c in self.cells]}


def _told(study_dir: Path) -> dict[str, int]:
    """Complete trials per search name in the journal (none when there is no journal)."""
    path = study_dir / JOURNAL
    if not path.is_file():
        return {}
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:  # opening replays every entry: a corrupt line fails here (a torn last one is skipped)
        storage = JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # any failure of the replay means the same: the journal is unusable
        from xfer.errors import XferInputError

        raise XferInputError(file=path, expected="an Optuna journal that reads back",
                             found=f"{type(exc).__name__}: {str(exc)[:200]}",
                             hint=f"if no run is writing the study, `xfer study resume {study_dir}` moves it to "
                                  "corrupt/ and searches the cells without results again") from None
    out = {}
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        trials = storage.get_all_trials(s._study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        out[s.study_name] = len(trials)
    return out


def study_status(study_dir: Path | str) -> StudyStatus:
    """Every cell's state, from ``spec.json``, ``cells/`` and the Optuna journal."""
    from xfer.study.storage import is_uri

    if is_uri(study_dir):
        import tempfile

        from xfer.errors import XferInputError
        from xfer.study.storage import open_storage

        with tempfile.TemporaryDirectory(prefix="xfer-status-") as tmp:
            loc = open_storage(study_dir, "STUDY_DIR", staging=Path(tmp))
            loc.check("STUDY_DIR")
            loc.pull(only=("spec.json", JOURNAL, "cells"))
            if not (loc.local / "spec.json").is_file():
                raise XferInputError(file=str(study_dir), field="STUDY_DIR",
                                     expected="a study directory (with spec.json)", found="no spec.json")
            st = _status(loc.local)
        st.study_dir = str(study_dir)
        return st
    return _status(Path(study_dir))


def _status(study_dir: Path) -> StudyStatus:
    spec = _load_spec(study_dir)
    told = _told(study_dir)
    st = StudyStatus(spec.name, study_dir, spec.search.trials_per_cell)
    for c in cells(spec):
        f = study_dir / "cells" / f"{c.cell_id}.parquet"
        seconds = None
        if f.is_file():
            state, n = "done", spec.search.trials_per_cell
            try:
                seconds = float(pd.read_parquet(f, columns=["seconds"])["seconds"].iloc[0])
            except (OSError, ValueError, KeyError, IndexError):
                seconds = None  # unreadable: resume will set it aside and run the cell again
        elif c.cell_id in told:
            state, n = "searching", told[c.cell_id]
        else:
            state, n = "pending", 0
        st.cells.append(CellStatus(c.cell_id, c.pair.pair_id, c.chain_id, c.dann, c.strategy, c.fraction,
                                   state, n, seconds))
    return st
