"""Verdicts with a known answer, in both metric directions; required fraction on a known curve."""

from __future__ import annotations

import math

import numpy as np

from xfer.evaluate.verdict import delta_verdict, paired_verdict, required_fraction


def test_verdict_directions() -> None:
    better = np.full(9, 0.1) + np.linspace(-0.01, 0.01, 9)  # transfer - scratch, clearly > 0
    assert paired_verdict(better).verdict == "positive"
    assert paired_verdict(-better).verdict == "negative"
    assert paired_verdict(np.linspace(-0.1, 0.1, 9)).verdict == "inconclusive"
    assert paired_verdict([0.3]).verdict == "inconclusive"  # one pair is never a verdict


def test_lower_is_better_reported_in_metric_units() -> None:
    mse_drop = -(np.full(9, 0.1) + np.linspace(-0.01, 0.01, 9))  # transfer has lower MSE
    v = delta_verdict(mse_drop, higher_is_better=False)
    assert v.verdict == "positive"
    assert v.mean < 0 and v.ci_low <= v.ci_high < 0
    assert math.isclose(v.mean, float(mse_drop.mean()))


def test_required_fraction_known_curve() -> None:
    ref = [1.0, 1.0, 1.0]
    curve = {0.1: [0.2, 0.2, 0.2], 0.3: [1.1, 1.1, 1.1], 1.0: [1.2, 1.2, 1.2]}
    rf = required_fraction(curve, ref)
    assert rf.point == 0.3 and rf.ci_low == rf.ci_high == 0.3 and rf.reached_share == 1.0
    assert math.isinf(required_fraction({0.5: [0.1, 0.2]}, ref).point)
