"""The transferability pre-screen: its statistics against oracles and known answers, its use of
training windows only, and the CLI's refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.experiment.config import TransferConfig
from xfer.experiment.screen import STATISTICS, energy_distance, rank, screen


def test_energy_distance_is_scipys_squared_in_one_dimension() -> None:
    """scipy's ``energy_distance`` is the square root of ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (1-D)."""
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.3, 2.0):
        a, b = rng.normal(size=300), rng.normal(shift, 1.5, size=200)
        assert energy_distance(a[:, None], b[:, None]) == pytest.approx(stats.energy_distance(a, b) ** 2, rel=1e-9)
    a = rng.normal(size=(100, 5))
    assert energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    b = rng.normal(size=(120, 5)) + 1.0
    assert energy_distance(a, b) == pytest.approx(energy_distance(b, a), rel=1e-12)
    assert energy_distance(a, b) > energy_distance(a, rng.normal(size=(120, 5)))


def test_rank_orders_each_statistic_by_its_direction() -> None:
    t = pd.DataFrame({"source": ["a", "b", "c"], "energy": [0.1, 0.2, 0.3], "coef_cos": [0.9, 0.5, -0.2],
                      "zero_shot_r2": [0.1, 0.0, -0.1], "probe_acc": [0.52, 0.40, 0.9],
                      "source_skill": [0.3, 0.2, 0.1]})
    r = rank(t)
    assert list(r["source"]) == ["a", "b", "c"] and list(r["rank"]) == [1, 2, 3]
    assert list(r.set_index("source")["rank_probe_acc"]) == [1.0, 2.0, 3.0]  # |acc - 0.5|: 0.02, 0.10, 0.40
    assert set(STATISTICS) <= set(r.columns)


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A mean-reverting target and three candidates whose relation to it is known by construction:
    the same dynamics (another draw), the opposite return dynamics with the same volatility
    dynamics, and no return predictability with different volatility dynamics."""
    st = Store(tmp_path_factory.mktemp("screen"))
    trend, reversal = syn.pair_specs("opposite")
    _, unrelated = syn.pair_specs("unrelated")
    for seed in (0, 1):
        syn.write_market(st, f"s{seed}_tgt", reversal, 2500, 100 * seed + 1)
        syn.write_market(st, f"s{seed}_same", reversal, 5000, 100 * seed + 2)
        syn.write_market(st, f"s{seed}_opp", trend, 5000, 100 * seed + 3)
        syn.write_market(st, f"s{seed}_unrel", unrelated, 5000, 100 * seed + 4)
    return st


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_known_answers_on_returns(known: Store, seed: int) -> None:
    p = f"s{seed}_"
    cands = [p + "opp", p + "unrel", p + "same"]
    t = screen(cands, TransferConfig(source=(cands[0],), target=p + "tgt", target_type="return"), known).set_index("source")
    assert t.loc[p + "same", "rank"] == 1
    assert t.loc[p + "same", "coef_cos"] > 0.5 > 0 > t.loc[p + "opp", "coef_cos"]  # same vs opposite relationship
    assert t.loc[p + "opp", "zero_shot_r2"] < 0 < t.loc[p + "same", "zero_shot_r2"]  # the trend model hurts
    assert t.loc[p + "same", "source_skill"] > 0.05 > abs(t.loc[p + "unrel", "source_skill"])  # nothing to learn


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_known_answers_on_volatility(known: Store, seed: int) -> None:
    """Trend and reversal share their GARCH: both beat the candidate with other volatility dynamics."""
    p = f"s{seed}_"
    cands = [p + "unrel", p + "opp", p + "same"]
    t = screen(cands, TransferConfig(source=(cands[0],), target=p + "tgt", target_type="volatility"), known)
    t = t.set_index("source")
    assert t.loc[p + "unrel", "rank"] == 3
    assert t.loc[p + "unrel", "zero_shot_r2"] < min(t.loc[p + "same", "zero_shot_r2"], t.loc[p + "opp", "zero_shot_r2"])


@pytest.mark.slow
def test_only_rows_before_the_first_test_period_are_used(known: Store, tmp_path: Path) -> None:
    """Scrambling every bar from the target's first test period on changes nothing."""
    base = TransferConfig(source=("s0_same",), target="s0_tgt", target_type="return")
    before = screen(["s0_same", "s0_opp"], base, known)
    frame = known.load("s0_tgt").frame.copy()
    cut = _first_test_date(base, known)
    later = frame["date"] >= cut
    rng = np.random.default_rng(0)
    frame.loc[later, "close"] = frame.loc[later, "close"].to_numpy() * np.exp(rng.normal(0, 0.2, later.sum()))
    st = Store(tmp_path)
    for m in ("s0_same", "s0_opp"):
        st.add(known.load(m).frame, known.info(m))
    st.add(frame, known.info("s0_tgt"))
    after = screen(["s0_same", "s0_opp"], base, st)
    pd.testing.assert_frame_equal(before, after)
    # and the scrambling did reach the target's test rows
    assert not np.allclose(known.load("s0_tgt").frame["close"], st.load("s0_tgt").frame["close"])


def _first_test_date(cfg: TransferConfig, st: Store) -> pd.Timestamp:
    from xfer.data.features import build_features
    from xfer.data.splits import make_folds

    split = cfg.split.model_copy(update={"horizon": cfg.h, "embargo": max(cfg.h, cfg.split.embargo)})
    fm = build_features(st.load(cfg.target).frame, cfg.target_type, cfg.h)
    fold = make_folds(len(fm.data), split)[0]
    return pd.Timestamp(fm.data["date"].iloc[fold.test.start])


@pytest.mark.slow
def test_cli_ranks_and_writes(known: Store, tmp_path: Path, cli: Callable[..., Any]) -> None:
    out = tmp_path / "screen.csv"
    res = cli("pairs", "screen", "s1_opp,s1_same", "--target", "s1_tgt", "--target-type", "return",
              "--out", str(out), "--store", str(known.root))
    assert res.code == 0, res.err
    table = pd.read_csv(out)
    assert list(table["source"]) == ["s1_same", "s1_opp"] and list(table["rank"]) == [1, 2]


@pytest.mark.parametrize(("args", "needle"), [
    (["s0_same", "--target", "s0_tgt", "--target-type", "price"], "volatility or return"),
    (["s0_tgt", "--target", "s0_tgt"], "a target that is not one of its sources"),
    (["nope", "--target", "s0_tgt"], "a market in the catalog"),
    (["@nogroup", "--target", "s0_tgt"], "a market group"),
    (["s0_same", "--target", "s0_tgt", "--out", "x.txt"], ".csv or .parquet"),
])
def test_cli_refuses_bad_input(known: Store, tmp_path: Path, args: list[str], needle: str,
                               cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = cli("pairs", "screen", *args, "--store", str(known.root))
    assert res.code == 2 and needle in res.err, res.err
    assert not (tmp_path / "x.txt").exists()


def test_cli_refuses_a_source_without_history_before_the_test(tmp_path: Path, cli: Callable[..., Any]) -> None:
    st = Store(tmp_path / "home")
    _, reversal = syn.pair_specs("opposite")
    syn.write_market(st, "long_tgt", reversal, 3000, 1)
    syn.write_market(st, "young_src", reversal, 600, 2)  # ends with the target: starts long after its first test
    res = cli("pairs", "screen", "young_src", "--target", "long_tgt", "--store", str(st.root))
    assert res.code == 2 and "young_src" in res.err and "before the target's first test period" in res.err, res.err


@pytest.mark.slow
def test_screen_vs_gain_statistics_known_answers() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    import screen_vs_gain as svg

    rows = []
    for target, n in (("a", 5), ("b", 4)):
        for i in range(n):  # source i: screen rank i + 1, gain decreasing in i
            rows.append({"target": target, "source": f"{target}{i}", "score": float(i + 1), "gain": -0.1 * i,
                         "energy": 0.1 * i, "coef_cos": 1.0 - 0.2 * i, "zero_shot_r2": 0.0 - 0.01 * i,
                         "probe_acc": 0.5 + 0.05 * i, "source_skill": -0.01 * i})
    frame = pd.DataFrame(rows)
    for stat in (*STATISTICS, "score"):
        assert svg.within_spearman(frame, stat) == pytest.approx(1.0)
    assert svg.top_hits(frame) == (2, 2)
    flipped = frame.assign(gain=-frame["gain"])
    assert svg.within_spearman(flipped, "score") == pytest.approx(-1.0)
    assert svg.top_hits(flipped) == (0, 2)
    lo, hi = svg.boot_interval(frame, "score", 200)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # any resample of a monotone set is monotone


@pytest.mark.slow
def test_screen_vs_gain_interval_covers_zero_at_its_rate_on_a_null() -> None:
    """Gains independent of the screen (the true rank correlation is 0), the design of
    studies/findings/screen_pairs.yaml (8 + 5 sources): the 95% interval covers 0 at about 95%."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    import screen_vs_gain as svg

    rng = np.random.default_rng(0)
    reps, cover = 60, 0
    for rep in range(reps):
        frame = pd.DataFrame([{"target": t, "source": f"{t}{i}", "score": rng.random(), "gain": rng.normal()}
                              for t, k in (("wti", 8), ("mtum", 5)) for i in range(k)])
        lo, hi = svg.boot_interval(frame, "score", 100, seed=rep)
        cover += lo <= 0 <= hi
    assert 0.87 <= cover / reps <= 1.0  # 95% - 3 binomial standard errors (0.028); 200 x 300 gave 0.95
