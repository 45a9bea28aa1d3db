"""Population training: P small fits at once with stacked parameters and ``torch.func``.

Models here are small, so per-step Python and dispatch overhead, not FLOPs, decides
throughput. A population stacks the parameters of P members along a leading axis and
runs one vmapped forward/backward per step. Members differ in initial weights (source or
random, per seed), per-group learning rates, freeze schedule, weight decay, L2-SP weight,
training rows (target fraction), batch order (seed) and DANN weight.

Built-in optimizers cannot take one learning rate per member (pytorch/functorch#782), so
AdamW is written for the stacked tensors. It matches ``torch.optim.AdamW`` step for step:
moments of every parameter track its gradient each step, and the parameter moves only
where its group is trainable (``torch.where``, so frozen weights stay bit-identical; a
zeroed gradient alone would not do, Adam's moments would keep moving them).

Every member trains until its validation loss stops improving (``patience`` evaluations)
and keeps its best-validation weights: a fair chance for scratch and transfer alike.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from xfer.models.backbones import Backbone
from xfer.transfer.strategies import GroupPlan

Params = dict[str, torch.Tensor]


class DomainHead(nn.Module):
    """Domain discriminator on the backbone's representation (DANN)."""

    def __init__(self, width: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


class Net(nn.Module):
    """A backbone and its domain discriminator, one module for ``functional_call``."""

    def __init__(self, backbone: Backbone, width: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.domain = DomainHead(width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone.embed(x)
        return self.backbone.head(h).squeeze(-1), h

    def discriminate(self, h: torch.Tensor) -> torch.Tensor:
        return self.domain(h)


def grad_reverse(h: torch.Tensor, coeff: torch.Tensor | float) -> torch.Tensor:
    """Identity forward, gradient times ``-coeff`` backward (works under vmap and grad)."""
    return h.detach() * (1.0 + coeff) - h * coeff


def dann_coeff(progress: float, gamma: float = 10.0) -> float:
    """Warm-start schedule of the reversal strength: 0 at the start, -> 1 (Ganin et al.)."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


@dataclass
class Member:
    """One fit of a population."""

    plan: GroupPlan
    lr: float
    seed: int
    train: range | torch.Tensor
    """Training rows: a contiguous range (target fraction) or any row indices (pooled sources)."""
    init: Params | None = None
    """Backbone weights to start from (``plan.init == 'source'``); None = random from ``seed``."""
    weight_decay: float = 0.0
    dann_weight: float = 0.0
    dann_reverse: bool = True
    """False trains the discriminator alone (features untouched): the no-adaptation control
    that shows how separable the domains are to the same discriminator."""
    domain_lr: float = 1e-3
    """Learning rate of the domain discriminator: it must keep up with the features it judges,
    so it does not inherit a fine-tuning LR that is 10x lower by design."""
    tag: dict = field(default_factory=dict)
    """Free-form labels carried to the result (strategy, fraction, candidate index, ...)."""


@dataclass
class TrainConfig:
    """Training loop knobs shared by all members of a population."""

    batch_size: int = 256
    steps_per_epoch: int = 20
    max_epochs: int = 60
    patience: int = 6
    eval_rows: int = 4096
    """Validation rows used for early stopping (evenly spaced if the split has more)."""
    dann_warmup_epochs: int = 5
    """Epochs over which the gradient-reversal strength ramps from 0 to ~1. Tied to epochs, not
    to ``max_epochs``: early stopping ends most fits long before that, and a ramp over the
    nominal budget would leave the reversal weak for the whole fit."""


@dataclass
class MemberResult:
    member: Member
    params: Params
    """Best-validation backbone weights."""
    best_val: float
    best_epoch: int
    epochs: int
    val_curve: list[float]
    domain_acc: float | None = None


@dataclass
class Data:
    """Standardised rows of one domain; sequence backbones read windows ending at a row."""

    x: torch.Tensor  # (n, n_features)
    y: torch.Tensor  # (n,)

    def to(self, device: torch.device | str) -> Data:
        return Data(self.x.to(device), self.y.to(device))

    def gather(self, rows: torch.Tensor, window: int) -> torch.Tensor:
        """Inputs for ``rows`` (any shape): (..., F), or (..., window, F) for sequences."""
        if window <= 1:
            return self.x[rows]
        offs = torch.arange(-window + 1, 1)
        idx = (rows.unsqueeze(-1) + offs).clamp_min(0)
        return self.x[idx]


def stack(params: Sequence[Params]) -> Params:
    return {k: torch.stack([p[k] for p in params]) for k in params[0]}


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


class Population:
    """Trains members that share one backbone architecture, one dataset and one validation set."""

    def __init__(self, backbone: Backbone, config: TrainConfig | None = None) -> None:
        self.template = backbone
        self.cfg = config or TrainConfig()
        width = backbone.head.in_features
        self.net = Net(copy.deepcopy(backbone), width)
        self.window = backbone.window
        self.group_of = {f"backbone.{k}": g for k, g in backbone.param_group_index().items()}
        self.n_groups = len(backbone.group_names())

    # ------------------------------------------------------------------ initial weights
    def _init_params(self, m: Member) -> Params:
        torch.manual_seed(m.seed)
        fresh = copy.deepcopy(self.net)
        for mod in fresh.modules():
            if hasattr(mod, "reset_parameters") and mod is not fresh:
                mod.reset_parameters()
        p = {k: v.detach().clone() for k, v in fresh.named_parameters()}
        if m.plan.init == "source":
            if m.init is None:
                raise ValueError("A member whose plan starts from the source needs init weights")
            for k, v in m.init.items():
                if m.plan.reinit_head and k.startswith("head."):
                    continue
                p[f"backbone.{k}"] = v.detach().clone()
        return p

    # ------------------------------------------------------------------ loss
    def _loss(
        self,
        params: Params,
        anchor: Params,
        xb: torch.Tensor,
        yb: torch.Tensor,
        xd: torch.Tensor,
        l2sp: torch.Tensor,
        dann_w: torch.Tensor,
        coeff: torch.Tensor,
        main_domain: float,
    ) -> torch.Tensor:
        pred, h = functional_call(self.net, params, (xb,))
        loss = torch.mean((pred - yb) ** 2)
        # L2-SP: pull feature weights toward the source weights (zero weight = no pull)
        pen = sum(
            torch.sum((params[k] - anchor[k]) ** 2) for k in anchor if not k.startswith("backbone.head.")
        )
        loss = loss + l2sp * pen
        if xd.numel():
            _, hd = functional_call(self.net, params, (xd,))
            hh = torch.cat([grad_reverse(h, coeff), grad_reverse(hd, coeff)])
            logits = self._disc(params, hh)
            target = torch.cat([torch.full_like(pred, main_domain), torch.full_like(pred[: hd.shape[0]], 1 - main_domain)])
            dl = nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss = loss + dann_w * dl
        return loss

    def _disc(self, params: Params, h: torch.Tensor) -> torch.Tensor:
        sub = {k[len("domain."):]: v for k, v in params.items() if k.startswith("domain.")}
        return functional_call(self.net.domain, sub, (h,))

    def _predict(self, params: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return functional_call(self.net, params, (x,))

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        members: Sequence[Member],
        data: Data,
        val: range | torch.Tensor,
        domain_data: Data | None = None,
        domain_rows: range | torch.Tensor | None = None,
        main_domain: float = 0.0,
        domain_val_rows: range | torch.Tensor | None = None,
    ) -> list[MemberResult]:
        """Train all members; return each one's best-validation weights and curve.

        DANN: ``domain_rows`` of ``domain_data`` feed the discriminator during training;
        its accuracy is measured on ``val`` against ``domain_val_rows`` (rows it never saw).
        """
        cfg = self.cfg
        P = len(members)
        dev = data.x.device
        params = stack([self._init_params(m) for m in members])
        # dropout draws from the global RNG: start it from the members' seeds, not from
        # whatever ran before (reused Ray actors keep state)
        torch.manual_seed(sum((i + 1) * m.seed for i, m in enumerate(members)) % (2**31))
        params = {k: v.to(dev) for k, v in params.items()}
        anchor = {k: params[k].clone() for k in params if k.startswith("backbone.")}
        l2sp = torch.tensor([m.plan.l2sp_alpha if m.plan.init == "source" else 0.0 for m in members], device=dev)
        dann_w = torch.tensor([m.dann_weight for m in members], device=dev)
        reverse = torch.tensor([1.0 if m.dann_reverse else 0.0 for m in members], device=dev)
        use_dann = bool((dann_w > 0).any()) and domain_data is not None and domain_rows is not None
        wd = torch.tensor([m.weight_decay for m in members], device=dev)
        base_lr = torch.tensor([m.lr for m in members], device=dev)
        domain_lr = torch.tensor([m.domain_lr for m in members], device=dev)
        # per (param, member): lr multiplier and unfreeze epoch
        lr_mult, unfreeze = {}, {}
        for k in params:
            g = self.group_of.get(k)
            if g is None:  # discriminator: trains with the head's schedule, only if DANN is on
                g = self.n_groups - 1
            lr_mult[k] = torch.tensor([m.plan.lr_mult[g] for m in members], device=dev)
            unfreeze[k] = torch.tensor([m.plan.unfreeze_epoch[g] for m in members], device=dev)
        # a member is not stopped early while some of its groups are still waiting to unfreeze
        last_unfreeze = torch.tensor(
            [max((e for e in m.plan.unfreeze_epoch if math.isfinite(e)), default=0.0) for m in members]
        )
        exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
        exp_sq = {k: torch.zeros_like(v) for k, v in params.items()}
        beta1, beta2, eps = 0.9, 0.999, 1e-8

        gens = [torch.Generator().manual_seed(m.seed) for m in members]
        pool_list = [train_rows(m.train, self.window) for m in members]
        span = torch.tensor([len(p) for p in pool_list])
        pools = torch.zeros((P, int(span.max())), dtype=torch.long)
        for i, p in enumerate(pool_list):
            pools[i, : len(p)] = p
        vrows = _even_rows(val, cfg.eval_rows)
        xv, yv = data.gather(vrows, self.window), data.y[vrows]
        if use_dann:
            assert domain_data is not None and domain_rows is not None
            dpool = train_rows(domain_rows, self.window)
            # one generator per member: a member's domain rows do not depend on its population
            dgens = [torch.Generator().manual_seed(m.seed + 7919) for m in members]

        step_fn = vmap(
            grad_and_value(self._loss),
            in_dims=(0, 0, 0, 0, 0 if use_dann else None, 0, 0, 0, None),
            randomness="different",
        )
        eval_fn = vmap(self._predict, in_dims=(0, None), randomness="different")

        best = {k: v.clone() for k, v in params.items()}
        best_val = torch.full((P,), math.inf)
        best_epoch = torch.zeros(P, dtype=torch.long)
        active = torch.ones(P, dtype=torch.bool)
        bad = torch.zeros(P, dtype=torch.long)
        curves: list[list[float]] = [[] for _ in range(P)]
        epochs_run = torch.zeros(P, dtype=torch.long)
        warm_steps = max(1, cfg.dann_warmup_epochs * cfg.steps_per_epoch)
        step = 0
        B = cfg.batch_size
        empty = torch.empty(0)
        for epoch in range(cfg.max_epochs):
            active_dev = active.to(dev)
            # batch rows of this epoch: one draw per member from its own generator
            u = torch.stack([torch.rand((cfg.steps_per_epoch, B), generator=g) for g in gens], dim=1)
            pos = (u * span.view(1, P, 1)).long()  # (steps, P, B) positions in each pool
            rows = torch.gather(pools.unsqueeze(0).expand(cfg.steps_per_epoch, -1, -1), 2, pos)
            if use_dann:
                ud = torch.stack([torch.rand((cfg.steps_per_epoch, B), generator=g) for g in dgens], dim=1)
                drows = dpool[(ud * len(dpool)).long()]
            for s in range(cfg.steps_per_epoch):
                xb = data.gather(rows[s], self.window)
                yb = data.y[rows[s]]
                xd = domain_data.gather(drows[s], self.window) if use_dann else empty
                coeff = reverse * dann_coeff(min(1.0, step / warm_steps))
                grads, _ = step_fn(params, anchor, xb, yb, xd, l2sp, dann_w, coeff, main_domain)
                step += 1
                for k in params:
                    g = grads[k]
                    exp_avg[k].mul_(beta1).add_(g, alpha=1 - beta1)
                    exp_sq[k].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    train_mask = active_dev & (unfreeze[k] <= epoch)
                    if k.startswith("domain.") and not use_dann:
                        continue
                    lr = domain_lr if k.startswith("domain.") else base_lr * lr_mult[k]
                    bc1 = 1 - beta1**step
                    bc2 = 1 - beta2**step
                    p = params[k]
                    decayed = p * _bcast(1 - lr * wd, p)
                    denom = exp_sq[k].sqrt() / math.sqrt(bc2) + eps  # as torch.optim.AdamW
                    new = decayed - _bcast(lr / bc1, p) * exp_avg[k] / denom
                    params[k] = torch.where(_bcast(train_mask, p), new, p)
            self.net.eval()
            with torch.no_grad():
                pred, _ = eval_fn(params, xv)
                vloss = torch.mean((pred - yv) ** 2, dim=1).cpu()
            self.net.train()
            improved = active & (vloss < best_val)
            for k in params:
                best[k] = torch.where(_bcast(improved.to(dev), params[k]), params[k], best[k])
            best_val = torch.where(improved, vloss, best_val)
            best_epoch = torch.where(improved, torch.tensor(epoch), best_epoch)
            bad = torch.where(improved, torch.zeros_like(bad), bad + active.long())
            for i in range(P):
                if active[i]:
                    curves[i].append(float(vloss[i]))
            epochs_run += active.long()
            active = active & ((bad < cfg.patience) | (epoch < last_unfreeze))
            if not active.any():
                break

        self.net.eval()
        held_out = domain_val_rows if domain_val_rows is not None else domain_rows
        dom_acc = self._domain_accuracy(best, data, vrows, domain_data, held_out, main_domain) if use_dann else None
        results = []
        for i, m in enumerate(members):
            bp = {k[len("backbone."):]: v[i].detach().clone() for k, v in best.items() if k.startswith("backbone.")}
            results.append(MemberResult(
                member=m, params=bp, best_val=float(best_val[i]), best_epoch=int(best_epoch[i]),
                epochs=int(epochs_run[i]), val_curve=curves[i],
                domain_acc=float(dom_acc[i]) if dom_acc is not None and m.dann_weight > 0 else None,
            ))
        return results

    @torch.no_grad()
    def _domain_accuracy(self, params: Params, data: Data, vrows: torch.Tensor,
                         domain_data: Data | None, domain_rows: range | torch.Tensor | None,
                         main_domain: float) -> torch.Tensor:
        """Held-out accuracy of the discriminator telling the two domains apart (0.5 = chance)."""
        assert domain_data is not None and domain_rows is not None
        dpool = train_rows(domain_rows, self.window)
        drows = dpool[torch.linspace(0, len(dpool) - 1, len(vrows)).round().long()]
        xa, xb = data.gather(vrows, self.window), domain_data.gather(drows, self.window)

        def acc(p: Params) -> torch.Tensor:
            _, ha = functional_call(self.net, p, (xa,))
            _, hb = functional_call(self.net, p, (xb,))
            la, lb = self._disc(p, ha), self._disc(p, hb)
            ya = (la > 0).float() == main_domain
            yb = (lb > 0).float() == (1 - main_domain)
            return torch.cat([ya, yb]).float().mean()

        return vmap(acc, randomness="different")(params).cpu()


def train_rows(rows: range | torch.Tensor, window: int) -> torch.Tensor:
    """Rows a member may sample: a window-sized input must fit before each (ranges only)."""
    if isinstance(rows, range):
        pool = torch.arange(max(rows.start, window - 1), rows.stop)
    else:
        pool = torch.as_tensor(rows, dtype=torch.long)
    if len(pool) < 1:
        raise ValueError("A member has no training rows")
    return pool


def _even_rows(r: range | torch.Tensor, limit: int) -> torch.Tensor:
    rows = torch.arange(r.start, r.stop) if isinstance(r, range) else torch.as_tensor(r, dtype=torch.long)
    if len(rows) <= limit:
        return rows
    return rows[torch.linspace(0, len(rows) - 1, limit).round().long()]


def predict_many(backbone: Backbone, params: Sequence[Params], data: Data, rows: torch.Tensor) -> torch.Tensor:
    """Predictions of several members at once: (n_members, len(rows))."""
    model = copy.deepcopy(backbone).eval()
    x = data.gather(rows, backbone.window)
    with torch.no_grad():
        return vmap(lambda p: functional_call(model, p, (x,)), randomness="different")(stack(list(params)))
