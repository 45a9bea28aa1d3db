"""Causal features in named families, and the labels they predict.

Rules (design.md, Data rules): a feature at day t uses bars up to and including t only;
the label is the future (t+1 .. t+h). Rolling statistics use trailing windows. Features are
kept in *families* because "what transfers" is asked per family:

- ``mean_reversion``: distance from moving averages, short-horizon reversal;
- ``volatility``: realised volatility at several horizons, vol-of-vol, ratios;
- ``momentum``: trailing returns over 20-250 days;
- ``market_structure``: volume, range, liquidity proxies. A feature whose input column is
  absent (no volume for WTI) is *masked*: left out and reported, never filled with a
  fabricated value.

Features here are raw (unnormalised): normalisation belongs to a split and is fitted on its
training window (:mod:`xfer.data.normalize`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from xfer.errors import XferInputError

TargetType = Literal["volatility", "return"]
TARGET_TYPES: tuple[str, ...] = ("volatility", "return")
DEFAULT_HORIZON: dict[str, int] = {"return": 1, "volatility": 5}
MAX_HORIZON: int = 250
"""Longest label horizon in bars (about a trading year), as in a study's ``task.horizon``."""
FAMILIES: tuple[str, ...] = ("mean_reversion", "volatility", "momentum", "market_structure")
ANNUAL = 252.0
_VAR_FLOOR = 1e-8  # daily variance floor (1 bp daily vol) so log-vol of a flat day is finite


@dataclass(frozen=True)
class Feature:
    """One feature: its family, the bar columns it needs, and a causal function of the bars."""

    family: str
    name: str
    needs: tuple[str, ...]
    fn: Callable[[pd.DataFrame, pd.Series], pd.Series]
    window: int
    """Trailing bars it looks at (warm-up); used to know how many leading rows are undefined."""

    @property
    def column(self) -> str:
        return f"{self.family}.{self.name}"


def _logret(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff()


def _log_rv(r: pd.Series, n: int) -> pd.Series:
    return 0.5 * np.log(ANNUAL * (r.pow(2).rolling(n).mean() + _VAR_FLOOR))


def _ma_gap(n: int) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    return lambda f, r: np.log(f["close"] / f["close"].rolling(n).mean())


def _trailing(n: int, skip: int = 0) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    def fn(f: pd.DataFrame, r: pd.Series) -> pd.Series:
        lc = np.log(f["close"])
        return lc.shift(skip) - lc.shift(n)

    return fn


def _zscore(n: int) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    def fn(f: pd.DataFrame, r: pd.Series) -> pd.Series:
        c = f["close"]
        sd = c.rolling(n).std()
        return (c - c.rolling(n).mean()) / sd.where(sd > 0)

    return fn


def _tsmom(n: int) -> Callable[[pd.DataFrame, pd.Series], pd.Series]:
    # Risk-adjusted trend: n-day return in units of its own n-day volatility.
    def fn(f: pd.DataFrame, r: pd.Series) -> pd.Series:
        sd = np.sqrt(r.pow(2).rolling(n).mean() + _VAR_FLOOR)
        return r.rolling(n).sum() / (sd * np.sqrt(n))

    return fn


def _vol_of_vol(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    return _log_rv(r, 5).rolling(20).std()


def _abs_ret(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    # Today's move in units of the trailing 60-day volatility (a GARCH-style shock).
    return r.abs() / np.sqrt(r.pow(2).rolling(60).mean() + _VAR_FLOOR)


def _log_volume(f: pd.DataFrame) -> pd.Series:
    return np.log1p(f["volume"].astype(float))


def _volume_z(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    lv = _log_volume(f)
    sd = lv.rolling(20).std()
    return (lv - lv.rolling(20).mean()) / sd.where(sd > 0)


def _volume_trend(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    lv = _log_volume(f)
    return lv.rolling(5).mean() - lv.rolling(60).mean()


def _amihud(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    # Amihud illiquidity (|return| per unit of traded value, 20 days), relative to its own
    # trailing year: the raw level drifts with the price level and across markets, so only
    # its deviation is comparable over time and between domains.
    dollar = (f["close"] * f["volume"]).astype(float)
    la = np.log((r.abs() / (dollar + 1.0)).rolling(20).mean() + 1e-15)
    return la - la.rolling(250).mean()


def _hl_range(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    return np.log(f["high"] / f["low"])


def _hl_range_20(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    return np.log(f["high"] / f["low"]).rolling(20).mean()


def _close_loc(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    width = f["high"] - f["low"]
    return ((f["close"] - f["low"]) / width.where(width > 0)).fillna(0.5)


def _log_spread_20(f: pd.DataFrame, r: pd.Series) -> pd.Series:
    return np.log(f["spread"].astype(float).clip(lower=1e-6)).rolling(20).mean()


FEATURES: tuple[Feature, ...] = (
    # mean reversion
    Feature("mean_reversion", "ma_gap_5", ("close",), _ma_gap(5), 5),
    Feature("mean_reversion", "ma_gap_20", ("close",), _ma_gap(20), 20),
    Feature("mean_reversion", "ma_gap_60", ("close",), _ma_gap(60), 60),
    Feature("mean_reversion", "zscore_20", ("close",), _zscore(20), 20),
    Feature("mean_reversion", "rev_1", ("close",), lambda f, r: r, 2),
    Feature("mean_reversion", "rev_5", ("close",), _trailing(5), 6),
    # volatility clustering
    Feature("volatility", "rv_5", ("close",), lambda f, r: _log_rv(r, 5), 6),
    Feature("volatility", "rv_20", ("close",), lambda f, r: _log_rv(r, 20), 21),
    Feature("volatility", "rv_60", ("close",), lambda f, r: _log_rv(r, 60), 61),
    Feature("volatility", "vol_of_vol_20", ("close",), _vol_of_vol, 25),
    Feature("volatility", "rv_ratio_5_60", ("close",), lambda f, r: _log_rv(r, 5) - _log_rv(r, 60), 61),
    Feature("volatility", "abs_ret_1", ("close",), _abs_ret, 61),
    # momentum
    Feature("momentum", "ret_20", ("close",), _trailing(20), 21),
    Feature("momentum", "ret_60", ("close",), _trailing(60), 61),
    Feature("momentum", "ret_120", ("close",), _trailing(120), 121),
    Feature("momentum", "ret_250_skip_20", ("close",), _trailing(250, 20), 251),
    Feature("momentum", "tsmom_60", ("close",), _tsmom(60), 61),
    # market structure (masked where the input column is absent)
    Feature("market_structure", "volume_z_20", ("volume",), _volume_z, 20),
    Feature("market_structure", "volume_trend_5_60", ("volume",), _volume_trend, 60),
    Feature("market_structure", "amihud_20", ("close", "volume"), _amihud, 270),
    Feature("market_structure", "hl_range", ("high", "low"), _hl_range, 1),
    Feature("market_structure", "hl_range_20", ("high", "low"), _hl_range_20, 20),
    Feature("market_structure", "close_loc", ("high", "low", "close"), _close_loc, 1),
    Feature("market_structure", "spread_20", ("spread",), _log_spread_20, 20),
)
WARMUP: int = max(f.window for f in FEATURES)
"""Leading bars for which some feature is undefined."""


def feature_columns(families: Sequence[str] | None = None) -> list[str]:
    """All feature column names (``family.name``) of the given families, in registry order."""
    fams = _check_families(families)
    return [f.column for f in FEATURES if f.family in fams]


def _check_families(families: Sequence[str] | None) -> tuple[str, ...]:
    if families is None:
        return FAMILIES
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"Unknown feature families {unknown}; valid: {list(FAMILIES)}")
    return tuple(families)


def compute_features(
    frame: pd.DataFrame, families: Sequence[str] | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """All available features for every bar (leading rows NaN during warm-up).

    Returns the feature table (``date`` + one column per feature) and the masked features
    with the reason, e.g. ``{"market_structure.volume_z_20": "needs volume"}``.
    """
    fams = _check_families(families)
    r = _logret(frame)
    cols: dict[str, pd.Series] = {}
    masked: dict[str, str] = {}
    for feat in FEATURES:
        if feat.family not in fams:
            continue
        missing = [c for c in feat.needs if c not in frame.columns]
        if missing:
            masked[feat.column] = f"needs {', '.join(missing)}"
            continue
        cols[feat.column] = feat.fn(frame, r).astype("float64").replace([np.inf, -np.inf], np.nan)
    out = pd.DataFrame({"date": frame["date"].to_numpy(), **{k: v.to_numpy() for k, v in cols.items()}})
    return out, masked


BASELINE_INPUTS = ("base.rv_1", "base.rv_5", "base.rv_22", "base.ewma")
"""Columns the practitioner baselines read (never model features): log annualised realised vol
over the last 1, 5 and 22 days (HAR-RV's daily, weekly and monthly terms) and the RiskMetrics
EWMA volatility (lambda = 0.94), all in the label's units and known at the close of day t."""
EWMA_LAMBDA = 0.94


def baseline_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The :data:`BASELINE_INPUTS` of every bar (causal: day t uses returns up to t only)."""
    r = _logret(frame)
    ewma_var = r.pow(2).ewm(alpha=1.0 - EWMA_LAMBDA, adjust=False).mean()
    cols = {
        "base.rv_1": _log_rv(r, 1), "base.rv_5": _log_rv(r, 5), "base.rv_22": _log_rv(r, 22),
        "base.ewma": 0.5 * np.log(ANNUAL * (ewma_var + _VAR_FLOOR)),
    }
    return pd.DataFrame({k: v.to_numpy(np.float64) for k, v in cols.items()})


def compute_target(frame: pd.DataFrame, target: TargetType, horizon: int) -> pd.Series:
    """Label of day t: the future over t+1 .. t+h (NaN for the last h rows).

    ``return``: log return from close t to close t+h.
    ``volatility``: log annualised realised volatility of the daily returns t+1 .. t+h.
    """
    if target not in TARGET_TYPES:
        raise ValueError(f"Unknown target {target!r}; valid: {list(TARGET_TYPES)}")
    if horizon < 1:
        raise ValueError(f"The 'horizon' parameter must be >= 1. Got {horizon} instead.")
    r = _logret(frame)
    if target == "return":
        lc = np.log(frame["close"])
        y = lc.shift(-horizon) - lc
    else:
        # mean of r^2 over t+1..t+h = trailing mean at t+h, shifted back by h
        y = _log_rv(r, horizon).shift(-horizon)
    return y.astype("float64").rename("target")


@dataclass
class FeatureMatrix:
    """Model-ready rows of one market: ``date``, features, ``target``, then the baselines'
    inputs (:data:`BASELINE_INPUTS`, not features); no NaN anywhere."""

    data: pd.DataFrame
    feature_names: list[str]
    masked: dict[str, str] = field(default_factory=dict)
    target: str = "volatility"
    horizon: int = 5

    @property
    def families(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.feature_names:
            out.setdefault(c.split(".", 1)[0], []).append(c)
        return out

    def x(self, columns: Sequence[str] | None = None) -> np.ndarray:
        return self.data[list(columns or self.feature_names)].to_numpy(np.float32)

    def y(self) -> np.ndarray:
        return self.data["target"].to_numpy(np.float32)


def build_features(
    frame: pd.DataFrame,
    target: TargetType = "volatility",
    horizon: int | None = None,
    families: Sequence[str] | None = None,
) -> FeatureMatrix:
    """Features and label of a market, with warm-up and label-less tail rows dropped."""
    h = DEFAULT_HORIZON[target] if horizon is None and target in DEFAULT_HORIZON else horizon
    assert h is not None
    if isinstance(h, int | np.integer) and not isinstance(h, bool) and h > MAX_HORIZON:
        raise XferInputError(field="horizon", expected=f"an integer from 1 to {MAX_HORIZON} (bars)", found=str(h))
    feats, masked = compute_features(frame, families)
    feats["target"] = compute_target(frame, target, h).to_numpy()
    names = [c for c in feats.columns if c not in ("date", "target")]
    # A column that is undefined for the whole market (e.g. constant volume) is masked too.
    for c in list(names):
        if feats[c].iloc[WARMUP:].isna().mean() > 0.5:
            masked[c] = "undefined on most rows"
            names.remove(c)
    base = baseline_inputs(frame)
    for c in BASELINE_INPUTS:
        feats[c] = base[c].to_numpy()
    data = feats[["date", *names, "target", *BASELINE_INPUTS]].dropna().reset_index(drop=True)
    if data.empty:
        raise XferInputError(
            field="horizon",
            expected=f"a horizon that leaves model-ready rows after the {WARMUP}-bar feature warm-up",
            found=f"horizon {h} on {len(frame)} bars: no row has both features and a label",
            hint="use a shorter --horizon or a longer market",
        )
    return FeatureMatrix(data=data, feature_names=names, masked=masked, target=target, horizon=h)
