"""How well can the two domains be told apart from a model's representation?

A small MLP probe is fitted on the embeddings of the source and target training rows and
scored on their validation rows (later in time, never fitted on). 0.5 is chance: the representation is domain
invariant, which is what domain-adversarial training aims for. The probe is trained fresh
for every model, so it also measures models that never had a discriminator.
"""

from __future__ import annotations

import copy

import torch

from xfer.models.backbones import Backbone
from xfer.train.population import Data, Params


@torch.no_grad()
def embed(backbone: Backbone, params: Params, data: Data, rows: torch.Tensor) -> torch.Tensor:
    model = copy.deepcopy(backbone).to(data.x.device)
    model.load_state_dict(params)
    model.eval()
    return model.embed(data.gather(rows, backbone.window)).cpu()


def probe_accuracy(a_fit: torch.Tensor, b_fit: torch.Tensor, a_test: torch.Tensor, b_test: torch.Tensor,
                   *, hidden: int = 32, steps: int = 300, seed: int = 0) -> float:
    """Accuracy on (``a_test``, ``b_test``) of a fresh probe fitted to tell ``a_fit`` from ``b_fit``.

    The probe is a small MLP, like a DANN discriminator, trained full-batch with Adam. Classes
    are balanced by subsampling the larger side, so 0.5 is chance. Per-domain standardisation
    makes every feature's mean and scale equal on the training rows, so a linear probe would be
    blind by construction; the shift that remains is in shapes and dependencies.
    """

    def balance(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(len(a), len(b))
        pick = lambda t: t[torch.linspace(0, len(t) - 1, n).round().long()].float()  # noqa: E731
        return pick(a), pick(b)

    a_fit, b_fit = balance(a_fit, b_fit)
    a_test, b_test = balance(a_test, b_test)
    x = torch.cat([a_fit, b_fit])
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mu) / sd
    y = torch.cat([torch.zeros(len(a_fit)), torch.ones(len(b_fit))])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    with torch.enable_grad():
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(-1), y).backward()
            opt.step()
    xt = (torch.cat([a_test, b_test]) - mu) / sd
    yt = torch.cat([torch.zeros(len(a_test)), torch.ones(len(b_test))])
    with torch.no_grad():
        return float(((net(xt).squeeze(-1) > 0).float() == yt).float().mean())
