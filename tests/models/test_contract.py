"""Contract suite over every registered backbone x freeze strategy (no hand-kept lists):
see ``tests/models/contract.py`` for what is checked. A toy strategy added with one
registry entry is picked up; a deliberately wrong one is rejected."""

from __future__ import annotations

import itertools

import pytest

from xfer.models.backbones import BACKBONES, BackboneSpec, build_backbone
from xfer.train.plan import GroupPlan
from xfer.transfer.strategies import INF, STRATEGIES, Knob, Strategy, plan_for

from .contract import backbone_problems, strategy_problems

CASES = list(itertools.product(sorted(BACKBONES), sorted(STRATEGIES)))


@pytest.mark.parametrize(("backbone", "strategy"), CASES)
def test_strategy_meets_contract(backbone: str, strategy: str) -> None:
    assert strategy_problems(strategy, backbone) == []


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_backbone_meets_contract(backbone: str) -> None:
    assert backbone_problems(backbone) == []


def _toy_top(n: int, k) -> GroupPlan:
    """Fine-tune the top ``toy_depth`` feature groups and the head."""
    d = min(int(k["toy_depth"]), n - 1)
    return GroupPlan("source", (1.0,) * n, (INF,) * (n - 1 - d) + (0.0,) * (d + 1))


def _toy_wrong(n: int, k) -> GroupPlan:
    """Says the top group trains, but gives it a zero learning rate; and ignores its knob."""
    return GroupPlan("source", (1.0,) * (n - 2) + (0.0, 1.0), (INF,) * (n - 2) + (0.0, 0.0))


TOY_KNOB = Knob("toy_depth", "int", 1, 1, 3, help="feature groups fine-tuned")


@pytest.mark.slow
def test_one_registry_entry_adds_a_strategy_and_the_suite_checks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STRATEGIES, "toy_top", Strategy("toy_top", _toy_top, (TOY_KNOB,)))
    assert plan_for("toy_top", 4, {"toy_depth": 2}).trainable_at(0) == (False, True, True, True)
    checked = {s: strategy_problems(s) for s in STRATEGIES}  # the suite iterates the registry
    assert "toy_top" in checked and checked["toy_top"] == []


def test_the_suite_rejects_a_wrong_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STRATEGIES, "toy_wrong", Strategy("toy_wrong", _toy_wrong, (TOY_KNOB,)))
    problems = strategy_problems("toy_wrong")
    assert any("declared trainable but" in p for p in problems), problems
    assert any("knob 'toy_depth' does not change the plan" in p for p in problems), problems
    monkeypatch.setitem(STRATEGIES, "toy_liar", Strategy("toy_liar", _toy_top, (TOY_KNOB,), uses_source=False))
    assert any("uses_source=False" in p for p in strategy_problems("toy_liar"))


def test_strategy_semantics() -> None:
    n = 4  # three feature groups + head
    assert plan_for("scratch", n).init == "random"
    assert plan_for("head_only", n).trainable_at(0) == (False, False, False, True)
    assert plan_for("partial", n, {"unfreeze_depth": 2}).trainable_at(0) == (False, True, True, True)
    assert plan_for("full", n).trainable_at(0) == (True,) * 4
    g = plan_for("gradual", n, {"gradual_every": 2})
    assert [g.trainable_at(e) for e in (0, 2, 4, 6)] == [
        (False, False, False, True), (False, False, True, True), (False, True, True, True), (True,) * 4]
    assert plan_for("discriminative", n, {"lr_decay": 0.5}).lr_mult == (0.125, 0.25, 0.5, 1.0)
    assert plan_for("l2sp", n).l2sp_alpha > 0
    assert plan_for("full", n, {"reinit_head": True}).reinit_head


def test_unknown_names_and_bad_knobs_list_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"must be one of .*head_only.*Got 'freeze_some'"):
        plan_for("freeze_some", 3)
    with pytest.raises(ValueError, match=r"must be one of \[.*'mlp'.*\]\. Got 'lstm'"):
        build_backbone(3, BackboneSpec(name="lstm"))
    with pytest.raises(ValueError, match=r"'unfreeze_depth' knob .* must be int\. Got 1.5"):
        plan_for("partial", 3, {"unfreeze_depth": 1.5})


def test_l2sp_pulls_toward_source() -> None:
    from xfer.train.population import Population
    from xfer.train.types import Member

    from .contract import CFG, backbone, data, source_weights

    bb = backbone("mlp")
    src = source_weights(bb)

    def dist(alpha: float, strategy: str) -> float:
        plan = plan_for(strategy, 4, {"l2sp_alpha": alpha} if strategy == "l2sp" else None)
        (r,) = Population(bb, CFG).fit([Member(plan, 1e-2, 0, range(0, 300), init=src)], data(), range(320, 400))
        return sum(float(((r.params[k] - src[k]) ** 2).sum()) for k in src if not k.startswith("head."))

    assert dist(10.0, "l2sp") < 0.5 * dist(0.0, "full")
