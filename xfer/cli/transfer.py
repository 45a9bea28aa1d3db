"""``xfer transfer``: one transfer experiment against scratch, with its verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from xfer.cli._common import StoreOpt, _frac, _pydantic_message, _split_ids, _store, err, out
from xfer.errors import XferInputError
from xfer.evaluate.contract import RULE_OF_THUMB
from xfer.io import write_parquet, write_text
from xfer.transfer.strategies import all_knobs

_KNOB_HELP = "; ".join(f"{k.name} ({k.kind}, default {k.default}): {k.help}" for k in all_knobs().values())


# Registered as `xfer transfer` in xfer/cli/__init__.py (the root app's commands come first in --help).
def transfer(
    source: Annotated[list[str], typer.Option("--source", help="Source market id(s) or @group; comma-separated or repeated (pooled).")],
    target: Annotated[str, typer.Option("--target", help="Target market id.")],
    strategy: Annotated[list[str] | None, typer.Option("--strategy", help="Freeze strategy, repeatable (scratch is always added).")] = None,
    fraction: Annotated[list[float] | None, typer.Option("--fraction", help="Target-data fraction in (0, 1], repeatable.")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per cell.")] = 3,
    target_type: Annotated[str, typer.Option("--target-type", help="volatility or return.")] = "volatility",
    horizon: Annotated[int | None, typer.Option(help="Label horizon in days.")] = None,
    chain: Annotated[str | None, typer.Option(help="Intermediate markets in order, comma-separated.")] = None,
    ratio: Annotated[float, typer.Option("--ratio", help="Fine-tune LR / source LR (0.1 = 10x lower).")] = 0.1,
    source_lr: Annotated[float, typer.Option("--source-lr", help="Source (and scratch base) learning rate.")] = 1e-3,
    backbone: Annotated[str, typer.Option(help="Backbone: mlp or tcn.")] = "mlp",
    hidden: Annotated[int, typer.Option(help="Hidden width.")] = 64,
    activation: Annotated[str, typer.Option(help="Hidden nonlinearity: leaky_relu, gelu, relu or silu.")] = "leaky_relu",
    knob: Annotated[list[str] | None, typer.Option(
        "--knob", help="A strategy knob, NAME=VALUE (repeatable): " + _KNOB_HELP)] = None,
    dann_weight: Annotated[float, typer.Option("--dann-weight", help="Domain-adversarial loss weight (0 = off).")] = 0.0,
    folds: Annotated[int, typer.Option(help="Walk-forward test folds.")] = 3,
    cost_bps: Annotated[float, typer.Option("--cost-bps", help="Trading cost per unit turnover (return target).")] = 2.0,
    importance: Annotated[bool, typer.Option(help="Permutation importance per feature family.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array, one object per (strategy, fraction).")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Directory for fits.parquet and summary.json.")] = None,
    store: StoreOpt = None,
) -> None:
    """Run one transfer experiment against scratch and print the metric table with verdicts."""
    from xfer.data.splits import SplitSpec
    from xfer.experiment.run import TransferConfig, run_transfer
    from xfer.models.backbones import BackboneSpec

    if target_type not in ("volatility", "return"):
        raise XferInputError(field="--target-type", expected="volatility or return", found=repr(target_type))
    try:
        cfg = TransferConfig(
            source=tuple(_split_ids(source)), target=target,
            strategies=tuple(strategy or ("scratch", "head_only", "partial", "full")),
            fractions=tuple(fraction or (1.0,)), seeds=seeds, target_type=target_type, horizon=horizon,
            chain=tuple(_split_ids([chain])) if chain else (), lr_ratio=ratio, source_lr=source_lr,
            backbone=BackboneSpec(name=backbone, hidden=hidden, activation=activation),
            knobs=_parse_knobs(knob or []), dann_weight=dann_weight,
            split=SplitSpec(n_folds=folds), cost_bps=cost_bps, importance_repeats=2 if importance else 0,
        )
    except ValidationError as exc:
        raise XferInputError(field="xfer transfer", expected="valid options", found=_pydantic_message(exc)) from None
    from xfer.experiment.check import check
    from xfer.io import check_output_dir

    st = _store(store)
    check(cfg, st)  # markets, groups, target vs sources and chain, backbone, length: before any compute
    if out_dir is not None:
        check_output_dir(out_dir)
    res = run_transfer(cfg, st, progress=lambda m: err.print(f"[dim]{m}[/]", highlight=False))
    if out_dir is not None:
        _write_transfer(res, out_dir)
    if as_json:
        print(json.dumps(res.records(), indent=2))
        return
    base_cols = [c for c in res.table.columns if c.startswith("baseline_") and c.endswith("_score")]
    recs = res.records()
    t = Table(title=f"{','.join(cfg.source)} -> {cfg.target}{' via ' + ','.join(cfg.chain) if cfg.chain else ''} "
              f"({cfg.target_type}, metric {res.metric}, {cfg.seeds} seeds x {len(set(res.fits['fold']))} folds, "
              f"{recs[0]['n_days'] if recs else 0} test days)")
    names = [c.removeprefix("baseline_").removesuffix("_score") for c in base_cols]
    for c in ("strategy", "fraction", "scratch", *names, "test", "delta vs scratch", "95% CI", "p (Holm)",
              "+/- detectable", "verdict", "> best baseline"):
        t.add_column(c, justify="right" if c not in ("strategy", "verdict", "> best baseline") else "left")

    def num(v: Any, fmt: str = ".4f") -> str:
        return "-" if v is None else format(v, fmt)

    for r in recs:
        lo, hi = r["delta_ci_low"], r["delta_ci_high"]
        scratch = r["strategy"] == "scratch"
        beats = ("yes" if r["beats_baseline"] else "NO") + f" ({r['best_baseline']})"
        t.add_row(r["strategy"], f"{r['fraction']:g}", num(r["scratch_score"]), *[num(r[c]) for c in base_cols],
                  num(r["test_score"]), "" if scratch else num(r["delta"], "+.4f"),
                  "" if scratch else f"[{num(lo, '+.4f')}, {num(hi, '+.4f')}]",
                  "" if scratch else num(r["p_adjusted"], ".3f"),
                  "" if scratch else num(r["detectable_effect"]), r["verdict"], beats)
    out.print(t)
    n_cmp = recs[0]["n_comparisons"] if recs else 0
    err.print(f"verdicts: paired day-level test over the pooled test days and seeds (EWC long-run variance, "
              f"Student t); p-values "
              f"Holm-adjusted over the {n_cmp} comparisons of this table; a verdict reads the adjusted p at 5%. "
              f"'> best baseline': the cell's mean day score is above the best practitioner baseline's.",
              highlight=False)
    if not res.sizing.empty:
        s = Table(title="required target fraction to match scratch at full data (monotone fit, 90% joint band)")
        for c in ("strategy", "required", "interval", "first passage", "rule of thumb"):
            s.add_column(c)
        thumb = {**RULE_OF_THUMB, "scratch": "100%"}
        for r in res.sizing.to_dict("records"):
            s.add_row(r["strategy"], _frac(r.get("monotone_fraction")),
                      f"[{_frac(r.get('monotone_ci_low'))}, {_frac(r.get('monotone_ci_high'))}]",
                      _frac(r["required_fraction"]), thumb.get(r["strategy"], "-"))
        out.print(s)
    imp = [c for c in res.table.columns if c.startswith("importance_")]
    if imp:
        it = Table(title=f"permutation importance per family (drop in {res.metric}), mean over seeds and folds")
        it.add_column("strategy")
        it.add_column("fraction")
        for c in imp:
            it.add_column(c.removeprefix("importance_"))
        for r in res.table.to_dict("records"):
            it.add_row(r["strategy"], f"{r['fraction']:g}", *[f"{r[c]:+.4f}" for c in imp])
        out.print(it)
    err.print(f"took {res.timings['total_s']:.1f}s", highlight=False)


def _parse_knobs(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs to typed knob values (the registry's type decides)."""
    from xfer.transfer.strategies import all_knobs

    known = all_knobs()
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in known:
            raise XferInputError(field="--knob", expected=f"NAME=VALUE with NAME among {sorted(known)}",
                                 found=repr(item))
        kind = known[name].kind
        try:
            out[name] = (raw.lower() in ("1", "true", "yes")) if kind == "bool" else (
                int(raw) if kind == "int" else float(raw))
        except ValueError:
            raise XferInputError(field=f"--knob {name}", expected=f"a {kind}", found=repr(raw)) from None
    return out


def _write_transfer(res: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(res.fits, out_dir / "fits.parquet")
    write_parquet(res.days, out_dir / "predictions.parquet")
    summary = {"config": json.loads(res.config.model_dump_json()), "table": res.records(),
               "features": res.features, "masked": res.masked, "stages": res.stages, "timings": res.timings}
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=str))

