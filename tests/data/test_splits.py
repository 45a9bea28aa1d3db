"""Split invariants over many random configurations, and train-only normalisation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from xfer.data.normalize import Standardizer
from xfer.data.splits import MIN_TRAIN_ROWS, SplitSpec, make_folds, scored_rows


@st.composite
def configs(draw):
    horizon = draw(st.integers(1, 20))
    n_folds, test_share = draw(st.integers(1, 8)), draw(st.floats(0.05, 0.5))
    spec = SplitSpec(
        n_folds=n_folds,
        test_share=test_share,
        val_share=draw(st.floats(0.005, (0.89 - test_share) / n_folds)),
        horizon=horizon,
        embargo=horizon + draw(st.integers(0, 10)),
    )
    n = draw(st.integers(spec.min_rows(), spec.min_rows() + 5000))
    return spec, n


@settings(max_examples=400, deadline=None)
@given(configs(), st.floats(0.001, 1.0))
def test_fold_invariants(cfg, fraction: float) -> None:
    spec, n = cfg
    folds = make_folds(n, spec)
    assert len(folds) == spec.n_folds
    tests = [f.test for f in folds]
    # test blocks: in time order, non-empty, the last one ends the series, sizes within one row
    assert tests[-1].stop == n
    for a, b in itertools.pairwise(tests):
        assert a.stop + 2 * spec.embargo + len(folds[0].val) <= b.start
    assert all(len(t) >= 1 for t in tests)
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    held_out = tests[0].start
    scored = scored_rows(folds)
    assert len(scored) == sum(map(len, tests))
    for f in folds:
        # order in time and the embargo (>= horizon) between every pair of segments
        assert f.train.start == 0 and len(f.train) >= MIN_TRAIN_ROWS
        assert f.train.stop + spec.embargo <= f.val.start
        assert f.val.stop + spec.embargo <= f.test.start
        assert f.val.start - f.train.stop >= spec.horizon
        assert f.test.start - f.val.stop >= spec.horizon
        # no overlap between any two segments
        sets = [set(f.train), set(f.val), set(f.test)]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        # no validation row of any fold lies in any fold's test block
        assert not set(f.val) & scored
        # a fold trains only on rows before its own validation window
        assert f.train.stop <= f.val.start
        # fold 0 never trains or validates inside the held-out test period
        if f.index == 0:
            assert f.val.stop <= held_out and f.train.stop <= held_out
        # fraction: the most recent contiguous share of the training window
        g = f.with_fraction(fraction)
        assert g.val == f.val and g.test == f.test
        assert g.train.stop == f.train.stop and g.train.step == 1
        assert set(g.train) <= set(f.train)
        expect = min(len(f.train), max(MIN_TRAIN_ROWS, math.ceil(fraction * len(f.train) - 1e-9)))
        assert len(g.train) == expect
        # monotone: a larger fraction never trains on less
        assert len(f.with_fraction(min(1.0, fraction * 2)).train) >= len(g.train)
    # later folds train on at least as much (expanding window)
    assert all(len(a.train) <= len(b.train) for a, b in itertools.pairwise(folds))


@settings(max_examples=100, deadline=None)
@given(configs())
def test_too_few_rows_is_refused(cfg) -> None:
    spec, _ = cfg
    with pytest.raises(ValueError, match="Too few rows"):
        make_folds(spec.min_rows() - 1, spec)


def test_fraction_one_is_whole_window_and_bad_fraction_refused() -> None:
    f = make_folds(2000, SplitSpec())[0]
    assert f.with_fraction(1.0) == f
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="'fraction'"):
            f.with_fraction(bad)


def test_embargo_must_cover_horizon() -> None:
    with pytest.raises(ValidationError, match="embargo"):
        SplitSpec(horizon=5, embargo=2)


def test_standardizer_uses_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (1000, 4))
    fold = make_folds(1000, SplitSpec())[0]
    s1 = Standardizer.fit(x[fold.train])
    x2 = x.copy()
    x2[fold.val.start :] *= 100.0  # scramble everything after training
    s2 = Standardizer.fit(x2[fold.train])
    np.testing.assert_array_equal(s1.mean, s2.mean)
    np.testing.assert_array_equal(s1.std, s2.std)
    z = s1.transform(x[fold.train])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-3)
    assert np.abs(s1.transform(x2[fold.test])).max() <= s1.clip  # clipped with train bounds
    np.testing.assert_allclose(s1.inverse(s1.transform(x[:5])), x[:5], rtol=1e-5)
