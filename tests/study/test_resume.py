"""Faults and resume: an interrupted study resumes to exactly the uninterrupted results, and a
corrupt results file, cached weights file or spec is named, set aside and rebuilt."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import psutil
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.experiment import prepare as prep
from xfer.study import cell as cell_mod
from xfer.study.cell import INTERRUPTED, open_search, run_cell
from xfer.study.spec import StudySpec, cells

TINY = {"batch_size": 32, "steps_per_epoch": 4, "max_epochs": 3, "patience": 2}

# 6 trials in rounds of 2: 4 random start-up configs, then TPE's own suggestions
SPEC = StudySpec.model_validate({
    "name": "resume", "task": {"target_type": "volatility"},
    "pairs": [{"source": "syn_shared_src", "target": "syn_shared_tgt"}],
    "grid": {"strategies": ["scratch", "head_only"], "fractions": [0.5], "seeds": 2, "backbone": {"hidden": 8}},
    "search": {"sampler": "tpe", "trials_per_cell": 6, "batch_size": 2,
               "space": {"lr_ratio": {"low": 0.01, "high": 1.0, "log": True},
                         "scratch_lr": {"low": 1e-4, "high": 1e-2, "log": True},
                         "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True}}},
    "evaluation": {"folds": 2, "test_share": 0.2, "importance_repeats": 0},
    "train": TINY, "source": {"train": TINY}, "tracking": {"mode": "disabled"}})

VOLATILE = ["seconds", "node_id", *(f"time_{part}_s" for part in cell_mod.PROFILE_PARTS)]
"""Columns that record how long a run took, not what it computed."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(tmp_path_factory.mktemp("resume") / "home")
    syn.write_set(st, "shared", n_source=2500, n_target=1500, seed=0)
    return st


@pytest.fixture(scope="module")
def head_only() -> str:
    return next(c.cell_id for c in cells(SPEC) if c.strategy == "head_only")


@pytest.fixture(scope="module")
def clean(store: Store, head_only: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the head-only cell."""
    sd = tmp_path_factory.mktemp("clean")
    _run(store, sd, head_only)
    return sd


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, and no ``except Exception`` catches it."""


def _run(store: Store, sd: Path, cell_id: str) -> Path:
    torch.manual_seed(0)  # as the Ray trainable does: a worker process's state must not matter
    return run_cell(SPEC, sd, cell_id, store)


def _frame(p: Path) -> pd.DataFrame:
    return pd.read_parquet(p).drop(columns=VOLATILE, errors="ignore")


def _assert_same_cell(a: Path, b: Path, cell_id: str) -> None:
    pd.testing.assert_frame_equal(_frame(a / "cells" / f"{cell_id}.parquet"), _frame(b / "cells" / f"{cell_id}.parquet"))
    pd.testing.assert_frame_equal(_frame(a / "days" / f"{cell_id}.parquet"), _frame(b / "days" / f"{cell_id}.parquet"))


def _searches(sd: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = JournalStorage(JournalFileBackend(str(sd / "optuna.journal")))
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
            for s in optuna.get_all_study_summaries(storage)}


@pytest.mark.parametrize("where", ["mid-search", "after-search"])
def test_interrupted_cell_resumes_to_the_uninterrupted_result(
        store: Store, head_only: str, clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        where: str) -> None:
    """A cell killed mid-search (a round complete, the next one RUNNING) or after its search (before its
    results file) gives, once run again, bit for bit the uninterrupted cell's results and test days."""
    sd = tmp_path / "study"
    sd.mkdir()
    real_fit, real_eval = cell_mod.fit_candidates, cell_mod.evaluate_fits
    calls = {"fit": 0}

    def fit_then_die(*a: Any, **k: Any) -> Any:
        calls["fit"] += 1
        if calls["fit"] == 2:  # the second round: its trials are asked (RUNNING), never told
            raise Killed
        return real_fit(*a, **k)

    def die(*a: Any, **k: Any) -> Any:
        raise Killed

    if where == "mid-search":
        monkeypatch.setattr(cell_mod, "fit_candidates", fit_then_die)
    else:
        monkeypatch.setattr(cell_mod, "evaluate_fits", die)
    with pytest.raises(Killed):
        _run(store, sd, head_only)
    trials = _searches(sd)[head_only]
    states = [t.state for t in trials]
    if where == "mid-search":
        assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.RUNNING) == 2, states
    else:
        assert states == [TrialState.COMPLETE] * 6
    assert not (sd / "cells" / f"{head_only}.parquet").exists()
    monkeypatch.setattr(cell_mod, "fit_candidates", real_fit)
    monkeypatch.setattr(cell_mod, "evaluate_fits", real_eval)

    _run(store, sd, head_only)  # the resume
    _assert_same_cell(sd, clean, head_only)
    # the partial search is kept in the journal for the record, renamed; the rerun is whole
    searches = _searches(sd)
    assert set(searches) == {head_only, f"{head_only}{INTERRUPTED}1"}
    assert [t.state for t in searches[head_only]] == [TrialState.COMPLETE] * 6
    assert [t.params for t in searches[head_only]] == [t.params for t in _searches(clean)[head_only]]
    assert TrialState.RUNNING not in {t.state for t in searches[f"{head_only}{INTERRUPTED}1"]}


def test_a_resumed_search_asks_what_a_fresh_one_asks(tmp_path: Path) -> None:
    """The sampler is seeded by the cell alone: a search reopened after a partial one (two trials
    told, one left RUNNING) asks the same configs as a search in an empty journal."""
    cell = next(c for c in cells(SPEC) if c.strategy == "scratch")

    def ask_all(study: optuna.Study) -> list[dict[str, Any]]:
        out = []
        for i in range(6):
            t = study.ask()
            cell_mod.suggest(SPEC, cell, t)
            study.tell(t, float(i % 3))
            out.append(t.params)
        return out

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    fresh = ask_all(open_search(SPEC, tmp_path / "a", cell))
    partial = open_search(SPEC, tmp_path / "b", cell)
    for i in range(2):
        t = partial.ask()
        cell_mod.suggest(SPEC, cell, t)
        partial.tell(t, float(i))
    cell_mod.suggest(SPEC, cell, partial.ask())  # RUNNING when the process dies
    assert ask_all(open_search(SPEC, tmp_path / "b", cell)) == fresh


# ----------------------------------------------------------------------- corrupt files


def test_truncated_cell_file_is_set_aside_and_recomputed(
        store: Store, head_only: str, clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xfer.study.results import finished_cells

    sd = tmp_path / "study"
    sd.mkdir()
    for sub in ("cells", "days"):
        (sd / sub).mkdir()
        src = clean / sub / f"{head_only}.parquet"
        (sd / sub / src.name).write_bytes(src.read_bytes())
    bad = sd / "cells" / f"{head_only}.parquet"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    said: list[str] = []
    assert finished_cells(sd, [head_only], said.append) == set()
    assert len(said) == 1 and str(bad) in said[0] and "cells/corrupt/" in said[0]
    (moved,) = (sd / "cells" / "corrupt").iterdir()
    assert moved.name.startswith(bad.name) and not bad.exists()
    _run(store, sd, head_only)
    _assert_same_cell(sd, clean, head_only)
    assert finished_cells(sd, [head_only], said.append) == {head_only} and len(said) == 1


def _in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a study's pending cells in this process instead of on Ray (same cells, same seeds)."""
    from xfer.study import runner

    def phases(sd: Path, st: Store, spec: StudySpec, all_cells: list, pending: list, *_a: Any, **_k: Any) -> None:
        for c in pending:
            torch.manual_seed(0)
            run_cell(spec, sd, c.cell_id, st)

    monkeypatch.setattr(runner, "_run_phases", phases)


def test_resume_sets_aside_a_truncated_cell_and_reruns_it(
        store: Store, head_only: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_study` on a directory with a truncated results file: the console names it, it is moved to
    cells/corrupt/, its cell alone runs again, and results.parquet equals the first one."""
    import io

    import yaml
    from rich.console import Console

    from xfer.study.runner import run_study

    _in_process(monkeypatch)
    spec_file = tmp_path / "resume.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC.model_dump(mode="json", by_alias=True)))
    sd = tmp_path / "study"
    run_study(spec_file, study_dir=sd, store=store, report=False)
    first = pd.read_parquet(sd / "results.parquet").drop(columns=VOLATILE)
    bad = sd / "cells" / f"{head_only}.parquet"
    other = next(p for p in (sd / "cells").glob("*.parquet") if p != bad)
    kept = other.stat().st_mtime_ns
    bad.write_bytes(bad.read_bytes()[:-20])  # the footer cut off
    said = io.StringIO()
    run = run_study(None, study_dir=sd, store=store, report=False, console=Console(file=said, width=400))
    text = " ".join(said.getvalue().split())
    assert str(bad) in text and "cells/corrupt/" in text and "2 cells, 1 done, 1 to run" in text, text
    assert run.cells_run == 1 and other.stat().st_mtime_ns == kept
    pd.testing.assert_frame_equal(pd.read_parquet(sd / "results.parquet").drop(columns=VOLATILE), first)


def test_corrupt_days_file_reruns_its_cell(head_only: str, clean: Path, tmp_path: Path) -> None:
    from xfer.study.results import finished_cells

    sd = tmp_path / "study"
    for sub in ("cells", "days"):
        (sd / sub).mkdir(parents=True)
        src = clean / sub / f"{head_only}.parquet"
        (sd / sub / src.name).write_bytes(src.read_bytes())
    days = sd / "days" / f"{head_only}.parquet"
    days.write_bytes(days.read_bytes()[:100])
    said: list[str] = []
    assert finished_cells(sd, [head_only], said.append) == set()
    assert any(str(days) in m for m in said)
    assert not days.exists() and not (sd / "cells" / f"{head_only}.parquet").exists()


def test_run_cell_reruns_over_a_truncated_results_file(
        store: Store, head_only: str, clean: Path, tmp_path: Path) -> None:
    """A worker handed a cell whose results file is unreadable reruns it (it does not skip it)."""
    sd = tmp_path / "study"
    (sd / "cells").mkdir(parents=True)
    bad = sd / "cells" / f"{head_only}.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.warns(RuntimeWarning, match=str(bad)):
        _run(store, sd, head_only)
    _assert_same_cell(sd, clean, head_only)


def test_corrupt_cached_weights_are_set_aside_and_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    key = {"what": "test"}
    trained: list[list[int]] = []

    def train(todo: list[int]) -> list[Any]:
        trained.append(todo)
        out = []
        for s in todo:
            g = torch.Generator().manual_seed(s)
            out.append(type("R", (), {"params": {"w": torch.randn(4, 3, generator=g)}, "best_val": 0.5 + s,
                                      "epochs": 3})())
        return out

    first = prep.cached_weights(cache, key, [0, 1], torch.device("cpu"), train)
    files = sorted(cache.glob("*.pt"))
    assert trained == [[0, 1]] and len(files) == 2
    assert not list(cache.glob(".*.tmp"))  # atomic writes leave no temporary file
    path = cache / f"{prep._key({**key, 'seed': 1})}.pt"
    for damage in (lambda b: b[: len(b) // 2], lambda b: b"garbage"):
        path.write_bytes(damage(path.read_bytes()))
        with pytest.warns(RuntimeWarning, match=str(path)):
            again = prep.cached_weights(cache, key, [0, 1], torch.device("cpu"), train)
        assert trained[-1] == [1]  # only the bad one is retrained
        for s in (0, 1):
            torch.testing.assert_close(again[s].params["w"], first[s].params["w"], rtol=0, atol=0)
            assert again[s].val_loss == first[s].val_loss
    assert len(list((cache / "corrupt").iterdir())) == 2
    # a flipped byte in the tensor data is caught by the entry's checksum
    blob = torch.load(path, weights_only=True)
    blob["params"]["w"][0, 0] += 1.0
    torch.save(blob, path)
    with pytest.warns(RuntimeWarning, match="checksum"):
        prep.cached_weights(cache, key, [0, 1], torch.device("cpu"), train)
    assert trained[-1] == [1]
    # and a clean load retrains nothing, warns nothing
    n = len(trained)
    prep.cached_weights(cache, key, [0, 1], torch.device("cpu"), train)
    assert len(trained) == n


def test_corrupt_spec_json_is_an_input_error_naming_the_file(tmp_path: Path, cli) -> None:
    from xfer.study.runner import _load_spec

    sd = tmp_path / "study"
    sd.mkdir()
    spec = sd / "spec.json"
    spec.write_text(SPEC.model_dump_json(indent=2)[:200])
    with pytest.raises(XferInputError) as exc:
        _load_spec(sd)
    assert exc.value.file == str(spec) and exc.value.expected == "a study spec written by xfer"
    r = cli("study", "resume", str(sd))
    assert r.code == 2 and str(spec) in r.err and "Traceback" not in r.err
    spec.write_text('{"name": "x", "pairs": 3}')
    with pytest.raises(XferInputError, match="pairs"):
        _load_spec(sd)
    spec.write_bytes(b"\xff\xfe\x00garbage")
    r = cli("study", "resume", str(sd))
    assert r.code == 2 and str(spec) in r.err


# ----------------------------------------------------------------------- a real kill


KILL_STUDY = """
name: killed
pairs:
  - {source: syn_shared_src, target: syn_shared_tgt}
grid:
  strategies: [scratch, head_only]
  fractions: [0.3]
  seeds: 1
  backbone: {hidden: 16}
search: {trials_per_cell: 4, batch_size: 1}
evaluation: {folds: 2, importance_repeats: 0}
train: {steps_per_epoch: 10, max_epochs: 8, patience: 3}
source: {train: {steps_per_epoch: 10, max_epochs: 8, patience: 3}}
resources: {max_concurrent: 1}
tracking: {mode: offline}
"""


def _mid_search(sd: Path) -> str | None:
    """A cell with a complete trial and a running one, and no results yet."""
    journal = sd / "optuna.journal"
    if not journal.exists():
        return None
    try:
        found = _searches(sd)
    except Exception:  # caught mid-write
        return None
    for name, trials in found.items():
        states = [t.state for t in trials]
        if (TrialState.COMPLETE in states and TrialState.RUNNING in states
                and not (sd / "cells" / f"{name}.parquet").exists()):
            return name
    return None


@pytest.mark.ray
@pytest.mark.slow
def test_sigkilled_study_resumes_to_the_uninterrupted_results(tmp_path: Path) -> None:
    """SIGKILL the driver (and every process it started) while a cell is mid-search; `xfer study
    resume` then gives the uninterrupted study's results.parquet, and leaves one W&B run per cell."""
    from xfer.tracking.offline import find_runs, read_run

    home = tmp_path / "home"
    syn.write_set(Store(home), "shared", n_source=2500, n_target=2000, seed=0)
    env = {**os.environ, "XFER_HOME": str(home), "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    spec_file = tmp_path / "killed.yaml"
    spec_file.write_text(KILL_STUDY)
    xfer = [sys.executable, "-m", "xfer.cli", "study"]

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*xfer, "run", str(spec_file), "--out", str(killed)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    family: set[int] = set()
    caught = None
    deadline = time.time() + 150
    try:
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                family |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if (caught := _mid_search(killed)) is not None:
                break
            time.sleep(0.05)
    finally:
        for pid in [proc.pid, *family]:  # the driver and every process it started (Ray's, wandb's)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert caught is not None, "could not catch a cell mid-search"
    assert not (killed / "results.parquet").exists()

    res = subprocess.run([*xfer, "resume", str(killed)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    clean = tmp_path / "clean"
    res = subprocess.run([*xfer, "run", str(spec_file), "--out", str(clean)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]

    def results(sd: Path) -> pd.DataFrame:
        r = pd.read_parquet(sd / "results.parquet").drop(columns=VOLATILE)
        return r.sort_values(["cell_id", "seed", "fold"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(results(killed), results(clean))
    # W&B: one complete run per cell (and the summary); the killed attempt's run is set aside
    runs = [read_run(p) for p in find_runs(killed / "wandb")]
    assert sorted(r.config["cell_id"] for r in runs if r.job_type == "cell") == sorted(
        c.cell_id for c in cells(StudySpec.model_validate_json((killed / "spec.json").read_text())))
    assert all((p / f"run-{p.name.rsplit('-', 1)[-1]}.wandb").stat().st_size > 100 for p in find_runs(killed / "wandb"))
    assert list((killed / "wandb-interrupted").iterdir())
