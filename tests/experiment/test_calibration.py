"""Statistical calibration of the transfer verdicts (the reduced preset; ``scripts/calibrate.py``
runs the full one and writes CALIBRATION.md).

Every replication is a whole experiment on a newly simulated target (fixed seeds, so the run
is deterministic). The bands are those of a calibrated procedure at these sizes, not tuned to
the seeds: a result outside them is a finding about the statistics or the pipeline.

Run with ``pytest -m calibration -s`` to see the figures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xfer.data import synthetic as syn
from xfer.data.features import FeatureMatrix
from xfer.data.store import Store
from xfer.experiment import calibration as C
from xfer.experiment.evaluate import evaluate_fits
from xfer.experiment.fit import fit_candidates, select
from xfer.experiment.methods import CANDIDATES, default_candidate
from xfer.experiment.prepare import prepare
from xfer.experiment.run import candidates, run_transfer

pytestmark = [pytest.mark.calibration, pytest.mark.slow]  # tiers: the quick one is `pytest -m "not slow"`
SETTINGS = C.REDUCED


@pytest.fixture(scope="module")
def cal(tmp_path_factory: pytest.TempPathFactory) -> C.Calibration:
    return C.run_calibration(SETTINGS, tmp_path_factory.mktemp("calibration"), say=print)


def _report(text: str) -> str:
    print(f"\n{text}")
    return text


def test_null_target_has_no_return_predictability() -> None:
    spec = C.null_target_spec()
    shared = syn.pair_specs("shared")[1]
    assert (spec.phi, spec.momentum, spec.mu) == (0.0, 0.0, 0.0)
    assert (spec.garch_alpha, spec.garch_beta, spec.vol) == (shared.garch_alpha, shared.garch_beta, shared.vol)
    r = np.log(syn.simulate(spec, 20_000, seed=1)["close"]).diff().dropna().to_numpy()
    phi, mom = syn.estimate_ar_momentum(r, spec.momentum_lookback)
    assert abs(phi) < 0.03 and abs(mom) < 0.1  # sampling noise only (s.e. ~0.007 and ~0.03)


def test_oracle_recipe_reproduces_the_test_day_scores(tmp_path: Path) -> None:
    """Scored on the target's own test rows, the oracle's recipe gives evaluate_fits' day scores."""
    s = dataclasses.replace(SETTINGS, max_epochs=3, source_max_epochs=2)
    st = Store(tmp_path / "home")
    src_spec, tgt_spec = syn.pair_specs("opposite")
    syn.write_market(st, "src", src_spec, s.source_days, 1)
    syn.write_market(st, "tgt", tgt_spec, s.target_days, 2)
    for target_type in ("return", "volatility"):
        cfg = C.experiment_config(s, "src", "tgt", (0.1,), target_type)
        ctx = prepare(cfg, st, tmp_path / "cache")
        fold = ctx.folds[1]
        chosen = select(fit_candidates(ctx, 0.1, candidates(cfg), [fold])[fold.index])
        _, days = evaluate_fits(ctx, fold, 0.1, chosen)
        test = FeatureMatrix(ctx.tgt.data.iloc[fold.test.start:fold.test.stop].reset_index(drop=True),
                             ctx.tgt.feature_names, target=target_type, horizon=cfg.h)
        fresh = C.fresh_day_scores(ctx, fold, 0.1, chosen, test)
        np.testing.assert_allclose(fresh, np.stack([d["score"] for d in days]), rtol=1e-5, atol=1e-7)


def test_replicate_is_run_transfer(tmp_path: Path) -> None:
    """The suites' own loop (which keeps the fitted weights) gives run_transfer's verdicts."""
    s = dataclasses.replace(SETTINGS, max_epochs=3, source_max_epochs=2)
    st = Store(tmp_path / "home")
    src_spec, tgt_spec = syn.pair_specs("shared")
    syn.write_market(st, "src", src_spec, s.source_days, 3)
    syn.write_market(st, "tgt", tgt_spec, s.target_days, 4)
    cfg = C.experiment_config(s, "src", "tgt", (0.1, 1.0), "return")
    ours = C.replicate(cfg, st, tmp_path / "cache", with_baselines=True)
    seen: list[tuple[int, float, int]] = []
    theirs = run_transfer(cfg, st, tmp_path / "cache",
                          on_chosen=lambda _ctx, fold, frac, chosen: seen.append((fold.index, frac, len(chosen)))).table
    # every fold of every fraction hands over one chosen fit per (strategy incl. scratch, seed)
    assert seen == [(f, fr, (1 + len(s.strategies)) * s.seeds) for fr in (0.1, 1.0) for f in range(s.n_folds)]
    cols = ["strategy", "fraction", "test_score", "delta", "delta_ci_low", "delta_ci_high", "p_value",
            "p_adjusted", "verdict", "best_baseline", "delta_vs_baseline"]
    pd.testing.assert_frame_equal(ours[cols].sort_values(cols[:2]).reset_index(drop=True),
                                  theirs[cols].sort_values(cols[:2]).reset_index(drop=True))


def test_null_false_verdict_rate_is_nominal(cal: C.Calibration) -> None:
    nul = C.null_summary(cal.null)
    r = nul["verdicts"]
    lo, hi = r.ci
    per_cell = "; ".join(f"{k}: {v.text()}" for k, v in nul["per_cell"].items())
    msg = _report(
        f"null suite: {nul['replications']} replications, {r.n} verdicts "
        f"({len(SETTINGS.strategies)} strategies x {len(SETTINGS.null_fractions)} fraction(s) each); "
        f"false verdicts (unadjusted 95%): {r.text()} [{nul['positive']} positive, {nul['negative']} negative]; "
        f"per cell: {per_cell}; replications with any: {nul['any_unadjusted'].text()}; "
        f"Holm family-wise: {nul['holm_familywise'].text()}; mean delta {nul['mean_delta']:+.4f} "
        f"(s.e. {nul['mean_delta_se']:.4f}); sd delta {nul['sd_delta']:.4f} vs mean half-width/1.96 "
        f"{nul['mean_half_width'] / 1.959964:.4f}; sd of delta / implied s.e. {nul['z_sd']:.2f} (1 if "
        f"calibrated); diagnostics: the day-level-only interval (no seed level) calls "
        f"{nul['day_only'].text()}, seeds' day differences correlate {nul['seed_corr']:.2f} on average; "
        f"{cal.null.seconds:.0f} s")
    assert nul["replications"] >= 50
    assert 0.01 <= r.share <= 0.09, msg
    assert 0.0 <= lo <= r.share <= hi <= 1.0


def test_intervals_cover_the_oracle_effect(cal: C.Calibration) -> None:
    cov = C.coverage_summary(cal.coverage)
    pooled = cov["pooled"]
    cells = "; ".join(
        f"{k}: {v['covered'].text()}, mean oracle {v['mean_oracle']:+.4f}, mean error {v['mean_error']:+.4f}, "
        f"sd error {v['sd_error']:.4f} vs implied {v['implied_sd']:.4f}, misses below/above "
        f"{v['miss_low']}/{v['miss_high']}, oracle s.e. {v['mean_oracle_se']:.4f}, day-level-only interval "
        f"covers {v['day_covered'].text()}, sd of the seeds' oracle effects {v['oracle_seed_sd']:.4f}"
        for k, v in cov["cells"].items())
    msg = _report(f"coverage suite: {cov['replications']} replications, {pooled['covered'].n} intervals; "
                  f"covered {pooled['covered'].text()}; {cells}; {cal.coverage.seconds:.0f} s")
    assert cov["replications"] >= 50
    assert 0.90 <= pooled["covered"].share <= 0.99, msg


def test_power_is_reported(cal: C.Calibration) -> None:
    pw = C.power_summary(cal.coverage)
    _report(f"power (shared pair, fraction {SETTINGS.coverage_fraction:g}): " + "; ".join(
        f"{st} positive unadjusted {v['unadjusted'].text()}, Holm-adjusted {v['adjusted'].text()}"
        for st, v in pw.items()))
    assert set(pw) == set(SETTINGS.strategies)
    for v in pw.values():
        for r in (v["unadjusted"], v["adjusted"]):
            assert r.n == SETTINGS.coverage_replications and 0.0 <= r.share <= 1.0
        assert v["adjusted"].k <= v["unadjusted"].k  # Holm only ever removes verdicts


def test_the_default_candidate_is_the_verdict_tables_method(cal: C.Calibration) -> None:
    """The candidates table scores the method the verdicts use: on every tested cell the default
    candidate's interval and p-value are the table's own, to the last bit."""
    name = default_candidate()
    rows = pd.concat([cal.null.rows, cal.coverage.rows], ignore_index=True)
    np.testing.assert_array_equal(rows[f"{name}_p"], rows["p_value"])
    np.testing.assert_array_equal(rows[f"{name}_lo"], rows["delta_ci_low"])
    table = C.candidate_summary(cal.null.rows, cal.coverage.rows)
    assert set(table["candidate"]) == set(CANDIDATES)
    default = table.set_index("candidate").loc[name]
    assert default["null_false"].k == int((cal.null.rows["p_value"] < 0.05).sum())


def test_pooled_estimates_hold_their_level_with_trained_models(cal: C.Calibration) -> None:
    """The reduced pooled suite (10 studies of 4 trained targets, null and shared): a broken
    pooled interval (too narrow, or not centred on the targets' mean) fails these bands."""
    pl = cal.summaries["pooled"]
    msg = _report(f"pooled suite: null false verdicts {pl['null'].text()} (KS p {pl['null_ks_p']:.3g}); coverage "
                  f"of mu {pl['coverage'].text()}; " + "; ".join(
                      f"{k}: mu {v['mu']:+.4f}, mean estimate {v['mean_estimate']:+.4f}, sd {v['sd_estimate']:.4f}, "
                      f"half-width {v['mean_half_width']:.4f}" for k, v in pl["cells"].items()))
    assert pl["null"].n == SETTINGS.pooled_replications * len(SETTINGS.strategies)
    assert pl["null"].k <= 3, msg  # 20 estimates at 5%: P(> 3) = 1.6%
    assert pl["coverage"].share >= 0.8, msg  # 20 intervals at 95%: P(< 16) = 1.6%
    for v in pl["cells"].values():  # the estimate is centred on the oracle mean
        assert abs(v["mean_estimate"] - v["mu"]) < 3 * v["sd_estimate"] / np.sqrt(SETTINGS.pooled_replications), msg
