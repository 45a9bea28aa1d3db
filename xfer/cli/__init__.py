"""The ``xfer`` command.

Every command turns bad input into one line on stderr naming the file, the field, what was
expected and what was found, and exits with status 2 (1 for unexpected failures).

One module per command group: ``data``, ``transfer``, ``pairs``, ``study`` and ``report``;
what they share (consoles, the store, option types, messages) is in ``_common``. Heavy
imports (torch, Ray, ...) stay inside the commands: ``xfer --help`` starts fast.
"""

from __future__ import annotations

import typer

from xfer.cli import _common, data, pairs, report, study, transfer

app = typer.Typer(
    help="Transfer-learning studies between financial markets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The order of registration is the order of `xfer --help` (commands first, then groups).
app.add_typer(data.app, name="data")
app.command("transfer")(transfer.transfer)
app.add_typer(pairs.app, name="pairs")
app.add_typer(study.app, name="study")
app.command("report")(report.report_cmd)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning bad input into a clear non-zero exit."""
    _common.run(app, argv)


__all__ = ["app", "main"]
