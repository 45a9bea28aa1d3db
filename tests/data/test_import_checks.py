"""Issue 9, data: nothing wrong gets into the store, and what is odd is said.

Each test here failed before the fix: a file was read wrongly (decimal commas as thousands,
day-first dates as month-first, monthly or hourly bars as daily, infinities as prices), or a
refusal cited the wrong lines, or a command accepted an argument that makes no sense.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import tree_digest
from xfer.data import synthetic as syn
from xfer.data.features import build_features
from xfer.data.ingest import GAP_DAYS, infer_frequency, read_market_file
from xfer.data.store import Store
from xfer.errors import XferInputError


def _bars(n: int = 400, start: str = "2001-01-02", freq: str = "B", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"Date": pd.date_range(start, periods=n, freq=freq), "Close": close.round(4)})


def _import(cli, f: Path, *args: str, market: str = "m"):
    return cli("data", "import", str(f), "--market", market, "--asset-class", "equity", "--min-rows", "100", *args)


# ----------------------------------------------------------------------- 1. delimiters, decimals


def test_quoted_decimal_comma_is_refused_naming_the_flag_then_read_with_it(
    tmp_path: Path, store: Store, store_dir: Path, cli
) -> None:
    df = _bars()
    df["Close"] = df["Close"].map(lambda v: f"{v:.2f}".replace(".", ","))
    f = tmp_path / "eu.csv"
    df.to_csv(f, index=False)  # "50,06" is quoted by the writer: a comma-delimited file
    assert '"50,06"' in f.read_text()
    r = _import(cli, f)
    assert r.code == 2 and "--decimal ," in r.err and "decimal comma" in r.err and "'Close'" in r.err
    assert tree_digest(store_dir) == {}
    r = _import(cli, f, "--decimal", ",")
    assert r.code == 0, r.err
    assert store.load("m").frame["close"].iloc[0] == pytest.approx(50.06)  # not 5006


def test_semicolon_and_tab_files_are_read_and_the_delimiter_reported(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    r = _import(cli, tmp_path / "semi.csv", market="semi")
    assert r.code == 0, r.err
    assert "semicolon-delimited" in r.err
    np.testing.assert_allclose(store.load("semi").frame["close"], df["Close"])
    df.to_csv(tmp_path / "tab.tsv", index=False, sep="\t")
    r = _import(cli, tmp_path / "tab.tsv", market="tab")
    assert r.code == 0 and "tab-delimited" in r.err, r.err


def test_european_semicolon_file_needs_decimal_flag(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Close"] = (df["Close"] * 100).map(lambda v: f"{v:,.2f}".replace(",", "_").replace(".", ",").replace("_", "."))
    df.to_csv(tmp_path / "eu.csv", index=False, sep=";")  # 5.006,29
    r = _import(cli, tmp_path / "eu.csv")
    assert r.code == 2 and "--decimal ," in r.err
    r = _import(cli, tmp_path / "eu.csv", "--decimal", ",")
    assert r.code == 0, r.err
    assert store.load("m").frame["close"].iloc[0] == pytest.approx(_bars()["Close"].iloc[0] * 100, abs=0.006)


def test_commas_that_may_be_thousands_or_decimals_are_refused(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Close"] = (df["Close"] * 100).map(lambda v: f"{v:,.0f}")  # "5,006": 5006 or 5.006?
    df.to_csv(tmp_path / "amb.csv", index=False)
    r = _import(cli, tmp_path / "amb.csv")
    assert r.code == 2 and "--decimal ." in r.err and "--decimal ," in r.err, r.err
    assert _import(cli, tmp_path / "amb.csv", "--decimal", ".").code == 0
    assert store.load("m").frame["close"].iloc[0] == 5006.0


def test_us_thousands_separators_still_import_without_a_flag(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Close"] = (df["Close"] * 100).map(lambda v: f"{v:,.2f}")  # "5,006.29"
    df.to_csv(tmp_path / "us.csv", index=False)
    r = _import(cli, tmp_path / "us.csv")
    assert r.code == 0, r.err
    np.testing.assert_allclose(store.load("m").frame["close"], (_bars()["Close"] * 100).round(2))


# ----------------------------------------------------------------------- 2. frequency


def test_monthly_bars_are_refused_unless_allowed_and_the_frequency_is_catalogued(
    tmp_path: Path, store: Store, store_dir: Path, cli
) -> None:
    _bars(400, "1980-01-31", "ME").to_csv(tmp_path / "m.csv", index=False)
    r = _import(cli, tmp_path / "m.csv")
    assert r.code == 2 and "daily bars" in r.err and "monthly" in r.err and "--allow-frequency" in r.err
    assert tree_digest(store_dir) == {}
    r = _import(cli, tmp_path / "m.csv", "--allow-frequency")
    assert r.code == 0 and "monthly bars" in r.err, r.err
    assert store.info("m").frequency == "monthly"
    assert store.info("m").gaps == ()  # a month between monthly bars is no gap


def test_hourly_bars_are_refused_and_their_times_are_not_dropped(tmp_path: Path, store: Store, cli) -> None:
    df = _bars(400, "2020-01-01 09:00", "h")
    df["Date"] = df["Date"].dt.strftime("%Y-%m-%d %H:%M")
    df.to_csv(tmp_path / "h.csv", index=False)
    r = _import(cli, tmp_path / "h.csv", "--date-format", "%Y-%m-%d %H:%M")
    assert r.code == 2 and "intraday" in r.err and "--allow-frequency" in r.err, r.err
    r = _import(cli, tmp_path / "h.csv", "--date-format", "%Y-%m-%d %H:%M", "--allow-frequency")
    assert r.code == 0, r.err
    m = store.load("m")
    assert m.info.frequency == "intraday"
    assert m.frame["date"].iloc[1] - m.frame["date"].iloc[0] == pd.Timedelta(hours=1)
    df.set_index(pd.to_datetime(df.pop("Date"))).to_parquet(tmp_path / "h.parquet")
    r = _import(cli, tmp_path / "h.parquet", market="hp")
    assert r.code == 2 and "intraday" in r.err, r.err


def test_daily_closes_with_a_time_stamp_are_daily(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Date"] = (df["Date"] + pd.Timedelta(hours=16)).dt.strftime("%Y-%m-%d %H:%M")
    df.to_csv(tmp_path / "d.csv", index=False)
    r = _import(cli, tmp_path / "d.csv", "--date-format", "%Y-%m-%d %H:%M")
    assert r.code == 0 and "times of day dropped" in r.err, r.err
    m = store.load("m")
    assert m.info.frequency == "daily" and m.frame["date"].iloc[0] == pd.Timestamp("2001-01-02")


@pytest.mark.parametrize(("freq", "expected"), [("B", "daily"), ("D", "daily"), ("W-FRI", "weekly"),
                                                 ("ME", "monthly"), ("QE", "quarterly"), ("YE", "annual"),
                                                 ("h", "intraday")])
def test_infer_frequency(freq: str, expected: str) -> None:
    assert infer_frequency(pd.date_range("2001-01-02", periods=200, freq=freq))[0] == expected


def test_existing_market_files_without_the_new_fields_still_load(store: Store) -> None:
    info = store.info("wti")  # embedded samples were written before `frequency`/`gaps` existed
    assert info.frequency == "daily" and info.gaps == ()
    assert len(store.load("sp500").frame) == store.info("sp500").n_rows


# ----------------------------------------------------------------------- 3. non-finite numbers


@pytest.mark.parametrize("token", ["inf", "-inf", "1e400", "Infinity"])
def test_csv_infinities_are_refused(token: str, tmp_path: Path, store_dir: Path, cli) -> None:
    df = _bars().astype({"Close": str})
    df.loc[5, "Close"] = token
    df.to_csv(tmp_path / "x.csv", index=False)
    r = _import(cli, tmp_path / "x.csv")
    assert r.code == 2 and "finite" in r.err and "'Close'" in r.err and "line 7" in r.err, r.err
    assert tree_digest(store_dir) == {}


def test_parquet_infinities_are_refused_in_every_numeric_column(tmp_path: Path, store_dir: Path, cli) -> None:
    df = _bars()
    df["Volume"] = 1000.0
    df.loc[7, "Volume"] = np.inf
    df.to_parquet(tmp_path / "x.parquet")
    r = _import(cli, tmp_path / "x.parquet")
    assert r.code == 2 and "finite" in r.err and "'Volume'" in r.err and "row 8" in r.err, r.err
    assert tree_digest(store_dir) == {}


# ----------------------------------------------------------------------- 4. day/month order


def test_day_first_dates_with_no_day_above_12_are_ambiguous(tmp_path: Path, store: Store, store_dir: Path, cli) -> None:
    df = _bars()
    df = df[df["Date"].dt.day <= 12].reset_index(drop=True)
    df["Date"] = df["Date"].dt.strftime("%d/%m/%Y")
    df.to_csv(tmp_path / "dm.csv", index=False)
    r = _import(cli, tmp_path / "dm.csv")
    assert r.code == 2 and "--date-format" in r.err and "%d/%m/%Y" in r.err and "%m/%d/%Y" in r.err, r.err
    assert tree_digest(store_dir) == {}
    r = _import(cli, tmp_path / "dm.csv", "--date-format", "%d/%m/%Y")
    assert r.code == 0, r.err
    assert store.load("m").frame["date"].iloc[1] == pd.Timestamp("2001-01-03")


def test_day_first_dates_with_days_above_12_need_no_flag(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Date"] = df["Date"].dt.strftime("%d/%m/%Y")
    df.to_csv(tmp_path / "dm.csv", index=False)
    r = _import(cli, tmp_path / "dm.csv")
    assert r.code == 0 and "%d/%m/%Y" in r.err, r.err
    np.testing.assert_array_equal(store.load("m").frame["date"], _bars()["Date"])


def test_us_dates_still_need_no_flag_and_descending_files_are_sorted(tmp_path: Path, store: Store, cli) -> None:
    df = _bars().iloc[::-1]
    df["Date"] = df["Date"].map(lambda d: f"{d.month}/{d.day}/{d.year}")
    df.to_csv(tmp_path / "us.csv", index=False)
    r = _import(cli, tmp_path / "us.csv")
    assert r.code == 0 and "%m/%d/%Y" in r.err, r.err
    np.testing.assert_array_equal(store.load("m").frame["date"], _bars()["Date"])


# ----------------------------------------------------------------------- 5. gaps


def test_a_gap_of_decades_is_warned_and_catalogued(tmp_path: Path, store: Store, cli) -> None:
    pd.concat([_bars(200, "1950-01-02"), _bars(200, "2020-01-02", seed=1)]).to_csv(tmp_path / "g.csv", index=False)
    r = _import(cli, tmp_path / "g.csv")
    assert r.code == 0, r.err
    assert "warning" in r.err and f"longer than {GAP_DAYS} calendar days" in r.err and "1950-10-06..2020-01-02" in r.err
    gaps = store.info("m").gaps
    assert [(str(a), str(b)) for a, b in gaps] == [("1950-10-06", "2020-01-02")]


def test_weekends_and_holidays_are_no_gaps(tmp_path: Path, store: Store, cli) -> None:
    df = _bars(600).drop(index=[100, 101, 102, 103, 300])  # a 9-day closure and a holiday
    df.to_csv(tmp_path / "ok.csv", index=False)
    r = _import(cli, tmp_path / "ok.csv")
    assert r.code == 0 and "warning" not in r.err, r.err
    assert store.info("m").gaps == ()


# ----------------------------------------------------------------------- 6. true line numbers


def test_conflicting_duplicates_cite_their_lines_in_the_file(tmp_path: Path, store_dir: Path, cli) -> None:
    df = _bars(600)
    extra = df.iloc[[11, 22]].copy()
    extra["Close"] = extra["Close"] * 1.5
    pd.concat([df, extra]).to_csv(tmp_path / "dup.csv", index=False)  # the extra rows are lines 602, 603
    r = _import(cli, tmp_path / "dup.csv")
    assert r.code == 2 and "different values" in r.err
    for line in (13, 24, 602, 603):
        assert f"line {line}:" in r.err, r.err
    assert tree_digest(store_dir) == {}


def test_line_numbers_survive_dropped_and_blank_lines(tmp_path: Path, cli) -> None:
    rows = ["Date,Close", "2001-01-03,10", "2001-01-02,.", "", "2001-01-04,-1"]
    (tmp_path / "x.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(XferInputError, match="line 5: "):
        read_market_file(tmp_path / "x.csv", drop_missing=True)


# ----------------------------------------------------------------------- 7. synth arguments


@pytest.mark.parametrize(("args", "needle"), [
    (["--market", "s", "--n-target", "-5"], "--n-target"),
    (["--market", "s", "--n-target", "10"], "--n-target"),
    (["--relation", "shared", "--n-source", "0"], "--n-source"),
    (["--market", "s", "--seed", "-1"], "--seed"),
])
def test_synth_refuses_sizes_features_cannot_use(args: list[str], needle: str, store_dir: Path, cli) -> None:
    r = cli("data", "synth", *args)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err, r.err
    assert tree_digest(store_dir) == {}


def test_synth_set_is_all_or_nothing(store: Store, store_dir: Path, cli) -> None:
    syn.write_market(store, "b_tgt", syn.SynthSpec(), 400, 0)
    before = tree_digest(store_dir)
    r = cli("data", "synth", "--relation", "bridge", "--market", "b", "--n-source", "400", "--n-target", "400")
    assert r.code == 2 and "b_tgt" in r.err and "--replace" in r.err
    assert tree_digest(store_dir) == before  # b_src and b_mid were not written


# ----------------------------------------------------------------------- 8. horizon, pairs


def test_features_horizon_is_bounded(tmp_path: Path, store_dir: Path, cli) -> None:
    out = tmp_path / "f.parquet"
    r = cli("data", "features", "wti", "--out", str(out), "--horizon", "100000")
    assert r.code == 2 and "--horizon" in r.err and "250" in r.err
    assert not out.exists()


def test_features_horizon_leaving_no_rows_is_refused(tmp_path: Path, store: Store, cli) -> None:
    syn.write_market(store, "short", syn.SynthSpec(), 400, 0)
    out = tmp_path / "f.parquet"
    r = cli("data", "features", "short", "--out", str(out), "--horizon", "250")
    assert r.code == 2 and "--horizon" in r.err and "no row" in r.err, r.err
    assert not out.exists()
    with pytest.raises(XferInputError, match="horizon"):
        build_features(store.load("short").frame, horizon=200)


@pytest.mark.parametrize(("source", "target", "needle"), [
    ("wti", "wti", "not among the sources"),
    ("@energy_commodity", "wti", "not among the sources"),
    ("sp500", "@energy_commodity", "one market id"),
])
def test_pair_refuses_a_target_among_its_sources(source: str, target: str, needle: str, store_dir: Path, cli) -> None:
    r = cli("data", "pair", source, target)
    assert r.code == 2 and needle in r.err and "TARGET" in r.err, r.err


# ----------------------------------------------------------------------- 9. ids never escape the store


@pytest.mark.parametrize("bad", ["../markets/x", "../../somewhere/x", "/etc/passwd", "WTI", "a b", "wti\n"])
def test_every_store_read_validates_the_id(bad: str, tmp_path: Path, store: Store) -> None:
    outside = tmp_path / "somewhere"
    outside.mkdir()
    syn.write_market(Store(outside), "x", syn.SynthSpec(), 400, 0)  # a market file outside the store
    for read in (store.load, store.info, store.path, lambda i: store.resolve([i])):
        with pytest.raises(XferInputError, match="market id"):
            read(bad)


def test_features_cannot_read_a_file_outside_the_store(tmp_path: Path, store_dir: Path, cli) -> None:
    other = tmp_path / "elsewhere"
    syn.write_market(Store(other), "x", syn.SynthSpec(), 400, 0)
    store_dir.joinpath("markets").mkdir(parents=True)
    rel = "../../elsewhere/markets/x"  # relative to xfer_home/markets
    r = cli("data", "features", rel, "--out", str(tmp_path / "f.parquet"))
    assert r.code == 2 and "market id" in r.err and repr(rel) in r.err, r.err
    assert not (tmp_path / "f.parquet").exists()


# ----------------------------------------------------------------------- 10. issue 24: accepted counterparts


def _ny_evening_parquet(path: Path) -> Path:
    """22:00 New York closes stored as UTC: 03:00 (04:00 in summer) on the next UTC day."""
    df = _bars()
    df["Date"] = (df["Date"] + pd.Timedelta(hours=22)).dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    df.to_parquet(path)
    return path


def test_timezone_flag_takes_each_date_in_the_exchange_zone(tmp_path: Path, store: Store, cli) -> None:
    f = _ny_evening_parquet(tmp_path / "utc.parquet")
    r = _import(cli, f)
    assert r.code == 2 and "--timezone" in r.err and "03:00:00+00:00" in r.err, r.err
    r = _import(cli, f, "--timezone", "America/New_York")
    assert r.code == 0 and "times of day dropped" in r.err, r.err
    np.testing.assert_array_equal(store.load("m").frame["date"], _bars()["Date"])  # not one day later


def test_zoned_midnight_needs_no_flag(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Date"] = df["Date"].dt.tz_localize("Asia/Tokyo")  # midnight in its own zone: 15:00 UTC the day before
    df.to_parquet(tmp_path / "tokyo.parquet")
    assert _import(cli, tmp_path / "tokyo.parquet").code == 0
    np.testing.assert_array_equal(store.load("m").frame["date"], _bars()["Date"])


def test_utc_offsets_in_text_are_converted_with_the_flag(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df["Date"] = df["Date"].dt.strftime("%Y-%m-%dT21:30:00-05:00")  # 02:30 UTC the next day
    df.to_csv(tmp_path / "off.csv", index=False)
    r = _import(cli, tmp_path / "off.csv")
    assert r.code == 2 and "'-05:00'" in r.err and "--timezone" in r.err, r.err
    r = _import(cli, tmp_path / "off.csv", "--timezone", "America/New_York")
    assert r.code == 0, r.err
    np.testing.assert_array_equal(store.load("m").frame["date"], _bars()["Date"])


@pytest.mark.parametrize("name", ["semi.csv.gz", "semi.csv"])
def test_gzip_files_are_read_through_and_their_delimiter_sniffed(name: str, tmp_path: Path, store: Store, cli) -> None:
    import gzip

    (tmp_path / name).write_bytes(gzip.compress(_bars().to_csv(index=False, sep=";").encode()))
    r = _import(cli, tmp_path / name)
    assert r.code == 0 and "gzip-compressed" in r.err and "semicolon-delimited" in r.err, r.err
    np.testing.assert_allclose(store.load("m").frame["close"], _bars()["Close"])


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path, store: Store, cli) -> None:
    (tmp_path / "u16.csv").write_bytes(_bars().to_csv(index=False, sep="\t").encode("utf-16"))
    assert _import(cli, tmp_path / "u16.csv").code == 0
    np.testing.assert_allclose(store.load("m").frame["close"], _bars()["Close"])


def test_unsorted_rows_are_sorted_and_the_summary_says_so(tmp_path: Path, store: Store, cli) -> None:
    _bars().sample(frac=1, random_state=0).to_csv(tmp_path / "shuffled.csv", index=False)
    r = _import(cli, tmp_path / "shuffled.csv")
    assert r.code == 0 and "rows sorted by date" in r.err, r.err
    np.testing.assert_array_equal(store.load("m").frame["date"], _bars()["Date"])


def test_the_flag_chooses_between_two_date_columns(tmp_path: Path, store: Store, cli) -> None:
    df = _bars().assign(date=lambda d: d["Date"] + pd.Timedelta(days=1))
    df.to_csv(tmp_path / "two.csv", index=False)
    assert _import(cli, tmp_path / "two.csv").code == 2
    assert _import(cli, tmp_path / "two.csv", "--date-column", "date").code == 0
    assert store.load("m").frame["date"].iloc[0] == pd.Timestamp("2001-01-03")


def test_allow_implausible_imports_an_unadjusted_split(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df.loc[200:, "Close"] *= 0.5
    df.to_csv(tmp_path / "split.csv", index=False)
    r = _import(cli, tmp_path / "split.csv")
    assert r.code == 2 and "--allow-implausible" in r.err and "2001-10-09" in r.err, r.err
    assert _import(cli, tmp_path / "split.csv", "--allow-implausible").code == 0


def test_old_dates_and_volatile_series_are_plausible(tmp_path: Path, store: Store, cli) -> None:
    rng = np.random.default_rng(1)  # 1850, 4% daily moves, one -50% day (17 sigmas, under 50): real-looking
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.04, 400)))
    close[250:] *= 0.5
    pd.DataFrame({"Date": pd.bdate_range("1850-01-02", periods=400), "Close": close}).to_csv(
        tmp_path / "old.csv", index=False)
    r = _import(cli, tmp_path / "old.csv")
    assert r.code == 0, r.err


def test_every_embedded_sample_passes_the_plausibility_checks() -> None:
    """The thresholds' margins: the samples' largest one-day move is log(3.0) (rrc) < log(4),
    their largest move over log(1.9) is 38.6 robust sigmas (rrc) < 50, their longest flat run
    69 bars (rrc) < 100, their prices 0.098 .. 4,797 inside 1e-6 .. 1e9."""
    from xfer.data import ingest

    samples = sorted((Path(ingest.__file__).parent / "samples").glob("*.parquet"))
    assert len(samples) >= 30
    worst = 0.0
    for f in samples:
        frame = pd.read_parquet(f)
        ingest.check_plausible(frame, f, {"close": "close", "date": "date"})
        worst = max(worst, float(np.abs(np.diff(np.log(frame["close"].to_numpy()))).max()))
    assert np.log(3.0) - 0.01 < worst < ingest.MAX_JUMP


def _huge_value(p: Path) -> None:
    df = _bars().astype({"Close": str})
    df.loc[5, "Close"] = "9" * 200_000 + "x"
    df.to_csv(p, index=False)


@pytest.mark.parametrize("case", ["header", "columns", "value", "flag"])
def test_messages_stay_short_whatever_the_file_holds(case: str, tmp_path: Path, cli) -> None:
    f = tmp_path / "f.csv"
    args: list[str] = []
    if case == "header":  # a 3 MB header line: refused from the first 64 KiB
        f.write_text("Date,Close," + "x" * 3_000_000 + "\n2001-01-02,1,2\n")
    elif case == "columns":
        f.write_text(",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n")
    elif case == "value":
        _huge_value(f)
    else:
        _bars().to_csv(f, index=False)
        args = ["--price-column", "p" * 100_000]
    r = _import(cli, f, *args)
    assert r.code == 2 and "Traceback" not in r.err, r.err[:2000]
    assert len(r.err) < 2_000, (len(r.err), r.err[:500])


@pytest.mark.parametrize("target", ["made", "/etc/passwd"])
def test_a_symlink_to_a_system_file_is_a_bad_csv_and_its_content_is_not_echoed(target: str, tmp_path: Path,
                                                                              cli) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\nsvc:x:1:1:Service,,,:/srv:/usr/sbin/nologin\n")
    real = secret if target == "made" else Path(target)
    if not real.is_file():
        pytest.skip(f"{target} is not here")
    (tmp_path / "f.csv").symlink_to(real)
    r = _import(cli, tmp_path / "f.csv")
    assert r.code == 2 and "Traceback" not in r.err
    for line in real.read_text(errors="replace").splitlines()[:50]:
        for part in line.split(":")[:1] + line.split(":")[4:6]:  # user names, GECOS and home fields
            if len(part) > 3:
                assert part not in r.err.replace(str(tmp_path), ""), (part, r.err)


def test_column_names_that_look_like_markup_are_printed_not_interpreted(tmp_path: Path, store: Store, cli) -> None:
    """A column named '[/]' crashed the import summary (rich MarkupError) after the market was written."""
    _bars().assign(**{"[/]": 1, "[bold]x": 2}).to_csv(tmp_path / "mk.csv", index=False)
    r = _import(cli, tmp_path / "mk.csv")
    assert r.code == 0 and "'[/]'" in r.err and "'[bold]x'" in r.err, r.err
    assert store.info("m").n_rows == 400


def test_angle_bracket_headers_are_no_html(tmp_path: Path, store: Store, cli) -> None:
    """Finam/MetaStock exports name columns '<DATE>;<CLOSE>': a table, not a web page."""
    df = _bars().rename(columns={"Date": "<DATE>", "Close": "<CLOSE>"})
    df.to_csv(tmp_path / "finam.csv", index=False, sep=";")
    r = _import(cli, tmp_path / "finam.csv", "--date-column", "<DATE>", "--price-column", "<CLOSE>")
    assert r.code == 0, r.err
