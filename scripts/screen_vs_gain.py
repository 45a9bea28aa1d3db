"""Does the pre-screen predict the measured transfer gain? One study directory in, one table out.

    python scripts/screen_vs_gain.py STUDY_DIR [--strategies head_only,full] [--boot 2000] [--out FILE.csv]

For every pair of the study (``studies/findings/screen_pairs.yaml`` is made for it) the measured
gain is the paired day-level delta of the transfer cells against scratch (``verdicts.parquet``),
averaged over ``--strategies`` and the study's fractions. The screen (:func:`xfer.experiment.screen.screen`)
runs on the same pairs with the study's task and split, each target's sources ranked together
(the study's own ``screen.parquet`` when it ran with ``screen: true``).

Printed (markdown, ready for RESULTS.md): per pair its gain with its interval and the screen's
statistics; then, per statistic and for the combined score, the rank correlation with the gain
within each target (Spearman, pooled over targets weighted by pairs) with a bootstrap interval
that resamples each target's sources with replacement, and how many targets' top-ranked source
is the measured best.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from xfer.data.store import Store
from xfer.experiment.screen import STATISTICS
from xfer.study.results import SCREEN_FILE, screen_pairs
from xfer.study.spec import StudySpec

SIGN = {**{k: 1.0 if hi else -1.0 for k, hi in STATISTICS.items()}, "score": -1.0}
"""Sign that makes each statistic 'higher = more promising' (probe_acc: -|acc - 0.5| instead)."""


def gains(study: Path, strategies: list[str]) -> pd.DataFrame:
    v = pd.read_parquet(study / "verdicts.parquet")
    v = v[v["strategy"].isin(strategies) & (v["chain"] == "direct") & (v["dann_weight"] == 0)]
    return (v.groupby(["source", "target"], as_index=False)
             .agg(gain=("delta", "mean"), gain_low=("delta_ci_low", "mean"), gain_high=("delta_ci_high", "mean"),
                  verdicts=("verdict", lambda s: ",".join(sorted(set(s))))))


def _value(frame: pd.DataFrame, stat: str) -> np.ndarray:
    """The statistic turned 'higher = more promising'."""
    x = frame[stat].to_numpy(float)
    return -np.abs(x - 0.5) if stat == "probe_acc" else SIGN[stat] * x


def within_spearman(frame: pd.DataFrame, stat: str) -> float:
    """Spearman of the statistic with the gain inside each target, averaged with weights n - 1."""
    rs, ws = [], []
    for _, g in frame.groupby("target"):
        if len(g) >= 3 and g["gain"].nunique() > 1 and np.ptp(_value(g, stat)) > 0:
            rs.append(stats.spearmanr(_value(g, stat), g["gain"]).statistic)
            ws.append(len(g) - 1)
    return float(np.average(rs, weights=ws)) if rs else float("nan")


def boot_interval(frame: pd.DataFrame, stat: str, n_boot: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    groups = [g for _, g in frame.groupby("target")]
    draws = []
    for _ in range(n_boot):
        pick = pd.concat([g.iloc[rng.integers(0, len(g), len(g))] for g in groups], ignore_index=True)
        draws.append(within_spearman(pick, stat))
    d = np.asarray(draws)
    d = d[np.isfinite(d)]
    return (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))) if d.size else (float("nan"),) * 2


def top_hits(frame: pd.DataFrame) -> tuple[int, int]:
    hits = sum(int(g.loc[g["score"].idxmin(), "source"] == g.loc[g["gain"].idxmax(), "source"])
               for _, g in frame.groupby("target"))
    return hits, frame["target"].nunique()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--strategies", default="head_only,full")
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    spec = StudySpec.model_validate_json((args.study_dir / "spec.json").read_bytes())
    g = gains(args.study_dir, args.strategies.split(","))
    saved = args.study_dir / SCREEN_FILE  # written by the study itself when it ran with screen: true
    s = pd.read_parquet(saved) if saved.is_file() else screen_pairs(spec, Store(args.store) if args.store else Store())
    frame = s.merge(g, on=["source", "target"], how="inner")
    if len(frame) != len(s):
        print(f"error: {len(s) - len(frame)} screened pair(s) have no verdicts in {args.study_dir}", file=sys.stderr)
        return 2
    if args.out:
        frame.to_csv(args.out, index=False)
    print(f"| target | source | gain (delta vs scratch) | 95% interval | verdicts | screen rank | "
          f"{' | '.join(STATISTICS)} |")
    print("|" + "---|" * (6 + len(STATISTICS)))
    for r in frame.sort_values(["target", "rank"]).to_dict("records"):
        print(f"| {r['target']} | {r['source']} | {r['gain']:+.4f} | [{r['gain_low']:+.4f}, {r['gain_high']:+.4f}] | "
              f"{r['verdicts']} | {r['rank']} | " + " | ".join(f"{r[k]:.3f}" for k in STATISTICS) + " |")
    print()
    print("| statistic | rank correlation with gain (within target) | 95% interval (sources resampled) |")
    print("|---|---|---|")
    for stat in (*STATISTICS, "score"):
        lo, hi = boot_interval(frame, stat, args.boot)
        print(f"| {stat} | {within_spearman(frame, stat):+.2f} | [{lo:+.2f}, {hi:+.2f}] |")
    hits, n = top_hits(frame)
    print(f"\nscreen's top-ranked source is the measured best for {hits} of {n} target(s); "
          f"{len(frame)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
