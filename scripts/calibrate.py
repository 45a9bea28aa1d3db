"""Statistical calibration of the transfer verdicts: null, coverage and power suites.

    python scripts/calibrate.py            # the full preset (~15-30 min on 2 cores)
    python scripts/calibrate.py --reduced  # the CI preset (what `pytest -m calibration` runs)

Runs :func:`xfer.experiment.calibration.run_calibration`, prints the null false-verdict rate
(k/n, exact binomial interval), the Holm family-wise rate, the coverage rate, the power figures
and the wall time, and writes them with the command, settings and machine to CALIBRATION.md
(atomically). Replications run in ``--workers`` spawned processes (1 torch thread each); the
figures do not depend on the worker count.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from xfer.experiment import calibration as C
from xfer.io import write_text

ROOT = Path(__file__).resolve().parents[1]


ABOUT = """\
**What is checked.** Every replication is one complete transfer experiment (source
pre-training loaded from the cache, then scratch, head-only and full fine-tuning fitted on a
newly simulated target: every strategy x seed on every walk-forward fold, the candidate with
the best validation loss kept, its test block scored day by day, and the verdict table built
by `xfer.evaluate.tables.verdicts`, exactly as `xfer transfer` does). The estimand of a cell
is the expected per-day verdict-score difference (transfer minus scratch) of the *fitted*
models on the target's distribution, averaged over the seeds and over the folds weighted by
their test-block lengths; the interval is the table's unadjusted 95% `delta_ci_low` /
`delta_ci_high` (the default method of `xfer.evaluate.inference`: an EWC long-run variance of
the seed-averaged day differences plus the seeds' own variance component, Student t with the
Welch-Satterthwaite df of the two). Every other candidate method is applied to the same
difference matrices (the candidates table above).

- **Null suite.** The target's returns are a martingale difference (`phi = momentum = mu = 0`,
  GARCH(1,1) kept), the source trends (`momentum = 0.6`), the label is the next-day return and
  the score is `skill` (standardised forecast x return / training-window return scale), so every
  forecast has expected score exactly 0 and every true delta is exactly 0. A verdict whose
  unadjusted 95% interval excludes 0 (`p_value < 0.05`) is a false verdict: its rate should be
  about 5%. The Holm family-wise rate is the share of replications (tables) with any
  Holm-adjusted verdict that is not inconclusive: it should be at most about 5%.
- **Coverage suite.** Pairs with a real effect ("shared" dynamics: same trend; "opposite":
  trending source, mean-reverting target) at a small target fraction, return and volatility
  targets. The oracle effect of a cell is measured on a fresh sample of the target's generator:
  the same fitted models (each strategy x seed x fold, and scratch), with each fold's own
  training-window feature and label standardisers, forecast scale (the model's validation
  forecasts) and day-score scale, scored with the test days' recipe; the oracle is the
  fresh-sample mean of the seed- and fold-weighted difference. Coverage is the share of
  intervals that contain it (nominal 95%).
- **Volatility null suite** (`vol_null`). A target with constant volatility (no GARCH, no
  regimes, no return predictability) against the GARCH source: nothing about the target's
  volatility can be predicted, so transfer cannot help, but two models' `r2_oos` still differ
  by how far their forecasts stray; the truth is the oracle's, and the null check is that the
  p-values of H0: effect = oracle are uniform (the centred KS column), beside coverage.
- **Power.** On the "shared" pair (return target), the share of replications in which
  head-only and full fine-tuning are called positive (unadjusted: `delta_ci_low > 0`;
  Holm-adjusted: the table's `verdict`); the design table repeats the cell with more test days.
- **Sizing suite.** See its section: the required fraction's interval against the oracle curve.

**Reading the numbers.** Replications are independent (new target sample, fixed seeds), but
the verdicts of one replication are not: they share the test days and the scratch fits. The
exact binomial interval over all verdicts therefore treats correlated verdicts as independent
and is too narrow; the per-cell rates (one verdict per replication) and the per-replication
rates are exact. The same holds for the coverage of the strategies within one replication.

**Why power is low here, whatever the method.** On the shared pair at 5% of a 2,000-day
target the estimate's own error (delta minus oracle, over replications) has a standard
deviation about as large as the effect (design table), so even a test that knew that standard
deviation would call positive in only ~15% of replications at 5%. No variance estimate changes
that: only more test days (a longer target or a larger `test_share`), more targets pooled
(`pooled.parquet`) or a larger effect do.
"""


def _pct(x: float) -> str:
    return f"{x:.1%}" if math.isfinite(x) else "n/a"


def _rate_cells(r: C.Rate) -> str:
    lo, hi = r.ci
    return f"{r.k}/{r.n} | {_pct(r.share)} | {_pct(lo)} to {_pct(hi)}"


def markdown(cal: C.Calibration, command: str, machine_line: str, revision: str = "") -> str:
    """CALIBRATION.md: the figures, the command, the settings, the wall time and the machine."""
    s, sm = cal.settings, cal.summaries
    nul, cov, pw = sm["null"], sm["coverage"], sm["power"]
    lines = [
        "# Calibration of the transfer verdicts", "",
        f"Written by `scripts/calibrate.py` (preset `{s.name}`). Command:", "", "```bash", command, "```", "",
        f"- wall time: {cal.seconds / 60:.1f} min ({cal.seconds:.0f} s); null suite "
        f"{cal.null.seconds:.0f} s ({cal.null.seconds_per_replication:.1f} s per replication, "
        f"{cal.null.cpu_per_replication:.1f} CPU s), coverage suite {cal.coverage.seconds:.0f} s "
        f"({cal.coverage.seconds_per_replication:.1f} s per replication, {cal.coverage.cpu_per_replication:.1f} CPU s), "
        f"{s.workers} worker process(es) x {s.threads} torch thread(s)",
        f"- machine: {machine_line}",
        *([f"- code: {revision}"] if revision else []), "",
        "## Results", "",
        "| figure | k/n | rate | exact 95% CI |", "|---|---|---|---|",
        f"| null: false verdicts (unadjusted 95%, all cells) | {_rate_cells(nul['verdicts'])} |",
        f"| null: replications with any unadjusted false verdict | {_rate_cells(nul['any_unadjusted'])} |",
        f"| null: Holm family-wise (replications with any adjusted verdict) | {_rate_cells(nul['holm_familywise'])} |",
        *[f"| null: false verdicts, {k} | {_rate_cells(v)} |" for k, v in nul["per_cell"].items()],
        f"| coverage: all intervals | {_rate_cells(cov['pooled']['covered'])} |",
        *[f"| coverage: {k} | {_rate_cells(v['covered'])} |" for k, v in cov["by_target"].items()],
        *[f"| coverage: {k} | {_rate_cells(v['covered'])} |" for k, v in cov["cells"].items()],
        *[f"| power (shared, fraction {s.coverage_fraction:g}): {st} positive, unadjusted | "
          f"{_rate_cells(v['unadjusted'])} |" for st, v in pw.items()],
        *[f"| power (shared, fraction {s.coverage_fraction:g}): {st} positive, Holm-adjusted | "
          f"{_rate_cells(v['adjusted'])} |" for st, v in pw.items()],
        "",
        f"Null suite: {nul['replications']} replications x {len(s.strategies)} strategies x "
        f"{len(s.null_fractions)} fraction(s) = {nul['verdicts'].n} verdicts; false verdicts "
        f"{nul['positive']} positive, {nul['negative']} negative. Mean delta over all verdicts "
        f"{nul['mean_delta']:+.4f} (s.e. {nul['mean_delta_se']:.4f}, replications correlated within), "
        f"sd of delta {nul['sd_delta']:.4f} against a mean interval half-width / 1.96 of "
        f"{nul['mean_half_width'] / 1.959964:.4f}; sd of delta / (half-width / 1.96) "
        f"{nul['z_sd']:.2f} (1 when calibrated); KS test of the p-values against U(0, 1): "
        f"p = {nul['p_uniform_ks']:.3g}.", "",
        f"Diagnostic (not a verdict of the tables): the same day-level bootstrap-t on the seed-averaged "
        f"differences alone, without the seed variance component, calls {nul['day_only'].text()} false verdicts; the "
        f"seeds' day-by-day differences correlate {nul['seed_corr']:.2f} on average (mean sd of the seeds' "
        f"mean differences {nul['seed_sd']:.4f}).", "",
        "Coverage diagnostics per cell (error = delta - oracle; an interval is calibrated when the sd "
        "of the error matches the implied sd = half-width / 1.96):", "",
        "| cell | mean oracle | mean delta | mean error | sd error | implied sd | sd(error / implied) "
        "| misses below / above | oracle s.e. | seeds' oracle sd | seed corr | day-level-only coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {k} | {v['mean_oracle']:+.4f} | {v['mean_delta']:+.4f} | {v['mean_error']:+.4f} | "
          f"{v['sd_error']:.4f} | {v['implied_sd']:.4f} | {v['z_sd']:.2f} | {v['miss_low']} / {v['miss_high']} | "
          f"{v['mean_oracle_se']:.4f} | {v['oracle_seed_sd']:.4f} | {v['seed_corr']:.2f} | "
          f"{v['day_covered'].text()} |" for k, v in cov["cells"].items()],
        "", "Power detail (shared pair):", "",
        *[f"- {st}: oracle effect positive in {v['oracle_positive'].text()}; mean oracle "
          f"{v['mean_oracle']:+.4f}; called negative (unadjusted) in {v['negative_unadjusted'].text()}"
          for st, v in pw.items()],
        "", *_candidates_md(sm["candidates"], cal), *_designs_md(sm["designs"], cal), *_sizing_md(sm["sizing"], cal),
        *_pooled_md(sm["pooled"], cal),
        "## What each suite checks", "", ABOUT,
        "## Settings", "", "| setting | value |", "|---|---|",
        *[f"| `{k}` | `{v}` |" for k, v in asdict(s).items()],
        "",
        "Every replication: `TransferConfig(strategies=('scratch', *strategies), seeds, lr_candidates=(1.0,), "
        "backbone=BackboneSpec(hidden), split=SplitSpec(n_folds, horizon=5, embargo=5), "
        "train=TrainConfig(batch_size, steps_per_epoch, max_epochs), source_train=TrainConfig(batch_size, "
        "source_steps_per_epoch, source_max_epochs, patience=4), importance_repeats=0)`; see "
        "`xfer.experiment.calibration.experiment_config`. The source market (`source_days` days) is "
        "simulated once per suite and pre-trained once (cached); each replication simulates a new target "
        "(`target_days` days, its own seed). The oracle sample has `oracle_days` days, one per pair and "
        "target type (its own seed), shared by that cell's replications.", "",
    ]
    return "\n".join(lines)


def _candidates_md(cand: object, cal: C.Calibration) -> list[str]:
    """The table that chooses the verdicts' method: every candidate on the same matrices."""
    import pandas as pd

    from xfer.experiment.methods import default_candidate

    assert isinstance(cand, pd.DataFrame)
    if cand.empty:
        return []
    default = default_candidate()
    base = float(cand.loc[cand["candidate"] == default, "mean_half_width"].iloc[0]) if (
        cand["candidate"] == default).any() else float("nan")
    rows = [f"| {r.candidate}{' (default)' if r.candidate == default else ''} | {r.null_false.text()} | "
            f"{r.null_ks_p:.3g} | {r.coverage.text()} | {r.worst_cell} | {r.vol_centred_ks_p:.3g} | "
            f"{r.centred_ks_p:.3g} | {r.power.text() if r.power else ''} | {r.mean_half_width:.4f} "
            f"({r.mean_half_width / base:.2f}x) |" for r in cand.itertuples()]
    return ["## Candidate methods on the same difference matrices", "",
            "Each candidate turns the same seed x day difference matrices of every tested cell into an "
            "interval (`xfer/experiment/methods.py`); the verdicts use the default. Null: false verdicts "
            "(unadjusted 5%) over the null suite and the KS test of its p-values against U(0, 1). Coverage: "
            "of the oracle effect over the coverage suite (all cells), and its worst cell. Centred KS: the "
            "p-values of H0: effect = oracle (uniform when the intervals are calibrated; the bootstrap's "
            "with a normal reference), over the volatility cells (the volatility suite's null check, "
            "including the constant-volatility target) and over all coverage cells. Power: the shared pair, "
            f"return target, fraction {cal.settings.coverage_fraction:g}, positive unadjusted. Half-width: "
            "mean over the coverage suite, and relative to the default.", "",
            "| candidate | null false verdicts | null KS p | coverage | worst cell | volatility centred KS p "
            "| centred KS p | power | mean half-width |", "|---|---|---|---|---|---|---|---|---|", *rows, ""]


def _designs_md(designs: dict[float, dict[str, object]], cal: C.Calibration) -> list[str]:
    """Power of the shared/return cell under more test days, next to the main run's design."""
    if not designs:
        return []
    from xfer.experiment.methods import design_summary

    allr = {cal.settings.test_share: design_summary(C.SuiteResult(
        "coverage", cal.coverage.rows[(cal.coverage.rows["relation"] == "shared")
                                      & (cal.coverage.rows["target_type"] == "return")],
        cal.coverage.seconds, cal.coverage.replications)), **designs}
    lines = ["## Power against the design (shared pair, return target)", "",
             f"The same cell (fraction {cal.settings.coverage_fraction:g}, {cal.settings.seeds} seeds, {cal.settings.n_folds} folds) with more of the target's rows in the "
             "walk-forward test blocks. Seconds per replication are wall / CPU of one full experiment "
             "(the main run's figure is the coverage suite's average over all its cells).", "",
             "| test_share | mean test days | mean oracle | sd of the estimate's error | candidate | power "
             "(unadjusted) | coverage | mean half-width | s per replication |", "|---|---|---|---|---|---|---|---|---|"]
    for ts, d in sorted(allr.items()):
        for name, v in d["by"].items():  # type: ignore[attr-defined]
            lines.append(f"| {ts:g} | {d['n_days']:.0f} | {d['mean_oracle']:+.3f} | {d['sd_error']:.3f} | {name} | {v['power'].text()} | {v['coverage'].text()} | "
                         f"{v['half_width']:.4f} | {d['seconds_per_replication']:.1f} / "
                         f"{d['cpu_per_replication']:.1f} |")
    return [*lines, ""]


def _sizing_md(sz: dict[str, object] | None, cal: C.Calibration) -> list[str]:
    """Coverage of the oracle required fraction by the monotone band and the old interval."""
    if not sz:
        return []
    from xfer.experiment.sizing_suite import SIZING_FRACTIONS

    assert cal.sizing is not None
    rows = [f"| {k} | {v['monotone'].text()} | {v['first_passage'].text()} | {v['monotone_hit'].text()} | "
            f"{v['first_passage_hit'].text()} | {v['oracle_median']:g} | {v['oracle_never'].text()} | "
            f"{v['oracle_monotone'].text()} |" for k, v in sz.items() if isinstance(v, dict)]
    return ["## Sizing suite: the required fraction's interval against the oracle", "",
            f"{sz['replications']} replications of the shared pair (return target), fractions "
            f"{', '.join(f'{f:g}' for f in SIZING_FRACTIONS)}, {cal.settings.seeds} seeds; the oracle curve is "
            "each fraction's fresh-sample score minus scratch at 100% for the same fitted models, and the "
            "oracle fraction its first crossing of 0 (`xfer/experiment/sizing_suite.py`). Nominal 90% for "
            f"both intervals; {cal.sizing.seconds:.0f} s ({cal.sizing.seconds_per_replication:.1f} s per "
            "replication).", "",
            "| strategy | monotone 90% band covers | first-passage 90% interval covers | monotone point = oracle "
            "| first-passage point = oracle | median oracle fraction | oracle never reaches | oracle curve "
            "monotone |", "|---|---|---|---|---|---|---|---|", *rows, ""]


def _pooled_md(pl: dict[str, object] | None, cal: C.Calibration) -> list[str]:
    """The pooled estimate's null rate and coverage with trained models."""
    if not pl:
        return []
    s = cal.settings
    secs = ", ".join(f"{k} {v.seconds:.0f} s" for k, v in cal.pooled.items())
    lines = ["## Pooled suite: random-effects estimates across targets, trained models", "",
             f"{s.pooled_replications} replications, each a study over {s.pooled_targets} new targets (each a full "
             "experiment; the same calendar days), pooled per strategy and fraction with "
             "`xfer.evaluate.pooled.pooled_effect` exactly as `pooled.parquet` does "
             f"(`xfer/experiment/pooled_suite.py`); {secs}.", ""]
    if "null" in pl:
        lines += [f"- null (martingale targets, fraction {s.null_fractions[0]:g}): pooled false verdicts "
                  f"{pl['null'].text()}; KS test of the pooled p-values against U(0, 1): p = {pl['null_ks_p']:.3g}."]
    if "cells" in pl:
        lines += [f"- coverage (shared pair, fraction {s.coverage_fraction:g}) of the population mean effect mu "
                  f"(the grand mean of every target's oracle over all replications): {pl['coverage'].text()}.", "",
                  "| cell | mu (s.e.) | covers mu | covers its own targets' mean oracle | mean estimate | sd estimate "
                  "| mean half-width | mean tau | positive (unadjusted) |", "|---|---|---|---|---|---|---|---|---|",
                  *[f"| {k} | {v['mu']:+.4f} ({v['mu_se']:.4f}) | {v['covered'].text()} | {v['covered_own'].text()} | "
                    f"{v['mean_estimate']:+.4f} | {v['sd_estimate']:.4f} | {v['mean_half_width']:.4f} | "
                    f"{v['mean_tau']:.4f} | {v['positive'].text()} |" for k, v in pl["cells"].items()]]
    return [*lines, ""]


def _revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    files = [line[3:] for line in dirty.stdout.splitlines()]
    # uncommitted files change the numbers: name them with a hash of their content
    mod = [f"{f} sha256 {hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:12]}" for f in files
           if (ROOT / f).is_file()]
    return f"git {out.stdout.strip()}" + (f" (uncommitted: {'; '.join(mod)})" if mod else "")


def _print_summary(cal: C.Calibration) -> None:
    sm, s = cal.summaries, cal.settings
    nul, cov, pw = sm["null"], sm["coverage"], sm["power"]
    print(f"null: {nul['replications']} replications, {nul['verdicts'].n} verdicts; false verdicts "
          f"(unadjusted 95%) {nul['verdicts'].text()} [{nul['positive']} positive, {nul['negative']} negative]")
    for k, v in nul["per_cell"].items():
        print(f"  {k}: {v.text()}")
    print(f"null: replications with any unadjusted false verdict {nul['any_unadjusted'].text()}")
    print(f"null: Holm family-wise rate {nul['holm_familywise'].text()}")
    print(f"null (diagnostic): day-level-only interval {nul['day_only'].text()}; sd(delta / implied s.e.) "
          f"{nul['z_sd']:.2f}; seed correlation {nul['seed_corr']:.2f}")
    print(f"coverage: {cov['replications']} replications; intervals covering the oracle "
          f"{cov['pooled']['covered'].text()}")
    for k, v in cov["cells"].items():
        print(f"  {k}: {v['covered'].text()}; mean oracle {v['mean_oracle']:+.4f}, mean error "
              f"{v['mean_error']:+.4f}, sd error {v['sd_error']:.4f} vs implied {v['implied_sd']:.4f}; "
              f"day-level-only {v['day_covered'].text()}")
    for st, v in pw.items():
        print(f"power (shared, fraction {s.coverage_fraction:g}) {st}: positive unadjusted "
              f"{v['unadjusted'].text()}, Holm-adjusted {v['adjusted'].text()}")
    print(f"wall time {cal.seconds:.0f} s ({cal.seconds / 60:.1f} min); per replication: null "
          f"{cal.null.seconds_per_replication:.1f} s wall / {cal.null.cpu_per_replication:.1f} CPU s, coverage "
          f"{cal.coverage.seconds_per_replication:.1f} s wall / {cal.coverage.cpu_per_replication:.1f} CPU s")


LONG_RUN_CELLS = (("null", "return", 0.2), ("shared", "return", 0.05), ("opposite", "return", 0.05),
                  ("shared", "volatility", 0.05), ("opposite", "volatility", 0.05))


def long_run_check(s: C.Settings, workdir: Path, relation: str, target_type: str, fraction: float,
                   seed: int = 4242) -> list[dict[str, float | str]]:
    """Does the day-level block length see all the dependence of the day-score differences?

    One replication's fitted models are scored on the oracle's fresh sample; its per-day
    differences (seed- and fold-weighted, as the oracle) are cut into chunks as long as the
    pooled test days, and the variance of the chunk means is set against the mean Bartlett
    variance the bootstrap-t uses on one chunk (window = max(horizon, Politis-White)).
    A ratio near 1: the interval's day level is right; well above 1: it is too narrow.
    """
    import numpy as np

    from xfer.data import synthetic as syn
    from xfer.data.store import Store
    from xfer.evaluate.inference import _bartlett_var, _pw_block_length
    from xfer.experiment.fit import fit_candidates, select
    from xfer.experiment.prepare import prepare
    from xfer.experiment.run import candidates

    src, tgt = syn.pair_specs("shared" if relation == "null" else relation)
    tgt = C.null_target_spec() if relation == "null" else tgt
    st = Store(workdir / f"lr_{relation}_{target_type}")
    syn.write_market(st, "src", src, s.source_days, s.seed + 7, replace=True)
    syn.write_market(st, "tgt", tgt, s.target_days, s.seed + 123, replace=True)
    cfg = C.experiment_config(s, "src", "tgt", (fraction,), target_type)
    ctx = prepare(cfg, st, workdir / f"lr_{relation}_{target_type}" / "cache")
    oracle = C.Oracle(C.fresh_sample(tgt, s.oracle_days, seed, target_type, cfg.h))
    by_fold = fit_candidates(ctx, fraction, candidates(cfg))
    for fold in ctx.folds:
        oracle.add(ctx, fold, fraction, select(by_fold[fold.index]))
    n = sum(len(f.test) for f in ctx.folds)
    out = []
    for strategy in s.strategies:
        d = np.mean([v for k, v in oracle.acc.items() if k[0] == strategy], axis=0)
        chunks = d[: len(d) // n * n].reshape(-1, n)
        windows = [max(float(cfg.h), _pw_block_length(c)) for c in chunks]
        hac = np.mean([float(_bartlett_var(c, max(1, round(w)))) for c, w in zip(chunks, windows, strict=True)])
        out.append({"cell": f"{relation}/{target_type}/{strategy} @ {fraction:g}", "days": n,
                    "chunks": len(chunks), "var_chunk_means": float(chunks.mean(axis=1).var(ddof=1)),
                    "mean_hac": float(hac), "ratio": float(chunks.mean(axis=1).var(ddof=1) / hac),
                    "mean_window": float(np.mean(windows)),
                    "acf_1_5": ", ".join(f"{np.corrcoef(d[:-k], d[k:])[0, 1]:+.2f}" for k in range(1, 6))})
    return out


def _long_run(s: C.Settings, workdir: Path) -> str:
    lines = ["| cell | test days | chunks | var of chunk means | mean HAC variance | ratio | mean window "
             "| autocorrelation, lags 1-5 |", "|---|---|---|---|---|---|---|---|"]
    for relation, target_type, fraction in LONG_RUN_CELLS:
        for r in long_run_check(s, workdir, relation, target_type, fraction):
            lines.append(f"| {r['cell']} | {r['days']} | {r['chunks']} | {r['var_chunk_means']:.3e} | "
                         f"{r['mean_hac']:.3e} | {r['ratio']:.2f} | {r['mean_window']:.1f} | {r['acf_1_5']} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reduced", action="store_true", help="run the CI preset instead of the full one")
    p.add_argument("--workers", type=int, default=None, help="replication processes (default: the preset's)")
    p.add_argument("--workdir", type=Path, default=None, help="stores and source caches (default: a temp dir)")
    p.add_argument("--out", type=Path, default=ROOT / "CALIBRATION.md", help="the report (default: %(default)s)")
    p.add_argument("--rows", type=Path, default=None, help="also save every replication's verdict rows (.parquet)")
    p.add_argument("--test-share", type=float, default=None,
                   help="share of the target's rows in the test blocks (default: the preset's)")
    p.add_argument("--long-run", action="store_true",
                   help="only the long-run variance check of the day level (one replication per cell; prints "
                        "a markdown table, writes nothing)")
    args = p.parse_args(argv)
    s = C.REDUCED if args.reduced else C.FULL
    if args.workers is not None:
        s = dataclasses.replace(s, workers=args.workers)
    if args.test_share is not None:
        s = dataclasses.replace(s, test_share=args.test_share)
    if args.long_run:
        import torch

        torch.set_num_threads(s.threads)
        with tempfile.TemporaryDirectory(prefix="xfer-calibration-") as tmp:
            _long_run(s, args.workdir or Path(tmp))
        return 0
    command = shlex.join(["python", "scripts/calibrate.py", *(sys.argv[1:] if argv is None else argv)])
    machine_start = f"{C.machine()}; {C.load_average()} at the start"
    with tempfile.TemporaryDirectory(prefix="xfer-calibration-") as tmp:
        workdir = args.workdir or Path(tmp)
        cal = C.run_calibration(s, workdir, say=lambda m: print(m, flush=True), command=command)
    _print_summary(cal)
    if args.rows:
        import pandas as pd

        from xfer.io import write_parquet

        extra = [r.rows.assign(suite=f"design_{ts:g}") for ts, r in cal.designs.items()]
        extra += [cal.sizing.rows] if cal.sizing is not None else []
        extra += [r.rows for r in cal.pooled.values()]
        write_parquet(pd.concat([cal.null.rows, cal.coverage.rows, *extra], ignore_index=True), args.rows)
    machine_line = f"{machine_start}; {C.load_average()} at the end (the machine is shared)"
    write_text(args.out, markdown(cal, command, machine_line, _revision()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # the guard matters: replications run in spawned processes
    raise SystemExit(main())
