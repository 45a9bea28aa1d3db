"""xfer.report: the self-contained local HTML report of a study directory."""

from xfer.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
