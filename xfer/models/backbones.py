"""Backbones with ordered layer groups.

Every backbone is a ``features`` part (a stack of layer groups, early to late) and a
``head``. Freeze strategies, discriminative learning rates and domain adaptation are
defined once over that structure: a strategy speaks of "group i", never of a layer name.

Adding a backbone is one class plus one line in :data:`BACKBONES`; the contract tests in
``tests/models`` run over the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class BackboneSpec(BaseModel):
    """Architecture of a backbone (everything that determines its shapes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="mlp", description="Registered backbone name.")
    hidden: int = Field(default=64, ge=2, le=4096, description="Width of each hidden layer.")
    depth: int = Field(default=2, ge=1, le=16, description="Hidden layer groups before the head.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout after each group.")
    activation: Literal["leaky_relu", "gelu", "relu", "silu"] = Field(
        default="leaky_relu", description="Nonlinearity of the hidden groups (leaky_relu: slope 0.01). On a CPU, "
        "exact (erf) GELU's forward + backward cost ~6x leaky ReLU's, about as much as the default MLP's matrix "
        "products, so leaky ReLU trains ~1.3x faster per step (BENCHMARKS.md). It keeps every known-answer "
        "verdict (tests/transfer); plain ReLU does not (its dead units lose the opposite-dynamics negative "
        "transfer of a 16-wide MLP). GELU was the default until 2026-12; the studies behind RESULTS.md pin it.")
    window: int = Field(default=20, ge=1, le=512, description="Past days seen (sequence backbones).")


class Backbone(nn.Module):
    """Base class: ``features`` is an ``nn.ModuleList`` of groups, ``head`` maps to one output."""

    features: nn.ModuleList
    head: nn.Linear
    window: int = 1
    """Past days per input: 1 = one feature vector (batch, F); >1 = (batch, window, F)."""

    @classmethod
    def input_window(cls, spec: BackboneSpec) -> int:
        """The ``window`` a backbone built from ``spec`` will have (known before building it)."""
        return 1

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the head (and a domain discriminator) sees: (batch, hidden)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(-1)

    stacked: bool = False
    """Whether :meth:`stacked_grads` trains P members at once directly (else the trainer vmaps)."""

    def stacked_forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def stacked_grads(self, p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                      out: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

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
            layers.append(nn.Sequential(nn.Linear(width, spec.hidden), ACTIVATIONS[spec.activation](),
                                        nn.Dropout(spec.dropout)))
            width = spec.hidden
        self.features = nn.ModuleList(layers)
        self.head = nn.Linear(width, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        for g in self.features:
            x = g(x)
        return x

    @property
    def stacked(self) -> bool:
        return all(float(g[2].p) == 0.0 for g in self.features)

    def stacked_forward(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Predictions (P, batch) of P members at once (``p[name]``: (P, *shape), ``x``: (P, batch, F)),
        and the layer inputs and pre-activations the backward pass needs."""
        saved, h = [], x
        for i, g in enumerate(self.features):
            z = torch.baddbmm(p[f"features.{i}.0.bias"].unsqueeze(1), h, p[f"features.{i}.0.weight"].transpose(1, 2))
            saved += [h, z]
            h = g[1](z)
        saved.append(h)
        pred = torch.baddbmm(p["head.bias"].unsqueeze(1), h, p["head.weight"].transpose(1, 2)).squeeze(-1)
        return pred, saved

    def stacked_grads(self, p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                      out: dict[str, torch.Tensor]) -> None:
        """Each member's gradient of its mean squared error on its own batch (``y``: (P, batch)),
        written into ``out[name]`` ((P, *shape) each): :meth:`stacked_forward` and its backward
        pass by hand. Members do not interact, so every member gets its exact gradient, and
        without dropout no autograd or vmap machinery is needed."""
        pred, saved = self.stacked_forward(p, x)
        d = (2.0 * (pred - y)).mul_(1.0 / y.shape[1]).unsqueeze(1)  # d loss / d pred: (P, 1, batch)
        h = saved.pop()
        torch.bmm(d, h, out=out["head.weight"])
        torch.sum(d, dim=2, out=out["head.bias"])
        dh = d.transpose(1, 2) * p["head.weight"]  # (P, batch, hidden)
        for i in reversed(range(len(self.features))):
            z, h_in = saved.pop(), saved.pop()
            act = self.features[i][1]
            dz = _ACT_BACKWARD[type(act)](act, dh, z, h)
            torch.bmm(dz.transpose(1, 2), h_in, out=out[f"features.{i}.0.weight"])
            torch.sum(dz, dim=1, out=out[f"features.{i}.0.bias"])
            if i:
                dh = torch.bmm(dz, p[f"features.{i}.0.weight"])
            h = h_in


_ACT_BACKWARD: dict[type, Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.LeakyReLU: lambda a, g, z, h: torch.ops.aten.leaky_relu_backward(g, z, a.negative_slope, False),
    nn.ReLU: lambda a, g, z, h: torch.ops.aten.threshold_backward(g, h, 0),
    nn.GELU: lambda a, g, z, h: torch.ops.aten.gelu_backward(g, z),
    nn.SiLU: lambda a, g, z, h: torch.ops.aten.silu_backward(g, z),
}
"""Gradient through an activation: (the module, upstream gradient, its input, its output) -> gradient of the input."""


class _CausalConv(nn.Module):
    """Dilated 1-D convolution padded on the left only, so step t sees steps <= t."""

    def __init__(self, c_in: int, c_out: int, dilation: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.pad = 2 * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=3, dilation=dilation)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, channels, time)
        return self.drop(self.act(self.conv(nn.functional.pad(x, (self.pad, 0)))))


class TCN(Backbone):
    """Temporal convolution over a window of past days; the last step feeds the head."""

    @classmethod
    def input_window(cls, spec: BackboneSpec) -> int:
        return spec.window

    def __init__(self, n_features: int, spec: BackboneSpec) -> None:
        super().__init__()
        self.window = self.input_window(spec)
        groups = []
        c = n_features
        for i in range(spec.depth):
            groups.append(_CausalConv(c, spec.hidden, dilation=2**i, dropout=spec.dropout,
                                     activation=spec.activation))
            c = spec.hidden
        self.features = nn.ModuleList(groups)
        self.head = nn.Linear(c, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, window, n_features)
        h = x.transpose(-1, -2)
        for g in self.features:
            h = g(h)
        return h[..., -1]


BACKBONES: dict[str, type[Backbone]] = {
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
