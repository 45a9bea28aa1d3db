"""Plain data types shared by the trainer and everything above it.

Nothing here knows about strategies, DANN or studies: a :class:`GroupPlan` is a generic
per-layer-group schedule (learning-rate multiplier, unfreeze epoch, start from given
weights or from a random init), and an :class:`AuxTask` is any second objective on the
backbone's representation with its own head and data stream (DANN is one, in
:mod:`xfer.transfer.dann`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from xfer.train.plan import GroupPlan

Params = dict[str, torch.Tensor]
Rows = range | torch.Tensor


@dataclass
class Data:
    """Standardised rows of one domain; sequence backbones read windows ending at a row."""

    x: torch.Tensor  # (n, n_features)
    y: torch.Tensor  # (n,)

    def __post_init__(self) -> None:
        # rows are gathered every step: keep each row's features together in memory (a column-major
        # array, e.g. from a transposed numpy one, makes index_select ~8x slower; same values)
        self.x, self.y = self.x.contiguous(), self.y.contiguous()

    def to(self, device: torch.device | str) -> Data:
        return Data(self.x.to(device), self.y.to(device))

    def gather(self, rows: torch.Tensor, window: int) -> torch.Tensor:
        """Inputs for ``rows`` (any shape): (..., F), or (..., window, F) for sequences."""
        if window <= 1:  # index_select: the same rows as x[rows], in half the time
            return self.x.index_select(0, rows.reshape(-1).to(self.x.device)).view(*rows.shape, self.x.shape[-1])
        offs = torch.arange(-window + 1, 1)
        idx = (rows.unsqueeze(-1) + offs).clamp_min(0)
        return self.x[idx]


class TrainConfig(BaseModel):
    """Training-loop knobs shared by all members of a population (also a study's ``train:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(default=256, ge=1, description="Rows per step.")
    steps_per_epoch: int = Field(default=25, ge=1, description="Steps of a nominal epoch: the most "
                                 "steps between two validations, and the unit of unfreeze schedules.")
    max_epochs: int = Field(default=40, ge=1, description="Step budget: max_epochs x steps_per_epoch steps.")
    patience: int = Field(default=5, ge=1, description="Validations without improvement before stopping.")
    pass_epochs: bool = Field(
        default=True, description="Validate after every pass over the training rows (at most "
        "steps_per_epoch steps apart): 130 training rows at batch 256 are then checked after every "
        "step, not after 25 steps (~50 passes), so early stopping can act on a small window. "
        "False: validate every steps_per_epoch steps.")
    min_patience_steps: int = Field(
        default=25, ge=0, description="Patience covers at least this many steps, so a validation "
        "after every step does not stop a fit on one noisy reading.")
    eval_rows: int = Field(default=4096, ge=16, description="Validation rows (evenly spaced if more).")
    aux_warmup_epochs: int = Field(
        default=5, ge=1, description="Epochs over which an auxiliary loss's coefficient ramps up "
        "(DANN's reversal strength). Tied to epochs: early stopping ends most fits long before "
        "max_epochs, and a ramp over the nominal budget would stay weak for the whole fit.")


@dataclass(frozen=True)
class Schedule:
    """When a fit validates and stops, for a given number of training rows."""

    eval_every: int
    """Optimiser steps between two validations."""
    max_evals: int
    """Validations in the step budget (``max_epochs x steps_per_epoch`` steps, rounded up)."""
    patience: int
    """Validations without improvement before a member stops."""


def schedule(cfg: TrainConfig, n_rows: int) -> Schedule:
    """The validation schedule of ``cfg`` for a training window of ``n_rows`` rows."""
    every = cfg.steps_per_epoch
    if cfg.pass_epochs:
        every = min(every, max(1, math.ceil(n_rows / cfg.batch_size)))
    budget = cfg.max_epochs * cfg.steps_per_epoch
    patience = max(cfg.patience, math.ceil(cfg.min_patience_steps / every)) if cfg.pass_epochs else cfg.patience
    return Schedule(every, math.ceil(budget / every), patience)


@dataclass
class Member:
    """One fit of a population."""

    plan: GroupPlan
    lr: float
    seed: int
    train: Rows
    """Training rows: a contiguous range (target fraction) or any row indices (pooled sources)."""
    init: Params | None = None
    """Backbone weights to start from (``plan.init == 'source'``); None = random from ``seed``."""
    weight_decay: float = 0.0
    aux_weight: float = 0.0
    """Weight of the auxiliary loss (0 = off for this member)."""
    aux_coeff: float = 1.0
    """Multiplier of the auxiliary schedule's coefficient (DANN: 0 = no gradient reversal)."""
    aux_lr: float = 1e-3
    """Learning rate of the auxiliary head (DANN's discriminator must keep up with the features
    it judges, so it does not inherit a fine-tuning LR that is 10x lower by design)."""
    tag: dict[str, Any] = field(default_factory=dict)
    """Free-form labels carried to the result (strategy, fraction, candidate index, ...)."""


@dataclass
class MemberResult:
    member: Member
    params: Params
    """Best-validation backbone weights."""
    best_val: float
    best_epoch: int
    """Index of the validation whose weights were kept (0 = the first)."""
    epochs: int
    """Validations run."""
    val_curve: list[float]
    best_step: int = 0
    """Optimiser steps taken by the kept weights: the stopping point."""
    eval_every: int = 0
    """Steps between two validations of this fit."""
    aux_metric: float | None = None
    """The auxiliary task's held-out metric (DANN: discriminator accuracy), if any."""


class AuxLoss(Protocol):
    """A second objective on the backbone's representation (see :mod:`xfer.transfer.dann`)."""

    def head(self, width: int) -> nn.Module:
        """Its own trainable module, fed the representation (batch, width)."""
        ...

    def term(self, head: Any, h: torch.Tensor, h_other: torch.Tensor, coeff: torch.Tensor,
             main_label: float) -> torch.Tensor:
        """The loss term; ``head(h)`` calls the module functionally (vmap-safe)."""
        ...

    def coeff(self, progress: float) -> float:
        """Schedule of the term's coefficient over the warm-up (0 -> 1)."""
        ...

    def metric(self, head: Any, h: torch.Tensor, h_other: torch.Tensor, main_label: float) -> torch.Tensor:
        """A held-out metric of the head (e.g. accuracy telling the streams apart)."""
        ...


@dataclass
class AuxTask:
    """An auxiliary loss with its data stream: rows of ``data`` paired with each main batch."""

    loss: AuxLoss
    data: Data
    rows: Rows
    val_rows: Rows | None = None
    """Rows for the held-out metric (default: ``rows``)."""
    main_label: float = 0.0
    """Label of the main stream for a two-stream loss (DANN: which domain is 'target')."""
