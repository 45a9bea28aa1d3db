"""Freeze strategies: a registry of small functions from a strategy spec to a group plan.

A :class:`GroupPlan` says, for each layer group of a backbone (early to late, head last),
its learning-rate multiplier and the epoch at which it becomes trainable (``inf`` = never),
whether the fit starts from the source weights or from a random init, and the L2-SP pull
toward the source weights. Both trainers read the same plan: the population trainer turns
it into per-member masks and learning rates, :func:`param_groups` into torch optimizer
parameter groups. Adding a strategy is one function plus one registry line.

From the article: ``head_only`` (freeze all but the final layer), ``partial`` (fine-tune the
last k groups), ``full`` (fine-tune everything from the source weights), and the baseline
``scratch`` (same architecture, random init). Beyond it: ``gradual`` (unfreeze one group at a
time, late to early), ``discriminative`` (layer-wise learning-rate decay) and ``l2sp``
(full fine-tuning with a penalty pulling weights toward the source weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

INF = math.inf


class StrategySpec(BaseModel):
    """A freeze strategy and its knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="full", description="Registered strategy name.")
    unfreeze_depth: int = Field(default=1, ge=1, description="partial: trainable feature groups (from the top).")
    lr_decay: float = Field(default=0.5, gt=0.0, le=1.0, description="discriminative: LR factor per group down.")
    gradual_every: int = Field(default=2, ge=1, description="gradual: epochs between unfreezing two groups.")
    l2sp_alpha: float = Field(default=1e-2, ge=0.0, description="l2sp: weight of ||w - w_source||^2.")
    reinit_head: bool = Field(default=False, description="Start the head from random weights.")


@dataclass(frozen=True)
class GroupPlan:
    """What a strategy does to each layer group (index 0 = earliest, last = head)."""

    init: Literal["source", "random"]
    lr_mult: tuple[float, ...]
    unfreeze_epoch: tuple[float, ...]
    l2sp_alpha: float = 0.0
    reinit_head: bool = False

    def trainable_at(self, epoch: int) -> tuple[bool, ...]:
        return tuple(e <= epoch for e in self.unfreeze_epoch)


def _scratch(n: int, s: StrategySpec) -> GroupPlan:
    return GroupPlan("random", (1.0,) * n, (0.0,) * n)


def _full(n: int, s: StrategySpec) -> GroupPlan:
    return GroupPlan("source", (1.0,) * n, (0.0,) * n, reinit_head=s.reinit_head)


def _head_only(n: int, s: StrategySpec) -> GroupPlan:
    return GroupPlan("source", (1.0,) * n, (INF,) * (n - 1) + (0.0,), reinit_head=s.reinit_head)


def _partial(n: int, s: StrategySpec) -> GroupPlan:
    k = min(s.unfreeze_depth, n - 1)  # feature groups trained, counted from the top
    frozen = n - 1 - k
    return GroupPlan("source", (1.0,) * n, (INF,) * frozen + (0.0,) * (k + 1), reinit_head=s.reinit_head)


def _gradual(n: int, s: StrategySpec) -> GroupPlan:
    # head at epoch 0, the group below it after `gradual_every` epochs, and so on downward
    epochs = tuple(float((n - 1 - g) * s.gradual_every) for g in range(n))
    return GroupPlan("source", (1.0,) * n, epochs, reinit_head=s.reinit_head)


def _discriminative(n: int, s: StrategySpec) -> GroupPlan:
    mult = tuple(s.lr_decay ** (n - 1 - g) for g in range(n))
    return GroupPlan("source", mult, (0.0,) * n, reinit_head=s.reinit_head)


def _l2sp(n: int, s: StrategySpec) -> GroupPlan:
    return GroupPlan("source", (1.0,) * n, (0.0,) * n, l2sp_alpha=s.l2sp_alpha, reinit_head=s.reinit_head)


STRATEGIES: dict[str, Callable[[int, StrategySpec], GroupPlan]] = {
    "scratch": _scratch,
    "head_only": _head_only,
    "partial": _partial,
    "full": _full,
    "gradual": _gradual,
    "discriminative": _discriminative,
    "l2sp": _l2sp,
}


def plan_for(spec: StrategySpec | str, n_groups: int) -> GroupPlan:
    """The group plan of a strategy for a backbone with ``n_groups`` groups (head included)."""
    if isinstance(spec, str):
        spec = StrategySpec(name=spec)
    if spec.name not in STRATEGIES:
        raise ValueError(
            f"The 'strategy' parameter must be one of {sorted(STRATEGIES)}. Got {spec.name!r} instead."
        )
    if n_groups < 2:
        raise ValueError(f"A backbone needs >= 2 layer groups (features + head). Got {n_groups}.")
    return STRATEGIES[spec.name](n_groups, spec)


def param_groups(model: Any, plan: GroupPlan, base_lr: float, epoch: int = 0) -> list[dict[str, Any]]:
    """Torch optimizer parameter groups for ``model`` under ``plan`` at ``epoch``.

    Every parameter is in exactly one group; a group not yet trainable gets ``lr = 0`` (its
    moments still track gradients, exactly as the population trainer does), so the list can
    be rebuilt each epoch with the same optimizer state.
    """
    index = model.param_group_index()
    named = dict(model.named_parameters())
    trainable = plan.trainable_at(epoch)
    groups = []
    for g in range(len(plan.lr_mult)):
        ps = [named[n] for n, gi in index.items() if gi == g]
        lr = base_lr * plan.lr_mult[g] if trainable[g] else 0.0
        groups.append({"params": ps, "lr": lr, "group": g})
    return groups
