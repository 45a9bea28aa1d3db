"""Experiment tracking: Weights & Biases runs for studies, an offline reader, a W&B Report.

Importing this package is cheap: wandb, pandas and wandb-workspaces are imported only by the
functions that need them. See :mod:`xfer.tracking.wandb_log` for where files land.
"""

from __future__ import annotations

from xfer.tracking.offline import OfflineRun, find_runs, read_run, read_table
from xfer.tracking.wandb_log import (
    CellRun,
    has_api_key,
    log_study_summary,
    resolve_mode,
    resolve_study_mode,
    shutdown,
    study_group,
    verdict_matrix,
)
from xfer.tracking.wandb_report import build_report, publish_report

__all__ = [
    "CellRun",
    "OfflineRun",
    "build_report",
    "find_runs",
    "has_api_key",
    "log_study_summary",
    "publish_report",
    "read_run",
    "read_table",
    "resolve_mode",
    "resolve_study_mode",
    "shutdown",
    "study_group",
    "verdict_matrix",
]
