"""Study throughput: xfer's way against the naive way, on the same fits.

    python scripts/bench_study.py [--seeds 2] [--lrs 4]

The work: US large caps -> WTI (embedded data), volatility target, target fold 0, fraction
0.2, strategies scratch / head_only / full, `--lrs` learning rates x `--seeds` seeds each.

- naive: one Ray Tune trial per fit with Tune's defaults (a fresh worker process per trial),
  each transfer trial pre-training its own source model, each fit trained alone with
  torch.optim.AdamW;
- xfer: the source pre-trained once per seed (then cached), every fit of the batch trained as
  one vmapped population (what a study cell does).

Both train the same members with the same seeds and settings; the script prints both wall
times, fits per second and the ratio. Quote the ratio: it survives a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from xfer.data.store import Store
from xfer.experiment.config import Candidate, TransferConfig
from xfer.experiment.fit import fit_candidates
from xfer.experiment.prepare import prepare

STRATEGIES = ("scratch", "head_only", "full")


def _config(seeds: int) -> TransferConfig:
    return TransferConfig(source=("@us_large_cap",), target="wti", strategies=STRATEGIES, fractions=(0.2,),
                          seeds=seeds, importance_repeats=0, device="cpu")


def _candidates(cfg: TransferConfig, n_lrs: int) -> list[Candidate]:
    mults = [0.5 * 2 ** (i / max(1, n_lrs - 1) * 2) for i in range(n_lrs)]  # 0.5x .. 2x
    return [Candidate(s, (cfg.source_lr if s == "scratch" else cfg.source_lr * cfg.lr_ratio) * m, cfg.weight_decay)
            for s in STRATEGIES for m in mults]


def naive_trial(config: dict) -> None:
    """One fit per trial; a transfer fit pre-trains its own source first (no cache)."""
    from ray import tune

    from xfer.train.population import Member
    from xfer.train.sequential import train_one
    from xfer.transfer.strategies import plan_for

    cfg = _config(1)
    cand: Candidate = config["candidate"]
    seed = config["seed"]
    ctx = prepare(cfg, Store(config["home"]), cache_dir=Path(tempfile.mkdtemp()),
                  with_source=cand.strategy != "scratch")
    fold = ctx.folds[0]
    data, _, ff = ctx.fold_data(fold, 0.2)
    plan = plan_for(cand.strategy, ctx.n_groups)
    m = Member(plan, lr=cand.lr, seed=seed + 1, train=ff.train,
               init=ctx.weights.get(0) if plan.init == "source" else None, weight_decay=cand.weight_decay)
    r = train_one(ctx.backbone, m, data, ff.val, cfg.train)
    tune.report({"val_loss": r.best_val})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--lrs", type=int, default=4)
    args = ap.parse_args()
    home = Store().root
    cfg = _config(args.seeds)
    cands = _candidates(cfg, args.lrs)
    n_fits = len(cands) * args.seeds

    t = time.perf_counter()
    ctx = prepare(cfg, Store(home), cache_dir=Path(tempfile.mkdtemp()))  # fresh cache: pays pre-training once
    fit_candidates(ctx, 0.2, cands, folds=ctx.folds[:1])
    t_xfer = time.perf_counter() - t

    import ray
    from ray import tune

    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    grid = [{"candidate": c, "seed": s} for c in cands for s in range(args.seeds)]
    tune.Tuner(
        tune.with_resources(naive_trial, {"cpu": 1}),
        param_space={"job": tune.grid_search(grid), "home": str(home),
                     "candidate": tune.sample_from(lambda spec: spec.config.job["candidate"]),
                     "seed": tune.sample_from(lambda spec: spec.config.job["seed"])},
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0),
    ).fit()
    ray.shutdown()
    t_naive = time.perf_counter() - t

    print(f"command: python scripts/bench_study.py --seeds {args.seeds} --lrs {args.lrs}")
    print(f"machine: {os.cpu_count()} cpus; work: {n_fits} fits (3 strategies x {args.lrs} LRs x {args.seeds} seeds), "
          "WTI fold 0, fraction 0.2")
    print(f"naive (Tune trial per fit, source re-trained per trial): {t_naive:7.1f} s  {n_fits / t_naive:6.2f} fits/s")
    print(f"xfer  (source once, one population):                     {t_xfer:7.1f} s  {n_fits / t_xfer:6.2f} fits/s")
    print(f"speed-up: {t_naive / t_xfer:.1f}x")


if __name__ == "__main__":
    main()
