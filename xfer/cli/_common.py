"""What every command group of ``xfer`` shares: the consoles, the store, option types, messages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from xfer.errors import XferInputError

# Piped output (CI logs, `| less`) gets a wide console instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, soft_wrap=True)

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Store directory (default: $XFER_HOME or ~/.xfer)."),
]


def _store(root: Path | None) -> Any:
    from xfer.data.store import Store

    return Store(root)


def _pydantic_message(exc: ValidationError, file: str | None = None) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{file + ': ' if file else ''}{loc}: {e['msg']} (found {e.get('input')!r})")
    return "; ".join(parts)


def _split_ids(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _study_path(study_dir: str) -> str | Path:
    """STUDY_DIR / --out as given: an object-store URI stays a string (a Path folds its ``//``)."""
    from xfer.study.storage import is_uri

    return study_dir if is_uri(study_dir) else Path(study_dir)


def _frac(f: object) -> str:
    """A required fraction: ``0.35``, ``not reached`` (inf) or ``-`` (missing)."""
    if not isinstance(f, float | int) or f != f:
        return "-"
    return "not reached" if f == float("inf") else f"{f:g}"


def run(app: typer.Typer, argv: list[str] | None) -> None:
    """Run ``app`` as ``xfer``, turning bad input into one line on stderr and exit status 2."""
    try:
        app(args=argv, prog_name="xfer")
    except XferInputError as exc:  # escaped: a value such as name "[/]" is not rich markup
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except ValidationError as exc:
        err.print(f"[bold red]error:[/] {escape(_pydantic_message(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (FileExistsError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
