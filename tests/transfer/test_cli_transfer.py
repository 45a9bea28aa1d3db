"""`xfer transfer --json`: the contract other tools read, on a small synthetic pair."""

from __future__ import annotations

import json

import pytest

from xfer.data import synthetic as syn
from xfer.data.store import Store


@pytest.mark.slow
def test_transfer_json_contract(store: Store, cli) -> None:
    syn.write_set(store, "shared", n_source=2500, n_target=1500, seed=1)
    r = cli("transfer", "--source", "syn_shared_src", "--target", "syn_shared_tgt", "--strategy", "head_only",
            "--fraction", "0.3", "--fraction", "1.0", "--seeds", "2", "--folds", "2", "--no-importance", "--json")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert {(x["strategy"], x["fraction"]) for x in rows} == {
        ("scratch", 0.3), ("scratch", 1.0), ("head_only", 0.3), ("head_only", 1.0)}
    for x in rows:
        assert {"strategy", "fraction", "metric", "test_score", "scratch_score", "delta_ci_low", "delta_ci_high",
                "p_value", "p_adjusted", "n_comparisons", "verdict", "detectable_effect", "n_days",
                "best_baseline", "best_baseline_score", "baseline_har_rv_score", "baseline_ewma_score",
                "beats_baseline"} <= set(x)
        assert x["metric"] == "r2_oos" and x["best_baseline"] in {"har_rv", "ewma"}
        assert x["best_baseline_score"] == max(x["baseline_har_rv_score"], x["baseline_ewma_score"])
        lo, hi = x["delta_ci_low"], x["delta_ci_high"]
        assert lo <= hi
        if x["strategy"] == "scratch":
            assert x["verdict"] == "baseline"
            continue
        assert x["n_comparisons"] == 2  # two transfer cells, Holm over both
        assert x["p_value"] <= x["p_adjusted"] <= 1.0
        assert x["detectable_effect"] > (hi - lo) / 2  # 80% power after Holm: beyond the half-width
        assert x["verdict"] == ("inconclusive" if x["p_adjusted"] >= 0.05 else
                                "positive" if x["delta"] > 0 else "negative")
        if x["verdict"] == "positive":
            assert lo > 0
    # the source was cached: a second run trains no source
    r2 = cli("transfer", "--source", "syn_shared_src", "--target", "syn_shared_tgt", "--strategy", "head_only",
             "--fraction", "1.0", "--seeds", "2", "--folds", "2", "--no-importance", "--json")
    assert "loaded from cache" in r2.err


def test_transfer_bad_input(store: Store, cli) -> None:
    r = cli("transfer", "--source", "aapl", "--target", "wti", "--strategy", "freeze_most", "--json")
    assert r.code == 2 and "freeze_most" in r.err and "head_only" in r.err
    r = cli("transfer", "--source", "aapl", "--target", "wti", "--fraction", "1.5")
    assert r.code == 2 and "fractions" in r.err and "1.5" in r.err
    r = cli("transfer", "--source", "nope", "--target", "wti")
    assert r.code == 2 and "'nope'" in r.err
    r = cli("transfer", "--source", "aapl", "--target", "wti", "--activation", "tanh")
    assert r.code == 2 and "activation" in r.err and "tanh" in r.err and "gelu" in r.err


def test_transfer_activation_reaches_the_backbone(store: Store, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--activation gelu` reproduces runs made before leaky ReLU became the default."""
    from xfer.experiment import run as run_mod

    seen = {}

    def stop(cfg, *_a, **_k):
        seen["activation"] = cfg.backbone.activation
        raise SystemExit(0)

    monkeypatch.setattr(run_mod, "run_transfer", stop)
    cli("transfer", "--source", "aapl", "--target", "wti", "--activation", "gelu")
    assert seen == {"activation": "gelu"}
