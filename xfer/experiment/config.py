"""What defines one transfer experiment, validated once at the boundary.

:class:`TransferConfig` is the whole experiment (``xfer transfer`` and the Python API);
:class:`Candidate` is one hyperparameter configuration of one strategy, trained for every
seed; :data:`TRAINING_KNOBS` are the searchable knobs that are not a strategy's own (a
strategy's knobs live in its registry entry, :mod:`xfer.transfer.strategies`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from xfer.data.features import DEFAULT_HORIZON
from xfer.data.splits import SplitSpec
from xfer.models.backbones import BackboneSpec
from xfer.train.types import TrainConfig
from xfer.transfer.strategies import STRATEGIES, Knob, KnobValue, all_knobs

TRAINING_KNOBS: dict[str, Knob] = {k.name: k for k in (
    Knob("lr_ratio", "float", 0.1, 1e-4, 10.0, log=True, help="fine-tune LR / source LR (transfer strategies)"),
    Knob("scratch_lr", "float", 1e-3, 1e-6, 1.0, log=True, help="learning rate of the scratch baseline"),
    Knob("weight_decay", "float", 1e-4, 0.0, 1.0, help="AdamW weight decay"),
    Knob("dann_weight", "float", 1.0, 0.0, 100.0, help="domain-adversarial loss weight (cells with DANN on)"),
)}


def searchable() -> dict[str, Knob]:
    """Every knob a study may search: the training knobs and every strategy's own."""
    return {**TRAINING_KNOBS, **all_knobs()}


def check_knobs(knobs: dict[str, KnobValue]) -> dict[str, KnobValue]:
    """Validate strategy knob values against the registry (unknown names list the valid ones)."""
    known = all_knobs()
    bad = sorted(set(knobs) - set(known))
    if bad:
        raise ValueError(f"knobs must be among {sorted(known)}. Got unknown {bad} instead.")
    return {k: known[k].check(v, "the experiment") for k, v in knobs.items()}


def check_strategies(names: tuple[str, ...]) -> tuple[str, ...]:
    bad = [s for s in names if s not in STRATEGIES]
    if bad:
        raise ValueError(f"strategies must be among {sorted(STRATEGIES)}. Got unknown {bad} instead.")
    if not names:
        raise ValueError("strategies must list at least one strategy. Got () instead.")
    return names


def check_fractions(v: tuple[float, ...]) -> tuple[float, ...]:
    bad = [f for f in v if not 0.0 < f <= 1.0]
    if bad or not v:
        raise ValueError(f"fractions must be in (0, 1]. Got {list(v)} instead.")
    return tuple(sorted(set(v)))


class TransferConfig(BaseModel):
    """Everything that defines one transfer experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: tuple[str, ...] = Field(description="Source market ids or @groups (pooled).")
    target: str = Field(description="Target market id.")
    strategies: tuple[str, ...] = Field(
        default=("scratch", "head_only", "partial", "full"),
        description="Strategies to fit; `xfer transfer` always adds scratch, the baseline.")
    fractions: tuple[float, ...] = Field(default=(1.0,), description="Target-data fractions.")
    seeds: int = Field(default=3, ge=1, le=64)
    target_type: Literal["volatility", "return"] = "volatility"
    horizon: int | None = Field(default=None, ge=1, description="Label horizon (default per target).")
    chain: tuple[str, ...] = Field(default=(), description="Intermediate markets, in order.")
    chain_strategy: str = Field(default="full", description="Strategy of each intermediate stage.")
    lr_ratio: float = Field(default=0.1, gt=0.0, description="Fine-tune base LR = ratio x source LR.")
    source_lr: float = Field(default=1e-3, gt=0.0)
    lr_candidates: tuple[float, ...] = Field(
        default=(0.5, 1.0, 2.0),
        description="Search budget: multipliers of each strategy's base LR tried on validation "
        "(scratch's base LR is the source LR). Same count for every strategy.",
    )
    weight_decay: float = Field(default=1e-4, ge=0.0)
    backbone: BackboneSpec = BackboneSpec()
    knobs: dict[str, KnobValue] = Field(default_factory=dict, description="Strategy knobs (registry names).")
    dann_weight: float = Field(default=0.0, ge=0.0, description="DANN loss weight (0 = off).")
    dann_reverse: bool = Field(
        default=True, description="False: train the discriminator without gradient reversal (the control).")
    split: SplitSpec = Field(default=SplitSpec(n_folds=3, horizon=5, embargo=5))
    source_val_share: float = Field(default=0.1, gt=0.0, lt=0.5)
    train: TrainConfig = TrainConfig()
    source_train: TrainConfig = TrainConfig(steps_per_epoch=50, max_epochs=30, patience=4)
    cost_bps: float = Field(default=2.0, ge=0.0, description="Per-unit-turnover cost (return target).")
    importance_repeats: int = Field(default=2, ge=0, description="0 = no permutation importance.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where populations train: 'auto' = CUDA when available.")
    domain_probe: bool = Field(default=False, description="Probe how separable source/target embeddings are.")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        return check_fractions(v)

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_strategies(v)

    @field_validator("knobs")
    @classmethod
    def _knobs(cls, v: dict[str, KnobValue]) -> dict[str, KnobValue]:
        return check_knobs(v)

    @field_validator("chain_strategy")
    @classmethod
    def _chain_strategy(cls, v: str) -> str:
        check_strategies((v,))
        return v

    @property
    def h(self) -> int:
        return self.horizon or DEFAULT_HORIZON[self.target_type]

    @property
    def target_split(self) -> SplitSpec:
        """The target's walk-forward split with the label horizon, and an embargo of at least it."""
        return self.split.model_copy(update={"horizon": self.h, "embargo": max(self.h, self.split.embargo)})

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass(frozen=True)
class Candidate:
    """One hyperparameter configuration of one strategy, trained for every seed."""

    strategy: str
    lr: float
    weight_decay: float = 1e-4
    knobs: dict[str, KnobValue] = field(default_factory=dict)
    dann_weight: float = 0.0
    tag: tuple[tuple[str, Any], ...] = ()
