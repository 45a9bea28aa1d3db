"""The plain way: one member at a time with ``torch.optim.AdamW``.

This is the reference the population trainer is checked against (same seeds, same batch
rows, same early stopping give the same weights) and the baseline of the throughput
benchmark. It draws batch rows exactly as :class:`~xfer.train.population.Population` does.
"""

from __future__ import annotations

import copy
import math

import torch

from xfer.models.backbones import Backbone
from xfer.train.population import (
    Data,
    Member,
    MemberResult,
    Population,
    TrainConfig,
    _even_rows,
    train_rows,
)
from xfer.transfer.strategies import param_groups


def train_one(backbone: Backbone, member: Member, data: Data, val: range | torch.Tensor,
              config: TrainConfig | None = None) -> MemberResult:
    """Fit one member with a standard optimizer; DANN is population-only."""
    if member.dann_weight > 0:
        raise ValueError("train_one does not do DANN; use Population")
    cfg = config or TrainConfig()
    # Same initial weights as the population would give this member.
    init = Population(backbone, cfg)._init_params(member)
    model = copy.deepcopy(backbone)
    model.load_state_dict({k[len("backbone."):]: v for k, v in init.items() if k.startswith("backbone.")})
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    l2sp = member.plan.l2sp_alpha if member.plan.init == "source" else 0.0
    opt = torch.optim.AdamW(param_groups(model, member.plan, member.lr, 0), lr=member.lr,
                            weight_decay=member.weight_decay, eps=1e-8)
    gen = torch.Generator().manual_seed(member.seed)
    pool = train_rows(member.train, backbone.window)
    vrows = _even_rows(val, cfg.eval_rows)
    xv, yv = data.gather(vrows, backbone.window), data.y[vrows]
    last_unfreeze = max((e for e in member.plan.unfreeze_epoch if math.isfinite(e)), default=0.0)
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_val, best_epoch, bad, curve = math.inf, 0, 0, []
    for epoch in range(cfg.max_epochs):
        for g, new in zip(opt.param_groups, param_groups(model, member.plan, member.lr, epoch), strict=True):
            g["lr"] = new["lr"]
        u = torch.rand((cfg.steps_per_epoch, cfg.batch_size), generator=gen)
        rows = pool[(u * len(pool)).long()]
        model.train()
        for s in range(cfg.steps_per_epoch):
            pred = model(data.gather(rows[s], backbone.window))
            loss = torch.mean((pred - data.y[rows[s]]) ** 2)
            if l2sp:
                loss = loss + l2sp * sum(
                    torch.sum((p - anchor[k]) ** 2) for k, p in model.named_parameters() if not k.startswith("head.")
                )
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            vloss = float(torch.mean((model(xv) - yv) ** 2))
        curve.append(vloss)
        if vloss < best_val:
            best_val, best_epoch, bad = vloss, epoch, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if bad >= cfg.patience and epoch >= last_unfreeze:
            break
    return MemberResult(member=member, params=best, best_val=best_val, best_epoch=best_epoch,
                        epochs=len(curve), val_curve=curve)
