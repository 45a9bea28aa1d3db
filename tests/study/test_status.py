"""`xfer study status`: each cell's state read from the directory alone, touching nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from xfer.study.spec import StudySpec, cells

SPEC = StudySpec.model_validate({
    "name": "status", "pairs": [{"source": "sp500", "target": "mtum"}],
    "grid": {"strategies": ["scratch", "head_only"], "fractions": [0.2, 1.0]},
    "search": {"trials_per_cell": 3, "batch_size": 1}})


def _tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def test_status_reads_each_cells_state_and_changes_nothing(tmp_path: Path, cli) -> None:
    sd = tmp_path / "study"
    (sd / "cells").mkdir(parents=True)
    (sd / "spec.json").write_text(SPEC.model_dump_json(indent=2))
    done, searching, corrupt, *pending = [c.cell_id for c in cells(SPEC)]
    pd.DataFrame({"seconds": [12.0, 12.0], "fold": [0, 1]}).to_parquet(sd / "cells" / f"{done}.parquet")
    (sd / "cells" / f"{corrupt}.parquet").write_bytes(b"PAR1 cut short")
    storage = JournalStorage(JournalFileBackend(str(sd / "optuna.journal")))
    study = optuna.create_study(study_name=searching, storage=storage)
    for v in (1.0, 2.0):
        t = study.ask()
        study.tell(t, v)
    study.ask()  # RUNNING: not counted
    before = _tree(sd)

    r = cli("study", "status", str(sd), "--json")
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert (got["cells"], got["done"], got["searching"], got["pending"]) == (4, 2, 1, 1)
    assert got["trials_done"] == 3 + 2 + 3 and got["trials_total"] == 12 and not got["finished"]
    by_id = {c["cell_id"]: c for c in got["per_cell"]}
    assert by_id[done]["seconds"] == 12.0 and by_id[corrupt]["seconds"] is None
    assert by_id[searching]["state"] == "searching" and by_id[searching]["trials_done"] == 2
    assert by_id[pending[0]]["state"] == "pending"
    r = cli("study", "status", str(sd), "--cells")
    assert r.code == 0 and "2 done, 1 searching, 1 pending" in r.out and "xfer study resume" in r.out
    assert _tree(sd) == before  # read-only: the corrupt file is not set aside, the journal not written


def test_status_of_a_directory_that_is_not_a_study(tmp_path: Path, cli) -> None:
    r = cli("study", "status", str(tmp_path))
    assert r.code == 2 and "spec.json" in r.err and "Traceback" not in r.err
