"""What a single-target design can buy in power: signal-to-noise of the calibration's power cell.

    python scripts/power_design.py --replications 30 --design 0.2x2 --design 0.5x2 --design 0.5x8

The power cell of ``scripts/calibrate.py`` ("shared" pair, return target, fraction 0.05, a
2,000-day target) is run ``--replications`` times per design (``test_share x seeds``). Per
strategy it prints the mean paired delta (transfer minus scratch, over seeds and test days), its
standard deviation over replications and their ratio, for two day scores: the verdict's ``skill``
(``f * y / s`` with ``s`` the training-window sd) and a volatility-scaled skill (``f * y / sigma_t``,
``sigma_t`` an EWMA(0.94) of past squared returns, known at ``t``; still exactly 0 in expectation
on martingale returns). Whatever the variance estimate, a two-sided 5% test has at most
``Phi(ratio - 1.96)`` power (known variance, normal errors), so 80% needs a ratio of about 2.8.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.experiment import calibration as C
from xfer.experiment.evaluate import fold_scale_of
from xfer.experiment.prepare import prepare
from xfer.experiment.run import fit_and_evaluate

FRACTION = 0.05


def ewma_vol(y: np.ndarray, lam: float = 0.94, warm: int = 60) -> np.ndarray:
    """sigma_t from the returns known at t (``y[t-1]`` is the return ending at t for a 1-day label)."""
    v = np.full(len(y), np.nan)
    acc = float(np.mean(y[:warm] ** 2))
    for t in range(warm + 1, len(y)):
        acc = lam * acc + (1 - lam) * y[t - 1] ** 2
        v[t] = acc
    return np.sqrt(v)


def one(args: tuple[int, float, int, str]) -> list[dict[str, object]]:
    i, share, seeds, work = args
    torch.set_num_threads(1)
    s = C.Settings(name="power", null_replications=0, coverage_replications=0, test_share=share, seeds=seeds)
    home, cache, src = Path(work) / "x" / "home", Path(work) / "x" / "cache", "cal_x_src"
    store, tid = Store(home), f"t{i}_{share}_{seeds}"
    syn.write_market(store, tid, syn.pair_specs("shared")[1], s.target_days, 12345 + i, role="target", replace=True)
    cfg = C.experiment_config(s, src, tid, (FRACTION,), "return")
    ctx = prepare(cfg, store, cache)
    sig = ewma_vol(ctx.tgt.data["target"].to_numpy(np.float64))
    _, fit_days = fit_and_evaluate(ctx, cfg, baselines=False)
    days: dict[tuple[str, int], list[list[np.ndarray]]] = {}
    for d in fit_days:
        scale = fold_scale_of(ctx, ctx.folds[d["fold"]])
        acc = days.setdefault((d["strategy"], d["seed"]), [[], []])
        acc[0].append(d["score"])
        acc[1].append(d["score"] * scale / sig[d["row"]])
    store.path(tid).unlink(missing_ok=True)
    out = []
    for st in sorted({k[0] for k in days} - {"scratch"}):
        for k, score in enumerate(("skill", "vol_scaled_skill")):
            d = np.array([np.concatenate(days[(st, sd)][k]) - np.concatenate(days[("scratch", sd)][k])
                          for sd in range(seeds)])
            out.append({"replication": i, "test_share": share, "seeds": seeds, "strategy": st, "score": score,
                        "delta": float(d.mean()), "test_days": d.shape[1]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replications", type=int, default=30)
    ap.add_argument("--design", action="append", default=[], help="TEST_SHARExSEEDS, e.g. 0.5x8 (repeatable)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write every replication's row here (parquet)")
    ap.add_argument("--rows", type=Path, default=None, help="summarise the rows of an earlier --out instead")
    args = ap.parse_args(argv)
    if args.rows:
        summarise(pd.read_parquet(args.rows))
        return 0
    designs = [(float(a), int(b)) for a, b in (d.split("x") for d in (args.design or ["0.2x2", "0.5x2"]))]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        s = C.Settings(name="power", null_replications=0, coverage_replications=0)
        C._world(s, Path(work), "x", syn.pair_specs("shared")[0])
        rows += one((0, *designs[0], work))  # pre-trains and caches the source once
        jobs = [(i, sh, se, work) for sh, se in designs for i in range(args.replications)][1:]
        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            for r in pool.map(one, jobs):
                rows += r
    df = pd.DataFrame(rows)
    if args.out:
        df.to_parquet(args.out)
    summarise(df)
    return 0


def summarise(df: pd.DataFrame) -> None:
    """The markdown table: per design, strategy and day score, the signal-to-noise ratio."""
    g = df.groupby(["test_share", "seeds", "strategy", "score"])
    t = g.agg(test_days=("test_days", "mean"), mean=("delta", "mean"), sd=("delta", "std"), n=("delta", "size"))
    t["ratio"] = t["mean"] / t["sd"]
    t["power_bound"] = norm.cdf(t["ratio"] - norm.ppf(0.975))
    print(f"power cell (shared pair, return target, fraction {FRACTION}), "
          f"{df.groupby(['test_share', 'seeds'])['replication'].nunique().min()} replications per design")
    print("| test_share | seeds | strategy | score | test days | mean delta | sd over replications | ratio | "
          "power of a known-variance test |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (sh, se, st, sc), r in t.iterrows():
        print(f"| {sh:g} | {se} | {st} | {sc} | {r['test_days']:.0f} | {r['mean']:+.3f} | {r['sd']:.3f} | "
              f"{r['ratio']:.2f} | {100 * r['power_bound']:.0f}% |")
    need = norm.ppf(0.975) + norm.ppf(0.8)
    print(f"\n80% power at 5% (two-sided, known variance) needs a ratio of {need:.2f}.")


if __name__ == "__main__":
    sys.exit(main())
