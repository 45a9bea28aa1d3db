"""``xfer data``: the market catalog, imports, synthetic markets, features and pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from xfer.cli._common import StoreOpt, _pydantic_message, _store, err, out
from xfer.errors import XferInputError
from xfer.io import write_parquet

app = typer.Typer(help="Market data: catalog, import, synthetic markets, features.",
                  no_args_is_help=True)


@app.command("list")
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


@app.command("import")
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


@app.command("synth")
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


@app.command("features")
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


@app.command("pair")
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

