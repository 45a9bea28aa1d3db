"""One study cell: Optuna ask/tell in batches, each batch x seeds x folds trained as populations.

No choice reads a test row. Optuna is told each config's validation loss on fold 0, whose
validation window ends before the first test block; every fold then keeps the trial with the
best loss on *its own* validation window (which ends one embargo before its test block and lies
in no fold's test block; see :mod:`xfer.data.splits`). The per-fold losses are stored on each
trial (``val_by_fold``) and in the journal.

Every search is recorded in the study's Optuna journal (``optuna.journal``); a cell's test
days are written to ``days/<cell_id>.parquet`` and then its final fits, once, atomically, to
``cells/<cell_id>.parquet``: a finished cell is never run again.

Resume is exact: a cell without ``cells/<cell_id>.parquet`` (killed mid-search, or after its
search but before its results were written) runs again *from scratch*, with the same sampler
seed, and so gives bit-for-bit the results an uninterrupted run gives (on CPU). Its earlier,
partial search is kept in the journal for the record, renamed ``<cell_id>~interrupted-<n>``
(its never-reported trials marked FAIL), and plays no part in the rerun. Continuing the partial
search instead would not reproduce: TPE's next suggestions depend on its random state, which
the journal does not hold, and a trial that was RUNNING when the process died has no fits to
evaluate; a re-fit in a smaller population differs in the last bits. The price is that the
interrupted attempt's trials are trained again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from xfer.data.store import Store
from xfer.experiment.config import TRAINING_KNOBS, Candidate
from xfer.experiment.evaluate import baseline_days, evaluate_fits
from xfer.experiment.fit import fit_candidates
from xfer.experiment.prepare import Context, prepare
from xfer.experiment.run import day_frame
from xfer.io import atomic_write, move_aside, write_parquet
from xfer.study.results import finished_cells
from xfer.study.spec import Cell, StudySpec, cells, grid_of, searched
from xfer.train.types import MemberResult
from xfer.transfer.strategies import STRATEGIES, all_knobs

Report = Callable[[dict[str, Any]], None]


def suggest(spec: StudySpec, cell: Cell, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    """One config from the cell's search space; a knob's type (registry) decides the distribution."""
    kinds = {**{k: v.kind for k, v in TRAINING_KNOBS.items()}, **{k: v.kind for k, v in all_knobs().items()}}
    params: dict[str, Any] = {}
    for name in searched(cell.strategy, cell.dann):
        d = spec.search.space.get(name)
        if d is None:
            continue
        if d.choices is not None:
            params[name] = trial.suggest_categorical(name, d.choices)
        elif d.int_ or kinds[name] == "int":
            params[name] = trial.suggest_int(name, int(d.low), int(d.high), log=d.log)  # type: ignore[arg-type]
        else:
            params[name] = trial.suggest_float(name, d.low, d.high, log=d.log)  # type: ignore[arg-type]
    return params


def knob_values(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """Every searchable knob's value in effect: registry defaults, the spec's own defaults, then the trial's."""
    return {**{k: v.default for k, v in TRAINING_KNOBS.items()}, **{k: v.default for k, v in all_knobs().items()},
            "scratch_lr": spec.source.lr, "weight_decay": spec.source.weight_decay, **params}


def candidate(spec: StudySpec, cell: Cell, params: dict[str, Any]) -> Candidate:
    p = knob_values(spec, params)
    lr = p["scratch_lr"] if cell.strategy == "scratch" else spec.source.lr * p["lr_ratio"]
    knobs = {k.name: p[k.name] for k in STRATEGIES[cell.strategy].knobs}
    return Candidate(cell.strategy, lr, p["weight_decay"], knobs, p["dann_weight"] if cell.dann else 0.0,
                     tag=tuple(sorted(params.items())))


def _seed(cell_id: str) -> int:
    return int(hashlib.sha256(cell_id.encode()).hexdigest()[:8], 16)


JOURNAL = "optuna.journal"
"""The study's Optuna journal, one JSON entry a line (the record of every search)."""


def journal_problem(path: Path) -> tuple[int | None, str] | None:
    """None when the journal at ``path`` reads back whole, else (the first bad line, what is wrong).

    Optuna replays the journal on every open: a line that is not a JSON entry (a torn write, a
    flipped byte) fails every later open, and a last line cut off without its newline is glued
    to the next entry appended. The line is None when every line is JSON but the entries do not
    replay."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return n, f"an entry cut off (no newline at the end: {line[:60]!r})"
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            if not ok:
                return n, f"not a JSON journal entry ({line[:60]!r})"
    try:  # opening replays every entry
        JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # any failure of the replay means the same: the journal is unusable
        return None, f"entries Optuna cannot replay ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def check_journal(study_dir: Path, say: Callable[[str], None]) -> None:
    """Before a study's cells run: a journal that no longer reads back is moved to
    ``corrupt/optuna.journal.<timestamp>`` and its entries before the first bad line are kept in a
    new journal, and ``say`` says so. Nothing is lost but the record: every cell without results
    is searched again from scratch anyway (resume is exact), and finished cells keep their results.
    (Left in place, each cell's first open failed, and Ray retried it to fail the same way.)"""
    path = Path(study_dir) / JOURNAL
    if not path.is_file():
        return
    bad = journal_problem(path)
    if bad is None:
        return
    line, why = bad
    data = path.read_bytes()
    dest = move_aside(path)
    kept = 0
    if line is not None and line > 1:
        prefix = b"".join(x + b"\n" for x in data.split(b"\n")[: line - 1])
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(prefix))
        if journal_problem(path) is None:
            kept = line - 1
        else:
            path.unlink()
    where = f"line {line}" if line is not None else "its entries"
    say(f"{path}: {where}: expected a journal Optuna can read; found {why}; moved to {dest}; "
        f"{f'the {kept} entries before it kept in a new journal' if kept else 'a new journal started'}: "
        "the searches of cells without results run again from scratch (finished cells keep their results)")


INTERRUPTED = "~interrupted-"
"""A cell's partial search, set aside by :func:`open_search`, is named ``<cell_id>~interrupted-<n>``."""


def open_search(spec: StudySpec, study_dir: Path, cell: Cell) -> optuna.Study:
    """A fresh Optuna study for the cell, seeded from its id alone (see the module doc: resume is exact).

    A search already in the journal under the cell's name belongs to an attempt that never wrote
    the cell's results: it is renamed ``<cell_id>~interrupted-<n>`` (trials left RUNNING by the
    killed process marked FAIL) and the search starts over, so the rerun asks exactly the configs
    an uninterrupted run asks.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if cell.cell_id in names:
        _set_aside(storage, cell.cell_id, names)
    sampler: optuna.samplers.BaseSampler
    seed = _seed(f"{cell.cell_id}:0")
    if spec.search.sampler == "grid":
        # trial k of a fresh study takes grid point k of the seeded shuffle: each point once
        sampler = _Grid(grid_of(spec.search, cell.strategy, cell.dann), seed=seed)
    elif spec.search.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, spec.search.trials_per_cell))
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    return optuna.create_study(study_name=cell.cell_id, storage=storage, direction="minimize",
                               sampler=sampler, load_if_exists=False)


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its ``study.stop()`` once the grid is done: a cell asks and
    tells outside ``optimize`` (where ``stop`` raises) and its budget already ends the search."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: TrialState,
                    values: Any) -> None:
        return None


def _set_aside(storage: JournalStorage, name: str, names: set[str]) -> None:
    """Rename the study ``name`` to ``name~interrupted-<n>`` (a copy, then a delete)."""
    old = optuna.load_study(study_name=name, storage=storage)
    for t in old.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # it never reported
    n = 1
    while f"{name}{INTERRUPTED}{n}" in names:
        n += 1
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=storage,
                      to_study_name=f"{name}{INTERRUPTED}{n}")
    optuna.delete_study(study_name=name, storage=storage)


def _by_candidate(by_fold: dict[int, list[MemberResult]], ci: int) -> dict[int, list[MemberResult]]:
    return {f: sorted((r for r in rs if r.member.tag["candidate"] == ci), key=lambda r: r.member.tag["seed"])
            for f, rs in by_fold.items()}


def choose_per_fold(trials: list[optuna.trial.FrozenTrial], folds: list[int]) -> dict[int, optuna.trial.FrozenTrial]:
    """Per fold, the complete trial with the lowest loss on that fold's own validation window."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and "val_by_fold" in t.user_attrs]
    return {f: min(done, key=lambda t: (t.user_attrs["val_by_fold"][str(f)], t.number)) for f in folds}


_CONTEXTS: OrderedDict[str, Context] = OrderedDict()
"""Prepared experiments of this process, most recent last (a reused Ray actor runs many cells)."""


def _context(cell: Cell, study_dir: Path, store: Store) -> Context:
    """The cell's prepared experiment: features, folds, cached source weights.

    Cells that differ only in strategy and fraction share one preparation (a DANN cell's source
    also depends on its fraction), so a worker prepares it once for all of them instead of once
    per cell; the cell gets it with its own config. Preparation is deterministic, so a shared
    one gives the same fits as a fresh one.
    """
    with_source = STRATEGIES[cell.strategy].uses_source
    shared = cell.setup.model_copy(update={"strategies": ("scratch",), "fractions": (cell.fraction if cell.dann else 1.0,)})
    key = json.dumps([shared.model_dump_json(), with_source, str(study_dir), str(store.root)])
    if key not in _CONTEXTS:
        _CONTEXTS[key] = prepare(cell.setup, store, with_source=with_source)
        while len(_CONTEXTS) > 4:
            _CONTEXTS.popitem(last=False)
    _CONTEXTS.move_to_end(key)
    return dataclasses.replace(_CONTEXTS[key], cfg=cell.setup)


PROFILE_PARTS = ("tracking", "prepare", "optuna", "train", "evaluate", "baselines", "write")
"""Where a cell's time goes: ``time_<part>_s`` columns of its results (``xfer study run --profile``)."""


class _Clock:
    """Seconds per part of a cell, accumulated (``with clock("search"): ...``)."""

    def __init__(self, start: dict[str, float] | None = None) -> None:
        self.parts: dict[str, float] = {p: 0.0 for p in PROFILE_PARTS} | dict(start or {})

    def __call__(self, part: str) -> Any:
        @contextlib.contextmanager
        def timed() -> Any:
            t = time.perf_counter()
            try:
                yield
            finally:
                self.parts[part] += time.perf_counter() - t
        return timed()


def group_key(cell: Cell) -> tuple[str, str, float] | None:
    """Cells that train as one population (a *cell group*): one pair, chain and target fraction,
    every strategy. A member's fit does not depend on its population (any of two or more members:
    :class:`~xfer.train.population.Population`), so a cell's results are the same in a group and
    alone, and resume stays exact. Not grouped (None): a DANN cell (its members take the
    auxiliary-loss path, which would move a scratch member off the direct one) and dropout (its
    masks are drawn for the whole population)."""
    if cell.dann or cell.setup.backbone.dropout > 0:
        return None
    return (cell.pair.pair_id, cell.chain_id, cell.fraction)


@dataclasses.dataclass
class _Open:
    """A cell whose search is under way: its prepared experiment, Optuna study, fits, clock."""

    cell: Cell
    ctx: Context
    study: optuna.Study
    report: Report
    tracker: Any
    clock: _Clock
    t0: float
    kept: dict[int, dict[int, list[MemberResult]]] = dataclasses.field(default_factory=dict)


def _search(spec: StudySpec, opened: list[_Open]) -> None:
    """Run the cells' searches in lockstep: each round every cell asks its batch of trials, all
    the batches train as one population per fold (a cell alone: its own batch), and each cell is
    told its trials' losses. A cell's Optuna study sees exactly what it sees alone."""
    budget = spec.search.trials_per_cell
    ctx = next((o.ctx for o in opened if STRATEGIES[o.cell.strategy].uses_source), opened[0].ctx)
    done = 0
    while done < budget:
        n = min(spec.search.batch_size, budget - done)
        asked = []
        for o in opened:
            with o.clock("optuna"):
                trials = [o.study.ask() for _ in range(n)]
                asked.append((o, trials, [candidate(spec, o.cell, suggest(spec, o.cell, t)) for t in trials]))
        every = [c for _, _, cands in asked for c in cands]
        t = time.perf_counter()
        by_fold = fit_candidates(ctx, opened[0].cell.fraction, every)
        train_s = time.perf_counter() - t
        first = 0
        for o, trials, cands in asked:
            o.clock.parts["train"] += train_s * len(cands) / len(every)  # the group's time, by members
            with o.clock("optuna"):
                for ci, t in enumerate(trials):
                    fits = _by_candidate(by_fold, first + ci)
                    per_fold = {str(f): float(np.mean([r.best_val for r in rs])) for f, rs in fits.items()}
                    t.set_user_attr("val_by_fold", per_fold)
                    o.study.tell(t, per_fold[str(o.ctx.folds[0].index)])
                    o.kept[t.number] = fits
                o.report({"trials_done": done + n, "best_val": float(o.study.best_value), "cell_finished": False})
                if o.tracker is not None:
                    o.tracker.log({"trials_done": done + n, "best_val_loss": float(o.study.best_value)}, step=done + n)
            first += len(cands)
        done += n


def run_cell(spec: StudySpec, study_dir: Path, cell_id: str, store: Store,
             report: Report | None = None, tracker: Any = None, timings: dict[str, float] | None = None,
             node_id: str = "") -> Path:
    """Search, fit and evaluate one cell; return the path of its results file.

    ``timings``: seconds already spent on the cell by the caller (e.g. ``tracking``: opening its
    W&B run), added to the cell's ``time_<part>_s`` columns. ``node_id``: the Ray node that ran it
    (the ``node_id`` column; empty outside Ray)."""
    return run_cells(spec, study_dir, [cell_id], store, {cell_id: report} if report else None,
                     {cell_id: tracker} if tracker is not None else None, {cell_id: timings or {}}, node_id)[0]


def run_cells(spec: StudySpec, study_dir: Path, cell_ids: list[str], store: Store,
              reports: dict[str, Report] | None = None, trackers: dict[str, Any] | None = None,
              timings: dict[str, dict[str, float]] | None = None, node_id: str = "") -> list[Path]:
    """:func:`run_cell` for the cells of one group (:func:`group_key`), their searches trained
    together (:func:`_search`); return their results files. Finished cells are skipped."""
    by_id = {c.cell_id: c for c in cells(spec)}
    if len({group_key(by_id[c]) or c for c in cell_ids}) > 1:
        raise ValueError(f"cells {cell_ids} are not one cell group")
    reports, trackers, timings = reports or {}, trackers or {}, timings or {}
    opened: list[_Open] = []
    for cid in cell_ids:
        report = reports.get(cid) or (lambda _m: None)
        if cid in finished_cells(study_dir, [cid], _warn):  # an unreadable one is set aside
            report({"trials_done": spec.search.trials_per_cell, "cell_finished": True, "skipped": True})
            continue
        clock = _Clock(timings.get(cid))
        t0 = time.perf_counter() - sum(clock.parts.values())
        with clock("prepare"):
            ctx = _context(by_id[cid], study_dir, store)
        with clock("optuna"):
            study = open_search(spec, study_dir, by_id[cid])
        opened.append(_Open(by_id[cid], ctx, study, report, trackers.get(cid), clock, t0))
    if opened:
        _search(spec, opened)
    for o in opened:
        _finish(spec, study_dir, o, node_id)
    return [study_dir / "cells" / f"{cid}.parquet" for cid in cell_ids]


def _finish(spec: StudySpec, study_dir: Path, o: _Open, node_id: str) -> None:
    """Evaluate a searched cell's chosen fits per fold and write its test days and results."""
    cell, ctx, clock = o.cell, o.ctx, o.clock
    budget = spec.search.trials_per_cell
    chosen = choose_per_fold(o.study.get_trials(deepcopy=False), [f.index for f in ctx.folds])
    rows, days = [], []
    for fold in ctx.folds:
        t = chosen[fold.index]
        fits = o.kept[t.number]  # every trial of the (fresh) study ran here
        with clock("evaluate"):
            fit_rows, fit_days = evaluate_fits(ctx, fold, cell.fraction, fits[fold.index])
        p = knob_values(spec, t.params)
        for r in fit_rows:
            r.update(trial_number=t.number, lr_ratio=float(p["lr_ratio"]) if cell.strategy != "scratch" else
                     float("nan"), dann_weight_chosen=float(p["dann_weight"]) if cell.dann else 0.0,
                     **{k: p[k] for k in all_knobs()})
        rows.extend(fit_rows)
        with clock("baselines"):
            days.extend(fit_days + baseline_days(ctx, fold, cell.fraction))
    keys = {"pair": cell.pair.pair_id, "source": ",".join(cell.pair.source), "target": cell.pair.target,
            "chain": cell.chain_id, "dann_weight": 1.0 if cell.dann else 0.0}
    with clock("write"):
        write_parquet(day_frame(days, keys), study_dir / "days" / f"{cell.cell_id}.parquet")
        frame = pd.DataFrame(rows)
    metric = ctx.metric
    frame = frame.assign(
        **keys, metric=metric, val_score=frame["val_loss"], test_score=frame[f"test_{metric}"], cell_id=cell.cell_id,
        trials=budget, seconds=time.perf_counter() - o.t0, study=spec.name, xfer_version=_version(),
        torch_version=torch.__version__, python_version=platform.python_version(), node_id=node_id,
        **{f"time_{k}_s": v for k, v in clock.parts.items()},
    )
    write_parquet(frame, study_dir / "cells" / f"{cell.cell_id}.parquet")
    summary = {"val_score": float(frame["val_score"].mean()), "test_score": float(frame["test_score"].mean()),
               "trials_done": budget, "cell_finished": True}
    o.report(summary)
    if o.tracker is not None:
        best = o.study.best_trial
        o.tracker.finish({**summary, "metric": metric, **{f"best_{k}": v for k, v in best.params.items()}})


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=2)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xfer")
    except PackageNotFoundError:
        return "unknown"
