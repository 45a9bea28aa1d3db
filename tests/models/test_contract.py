"""Contract suite over every registered backbone x freeze strategy.

Frozen parameters never change (bit-identical), groups partition the parameters, the
same seed gives the same result, and each strategy does what its name says.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from xfer.models.backbones import BACKBONES, BackboneSpec, build_backbone
from xfer.train.population import Data, Member, Population, TrainConfig
from xfer.transfer.strategies import STRATEGIES, StrategySpec, param_groups, plan_for

F = 6
CFG = TrainConfig(batch_size=32, steps_per_epoch=4, max_epochs=3, patience=10)
CASES = list(itertools.product(sorted(BACKBONES), sorted(STRATEGIES)))


def _data(n: int = 400) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, F, generator=g)
    return Data(x, x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(n, generator=g))


def _backbone(name: str):
    return build_backbone(F, BackboneSpec(name=name, hidden=8, depth=3, window=5))


def _source(bb) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return {k: torch.randn_like(v) * 0.3 for k, v in bb.named_parameters()}


def _fit(name: str, strategy: str, seed: int = 0, spec: StrategySpec | None = None):
    bb = _backbone(name)
    plan = plan_for(spec or StrategySpec(name=strategy, gradual_every=2, unfreeze_depth=1), len(bb.group_names()))
    src = _source(bb)
    m = Member(plan, lr=1e-2, seed=seed, train=range(0, 300), init=src if plan.init == "source" else None)
    (res,) = Population(bb, CFG).fit([m], _data(), range(320, 400))
    return bb, plan, src, res


@pytest.mark.parametrize(("backbone", "strategy"), CASES)
def test_frozen_groups_stay_bit_identical(backbone: str, strategy: str) -> None:
    bb, plan, src, res = _fit(backbone, strategy)
    index = bb.param_group_index()
    # best weights may come from any epoch, so check against the final epoch's trainable set
    last_epoch = res.epochs - 1
    trainable = plan.trainable_at(last_epoch)
    for name, g in index.items():
        if plan.init == "source" and not trainable[g]:
            assert torch.equal(res.params[name], src[name]), (strategy, name)
    if plan.init == "source":
        # something trainable did move
        assert any(not torch.equal(res.params[n], src[n]) for n, g in index.items() if trainable[g])


@pytest.mark.parametrize(("backbone", "strategy"), CASES)
def test_groups_partition_parameters(backbone: str, strategy: str) -> None:
    bb = _backbone(backbone)
    index = bb.param_group_index()
    names = [n for n, _ in bb.named_parameters()]
    assert sorted(index) == sorted(names)
    assert set(index.values()) == set(range(len(bb.group_names())))
    assert bb.group_names()[-1] == "head"
    plan = plan_for(strategy, len(bb.group_names()))
    assert len(plan.lr_mult) == len(plan.unfreeze_epoch) == len(bb.group_names())
    groups = param_groups(bb, plan, 1e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(names)  # each parameter in exactly one group


@pytest.mark.parametrize(("backbone", "strategy"), CASES)
def test_same_seed_same_result(backbone: str, strategy: str) -> None:
    _, _, _, a = _fit(backbone, strategy, seed=3)
    _, _, _, b = _fit(backbone, strategy, seed=3)
    _, _, _, c = _fit(backbone, strategy, seed=4)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert a.val_curve == b.val_curve
    assert any(not torch.equal(a.params[k], c.params[k]) for k in a.params)


def test_strategy_semantics() -> None:
    n = 4  # three feature groups + head
    assert plan_for("scratch", n).init == "random"
    assert plan_for("head_only", n).trainable_at(0) == (False, False, False, True)
    assert plan_for(StrategySpec(name="partial", unfreeze_depth=2), n).trainable_at(0) == (False, True, True, True)
    assert plan_for("full", n).trainable_at(0) == (True,) * 4
    g = plan_for(StrategySpec(name="gradual", gradual_every=2), n)
    assert [g.trainable_at(e) for e in (0, 2, 4, 6)] == [
        (False, False, False, True), (False, False, True, True), (False, True, True, True), (True,) * 4]
    d = plan_for(StrategySpec(name="discriminative", lr_decay=0.5), n)
    assert d.lr_mult == (0.125, 0.25, 0.5, 1.0)
    assert plan_for("l2sp", n).l2sp_alpha > 0


def test_l2sp_pulls_toward_source() -> None:
    _, _, src, free = _fit("mlp", "full")
    _, _, _, pulled = _fit("mlp", "l2sp", spec=StrategySpec(name="l2sp", l2sp_alpha=10.0))
    def dist(r):
        return sum(float(((r.params[k] - src[k]) ** 2).sum()) for k in src if not k.startswith("head."))
    assert dist(pulled) < 0.5 * dist(free)


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"must be one of .*head_only.*Got 'freeze_some'"):
        plan_for("freeze_some", 3)
    with pytest.raises(ValueError, match=r"must be one of \['mlp', 'tcn'\]\. Got 'lstm'"):
        build_backbone(3, BackboneSpec(name="lstm"))
