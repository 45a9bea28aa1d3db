"""Ground-truth synthetic markets for known-answer transfer-learning studies.

Real markets never tell us what their dynamics are, so a transfer study run only on real data
cannot tell "the method failed" apart from "there was nothing to transfer". This module builds
markets whose return dynamics are *set by hand*: every parameter of :class:`SynthSpec` is the
truth that a test (or a user) can check a model or an estimator against, and :func:`pair_specs`
/ :func:`chain_specs` build source/target markets whose relation is known by construction.

Daily log-return process, for t = 1..n::

    r_t = mu + phi * r_{t-1} + m * (1/L) * sum_{i=1..L} r_{t-i} + s_{k_t} * e_t
    e_t = sigma_t * z_t
    sigma_t^2 = omega + alpha * e_{t-1}^2 + beta * sigma_{t-1}^2
    omega = (vol^2 / 252) * (1 - alpha - beta)

with z_t standard normal (or unit-variance Student-t), and k_t a two-state Markov chain
(0 = calm, 1 = stress) that scales the innovation by s_0 = 1 or s_1 = ``regime_vol_mult``.
Volume, bid-ask spread and intraday open/high/low are derived from the same shocks so that the
market-structure features carry the same (known) volatility information as the returns.

Everything is seeded through ``numpy.random.default_rng(seed)``; no global random state is read
or written, and the same spec + seed gives a bit-identical frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from scipy.optimize import minimize
from scipy.signal import lfilter

__all__ = [
    "BRIDGE_WEIGHT",
    "COLUMNS",
    "DEFAULT_SOURCE",
    "RELATIONS",
    "REVERSAL_DYNAMICS",
    "TRADING_DAYS",
    "TREND_DYNAMICS",
    "SynthSpec",
    "chain_specs",
    "estimate_ar1",
    "estimate_ar_momentum",
    "estimate_garch11",
    "estimate_momentum",
    "pair_specs",
    "simulate",
]

TRADING_DAYS = 252
"""Trading days per year used to turn the annualised ``vol`` into a daily variance."""

RELATIONS: tuple[str, ...] = ("shared", "opposite", "unrelated", "bridge", "shifted")
"""Names accepted by :func:`pair_specs` ("bridge" is served by :func:`chain_specs`)."""

COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume", "spread", "regime")
"""Columns of the frame returned by :func:`simulate`, in order."""


def _msg(field: str, expected: str, found: object) -> str:
    """Build the uniform validation message, so every error names the field, rule and value."""
    return f"The '{field}' field of SynthSpec must be {expected}. Got {found!r} instead."


class SynthSpec(BaseModel):
    """Parameters of one synthetic market; each one is a ground truth that tests check against.

    The model is frozen so a spec can be shared between the source and target of a study (and
    hashed / logged) without one side mutating the other's truth; ``extra="forbid"`` catches a
    misspelt parameter that would otherwise silently fall back to its default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mu: float = Field(0.0, description="Constant daily drift of the log return.")
    phi: float = Field(
        0.0,
        description="AR(1) coefficient on r_{t-1}: <0 short-horizon mean reversion, >0 continuation.",
    )
    momentum: float = Field(
        0.0,
        description="Coefficient m on the trailing-L mean return: >0 trend following, <0 reversal.",
    )
    momentum_lookback: int = Field(
        20, description="Window L (days) of the trailing mean return that drives momentum."
    )
    vol: float = Field(
        0.2,
        description="Unconditional annualised volatility of the GARCH innovation e_t (calm regime).",
    )
    garch_alpha: float = Field(0.08, description="GARCH(1,1) ARCH weight on e_{t-1}^2 (reaction).")
    garch_beta: float = Field(0.9, description="GARCH(1,1) weight on sigma_{t-1}^2 (persistence).")
    t_dof: float | None = Field(
        None, description="Student-t degrees of freedom of z_t (unit variance); None = Gaussian."
    )
    regime_vol_mult: float = Field(
        1.0, description="Volatility multiplier s_1 of the stress regime (1.0 = no regime effect)."
    )
    regime_p_stay_calm: float = Field(
        0.99, description="Probability that a calm day (k=0) is followed by another calm day."
    )
    regime_p_stay_stress: float = Field(
        0.97, description="Probability that a stress day (k=1) is followed by another stress day."
    )
    volume_level: float = Field(
        1e6, description="Typical daily volume; exp of the log-volume level."
    )
    volume_vol_beta: float = Field(
        0.3, description="Loading of log volume on the standardised absolute shock |innovation|/sd."
    )
    volume_ar: float = Field(
        0.7, description="AR(1) coefficient of the idiosyncratic log-volume noise."
    )
    volume_noise: float = Field(
        0.2, description="Stationary standard deviation of the idiosyncratic log-volume noise."
    )
    spread_bps: float = Field(
        5.0, description="Bid-ask spread in basis points when conditional vol equals its level."
    )
    spread_vol_beta: float = Field(
        1.0,
        description="Elasticity of the spread to the conditional-vol ratio (0 = constant spread).",
    )
    overnight_share: float = Field(
        0.2,
        description="Fraction of the day's innovation realised overnight (open vs prior close).",
    )
    burn_in: int = Field(
        500, description="Extra simulated days dropped so the kept series starts near stationarity."
    )
    start_price: float = Field(
        100.0,
        description="Close of the (unseen) day before the first row; anchors the price level.",
    )

    @field_validator("phi", "momentum")
    @classmethod
    def _check_unit_interval(cls, value: float, info: ValidationInfo) -> float:
        """Each predictability coefficient alone must keep the AR polynomial invertible."""
        if not -1.0 < value < 1.0:
            raise ValueError(_msg(info.field_name, "in the open interval (-1, 1)", value))
        return value

    @field_validator("momentum_lookback")
    @classmethod
    def _check_lookback(cls, value: int) -> int:
        """L = 1 would make the momentum term identical to the AR(1) term (not identifiable)."""
        if value < 2:
            raise ValueError(_msg("momentum_lookback", "an integer >= 2", value))
        return value

    @field_validator("vol", "volume_level", "spread_bps", "start_price")
    @classmethod
    def _check_positive(cls, value: float, info: ValidationInfo) -> float:
        """Scales and levels enter through logs or divisions, so they must be strictly positive."""
        if value <= 0.0:
            raise ValueError(_msg(info.field_name, "> 0", value))
        return value

    @field_validator("regime_vol_mult")
    @classmethod
    def _check_regime_mult(cls, value: float) -> float:
        """A non-positive multiplier would zero or flip the stress-regime innovations."""
        if value <= 0.0:
            raise ValueError(_msg("regime_vol_mult", "> 0", value))
        return value

    @field_validator("garch_alpha", "garch_beta", "volume_noise")
    @classmethod
    def _check_non_negative(cls, value: float, info: ValidationInfo) -> float:
        """Variance weights and noise scales must be >= 0 for sigma_t^2 and std to be valid."""
        if value < 0.0:
            raise ValueError(_msg(info.field_name, ">= 0", value))
        return value

    @field_validator("regime_p_stay_calm", "regime_p_stay_stress", "overnight_share")
    @classmethod
    def _check_probability(cls, value: float, info: ValidationInfo) -> float:
        """Probabilities and shares live in [0, 1]."""
        if not 0.0 <= value <= 1.0:
            raise ValueError(_msg(info.field_name, "in [0, 1]", value))
        return value

    @field_validator("volume_ar")
    @classmethod
    def _check_volume_ar(cls, value: float) -> float:
        """|volume_ar| < 1 keeps the log-volume noise stationary with a finite std."""
        if not -1.0 < value < 1.0:
            raise ValueError(_msg("volume_ar", "in the open interval (-1, 1)", value))
        return value

    @field_validator("t_dof")
    @classmethod
    def _check_t_dof(cls, value: float | None) -> float | None:
        """A Student-t needs dof > 2 to have the finite variance we rescale to 1."""
        if value is not None and value <= 2.0:
            raise ValueError(_msg("t_dof", "None or > 2 (finite variance)", value))
        return value

    @field_validator("burn_in")
    @classmethod
    def _check_burn_in(cls, value: int) -> int:
        """A negative number of dropped days is meaningless."""
        if value < 0:
            raise ValueError(_msg("burn_in", ">= 0", value))
        return value

    @model_validator(mode="after")
    def _check_stationarity(self) -> SynthSpec:
        """Reject non-stationary specs, whose "unconditional" truths would not exist.

        |phi| + |m| < 1 bounds the sum of absolute AR coefficients below 1 (a sufficient
        condition for a stationary return process); alpha + beta < 1 is covariance
        stationarity of the GARCH(1,1), needed for ``vol`` to be the unconditional level.
        """
        total = abs(self.phi) + abs(self.momentum)
        if total >= 1.0:
            raise ValueError(
                f"The 'phi' and 'momentum' fields of SynthSpec must satisfy |phi| + |momentum| < 1 "
                f"(stationary returns). Got |{self.phi!r}| + |{self.momentum!r}| = {total!r} instead."
            )
        persistence = self.garch_alpha + self.garch_beta
        if persistence >= 1.0:
            raise ValueError(
                f"The 'garch_alpha' and 'garch_beta' fields of SynthSpec must satisfy "
                f"garch_alpha + garch_beta < 1 (covariance-stationary GARCH). "
                f"Got {self.garch_alpha!r} + {self.garch_beta!r} = {persistence!r} instead."
            )
        return self

    @property
    def daily_var(self) -> float:
        """Unconditional daily variance of e_t; the unit for volume and spread scaling."""
        return self.vol**2 / TRADING_DAYS

    @property
    def garch_omega(self) -> float:
        """GARCH intercept implied by ``vol`` (variance targeting)."""
        return self.daily_var * (1.0 - self.garch_alpha - self.garch_beta)

    @property
    def stress_share(self) -> float:
        """Stationary probability of the stress regime (0 if the chain never leaves calm)."""
        leave_calm = 1.0 - self.regime_p_stay_calm
        leave_stress = 1.0 - self.regime_p_stay_stress
        denom = leave_calm + leave_stress
        return 0.0 if denom == 0.0 else leave_calm / denom


def _mean_abs_z(t_dof: float | None) -> float:
    """E|z| of the unit-variance shock, used to centre the volume response at zero."""
    if t_dof is None:
        return math.sqrt(2.0 / math.pi)
    nu = t_dof
    raw = (
        2.0
        * math.sqrt(nu)
        * math.exp(math.lgamma((nu + 1.0) / 2.0) - math.lgamma(nu / 2.0))
        / (math.sqrt(math.pi) * (nu - 1.0))
    )
    return raw * math.sqrt((nu - 2.0) / nu)


def _check_int(name: str, value: object, minimum: int) -> int:
    """Validate an integer argument of a public function (bools are rejected on purpose)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"The '{name}' argument must be an int. Got {value!r} instead.")
    if value < minimum:
        raise ValueError(f"The '{name}' argument must be >= {minimum}. Got {value!r} instead.")
    return int(value)


def _simulate_core(
    spec: SynthSpec, total: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the recursive part (regimes, GARCH, AR + momentum) for ``total`` days.

    All shocks are drawn up front as arrays; the recursion itself is a plain loop over Python
    floats, which is much faster per step than indexing numpy scalars and needs no numba.
    Returns (returns, innovations s_k * e_t, conditional daily sd sigma_t * s_k, regimes).
    """
    z = rng.standard_normal(total) if spec.t_dof is None else rng.standard_t(spec.t_dof, total)
    if spec.t_dof is not None:
        z *= math.sqrt((spec.t_dof - 2.0) / spec.t_dof)
    u = rng.random(total + 1)

    regimes = np.empty(total, dtype=np.int64)
    p_stay = (spec.regime_p_stay_calm, spec.regime_p_stay_stress)
    k = 1 if u[0] < spec.stress_share else 0  # start the chain in its stationary distribution
    for t, draw in enumerate(u[1:].tolist()):
        k = k if draw < p_stay[k] else 1 - k
        regimes[t] = k

    mults = np.where(regimes == 1, spec.regime_vol_mult, 1.0)
    lookback = spec.momentum_lookback
    mu, phi, mom_per_lag = spec.mu, spec.phi, spec.momentum / lookback
    omega, alpha, beta = spec.garch_omega, spec.garch_alpha, spec.garch_beta
    # Start every lag at its unconditional value so burn-in only has to forget the shocks.
    r_bar = mu / (1.0 - phi - spec.momentum)
    window = [r_bar] * lookback
    window_sum = r_bar * lookback
    r_prev = r_bar
    sig2 = spec.daily_var
    e_prev_sq = spec.daily_var

    returns = [0.0] * total
    innovations = [0.0] * total
    cond_sd = [0.0] * total
    slot = 0
    for t, (z_t, s_t) in enumerate(zip(z.tolist(), mults.tolist(), strict=True)):
        sig2 = omega + alpha * e_prev_sq + beta * sig2
        sd = math.sqrt(sig2)
        e_t = sd * z_t
        innov = s_t * e_t
        r_t = mu + phi * r_prev + mom_per_lag * window_sum + innov
        returns[t] = r_t
        innovations[t] = innov
        cond_sd[t] = sd * s_t
        window_sum += r_t - window[slot]
        window[slot] = r_t
        slot = slot + 1 if slot + 1 < lookback else 0
        r_prev = r_t
        e_prev_sq = e_t * e_t
    return np.asarray(returns), np.asarray(innovations), np.asarray(cond_sd), regimes


def simulate(spec: SynthSpec, n_days: int, seed: int, start: str = "2000-01-03") -> pd.DataFrame:
    """Simulate ``n_days`` business days of one synthetic market whose truth is ``spec``.

    ``spec.burn_in`` extra days are simulated first and dropped, so the kept series starts
    from (approximately) the stationary distribution rather than from the hand-picked initial
    state; the price is then re-anchored so the close of the day before the first row is
    ``spec.start_price``. Consequently ``log(close_t / close_{t-1})`` reproduces r_t exactly
    (up to float rounding) for every row after the first.

    Market structure (all driven by the same shocks, so their information content is known):

    * ``open_t = close_{t-1} * exp(overnight_share * innovation_t)``: part of the day's shock
      arrives overnight.
    * ``high = max(open, close) * exp(|N(0,1)| * 0.5 * sd_t)`` and
      ``low = min(open, close) * exp(-|N(0,1)| * 0.5 * sd_t)``, with ``sd_t = sigma_t * s_k``,
      so ``low <= min(open, close) <= max(open, close) <= high`` holds by construction.
    * ``log volume = log(volume_level) + volume_vol_beta * (|innovation_t| / sqrt(daily_var)
      - E|z|) + u_t``, with u_t an AR(``volume_ar``) noise of stationary std ``volume_noise``.
    * ``spread = spread_bps * (sd_t / sqrt(daily_var)) ** spread_vol_beta`` (basis points).

    Args:
        spec: ground-truth parameters.
        n_days: number of rows to return (>= 1).
        seed: seed for ``numpy.random.default_rng``; the only source of randomness.
        start: first business day (rolled forward to a business day if it is not one).

    Returns:
        Frame with columns date (datetime64[ns]), open, high, low, close, volume, spread
        (floats) and regime (int64: 0 calm, 1 stress), one row per business day.
    """
    if not isinstance(spec, SynthSpec):
        raise TypeError(f"The 'spec' argument must be a SynthSpec. Got {type(spec).__name__}.")
    n_days = _check_int("n_days", n_days, 1)
    seed = _check_int("seed", seed, 0)
    try:
        dates = pd.bdate_range(start=pd.Timestamp(start), periods=n_days).as_unit("ns")
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"The 'start' argument must be a parseable date. Got {start!r} instead."
        ) from exc

    rng = np.random.default_rng(seed)
    total = spec.burn_in + n_days
    returns, innovations, cond_sd, regimes = _simulate_core(spec, total, rng)
    keep = slice(spec.burn_in, total)
    returns, innovations, cond_sd, regimes = (
        returns[keep],
        innovations[keep],
        cond_sd[keep],
        regimes[keep],
    )

    # Volume noise: AR(1) with innovation std chosen so the *stationary* std is volume_noise.
    eta = rng.standard_normal(total)
    noise_scale = spec.volume_noise * math.sqrt(1.0 - spec.volume_ar**2)
    u0 = spec.volume_noise * eta[0]
    vol_noise = lfilter([noise_scale], [1.0, -spec.volume_ar], eta[1:], zi=[spec.volume_ar * u0])[0]
    vol_noise = np.concatenate(([u0], vol_noise))[keep]
    range_draws = np.abs(rng.standard_normal((2, n_days)))

    unit_sd = math.sqrt(spec.daily_var)
    log_close = math.log(spec.start_price) + np.cumsum(returns)
    log_prev = np.concatenate(([math.log(spec.start_price)], log_close[:-1]))
    close = np.exp(log_close)
    open_ = np.exp(log_prev + spec.overnight_share * innovations)
    high = np.maximum(open_, close) * np.exp(range_draws[0] * 0.5 * cond_sd)
    low = np.minimum(open_, close) * np.exp(-range_draws[1] * 0.5 * cond_sd)
    log_volume = (
        math.log(spec.volume_level)
        + spec.volume_vol_beta * (np.abs(innovations) / unit_sd - _mean_abs_z(spec.t_dof))
        + vol_noise
    )
    volume = np.exp(log_volume)
    spread = spec.spread_bps * (cond_sd / unit_sd) ** spec.spread_vol_beta

    prices = np.stack([open_, high, low, close, volume, spread])
    if not (np.all(np.isfinite(prices)) and np.all(prices > 0.0)):
        raise ValueError(
            "The simulated prices/volume/spread overflowed or underflowed to a non-positive value; "
            "reduce |mu|, vol or n_days (the SynthSpec is valid but too extreme for float64)."
        )
    return pd.DataFrame(
        {
            "date": dates,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "spread": spread,
            "regime": regimes.astype(np.int64),
        },
        columns=list(COLUMNS),
    )


# --------------------------------------------------------------------------------------------
# Source / target construction with a known relation
# --------------------------------------------------------------------------------------------

DEFAULT_SOURCE = SynthSpec(phi=0.0, momentum=0.6)
"""Default source market: a trend follower (m = 0.6, L = 20) with the default GARCH(0.08, 0.9).

It carries clear, learnable predictability, so a relation that keeps or flips it is testable.
"""

TREND_DYNAMICS: dict[str, float] = {"phi": 0.0, "momentum": 0.6}
"""Return predictability of the "opposite" / "bridge" source: time-series momentum."""

REVERSAL_DYNAMICS: dict[str, float] = {"phi": -0.35, "momentum": -0.3}
"""Return predictability of the "opposite" / "bridge" target: short-horizon mean reversion."""

BRIDGE_WEIGHT = 2.0 / 3.0
"""Position of the "bridge" intermediate on the source -> target path (closer to the target)."""


def pair_specs(relation: str, base: SynthSpec | None = None) -> tuple[SynthSpec, SynthSpec]:
    """Return ``(source_spec, target_spec)`` whose relation is known by construction.

    ``base`` (default :data:`DEFAULT_SOURCE`: phi=0, momentum=0.6, L=20, vol=0.2,
    GARCH alpha=0.08, beta=0.9) supplies every parameter the relation does not pin. The relations
    are the known answers of later transfer tests:

    * ``"shared"``: same return dynamics. source = base; the target keeps phi, momentum,
      lookback, GARCH alpha/beta, t_dof and regimes, and only changes *levels*:
      vol x 1.15, volume_level x 0.1, spread_bps x 3, start_price x 0.25. A model of
      standardised returns should transfer perfectly.
    * ``"opposite"``: opposite return predictability, shared volatility dynamics. The source
      trends (phi=0.0, momentum=0.6); the target mean-reverts at short horizon (phi=-0.35,
      momentum=-0.3). Both pin these values (base's phi/momentum are overridden) and keep
      base's GARCH, so volatility clustering is shared. Naive transfer of the return sign
      should *hurt*.
    * ``"unrelated"``: no return predictability in the target (phi=0, momentum=0), different
      volatility dynamics (garch_alpha=0.1, garch_beta=0.4, persistence 0.5 instead of 0.98)
      and fat tails (t_dof=5). source = base. Transfer should not help the return forecast.
    * ``"shifted"``: covariate shift with the same conditional mean dynamics. source = base;
      the target keeps phi, momentum, lookback and GARCH, but adds stress regimes
      (regime_vol_mult=3.0, p_stay_calm=0.98, p_stay_stress=0.95), volume_vol_beta=1.0 (volume
      reacts ~3x more to shocks), volume_level x 0.2 and spread_bps x 4 with
      spread_vol_beta=1.5. Feature distributions differ in shape (mixture of vol regimes, heavier
      tails, more convex spreads) while the mapping from past returns to the expected next
      return is identical.
    * ``"bridge"``: needs three markets; use :func:`chain_specs` (this raises ValueError).

    Raises:
        ValueError: for "bridge" or an unknown relation (the message lists valid names).
    """
    if relation == "bridge":
        raise ValueError(
            "The 'bridge' relation has three markets (source, intermediate, target); "
            "use chain_specs() instead of pair_specs('bridge')."
        )
    if relation not in RELATIONS:
        raise ValueError(
            f"Unknown relation {relation!r}; valid names are {', '.join(RELATIONS)} "
            f"('bridge' via chain_specs())."
        )
    base = DEFAULT_SOURCE if base is None else base
    if relation == "shared":
        target = base.model_copy(
            update={
                "vol": base.vol * 1.15,
                "volume_level": base.volume_level * 0.1,
                "spread_bps": base.spread_bps * 3.0,
                "start_price": base.start_price * 0.25,
            }
        )
        return base, _revalidate(target)
    if relation == "opposite":
        source = _revalidate(base.model_copy(update=TREND_DYNAMICS))
        target = _revalidate(base.model_copy(update=REVERSAL_DYNAMICS))
        return source, target
    if relation == "unrelated":
        target = base.model_copy(
            update={
                "phi": 0.0,
                "momentum": 0.0,
                "garch_alpha": 0.1,
                "garch_beta": 0.4,
                "t_dof": 5.0,
            }
        )
        return base, _revalidate(target)
    # relation == "shifted"
    target = base.model_copy(
        update={
            "regime_vol_mult": 3.0,
            "regime_p_stay_calm": 0.98,
            "regime_p_stay_stress": 0.95,
            "volume_vol_beta": 1.0,
            "volume_level": base.volume_level * 0.2,
            "spread_bps": base.spread_bps * 4.0,
            "spread_vol_beta": 1.5,
        }
    )
    return base, _revalidate(target)


def chain_specs(
    base: SynthSpec | None = None, weight: float = BRIDGE_WEIGHT
) -> tuple[SynthSpec, SynthSpec, SynthSpec]:
    """Return ``(source, intermediate, target)`` for the "bridge" relation.

    Source and target are the "opposite" pair (source phi=0.0, momentum=0.6; target phi=-0.35,
    momentum=-0.3), and the target is additionally a smaller, costlier market (volume_level
    x 0.1, spread_bps x 3 of base). The intermediate lies on the straight line between them in
    parameter space at ``weight`` (default 2/3, i.e. closer to the target): phi and momentum are
    interpolated linearly (phi=-0.2333, momentum=0.0 by default) and volume_level / spread_bps
    geometrically. It lets a study test whether going source -> intermediate -> target beats
    jumping straight from source to target.
    """
    if not 0.0 < weight < 1.0:
        raise ValueError(f"The 'weight' argument must be in (0, 1). Got {weight!r} instead.")
    source, target = pair_specs("opposite", base)
    target = _revalidate(
        target.model_copy(
            update={
                "volume_level": target.volume_level * 0.1,
                "spread_bps": target.spread_bps * 3.0,
            }
        )
    )

    def lin(name: str) -> float:
        a, b = getattr(source, name), getattr(target, name)
        return round((1.0 - weight) * a + weight * b, 12)  # round: 0.0 stays 0.0, not 1e-16

    def geo(name: str) -> float:
        a, b = getattr(source, name), getattr(target, name)
        return math.exp(math.log(a) + weight * (math.log(b) - math.log(a)))

    intermediate = source.model_copy(
        update={
            "phi": lin("phi"),
            "momentum": lin("momentum"),
            "volume_level": geo("volume_level"),
            "spread_bps": geo("spread_bps"),
        }
    )
    return source, _revalidate(intermediate), target


def _revalidate(spec: SynthSpec) -> SynthSpec:
    """``model_copy(update=...)`` skips validation; rebuild so derived specs obey the rules too."""
    return SynthSpec.model_validate(spec.model_dump())


# --------------------------------------------------------------------------------------------
# Estimators used to check a market's truth
# --------------------------------------------------------------------------------------------


def _as_returns(returns: Sequence[float] | np.ndarray | pd.Series, min_len: int) -> np.ndarray:
    """Coerce to a finite 1-D float array long enough for the estimator at hand."""
    x = np.asarray(returns, dtype=float).ravel()
    if x.size < min_len:
        raise ValueError(f"Need at least {min_len} returns, got {x.size}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("Returns must be finite (drop NaNs first).")
    return x


def estimate_ar1(returns: Sequence[float] | np.ndarray | pd.Series) -> float:
    """OLS slope of r_t on r_{t-1} (with intercept).

    Equals ``phi`` in expectation when ``momentum == 0``; with momentum it is the first-order
    autocorrelation, which is why :func:`estimate_ar_momentum` exists for the joint model.
    """
    x = _as_returns(returns, 3)
    y, lag = x[1:], x[:-1]
    lag_c = lag - lag.mean()
    return float(np.dot(lag_c, y - y.mean()) / np.dot(lag_c, lag_c))


def _trailing_mean(x: np.ndarray, lookback: int) -> np.ndarray:
    """Mean of x[t-L..t-1] for t = L..n-1 (vectorised via a cumulative sum)."""
    csum = np.concatenate(([0.0], np.cumsum(x)))
    return (csum[lookback:-1] - csum[: -lookback - 1]) / lookback


def estimate_ar_momentum(
    returns: Sequence[float] | np.ndarray | pd.Series, lookback: int
) -> tuple[float, float]:
    """Joint OLS of r_t on [1, r_{t-1}, trailing-L mean]; returns (phi_hat, momentum_hat).

    This is exactly the conditional-mean equation of :func:`simulate`, so both coefficients
    are consistent for the spec's ``phi`` and ``momentum`` at the same time.
    """
    lookback = _check_int("lookback", lookback, 1)
    x = _as_returns(returns, lookback + 3)
    y = x[lookback:]
    design = np.column_stack([np.ones_like(y), x[lookback - 1 : -1], _trailing_mean(x, lookback)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(coef[1]), float(coef[2])


def estimate_momentum(returns: Sequence[float] | np.ndarray | pd.Series, lookback: int) -> float:
    """OLS coefficient of r_t on its trailing-``lookback`` mean, controlling for r_{t-1}.

    The control matters: the trailing mean contains r_{t-1}, so a univariate regression would
    absorb ``phi / L``-type leakage and misstate ``momentum`` whenever phi != 0.
    """
    return estimate_ar_momentum(returns, lookback)[1]


def _garch_unpack(theta: np.ndarray) -> tuple[float, float, float]:
    """Map unconstrained parameters to omega > 0, alpha >= 0, beta >= 0, alpha + beta < 1."""
    omega = math.exp(theta[0])
    persistence = 1.0 / (1.0 + math.exp(-theta[1]))
    share = 1.0 / (1.0 + math.exp(-theta[2]))
    return omega, persistence * share, persistence * (1.0 - share)


def estimate_garch11(
    returns: Sequence[float] | np.ndarray | pd.Series,
) -> tuple[float, float, float]:
    """Gaussian quasi-MLE of a GARCH(1,1) on demeaned returns; returns (omega, alpha, beta).

    Fit to residuals (not raw returns) when the series has strong predictability. The series is
    standardised before fitting for numerical conditioning (omega is rescaled back), the
    variance recursion runs through ``scipy.signal.lfilter`` (vectorised, so each likelihood
    evaluation is cheap), and the constraints are enforced by reparametrisation. Two starting
    points (high and moderate persistence) guard against a flat likelihood region.
    """
    x = _as_returns(returns, 50)
    e = x - x.mean()
    scale = float(e.std())
    if scale == 0.0:
        raise ValueError("Returns have zero variance; GARCH is not identified.")
    u2 = (e / scale) ** 2
    lagged = np.concatenate(([1.0], u2[:-1]))  # backcast e_0^2 with the sample variance (= 1)

    def nll(theta: np.ndarray) -> float:
        omega, alpha, beta = _garch_unpack(theta)
        sig2 = lfilter([1.0], [1.0, -beta], omega + alpha * lagged, zi=[beta])[0]
        return 0.5 * float(np.sum(np.log(sig2) + u2 / sig2))

    best = None
    for persistence, share in ((0.95, 0.1), (0.6, 0.3)):
        start = np.array(
            [
                math.log(1.0 - persistence),
                math.log(persistence / (1.0 - persistence)),
                math.log(share / (1.0 - share)),
            ]
        )
        fit = minimize(nll, start, method="L-BFGS-B")
        if best is None or fit.fun < best.fun:
            best = fit
    assert best is not None
    omega, alpha, beta = _garch_unpack(best.x)
    return omega * scale**2, alpha, beta


# --------------------------------------------------------------------------- into the store

SYNTH_END = "2022-12-30"
"""Every market of a synthetic set ends on this day (the target is the younger market)."""


def write_set(
    store: Any,
    relation: str,
    *,
    prefix: str | None = None,
    n_source: int = 6000,
    n_target: int = 2500,
    seed: int = 0,
    replace: bool = False,
) -> list[str]:
    """Simulate a related set (source, [intermediate,] target) into ``store``; return the ids.

    All markets end on the same day, so a source cut before the target's test period keeps
    most of its history, as a decades-long equity series does next to a young ETF. The spec,
    seed and role of each market are stored in its catalog entry: the ground truth.
    """
    prefix = prefix or f"syn_{relation}"
    if relation == "bridge":
        s, m, t = chain_specs()
        plan = [(f"{prefix}_src", s, n_source, "source"), (f"{prefix}_mid", m, n_source, "intermediate"),
                (f"{prefix}_tgt", t, n_target, "target")]
    else:
        s, t = pair_specs(relation)
        plan = [(f"{prefix}_src", s, n_source, "source"), (f"{prefix}_tgt", t, n_target, "target")]
    return [write_market(store, mid, spec, n, seed + 1000 * k, relation=relation, role=role, replace=replace)
            for k, (mid, spec, n, role) in enumerate(plan)]


def write_market(store: Any, market_id: str, spec: SynthSpec, n_days: int, seed: int, *,
                 relation: str | None = None, role: str = "single", replace: bool = False) -> str:
    """Simulate one market ending on :data:`SYNTH_END` into ``store``; return its id."""
    from xfer.data.store import info_for_frame

    store.check_new(market_id, replace=replace)
    start = pd.bdate_range(end=SYNTH_END, periods=n_days)[0].strftime("%Y-%m-%d")
    frame = simulate(spec, n_days=n_days, seed=seed, start=start).drop(columns=["regime"])
    info = info_for_frame(
        frame, id=market_id, name=f"synthetic {relation or 'market'} {role}", asset_class="equity",
        region="synthetic", liquidity_tier="unknown", source="xfer.data.synthetic", licence="CC0",
        tags=("synthetic", *((f"syn_{relation}",) if relation else ())), synthetic=True,
        synth_params={"spec": spec.model_dump(), "seed": seed, "n_days": n_days,
                      "relation": relation, "role": role},
    )
    store.add(frame, info, replace=replace)
    return market_id
