"""RESULTS.md tables from one study directory: data sizing, LR ratio, importance, regimes.

    python scripts/findings.py verdicts STUDY_DIR    # every transfer cell against scratch and the best baseline
    python scripts/findings.py sizing STUDY_DIR      # required fraction per strategy vs the rule of thumb
    python scripts/findings.py lr STUDY_DIR          # validation loss per fine-tune LR ratio (grid searches)
    python scripts/findings.py families STUDY_DIR    # permutation importance per feature family, transfer vs scratch
    python scripts/findings.py regimes STUDY_DIR [--fractions 0.1,1.0]   # verdicts within volatility regimes
    python scripts/findings.py pooled STUDY_DIR [--versus scratch]  # effects pooled across targets, per asset class
    python scripts/findings.py comparisons STUDY_DIR # chain vs direct, DANN vs none (with the domain probe)
    python scripts/findings.py skill STUDY_DIR       # return skill split into bias x drift and timing

Each prints markdown, ready for RESULTS.md, computed from the study's own files
(``sizing.parquet``, ``verdicts.parquet``, ``results.parquet``, ``predictions.parquet``,
``optuna.journal``) with xfer's own statistics:

- **verdicts**: ``verdicts.parquet`` as a table: the paired day-level delta against scratch
  (95%, Holm over the study), and whether the cell beats the best practitioner baseline
  (``yes``/``no`` when the 95% interval of the difference excludes 0, else ``tie``).
- **sizing**: the required fraction and its interval (and, for tables of this version, the
  monotone curve's: ``xfer.evaluate.sizing.monotone_sizing``, isotonic fit and 90% joint band) (``xfer.evaluate.inference.required_fraction_days``:
  the smallest fraction whose curve reaches scratch at the largest fraction, day-level bootstrap
  of all fractions jointly, 90%), beside the article's range; and per strategy the smallest
  fraction whose verdict against the best practitioner baseline (HAR-RV or EWMA) is positive.
- **lr**: every trial's validation loss per fold from the journal (a grid search fits every
  ratio in every cell); per strategy, how often each ratio is best and the mean log ratio of its
  loss to the loss at 0.1, with a 95% percentile bootstrap over cells (pair x fraction; folds
  of a cell move together). Validation loss, not test: a grid search evaluates only the chosen
  config on the test block, and validation is what a user would choose the ratio on.
- **families**: each fit's permutation importance per feature family (drop in the test metric
  when the family's columns are shuffled), the mean per strategy, and each transfer strategy's
  paired difference from scratch (same pair, fraction, fold and seed) with a 95% percentile
  bootstrap over (pair, fraction, fold) blocks.
- **pooled**: ``pooled.parquet`` (:func:`xfer.evaluate.tables.pooled`): per group of targets,
  strategy and fraction, the mean target's effect against ``--versus`` (``scratch`` at the same
  fraction, ``scratch_full`` at full data, or a baseline such as ``har_rv``) with its 95%
  random-effects interval, Holm within each reference, the between-target spread tau and the
  95% prediction interval for a new target.
- **skill** (return targets): each cell's mean test ``skill`` split into ``bias`` (mean forecast x
  the test block's drift, :func:`xfer.evaluate.scores.skill_split`) and ``timing`` (the forecast's
  covariance with the return), per fit and averaged over seeds and folds (folds weighted by their
  test days), for scratch, the transfer strategy and their difference. Point estimates: the
  verdict's interval is on the total.
- **regimes**: the verdict table (paired day-level tests against scratch and against the best
  baseline, Holm within each regime's table) on the test days of each volatility regime: a day
  is high-vol when the target's trailing 20-day realised vol exceeds its median over the days
  before that fold's test block.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from xfer.data.features import build_features
from xfer.data.store import Store
from xfer.evaluate.contract import RULE_OF_THUMB, STRATEGY_ORDER
from xfer.evaluate.tables import verdicts
from xfer.study.spec import StudySpec, cells

ORDER = {s: i for i, s in enumerate(STRATEGY_ORDER)}


def _pct(x: float) -> str:
    return "not reached" if not math.isfinite(x) else f"{100 * x:.0f}%"


def _strategies(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by target, then strategies in freezing order."""
    return frame.assign(o=frame["strategy"].map(ORDER)).sort_values(["target", "o"], kind="stable")


def cluster_interval(blocks: list[np.ndarray], n_boot: int, rng: np.random.Generator,
                     level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over all rows of the stacked ``blocks`` (each ``(rows, k)``), and its percentile
    bootstrap interval resampling whole blocks with replacement (rows within a block move
    together): ``(mean, low, high)``, each of length ``k``."""
    mean = np.concatenate(blocks).mean(axis=0)
    draws = np.array([np.concatenate([blocks[i] for i in rng.integers(0, len(blocks), len(blocks))]).mean(axis=0)
                      for _ in range(n_boot)])
    lo, hi = np.percentile(draws, [100 * (1 - level) / 2, 100 * (1 + level) / 2], axis=0)
    return mean, lo, hi


def _spec(study: Path) -> StudySpec:
    return StudySpec.model_validate_json((study / "spec.json").read_bytes())


# ----------------------------------------------------------------------- sizing


def sizing_table(study: Path) -> str:
    s = _strategies(pd.read_parquet(study / "sizing.parquet"))
    s = s[(s["chain"] == "direct") & (s["dann_weight"] == 0) & (s["strategy"] != "scratch")]
    v = pd.read_parquet(study / "verdicts.parquet")
    v = v[(v["chain"] == "direct") & (v["dann_weight"] == 0)]
    mono = "monotone_fraction" in s.columns
    lines = ["| target | strategy | required fraction | 90% interval | draws reaching | "
             + ("monotone fit [90% joint band] | " if mono else "")
             + "article | smallest fraction beating the best baseline |",
             "|---|---|---|---|---|---|---|" + ("---|" if mono else "")]
    for r in s.to_dict("records"):
        beat = v[(v["target"] == r["target"]) & (v["strategy"] == r["strategy"])
                 & (v["delta_vs_baseline_ci_low"] > 0)]
        first = f"{100 * beat['fraction'].min():.0f}% ({beat.sort_values('fraction')['best_baseline'].iloc[0]})" \
            if len(beat) else "none"
        lines.append(f"| {r['target']} | {r['strategy']} | {_pct(r['required_fraction'])} | "
                     f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}] | {100 * r['reached_share']:.0f}% | "
                     + (f"{_pct(r['monotone_fraction'])} [{_pct(r['monotone_ci_low'])}, "
                        f"{_pct(r['monotone_ci_high'])}] | " if mono else "")
                     + f"{RULE_OF_THUMB.get(r['strategy'], '')} | {first} |")
    sc = v[v["strategy"] == "scratch"].sort_values(["target", "fraction"])
    lines += ["", "| target | scratch at fraction | score | best baseline | baseline score | scratch - baseline | 95% interval |",
              "|---|---|---|---|---|---|---|"]
    for r in sc.to_dict("records"):
        lines.append(f"| {r['target']} | {r['fraction']:g} | {r['test_score']:+.4f} | {r['best_baseline']} | "
                     f"{r['best_baseline_score']:+.4f} | {r['delta_vs_baseline']:+.4f} | "
                     f"[{r['delta_vs_baseline_ci_low']:+.4f}, {r['delta_vs_baseline_ci_high']:+.4f}] |")
    return "\n".join(lines)


# ----------------------------------------------------------------------- learning-rate ratio


def journal_losses(study: Path) -> pd.DataFrame:
    """One row per (cell, trial, fold): the trial's knob and its validation loss on that fold."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(study / "optuna.journal")))
    by_id = {c.cell_id: c for c in cells(_spec(study))}
    rows = []
    for s in storage.get_all_studies():
        cell = by_id.get(s.study_name)
        if cell is None:  # an interrupted attempt (<cell_id>~interrupted-<n>): not part of the result
            continue
        for t in storage.get_all_trials(s._study_id, deepcopy=False):
            if t.state != optuna.trial.TrialState.COMPLETE:
                continue
            knob = "scratch_lr" if cell.strategy == "scratch" else "lr_ratio"
            for fold, loss in t.user_attrs.get("val_by_fold", {}).items():
                rows.append({"target": cell.setup.target, "strategy": cell.strategy, "fraction": cell.fraction,
                             "cell_id": cell.cell_id, "fold": int(fold), "knob": knob,
                             "value": float(t.params[knob]), "val_loss": float(loss)})
    return pd.DataFrame(rows)


def lr_table(study: Path, ref: float = 0.1, n_boot: int = 2000, seed: int = 0) -> str:
    j = journal_losses(study)
    if j.empty:
        raise SystemExit(f"error: {study / 'optuna.journal'}: no completed trials with val_by_fold")
    t = j[j["knob"] == "lr_ratio"]
    values = sorted(t["value"].unique())
    if ref not in values:
        raise SystemExit(f"error: the studied LR ratios {values} do not include the reference {ref}")
    wide = t.pivot_table(index=["target", "strategy", "fraction", "fold"], columns="value", values="val_loss")
    wide = wide.dropna()
    rng = np.random.default_rng(seed)
    lines = [f"| strategy | {' | '.join(f'{v:g}' for v in values)} |", "|---|" + "---|" * len(values)]
    best_rows = [f"| best in (cell, fold) | {' | '.join('' for _ in values)} |"]
    for strat in sorted(wide.index.get_level_values("strategy").unique(), key=lambda s: ORDER.get(s, 99)):
        w = wide.xs(strat, level="strategy")
        logr = np.log(w.div(w[ref], axis=0))  # per (target, fraction, fold): log loss ratio vs the reference
        mean, lo, hi = cluster_interval([g.to_numpy() for _, g in logr.groupby(level=["target", "fraction"])],
                                        n_boot, rng)
        best = w.idxmin(axis=1).value_counts(normalize=True)
        cells_ = [f"{100 * (math.exp(m) - 1):+.1f}% [{100 * (math.exp(a) - 1):+.1f}, {100 * (math.exp(b) - 1):+.1f}]"
                  if v != ref else "0 (ref.)" for v, m, a, b in zip(values, mean, lo, hi, strict=True)]
        lines.append(f"| {strat}: val loss vs {ref:g} | {' | '.join(cells_)} |")
        best_rows.append(f"| {strat}: share best | {' | '.join(f'{100 * best.get(v, 0.0):.0f}%' for v in values)} |")
    n = len(wide.index.droplevel(["fold"]).unique()) // max(1, wide.index.get_level_values("strategy").nunique())
    return "\n".join([*lines, *best_rows[1:], "",
                      f"{len(wide)} (cell, fold) losses; {n} cells (target x fraction) per strategy; "
                      f"intervals: 95% percentile bootstrap over cells ({n_boot} draws)."])


# ----------------------------------------------------------------------- importance per family


def families_table(study: Path, n_boot: int = 2000, seed: int = 0) -> str:
    r = pd.read_parquet(study / "results.parquet")
    r = r[(r["chain"] == "direct") & (r["dann_weight"] == 0)]
    fams = [c for c in r.columns if c.startswith("importance_") and r[c].notna().any()]
    if not fams:
        raise SystemExit(f"error: {study / 'results.parquet'}: no importance_<family> columns (importance_repeats: 0?)")
    keys = ["pair", "fraction", "fold", "seed"]
    rng = np.random.default_rng(seed)
    lines = ["| target | family | scratch | " + " | ".join(f"{s} | {s} - scratch [95%]" for s in ("head_only", "partial", "full")
                                                       ) + " |", "|---|---|---|" + "---|---|" * 3]
    for target, g in r.groupby("target", sort=True):
        s_t = g[g["strategy"] == "scratch"].set_index(keys)[fams]
        row_by_fam = {f: [f"{s_t[f].mean():+.4f}"] for f in fams}
        for strat in ("head_only", "partial", "full"):
            t = g[g["strategy"] == strat].set_index(keys)[fams]
            d = (t - s_t).dropna()
            if not len(d):
                for f in fams:
                    row_by_fam[f] += ["", ""]
                continue
            mean, lo, hi = cluster_interval([b.to_numpy() for _, b in d.groupby(level=["pair", "fraction", "fold"])],
                                            n_boot, rng)
            for i, f in enumerate(fams):
                row_by_fam[f] += [f"{t[f].mean():+.4f}", f"{mean[i]:+.4f} [{lo[i]:+.4f}, {hi[i]:+.4f}]"]
        for f in fams:
            lines.append(f"| {target} | {f.removeprefix('importance_')} | {' | '.join(row_by_fam[f])} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------- verdict matrix


def verdicts_table(study: Path) -> str:
    """Every transfer cell's verdict against scratch, beside the best practitioner baseline."""
    v = pd.read_parquet(study / "verdicts.parquet")
    v = v[(v["strategy"] != "scratch") & (v["chain"] == "direct") & (v["dann_weight"] == 0)]
    v = v.assign(o=v["strategy"].map(ORDER)).sort_values(["pair", "fraction", "o"])
    lines = ["| pair | strategy | fraction | scratch | transfer | delta | 95% interval | p (Holm) | verdict | "
             "detectable | best baseline | beats it |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in v.to_dict("records"):
        verdict = _bold(r["verdict"])
        lines.append(f"| {r['pair']} | {r['strategy']} | {r['fraction']:g} | {r['scratch_score']:+.3f} | "
                     f"{r['test_score']:+.3f} | {r['delta']:+.3f} | [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}] | "
                     f"{r['p_adjusted']:.3f} | {verdict} | {r['detectable_effect']:.3f} | "
                     f"{r['best_baseline']} {r['best_baseline_score']:+.3f} | "
                     f"{'yes' if r['delta_vs_baseline_ci_low'] > 0 else ('no' if r['delta_vs_baseline_ci_high'] < 0 else 'tie')} |")
    return "\n".join(lines)


def pooled_table(study: Path, versus: str) -> str:
    """The pooled table for one reference (``--versus``), groups ``all`` first."""
    t = pd.read_parquet(study / "pooled.parquet")
    t = t[t["versus"] == versus]
    t = t.assign(o=t["strategy"].map(ORDER), g=t["group"] != "all").sort_values(["g", "group", "o", "fraction"])
    lines = [f"| group | targets | strategy | fraction | delta vs {versus} | 95% interval | p (Holm) | verdict | "
             "tau | 95% prediction interval | detectable (80%) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in t.to_dict("records"):
        verdict = _bold(r["verdict"])
        lines.append(f"| {r['group']} | {r['n_targets']} | {r['strategy']} | {r['fraction']:g} | {r['estimate']:+.3f} | "
                     f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['p_adjusted']:.3f} | {verdict} | "
                     f"{math.sqrt(r['tau2']):.3f} | [{r['pi_low']:+.3f}, {r['pi_high']:+.3f}] | "
                     f"{r['detectable_effect']:.3f} |")
    return "\n".join(lines)


def comparisons_table(study: Path) -> str:
    """``comparisons.parquet``: chain minus direct, and DANN minus none with the domain probe's
    accuracy (mean over seeds and folds) without and with DANN."""
    c = pd.read_parquet(study / "comparisons.parquet")
    c = c.assign(o=c["strategy"].map(ORDER)).sort_values(["kind", "pair", "o", "fraction", "variant"])
    out = []
    chain = c[c["kind"] == "chain_vs_direct"]
    if len(chain):
        out += ["| pair | chain | strategy | fraction | chain - direct | 95% interval | p (Holm) | verdict | detectable |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in chain.to_dict("records"):
            out.append(f"| {r['pair']} | {r['variant']} | {r['strategy']} | {r['fraction']:g} | {r['delta']:+.4f} | "
                       f"[{r['delta_ci_low']:+.4f}, {r['delta_ci_high']:+.4f}] | {r['p_adjusted']:.3f} | "
                       f"{_bold(r['verdict'])} | {r['detectable_effect']:.4f} |")
    dann = c[c["kind"] == "dann_vs_none"]
    if len(dann):
        res = pd.read_parquet(study / "results.parquet")
        probe = (res.groupby(["pair", "strategy", "fraction", "dann_weight"])["domain_probe_acc"].mean()
                 if "domain_probe_acc" in res else pd.Series(dtype=float))
        out += ["" if out else None, "| pair | strategy | fraction | DANN - none | 95% interval | p (Holm) | verdict | "
                "detectable | probe acc. none -> DANN |", "|---|---|---|---|---|---|---|---|---|"]
        for r in dann.to_dict("records"):
            on = res[(res["pair"] == r["pair"]) & (res["strategy"] == r["strategy"]) & (res["fraction"] == r["fraction"])
                     & (res["dann_weight"] > 0)]["dann_weight"]
            k0 = (r["pair"], r["strategy"], r["fraction"], 0.0)
            acc0 = probe.get(k0, math.nan)
            acc1 = probe[[k for k in probe.index if k[:3] == k0[:3] and k[3] > 0]].mean() if len(on) else math.nan
            out.append(f"| {r['pair']} | {r['strategy']} | {r['fraction']:g} | {r['delta']:+.4f} | "
                       f"[{r['delta_ci_low']:+.4f}, {r['delta_ci_high']:+.4f}] | {r['p_adjusted']:.3f} | "
                       f"{_bold(r['verdict'])} | {r['detectable_effect']:.4f} | {acc0:.3f} -> {acc1:.3f} |")
    return "\n".join(x for x in out if x is not None)


def skill_table(study: Path) -> str:
    """Return targets: skill = bias x drift + timing, per cell, transfer against scratch."""
    r = pd.read_parquet(study / "results.parquet")
    if "test_skill_timing" not in r.columns:
        raise ValueError(f"{study / 'results.parquet'}: no 'test_skill_timing' column (a return study "
                         "written by this version of xfer is needed)")
    r = r[(r["chain"] == "direct") & (r["dann_weight"] == 0)]
    cols = ["test_skill", "test_skill_bias", "test_skill_timing"]
    w = r[cols].multiply(r["n_test"], axis=0).assign(n=r["n_test"], pair=r["pair"], strategy=r["strategy"],
                                                       fraction=r["fraction"])
    g = w.groupby(["pair", "strategy", "fraction"])[[*cols, "n"]].sum()
    m = g[cols].divide(g["n"], axis=0).reset_index()
    sc = m[m["strategy"] == "scratch"].set_index(["pair", "fraction"])
    t = m[m["strategy"] != "scratch"]
    t = t.assign(o=t["strategy"].map(ORDER)).sort_values(["pair", "fraction", "o"])
    lines = ["| pair | strategy | fraction | skill (bias + timing) | scratch (bias + timing) | "
             "delta bias | delta timing |", "|---|---|---|---|---|---|---|"]
    for x in t.to_dict("records"):
        s = sc.loc[(x["pair"], x["fraction"])]
        lines.append(f"| {x['pair']} | {x['strategy']} | {x['fraction']:g} | {x['test_skill']:+.3f} "
                     f"({x['test_skill_bias']:+.3f} {x['test_skill_timing']:+.3f}) | {s['test_skill']:+.3f} "
                     f"({s['test_skill_bias']:+.3f} {s['test_skill_timing']:+.3f}) | "
                     f"{x['test_skill_bias'] - s['test_skill_bias']:+.3f} | "
                     f"{x['test_skill_timing'] - s['test_skill_timing']:+.3f} |")
    return "\n".join(lines)


def _bold(verdict: str) -> str:
    return f"**{verdict}**" if verdict in ("positive", "negative") else verdict


# ----------------------------------------------------------------------- regimes


def regime_of_days(days: pd.DataFrame, spec: StudySpec, store: Store) -> pd.Series:
    """``high_vol`` / ``low_vol`` per day row: the target's trailing 20-day realised vol on that
    date against its median over the dates before the fold's first test day."""
    out = pd.Series("", index=days.index, dtype=object)
    for target, g in days.groupby("target"):
        fm = build_features(store.load(str(target)).frame, spec.task.target_type, spec.task.horizon)
        rv = pd.Series(fm.data["volatility.rv_20"].to_numpy(), index=pd.to_datetime(fm.data["date"]))
        for _, gf in g.groupby("fold"):
            dates = pd.to_datetime(gf["date"])
            thr = float(np.median(rv[rv.index < dates.min()]))
            out.loc[gf.index] = np.where(rv.reindex(dates).to_numpy() > thr, "high_vol", "low_vol")
    return out


def regimes_table(study: Path, fractions: list[float] | None, store: Store) -> str:
    days = pd.read_parquet(study / "predictions.parquet")
    res = pd.read_parquet(study / "results.parquet")
    if fractions:
        days = days[days["fraction"].isin(fractions)]
    days = days.assign(regime=regime_of_days(days, _spec(study), store))
    lines = ["| regime | target | strategy | fraction | days | score | vs scratch [95%] | verdict | "
             "best baseline | vs baseline [95%] |", "|---|---|---|---|---|---|---|---|---|---|"]
    for regime in ("low_vol", "high_vol"):
        v = verdicts(res, days[days["regime"] == regime].drop(columns="regime"))
        v = v[(v["chain"] == "direct") & (v["dann_weight"] == 0)]
        v = v.assign(o=v["strategy"].map(ORDER)).sort_values(["target", "fraction", "o"])
        for r in v.to_dict("records"):
            vs = "" if r["strategy"] == "scratch" else \
                f"{r['delta']:+.4f} [{r['delta_ci_low']:+.4f}, {r['delta_ci_high']:+.4f}]"
            lines.append(f"| {regime} | {r['target']} | {r['strategy']} | {r['fraction']:g} | {r['n_days']} | "
                         f"{r['test_score']:+.4f} | {vs} | {r['verdict']} | {r['best_baseline']} | "
                         f"{r['delta_vs_baseline']:+.4f} [{r['delta_vs_baseline_ci_low']:+.4f}, "
                         f"{r['delta_vs_baseline_ci_high']:+.4f}] |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", choices=["verdicts", "sizing", "lr", "families", "regimes", "pooled", "comparisons",
                                          "skill"])
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--fractions", default="", help="regimes: only these fractions (comma-separated)")
    ap.add_argument("--store", type=Path, default=None, help="market store (default: XFER_HOME)")
    ap.add_argument("--versus", default="scratch", help="pooled: scratch, scratch_full or a baseline (har_rv...)")
    args = ap.parse_args(argv)
    need = {"verdicts": "verdicts.parquet", "sizing": "sizing.parquet", "lr": "optuna.journal", "families": "results.parquet",
            "regimes": "predictions.parquet", "pooled": "pooled.parquet",
            "comparisons": "comparisons.parquet", "skill": "results.parquet"}[args.table]
    if not (args.study_dir / need).is_file() or not (args.study_dir / "spec.json").is_file():
        print(f"error: {args.study_dir}: not a finished study directory (needs spec.json and {need})", file=sys.stderr)
        return 2
    if args.table == "verdicts":
        print(verdicts_table(args.study_dir))
    elif args.table == "sizing":
        print(sizing_table(args.study_dir))
    elif args.table == "lr":
        print(lr_table(args.study_dir))
    elif args.table == "families":
        print(families_table(args.study_dir))
    elif args.table == "pooled":
        print(pooled_table(args.study_dir, args.versus))
    elif args.table == "comparisons":
        print(comparisons_table(args.study_dir))
    elif args.table == "skill":
        print(skill_table(args.study_dir))
    else:
        fr = [float(x) for x in args.fractions.split(",") if x.strip()]
        print(regimes_table(args.study_dir, fr or None, Store(args.store) if args.store else Store()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
