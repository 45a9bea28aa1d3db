"""The contract every registered strategy and backbone must meet, as functions that return
the problems they find (so a test can also show that a wrong entry is rejected).

A strategy: its plan has one entry per layer group; it starts from the source iff it says it
uses one; every knob it declares changes its plan (no dead knobs); in a real fit its frozen
groups stay bit-identical, every group trainable from epoch 0 moves, a random-init strategy
re-initialises every weight; the same seed gives the same result; the population trainer
equals the one-at-a-time reference. A backbone: its groups partition the parameters, the
head is last, and every strategy meets the contract on it.
"""

from __future__ import annotations

import torch

from xfer.models.backbones import BackboneSpec, build_backbone
from xfer.train.population import Population
from xfer.train.sequential import train_one
from xfer.train.types import Data, Member, MemberResult, TrainConfig
from xfer.transfer.strategies import STRATEGIES, Knob, plan_for

F = 6
CFG = TrainConfig(batch_size=32, steps_per_epoch=4, max_epochs=3, patience=10)


def data(n: int = 400) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, F, generator=g)
    return Data(x, x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(n, generator=g))


def backbone(name: str):
    return build_backbone(F, BackboneSpec(name=name, hidden=8, depth=3, window=5))


def source_weights(bb) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return {k: torch.randn_like(v) * 0.3 for k, v in bb.named_parameters()}


def _other_value(k: Knob) -> object:
    """A valid value different from the default."""
    if k.kind == "bool":
        return not k.default
    hi = k.high if k.high is not None else float(k.default) * 2 + 1
    v = min(hi, float(k.default) * 2 + 1) if k.kind == "int" else (float(k.default) + hi) / 2
    return int(v) if k.kind == "int" else v


def _member(bb, strategy: str, seed: int, src) -> Member:
    plan = plan_for(strategy, len(bb.group_names()))
    return Member(plan, lr=1e-2, seed=seed, train=range(0, 300), init=src if plan.init == "source" else None)


def _fit(bb, strategy: str, seed: int, src) -> MemberResult:
    (res,) = Population(bb, CFG).fit([_member(bb, strategy, seed, src)], data(), range(320, 400))
    return res


def strategy_problems(name: str, bb_name: str = "mlp") -> list[str]:
    """Everything the strategy ``name`` gets wrong on backbone ``bb_name`` ([] = it meets the contract)."""
    s, bb = STRATEGIES[name], backbone(bb_name)
    n = len(bb.group_names())
    plan = plan_for(name, n)
    out = []
    if not (len(plan.lr_mult) == len(plan.unfreeze_epoch) == n):
        return [f"{name}: plan has {len(plan.lr_mult)} groups, backbone {n}"]
    if (plan.init == "source") != s.uses_source:
        out.append(f"{name}: uses_source={s.uses_source} but its plan starts from {plan.init!r}")
    for k in s.knobs:
        if plan_for(name, n, {k.name: _other_value(k)}) == plan:
            out.append(f"{name}: knob {k.name!r} does not change the plan")
    src = source_weights(bb)
    res = _fit(bb, name, 0, src)
    index = bb.param_group_index()
    for p, g in index.items():
        moved = not torch.equal(res.params[p], src[p])
        if g in plan.frozen_groups() and plan.init == "source" and moved:
            out.append(f"{name}: group {g} is declared frozen but {p} changed")
        if plan.unfreeze_epoch[g] == 0 and plan.init == "source" and not moved:
            out.append(f"{name}: group {g} is declared trainable but {p} did not move")
        if plan.init == "random" and torch.equal(res.params[p], src[p]):
            out.append(f"{name}: random init kept the source's {p}")
    again, other = _fit(bb, name, 0, src), _fit(bb, name, 1, src)
    if not all(torch.equal(res.params[k], again.params[k]) for k in res.params):
        out.append(f"{name}: the same seed gave different weights")
    if all(torch.equal(res.params[k], other.params[k]) for k in res.params):
        out.append(f"{name}: different seeds gave identical weights")
    ref = train_one(bb, _member(bb, name, 0, src), data(), range(320, 400), CFG)
    if ref.epochs != res.epochs or any(not torch.allclose(ref.params[k], res.params[k], atol=2e-5, rtol=1e-4)
                                       for k in ref.params):
        out.append(f"{name}: population training differs from the sequential reference")
    return out


def backbone_problems(bb_name: str) -> list[str]:
    """Layer-group structure of a backbone ([] = it meets the contract)."""
    bb = backbone(bb_name)
    index = bb.param_group_index()
    names = [n for n, _ in bb.named_parameters()]
    out = []
    if sorted(index) != sorted(names):
        out.append(f"{bb_name}: param_group_index does not cover every parameter exactly once")
    if set(index.values()) != set(range(len(bb.group_names()))):
        out.append(f"{bb_name}: some layer group has no parameters")
    if bb.group_names()[-1] != "head":
        out.append(f"{bb_name}: the head is not the last group")
    for w in (1, 7):  # the window checks need before building (xfer.experiment.check) is the built one's
        spec = BackboneSpec(name=bb_name, window=w)
        if type(bb).input_window(spec) != build_backbone(4, spec).window:
            out.append(f"{bb_name}: input_window(spec) is not the window of the backbone built from spec")
    x = data().gather(torch.arange(10, 20), bb.window)
    if bb(x).shape != (10,):
        out.append(f"{bb_name}: forward on gathered rows does not give one output per row")
    return out
