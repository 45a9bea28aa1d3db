"""The ``xfer`` command.

Every command turns bad input into one line on stderr naming the file, the field, what was
expected and what was found, and exits with status 2 (1 for unexpected failures).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xfer.errors import XferInputError
from xfer.evaluate.contract import RULE_OF_THUMB
from xfer.io import write_parquet, write_text
from xfer.transfer.strategies import all_knobs

_KNOB_HELP = "; ".join(f"{k.name} ({k.kind}, default {k.default}): {k.help}" for k in all_knobs().values())

app = typer.Typer(
    help="Transfer-learning studies between financial markets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Market data: catalog, import, synthetic markets, features.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

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


# --------------------------------------------------------------------------- data


@data_app.command("list")
def data_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
    store: StoreOpt = None,
) -> None:
    """Print the market catalog (embedded samples and your own markets)."""
    from xfer.data.store import catalog_json

    infos = _store(store).list()
    if as_json:
        print(catalog_json(infos))
        return
    t = Table(title=f"{len(infos)} markets")
    for col in ("id", "name", "class", "region", "liq.", "first", "last", "rows", "columns", "tags", "source",
                "licence"):
        t.add_column(col, overflow="fold")
    for i in infos:
        t.add_row(i.id, i.name, i.asset_class, i.region, i.liquidity_tier, str(i.first_date),
                  str(i.last_date), str(i.n_rows), ",".join(i.columns),
                  ",".join(i.tags) + (" synthetic" if i.synthetic else ""),
                  i.source.split(" ")[0] if i.embedded else i.source, i.licence)
    out.print(t)


def _few(names: list[str], limit: int = 10) -> str:
    """Column names for the import summary: the first ``limit``, each cut to 40 characters."""
    if not names:
        return "none"
    shown = [n if len(n) <= 40 else n[:37] + "..." for n in names[:limit]]
    return str(shown) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@data_app.command("import")
def data_import(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of daily bars.")],
    market: Annotated[str, typer.Option("--market", help="New market id, e.g. brent.")],
    asset_class: Annotated[str, typer.Option("--asset-class", help="equity, index, commodity, fx, crypto, etf, volatility, rates.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    region: Annotated[str, typer.Option(help="Region, e.g. US, EM, global.")] = "unknown",
    liquidity_tier: Annotated[str, typer.Option("--liquidity-tier", help="high, medium, low or unknown.")] = "unknown",
    source: Annotated[str | None, typer.Option(help="Where the data came from (default: the file).")] = None,
    licence: Annotated[str, typer.Option(help="Licence of the data.")] = "",
    tags: Annotated[str, typer.Option(help="Comma-separated groups, e.g. energy,em.")] = "",
    price_column: Annotated[str | None, typer.Option("--price-column", help="Column to use as close, e.g. 'Adj Close'.")] = None,
    date_column: Annotated[str | None, typer.Option("--date-column", help="Date column if not detected.")] = None,
    date_format: Annotated[str | None, typer.Option("--date-format", help="strftime format, e.g. '%d/%m/%Y'.")] = None,
    drop_missing: Annotated[bool, typer.Option("--drop-missing", help="Drop rows without a price instead of failing.")] = False,
    min_rows: Annotated[int | None, typer.Option("--min-rows", help="Fewest bars accepted (default: feature warm-up + default splits).")] = None,
    delimiter: Annotated[str | None, typer.Option("--delimiter", help="CSV delimiter, e.g. ';' or 'tab' (default: detected among , ; tab |).")] = None,
    decimal: Annotated[str | None, typer.Option("--decimal", help="Decimal mark of the numbers: '.' or ',' (default: refuse a file whose commas are ambiguous).")] = None,
    allow_frequency: Annotated[bool, typer.Option("--allow-frequency", help="Accept bars that are not daily (weekly, monthly, intraday); the frequency is kept in the catalog.")] = False,
    timezone: Annotated[str | None, typer.Option("--timezone", help="Exchange time zone, e.g. America/New_York: time-zone-aware timestamps and dates with a UTC offset are converted into it before their date is taken.")] = None,
    allow_implausible: Annotated[bool, typer.Option("--allow-implausible", help="Accept prices the plausibility checks refuse (one-day jumps of a split or a change of unit, a constant series, prices outside 1e-6..1e9, dates after today).")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing market with this id.")] = False,
    store: StoreOpt = None,
) -> None:
    """Import a CSV or Parquet file of daily bars as a new market.

    The delimiter (, ; tab |) is detected; decimal commas need --decimal ','; day/month
    order must be clear from the dates or given with --date-format; bars must be daily
    unless --allow-frequency. Gaps longer than 10 calendar days between daily bars are
    reported and kept in the catalog entry (``gaps``). Time-zone-aware timestamps with times
    of day need --timezone; implausible prices (split-sized jumps, constant series, dates
    after today) need --allow-implausible.
    """
    from rich.markup import escape as _escape  # names from the file are no markup: a column '[/]'

    from xfer.data.ingest import read_market_file
    from xfer.data.ingest_file import clip
    from xfer.data.store import ASSET_CLASSES, LIQUIDITY_TIERS, info_for_frame, validate_market_id

    validate_market_id(market, file=file)
    if min_rows is not None and min_rows < 1:
        raise XferInputError(file=file, field="--min-rows", expected="an integer >= 1", found=str(min_rows))
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(
            delimiter.lower(), delimiter)
        if len(delimiter) != 1 or delimiter.isalnum() or delimiter in "\"\n\r":
            raise XferInputError(file=file, field="--delimiter", expected="one character such as ',', ';', '|' or 'tab'",
                                 found=repr(clip(delimiter)))
    if decimal is not None and decimal not in (".", ","):
        raise XferInputError(file=file, field="--decimal", expected="'.' or ','", found=repr(clip(decimal)))
    if asset_class not in ASSET_CLASSES:
        raise XferInputError(file=file, field="--asset-class", expected=f"one of {list(ASSET_CLASSES)}",
                             found=repr(clip(asset_class)))
    if liquidity_tier not in LIQUIDITY_TIERS:
        raise XferInputError(file=file, field="--liquidity-tier",
                             expected=f"one of {list(LIQUIDITY_TIERS)}", found=repr(clip(liquidity_tier)))
    st = _store(store)
    st.check_new(market, replace=replace)  # refuse a taken id before reading the file
    frame, report = read_market_file(
        file, price_column=price_column, date_column=date_column, date_format=date_format,
        drop_missing=drop_missing, min_rows=_default_min_rows() if min_rows is None else min_rows,
        delimiter=delimiter, decimal=decimal, allow_frequency=allow_frequency,
        timezone=timezone, allow_implausible=allow_implausible,
    )
    info = info_for_frame(
        frame, id=market, name=name or market, asset_class=asset_class, region=region,
        liquidity_tier=liquidity_tier, source=source or str(file.resolve()), licence=licence,
        tags=tuple(t for t in tags.split(",") if t), frequency=report.frequency, gaps=tuple(report.gaps),
    )
    path = st.add(frame, info, replace=replace)
    how = ", ".join(p for p in (
        f"{report.delimiter}-delimited" if report.delimiter else "",
        f"decimal {report.decimal!r}",
        f"{report.frequency} bars",
        "times of day dropped (one bar per date)" if report.times_dropped else "",
        f"{report.compression}-compressed" if report.compression else "",
        "rows sorted by date" if report.sorted_rows else "",
    ) if p)
    err.print(
        f"imported [bold]{market}[/]: {info.n_rows} bars {info.first_date}..{info.last_date}, "
        f"columns {list(info.columns)} ({how}; date column {_escape(repr(report.date_column))} as "
        f"{_escape(report.date_format)}; ignored {_escape(_few(report.ignored_columns))}; dropped {report.dropped_missing} missing, "
        f"{report.dropped_identical_duplicates} duplicate rows) -> {path}",
        highlight=False,
    )
    if report.gaps:
        shown = ", ".join(f"{a}..{b}" for a, b in report.gaps[:5])
        err.print(
            f"[bold yellow]warning:[/] {market}: {len(report.gaps)} gap(s) longer than {report.gap_days:g} "
            f"calendar days between bars: {shown}{' ...' if len(report.gaps) > 5 else ''} "
            "(kept in the catalog entry as 'gaps'; features and returns span each gap)",
            highlight=False,
        )


SYNTH_MAX_ROWS = 50_000
"""Most bars of a synthetic market: they end on 2022-12-30, and 50,000 business days start in 1831."""


def _default_min_rows() -> int:
    from xfer.data.features import WARMUP
    from xfer.data.splits import SplitSpec

    return WARMUP + 5 + SplitSpec().min_rows()


@data_app.command("synth")
def data_synth(
    relation: Annotated[str | None, typer.Option(help="Make a pair with a known relation: shared, opposite, unrelated, shifted; or 'bridge' for a source/intermediate/target chain.")] = None,
    market: Annotated[str | None, typer.Option("--market", help="Id of a single market (with --param), or the id prefix of a pair.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Generator parameter NAME=VALUE (single market), repeatable.")] = None,
    n_source: Annotated[int, typer.Option("--n-source", help="Bars of the source (and intermediate).")] = 6000,
    n_target: Annotated[int, typer.Option("--n-target", help="Bars of the target (or of a single market).")] = 2500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite existing markets.")] = False,
    store: StoreOpt = None,
) -> None:
    """Generate ground-truth synthetic markets into the store (parameters kept in the catalog)."""
    from xfer.data import synthetic as syn

    lo, hi = _default_min_rows(), SYNTH_MAX_ROWS
    for flag, n in (("--n-target", n_target), ("--n-source", n_source)):
        if not lo <= n <= hi:
            raise XferInputError(field=flag, expected=f"an integer from {lo} to {hi} bars (feature warm-up + "
                                 "label horizon + default splits need the minimum)", found=str(n))
    if seed < 0:
        raise XferInputError(field="--seed", expected="an integer >= 0", found=str(seed))
    st = _store(store)
    if relation is None:
        if market is None:
            raise XferInputError(field="--market", expected="an id (with --param NAME=VALUE ...) or --relation",
                                 found="neither")
        overrides: dict[str, Any] = {}
        for p in param or []:
            if "=" not in p:
                raise XferInputError(field="--param", expected="NAME=VALUE", found=repr(p))
            k, v = p.split("=", 1)
            try:
                overrides[k.strip()] = None if v.strip().lower() == "none" else float(v)
            except ValueError:
                raise XferInputError(field=f"--param {k.strip()}", expected="a number", found=repr(v)) from None
        try:
            spec = syn.SynthSpec(**overrides)
        except ValidationError as exc:
            raise XferInputError(field="--param", expected="valid generator parameters",
                                 found=_pydantic_message(exc)) from None
        ids = [syn.write_market(st, market, spec, n_target, seed, replace=replace)]
    else:
        if relation not in syn.RELATIONS:
            raise XferInputError(field="--relation", expected=f"one of {list(syn.RELATIONS)}", found=repr(relation))
        prefix = market or f"syn_{relation}"
        for role in ("src", "mid", "tgt") if relation == "bridge" else ("src", "tgt"):
            st.check_new(f"{prefix}_{role}", replace=replace)  # all or nothing: check every id first
        ids = syn.write_set(st, relation, prefix=market, n_source=n_source, n_target=n_target, seed=seed,
                            replace=replace)
    for mid in ids:
        err.print(f"wrote {mid}", highlight=False)


@data_app.command("features")
def data_features(
    market: Annotated[str, typer.Argument(help="Market id.")],
    out_path: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    target: Annotated[str, typer.Option(help="volatility or return.")] = "volatility",
    horizon: Annotated[int | None, typer.Option(help="Label horizon in days (default: 5 for volatility, 1 for return).")] = None,
    store: StoreOpt = None,
) -> None:
    """Write the raw (unnormalised) feature matrix of a market: date, <family>.<feature>..., target."""
    from xfer.data.features import TARGET_TYPES

    if target not in TARGET_TYPES:
        raise XferInputError(field="--target", expected=f"one of {list(TARGET_TYPES)}", found=repr(target))
    _check_horizon(horizon)
    if out_path.suffix.lower() not in (".parquet", ".pq"):
        raise XferInputError(field="--out", expected="a path ending in .parquet", found=str(out_path))
    m = _store(store).load(market)
    fm = _features(market, m.frame, target, horizon)
    write_parquet(fm.data[["date", *fm.feature_names, "target"]], out_path)
    fams = {k: len(v) for k, v in fm.families.items()}
    err.print(
        f"{market}: {len(fm.data)} rows x {len(fm.feature_names)} features {fams}, target "
        f"{fm.target} h={fm.horizon}; masked {len(fm.masked)}: "
        + (", ".join(f"{k} ({v})" for k, v in fm.masked.items()) or "none") + f" -> {out_path}",
        highlight=False,
    )


def _check_horizon(horizon: int | None) -> None:
    from xfer.data.features import MAX_HORIZON

    if horizon is not None and not 1 <= horizon <= MAX_HORIZON:
        raise XferInputError(field="--horizon", expected=f"an integer from 1 to {MAX_HORIZON} (bars)",
                             found=str(horizon))


def _features(market: str, frame: Any, target: str, horizon: int | None) -> Any:
    """``build_features``, its refusals (a horizon leaving no rows) naming the option and the market."""
    from xfer.data.features import build_features

    try:
        return build_features(frame, target=target, horizon=horizon)  # type: ignore[arg-type]
    except XferInputError as exc:
        raise XferInputError(field="--horizon", expected=exc.expected, found=f"{market}: {exc.found}",
                             hint=exc.hint) from None


@data_app.command("pair")
def data_pair(
    source: Annotated[str, typer.Argument(help="Source market id(s) or @group, comma-separated.")],
    target: Annotated[str, typer.Argument(help="Target market id.")],
    target_type: Annotated[str, typer.Option("--target-type", help="volatility or return.")] = "volatility",
    horizon: Annotated[int | None, typer.Option(help="Label horizon in days.")] = None,
    store: StoreOpt = None,
) -> None:
    """Build the features of a source/target pair and show what they share, per family."""
    from xfer.data.features import FAMILIES, TARGET_TYPES
    from xfer.data.splits import SplitSpec, make_folds

    if target_type not in TARGET_TYPES:
        raise XferInputError(field="--target-type", expected=f"one of {list(TARGET_TYPES)}", found=repr(target_type))
    _check_horizon(horizon)
    if target.startswith("@") or "," in target:
        raise XferInputError(field="TARGET", expected="one market id (groups and lists are for sources)",
                             found=repr(target))
    st = _store(store)
    sources = st.resolve([s.strip() for s in source.split(",")])
    tgt = st.resolve([target])[0]
    if tgt in sources:
        raise XferInputError(field="TARGET", expected=f"a market that is not among the sources {sources}",
                             found=repr(tgt), hint="a market cannot transfer to itself")
    mats = {mid: _features(mid, st.load(mid).frame, target_type, horizon) for mid in [*sources, tgt]}
    common = [c for c in mats[tgt].feature_names if all(c in m.feature_names for m in mats.values())]
    t = Table(title=f"{','.join(sources)} -> {tgt} ({target_type})")
    t.add_column("family")
    t.add_column("shared features")
    t.add_column("masked (reason)")
    for fam in FAMILIES:
        shared = [c.split(".", 1)[1] for c in common if c.startswith(fam + ".")]
        why: dict[str, list[str]] = {}
        for mid, m in mats.items():
            for c, reason in m.masked.items():
                if c.startswith(fam + "."):
                    why.setdefault(f"{c.split('.', 1)[1]}: {reason}", []).append(mid)
        masked = [f"{k} ({'all' if len(v) == len(mats) else ','.join(v)})" for k, v in why.items()]
        t.add_row(fam, ", ".join(shared) or "-", "; ".join(masked) or "-")
    out.print(t)
    h = mats[tgt].horizon
    split = SplitSpec(horizon=h, embargo=h)
    if len(mats[tgt].data) < split.min_rows():
        raise XferInputError(field="--horizon", expected=f"at least {split.min_rows()} model-ready target rows "
                             f"for the default splits with horizon {h}",
                             found=f"{tgt}: {len(mats[tgt].data)} rows", hint="use a shorter --horizon")
    folds = make_folds(len(mats[tgt].data), split)
    d = mats[tgt].data["date"]
    for f in folds:
        out.print(f"target fold {f.index}: train {d[f.train.start].date()}..{d[f.train.stop - 1].date()} "
                  f"({len(f.train)}) | val {d[f.val.start].date()}..{d[f.val.stop - 1].date()} "
                  f"({len(f.val)}) | test {d[f.test.start].date()}..{d[f.test.stop - 1].date()} ({len(f.test)})",
                  highlight=False)
    for mid, m in mats.items():
        out.print(f"{mid}: {len(m.data)} model-ready rows", highlight=False)


# --------------------------------------------------------------------------- transfer


def _split_ids(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command("transfer")
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
            backbone=BackboneSpec(name=backbone, hidden=hidden),
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


# --------------------------------------------------------------------------- study

pairs_app = typer.Typer(help="Market pairs: rank candidate sources for a target before any fine-tuning.",
                        no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("screen")
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


study_app = typer.Typer(help="Studies: YAML grids of transfer experiments on Ray Tune.", no_args_is_help=True)
app.add_typer(study_app, name="study")

MaxCellsOpt = Annotated[int | None, typer.Option(
    "--max-cells", min=1, help="Refuse a study of more cells than this (default 10,000), counted from the spec "
    "before any cell is built.")]
MaxFitsOpt = Annotated[int | None, typer.Option(
    "--max-fits", min=1, help="Refuse a study of more target fits (cells x trials x seeds x folds) than this "
    "(default 100,000,000).")]


def _caps(max_cells: int | None, max_fits: int | None) -> dict[str, int]:
    from xfer.study.spec import MAX_CELLS, MAX_FITS

    return {"max_cells": MAX_CELLS if max_cells is None else max_cells,
            "max_fits": MAX_FITS if max_fits is None else max_fits}


@study_app.command("validate")
def study_validate(
    files: Annotated[list[Path], typer.Argument(help="Study YAML file(s).")],
    estimate: Annotated[bool, typer.Option(help="Estimate the training time with a short timing probe.")] = True,
    store: StoreOpt = None,
    max_cells: MaxCellsOpt = None,
    max_fits: MaxFitsOpt = None,
) -> None:
    """Check study files (every problem with file, field path, expected and found) and say how big each is."""
    from xfer.study.spec import StudyError, load, size

    bad = 0
    for f in files:
        try:
            spec = load(f, _store(store), **_caps(max_cells, max_fits))
        except StudyError as exc:
            bad += 1
            err.print(str(exc), highlight=False, markup=False)
            continue
        sz = size(spec)
        out.print(f"{f}: ok ({spec.name}: {len(spec.pairs)} pair(s), {sz.cells} cells x "
                  f"{spec.search.trials_per_cell} trial(s) x {spec.grid.seeds} seed(s) x {sz.folds} fold(s) = "
                  f"{sz.fits:,} target fits, plus {sz.source_fits:,} source/chain pre-training fits)", highlight=False)
        if estimate:
            out.print(f"  {_estimate(spec, sz)}", highlight=False)
    if bad:
        raise typer.Exit(2)


def _estimate(spec: Any, sz: Any) -> str:
    """Training time on this machine, from a short timing probe of one population step."""
    import os

    import torch

    from xfer.experiment.check import step_seconds

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))
    try:
        cell_s = step_seconds(spec.grid.backbone, spec.train, sz.cell_members)
        src_s = step_seconds(spec.grid.backbone, spec.source.train, spec.grid.seeds) if sz.source_populations else 0.0
    finally:
        torch.set_num_threads(threads)
    workers = max(1, int((os.cpu_count() or 1) // spec.resources.cpus_per_trial))
    if spec.resources.max_concurrent:
        workers = min(workers, spec.resources.max_concurrent)
    workers = min(workers, sz.cells)
    secs = sz.seconds(cell_s, src_s, workers)
    hours = secs / 3600
    when = f"{secs / 60:,.1f} min" if hours < 2 else f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} days"
    warn = " -- a large study: consider a cluster (`--address`) or a smaller grid" if hours > 24 else ""
    return (f"training time on this machine: at most ~{when} with {workers} concurrent trial(s) (every population "
            f"running its full budget of {sz.cell_steps} steps; probe: {cell_s * 1e3:.0f} ms per step for "
            f"{sz.cell_members} members; early stopping usually ends fits sooner; evaluation and "
            f"start-up not included){warn}")


@study_app.command("submit")
def study_submit(
    file: Annotated[Path, typer.Argument(help="Study YAML file (checked here first, as `xfer study validate` does).")],
    address: Annotated[str, typer.Option("--address", help="The cluster's Jobs API: http(s)://HEAD:8265 (the dashboard; reach it through `ray dashboard` or `kubectl port-forward`).")],
    out_dir: Annotated[str | None, typer.Option("--out", help="Study directory: an absolute path on the head node (the job's driver writes it), or an object-store URI such as s3://bucket/prefix (default: the spec's storage, else the cluster's $XFER_HOME/studies/NAME).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny budget: 1 seed, 1 trial, 1 fold, 2 fractions, 2 epochs.")] = False,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=VALUE or NAME (this machine's value) for the job's environment, e.g. XFER_HOME=/shared/xfer; repeatable. Credentials (WANDB_API_KEY, *_TOKEN, ...) are refused: Ray logs a job's runtime_env in plain text.")] = None,
    working_dir: Annotated[Path | None, typer.Option("--working-dir", help="Upload this directory (e.g. the project; .gitignore honoured) with FILE inside it, instead of the study file alone.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="--wait: follow the job's logs to its end and exit non-zero unless it succeeded. Default --no-wait: print the job id and how to follow it, and return (a study can run for hours).")] = False,
    check_markets: Annotated[bool, typer.Option("--check-markets/--no-check-markets", help="Check the study's markets against this machine's store (--store) before submitting.")] = True,
    store: Annotated[Path | None, typer.Option("--store", help="Store whose catalog the markets are checked against here (default: $XFER_HOME or ~/.xfer); the job uses the cluster's.")] = None,
) -> None:
    """Submit a study to a Ray cluster as a Ray Job (Jobs API); the job runs `xfer study run FILE --address auto`."""
    import os

    from xfer.study.submit import follow, job_env, submit_study

    client, sub = submit_study(file, address, out=out_dir, smoke=smoke, env=job_env(env or [], os.environ),
                               working_dir=working_dir, store=_store(store) if check_markets else None,
                               check_markets=check_markets)
    out.print(f"submitted study {sub.study} as Ray job {sub.job_id} to {sub.address}\n"
              f"  entrypoint: {sub.entrypoint}\n  study directory (on the cluster): {sub.study_dir}", highlight=False)
    logs, status, stop, study_status = sub.follow_commands()
    out.print(f"follow it:\n  {logs}\n  {status}\n  {study_status}    # where the study directory is (the head; anywhere for an s3:// one)\n"
              f"stop it:\n  {stop}", highlight=False, soft_wrap=True)
    if not wait:
        return
    try:
        state = follow(client, sub.job_id, lambda s: err.out(s, end="", highlight=False))
    except KeyboardInterrupt:
        err.print(f"stopped following; job {sub.job_id} keeps running (`{stop}` stops it)", highlight=False)
        raise typer.Exit(130) from None
    if state != "SUCCEEDED":
        err.print(f"[bold red]job {sub.job_id} {state}[/]: `{logs.replace(' --follow', '')}` shows why; "
                  "submitting the same study again (same --out) runs only the cells without results", highlight=False)
        raise typer.Exit(1)
    out.print(f"job {sub.job_id} SUCCEEDED: results in {sub.study_dir}", highlight=False)


@study_app.command("run")
def study_run(
    file: Annotated[Path, typer.Argument(help="Study YAML file.")],
    out_dir: Annotated[str | None, typer.Option("--out", help="Study directory: a path or an object-store URI such as s3://bucket/prefix (default: the spec's storage, else $XFER_HOME/studies/NAME).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray instance).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny budget: 1 seed, 1 trial, 1 fold, 2 fractions, 2 epochs.")] = False,
    profile: Annotated[bool, typer.Option("--profile", help="Print where the run's time went (stages and cell parts).")] = False,
    store: StoreOpt = None,
    max_cells: MaxCellsOpt = None,
    max_fits: MaxFitsOpt = None,
) -> None:
    """Run a study: every cell, Optuna search inside, results + report in the study directory."""
    from xfer.hooks import default_hooks
    from xfer.study.runner import run_study
    from xfer.study.spec import check_size, parse

    spec = parse(file)  # its size first, from the spec's counts: before any cell is built or written
    check_size(spec.smoke() if smoke else spec, file, **_caps(max_cells, max_fits))
    res = run_study(file, study_dir=_study_path(out_dir) if out_dir else None, store=_store(store), address=address,
                    smoke=smoke, console=err, hooks=default_hooks())
    _print_study(res)
    if profile:
        _print_profile(res.study_dir)


def _print_profile(study_dir: Path) -> None:
    from xfer.study.results import profile

    prof = profile(study_dir)
    t = Table(title=f"where the time went ({study_dir}); cell parts: summed over the cells run, "
                    "divided by the concurrent trials")
    for c in ("stage", "seconds", "share"):
        t.add_column(c, justify="left" if c == "stage" else "right")
    for r in prof.to_dict("records"):
        t.add_row(r["stage"], f"{r['seconds']:.1f}", f"{100 * r['share']:.0f}%")
    out.print(t)


def _study_path(study_dir: str) -> str | Path:
    """STUDY_DIR / --out as given: an object-store URI stays a string (a Path folds its ``//``)."""
    from xfer.study.storage import is_uri

    return study_dir if is_uri(study_dir) else Path(study_dir)


def _need_study_dir(study_dir: str | Path) -> None:
    if isinstance(study_dir, str):
        return  # a URI: checked where it is opened (reachable, holding spec.json)
    if not (study_dir / "spec.json").is_file():
        raise XferInputError(file=study_dir, field="STUDY_DIR", expected="a study directory (with spec.json)",
                             found="no spec.json")


@study_app.command("resume")
def study_resume(
    study_dir: Annotated[str, typer.Argument(help="Directory (or object-store URI) of an interrupted study.")],
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address.")] = None,
    store: StoreOpt = None,
    max_cells: MaxCellsOpt = None,
    max_fits: MaxFitsOpt = None,
) -> None:
    """Finish an interrupted study: runs only the cells without results."""
    from xfer.hooks import default_hooks
    from xfer.study.runner import _load_spec, run_study
    from xfer.study.spec import check_size

    study_dir = _study_path(study_dir)
    _need_study_dir(study_dir)
    if isinstance(study_dir, Path):  # a URI's spec is checked where it is opened
        check_size(_load_spec(study_dir), study_dir / "spec.json", **_caps(max_cells, max_fits))
    res = run_study(None, study_dir=study_dir, store=_store(store), address=address, console=err,
                    hooks=default_hooks())
    _print_study(res)


@study_app.command("status")
def study_status_cmd(
    study_dir: Annotated[str, typer.Argument(help="A study directory or object-store URI (running, interrupted or finished).")],
    show_cells: Annotated[bool, typer.Option("--cells", help="One line per cell.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A study's progress from its directory alone (read-only: safe while a cluster writes it)."""
    import json

    from xfer.study.status import study_status

    study_dir = _study_path(study_dir)
    _need_study_dir(study_dir)
    st = study_status(study_dir)
    if as_json:
        out.print_json(json.dumps(st.to_dict()))
        return
    d = st.to_dict()
    secs = [c.seconds for c in st.cells if c.seconds is not None]
    mean = f"; a done cell took {sum(secs) / len(secs):.0f} s on average" if secs else ""
    out.print(f"study {st.name} ({study_dir}): {d['cells']} cells: {d['done']} done, {d['searching']} searching, "
              f"{d['pending']} pending; search trials {d['trials_done']}/{d['trials_total']}{mean}", highlight=False)
    if show_cells:
        t = Table()
        for c in ("cell", "pair", "chain", "dann", "strategy", "fraction", "state", "trials", "seconds"):
            t.add_column(c)
        for c in st.cells:
            t.add_row(c.cell_id, c.pair, c.chain, "yes" if c.dann else "no", c.strategy, f"{c.fraction:g}", c.state,
                      f"{c.trials_done}/{st.trials_per_cell}", "" if c.seconds is None else f"{c.seconds:.0f}")
        out.print(t)
    if st.finished:
        out.print(f"finished: tables and report in {study_dir}", highlight=False)
    elif d["searching"] or d["pending"]:
        out.print(f"not finished: if no run is writing it, `xfer study resume {study_dir}` runs the rest", highlight=False)


def _print_study(res: Any) -> None:
    v = res.tables["verdicts"]
    t = Table(title=f"verdicts ({res.cells_run} of {res.cells_total} cells run in {res.seconds:.0f}s) -> {res.study_dir}")
    for c in ("pair", "chain", "dann", "strategy", "fraction", "test", "scratch", "best baseline",
              "delta [95% CI]", "p (Holm)", "+/- detectable", "verdict"):
        t.add_column(c)
    for r in v[v["strategy"] != "scratch"].to_dict("records"):
        below = "" if r["beats_baseline"] else " [below baseline]"
        t.add_row(r["pair"], r["chain"], f"{r['dann_weight']:g}", r["strategy"], f"{r['fraction']:g}",
                  f"{r['test_score']:.4f}", f"{r['scratch_score']:.4f}",
                  f"{r['best_baseline']} {r['best_baseline_score']:.4f}",
                  f"{r['delta']:+.4f} [{r['delta_ci_low']:+.4f}, {r['delta_ci_high']:+.4f}]",
                  f"{r['p_adjusted']:.3f}", f"{r['detectable_effect']:.4f}", r["verdict"] + below)
    out.print(t)
    if len(v):
        out.print(f"verdicts read Holm-adjusted p-values over the study's {int(v['n_comparisons'].iloc[0])} "
                  "comparisons (day-level EWC test over test days and seeds)", highlight=False)
    sz = res.tables["sizing"]
    if len(sz) and sz["strategy"].ne("scratch").any():
        s = Table(title="required fraction to match scratch at full data vs the article's rule of thumb")
        for c in ("pair", "chain", "strategy", "required (monotone)", "90% joint band", "first passage",
                  "rule of thumb"):
            s.add_column(c)
        for r in sz[sz["strategy"] != "scratch"].to_dict("records"):
            s.add_row(r["pair"], r["chain"], r["strategy"], _frac(r.get("monotone_fraction")),
                      f"[{_frac(r.get('monotone_ci_low'))}, {_frac(r.get('monotone_ci_high'))}]",
                      _frac(r["required_fraction"]), r["rule_of_thumb"])
        out.print(s)
    out.print(f"report: {(res.location or str(res.study_dir)).rstrip('/')}/report.html", highlight=False)


def _frac(f: object) -> str:
    """A required fraction: ``0.35``, ``not reached`` (inf) or ``-`` (missing)."""
    if not isinstance(f, float | int) or f != f:
        return "-"
    return "not reached" if f == float("inf") else f"{f:g}"


@app.command("report")
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning bad input into a clear non-zero exit."""
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


if __name__ == "__main__":
    main()
