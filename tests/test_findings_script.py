"""scripts/findings.py: the RESULTS.md tables read the study's own files and get known answers
right (a journal whose best LR ratio is fixed by construction, importances whose transfer -
scratch gap is fixed, regimes split at a median computed by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xfer.study.spec import StudySpec, cells

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import findings

SPEC = {
    "name": "lr_known", "task": {"target_type": "volatility", "horizon": 5},
    "pairs": [{"source": "sp500", "target": "mtum"}, {"source": "sp500", "target": "wti"}],
    "grid": {"strategies": ["scratch", "head_only", "full"], "fractions": [0.1, 0.5, 1.0], "seeds": 1},
    "search": {"sampler": "grid", "trials_per_cell": 3, "batch_size": 3,
               "space": {"lr_ratio": {"choices": [0.03, 0.1, 0.3]}, "scratch_lr": {"choices": [1e-4, 1e-3, 1e-2]}}},
    "evaluation": {"folds": 2},
}


def _study(tmp_path: Path, loss: dict[str, dict[float, float]], noise: float = 0.01) -> Path:
    """A study directory whose journal holds, per transfer cell and fold, ``loss[strategy][ratio]``
    times a small per-(cell, fold) factor shared by all ratios (so ratios keep their order)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    spec = StudySpec.model_validate(SPEC)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    rng = np.random.default_rng(0)
    for c in cells(spec):
        study = optuna.create_study(study_name=c.cell_id, storage=storage)
        knob = "scratch_lr" if c.strategy == "scratch" else "lr_ratio"
        scale = {f: 1.0 + noise * rng.standard_normal() for f in (0, 1)}
        for v in SPEC["search"]["space"][knob]["choices"]:
            per_fold = {str(f): (loss.get(c.strategy, {}).get(v, 1.0)) * s for f, s in scale.items()}
            t = optuna.trial.create_trial(params={knob: v}, distributions={
                knob: optuna.distributions.CategoricalDistribution(SPEC["search"]["space"][knob]["choices"])},
                value=per_fold["0"], user_attrs={"val_by_fold": per_fold})
            study.add_trial(t)
    # an interrupted attempt of a cell: must be ignored
    bad = optuna.create_study(study_name=cells(spec)[1].cell_id + "~interrupted-1", storage=storage)
    bad.add_trial(optuna.trial.create_trial(params={"lr_ratio": 0.03}, distributions={
        "lr_ratio": optuna.distributions.CategoricalDistribution([0.03, 0.1, 0.3])}, value=0.0,
        user_attrs={"val_by_fold": {"0": 1e-9, "1": 1e-9}}))
    return tmp_path


def test_lr_table_finds_the_best_ratio_by_construction(tmp_path: Path) -> None:
    # head_only is best at 0.3 (10% below 0.1's loss), full at 0.03 (5% below)
    sd = _study(tmp_path, {"head_only": {0.03: 1.2, 0.1: 1.0, 0.3: 0.9}, "full": {0.03: 0.95, 0.1: 1.0, 0.3: 1.3}})
    j = findings.journal_losses(sd)
    assert len(j) == 2 * 3 * 3 * 3 * 2  # pairs x strategies x fractions x configs x folds; the interrupted one left out
    table = findings.lr_table(sd, n_boot=200)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()
            if line.startswith("| ") and ":" in line.split("|")[1]}
    assert rows["head_only: share best"] == ["0%", "0%", "100%"]
    assert rows["full: share best"] == ["100%", "0%", "0%"]
    head = rows["head_only: val loss vs 0.1"]
    assert head[1] == "0 (ref.)" and head[2].startswith("-10.0% [-10.0, -10.0]") and head[0].startswith("+20.0%")
    assert rows["full: val loss vs 0.1"][0].startswith("-5.0%")


def test_families_table_paired_gap_known(tmp_path: Path) -> None:
    rows = []
    for pair, target in (("sp500->wti", "wti"), ("sp500->mtum", "mtum")):
        for strat, gap in (("scratch", 0.0), ("head_only", 0.02), ("partial", 0.0), ("full", -0.01)):
            for frac in (0.1, 1.0):
                for fold in (0, 1, 2):
                    for seed in (0, 1):
                        base = 0.05 + 0.01 * fold + 0.001 * seed
                        rows.append({"pair": pair, "target": target, "chain": "direct", "dann_weight": 0.0,
                                     "strategy": strat, "fraction": frac, "fold": fold, "seed": seed,
                                     "importance_volatility": base + gap, "importance_momentum": base})
    (tmp_path / "results.parquet").parent.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    table = findings.families_table(tmp_path, n_boot=100)
    vol_wti = next(line for line in table.splitlines() if line.startswith("| wti | volatility |"))
    cells_ = [c.strip() for c in vol_wti.split("|")[1:-1]]
    assert cells_[4] == "+0.0200 [+0.0200, +0.0200]" and cells_[8] == "-0.0100 [-0.0100, -0.0100]"
    mom = next(line for line in table.splitlines() if line.startswith("| mtum | momentum |"))
    assert "+0.0000 [+0.0000, +0.0000]" in mom


def test_regimes_split_at_the_median_before_each_fold() -> None:
    from xfer.data.features import build_features
    from xfer.data.store import Store

    spec = StudySpec.model_validate(SPEC)
    st = Store()
    fm = build_features(st.load("wti").frame, "volatility", 5)
    dates = pd.to_datetime(fm.data["date"])
    rv = fm.data["volatility.rv_20"].to_numpy()
    pick = {0: np.arange(5000, 5100), 1: np.arange(7000, 7100)}
    days = pd.concat([pd.DataFrame({"target": "wti", "fold": f, "date": dates.iloc[idx].to_numpy()})
                      for f, idx in pick.items()], ignore_index=True)
    got = findings.regime_of_days(days, spec, st)
    for f, idx in pick.items():
        thr = np.median(rv[: idx[0]])
        want = np.where(rv[idx] > thr, "high_vol", "low_vol")
        assert list(got[days["fold"] == f]) == list(want)
    assert set(got) == {"high_vol", "low_vol"}


def test_cli_refuses_a_directory_that_is_not_a_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert findings.main(["sizing", str(tmp_path)]) == 2
    assert "not a finished study directory" in capsys.readouterr().err


@pytest.mark.slow
def test_cluster_interval_covers_a_zero_effect_at_about_its_nominal_rate() -> None:
    """On a null whose truth is exactly 0 (21 blocks of 3 correlated rows, the design of the
    families table), the 95% block-bootstrap interval covers 0 in about 95% of 400 replications.
    With 21 blocks a percentile bootstrap under-covers a little; the lower bound allows 90%."""
    rng = np.random.default_rng(1)
    covered = 0
    reps = 400
    for _ in range(reps):
        shared = rng.standard_normal(21)  # a block effect: rows of a block are correlated
        blocks = [(s + 0.5 * rng.standard_normal(3))[:, None] for s in shared]
        _, lo, hi = findings.cluster_interval(blocks, 300, rng)
        covered += bool(lo[0] <= 0.0 <= hi[0])
    assert 0.90 <= covered / reps <= 0.985, covered / reps


def test_pooled_table_prints_the_chosen_reference_all_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xfer.evaluate.contract import POOLED_COLUMNS

    base = {"strategy": "head_only", "fraction": 0.1, "dann_weight": 0.0, "metric": "r2_oos", "n_targets": 20,
            "targets": "a", "ci_low": -0.01, "ci_high": 0.05, "p_value": 0.1, "p_adjusted": 0.4,
            "verdict": "inconclusive", "tau2": 0.0009, "pi_low": -0.05, "pi_high": 0.09, "detectable_effect": 0.04,
            "df": 19.0}
    rows = [{**base, "group": "equity", "versus": "scratch", "estimate": 0.02},
            {**base, "group": "all", "versus": "scratch", "estimate": 0.03},
            {**base, "group": "all", "versus": "har_rv", "estimate": -0.5}]
    pd.DataFrame(rows, columns=list(POOLED_COLUMNS)).to_parquet(tmp_path / "pooled.parquet")
    (tmp_path / "spec.json").write_text("{}")
    assert findings.main(["pooled", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "delta vs scratch" in lines[0]
    assert lines[2].startswith("| all | 20 | head_only | 0.1 | +0.030 |") and "| 0.030 |" in lines[2]  # tau
    assert lines[3].startswith("| equity |")


def test_comparisons_table_pairs_dann_with_its_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xfer.evaluate.contract import COMPARISON_COLUMNS

    base = {"pair": "a->b", "baseline": "none", "fraction": 0.2, "metric": "r2_oos", "delta_ci_low": -0.01,
            "delta_ci_high": 0.01, "p_value": 0.5, "p_adjusted": 1.0, "verdict": "inconclusive",
            "detectable_effect": 0.02, "n_days": 100}
    rows = [{**base, "kind": "dann_vs_none", "variant": "1.5", "strategy": "full", "delta": -0.003},
            {**base, "kind": "chain_vs_direct", "variant": "a->m->b", "baseline": "direct", "strategy": "head_only",
             "delta": 0.001, "verdict": "positive"}]
    pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).to_parquet(tmp_path / "comparisons.parquet")
    # probe accuracy 0.6 and 0.8 without DANN (mean 0.7), 0.5 with it
    pd.DataFrame({"pair": "a->b", "strategy": "full", "fraction": 0.2, "dann_weight": [0.0, 0.0, 1.5],
                  "domain_probe_acc": [0.6, 0.8, 0.5]}).to_parquet(tmp_path / "results.parquet")
    (tmp_path / "spec.json").write_text("{}")
    assert findings.main(["comparisons", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| a->b | a->m->b | head_only | 0.2 | +0.0010 |" in out and "**positive**" in out
    assert "| a->b | full | 0.2 | -0.0030 |" in out and "| 0.700 -> 0.500 |" in out


def test_skill_table_weights_folds_by_test_days_and_differences_scratch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two folds of 100 and 300 test days: the cell's bias is their day-weighted mean; the delta
    columns are transfer minus scratch of the same pair and fraction."""
    base = {"pair": "a->b", "chain": "direct", "dann_weight": 0.0, "fraction": 0.1, "seed": 0}
    rows = [{**base, "strategy": "scratch", "fold": 0, "n_test": 100, "test_skill_bias": 0.4, "test_skill_timing": 0.0},
            {**base, "strategy": "scratch", "fold": 1, "n_test": 300, "test_skill_bias": 0.0, "test_skill_timing": 0.0},
            {**base, "strategy": "full", "fold": 0, "n_test": 100, "test_skill_bias": 0.0, "test_skill_timing": 0.2},
            {**base, "strategy": "full", "fold": 1, "n_test": 300, "test_skill_bias": 0.0, "test_skill_timing": 0.6}]
    frame = pd.DataFrame(rows)
    frame["test_skill"] = frame["test_skill_bias"] + frame["test_skill_timing"]
    frame.to_parquet(tmp_path / "results.parquet")
    (tmp_path / "spec.json").write_text("{}")
    assert findings.main(["skill", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    # full: timing (0.2 * 100 + 0.6 * 300) / 400 = 0.5; scratch: bias 0.4 * 100 / 400 = 0.1
    assert out[2] == "| a->b | full | 0.1 | +0.500 (+0.000 +0.500) | +0.100 (+0.100 +0.000) | -0.100 | +0.500 |"
