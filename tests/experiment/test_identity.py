"""Behaviour-preserving refactors: the quickstart study and one transfer run reproduce the
snapshots in ``tests/golden`` exactly (CPU, same seeds). A change that moves a number on
purpose regenerates them with ``python tests/golden/make_golden.py`` in the same commit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.experiment.identity import TABLES, canonical, run_quickstart, run_small_transfer

pytestmark = pytest.mark.slow  # tiers: `pytest -m "not slow"` is the quick one (README)

GOLDEN = Path(__file__).parents[1] / "golden"


def _same(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """Every snapshot column is present with identical values (new columns may be added)."""
    want = canonical(want)
    missing = sorted(set(want.columns) - set(got.columns))
    assert not missing, f"{what}: columns lost: {missing}"
    pd.testing.assert_frame_equal(got[list(want.columns)], want, check_exact=True, check_dtype=False, obj=what)


@pytest.mark.ray
@pytest.mark.slow
def test_quickstart_tables_identical_to_snapshot(tmp_path: Path) -> None:
    tables = run_quickstart(tmp_path)
    for name in TABLES:
        _same(tables[name], pd.read_parquet(GOLDEN / f"quickstart_{name}.parquet"), name)


def test_transfer_fits_identical_to_snapshot(tmp_path: Path) -> None:
    _same(run_small_transfer(tmp_path / "home"), pd.read_parquet(GOLDEN / "transfer_fits.parquet"), "fits")
