"""Statistical calibration of the transfer verdicts, end to end, on ground-truth synthetic markets.

A verdict is only as good as its error rates. This module measures them by running the whole
experiment (:func:`prepare` -> :func:`fit_candidates` -> :func:`select` -> :func:`evaluate_fits`
+ :func:`baseline_days` -> :func:`xfer.evaluate.tables.verdicts`, the steps of
:func:`xfer.experiment.run.run_transfer`) many times on targets simulated afresh from a
:class:`~xfer.data.synthetic.SynthSpec` whose truth is known:

* **null suite**: the target's returns are a martingale difference (no AR, no momentum, no
  drift; GARCH kept), so every forecast's expected ``skill`` is exactly 0 and so is the true
  difference between any transfer cell and scratch. A verdict that is not "inconclusive" is
  false; at the unadjusted 95% level it should happen about 5% of the time (and the Holm
  family-wise rate, any false adjusted verdict in a table, at most about 5%).
* **coverage suite**: pairs with a real effect ("shared" and "opposite" dynamics) at a small
  target fraction. The estimand of a cell is the expected per-day score difference (transfer
  minus scratch) of the *fitted* models on the target's distribution, averaged over seeds and
  folds (folds weighted by their test-block lengths, as the pooled test days weight them). An
  oracle measures it: the same fitted models, each with its own fold's feature and label
  standardisers, forecast scale (its validation forecasts) and day-score scale, are scored
  on a fresh ``oracle_days``-day sample of the target's generator. Coverage is the share of
  cells whose 95% interval contains the oracle effect.
* **power**: on the "shared" pair, how often head-only and full fine-tuning are called
  "positive" (unadjusted and Holm-adjusted).

The source market is simulated once per suite and its pre-training is cached (one cache
directory per source), so a replication only resamples and refits the target.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from xfer.data import synthetic as syn
from xfer.data.features import FeatureMatrix
from xfer.data.splits import Fold, SplitSpec
from xfer.data.store import Store
from xfer.evaluate import tables as T
from xfer.evaluate.inference import paired_day_test
from xfer.models.backbones import BackboneSpec
from xfer.train.types import MemberResult, TrainConfig

from .config import TransferConfig
from .methods import candidate_columns, candidate_summary, design_summary
from .oracle import fresh_day_scores, fresh_sample
from .pooled_suite import pooled_summary
from .prepare import Context, prepare
from .run import _keys, day_frame, fit_and_evaluate
from .sizing_suite import sizing_summary
from .summaries import (  # re-exported: the calibration's public names
    Rate,
    SuiteResult,
    coverage_summary,
    null_summary,
    power_summary,
    rate,
    tested_cells,
)

__all__ = ["FULL", "PRESETS", "REDUCED", "Calibration", "Rate", "Settings", "SuiteResult", "candidate_summary",
           "coverage_summary",
           "null_summary", "power_summary", "rate", "run_calibration"]

Say = Callable[[str], None]


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Sizes of a calibration run. Every replication is one full experiment on a new target."""

    name: str
    null_replications: int
    """Replications of the null suite (each gives ``len(strategies) x len(null_fractions)`` verdicts)."""
    coverage_replications: int
    """Replications per coverage pair and target type."""
    null_fractions: tuple[float, ...] = (0.2, 1.0)
    coverage_fraction: float = 0.05
    coverage_pairs: tuple[str, ...] = ("shared", "opposite")
    coverage_targets: tuple[str, ...] = ("return",)
    strategies: tuple[str, ...] = ("head_only", "full")
    seeds: int = 2
    n_folds: int = 3
    test_share: float = 0.2
    """Share of the target's rows in the walk-forward test blocks (the verdicts' test days)."""
    target_days: int = 2000
    source_days: int = 3000
    oracle_days: int = 100_000
    hidden: int = 16
    batch_size: int = 64
    steps_per_epoch: int = 10
    max_epochs: int = 15
    source_steps_per_epoch: int = 20
    source_max_epochs: int = 15
    sizing_replications: int = 0
    """Replications of the sizing suite (:mod:`xfer.experiment.sizing_suite`; 0: skipped)."""
    pooled_replications: int = 0
    """Replications of the pooled suite (:mod:`xfer.experiment.pooled_suite`): each a study over
    ``pooled_targets`` new targets, once with null targets and once with the "shared" pair's."""
    pooled_targets: int = 8
    power_test_shares: tuple[float, ...] = ()
    """Extra runs of the power cell ("shared" pair, return target) with these ``test_share``
    values: what more test days buy, at what compute."""
    baselines: bool = False
    """Also fit the practitioner baselines, as ``run_transfer`` does. Off by default: they cost
    ~0.5 s per replication and change no verdict against scratch (only the baseline columns)."""
    seed: int = 0
    """Base of every simulation seed (target samples, oracle samples, the source)."""
    threads: int = 1
    """Torch threads per process."""
    workers: int = 2
    """Processes running replications (results do not depend on it: every replication is seeded)."""


VOL_NULL = "vol_null"
"""The volatility suite's pair: a source with GARCH clustering, a target with constant volatility
(nothing about its volatility is predictable, so whatever a model forecasts can only cost it);
volatility target only. Its truth is measured by the oracle, not known to be 0 (two models'
r2_oos differ by how far their forecasts stray), so its null check is the KS test of the
oracle-centred p-values."""

REDUCED = Settings(name="reduced", null_replications=60, coverage_replications=25, null_fractions=(0.2,),
                   pooled_replications=10, pooled_targets=4)
"""The CI preset (``pytest -m calibration``): 60 null replications (120 verdicts) and 25
replications per coverage pair (50 replications, 100 intervals), return target; the pooled
suite with 10 studies of 4 targets each (null and shared)."""
FULL = Settings(name="full", null_replications=100, coverage_replications=40,
                coverage_pairs=("shared", "opposite", VOL_NULL), coverage_targets=("return", "volatility"),
                power_test_shares=(0.5,), sizing_replications=40, pooled_replications=40,
                pooled_targets=20)
"""The script's preset (``scripts/calibrate.py``): 400 null verdicts (2 fractions); 200 coverage
replications (2 pairs x return and volatility, and the volatility null), 400 intervals; the power
cell again at test_share 0.5; 40 sizing replications; 40 pooled studies of 20 targets, null and
shared."""
PRESETS = {"reduced": REDUCED, "full": FULL}


def null_target_spec(base: syn.SynthSpec | None = None) -> syn.SynthSpec:
    """A target with no return predictability: phi = momentum = mu = 0, GARCH (and levels) kept.

    The default base is the "shared" pair's target, so the null target differs from the
    trend-following source only in having no trend.
    """
    base = base or syn.pair_specs("shared")[1]
    return syn.SynthSpec.model_validate({**base.model_dump(), "phi": 0.0, "momentum": 0.0, "mu": 0.0})


def vol_null_target_spec() -> syn.SynthSpec:
    """:func:`null_target_spec` with constant volatility: no GARCH, no regimes."""
    return syn.SynthSpec.model_validate({**null_target_spec().model_dump(), "garch_alpha": 0.0,
                                         "garch_beta": 0.0, "regime_vol_mult": 1.0})


def experiment_config(s: Settings, source: str, target: str, fractions: tuple[float, ...],
                      target_type: str) -> TransferConfig:
    """The small experiment every replication runs (scratch + ``s.strategies``)."""
    return TransferConfig(
        source=(source,), target=target, strategies=("scratch", *s.strategies), fractions=fractions,
        seeds=s.seeds, target_type=target_type, lr_candidates=(1.0,),
        backbone=BackboneSpec(hidden=s.hidden), split=SplitSpec(n_folds=s.n_folds, horizon=5, embargo=5, test_share=s.test_share),
        train=TrainConfig(batch_size=s.batch_size, steps_per_epoch=s.steps_per_epoch, max_epochs=s.max_epochs),
        source_train=TrainConfig(batch_size=s.batch_size, steps_per_epoch=s.source_steps_per_epoch,
                                 max_epochs=s.source_max_epochs, patience=4),
        importance_repeats=0, device="cpu")


# ----------------------------------------------------------------------------- the oracle


@dataclass
class Oracle:
    """Per-day oracle differences of each (strategy, fraction, seed), folds pooled by weight."""

    fresh: FeatureMatrix
    acc: dict[tuple[str, float, int], np.ndarray] = field(default_factory=dict)

    def add(self, ctx: Context, fold: Fold, fraction: float, chosen: list[MemberResult]) -> None:
        scores = fresh_day_scores(ctx, fold, fraction, chosen, self.fresh)
        tags = [(r.member.tag["strategy"], r.member.tag["seed"]) for r in chosen]
        scratch = {seed: scores[i] for i, (st, seed) in enumerate(tags) if st == "scratch"}
        weight = len(fold.test) / sum(len(f.test) for f in ctx.folds)
        for i, (st, seed) in enumerate(tags):
            if st != "scratch":
                key = (st, fraction, seed)
                self.acc[key] = self.acc.get(key, 0.0) + weight * (scores[i] - scratch[seed])

    def effects(self) -> dict[tuple[str, float], dict[str, float]]:
        """Per cell: the oracle effect (fresh-sample mean over the seeds), its standard error
        (i.i.d. days) and the spread of the seeds' own effects (sd over seeds)."""
        cells: dict[tuple[str, float], list[np.ndarray]] = {}
        for (st, frac, _seed), v in sorted(self.acc.items()):
            cells.setdefault((st, frac), []).append(v)
        out = {}
        for k, vs in cells.items():
            d = np.mean(vs, axis=0)
            per_seed = [float(v.mean()) for v in vs]
            out[k] = {"oracle": float(d.mean()), "oracle_se": float(d.std(ddof=1) / math.sqrt(d.size)),
                      "oracle_seed_sd": float(np.std(per_seed, ddof=1)) if len(vs) > 1 else math.nan}
        return out


def seed_diagnostics(days: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per tested cell, how its interval splits into days and seeds (diagnostics only).

    ``day_*``: the same day-level test on the seed-averaged differences alone (no seed
    level), the interval of the effect of *these* seeds; ``seed_sd``: the spread of the seeds'
    mean differences; ``seed_corr``: the mean correlation of the seeds' day differences (how much
    of the day noise the seeds share).
    """
    out = []
    for st, frac, cell, scratch in tested_cells(days):
        d = T.paired(cell, scratch)
        t = paired_day_test(np.nanmean(d, axis=0), horizon=horizon, level=1 - T.ALPHA)
        corr = np.corrcoef(d) if d.shape[0] > 1 else np.ones((1, 1))
        off = corr[~np.eye(len(corr), dtype=bool)]
        out.append({"strategy": st, "fraction": frac, "day_ci_low": t.ci_low, "day_ci_high": t.ci_high,
                    "day_p": t.p_value, "seed_sd": float(np.nanstd(np.nanmean(d, axis=1), ddof=1))
                    if d.shape[0] > 1 else math.nan, "seed_corr": float(off.mean()) if off.size else 1.0})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- one replication


def replicate(cfg: TransferConfig, store: Store, cache_dir: Path, fresh: FeatureMatrix | None = None,
              with_baselines: bool = True, effect_days: bool = False) -> pd.DataFrame:
    """One experiment through :func:`run_transfer`'s own loop (:func:`fit_and_evaluate`), the
    oracle scoring each fold's chosen fits.

    Returns the verdict table (one row per cell, scratch included) with the
    :func:`seed_diagnostics`; with ``fresh``, the non-scratch rows also carry ``oracle`` (the
    cell's true effect on the target's distribution), ``oracle_se``, ``oracle_seed_sd``,
    ``covered`` (by the table's interval) and ``day_covered`` (by the day-level-only one).
    """
    ctx = prepare(cfg, store, cache_dir)
    oracle = Oracle(fresh) if fresh is not None else None
    rows, days = fit_and_evaluate(ctx, cfg, baselines=with_baselines,
                                  on_chosen=oracle.add if oracle is not None else None)
    fits = pd.DataFrame(rows).assign(metric=ctx.metric)
    frame = day_frame(days, _keys(cfg))
    table = (T.verdicts(fits, frame).merge(seed_diagnostics(frame, cfg.h), on=["strategy", "fraction"], how="left")
             .merge(candidate_columns(frame, cfg.h), on=["strategy", "fraction"], how="left"))
    if oracle is not None:
        eff = oracle.effects()
        none = {"oracle": math.nan, "oracle_se": math.nan, "oracle_seed_sd": math.nan}
        for col in none:
            table[col] = [eff.get(k, none)[col] for k in zip(table["strategy"], table["fraction"], strict=True)]
        table["covered"] = (table["delta_ci_low"] <= table["oracle"]) & (table["oracle"] <= table["delta_ci_high"])
        table["day_covered"] = (table["day_ci_low"] <= table["oracle"]) & (table["oracle"] <= table["day_ci_high"])
    if effect_days:  # the pooled suite pools these across the targets of a replication
        from .pooled_suite import target_rows

        table = target_rows(frame, table)
    return table


# ----------------------------------------------------------------------------- suites


def _tested(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["strategy"] != "scratch"]


@dataclass(frozen=True)
class Job:
    """One replication: a new target sample, a full experiment, its verdict rows."""

    settings: Settings
    suite: str
    relation: str
    target_type: str
    target: syn.SynthSpec
    fractions: tuple[float, ...]
    index: int
    seed: int
    """Seed of the target sample."""
    home: Path
    cache: Path
    source: str
    oracle_seed: int | None = None
    """Seed of the oracle's fresh sample (None: no oracle, the null suite's truth is 0)."""
    group: int | None = None
    """The pooled suite's replication (a study over several targets, one job each)."""


@lru_cache(maxsize=4)
def _fresh(spec_json: str, n_days: int, seed: int, target_type: str, horizon: int) -> FeatureMatrix:
    """One fresh sample per (spec, seed) and process: every replication of a cell shares it."""
    return fresh_sample(syn.SynthSpec.model_validate_json(spec_json), n_days, seed, target_type, horizon)


def run_job(job: Job) -> pd.DataFrame:
    """Simulate the job's target into the suite's store, run the experiment, return its verdict rows."""
    s, store = job.settings, Store(job.home)
    cpu, wall = time.process_time(), time.perf_counter()
    tid = f"cal_tgt_{job.index}"  # own id: replications may run in parallel processes
    syn.write_market(store, tid, job.target, s.target_days, job.seed, role="target", replace=True)
    cfg = experiment_config(s, job.source, tid, job.fractions, job.target_type)
    fresh = (None if job.oracle_seed is None else
             _fresh(job.target.model_dump_json(), s.oracle_days, job.oracle_seed, job.target_type, cfg.h))
    try:
        if job.suite == "sizing":
            from .sizing_suite import replicate_sizing

            table = replicate_sizing(cfg, store, job.cache, fresh)
        else:
            table = _tested(replicate(cfg, store, job.cache, fresh, s.baselines,
                                      effect_days=job.group is not None))
    finally:
        store.path(tid).unlink(missing_ok=True)
    if job.group is not None:
        table = table.assign(pooled_rep=job.group)
    return table.assign(suite=job.suite, relation=job.relation, target_type=job.target_type,
                        replication=job.index, target_seed=job.seed, cpu_s=time.process_time() - cpu,
                        wall_s=time.perf_counter() - wall)


def _init_worker(threads: int) -> None:
    import gc

    torch.set_num_threads(threads)
    gc.collect()
    gc.freeze()


def run_jobs(jobs: list[Job], workers: int, say: Say, label: str) -> pd.DataFrame:
    """Run the jobs (the first one here, so the source is pre-trained and cached once; the rest
    in ``workers`` spawned processes when > 1), their rows in job order."""
    if not jobs:
        return pd.DataFrame()
    t0 = time.perf_counter()
    out = {0: run_job(jobs[0])}
    rest = jobs[1:]

    def progress() -> None:
        if len(out) % 10 == 0 or len(out) == len(jobs):
            say(f"{label}: {len(out)}/{len(jobs)} replications ({time.perf_counter() - t0:.0f} s)")

    if workers <= 1:
        for j in rest:
            out[j.index - jobs[0].index] = run_job(j)
            progress()
    else:
        ctx = mp.get_context("spawn")  # torch's thread pools do not survive a fork
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(jobs[0].settings.threads,)) as pool:
            futures = {pool.submit(run_job, j): j.index - jobs[0].index for j in rest}
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                progress()
    return pd.concat([out[k] for k in sorted(out)], ignore_index=True)


def _world(s: Settings, workdir: Path, name: str, source: syn.SynthSpec) -> tuple[Path, Path, str]:
    """A store holding the suite's one source market (simulated once) and its source cache."""
    home = Path(workdir) / name / "home"
    src = f"cal_{name}_src"
    syn.write_market(Store(home), src, source, s.source_days, s.seed + 7, role="source", replace=True)
    return home, Path(workdir) / name / "cache", src


def null_jobs(s: Settings, workdir: Path) -> list[Job]:
    """Martingale-difference targets (:func:`null_target_spec`) against the "shared" pair's
    trend-following source; every true delta is exactly 0."""
    home, cache, src = _world(s, workdir, "null", syn.pair_specs("shared")[0])
    spec = null_target_spec()
    return [Job(s, "null", "null", "return", spec, s.null_fractions, i, s.seed + 100_000 + i, home, cache, src)
            for i in range(s.null_replications)]


def coverage_jobs(s: Settings, workdir: Path) -> list[list[Job]]:
    """Per (pair, target type): replications at ``coverage_fraction`` with an oracle sample."""
    groups = []
    for pi, relation in enumerate(s.coverage_pairs):
        if relation == VOL_NULL:
            source, target = syn.pair_specs("shared")[0], vol_null_target_spec()
        else:
            source, target = syn.pair_specs(relation)
        home, cache, src = _world(s, workdir, f"cov_{relation}", source)
        for ti, target_type in enumerate(s.coverage_targets):
            if relation == VOL_NULL and target_type != "volatility":
                continue
            base = s.seed + 100_000 * (2 + len(s.coverage_targets) * pi + ti)
            groups.append([Job(s, "coverage", relation, target_type, target, (s.coverage_fraction,), i,
                               base + i, home, cache, src, oracle_seed=s.seed + 900_000 + 10 * pi + ti)
                           for i in range(s.coverage_replications)])
    return groups


def sizing_jobs(s: Settings, workdir: Path) -> list[Job]:
    """The sizing suite: the "shared" pair, return target, every fraction of the grid, an oracle."""
    from .sizing_suite import SIZING_FRACTIONS

    source, target = syn.pair_specs("shared")
    home, cache, src = _world(s, workdir, "sizing", source)
    return [Job(s, "sizing", "shared", "return", target, SIZING_FRACTIONS, i, s.seed + 800_000 + i, home, cache,
                src, oracle_seed=s.seed + 990_000) for i in range(s.sizing_replications)]


def pooled_jobs(s: Settings, workdir: Path, truth: str) -> list[Job]:
    """The pooled suite: ``pooled_replications`` studies of ``pooled_targets`` new targets each;
    ``truth`` "null" (martingale targets, no oracle) or "shared" (the pair's targets, an oracle)."""
    source = syn.pair_specs("shared")[0]
    target = null_target_spec() if truth == "null" else syn.pair_specs("shared")[1]
    home, cache, src = _world(s, workdir, f"pooled_{truth}", source)
    fractions = s.null_fractions[:1] if truth == "null" else (s.coverage_fraction,)
    base = s.seed + (700_000 if truth == "null" else 750_000)
    k = s.pooled_targets
    return [Job(s, f"pooled_{truth}", truth if truth == "null" else "shared", "return", target, fractions,
                r * k + i, base + r * k + i, home, cache, src,
                oracle_seed=None if truth == "null" else s.seed + 995_000, group=r)
            for r in range(s.pooled_replications) for i in range(k)]


def run_null(s: Settings, workdir: Path, say: Say | None = None) -> SuiteResult:
    say = say or (lambda _m: None)
    t0 = time.perf_counter()
    rows = run_jobs(null_jobs(s, workdir), s.workers, say, "null")
    say(f"null: {rate(rows['p_value'] < T.ALPHA).text()} unadjusted false verdicts")
    return SuiteResult("null", rows, time.perf_counter() - t0, s.null_replications)


def run_coverage(s: Settings, workdir: Path, say: Say | None = None) -> SuiteResult:
    say = say or (lambda _m: None)
    t0, out, n = time.perf_counter(), [], 0
    for jobs in coverage_jobs(s, workdir):
        n += len(jobs)
        label = f"coverage {jobs[0].relation}/{jobs[0].target_type}"
        rows = run_jobs(jobs, s.workers, say, label)
        say(f"{label}: {rate(rows['covered']).text()} intervals cover the oracle")
        out.append(rows)
    return SuiteResult("coverage", pd.concat(out, ignore_index=True), time.perf_counter() - t0, n)


# ----------------------------------------------------------------------------- summaries


# ----------------------------------------------------------------------------- the whole run


@dataclass
class Calibration:
    settings: Settings
    null: SuiteResult
    coverage: SuiteResult
    seconds: float
    command: str = ""
    designs: dict[float, SuiteResult] = field(default_factory=dict)
    """``test_share`` -> the power cell's run with that share (``power_test_shares``)."""
    sizing: SuiteResult | None = None
    pooled: dict[str, SuiteResult] = field(default_factory=dict)
    """``null`` / ``shared`` -> the pooled suite's per-target rows."""

    @property
    def summaries(self) -> dict[str, Any]:
        return {"null": null_summary(self.null), "coverage": coverage_summary(self.coverage),
                "power": power_summary(self.coverage),
                "candidates": candidate_summary(self.null.rows, self.coverage.rows),
                "designs": {ts: design_summary(r) for ts, r in self.designs.items()},
                "sizing": sizing_summary(self.sizing.rows) if self.sizing is not None else None,
                "pooled": pooled_summary(self.pooled["null"].rows if "null" in self.pooled else None,
                                         self.pooled["shared"].rows if "shared" in self.pooled else None,
                                         horizon=5) if self.pooled else None}


def run_calibration(s: Settings, workdir: Path, say: Say | None = None, command: str = "") -> Calibration:
    """Both suites (power is read off the coverage suite's "shared" replications)."""
    import gc

    torch.set_num_threads(s.threads)
    # statsmodels' multipletests (Holm, once per table) calls gc.collect(): freezing what is
    # already alive (torch, pandas) makes each collection scan only the run's own objects.
    gc.collect()
    gc.freeze()
    t0 = time.perf_counter()
    null = run_null(s, workdir, say)
    cov = run_coverage(s, workdir, say)
    designs = {}
    for ts in s.power_test_shares:
        d = replace(s, coverage_pairs=("shared",), coverage_targets=("return",), test_share=ts)
        designs[ts] = run_coverage(d, Path(workdir) / f"design_{ts:g}", say)
    sizing = None
    if s.sizing_replications:
        t1 = time.perf_counter()
        rows = run_jobs(sizing_jobs(s, workdir), s.workers, say, "sizing")
        sizing = SuiteResult("sizing", rows, time.perf_counter() - t1, s.sizing_replications)
        say(f"sizing: monotone interval covers the oracle fraction {rate(rows['monotone_covered']).text()}")
    pooled = {}
    for truth in ("null", "shared") if s.pooled_replications else ():
        t1 = time.perf_counter()
        rows = run_jobs(pooled_jobs(s, workdir, truth), s.workers, say, f"pooled {truth}")
        pooled[truth] = SuiteResult(f"pooled_{truth}", rows, time.perf_counter() - t1, s.pooled_replications)
    return Calibration(s, null, cov, time.perf_counter() - t0, command, designs, sizing, pooled)


def machine() -> str:
    """The machine line of the report."""
    return (f"{os.cpu_count()} CPU cores (os.cpu_count()), {platform.machine()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def load_average() -> str:
    """The load average: on a shared machine it explains the wall times."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return "load average {:.1f} / {:.1f} / {:.1f} (1 / 5 / 15 min)".format(*os.getloadavg())
