"""Cell groups: the cells of one pair, chain and fraction search in lockstep and train as one
population per fold. A member's fit does not depend on its population, so each cell's results
are bit-identical to the cell run alone (which is also what a resume of a part of a group runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.study.test_resume import SPEC, VOLATILE
from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.study import runner
from xfer.study.cell import group_key, run_cell, run_cells
from xfer.study.spec import StudySpec, cells

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(tmp_path_factory.mktemp("groups") / "home")
    syn.write_set(st, "shared", n_source=2500, n_target=1500, seed=0)
    return st


def _frame(p: Path) -> pd.DataFrame:
    return pd.read_parquet(p).drop(columns=VOLATILE, errors="ignore")


def test_a_group_gives_each_cell_its_results_alone(store: Store, tmp_path: Path) -> None:
    ids = [c.cell_id for c in cells(SPEC)]  # scratch and head-only at one fraction: one group
    assert len(ids) == 2 and len({group_key(c) for c in cells(SPEC)}) == 1
    torch.manual_seed(0)
    together = run_cells(SPEC, tmp_path / "group", ids, store)
    for cid, path in zip(ids, together, strict=True):
        torch.manual_seed(0)
        alone = run_cell(SPEC, tmp_path / f"alone-{cid}", cid, store)
        pd.testing.assert_frame_equal(_frame(path), _frame(alone), check_exact=True)
        got = pd.read_parquet(tmp_path / "group" / "days" / f"{cid}.parquet")
        pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / f"alone-{cid}" / "days" / f"{cid}.parquet"),
                                      check_exact=True)
    # a group whose first cell finished runs the rest alone: the same results again
    again = run_cells(SPEC, tmp_path / "group", ids, store)
    pd.testing.assert_frame_equal(_frame(again[1]), _frame(together[1]), check_exact=True)


def test_cells_of_different_groups_are_refused(store: Store, tmp_path: Path) -> None:
    spec = SPEC.model_copy(update={"grid": SPEC.grid.model_copy(update={"fractions": (0.5, 1.0)})})
    by_frac = {c.fraction: c.cell_id for c in cells(spec) if c.strategy == "scratch"}
    with pytest.raises(ValueError, match="not one cell group"):
        run_cells(spec, tmp_path, [by_frac[0.5], by_frac[1.0]], store)


def test_dann_and_dropout_cells_are_not_grouped() -> None:
    spec = StudySpec.model_validate({
        "name": "g", "pairs": [{"source": "sp500", "target": "mtum"}],
        "grid": {"fractions": [0.5], "dann": [False, True], "backbone": {"dropout": 0.0}}})
    keys = {c.cell_id: group_key(c) for c in cells(spec)}
    assert all((k is None) == c.dann for c, k in zip(cells(spec), keys.values(), strict=True))
    drop = spec.model_copy(update={"grid": spec.grid.model_copy(update={
        "backbone": spec.grid.backbone.model_copy(update={"dropout": 0.1})})})
    assert all(group_key(c) is None for c in cells(drop))
    units = runner.cell_units(cells(spec))
    assert [len(u) for u in units if group_key(u[0]) is not None] == [4]
