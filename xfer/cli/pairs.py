"""``xfer pairs``: rank candidate sources for a target before any fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from xfer.cli._common import StoreOpt, _pydantic_message, _split_ids, _store, err, out
from xfer.errors import XferInputError
from xfer.io import write_parquet, write_text

app = typer.Typer(help="Market pairs: rank candidate sources for a target before any fine-tuning.",
                  no_args_is_help=True)


@app.command("screen")
def pairs_screen(
    sources: Annotated[list[str], typer.Argument(help="Candidate sources: market ids or @groups (each one a candidate).")],
    target: Annotated[str, typer.Option("--target", help="Target market id.")],
    target_type: Annotated[str, typer.Option("--target-type", help="volatility or return.")] = "volatility",
    horizon: Annotated[int | None, typer.Option(help="Label horizon in days.")] = None,
    folds: Annotated[int, typer.Option(help="Walk-forward test folds (the statistics use rows before the first).")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array, one object per candidate.")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the table to this .csv or .parquet file.")] = None,
    store: StoreOpt = None,
) -> None:
    """Rank candidate sources for a target from cheap statistics on the training windows only:
    feature-distribution distance, similarity of the feature -> label ridge fits, the source's
    ridge on the target, a domain probe and the source's own skill (xfer/experiment/screen.py)."""
    from xfer.data.splits import SplitSpec
    from xfer.experiment.check import check
    from xfer.experiment.run import TransferConfig
    from xfer.experiment.screen import screen

    if target_type not in ("volatility", "return"):
        raise XferInputError(field="--target-type", expected="volatility or return", found=repr(target_type))
    if out_file is not None and out_file.suffix not in (".csv", ".parquet"):
        raise XferInputError(file=out_file, field="--out", expected="a .csv or .parquet file", found=repr(out_file.suffix))
    st = _store(store)
    names = _split_ids(sources)
    try:
        base = TransferConfig(source=(names[0],), target=target, target_type=target_type, horizon=horizon,
                              split=SplitSpec(n_folds=folds))
    except ValidationError as exc:
        raise XferInputError(field="xfer pairs screen", expected="valid options", found=_pydantic_message(exc)) from None
    for name in names:  # every candidate checked before any compute
        check(base.model_copy(update={"source": (name,)}), st)
    try:
        table = screen(names, base, st)
    except ValueError as exc:
        raise XferInputError(field="SOURCES", expected="sources with history before the target's first test period",
                             found=str(exc)) from None
    if out_file is not None:
        if out_file.suffix == ".parquet":
            write_parquet(table, out_file)
        else:
            write_text(out_file, table.to_csv(index=False))
    if as_json:
        print(json.dumps(table.to_dict("records"), indent=2))
        return
    t = Table(title=f"candidate sources for {target} ({target_type}), most promising first")
    cols = ["rank", "source", "energy", "coef_cos", "zero_shot_r2", "probe_acc", "source_skill", "score"]
    for c in cols:
        t.add_column(c, justify="left" if c == "source" else "right")
    for r in table.to_dict("records"):
        t.add_row(*[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    out.print(t)
    err.print("energy: feature-distribution distance (lower is closer); coef_cos: cosine of the feature -> label "
              "ridge coefficients; zero_shot_r2: the source's ridge on the target's training rows; probe_acc: a "
              "classifier telling the markets apart (0.5 = indistinguishable); source_skill: the source ridge's "
              "validation R^2; score: mean rank. How well this predicts measured transfer: RESULTS.md.",
              highlight=False)

