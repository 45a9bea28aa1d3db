"""``xfer report``: a study's self-contained HTML report (and optionally a W&B Report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xfer.cli._common import _study_path, out
from xfer.errors import XferInputError


# Registered as `xfer report` in xfer/cli/__init__.py.
def report_cmd(
    study_dir: Annotated[str, typer.Argument(help="Study directory or object-store URI.")],
    to_wandb: Annotated[bool, typer.Option("--wandb", help="Also publish a W&B Report (needs an API key and network).")] = False,
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Also write each of the report's figures as a PNG file in this directory.")] = None,
) -> None:
    """Write the study's self-contained HTML report (and optionally a W&B Report)."""
    from xfer.report.html import write_report
    from xfer.study.runner import open_study

    loc = open_study(_study_path(study_dir), "STUDY_DIR")  # a URI: a local copy to read
    study_dir = loc.local
    if not (study_dir / "results.parquet").is_file():
        raise XferInputError(file=str(loc), field="STUDY_DIR", expected="a study directory with results.parquet",
                             found="no results.parquet")
    if figures is not None and figures.exists() and not figures.is_dir():
        raise XferInputError(file=figures, field="--figures", expected="a directory (made if missing)",
                             found="an existing file")
    path = write_report(study_dir, figures=figures)
    loc.push(path)
    out.print(f"wrote {loc.uri + '/' + path.name if loc.remote else path}", highlight=False)
    if figures is not None:
        out.print(f"wrote {len(list(figures.glob('*.png')))} figure(s) in {figures}", highlight=False)
    if to_wandb:
        from xfer.study.runner import _load_spec
        from xfer.tracking.wandb_report import publish_report

        spec = _load_spec(study_dir)
        url = publish_report(study_dir, project=spec.tracking.project, entity=spec.tracking.entity)
        out.print(f"published {url}", highlight=False)
