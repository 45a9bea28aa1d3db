"""Known-answer tests for the synthetic market generator.

Each test sets a ground-truth parameter, simulates with a fixed seed and checks that an
independent estimator recovers it. Tolerances are ~3 standard errors of the estimator at the
chosen length (measured over seeds), so a wrong generator fails while a correct one passes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from xfer.data.synthetic import (
    RELATIONS,
    SynthSpec,
    chain_specs,
    estimate_ar1,
    estimate_ar_momentum,
    estimate_garch11,
    estimate_momentum,
    pair_specs,
    simulate,
)

LONG = 20_000
MEDIUM = 8_000


def log_returns(frame: pd.DataFrame) -> np.ndarray:
    """Close-to-close log returns; equal to the simulated r_t for rows 2..n."""
    return np.diff(np.log(frame["close"].to_numpy()))


def acf(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation at ``lag``."""
    xc = x - x.mean()
    return float(np.dot(xc[lag:], xc[:-lag]) / np.dot(xc, xc))


# ------------------------------------------------------------------ return predictability


@pytest.mark.parametrize("phi", [0.3, -0.3])
def test_recovers_ar1_coefficient(phi: float) -> None:
    spec = SynthSpec(phi=phi, garch_alpha=0.02, garch_beta=0.5)
    r = log_returns(simulate(spec, LONG, seed=11))
    assert estimate_ar1(r) == pytest.approx(phi, abs=0.03)


def test_no_predictability_gives_zero_ar1() -> None:
    r = log_returns(simulate(SynthSpec(garch_alpha=0.02, garch_beta=0.5), LONG, seed=12))
    assert abs(estimate_ar1(r)) < 0.03


@pytest.mark.parametrize(
    ("phi", "momentum", "lookback"), [(0.0, 0.5, 20), (-0.2, 0.4, 20), (0.0, -0.4, 10)]
)
def test_recovers_momentum(phi: float, momentum: float, lookback: int) -> None:
    spec = SynthSpec(
        phi=phi, momentum=momentum, momentum_lookback=lookback, garch_alpha=0.05, garch_beta=0.8
    )
    r = log_returns(simulate(spec, LONG, seed=21))
    phi_hat, m_hat = estimate_ar_momentum(r, lookback)
    assert m_hat == pytest.approx(momentum, abs=0.12)
    assert phi_hat == pytest.approx(phi, abs=0.03)
    assert estimate_momentum(r, spec.momentum_lookback) == m_hat


def test_momentum_lookback_is_respected() -> None:
    """A 5-day momentum is found at L=5 and is clearly weaker when looked for at L=60."""
    spec = SynthSpec(momentum=0.5, momentum_lookback=5, garch_alpha=0.05, garch_beta=0.8)
    r = log_returns(simulate(spec, LONG, seed=22))
    at_true = estimate_momentum(r, 5)
    assert at_true == pytest.approx(0.5, abs=0.08)
    assert estimate_momentum(r, 60) < at_true - 0.1


# ------------------------------------------------------------------ volatility dynamics


@pytest.mark.parametrize(("alpha", "beta"), [(0.08, 0.9), (0.15, 0.7)])
def test_recovers_garch_persistence(alpha: float, beta: float) -> None:
    spec = SynthSpec(garch_alpha=alpha, garch_beta=beta)
    r = log_returns(simulate(spec, LONG, seed=31))
    omega_hat, alpha_hat, beta_hat = estimate_garch11(r)
    assert alpha_hat + beta_hat == pytest.approx(alpha + beta, abs=0.05)
    assert alpha_hat == pytest.approx(alpha, abs=0.04)
    # omega is implied by the unconditional variance; check it to within a factor of 1.5
    assert 1 / 1.5 < omega_hat / spec.garch_omega < 1.5


def test_abs_return_acf_reflects_volatility_clustering() -> None:
    clustered = log_returns(simulate(SynthSpec(garch_alpha=0.1, garch_beta=0.85), LONG, seed=32))
    iid = log_returns(simulate(SynthSpec(garch_alpha=0.0, garch_beta=0.0), LONG, seed=32))
    clustered_acf = [acf(np.abs(clustered), k) for k in range(1, 6)]
    iid_acf = [acf(np.abs(iid), k) for k in range(1, 6)]
    assert min(clustered_acf) > 0.05
    assert max(abs(v) for v in iid_acf) < 0.03


def test_unconditional_vol_matches_spec() -> None:
    for vol, seed in ((0.2, 41), (0.45, 42)):
        r = log_returns(simulate(SynthSpec(vol=vol), LONG, seed=seed))
        assert r.std() * np.sqrt(252) == pytest.approx(vol, rel=0.15)


def test_student_t_shocks_have_fat_tails() -> None:
    flat = SynthSpec(garch_alpha=0.0, garch_beta=0.0)
    normal = log_returns(simulate(flat, LONG, seed=43))
    fat = log_returns(simulate(flat.model_copy(update={"t_dof": 4.0}), LONG, seed=43))
    kurt = lambda x: float(np.mean((x - x.mean()) ** 4) / x.var() ** 2)  # noqa: E731
    assert kurt(normal) == pytest.approx(3.0, abs=0.2)
    assert kurt(fat) > 5.0
    # unit-variance scaling: the t shocks keep the requested vol
    assert fat.std() * np.sqrt(252) == pytest.approx(0.2, rel=0.1)


# ------------------------------------------------------------------ regimes


def test_regime_vol_ratio_and_stay_probabilities() -> None:
    spec = SynthSpec(
        regime_vol_mult=2.5,
        regime_p_stay_calm=0.98,
        regime_p_stay_stress=0.95,
        garch_alpha=0.02,
        garch_beta=0.5,
    )
    frame = simulate(spec, LONG, seed=51)
    r = log_returns(frame)
    k = frame["regime"].to_numpy()
    ratio = r[k[1:] == 1].std() / r[k[1:] == 0].std()
    assert ratio == pytest.approx(2.5, rel=0.15)

    prev, nxt = k[:-1], k[1:]
    p_calm = np.mean(nxt[prev == 0] == 0)
    p_stress = np.mean(nxt[prev == 1] == 1)
    assert p_calm == pytest.approx(0.98, abs=0.01)
    assert p_stress == pytest.approx(0.95, abs=0.015)
    assert np.mean(k == 1) == pytest.approx(spec.stress_share, abs=0.05)


def test_no_regime_effect_when_mult_is_one() -> None:
    frame = simulate(SynthSpec(garch_alpha=0.02, garch_beta=0.5), LONG, seed=52)
    r, k = log_returns(frame), frame["regime"].to_numpy()[1:]
    assert set(np.unique(k)) == {0, 1}
    assert r[k == 1].std() / r[k == 0].std() == pytest.approx(1.0, rel=0.07)


# ------------------------------------------------------------------ market structure


def test_volume_and_spread_track_shocks() -> None:
    spec = SynthSpec(volume_vol_beta=0.5, spread_vol_beta=1.0)
    frame = simulate(spec, MEDIUM, seed=61)
    abs_r = np.abs(log_returns(frame))
    log_vol = np.log(frame["volume"].to_numpy()[1:])
    assert np.corrcoef(abs_r, log_vol)[0, 1] > 0.3
    assert np.median(frame["volume"]) == pytest.approx(spec.volume_level, rel=0.2)
    assert np.corrcoef(abs_r, frame["spread"].to_numpy()[1:])[0, 1] > 0.1

    flat = simulate(spec.model_copy(update={"volume_vol_beta": 0.0}), MEDIUM, seed=61)
    flat_vol = np.log(flat["volume"].to_numpy()[1:])
    assert abs(np.corrcoef(abs_r, flat_vol)[0, 1]) < 0.05
    const = simulate(spec.model_copy(update={"spread_vol_beta": 0.0}), 100, seed=61)
    np.testing.assert_allclose(const["spread"], spec.spread_bps)


def test_overnight_gap_is_share_of_innovation() -> None:
    none = simulate(SynthSpec(overnight_share=0.0), 500, seed=62)
    np.testing.assert_allclose(none["open"].to_numpy()[1:], none["close"].to_numpy()[:-1])
    some = simulate(SynthSpec(overnight_share=0.3), 500, seed=62)
    assert not np.allclose(some["open"].to_numpy()[1:], some["close"].to_numpy()[:-1])


# ------------------------------------------------------------------ frame contract


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    phi=st.floats(-0.6, 0.6),
    momentum=st.floats(-0.35, 0.35),
    vol=st.floats(0.02, 1.0),
    alpha=st.floats(0.0, 0.3),
    beta=st.floats(0.0, 0.69),
    t_dof=st.one_of(st.none(), st.floats(2.5, 30.0)),
    mult=st.floats(0.5, 4.0),
    overnight=st.floats(0.0, 1.0),
    n_days=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_frame_invariants(
    phi: float,
    momentum: float,
    vol: float,
    alpha: float,
    beta: float,
    t_dof: float | None,
    mult: float,
    overnight: float,
    n_days: int,
    seed: int,
) -> None:
    spec = SynthSpec(
        phi=phi,
        momentum=momentum,
        vol=vol,
        garch_alpha=alpha,
        garch_beta=beta,
        t_dof=t_dof,
        regime_vol_mult=mult,
        overnight_share=overnight,
        burn_in=50,
    )
    frame = simulate(spec, n_days, seed)
    assert list(frame.columns) == [
        "date",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "spread",
        "regime",
    ]
    assert len(frame) == n_days
    assert frame["date"].dtype == np.dtype("datetime64[ns]")
    assert frame["regime"].dtype == np.int64
    o, h, lo, c = (frame[col].to_numpy() for col in ("open", "high", "low", "close"))
    assert np.all(lo > 0)
    assert np.all(lo <= np.minimum(o, c))
    assert np.all(np.maximum(o, c) <= h)
    assert np.all(frame["volume"] > 0)
    assert np.all(frame["spread"] > 0)
    assert set(np.unique(frame["regime"])) <= {0, 1}
    dates = pd.DatetimeIndex(frame["date"])
    assert dates.is_monotonic_increasing and dates.is_unique
    assert np.all(dates.day_of_week < 5)


def test_dates_are_consecutive_business_days() -> None:
    frame = simulate(SynthSpec(), 30, seed=1, start="2021-06-05")  # a Saturday
    expected = pd.bdate_range("2021-06-07", periods=30)
    np.testing.assert_array_equal(frame["date"].to_numpy(), expected.to_numpy())
    assert simulate(SynthSpec(), 3, seed=1)["date"].iloc[0] == pd.Timestamp("2000-01-03")


def test_first_open_is_anchored_at_start_price() -> None:
    spec = SynthSpec(start_price=50.0, overnight_share=0.0)
    frame = simulate(spec, 10, seed=3)
    assert frame["open"].iloc[0] == pytest.approx(50.0)


# ------------------------------------------------------------------ determinism


def test_same_seed_is_bit_identical_and_leaves_global_rng_alone() -> None:
    spec = SynthSpec(t_dof=5.0, regime_vol_mult=2.0)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = simulate(spec, 1_000, seed=7)
    b = simulate(spec, 1_000, seed=7)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_different_seed_differs() -> None:
    a = simulate(SynthSpec(), 1_000, seed=7)
    b = simulate(SynthSpec(), 1_000, seed=8)
    assert not np.allclose(a["close"], b["close"])
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "fields", "value"),
    [
        ({"garch_alpha": 0.2, "garch_beta": 0.8}, ("garch_alpha", "garch_beta"), "1.0"),
        ({"garch_alpha": 0.5, "garch_beta": 0.6}, ("garch_alpha", "garch_beta"), "1.1"),
        ({"phi": 0.6, "momentum": 0.5}, ("phi", "momentum"), "1.1"),
        ({"phi": -0.5, "momentum": 0.5}, ("phi", "momentum"), "1.0"),
        ({"vol": -0.2}, ("vol",), "-0.2"),
        ({"vol": 0.0}, ("vol",), "0.0"),
        ({"phi": 1.5}, ("phi",), "1.5"),
        ({"garch_alpha": -0.1}, ("garch_alpha",), "-0.1"),
        ({"t_dof": 2.0}, ("t_dof",), "2.0"),
        ({"regime_p_stay_calm": 1.2}, ("regime_p_stay_calm",), "1.2"),
        ({"momentum_lookback": 1}, ("momentum_lookback",), "1"),
        ({"volume_ar": 1.0}, ("volume_ar",), "1.0"),
        ({"spread_bps": -1.0}, ("spread_bps",), "-1.0"),
        ({"overnight_share": -0.1}, ("overnight_share",), "-0.1"),
        ({"burn_in": -1}, ("burn_in",), "-1"),
    ],
)
def test_validation_messages_name_field_and_value(
    kwargs: dict[str, float], fields: tuple[str, ...], value: str
) -> None:
    with pytest.raises(ValueError) as info:
        SynthSpec(**kwargs)
    msg = str(info.value)
    for field in fields:
        assert f"'{field}'" in msg
    assert "SynthSpec must" in msg
    assert f"Got {value}" in msg or f"= {value}" in msg


def test_spec_is_frozen_and_rejects_unknown_fields() -> None:
    spec = SynthSpec()
    with pytest.raises(ValidationError):
        spec.phi = 0.5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="phii"):
        SynthSpec(phii=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SynthSpec(vol=float("nan"))


def test_every_field_is_documented() -> None:
    for name, field in SynthSpec.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"n_days": 0, "seed": 0}, ValueError),
        ({"n_days": 10, "seed": -1}, ValueError),
        ({"n_days": 10.0, "seed": 0}, TypeError),
        ({"n_days": 10, "seed": 0, "start": "not a date"}, ValueError),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        simulate(SynthSpec(), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ relations


def _dynamics(spec: SynthSpec, seed: int) -> tuple[float, float, float]:
    """(ar1, momentum, persistence) estimated from a long simulation of ``spec``."""
    r = log_returns(simulate(spec, LONG, seed))
    _, alpha, beta = estimate_garch11(r)
    return estimate_ar1(r), estimate_momentum(r, spec.momentum_lookback), alpha + beta


def test_relations_constant_and_unknown_name() -> None:
    assert RELATIONS == ("shared", "opposite", "unrelated", "bridge", "shifted")
    with pytest.raises(ValueError, match=r"shared, opposite, unrelated, bridge, shifted"):
        pair_specs("sideways")
    with pytest.raises(ValueError, match="chain_specs"):
        pair_specs("bridge")


def test_shared_relation_keeps_dynamics_changes_levels() -> None:
    source, target = pair_specs("shared")
    for name in ("phi", "momentum", "momentum_lookback", "garch_alpha", "garch_beta", "t_dof"):
        assert getattr(source, name) == getattr(target, name), name
    assert 0.8 <= target.vol / source.vol <= 1.2
    assert target.volume_level != source.volume_level
    assert target.spread_bps != source.spread_bps
    ar_s, m_s, p_s = _dynamics(source, seed=71)
    ar_t, m_t, p_t = _dynamics(target, seed=72)
    assert ar_s == pytest.approx(ar_t, abs=0.05)
    assert m_s == pytest.approx(m_t, abs=0.12)
    assert p_s == pytest.approx(p_t, abs=0.05)
    assert m_s > 0.4


def test_opposite_relation_flips_predictability() -> None:
    source, target = pair_specs("opposite")
    assert (source.phi, source.momentum) == (0.0, 0.6)
    assert (target.phi, target.momentum) == (-0.35, -0.3)
    assert (source.garch_alpha, source.garch_beta) == (target.garch_alpha, target.garch_beta)
    ar_s, m_s, _ = _dynamics(source, seed=73)
    ar_t, m_t, _ = _dynamics(target, seed=74)
    assert ar_s > 0.02 and ar_t < -0.2
    assert m_s > 0.4 and m_t < -0.1


def test_unrelated_relation_has_no_predictability_and_other_vol_dynamics() -> None:
    source, target = pair_specs("unrelated")
    assert (target.phi, target.momentum) == (0.0, 0.0)
    assert target.garch_alpha + target.garch_beta == pytest.approx(0.5)
    assert target.t_dof is not None
    ar_t, m_t, p_t = _dynamics(target, seed=75)
    _, _, p_s = _dynamics(source, seed=76)
    assert abs(ar_t) < 0.03 and abs(m_t) < 0.12
    assert p_s - p_t > 0.2


def test_shifted_relation_same_mean_dynamics_different_features() -> None:
    source, target = pair_specs("shifted")
    for name in ("phi", "momentum", "momentum_lookback", "garch_alpha", "garch_beta", "vol"):
        assert getattr(source, name) == getattr(target, name), name
    assert target.regime_vol_mult == 3.0 and source.regime_vol_mult == 1.0
    src, tgt = simulate(source, LONG, seed=77), simulate(target, LONG, seed=78)
    r_s, r_t = log_returns(src), log_returns(tgt)
    phi_s, m_s = estimate_ar_momentum(r_s, source.momentum_lookback)
    phi_t, m_t = estimate_ar_momentum(r_t, target.momentum_lookback)
    assert phi_s == pytest.approx(phi_t, abs=0.04)
    assert m_s == pytest.approx(m_t, abs=0.15)

    # shape, not only scale: standardised returns and spreads have different tails
    def kurt(x: np.ndarray) -> float:
        return float(np.mean((x - x.mean()) ** 4) / x.var() ** 2)

    assert kurt(r_t) > kurt(r_s) + 1.0
    log_spread_s, log_spread_t = np.log(src["spread"]), np.log(tgt["spread"])
    assert log_spread_t.std() > 1.5 * log_spread_s.std()


def test_chain_specs_intermediate_lies_between_and_nearer_target() -> None:
    source, mid, target = chain_specs()
    for name in ("phi", "momentum"):
        lo, hi = sorted((getattr(source, name), getattr(target, name)))
        assert lo <= getattr(mid, name) <= hi
        assert abs(getattr(mid, name) - getattr(target, name)) < abs(
            getattr(mid, name) - getattr(source, name)
        )
    assert source.volume_level > mid.volume_level > target.volume_level
    assert (source.phi, source.momentum) == (0.0, 0.6)
    assert (target.phi, target.momentum) == (-0.35, -0.3)
    with pytest.raises(ValueError, match="weight"):
        chain_specs(weight=1.0)


def test_pair_specs_respects_base() -> None:
    base = SynthSpec(vol=0.4, volume_level=5e4, garch_alpha=0.05, garch_beta=0.9, phi=0.1)
    source, target = pair_specs("opposite", base)
    assert source.vol == target.vol == 0.4
    assert (target.garch_alpha, target.garch_beta) == (0.05, 0.9)
    source, target = pair_specs("shared", base)
    assert source == base and target.phi == 0.1
