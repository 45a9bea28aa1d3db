"""The plain way: one member at a time with ``torch.optim.AdamW``.

This is the reference the population trainer is checked against (same seeds, same batch
rows, same early stopping give the same weights) and the baseline of the throughput
benchmark. It draws batch rows exactly as :class:`~xfer.train.population.Population` does.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from xfer.models.backbones import Backbone
from xfer.train.population import Population, even_rows, train_rows
from xfer.train.types import Data, GroupPlan, Member, MemberResult, Rows, TrainConfig, schedule


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


def train_one(backbone: Backbone, member: Member, data: Data, val: Rows,
              config: TrainConfig | None = None) -> MemberResult:
    """Fit one member with a standard optimizer; auxiliary losses (DANN) are population-only."""
    if member.aux_weight > 0:
        raise ValueError("train_one does not do auxiliary losses (DANN); use Population")
    cfg = config or TrainConfig()
    # Same initial weights as the population would give this member.
    init = Population(backbone, cfg).init_params(member)
    model = copy.deepcopy(backbone)
    model.load_state_dict({k[len("backbone."):]: v for k, v in init.items() if k.startswith("backbone.")})
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    l2sp = member.plan.l2sp_alpha if member.plan.init == "source" else 0.0
    opt = torch.optim.AdamW(param_groups(model, member.plan, member.lr, 0), lr=member.lr,
                            weight_decay=member.weight_decay, eps=1e-8)
    gen = torch.Generator().manual_seed(member.seed)
    pool = train_rows(member.train, backbone.window)
    vrows = even_rows(val, cfg.eval_rows)
    xv, yv = data.gather(vrows, backbone.window), data.y[vrows]
    last_unfreeze = max((e for e in member.plan.unfreeze_epoch if math.isfinite(e)), default=0.0)
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sched = schedule(cfg, len(pool))
    best_val, best_epoch, best_step, bad, curve, step = math.inf, 0, 0, 0, [], 0
    for ev in range(sched.max_evals):
        u = torch.rand((sched.eval_every, cfg.batch_size), generator=gen)
        rows = pool[(u * len(pool)).long()]
        model.train()
        for s in range(sched.eval_every):
            epoch = step // cfg.steps_per_epoch
            for g, new in zip(opt.param_groups, param_groups(model, member.plan, member.lr, epoch), strict=True):
                g["lr"] = new["lr"]
            pred = model(data.gather(rows[s], backbone.window))
            loss = torch.mean((pred - data.y[rows[s]]) ** 2)
            if l2sp:
                loss = loss + l2sp * sum(
                    torch.sum((p - anchor[k]) ** 2) for k, p in model.named_parameters() if not k.startswith("head.")
                )
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():
            vloss = float(torch.mean((model(xv) - yv) ** 2))
        curve.append(vloss)
        if vloss < best_val:
            best_val, best_epoch, best_step, bad = vloss, ev, step, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if bad >= sched.patience and (step - 1) // cfg.steps_per_epoch >= last_unfreeze:
            break
    return MemberResult(member=member, params=best, best_val=best_val, best_epoch=best_epoch,
                        epochs=len(curve), val_curve=curve, best_step=best_step, eval_every=sched.eval_every)
