"""The sizing suite's oracle and coverage bookkeeping (known answers; the full suite runs in
``scripts/calibrate.py``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from xfer.experiment import calibration as C
from xfer.experiment.sizing_suite import SIZING_FRACTIONS, _inside, first_reach

pytestmark = pytest.mark.slow  # tiers: `pytest -m "not slow"` is the quick one (README)

def test_first_reach_is_the_first_fraction_at_or_above_zero() -> None:
    assert first_reach({0.05: -0.2, 0.2: 0.0, 0.5: -0.1, 1.0: 0.3}) == 0.2  # non-monotone: the first
    assert first_reach({0.1: -0.1, 1.0: -0.01}) == math.inf
    assert _inside(0.2, 0.1, 0.35) and not _inside(0.05, 0.1, 0.35)
    assert _inside(math.inf, 0.5, math.inf) and not _inside(math.inf, 0.5, 1.0)  # "never" needs an open band


@pytest.mark.slow
def test_one_sizing_replication_has_a_consistent_oracle(tmp_path: Path) -> None:
    s = dataclasses.replace(C.REDUCED, sizing_replications=1, max_epochs=2, source_max_epochs=2,
                            oracle_days=4000, workers=1)
    (job,) = C.sizing_jobs(s, tmp_path)
    rows = C.run_job(job)
    assert set(rows["strategy"]) == {"scratch", *s.strategies}
    scratch = rows.set_index("strategy").loc["scratch"]
    # scratch's oracle curve is 0 at the largest fraction by construction: it reaches by then
    assert scratch["oracle_fraction"] <= max(SIZING_FRACTIONS)
    for r in rows.itertuples():
        assert r.monotone_ci_low <= r.monotone_fraction <= r.monotone_ci_high or np.isinf(r.monotone_fraction)
        assert r.monotone_covered == _inside(r.oracle_fraction, r.monotone_ci_low, r.monotone_ci_high)
