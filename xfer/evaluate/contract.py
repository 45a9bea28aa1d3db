"""The result tables: a contract other tools read (pandas, polars or DuckDB; no xfer needed).

The tables are computed once, by :mod:`xfer.evaluate.tables`, for ``xfer transfer`` and studies
alike; a study directory holds them as Parquet files:

    <study_dir>/
      study.yaml            the spec as submitted (resume reads it)
      spec.json             the resolved spec (validated, defaults filled in)
      results.parquet       one row per final fit            (RESULTS_COLUMNS at least)
      verdicts.parquet      one row per cell vs scratch      (VERDICT_COLUMNS)
      curves.parquet        data-sizing curve points         (CURVE_COLUMNS)
      sizing.parquet        required fraction per strategy   (SIZING_COLUMNS)
      comparisons.parquet   chain vs direct, DANN vs none    (COMPARISON_COLUMNS)
      cells/<cell_id>.parquet   the rows of one finished cell (results.parquet = their union)
      optuna.journal        Optuna JournalStorage: every search, resumable, optuna-dashboard-able
      wandb/                W&B run files (offline unless an API key is set)
      report.html           self-contained report

Conventions: ``chain`` is ``"direct"`` or the intermediate market ids joined by ``">"``;
``pair`` is ``"<source>-><target>"`` with sources comma-joined; ``dann_weight`` is the grid
setting, 0.0 (off) or 1.0 (on), so a DANN strategy is one curve whatever weight its search
chose (the chosen weight is ``dann_weight_chosen`` in results.parquet); "scratch at full data"
(sizing) means scratch at the largest fraction the study ran (1.0 in every shipped study); ``verdict`` is one of positive / negative / inconclusive (``baseline`` for
scratch); ``metric`` names the primary metric (``r2`` volatility, ``ic`` return), higher is
better; ``val_score`` is the validation loss (MSE on the standardised label, lower is better).
"""

from __future__ import annotations

KEY_COLUMNS = ("pair", "source", "target", "chain", "strategy", "fraction", "dann_weight")

RESULTS_COLUMNS = (
    *KEY_COLUMNS, "seed", "fold", "metric", "val_score", "test_score", "cell_id", "trial_number",
    "lr", "weight_decay", "lr_ratio", "epochs", "best_epoch", "n_train", "n_test", "test_start",
    "test_end", "seconds",
)
"""Plus ``test_<m>`` for every metric, ``regime_<high_vol|low_vol>_<metric>``,
``importance_<family>``, ``domain_acc``, ``domain_probe_acc`` and version columns."""

VERDICT_COLUMNS = (
    *KEY_COLUMNS, "metric", "test_score", "scratch_score", "delta", "delta_ci_low", "delta_ci_high",
    "verdict", "n_pairs",
)
CURVE_COLUMNS = ("pair", "source", "target", "chain", "strategy", "dann_weight", "fraction", "metric",
                 "mean", "ci_low", "ci_high", "n")
SIZING_COLUMNS = ("pair", "source", "target", "chain", "strategy", "dann_weight", "metric",
                  "required_fraction", "ci_low", "ci_high", "reached_share", "rule_of_thumb")
COMPARISON_COLUMNS = ("pair", "kind", "variant", "baseline", "strategy", "fraction", "metric", "delta",
                      "delta_ci_low", "delta_ci_high", "verdict", "n_pairs")
"""``kind`` is ``chain_vs_direct`` (variant = the chain) or ``dann_vs_none`` (variant = the
DANN weight as text); ``delta`` is variant minus baseline, paired on seed and fold."""

RULE_OF_THUMB = {"head_only": "10-20%", "partial": "30-50%", "full": "60-80%"}
"""The seed article's data-sizing rules, shown beside the measured required fractions."""

STRATEGY_ORDER = ("scratch", "head_only", "partial", "full")
"""Display order of the article's strategies in tables and reports (others follow, by name)."""
