"""Backbones with ordered layer groups.

Every backbone is a ``features`` part (a stack of layer groups, early to late) and a
``head``. Freeze strategies, discriminative learning rates and domain adaptation are
defined once over that structure: a strategy speaks of "group i", never of a layer name.

Adding a backbone is one class plus one line in :data:`BACKBONES`; the contract tests in
``tests/models`` run over the registry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class BackboneSpec(BaseModel):
    """Architecture of a backbone (everything that determines its shapes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="mlp", description="Registered backbone name.")
    hidden: int = Field(default=64, ge=2, le=4096, description="Width of each hidden layer.")
    depth: int = Field(default=2, ge=1, le=16, description="Hidden layer groups before the head.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout after each group.")
    window: int = Field(default=20, ge=1, le=512, description="Past days seen (sequence backbones).")


class Backbone(nn.Module):
    """Base class: ``features`` is an ``nn.ModuleList`` of groups, ``head`` maps to one output."""

    features: nn.ModuleList
    head: nn.Linear
    window: int = 1
    """Past days per input: 1 = one feature vector (batch, F); >1 = (batch, window, F)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the head (and a domain discriminator) sees: (batch, hidden)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(-1)

    def group_names(self) -> list[str]:
        """Layer groups, early to late; the head is always last."""
        return [f"features.{i}" for i in range(len(self.features))] + ["head"]

    def param_group_index(self) -> dict[str, int]:
        """Parameter name -> index of its group in :meth:`group_names`."""
        out: dict[str, int] = {}
        for name, _ in self.named_parameters():
            if name.startswith("head."):
                out[name] = len(self.features)
            elif name.startswith("features."):
                out[name] = int(name.split(".")[1])
            else:
                raise ValueError(f"Parameter {name!r} belongs to no layer group")
        return out


class MLP(Backbone):
    """Feed-forward net over the feature vector of one day."""

    def __init__(self, n_features: int, spec: BackboneSpec) -> None:
        super().__init__()
        layers = []
        width = n_features
        for _ in range(spec.depth):
            layers.append(nn.Sequential(nn.Linear(width, spec.hidden), nn.GELU(), nn.Dropout(spec.dropout)))
            width = spec.hidden
        self.features = nn.ModuleList(layers)
        self.head = nn.Linear(width, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        for g in self.features:
            x = g(x)
        return x


class _CausalConv(nn.Module):
    """Dilated 1-D convolution padded on the left only, so step t sees steps <= t."""

    def __init__(self, c_in: int, c_out: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = 2 * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=3, dilation=dilation)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, channels, time)
        return self.drop(self.act(self.conv(nn.functional.pad(x, (self.pad, 0)))))


class TCN(Backbone):
    """Temporal convolution over a window of past days; the last step feeds the head."""

    def __init__(self, n_features: int, spec: BackboneSpec) -> None:
        super().__init__()
        self.window = spec.window
        groups = []
        c = n_features
        for i in range(spec.depth):
            groups.append(_CausalConv(c, spec.hidden, dilation=2**i, dropout=spec.dropout))
            c = spec.hidden
        self.features = nn.ModuleList(groups)
        self.head = nn.Linear(c, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, window, n_features)
        h = x.transpose(-1, -2)
        for g in self.features:
            h = g(h)
        return h[..., -1]


BACKBONES: dict[str, Callable[[int, BackboneSpec], Backbone]] = {
    "mlp": MLP,
    "tcn": TCN,
}


def build_backbone(n_features: int, spec: BackboneSpec) -> Backbone:
    """Instantiate a registered backbone; an unknown name lists the valid ones."""
    if spec.name not in BACKBONES:
        raise ValueError(
            f"The 'backbone' parameter must be one of {sorted(BACKBONES)}. Got {spec.name!r} instead."
        )
    return BACKBONES[spec.name](n_features, spec)
