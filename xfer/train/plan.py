"""A layer-group plan: what a fit does to each group of a backbone (torch-free, so the strategy
registry and the CLI can read it without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GroupPlan:
    """What happens to each layer group (index 0 = earliest, last = head) during a fit."""

    init: Literal["source", "random"]
    lr_mult: tuple[float, ...]
    unfreeze_epoch: tuple[float, ...]
    """Epoch at which each group becomes trainable (``inf`` = never)."""
    l2sp_alpha: float = 0.0
    """Weight of the pull ``||w - w_init||^2`` on feature groups (0 = none)."""
    reinit_head: bool = False

    def trainable_at(self, epoch: int) -> tuple[bool, ...]:
        return tuple(e <= epoch for e in self.unfreeze_epoch)

    def frozen_groups(self) -> frozenset[int]:
        """Groups that never train."""
        return frozenset(g for g, e in enumerate(self.unfreeze_epoch) if e == float("inf"))
