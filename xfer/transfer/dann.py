"""Domain-adversarial training (DANN, Ganin et al. 2016) as one small method.

A discriminator head learns to tell source rows from target rows from the backbone's
representation; a gradient-reversal layer between them pushes the representation toward
features the discriminator cannot separate (domain invariant). The trainer sees only an
auxiliary loss (:class:`~xfer.train.types.AuxLoss`): this module is the whole method.

``Member.aux_coeff = 0`` trains the same discriminator without reversal: the control that
shows how separable the domains are to it when the features are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from xfer.train.types import AuxTask, Data, Rows


class DomainHead(nn.Module):
    """Domain discriminator on the backbone's representation."""

    def __init__(self, width: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


def grad_reverse(h: torch.Tensor, coeff: torch.Tensor | float) -> torch.Tensor:
    """Identity forward, gradient times ``-coeff`` backward (works under vmap and grad)."""
    return h.detach() * (1.0 + coeff) - h * coeff


def dann_coeff(progress: float, gamma: float = 10.0) -> float:
    """Warm-start schedule of the reversal strength: 0 at the start, -> 1 (Ganin et al.)."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


Head = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DANN:
    """The auxiliary loss: binary cross-entropy of the discriminator behind gradient reversal."""

    hidden: int = 32

    def head(self, width: int) -> nn.Module:
        return DomainHead(width, self.hidden)

    def term(self, head: Head, h: torch.Tensor, h_other: torch.Tensor, coeff: torch.Tensor,
             main_label: float) -> torch.Tensor:
        logits = head(torch.cat([grad_reverse(h, coeff), grad_reverse(h_other, coeff)]))
        labels = torch.cat([torch.full_like(h[:, 0], main_label),
                            torch.full_like(h_other[:, 0], 1 - main_label)])
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)

    def coeff(self, progress: float) -> float:
        return dann_coeff(progress)

    def metric(self, head: Head, h: torch.Tensor, h_other: torch.Tensor, main_label: float) -> torch.Tensor:
        """Held-out accuracy telling the two domains apart (0.5 = chance)."""
        ya = (head(h) > 0).float() == main_label
        yb = (head(h_other) > 0).float() == (1 - main_label)
        return torch.cat([ya, yb]).float().mean()


def dann_task(other: Data, rows: Rows, val_rows: Rows | None, *, main_is_target: bool) -> AuxTask:
    """DANN against another domain's rows; ``main_is_target`` labels the trained stream 1."""
    return AuxTask(DANN(), other, rows, val_rows, main_label=1.0 if main_is_target else 0.0)
