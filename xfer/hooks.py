"""The hooks the CLI hands a study run: W&B tracking and the HTML report.

They live at the top of the house (beside the CLI) because the study layer below must not
import tracking or the report; tests and scripts that want a full run use them too.
"""

from __future__ import annotations

from xfer.report.html import write_report
from xfer.study.runner import StudyHooks
from xfer.tracking.wandb_log import cell_tracker, resolve_study_mode, shutdown, study_summary


def default_hooks() -> StudyHooks:
    """W&B (offline unless an API key is set and the W&B host answers) per cell and per study,
    and ``report.html``."""
    return StudyHooks(resolve_mode=resolve_study_mode, cell_tracker=cell_tracker, summary=study_summary,
                      shutdown=shutdown, report=write_report)
