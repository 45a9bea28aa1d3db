"""How well can the two domains be told apart from a model's representation?

A linear probe (logistic regression) is fitted on the embeddings of the source and target
training rows and scored on their validation rows (later in time, never fitted on). 0.5 is chance: the representation is domain
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
    model = copy.deepcopy(backbone)
    model.load_state_dict(params)
    model.eval()
    return model.embed(data.gather(rows, backbone.window))


def probe_accuracy(a_fit: torch.Tensor, b_fit: torch.Tensor, a_test: torch.Tensor, b_test: torch.Tensor,
                   *, steps: int = 200) -> float:
    """Accuracy on (``a_test``, ``b_test``) of a logistic probe fitted to tell ``a_fit`` from ``b_fit``.

    Classes are balanced by subsampling the larger side (deterministically), so 0.5 is chance.
    """

    def balance(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(len(a), len(b))
        pick = lambda t: t[torch.linspace(0, len(t) - 1, n).round().long()]  # noqa: E731
        return pick(a).double(), pick(b).double()

    a_fit, b_fit = balance(a_fit, b_fit)
    a_test, b_test = balance(a_test, b_test)
    x = torch.cat([a_fit, b_fit])
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    x = (x - mu) / sd
    y = torch.cat([torch.zeros(len(a_fit)), torch.ones(len(b_fit))]).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    c = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + c, y) + 1e-3 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    xt = (torch.cat([a_test, b_test]) - mu) / sd
    yt = torch.cat([torch.zeros(len(a_test)), torch.ones(len(b_test))]).double()
    with torch.no_grad():
        return float((((xt @ w + c) > 0).double() == yt).double().mean())
