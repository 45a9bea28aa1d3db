"""A corrupt Optuna journal (issue 24): `xfer study resume` used to retry every cell 3 times, print
5 tracebacks, exit 1 and say to run `resume`, which failed the same way. Now the journal is
named with its bad line, moved to corrupt/, the entries before the bad line are kept in a new
journal, and the cells without results are searched again: the resumed study equals the clean one."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from tests.study.test_resume import SPEC, VOLATILE, _in_process
from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.study.cell import JOURNAL, check_journal, journal_problem
from xfer.study.spec import cells


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store and a finished two-cell study (run in this process, not on Ray)."""
    from xfer.study import runner
    from xfer.study.cell import run_cell

    root = tmp_path_factory.mktemp("journal")
    store = Store(root / "xfer_home")
    syn.write_set(store, "shared", n_source=2500, n_target=1500, seed=0)
    spec_file = root / "resume.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC.model_dump(mode="json", by_alias=True)))
    mp = pytest.MonkeyPatch()
    try:
        import torch

        def phases(sd, st, spec, all_cells, pending, *_a, **_k) -> None:
            for c in pending:
                torch.manual_seed(0)
                run_cell(spec, sd, c.cell_id, st)

        mp.setattr(runner, "_run_phases", phases)
        runner.run_study(spec_file, study_dir=root / "study", store=store, report=False)
    finally:
        mp.undo()
    return root / "xfer_home", root / "study"


def _copy(src: Path, dest: Path) -> Path:
    for p in src.rglob("*"):
        if p.is_file():
            (dest / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dest / p.relative_to(src)).write_bytes(p.read_bytes())
    return dest


def _names(journal: Path) -> set[str]:
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


@pytest.mark.slow
def test_resume_over_a_corrupt_journal_line_sets_it_aside_and_reruns(
        finished: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    home, clean = finished
    sd = _copy(clean, tmp_path / "study")
    head_only = next(c.cell_id for c in cells(SPEC) if c.strategy == "head_only")
    for sub in ("cells", "days"):  # this cell was interrupted: it has to be searched again
        (sd / sub / f"{head_only}.parquet").unlink()
    journal = sd / JOURNAL
    lines = journal.read_bytes().split(b"\n")
    bad = len(lines) // 2  # 0-based: line bad + 1
    lines[bad] = lines[bad][: len(lines[bad]) // 2]  # a torn entry in the middle
    journal.write_bytes(b"\n".join(lines))
    assert (journal_problem(journal) or (0,))[0] == bad + 1
    with pytest.raises(ValueError):  # what every cell's open used to hit (a JSONDecodeError)
        JournalStorage(JournalFileBackend(str(journal)))

    monkeypatch.setenv("XFER_HOME", str(home))
    _in_process(monkeypatch)
    r = cli("study", "resume", str(sd))
    assert r.code == 0, r.err[-3000:]
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err[-3000:]
    for phrase in (str(journal), f"line {bad + 1}", "not a JSON journal entry", "corrupt/",
                   f"the {bad} entries before it kept in a new journal", "cells without results run again",
                   "2 cells, 1 done, 1 to run"):
        assert phrase in r.err, (phrase, r.err[-3000:])
    (moved,) = (sd / "corrupt").iterdir()
    assert moved.name.startswith(JOURNAL) and moved.read_bytes() == b"\n".join(lines)
    assert journal_problem(journal) is None and head_only in _names(journal)
    pd.testing.assert_frame_equal(pd.read_parquet(sd / "results.parquet").drop(columns=VOLATILE),
                                  pd.read_parquet(clean / "results.parquet").drop(columns=VOLATILE))
    r = cli("study", "resume", str(sd))  # and the next resume finds nothing wrong
    assert r.code == 0 and "corrupt/" not in r.err and "2 cells, 2 done, 0 to run" in r.err, r.err[-3000:]


def test_a_cut_off_last_entry_and_an_unreplayable_one(finished: tuple[Path, Path], tmp_path: Path) -> None:
    """A last entry without its newline (a killed write: Optuna skips it, then glues the next
    entry to it) is set aside too; a journal whose JSON entries do not replay starts over."""
    _, clean = finished
    said: list[str] = []
    sd = _copy(clean, tmp_path / "a")
    journal = sd / JOURNAL
    n = journal.read_bytes().count(b"\n")
    journal.write_bytes(journal.read_bytes()[:-5])
    assert (journal_problem(journal) or (0,))[0] == n
    check_journal(sd, said.append)
    assert len(said) == 1 and f"line {n}:" in said[0] and f"the {n - 1} entries before it kept" in said[0]
    assert journal_problem(journal) is None and len(list((sd / "corrupt").iterdir())) == 1

    sd = _copy(clean, tmp_path / "b")
    journal = sd / JOURNAL
    with journal.open("ab") as f:  # valid JSON, not an entry Optuna can apply
        f.write(json.dumps({"op_code": 0, "worker_id": "x"}).encode() + b"\n")
    assert journal_problem(journal) is not None and journal_problem(journal)[0] is None
    check_journal(sd, said.append)
    assert "its entries" in said[-1] and "a new journal started" in said[-1] and not journal.exists()

    said.clear()
    check_journal(_copy(clean, tmp_path / "c"), said.append)  # a whole journal: untouched, nothing said
    assert said == [] and not (tmp_path / "c" / "corrupt").exists()


def test_status_names_a_corrupt_journal(finished: tuple[Path, Path], tmp_path: Path, cli) -> None:
    _, clean = finished
    sd = _copy(clean, tmp_path / "study")
    journal = sd / JOURNAL
    lines = journal.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    journal.write_bytes(b"\n".join(lines))
    before = journal.read_bytes()
    r = cli("study", "status", str(sd))
    assert r.code == 2 and "Traceback" not in r.err, r.err[-2000:]
    assert str(journal) in r.err and "xfer study resume" in r.err and "corrupt/" in r.err
    assert journal.read_bytes() == before  # status is read-only
