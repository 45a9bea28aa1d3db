"""Fits per second: one-at-a-time training vs population training on the same fits.

    python scripts/bench_population.py [--members 32] [--epochs 10] [--backbone mlp]

The fits are real: WTI (embedded) volatility target, fold 0, fractions 0.05/0.2/1.0, the
freeze strategies x seeds x learning rates a transfer cell trains, all starting from one
set of source weights. Both paths run the same number of steps (early stopping off) and
the script checks they end at the same validation losses. Run it on an idle machine and
quote the ratio, which is what survives a noisy shared box.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import torch

from xfer.data.features import build_features
from xfer.data.normalize import Standardizer
from xfer.data.splits import SplitSpec, make_folds
from xfer.data.store import Store
from xfer.models.backbones import BackboneSpec, build_backbone
from xfer.train.population import Data, Member, Population, TrainConfig
from xfer.train.sequential import train_one
from xfer.transfer.strategies import plan_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=25, help="steps per epoch")
    ap.add_argument("--backbone", default="mlp", choices=["mlp", "tcn"])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    fm = build_features(Store().load("wti").frame, "volatility", 5)
    x, y = fm.x().astype(np.float64), fm.y().astype(np.float64)
    fold = make_folds(len(y), SplitSpec())[0]
    sx, sy = Standardizer.fit(x[fold.train.start:fold.train.stop]), Standardizer.fit(y[fold.train.start:fold.train.stop])
    data = Data(torch.from_numpy(sx.transform(x)), torch.from_numpy(sy.transform(y)))
    bb = build_backbone(x.shape[1], BackboneSpec(name=args.backbone, hidden=64))
    torch.manual_seed(0)
    source = {k: v.detach().clone() for k, v in build_backbone(x.shape[1], BackboneSpec(name=args.backbone)).named_parameters()}
    grid = itertools.cycle(itertools.product(["scratch", "head_only", "partial", "full"], [0.05, 0.2, 1.0], [1e-4, 3e-4]))
    members = []
    for i in range(args.members):
        strat, frac, lr = next(grid)
        members.append(Member(plan_for(strat, 3), lr=lr, seed=i, train=fold.with_fraction(frac).train,
                              init=source if strat != "scratch" else None))
    cfg = TrainConfig(batch_size=256, steps_per_epoch=args.steps, max_epochs=args.epochs, patience=10**6)

    t = time.perf_counter()
    seq = [train_one(bb, m, data, fold.val, cfg) for m in members]
    t_seq = time.perf_counter() - t
    t = time.perf_counter()
    pop = Population(bb, cfg).fit(members, data, fold.val)
    t_pop = time.perf_counter() - t
    gap = max(abs(a.best_val - b.best_val) for a, b in zip(seq, pop, strict=True))

    cmd = "python scripts/bench_population.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items())
    print(f"command: {cmd}")
    print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}, {args.threads} threads")
    print(f"work: {len(members)} fits x {args.epochs} epochs x {args.steps} steps, batch 256, {args.backbone}")
    print(f"sequential (torch.optim.AdamW, one fit at a time): {t_seq:7.2f} s  {len(members) / t_seq:7.2f} fits/s")
    print(f"population (vmap, stacked AdamW):                   {t_pop:7.2f} s  {len(members) / t_pop:7.2f} fits/s")
    print(f"speed-up: {t_seq / t_pop:.1f}x   max |val loss gap| between the two: {gap:.2e}")


if __name__ == "__main__":
    main()
