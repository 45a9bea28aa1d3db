"""No selection step reads a test row: asserted from the row indices each step was handed.

Selection = early stopping and the validation loss a fit reports (which picks the candidate in
``xfer transfer``, is Optuna's objective and picks each fold's config in a study), and the
baselines' own tuning (ridge's alpha). We record the validation rows of every target fit and
every baseline fit, then check them against every fold's test block and against the fold the
choice is later scored on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xfer.data import synthetic as syn
from xfer.data.splits import SplitSpec, make_folds, scored_rows
from xfer.data.store import Store
from xfer.experiment import evaluate as ev
from xfer.experiment import fit as fit_mod
from xfer.experiment.prepare import prepare
from xfer.experiment.run import TransferConfig, run_transfer
from xfer.models.backbones import BackboneSpec
from xfer.study.cell import run_cell
from xfer.study.spec import StudySpec, cells
from xfer.train.population import Population
from xfer.train.types import TrainConfig

TINY = TrainConfig(batch_size=32, steps_per_epoch=4, max_epochs=3, patience=2)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(tmp_path_factory.mktemp("selection") / "home")
    syn.write_set(st, "shared", n_source=2500, n_target=1500, seed=0)
    return st


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[int], list[int]]]:
    """(who, validation rows, training rows) of every target fit and baseline fit."""
    seen: list[tuple[str, list[int], list[int]]] = []

    class Recording(Population):
        def fit(self, members: Any, data: Any, val: Any, aux: Any = None) -> Any:
            seen.append(("fit", list(val), sorted({i for m in members for i in m.train})))
            return super().fit(members, data, val, aux=aux)

    real = ev.fit_baselines

    def baselines(target_type: str, data: Any, cols: Any, train: range, val: range, test: range) -> Any:
        seen.append(("baseline", list(val), list(train)))
        return real(target_type, data, cols, train, val, test)

    monkeypatch.setattr(fit_mod, "Population", Recording)
    monkeypatch.setattr(ev, "fit_baselines", baselines)
    return seen


def _check(seen: list[tuple[str, list[int], list[int]]], n_rows: int, split: SplitSpec) -> None:
    folds = make_folds(n_rows, split)
    scored = scored_rows(folds)
    assert {who for who, _, _ in seen} == {"fit", "baseline"}
    for who, val, train in seen:
        assert val, who
        assert not set(val) & scored, f"{who} selected on {len(set(val) & scored)} test rows"
        # the choice is scored on the fold whose validation window this is: val precedes its test
        fold = next(f for f in folds if f.val.start == val[0])
        assert max(val) < fold.test.start and max(train) < fold.val.start


def test_transfer_selection_reads_no_test_row(store: Store, recorded: list) -> None:
    split = SplitSpec(n_folds=3, test_share=0.2, horizon=5, embargo=5)
    cfg = TransferConfig(source=("syn_shared_src",), target="syn_shared_tgt", fractions=(0.3, 1.0), seeds=1,
                         strategies=("scratch", "head_only"), importance_repeats=0, split=split,
                         backbone=BackboneSpec(hidden=8), train=TINY, source_train=TINY)
    res = run_transfer(cfg, store)
    n_rows = len(prepare(cfg, store, with_source=False).tgt.data)
    assert len(recorded) == 2 * 3 * 2  # 2 fractions x 3 folds x (one population + baselines)
    _check(recorded, n_rows, split)
    assert (res.fits["best_step"] >= 1).all()


def test_study_selection_reads_no_test_row(store: Store, recorded: list, tmp_path: Path) -> None:
    spec = StudySpec.model_validate({
        "name": "sel", "task": {"target_type": "volatility"},
        "pairs": [{"source": "syn_shared_src", "target": "syn_shared_tgt"}],
        "grid": {"strategies": ["head_only"], "fractions": [0.5], "seeds": 1, "backbone": {"hidden": 8}},
        "search": {"sampler": "random", "trials_per_cell": 3, "batch_size": 3,
                   "space": {"lr_ratio": {"low": 0.01, "high": 1.0, "log": True}}},
        "evaluation": {"folds": 3, "test_share": 0.2, "importance_repeats": 0},
        "train": TINY.model_dump(), "tracking": {"mode": "disabled"}})
    cell = next(c for c in cells(spec) if c.strategy == "head_only")
    run_cell(spec, tmp_path, cell.cell_id, store)
    setup = cell.setup
    n_rows = len(prepare(setup, store, with_source=False).tgt.data)
    _check(recorded, n_rows, setup.split)
    # Optuna was told fold 0's validation loss: the only window that precedes every test block
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=cell.cell_id,
                              storage=JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal"))))
    folds = make_folds(n_rows, setup.split)
    for t in study.trials:
        assert t.value == t.user_attrs["val_by_fold"]["0"]
    assert max(folds[0].val) < min(scored_rows(folds))


def test_the_history_check_needs_exactly_what_make_domain_trains_on() -> None:
    """``min_history`` is the boundary of ``make_domain`` (and what ``check`` refuses below):
    one row fewer raises."""
    import pandas as pd

    from xfer.data.features import FeatureMatrix
    from xfer.experiment.prepare import make_domain, min_history

    for val_share, embargo, window in [(0.1, 5, 1), (0.2, 10, 20), (0.05, 1, 1)]:
        need = min_history(val_share, embargo, window)
        for n, ok in [(need, True), (need - 1, False)]:
            dates = pd.bdate_range("2000-01-03", periods=n + 10)
            fm = FeatureMatrix(pd.DataFrame({"date": dates, "f": np.arange(n + 10.0), "target": np.ones(n + 10)}),
                               ["f"])
            cutoff = dates[n]  # n rows before it
            if ok:
                make_domain({"m": fm}, ["f"], cutoff, embargo, val_share, window)
            else:
                with pytest.raises(ValueError, match="too few to train on"):
                    make_domain({"m": fm}, ["f"], cutoff, embargo, val_share, window)
