"""One reference workload, three ways, one machine, one run: per-fit Ray Tune (naive and
hand-tuned) against ``xfer study run``, on the same fits, with the ratios and an agreement check.

    python scripts/bench.py              # full: 1,920 fits (about 20-25 min on 2 CPU cores)
    python scripts/bench.py --quick      # 8 fits, a few steps: checks agreement, not speed (CI)
    python scripts/bench.py --step-only  # only the training-step line (about a minute)

The workload (full mode) is a sizing study with a learning-rate sweep: 2 pairs
(``@us_large_cap -> wti``, ``sp500 -> mtum``) x 4 strategies (scratch, head_only, partial, full)
x 5 target fractions (0.05, 0.1, 0.2, 0.5, 1.0) x 4 learning rates (transfer: 0.03, 0.1, 0.3, 1
x the source LR, the article's "10x lower" among them; scratch: 3e-4 to 1e-2) x 12 seeds, one
walk-forward fold: 1,920 target fits, the size of study the project exists for (a sizing study
is thousands of small fits; 12 seeds is what narrows a required-fraction interval). xfer has
fixed costs (Ray start, worker start, tables, report: ~25 s here) that a small workload does not
amortise; ``--scaling`` prints the ratio at 1/4 and 1/2 of the seeds too. Each cell (pair, strategy, fraction) keeps the learning rate
with the best seed-mean validation loss and scores its fits on the test block. The study's default
training loop (batch 256, validation after every pass over the rows, patience, best weights kept),
no permutation importance. The source model is pre-trained once per (pair, seed) before any way
is timed (timed separately and printed); every way starts from those weights.

The three ways (each starts and stops its own local Ray instance inside its timing, 1 CPU
per trial, so at most ``cpu_count`` trials at once; before each clock starts the script waits
until the previous way's Ray and W&B processes have exited, :func:`settle`):

- **naive**, what the Ray Tune tutorials lead a user to write: one Tune trial per fit
  (pair, strategy, fraction, learning rate, seed), a standard PyTorch loop (a ``DataLoader`` over
  the target rows, ``torch.optim.AdamW``, ``nn.functional.mse_loss``), the source weights loaded
  from a ``.pt`` file in each trial, Tune's defaults (``reuse_actors`` off: a fresh worker process
  per trial; default loggers; every checkpoint kept), ``WandbLoggerCallback`` (offline), and
  ``tune.report`` with a checkpoint after every epoch (every validation), as the PyTorch +
  Ray Tune tutorial does. At ~7 s a fit it would take hours for all 1,920, so in full mode
  it runs the first pair's cells at fraction 0.2 with the first 3 seeds (4 cells x 4 learning
  rates x 3 seeds = 48 fits) and its rate is fits per second on those; the output says so on its
  line;
- **tuned per-fit**: the same trials and the same loop with the known fixes applied by hand:
  ``TuneConfig(reuse_actors=True)``, W&B through ``setup_wandb`` inside the trial (offline, one
  ``log`` of the final metrics), no per-epoch reporting or checkpoints (one final ``tune.report``);
  all 1,920 fits;
- **xfer**: the same fits through ``xfer study run`` (:func:`xfer.study.runner.run_study` on a
  spec this script writes: ``search.sampler: grid`` over the same learning rates,
  ``hooks=xfer.hooks.default_hooks()``, tracking ``offline``): one Tune trial per cell, the cell's
  learning rates x seeds, and the 4 strategies of one pair and fraction (a cell group) together, trained as
  one population (192 members), one W&B run per cell and a summary run,
  the verdict tables and ``report.html`` (everything the command does).

Both per-fit ways get the prepared target data through ``tune.with_parameters`` (Tune's way to
share data; cheaper than the per-cell preparation xfer does) and evaluate their fit on the test
block inside the trial with xfer's own :func:`xfer.experiment.evaluate.evaluate_fits`.

Same fits, checked: a per-fit trial builds the same ``Member`` as the study cell
(:func:`xfer.experiment.fit.members_for`'s seeds, rows and initial weights from
``Population.init_params``), its ``DataLoader`` draws its batches through a sampler that yields
exactly the rows the population draws for that member (one generator seeded with the member's
seed, one draw per validation period), and it stops early by the same schedule
(:func:`xfer.train.types.schedule`). Per cell the script picks, from each per-fit way's own
validation losses, the learning rate a search would keep, counts the cells where that differs
from xfer's choice (must be 0), and compares the seed-mean test metric of the fits of xfer's
chosen learning rate (largest absolute gap, and the largest per-fit validation-loss gap).
Tolerance: **1e-3** on the verdict metric (``r2_oos`` for a volatility target, a score of order
0.1-1). Batched and single-model float32 math differ by ~1e-6 in the validation loss, which moves
a test score by ~1e-5; 1e-3 leaves room for that and for rare near-ties of two validation losses,
while any real difference in the fits (another seed, batch order, initial weights, learning
rate, stopping rule or one fewer step) moves a cell's score by 1e-2 or more. So the speed-up
cannot come from doing less.

The last three lines (both modes): ``xfer vs tuned per-fit: N.Nx (vs naive: M.Mx)``,
``metrics agree: yes|no (max gap G)`` and ``training step: F GFLOP/s = P% of the measured GEMM
rate (R GFLOP/s)``: the achieved FLOP rate of a study cell's default population
(:func:`training_step_rate`, counting the backbone's forward and backward multiply-adds) against
a large float32 ``torch.mm`` (:func:`gemm_rate`) at the same thread count (1, a trial's share).
Output goes to stdout only. Run it on an otherwise idle machine and quote the ratios.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import pandas as pd
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from xfer.data.store import Store
from xfer.experiment.evaluate import evaluate_fits
from xfer.experiment.prepare import Context, prepare
from xfer.models.backbones import Backbone
from xfer.study.cell import candidate
from xfer.study.spec import Cell, Search, StudySpec, cells, grid_of
from xfer.train.population import Population, even_rows, train_rows
from xfer.train.sequential import param_groups
from xfer.train.types import Data, Member, MemberResult, TrainConfig, schedule
from xfer.transfer.strategies import plan_for

TOLERANCE = 1e-3
"""Largest allowed |per-fit - xfer| of a cell's seed-mean test metric (see the module doc)."""
PROJECT = "xfer-bench"
GPU_SHARE = 0.25
"""With ``--device cuda``: each trial asks Tune for this share of a GPU, so 4 run on one device."""


@dataclass(frozen=True)
class Workload:
    pairs: list[tuple[str, str]]
    strategies: list[str]
    fractions: list[float]
    seeds: int
    train: TrainConfig
    source_train: TrainConfig
    rate_epochs: tuple[int, int]
    """Step budgets (x 50 steps) whose time difference gives the training-step rate."""
    lr_ratios: list[float]
    scratch_lrs: list[float]
    """The learning-rate grid every cell sweeps (transfer: ratio to the source LR; scratch: its LR)."""
    naive_fraction: float | None = None
    """The naive way runs only the first pair's cells at this fraction (None: every fit); see the doc."""
    naive_seeds: int | None = None
    """... and only these first seeds (None: all)."""

    def spec(self, name: str, device: str = "cpu") -> dict[str, Any]:
        """The study spec (plain YAML data) of this workload: one fold, one fixed candidate per cell."""
        return {
            "name": name, "task": {"target_type": "volatility", "horizon": 5},
            "pairs": [{"source": s, "target": t} for s, t in self.pairs],
            "grid": {"strategies": self.strategies, "fractions": self.fractions, "seeds": self.seeds,
                     "backbone": {"name": "mlp", "hidden": 64, "depth": 2}},
            "search": {"sampler": "grid", "trials_per_cell": len(self.lr_ratios), "batch_size": len(self.lr_ratios),
                       "space": {"lr_ratio": {"choices": self.lr_ratios}, "scratch_lr": {"choices": self.scratch_lrs}}},
            "evaluation": {"folds": 1, "importance_repeats": 0},
            "train": self.train.model_dump(), "source": {"train": self.source_train.model_dump()},
            "resources": {"cpus_per_trial": 1, "gpus_per_trial": GPU_SHARE if device == "cuda" else 0.0}, "tracking": {"project": PROJECT, "mode": "offline"},
        }


FULL = Workload(
    pairs=[("@us_large_cap", "wti"), ("sp500", "mtum")], strategies=["scratch", "head_only", "partial", "full"],
    fractions=[0.05, 0.1, 0.2, 0.5, 1.0], seeds=12, train=TrainConfig(), source_train=TrainConfig(
        steps_per_epoch=50, max_epochs=30, patience=4), rate_epochs=(2, 10),
    lr_ratios=[0.03, 0.1, 0.3, 1.0], scratch_lrs=[3e-4, 1e-3, 3e-3, 1e-2], naive_fraction=0.2, naive_seeds=3)
QUICK = Workload(
    pairs=[("sp500", "mtum")], strategies=["scratch", "head_only"], fractions=[0.2, 1.0], seeds=1,
    train=TrainConfig(batch_size=64, steps_per_epoch=5, max_epochs=4, patience=2, min_patience_steps=5),
    source_train=TrainConfig(batch_size=256, steps_per_epoch=10, max_epochs=3, patience=2),
    rate_epochs=(1, 2), lr_ratios=[0.1, 1.0], scratch_lrs=[1e-3, 1e-2])


# ----------------------------------------------------------------------- the per-fit trial


class TargetRows(Dataset):
    """The target's standardised rows; ``__getitems__`` fetches a whole batch at once."""

    def __init__(self, data: Data, window: int) -> None:
        self.data, self.window = data, window

    def __len__(self) -> int:
        return len(self.data.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.gather(torch.tensor(i), self.window), self.data.y[i]

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(idx)
        return self.data.gather(rows, self.window), self.data.y[rows]


class PopulationRows(Sampler):
    """Batches of one epoch (one validation period) with the rows xfer's population draws for
    this fit: ``steps x batch`` uniform positions in the fit's row pool from a generator seeded
    with the fit's seed, drawn once per epoch (as :class:`xfer.train.population.Population`)."""

    def __init__(self, pool: torch.Tensor, steps: int, batch: int, seed: int) -> None:
        self.pool, self.steps, self.batch = pool, steps, batch
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):  # type: ignore[no-untyped-def]
        u = torch.rand((self.steps, self.batch), generator=self.gen)
        yield from self.pool[(u * len(self.pool)).long()].tolist()

    def __len__(self) -> int:
        return self.steps


def _as_batch(batch: Any) -> Any:
    return batch  # TargetRows.__getitems__ already returns (x, y) tensors


def fit_trial(config: dict[str, Any], contexts: dict[str, Context]) -> None:
    """One fit as a Ray Tune trial: train, keep the best-validation weights, score the test block."""
    from ray import tune

    job, naive = config["job"], config["way"] == "naive"
    torch.set_num_threads(1)
    run = None
    if not naive:
        from ray.air.integrations.wandb import setup_wandb

        # each trial its own directory: wandb's init and finish check for and then remove a
        # wandb-resume.json in it, which races between concurrent trials sharing one (a trial
        # failed on it once in 1,920)
        trial_dir = Path(config["wandb_dir"]) / tune.get_context().get_trial_id()
        trial_dir.mkdir(parents=True, exist_ok=True)
        run = setup_wandb(config, project=PROJECT, mode="offline", dir=str(trial_dir))
    ctx = contexts[job["pair"]]
    fold = ctx.folds[0]
    data, _, ff = ctx.fold_data(fold, job["fraction"])
    plan = plan_for(job["strategy"], ctx.n_groups, job["knobs"])
    init = torch.load(job["source"], weights_only=True) if plan.init == "source" else None
    member = Member(plan, lr=job["lr"], seed=job["seed"] + 1, train=ff.train, init=init,
                    weight_decay=job["weight_decay"], tag={"strategy": job["strategy"], "seed": job["seed"]})
    result = train_fit(ctx.backbone, member, data, ff.val, ctx.cfg.train, report_epochs=naive)
    row = evaluate_fits(ctx, fold, job["fraction"], [result])[0][0]
    final = {"val_loss": result.best_val, "test_score": row[f"test_{ctx.metric}"], "best_step": result.best_step}
    if run is not None:
        run.log(final)
        run.finish()
    tune.report(final)


def train_fit(backbone: Backbone, member: Member, data: Data, val: range, cfg: TrainConfig,
              report_epochs: bool) -> MemberResult:
    """A standard PyTorch loop (DataLoader, AdamW, MSE) that trains exactly the population's fit."""
    model = copy.deepcopy(backbone).to(data.x.device)
    init = Population(backbone, cfg).init_params(member)  # the initial weights xfer gives this fit
    model.load_state_dict({k.removeprefix("backbone."): v for k, v in init.items() if k.startswith("backbone.")})
    assert member.plan.l2sp_alpha == 0.0, "the bench's strategies have no L2-SP term"
    opt = torch.optim.AdamW(param_groups(model, member.plan, member.lr, 0), lr=member.lr,
                            weight_decay=member.weight_decay, eps=1e-8)
    pool = train_rows(member.train, backbone.window)
    sched = schedule(cfg, len(pool))  # validate after every pass over the rows; patience in validations
    loader = DataLoader(TargetRows(data, backbone.window), collate_fn=_as_batch,
                        batch_sampler=PopulationRows(pool, sched.eval_every, cfg.batch_size, member.seed))
    vrows = even_rows(val, cfg.eval_rows)  # the validation rows xfer uses
    xv, yv = data.gather(vrows, backbone.window), data.y[vrows]
    last_unfreeze = max((e for e in member.plan.unfreeze_epoch if math.isfinite(e)), default=0.0)
    best, best_val, best_epoch, best_step, bad, curve, step = None, math.inf, 0, 0, 0, [], 0
    for epoch in range(sched.max_evals):
        model.train()
        for xb, yb in loader:
            nominal = step // cfg.steps_per_epoch  # the unit of unfreeze schedules
            for g, new in zip(opt.param_groups, param_groups(model, member.plan, member.lr, nominal), strict=True):
                g["lr"] = new["lr"]
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():
            vloss = float(nn.functional.mse_loss(model(xv), yv))
        curve.append(vloss)
        if vloss < best_val:
            best_val, best_epoch, best_step, bad = vloss, epoch, step, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if report_epochs:
            _report_with_checkpoint(model, opt, epoch, vloss)
        if bad >= sched.patience and (step - 1) // cfg.steps_per_epoch >= last_unfreeze:
            break
    assert best is not None
    return MemberResult(member=member, params=best, best_val=best_val, best_epoch=best_epoch, epochs=len(curve),
                        val_curve=curve, best_step=best_step, eval_every=sched.eval_every)


def _report_with_checkpoint(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, vloss: float) -> None:
    """The tutorial's per-epoch report: metrics and a checkpoint of model and optimizer."""
    from ray import tune

    with tempfile.TemporaryDirectory() as d:
        torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict()},
                   Path(d) / "checkpoint.pt")
        tune.report({"epoch_val_loss": vloss, "epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(d))


# ----------------------------------------------------------------------- the three ways


@dataclass
class Prepared:
    spec: StudySpec
    cells: list[Cell]
    contexts: dict[str, Context]
    """Per pair: the prepared target (source domain and weights dropped), for the per-fit trials."""
    jobs: list[dict[str, Any]]
    """One per fit: pair, strategy, fraction, seed, a grid point's candidate, the source weights file."""
    seconds: float


def prepare_sources(spec: StudySpec, store: Store, work: Path) -> Prepared:
    """Pre-train each pair's source once per seed (into the store's cache, which xfer's run then
    loads) and write the weights to ``.pt`` files for the per-fit trials."""
    t = time.perf_counter()
    all_cells = cells(spec)
    contexts: dict[str, Context] = {}
    files: dict[tuple[str, int], str] = {}
    for c in all_cells:
        pid = c.pair.pair_id
        if pid in contexts or c.strategy == "scratch":
            continue
        ctx = prepare(c.setup, store)
        for s, params in ctx.weights.items():
            files[pid, s] = str(work / f"source_{len(contexts)}_seed{s}.pt")
            torch.save({k: v.detach().cpu() for k, v in params.items()}, files[pid, s])
        contexts[pid] = replace(ctx, src=None, weights={})  # type: ignore[arg-type]  # only the target travels
    jobs = []
    for c in all_cells:
        grid = grid_of(spec.search, c.strategy, c.dann)
        for point in itertools.product(*grid.values()):
            cand = candidate(spec, c, dict(zip(grid, point, strict=True)))
            for s in range(spec.grid.seeds):
                jobs.append({"pair": c.pair.pair_id, "strategy": c.strategy, "fraction": c.fraction, "seed": s,
                             "lr": cand.lr, "weight_decay": cand.weight_decay, "knobs": dict(cand.knobs),
                             "source": files.get((c.pair.pair_id, s), "")})
    return Prepared(spec, all_cells, contexts, jobs, time.perf_counter() - t)


def _start_ray() -> None:
    import ray

    settle()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


LEFTOVERS = ("raylet", "gcs_server", "ray::", "wandb-core", "wandb-service", "default_worker.py")


def settle(timeout_s: float = 60.0) -> None:
    """Before a way's clock starts, wait until the previous way's processes are gone: Ray's
    workers and the W&B services of its trials die a few seconds after ``ray.shutdown()``, and
    while they flush and exit they take CPU from whatever is timed next."""
    import psutil

    def busy() -> bool:
        for p in psutil.process_iter(["name", "cmdline"]):
            text = " ".join([p.info["name"] or "", *(p.info["cmdline"] or [])])
            if p.pid != os.getpid() and any(k in text for k in LEFTOVERS):
                return True
        return False

    end = time.monotonic() + timeout_s
    while busy() and time.monotonic() < end:
        time.sleep(0.5)


def run_per_fit(way: str, prep: Prepared, work: Path, jobs: list[dict[str, Any]]) -> tuple[float, pd.DataFrame]:
    """``jobs`` as one Tune trial each; ``way`` is ``naive`` or ``tuned``."""
    import ray
    from ray import tune
    from ray.air.integrations.wandb import WandbLoggerCallback

    naive = way == "naive"
    (work / way / "wandb").mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    _start_ray()
    try:
        gpu = GPU_SHARE if next(iter(prep.contexts.values())).cfg.torch_device.type == "cuda" else 0.0
        trainable = tune.with_resources(tune.with_parameters(fit_trial, contexts=prep.contexts), {"cpu": 1, "gpu": gpu})
        grid = tune.Tuner(
            trainable,
            param_space={"job": tune.grid_search(jobs), "way": way, "wandb_dir": str(work / way)},
            tune_config=tune.TuneConfig() if naive else tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name=way, storage_path=str(work / "ray"), verbose=0,
                callbacks=[WandbLoggerCallback(project=PROJECT, mode="offline")] if naive else None),
        ).fit()
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - t
    rows = []
    for r in grid:
        if r.error is not None:
            raise RuntimeError(f"{way}: a trial failed: {r.error}")
        job = r.config["job"]
        rows.append({k: job[k] for k in ("pair", "strategy", "fraction", "seed", "lr")}
                    | {"val_loss": r.metrics["val_loss"], "test_score": r.metrics["test_score"]})
    return seconds, pd.DataFrame(rows)


def run_xfer(prep: Prepared, store: Store, work: Path) -> tuple[float, pd.DataFrame]:
    """The same fits through ``xfer study run`` (W&B offline, report included)."""
    from rich.console import Console

    from xfer.hooks import default_hooks
    from xfer.study.runner import run_study

    spec_path = work / "bench.yaml"
    spec_path.write_text(yaml.safe_dump(prep.spec.model_dump(mode="json", by_alias=True, exclude={"storage"})))
    settle()
    t = time.perf_counter()
    run = run_study(spec_path, study_dir=work / "study", store=store, hooks=default_hooks(),
                    console=Console(file=sys.stderr, quiet=True))
    seconds = time.perf_counter() - t
    res = pd.read_parquet(run.study_dir / "results.parquet")
    return seconds, res[["pair", "strategy", "fraction", "seed", "lr", "val_loss", "test_score"]]


def xfer_split(work: Path) -> str:
    """Where the xfer run's wall time went (its ``profile.json``), on one line."""
    import json

    from xfer.study.runner import PROFILE_FILE

    p = json.loads((work / "study" / PROFILE_FILE).read_text())
    train = pd.read_parquet(work / "study" / "results.parquet").groupby("cell_id")["time_train_s"].first().sum()
    return (f"xfer split: Ray start+stop {p['ray_start'] + p['ray_stop']:.1f} s, phase 1 {p['phase1']:.1f} s, "
            f"phase 2 (cells) {p['phase2']:.1f} s (training {train / p['workers']:.1f} s of it per worker), "
            f"tables {p['tables']:.1f} s, W&B summary + report {p['summary'] + p['report']:.1f} s")


@dataclass(frozen=True)
class Agreement:
    test_gap: float
    """Max over cells of |seed-mean test metric of the per-fit way's fits at xfer's chosen config - xfer's|."""
    val_gap: float
    """Max over those fits of |per-fit best validation loss - xfer's|."""
    other_choice: int
    """Cells where the per-fit way's own validation losses pick another grid point than xfer's search."""

    @property
    def ok(self) -> bool:
        return self.test_gap <= TOLERANCE and self.other_choice == 0


def agreement(way: pd.DataFrame, ref: pd.DataFrame, choice_ref: pd.DataFrame | None = None) -> Agreement:
    """The per-fit way's fits against xfer's (``ref``: the config each cell's search chose, every seed),
    on the cells and seeds the way ran; a fit missing on either side is an infinite gap.

    The learning rate the way's own validation losses pick is compared with xfer's choice, or,
    when the way ran only some seeds (the naive subset), with the choice ``choice_ref`` (another
    per-fit way with every learning rate) makes on those same seeds: a seed-mean over 3 seeds
    may rightly pick another rate than one over 12."""
    keys = ["pair", "strategy", "fraction"]

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        mean_val = frame.groupby([*keys, "lr"], as_index=False)["val_loss"].mean()
        return mean_val.loc[mean_val.groupby(keys)["val_loss"].idxmin(), [*keys, "lr"]]

    own = pick(way)
    ref = ref[ref["seed"].isin(way["seed"].unique())]
    chosen = ref[[*keys, "lr"]].drop_duplicates()
    if choice_ref is not None:
        cells_run = choice_ref.set_index(keys).index.isin(own.set_index(keys).index)
        against = pick(choice_ref[cells_run & choice_ref["seed"].isin(way["seed"].unique())])
    else:
        against = chosen
    picks = pd.merge(own, against, on=keys, how="left", suffixes=("", "_ref"))
    other = int((~(picks["lr"] - picks["lr_ref"]).abs().le(1e-12 * picks["lr_ref"].abs())).sum())
    same = pd.merge(way, chosen, on=[*keys, "lr"])  # the way's fits of xfer's chosen config
    fits = pd.merge(same, ref[ref.set_index(keys).index.isin(own.set_index(keys).index)],
                    on=[*keys, "lr", "seed"], how="outer", suffixes=("", "_ref"))
    cell = fits.groupby(keys)[["test_score", "test_score_ref"]].mean()
    gap = (cell["test_score"] - cell["test_score_ref"]).abs()
    vgap = (fits["val_loss"] - fits["val_loss_ref"]).abs()
    return Agreement(math.inf if fits[["test_score", "test_score_ref"]].isna().any().any() else float(gap.max()),
                     math.inf if vgap.isna().any() else float(vgap.max()), other)


# ----------------------------------------------------------------------- FLOP rate


@dataclass(frozen=True)
class StepRate:
    gflops: float
    """Achieved GFLOP/s of the population's training steps."""
    gemm_gflops: float
    """Measured large float32 GEMM GFLOP/s at the same thread count."""
    step_ms: float
    flops_per_step: float
    members: int
    threads: int

    @property
    def share(self) -> float:
        return self.gflops / self.gemm_gflops


def step_flops(backbone: Backbone, members: int, batch: int) -> float:
    """FLOPs of one population training step (forward + backward, every member's batch).

    Per row and per ``Linear(in, out)``: 2*in*out forward; backward 2*in*out for the weight
    gradient and 2*in*out for the input gradient, except the first layer, whose input (the data)
    needs none. Biases, activations and the optimizer update are not counted (O(out), not
    O(in*out)). A population computes every member's gradients of every parameter (frozen
    groups are masked in the update, not skipped), so the count is the same for every strategy.
    """
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    others = [m for m in backbone.modules() if not isinstance(m, nn.Linear) and not list(m.children())
              and any(True for _ in m.parameters(recurse=False))]
    if others:
        raise NotImplementedError(f"step_flops counts Linear layers only; found {type(others[0]).__name__}")
    per_row = 0
    for i, m in enumerate(linears):
        mac = m.in_features * m.out_features
        per_row += 2 * mac + 2 * mac + (2 * mac if i > 0 else 0)
    return float(per_row * batch * members)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(threads: int, n: int = 2048, reps: int = 5, device: torch.device | None = None) -> float:
    """GFLOP/s of a float32 ``n x n`` by ``n x n`` matrix multiply (best of ``reps``) on ``threads``
    threads (on ``device``; a GPU is timed with synchronisation around each product)."""
    device = device or torch.device("cpu")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        torch.mm(a, b)  # warm-up
        best = math.inf
        for _ in range(reps):
            _sync(device)
            t = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - t)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(old)


def training_step_rate(backbone: Backbone, data: Data, train: range, val: range, members: int | None = None,
                       batch: int = 256, threads: int = 1, epochs: tuple[int, int] = (2, 10),
                       repeats: int = 3) -> StepRate:
    """Achieved FLOP/s of :class:`~xfer.train.population.Population` training steps, and the share
    of the machine's GEMM rate it reaches (same thread count).

    ``members`` defaults to a study's default population: a cell group's (search batch x seeds x the
    default grid's 4 strategies, 48; :func:`xfer.study.cell.group_key`). The step
    time is the marginal one: the difference of two fits of ``epochs[0]`` and ``epochs[1]`` x 50
    steps (early stopping off, validation on 16 rows every 50 steps), so set-up is not counted.
    Each fit length is timed ``repeats`` times, interleaved, and its fastest time is kept (the
    practice of ``timeit``: on a shared machine noise only ever adds time), as the GEMM rate keeps
    its fastest product. The clock starts once earlier Ray and W&B processes have exited.
    """
    from xfer.study.spec import Grid

    members = members or Search().batch_size * Grid().seeds * len(Grid().strategies)
    settle()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pop = [Member(plan_for("scratch", len(backbone.group_names())), lr=1e-3, seed=i + 1, train=train)
               for i in range(members)]

        def fit_seconds(n_epochs: int) -> float:
            cfg = TrainConfig(batch_size=batch, steps_per_epoch=50, max_epochs=n_epochs, patience=10**6,
                              pass_epochs=False, eval_rows=16)
            t = time.perf_counter()
            Population(backbone, cfg).fit(pop, data, val)
            return time.perf_counter() - t

        fit_seconds(1)  # warm-up
        lo, hi = epochs
        times: dict[int, float] = {lo: math.inf, hi: math.inf}
        for _ in range(repeats):
            for n_epochs in (lo, hi):
                times[n_epochs] = min(times[n_epochs], fit_seconds(n_epochs))
        step_s = (times[hi] - times[lo]) / (50 * (hi - lo))
    finally:
        torch.set_num_threads(old)
    flops = step_flops(backbone, members, batch)
    return StepRate(flops / step_s / 1e9, gemm_rate(threads, device=data.x.device), step_s * 1e3, flops, members,
                    threads)


# ----------------------------------------------------------------------- scaling


def scaling(store: Store, work: Path, prep: Prepared, w: Workload, device: str, full_s: float,
            tuned_rate: float) -> None:
    """Where cost grows linearly and where batching flattens it: the training step against the
    population size, and ``xfer study run`` wall time against the number of fits (1/4, 1/2 and
    all of the workload's seeds; the full run is the one timed above) beside the tuned per-fit
    way's time for as many fits at its measured rate (it is one trial per fit, so linear)."""
    ctx = next(iter(prep.contexts.values()))
    data, _, ff = ctx.fold_data(ctx.folds[0], 1.0)
    print("population size -> step time, GFLOP/s (1 thread, batch 256; marginal step time)")
    base: float | None = None
    for members in (1, 3, 12, 48, 96):
        r = training_step_rate(ctx.backbone, data, ff.train, ff.val, members=members, epochs=w.rate_epochs)
        base = base or r.step_ms
        print(f"  {members:3d} members: {r.step_ms:7.2f} ms/step ({r.step_ms / members:6.3f} ms per member-step, "
              f"{r.step_ms / base:5.1f}x the 1-member step), {r.gflops:5.1f} GFLOP/s = {100 * r.share:3.0f}% of GEMM")
    print("fits -> xfer study run wall time (the workload with 1/4, 1/2 and all of its seeds), and the tuned "
          "per-fit way at its measured rate")
    for seeds in (w.seeds // 4, w.seeds // 2, w.seeds):
        if seeds == w.seeds:
            n, t = len(prep.jobs), full_s
        else:
            spec = StudySpec.model_validate({**w.spec(f"bench-s{seeds}", device), "grid": {
                **w.spec("x")["grid"], "seeds": seeds}})
            d = work / f"scaling-s{seeds}"
            d.mkdir(parents=True, exist_ok=True)
            sub = prepare_sources(spec, store, d)  # every seed's source cached before timing, as above
            n = len(sub.jobs)
            t, _ = run_xfer(sub, store, d)
        print(f"  {seeds:2d} seeds: {n:4d} fits in {t:6.1f} s = {n / t:5.2f} fits/s; tuned per-fit ~{n / tuned_rate:6.1f} s "
              f"-> {n / tuned_rate / t:4.1f}x")


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny workload (4 fits, few steps): agreement, not speed")
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temporary one)")
    ap.add_argument("--scaling", action="store_true",
                    help="also print step time against population size and xfer wall time against fits (1x/2x/4x)")
    ap.add_argument("--skip-naive", action="store_true",
                    help="development only: leave out the naive way (~17 min of the full run); not for quoted figures")
    ap.add_argument("--step-only", action="store_true",
                    help="only the training-step line (the full workload's model and target, 1 seed; about a minute)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cpu (default; hides any GPU) or cuda: every way trains on the GPU, "
                         f"{GPU_SHARE:g} of it per trial, and the GEMM rate is the GPU's")
    args = ap.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # device auto -> cpu here and in every Ray worker
    elif not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    w = QUICK if args.quick else FULL
    if args.step_only:
        w = replace(w, seeds=1)  # the step needs one source and the target's rows, not the sweep
    work = args.keep or Path(tempfile.mkdtemp(prefix="xfer-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_DIR"] = str(work / "wandb")  # nothing lands in the repository
    (work / "wandb").mkdir(exist_ok=True)
    store = Store(work / "home")  # embedded samples; a fresh source cache
    spec = StudySpec.model_validate(w.spec("bench-quick" if args.quick else "bench", args.device))
    try:
        prep = prepare_sources(spec, store, work)
        if args.step_only:
            ctx = next(iter(prep.contexts.values()))
            data, _, ff = ctx.fold_data(ctx.folds[0], 1.0)
            rate = training_step_rate(ctx.backbone, data, ff.train, ff.val, batch=TrainConfig().batch_size,
                                      epochs=w.rate_epochs)
            print(f"training step: {rate.members} members x batch {TrainConfig().batch_size}, "
                  f"{rate.flops_per_step / 1e6:.1f} MFLOP per step, {rate.step_ms:.2f} ms per step, {rate.threads} thread")
            print(f"training step: {rate.gflops:.1f} GFLOP/s = {100 * rate.share:.0f}% of the measured GEMM rate "
                  f"({rate.gemm_gflops:.1f} GFLOP/s)")
            return 0
        n = len(prep.jobs)
        print(f"command: python scripts/bench.py{''.join(' ' + a for a in (argv if argv is not None else sys.argv[1:]))}")
        gpu = f", {torch.cuda.get_device_name(0)}, {GPU_SHARE:g} GPU per trial" if args.device == "cuda" else ""
        print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}, 1 thread and 1 CPU per trial{gpu}")
        grid = len(w.lr_ratios)
        print(f"work: {len(w.pairs)} pair(s) x {len(w.strategies)} strategies x {len(w.fractions)} fractions x "
              f"{grid} learning rates x {w.seeds} seed(s), 1 fold = {n} fits ({len(prep.cells)} cells); "
              f"batch {w.train.batch_size}, <= {w.train.max_epochs * w.train.steps_per_epoch} steps, early stopping")
        print(f"source pre-training (once, before timing): {prep.seconds:.1f} s")
        first = prep.cells[0].pair.pair_id
        naive_jobs = [j for j in prep.jobs if w.naive_fraction is None or args.skip_naive
                      or (j["pair"] == first and j["fraction"] == w.naive_fraction
                          and j["seed"] < (w.naive_seeds or w.seeds))]
        t_naive, naive = run_per_fit("naive", prep, work, naive_jobs) if not args.skip_naive else (math.nan, None)
        naive_rate = len(naive_jobs) / t_naive
        share = "" if len(naive_jobs) == n else (
            f" [{len(naive_jobs)} of the {n} fits: {first} at fraction {w.naive_fraction:g}, seeds 0-"
            f"{(w.naive_seeds or w.seeds) - 1}; all would take "
            f"~{n / naive_rate / 60:.0f} min]")
        print(f"naive per-fit (Tune defaults, WandbLoggerCallback, report+checkpoint per epoch): "
              f"{t_naive:7.1f} s  {naive_rate:6.2f} fits/s{share}")
        t_tuned, tuned = run_per_fit("tuned", prep, work, prep.jobs)
        print(f"tuned per-fit (reuse_actors, setup_wandb, one final report):                   "
              f"{t_tuned:7.1f} s  {n / t_tuned:6.2f} fits/s")
        t_xfer, xf = run_xfer(prep, store, work)
        print(f"xfer study run (cell = one population, W&B per cell, tables, report):          "
              f"{t_xfer:7.1f} s  {n / t_xfer:6.2f} fits/s")
        print(xfer_split(work))
        naive = tuned if naive is None else naive
        if not (len(naive) == len(naive_jobs) and len(tuned) == n and len(xf) == n // grid):
            raise RuntimeError(f"fit counts differ: naive {len(naive)} (expected {len(naive_jobs)}), tuned {len(tuned)} "
                               f"(expected {n}), xfer {len(xf)} chosen (expected {n // grid})")
        ctx = next(iter(prep.contexts.values()))
        agree = {"naive": agreement(naive, xf, None if len(naive) == n else tuned), "tuned": agreement(tuned, xf)}
        for name, a in agree.items():
            print(f"{name} vs xfer: max |cell seed-mean test {ctx.metric} gap| {a.test_gap:.2e}, max |fit val loss gap| "
                  f"{a.val_gap:.2e} (tolerance {TOLERANCE:g} on the test metric); cells choosing another "
                  f"learning rate: {a.other_choice}")
        data, _, ff = ctx.fold_data(ctx.folds[0], 1.0)
        rate = training_step_rate(ctx.backbone, data, ff.train, ff.val, batch=TrainConfig().batch_size,
                                  epochs=w.rate_epochs)
        print(f"training step: {rate.members} members x batch {TrainConfig().batch_size}, "
              f"{rate.flops_per_step / 1e6:.1f} MFLOP per step, {rate.step_ms:.2f} ms per step, {rate.threads} thread")
        if args.scaling:
            scaling(store, work, prep, w, args.device, t_xfer, n / t_tuned)
        gap = max(a.test_gap for a in agree.values())
        ok = all(a.ok for a in agree.values())
        print(f"xfer vs tuned per-fit: {t_tuned / t_xfer:.1f}x (vs naive: {n / t_xfer / naive_rate:.1f}x)")
        print(f"metrics agree: {'yes' if ok else 'no'} (max gap {gap:.2e})")
        print(f"training step: {rate.gflops:.1f} GFLOP/s = {100 * rate.share:.0f}% of the measured GEMM rate "
              f"({rate.gemm_gflops:.1f} GFLOP/s)")
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
