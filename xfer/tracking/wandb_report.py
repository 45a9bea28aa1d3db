"""A W&B Report of a study, laid out for a reviewer, built offline and saved only on request.

Why build and publish separately: the report object is made from the study directory alone
(parquet files plus the local run logs), so it can be built and inspected in tests and on
machines without credentials; only :func:`publish_report` talks to the W&B server.

Layout: overview (study, pairs, grid, counts) → verdict matrix → required data vs the rule of
thumb → the summary run's curves and tables → the cell runs' metrics → chain vs direct →
DANN vs none → links to every run. Panel grids select runs by the study's W&B group, so a
report keeps working when a resumed study adds runs.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from xfer.errors import XferInputError
from xfer.tracking.offline import OfflineRun, find_runs, read_run
from xfer.tracking.wandb_log import (
    curve_key,
    has_api_key,
    read_study_frames,
    sizing_table,
    strategy_sort_key,
    study_counts,
    study_group,
    verdict_matrix,
)

if TYPE_CHECKING:
    import pandas as pd
    from wandb_workspaces.reports.v2 import interface as wr

TITLE_MAX = 128
"""W&B rejects report titles longer than this."""

MAX_RUN_LINKS = 200
"""Links listed in the Runs section; the group link covers the rest."""


# --------------------------------------------------------------------------- formatting


def _cell(value: Any) -> str:
    """Markdown-safe text of one table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pct(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{x:.0%}" if math.isfinite(x) else ""


def _signed(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{x:+.3f}" if math.isfinite(x) else ""


def _p(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(x):
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _half_width(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    return f"±{x:.3f}" if math.isfinite(x) else ""


def _markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join(" --- " for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict_markdown(verdicts: pd.DataFrame) -> str:
    """The verdict matrix as a markdown table: pair | chain | fraction | one column per strategy."""
    matrix = verdict_matrix(verdicts)
    strategies = [c for c in matrix.columns if c not in ("pair", "chain", "fraction")]
    rows = [
        [r["pair"], r["chain"], _pct(r["fraction"]), *(r[s] for s in strategies)]
        for _, r in matrix.iterrows()
    ]
    return _markdown_table(["pair", "chain", "target data", *strategies], rows)


def sizing_markdown(sizing: pd.DataFrame) -> str:
    """Required target-data fraction per strategy, beside the article's rule of thumb."""
    s = sizing_table(sizing)
    rows = []
    for _, r in s.iterrows():
        required = _pct(r.get("required_fraction"))
        ci = (
            f" [{_pct(r.get('ci_low'))}, {_pct(r.get('ci_high'))}]"
            if required and _pct(r.get("ci_low")) and _pct(r.get("ci_high"))
            else ""
        )
        dann = r.get("dann_weight")
        strategy = str(r["strategy"])
        if isinstance(dann, int | float) and math.isfinite(dann) and dann:
            strategy += f" (DANN {dann:g})"
        rows.append(
            [
                r["pair"],
                r["chain"],
                strategy,
                (required + ci) if required else "not reached",
                r.get("rule_of_thumb") or "",
                _pct(r.get("reached_share")),
            ]
        )
    return _markdown_table(
        ["pair", "chain", "strategy", "required fraction [CI]", "rule of thumb", "reached in"],
        rows,
    )


def comparison_markdown(comparisons: pd.DataFrame, kind: str) -> str | None:
    """Chain-vs-direct or DANN-vs-none rows as markdown, or None if the study has none."""
    c = (
        comparisons[comparisons["kind"] == kind]
        if "kind" in comparisons.columns
        else comparisons[:0]
    )
    if c.empty:
        return None
    variant = "chain" if kind == "chain_vs_direct" else "DANN weight"
    rows = [
        [
            r["pair"],
            r["variant"],
            r["baseline"],
            r["strategy"],
            _pct(r["fraction"]),
            f"{_signed(r['delta'])} [{_signed(r['delta_ci_low'])}, {_signed(r['delta_ci_high'])}]",
            _p(r["p_adjusted"]),
            _half_width(r["detectable_effect"]),
            r["verdict"],
            r["n_days"],
        ]
        for _, r in c.sort_values(["pair", "variant", "strategy", "fraction"]).iterrows()
    ]
    return _markdown_table(
        [
            "pair",
            variant,
            "baseline",
            "strategy",
            "target data",
            "delta [95% CI]",
            "p (Holm)",
            "detectable effect",
            "verdict",
            "test days",
        ],
        rows,
    )


def _adjustment_phrase(
    verdicts: pd.DataFrame | None, counts: dict[str, int], word: str = "adjusted by"
) -> str:
    """`` (Holm over 24 comparisons)``, or ``" by Holm over 24 comparisons"`` with ``word="by"``;
    empty when the verdicts do not say."""
    if verdicts is None or "adjustment" not in verdicts.columns or "n_comparisons" not in counts:
        return ""
    names = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
    methods = sorted({names.get(str(a), str(a)) for a in verdicts["adjustment"].dropna()})
    if not methods:
        return ""
    text = f"{', '.join(methods)} over {counts['n_comparisons']} comparisons"
    return f" {word} {text}" if word == "by" else f" ({word} {text})"


# --------------------------------------------------------------------------- runs and links


def app_url() -> str:
    """The W&B web app for ``WANDB_BASE_URL`` (``api.wandb.ai`` → ``wandb.ai``)."""
    base = (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").rstrip("/")
    return base.replace("://api.wandb.ai", "://wandb.ai")


def _local_runs(study_dir: Path) -> list[OfflineRun]:
    """The study's runs as logged locally (offline, or wandb's copy of online runs)."""
    runs = []
    for path in find_runs(study_dir / "wandb", include_online=True):
        try:
            runs.append(read_run(path))
        except XferInputError as exc:
            warnings.warn(
                f"skipping unreadable W&B run {path}: {exc}", RuntimeWarning, stacklevel=3
            )
    return runs


def _runs_markdown(runs: Sequence[OfflineRun], *, entity: str, project: str, group: str) -> str:
    base = f"{app_url()}/{quote(entity)}/{quote(project)}"
    lines = [
        f"All runs of the study: [group {group}]({base}/groups/{quote(group, safe='')}). "
        "Runs logged offline appear once uploaded with `wandb sync <study_dir>/wandb`.",
        "",
    ]
    ordered = sorted(runs, key=lambda r: (r.job_type != "summary", r.name))
    for run in ordered[:MAX_RUN_LINKS]:
        label = (run.name or run.run_id).replace("[", "(").replace("]", ")")
        lines.append(f"- [{label}]({base}/runs/{quote(run.run_id)}) ({run.job_type or 'run'})")
    if len(ordered) > MAX_RUN_LINKS:
        lines.append(f"- … and {len(ordered) - MAX_RUN_LINKS} more in the group")
    if not ordered:
        lines.append("- no local runs found under the study's wandb/ folder")
    return "\n".join(lines)


def _grid_lines(frames: dict[str, pd.DataFrame]) -> list[str]:
    source = next((frames[k] for k in ("verdicts", "results", "curves") if k in frames), None)
    if source is None:
        return []
    lines = []
    for col, label, fmt in (
        ("pair", "pairs", str),
        ("chain", "chains", str),
        ("strategy", "strategies", str),
        ("fraction", "target-data fractions", _pct),
        ("dann_weight", "DANN weights", lambda v: f"{float(v):g}"),
    ):
        if col in source.columns:
            values = list(source[col].dropna().unique())
            values.sort(key=strategy_sort_key if col == "strategy" else lambda v: (str(type(v)), v))
            lines.append(f"- **{label}**: {', '.join(fmt(v) for v in values)}")
    results = frames.get("results")
    if results is not None and {"seed", "fold"} <= set(results.columns):
        lines.append(
            f"- **repeats**: {results['seed'].nunique()} seeds × {results['fold'].nunique()} folds"
        )
    return lines


# --------------------------------------------------------------------------- the report


def build_report(
    study_dir: Path,
    *,
    project: str,
    entity: str,
    title: str | None = None,
    group: str | None = None,
    cell_metrics: Sequence[str] = ("val_score",),
) -> wr.Report:
    """Build (never save) a W&B Report of the study; see the module docstring for the layout.

    ``group`` defaults to the group of the study's local summary run, else :func:`study_group`.
    ``cell_metrics`` are the history keys the cell runs log, one line plot each. ``entity`` is
    required because wandb-workspaces would otherwise ask the server for the default entity.
    """
    with warnings.catch_warnings():
        # wandb-workspaces still uses pydantic-v1 validators; its warnings are not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        from wandb_workspaces import expr
        from wandb_workspaces.reports.v2 import interface as wr

    study_dir = Path(study_dir)
    frames = read_study_frames(study_dir)
    runs = _local_runs(study_dir)
    summary_runs = [r for r in runs if r.job_type == "summary"]
    name = study_group(study_dir)
    group = group or (summary_runs[-1].group if summary_runs else "") or name
    title = (title or f"xfer study: {name}")[:TITLE_MAX]

    verdicts = frames.get("verdicts")
    pairs = sorted(verdicts["pair"].unique()) if verdicts is not None else []
    counts = study_counts(study_dir, frames)
    description = (
        f"Transfer-learning study {name} (W&B group {group}): "
        f"{len(pairs)} pair(s){': ' + ', '.join(pairs) if pairs else ''}; "
        f"{counts['n_cells']} cells, {counts['n_fits']} fits"
    )
    if "n_verdicts" in counts:
        description += (
            f"; {counts['n_positive']} positive ({counts['n_positive_below_baseline']} of them "
            f"below the best baseline), {counts['n_negative']} negative, "
            f"{counts['n_inconclusive']} inconclusive of {counts['n_verdicts']} verdicts"
            f"{_adjustment_phrase(verdicts, counts)}"
        )

    def runset(label: str, job_type: str) -> wr.Runset:
        return wr.Runset(
            entity=entity,
            project=project,
            name=label,
            filters=expr.And(expr.Metric("Group") == group, expr.Metric("JobType") == job_type),
        )

    blocks: list[Any] = [
        wr.TableOfContents(),
        wr.MarkdownBlock(
            text="\n".join(
                [
                    f"**Study** `{name}` · W&B group `{group}` · project `{entity}/{project}`",
                    "",
                    *_grid_lines(frames),
                    "",
                    "A verdict compares a transfer cell with training from scratch on the "
                    "target market: *delta* is the expected per-day difference of the verdict "
                    "metric (higher is better) between the cell and scratch on the target's "
                    "test days, paired day by day and seed by seed; its 95% interval comes from "
                    "a long-run variance of the day differences (equally-weighted cosine) plus "
                    "the seeds' variance, Student t (calibrated: CALIBRATION.md). The verdict is positive / negative when the "
                    f"p-value adjusted{_adjustment_phrase(verdicts, counts, 'by')} is below 5%, "
                    "inconclusive otherwise. *below <baseline>* marks a positive cell that "
                    "does not beat the best practitioner baseline (HAR-RV / EWMA for "
                    "volatility, zero / ridge for returns) fitted on scratch's rows.",
                ]
            )
        ),
        wr.H2(text="Verdicts"),
    ]
    if verdicts is not None and not verdict_matrix(verdicts).empty:
        blocks.append(wr.MarkdownBlock(text=verdict_markdown(verdicts)))
    else:
        blocks.append(wr.P(text="No verdicts yet: verdicts.parquet is missing or empty."))

    blocks.append(wr.H2(text="How much target data is needed"))
    if "sizing" in frames and not frames["sizing"].empty:
        blocks.append(
            wr.P(
                text="The smallest target-data fraction at which each strategy reaches its "
                "full-data score, beside the seed article's rule of thumb."
            )
        )
        blocks.append(wr.MarkdownBlock(text=sizing_markdown(frames["sizing"])))
    else:
        blocks.append(wr.P(text="No sizing results: sizing.parquet is missing or empty."))

    summary_panels: list[Any] = []
    if "curves" in frames:
        for pair, chain in sorted(
            {
                (str(p), str(c))
                for p, c in zip(frames["curves"]["pair"], frames["curves"]["chain"], strict=True)
            }
        ):
            summary_panels.append(
                wr.CustomChart(
                    query={"summaryTable": {"tableKey": f"{curve_key(pair, chain)}_table"}},
                    chart_name="wandb/lineseries/v0",
                    chart_fields={"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
                    chart_strings={"title": f"{pair} ({chain})", "xname": "fraction"},
                )
            )
    summary_panels += [
        wr.WeavePanelSummaryTable(table_name="verdict_matrix", layout=wr.Layout(w=24, h=10)),
        wr.WeavePanelSummaryTable(table_name="sizing", layout=wr.Layout(w=24, h=8)),
        wr.ScalarChart(title="positive verdicts", metric=wr.SummaryMetric("n_positive")),
        wr.ScalarChart(title="negative verdicts", metric=wr.SummaryMetric("n_negative")),
        wr.ScalarChart(title="inconclusive", metric=wr.SummaryMetric("n_inconclusive")),
        wr.ScalarChart(
            title="positive but below baseline",
            metric=wr.SummaryMetric("n_positive_below_baseline"),
        ),
    ]
    blocks += [
        wr.H2(text="Data-sizing curves and tables"),
        wr.PanelGrid(runsets=[runset("summary run", "summary")], panels=summary_panels),
        wr.H2(text="Cell runs"),
        wr.PanelGrid(
            runsets=[runset("cell runs", "cell")],
            panels=[wr.LinePlot(title=m, x="Step", y=[m]) for m in cell_metrics]
            + [
                wr.BarPlot(
                    title="test score by strategy",
                    metrics=[wr.SummaryMetric("test_score")],
                    groupby=wr.Config("strategy"),
                    groupby_aggfunc="mean",
                    groupby_rangefunc="stderr",
                )
            ],
        ),
    ]

    comparisons = frames.get("comparisons")
    for kind, heading, absent in (
        ("chain_vs_direct", "Chain vs direct", "No chained transfers in this study."),
        ("dann_vs_none", "DANN vs none", "No DANN variants in this study."),
    ):
        blocks.append(wr.H2(text=heading))
        table = comparison_markdown(comparisons, kind) if comparisons is not None else None
        blocks.append(wr.MarkdownBlock(text=table) if table else wr.P(text=absent))

    blocks += [
        wr.H2(text="Runs"),
        wr.MarkdownBlock(text=_runs_markdown(runs, entity=entity, project=project, group=group)),
    ]
    return wr.Report(
        project=project, entity=entity, title=title, description=description, blocks=blocks
    )


def publish_report(
    study_dir: Path, *, project: str, entity: str | None, title: str | None = None
) -> str:
    """Build the report and save it to W&B; returns its URL.

    The runs it shows must be on the server: upload offline runs first with
    ``wandb sync <study_dir>/wandb``.

    Raises:
        XferInputError: no W&B API key is configured (checked before any network call).
    """
    if not has_api_key():
        raise XferInputError(
            field="wandb",
            expected="a W&B API key to publish a report (WANDB_API_KEY, or `wandb login`)",
            found="no key configured",
            hint="the runs are in <study_dir>/wandb; upload them with `wandb sync` once logged in",
        )
    if not entity:
        import wandb

        entity = wandb.Api().default_entity
        if not entity:
            raise XferInputError(
                field="wandb.entity",
                expected="a W&B entity (user or team)",
                found="none given and the API key has no default entity",
            )
    report = build_report(study_dir, project=project, entity=entity, title=title)
    report.save()
    return str(report.url)
