"""The result tables: a contract other tools read (pandas, polars or DuckDB; no xfer needed).

The tables are computed once, by :mod:`xfer.evaluate.tables`, for ``xfer transfer`` and studies
alike; a study directory holds them as Parquet files:

    <study_dir>/
      study.yaml            the spec as submitted (resume reads it)
      spec.json             the resolved spec (validated, defaults filled in)
      results.parquet       one row per final fit            (RESULTS_COLUMNS at least)
      predictions.parquet   one row per test day of every final fit and baseline (PREDICTION_COLUMNS)
      verdicts.parquet      one row per cell vs scratch      (VERDICT_COLUMNS)
      curves.parquet        data-sizing curve points         (CURVE_COLUMNS)
      sizing.parquet        required fraction per strategy   (SIZING_COLUMNS)
      comparisons.parquet   chain vs direct, DANN vs none    (COMPARISON_COLUMNS)
      pooled.parquet        effects pooled across targets    (POOLED_COLUMNS)
      cells/<cell_id>.parquet   the rows of one finished cell (results.parquet = their union)
      days/<cell_id>.parquet    the test days of one finished cell (predictions.parquet = their union)
      cells/corrupt/, days/corrupt/  unreadable cell files set aside by a resume (the cell was rerun)
      optuna.journal        Optuna JournalStorage: every search, optuna-dashboard-able; an interrupted
                            cell's partial search is renamed <cell_id>~interrupted-<n> (the cell reran)
      wandb/                W&B run files (offline unless an API key is set); one run per cell
      wandb-interrupted/    runs of interrupted cell attempts, set aside when the cell reran
      report.html           self-contained report

Conventions: ``chain`` is ``"direct"`` or the intermediate market ids joined by ``">"``;
``pair`` is ``"<source>-><target>"`` with sources comma-joined; ``dann_weight`` is the grid
setting, 0.0 (off) or 1.0 (on), so a DANN strategy is one curve whatever weight its search
chose (the chosen weight is ``dann_weight_chosen`` in results.parquet); "scratch at full data"
(sizing) means scratch at the largest fraction the study ran (1.0 in every shipped study); ``verdict`` is one of positive / negative / inconclusive (``baseline`` for
scratch); ``metric`` names the verdict metric (``r2_oos`` volatility, ``skill`` return; see
:mod:`xfer.evaluate.daily`), higher is better; ``val_score`` is the validation loss (MSE on the standardised label, lower is better).
"""

from __future__ import annotations

KEY_COLUMNS = ("pair", "source", "target", "chain", "strategy", "fraction", "dann_weight")

RESULTS_COLUMNS = (
    *KEY_COLUMNS, "seed", "fold", "metric", "val_score", "test_score", "cell_id", "trial_number",
    "lr", "weight_decay", "lr_ratio", "epochs", "best_epoch", "best_step", "eval_every", "n_train",
    "n_test", "test_start", "test_end", "seconds",
)
"""Plus ``test_<m>`` for every descriptive metric, ``regime_<high_vol|low_vol>_<metric>``,
``importance_<family>``, ``domain_acc``, ``domain_probe_acc`` and version columns.
``test_score`` is the mean day score (the verdict metric) over the fold's test block; ``epochs``
and ``best_epoch`` count validations, ``best_step`` is the optimiser step of the kept weights
and ``eval_every`` the steps between validations."""

PREDICTION_COLUMNS = (
    *KEY_COLUMNS, "seed", "fold", "row", "date", "horizon", "y", "pred", "score",
)
"""``predictions.parquet``: one row per test day of every final fit and of every baseline.

``row`` indexes the target's model-ready rows (the same day in every fit); ``y`` and ``pred``
are on the label's raw scale; ``score`` is the day score of the verdict metric (higher is
better; see :mod:`xfer.evaluate.daily`). Baselines (:data:`BASELINES`) have ``chain`` =
``"direct"``, ``dann_weight`` = 0 and ``seed`` = 0; they depend only on (target, fraction, fold)."""

BASELINES = {"volatility": ("har_rv", "ewma"), "return": ("zero", "ridge")}
"""The practitioner's simple models, fitted on exactly the rows scratch trains on."""

VERDICT_COLUMNS = (
    *KEY_COLUMNS, "metric", "test_score", "scratch_score", "delta", "delta_ci_low", "delta_ci_high",
    "p_value", "p_adjusted", "adjustment", "n_comparisons", "verdict", "detectable_effect",
    "n_days", "n_seeds", "block_length", "best_baseline", "best_baseline_score", "delta_vs_baseline",
    "delta_vs_baseline_ci_low", "delta_vs_baseline_ci_high", "beats_baseline",
)
"""Plus ``baseline_<name>_score`` for each of the target's :data:`BASELINES`.

``delta`` = cell minus scratch, paired day by day (seed-averaged, walk-forward test blocks
pooled); ``delta_ci_*`` is its unadjusted 95% interval, ``p_value`` the matching two-sided
p-value, ``p_adjusted`` the multiplicity-adjusted one (``adjustment``: ``holm`` over the
``n_comparisons`` non-scratch rows of the table), and ``verdict`` reads ``p_adjusted`` at 5%.
``detectable_effect`` is the |delta| this design finds with 80% power after the table's
adjustment (Holm's strictest step, 5% / ``n_comparisons``): an inconclusive row says "no effect
as large as this", nothing about smaller ones. ``beats_baseline`` is whether ``delta_vs_baseline`` (cell minus its best
baseline, paired) is above 0; scratch rows have the same baseline columns."""

CURVE_COLUMNS = ("pair", "source", "target", "chain", "strategy", "dann_weight", "fraction", "metric",
                 "mean", "ci_low", "ci_high", "n")
"""``ci_*``: a 90% day-level block-bootstrap band; ``n``: test days. Baselines get curves too."""
SIZING_COLUMNS = ("pair", "source", "target", "chain", "strategy", "dann_weight", "metric",
                  "required_fraction", "ci_low", "ci_high", "reached_share", "rule_of_thumb")
COMPARISON_COLUMNS = ("pair", "kind", "variant", "baseline", "strategy", "fraction", "metric", "delta",
                      "delta_ci_low", "delta_ci_high", "p_value", "p_adjusted", "verdict",
                      "detectable_effect", "n_days")
"""``kind`` is ``chain_vs_direct`` (variant = the chain) or ``dann_vs_none`` (variant = the
DANN weight as text); ``delta`` is variant minus baseline, paired day by day and seed by seed;
``p_adjusted`` is Holm over the comparisons table."""

POOLED_COLUMNS = ("group", "strategy", "fraction", "dann_weight", "versus", "metric", "n_targets", "targets",
                  "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "verdict", "tau2", "pi_low",
                  "pi_high", "detectable_effect", "df")
"""``pooled.parquet``: per target group (``all``, and each asset class with 3 or more targets),
strategy, fraction and DANN setting, the random-effects pooled paired difference against
``versus`` (``scratch`` at the same fraction, ``scratch_full`` at the largest fraction: the
data-sizing question, or a practitioner baseline) over the study's
direct pairs (:func:`xfer.evaluate.pooled.pooled_effect`): ``estimate`` the mean target's
effect with its interval, ``tau2`` the between-target variance, ``pi_low``/``pi_high`` the 95%
prediction interval for a new target of the group; ``p_adjusted`` is Holm within each
``versus`` (one family per question) and ``detectable_effect`` the effect found with 80% power
at that family's Bonferroni level (an upper bound of Holm's); ``targets`` the comma-joined target ids."""

TABLE_COLUMNS = {"results": RESULTS_COLUMNS, "predictions": PREDICTION_COLUMNS, "verdicts": VERDICT_COLUMNS,
                 "curves": CURVE_COLUMNS, "sizing": SIZING_COLUMNS, "comparisons": COMPARISON_COLUMNS,
                 "pooled": POOLED_COLUMNS}

RULE_OF_THUMB = {"head_only": "10-20%", "partial": "30-50%", "full": "60-80%"}
"""The seed article's data-sizing rules, shown beside the measured required fractions."""

STRATEGY_ORDER = ("scratch", "head_only", "partial", "full")
"""Display order of the article's strategies in tables and reports (others follow, by name)."""
