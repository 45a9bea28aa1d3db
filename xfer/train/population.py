"""Population training: P small fits at once with stacked parameters and ``torch.func``.

Models here are small, so per-step Python and dispatch overhead, not FLOPs, decides
throughput. A population stacks the parameters of P members along a leading axis and
runs one vmapped forward/backward per step. Members differ in initial weights (given or
random, per seed), per-group learning rates and unfreeze epochs (a :class:`GroupPlan`),
weight decay, L2-SP weight, training rows, batch order (seed) and auxiliary-loss weight.

Built-in optimizers cannot take one learning rate per member (pytorch/functorch#782), so
AdamW is written for the stacked tensors. It matches ``torch.optim.AdamW`` step for step:
moments of every parameter track its gradient each step, and the parameter moves only
where its group is trainable (``torch.where``, so frozen weights stay bit-identical; a
zeroed gradient alone would not do, Adam's moments would keep moving them).

Every member trains until its validation loss stops improving and keeps its best-validation
weights: a fair chance for scratch and transfer alike. It validates after every pass over its
training rows (at most ``steps_per_epoch`` steps apart, :func:`~xfer.train.types.schedule`), so
a 130-row window is checked after every step and early stopping can act on a small fit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from xfer.models.backbones import Backbone
from xfer.train.types import (
    AuxTask,
    Data,
    Member,
    MemberResult,
    Params,
    Rows,
    TrainConfig,
    schedule,
)

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class Net(nn.Module):
    """A backbone and, when a fit has an auxiliary loss, its head: one module for ``functional_call``."""

    def __init__(self, backbone: Backbone, aux_head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        if aux_head is not None:
            self.aux = aux_head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone.embed(x)
        return self.backbone.head(h).squeeze(-1), h


def stack(params: Sequence[Params]) -> Params:
    return {k: torch.stack([p[k] for p in params]) for k in params[0]}


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


@dataclass
class _Hyper:
    """Per-member settings as tensors on the device (leading axis = member)."""

    l2sp: torch.Tensor
    aux_w: torch.Tensor
    aux_coeff: torch.Tensor
    wd: torch.Tensor
    lr: dict[str, torch.Tensor]
    """Per parameter: each member's learning rate (base x group multiplier, or the aux LR)."""
    unfreeze: dict[str, torch.Tensor]
    last_unfreeze: torch.Tensor

    def subset(self, keep: torch.Tensor, keep_cpu: torch.Tensor) -> _Hyper:
        """The settings of the members where ``keep`` (on the device; ``keep_cpu`` on the CPU)."""
        return _Hyper(self.l2sp[keep], self.aux_w[keep], self.aux_coeff[keep], self.wd[keep],
                      {k: v[keep] for k, v in self.lr.items()}, {k: v[keep] for k, v in self.unfreeze.items()},
                      self.last_unfreeze[keep_cpu])


class Population:
    """Trains members that share one backbone architecture, one dataset and one validation set."""

    compact: bool = True
    """Drop members from the working tensors once they stop (False: keep computing them, masked)."""

    def __init__(self, backbone: Backbone, config: TrainConfig | None = None) -> None:
        self.template = backbone
        self.cfg = config or TrainConfig()
        self.window = backbone.window
        self.group_of = {f"backbone.{k}": g for k, g in backbone.param_group_index().items()}
        self.n_groups = len(backbone.group_names())
        self.net = Net(copy.deepcopy(backbone))
        self.aux: AuxTask | None = None

    def _with_aux(self, aux: AuxTask | None) -> None:
        self.aux = aux
        head = aux.loss.head(self.template.head.in_features) if aux is not None else None
        self.net = Net(copy.deepcopy(self.template), head)

    # ------------------------------------------------------------------ initial weights
    def init_params(self, m: Member) -> Params:
        """A member's starting weights: random from its seed, then the given ones where its plan says."""
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
    def _aux_head(self, params: Params) -> object:
        sub = {k[len("aux."):]: v for k, v in params.items() if k.startswith("aux.")}
        return lambda h: functional_call(self.net.aux, sub, (h,))

    def _loss(self, params: Params, anchor: Params, xb: torch.Tensor, yb: torch.Tensor, xd: torch.Tensor,
              l2sp: torch.Tensor, aux_w: torch.Tensor, coeff: torch.Tensor) -> torch.Tensor:
        pred, h = functional_call(self.net, params, (xb,))
        loss = torch.mean((pred - yb) ** 2)
        # L2-SP: pull feature weights toward the starting weights (zero weight = no pull)
        pen = sum(torch.sum((params[k] - anchor[k]) ** 2) for k in anchor if not k.startswith("backbone.head."))
        loss = loss + l2sp * pen
        if xd.numel():
            assert self.aux is not None
            _, hd = functional_call(self.net, params, (xd,))
            loss = loss + aux_w * self.aux.loss.term(self._aux_head(params), h, hd, coeff, self.aux.main_label)
        return loss

    def _predict(self, params: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return functional_call(self.net, params, (x,))

    # ------------------------------------------------------------------ set-up
    def _hyper(self, members: Sequence[Member], params: Params, dev: torch.device) -> _Hyper:
        def t(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, device=dev)

        base_lr = t([m.lr for m in members])
        lr, unfreeze = {}, {}
        for k in params:
            # the auxiliary head follows the head's unfreeze schedule at its own learning rate
            g = self.group_of.get(k, self.n_groups - 1)
            is_aux = k.startswith("aux.")
            lr[k] = t([m.aux_lr for m in members]) if is_aux else base_lr * t([m.plan.lr_mult[g] for m in members])
            unfreeze[k] = t([m.plan.unfreeze_epoch[g] for m in members])
        return _Hyper(
            l2sp=t([m.plan.l2sp_alpha if m.plan.init == "source" else 0.0 for m in members]),
            aux_w=t([m.aux_weight for m in members]), aux_coeff=t([m.aux_coeff for m in members]),
            wd=t([m.weight_decay for m in members]), lr=lr, unfreeze=unfreeze,
            # a member is not stopped early while some of its groups are still waiting to unfreeze
            last_unfreeze=torch.tensor([max((e for e in m.plan.unfreeze_epoch if math.isfinite(e)), default=0.0)
                                        for m in members]),
        )

    def _adam(self, params: Params, grads: Params, moments: tuple[Params, Params], hp: _Hyper,
              step: int, epoch: int, active: torch.Tensor) -> None:
        """One stacked AdamW step (as ``torch.optim.AdamW``), applied only where a group trains."""
        exp_avg, exp_sq = moments
        bc1, bc2 = 1 - BETA1**step, 1 - BETA2**step
        for k in params:
            g = grads[k]
            exp_avg[k].mul_(BETA1).add_(g, alpha=1 - BETA1)
            exp_sq[k].mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            p, lr = params[k], hp.lr[k]
            decayed = p * _bcast(1 - lr * hp.wd, p)
            denom = exp_sq[k].sqrt() / math.sqrt(bc2) + EPS
            new = decayed - _bcast(lr / bc1, p) * exp_avg[k] / denom
            params[k] = torch.where(_bcast(active & (hp.unfreeze[k] <= epoch), p), new, p)

    # ------------------------------------------------------------------ fit
    def fit(self, members: Sequence[Member], data: Data, val: Rows, aux: AuxTask | None = None) -> list[MemberResult]:
        """Train all members; return each one's best-validation weights and curve.

        ``aux``: an auxiliary loss (e.g. DANN) whose rows of ``aux.data`` are paired with every
        batch of members with ``aux_weight > 0``; its metric is measured on ``val`` against
        ``aux.val_rows`` (rows it never trained on).

        Members whose training windows give different validation schedules (a 130-row and a
        5000-row window) train as separate sub-populations, so a member's fit never depends on
        which population it was in (it matches :func:`~xfer.train.sequential.train_one`).
        """
        groups: dict[int, list[int]] = {}
        for i, m in enumerate(members):
            groups.setdefault(schedule(self.cfg, len(train_rows(m.train, self.window))).eval_every, []).append(i)
        if len(groups) == 1:
            return self._fit_group(members, data, val, aux)
        out: list[MemberResult | None] = [None] * len(members)
        for idx in groups.values():
            for i, r in zip(idx, self._fit_group([members[i] for i in idx], data, val, aux), strict=True):
                out[i] = r
        return [r for r in out if r is not None]

    def _fit_group(self, members: Sequence[Member], data: Data, val: Rows, aux: AuxTask | None) -> list[MemberResult]:
        """:meth:`fit` for members that share one validation schedule."""
        cfg, P, dev = self.cfg, len(members), data.x.device
        use_aux = aux is not None and any(m.aux_weight > 0 for m in members)
        self._with_aux(aux if use_aux else None)
        params = stack([self.init_params(m) for m in members])
        # dropout draws from the global RNG: start it from the members' seeds, not from
        # whatever ran before (reused Ray actors keep state)
        torch.manual_seed(sum((i + 1) * m.seed for i, m in enumerate(members)) % (2**31))
        params = {k: v.to(dev) for k, v in params.items()}
        anchor = {k: params[k].clone() for k in params if k.startswith("backbone.")}
        hp = self._hyper(members, params, dev)
        moments = ({k: torch.zeros_like(v) for k, v in params.items()},
                   {k: torch.zeros_like(v) for k, v in params.items()})
        batches = _Batches(members, self.window, cfg, self.aux if use_aux else None)
        vrows = even_rows(val, cfg.eval_rows)
        xv, yv = data.gather(vrows, self.window), data.y[vrows]
        step_fn = vmap(grad_and_value(self._loss), in_dims=(0, 0, 0, 0, 0 if use_aux else None, 0, 0, 0),
                       randomness="different")
        eval_fn = vmap(self._predict, in_dims=(0, None), randomness="different")
        sched = schedule(cfg, batches.max_rows)
        track = _Tracker(params, P, sched.patience, sched.eval_every)
        warm_steps = max(1, cfg.aux_warmup_epochs * cfg.steps_per_epoch)
        step, empty = 0, torch.empty(0)
        live = torch.arange(P)  # members still training; the working tensors hold only these
        for ev in range(sched.max_evals):
            active_dev = track.active[live].to(dev)
            rows, drows = batches.draw(sched.eval_every)
            for s in range(sched.eval_every):
                epoch = step // cfg.steps_per_epoch  # nominal epoch: the unit of unfreeze schedules
                xd = self.aux.data.gather(drows[s], self.window) if use_aux and self.aux else empty
                coeff = hp.aux_coeff * (self.aux.loss.coeff(min(1.0, step / warm_steps)) if self.aux else 0.0)
                grads, _ = step_fn(params, anchor, data.gather(rows[s], self.window), data.y[rows[s]],
                                   xd, hp.l2sp, hp.aux_w, coeff)
                step += 1
                self._adam(params, grads, moments, hp, step, epoch, active_dev)
            self.net.eval()
            with torch.no_grad():
                vloss = torch.mean((eval_fn(params, xv)[0] - yv) ** 2, dim=1).cpu()
            self.net.train()
            if not track.update(params, vloss, ev, step, (step - 1) // cfg.steps_per_epoch, hp.last_unfreeze, live):
                break
            keep = track.active[live].clone()
            if len(live) >= 2 and int(keep.sum()) < 2:
                # a batch of one member takes other kernels (different rounding): keep a stopped
                # member along, masked, so the last members' fits do not change by a bit
                keep[torch.nonzero(~keep)[: 2 - int(keep.sum())].flatten()] = True
            if self.compact and not bool(keep.all()):
                # drop stopped members: a step costs what the members still training need. A member's
                # arithmetic does not depend on the others (its own batch generator, per-member math;
                # batched kernels give the same bits for any batch of 2 or more), so the fits are the
                # same as without compaction (tests/train).
                live, kd = live[keep], keep.to(dev)
                params = {k: v[kd] for k, v in params.items()}
                anchor = {k: v[kd] for k, v in anchor.items()}
                moments = ({k: v[kd] for k, v in moments[0].items()}, {k: v[kd] for k, v in moments[1].items()})
                hp = hp.subset(kd, keep)
                batches.subset(keep)
        self.net.eval()
        metric = self._aux_metric(track.best, data, vrows) if use_aux else None
        return track.results(members, metric)

    @torch.no_grad()
    def _aux_metric(self, params: Params, data: Data, vrows: torch.Tensor) -> torch.Tensor:
        """The auxiliary head's metric on held-out rows of both streams."""
        aux = self.aux
        assert aux is not None
        dpool = train_rows(aux.val_rows if aux.val_rows is not None else aux.rows, self.window)
        drows = dpool[torch.linspace(0, len(dpool) - 1, len(vrows)).round().long()]
        xa, xb = data.gather(vrows, self.window), aux.data.gather(drows, self.window)

        def one(p: Params) -> torch.Tensor:
            _, ha = functional_call(self.net, p, (xa,))
            _, hb = functional_call(self.net, p, (xb,))
            return aux.loss.metric(self._aux_head(p), ha, hb, aux.main_label)

        return vmap(one, randomness="different")(params).cpu()


class _Batches:
    """Batch rows per epoch: one draw per member from its own generator (reproducible alone)."""

    def __init__(self, members: Sequence[Member], window: int, cfg: TrainConfig, aux: AuxTask | None) -> None:
        self.cfg = cfg
        self.gens = [torch.Generator().manual_seed(m.seed) for m in members]
        pool_list = [train_rows(m.train, window) for m in members]
        self.span = torch.tensor([len(p) for p in pool_list])
        self.max_rows = int(self.span.max())
        self.pools = torch.zeros((len(members), int(self.span.max())), dtype=torch.long)
        for i, p in enumerate(pool_list):
            self.pools[i, : len(p)] = p
        self.dpool = train_rows(aux.rows, window) if aux is not None else None
        # one generator per member: a member's auxiliary rows do not depend on its population
        self.dgens = [torch.Generator().manual_seed(m.seed + 7919) for m in members] if aux else []

    def subset(self, keep: torch.Tensor) -> None:
        """Keep drawing only for the members where ``keep``; each keeps its own generators."""
        idx = [i for i, k in enumerate(keep.tolist()) if k]
        self.gens = [self.gens[i] for i in idx]
        self.span, self.pools = self.span[keep], self.pools[keep]
        if self.dgens:
            self.dgens = [self.dgens[i] for i in idx]

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n steps, P, batch) row indices of the main stream and of the auxiliary stream."""
        B, P = self.cfg.batch_size, len(self.gens)
        u = torch.stack([torch.rand((n, B), generator=g) for g in self.gens], dim=1)
        pos = (u * self.span.view(1, P, 1)).long()
        rows = torch.gather(self.pools.unsqueeze(0).expand(n, -1, -1), 2, pos)
        if self.dpool is None:
            return rows, None
        ud = torch.stack([torch.rand((n, B), generator=g) for g in self.dgens], dim=1)
        return rows, self.dpool[(ud * len(self.dpool)).long()]


class _Tracker:
    """Early stopping per member: best weights, best validation and step, patience, curves."""

    def __init__(self, params: Params, P: int, patience: int, eval_every: int) -> None:
        self.best = {k: v.clone() for k, v in params.items()}
        self.best_val = torch.full((P,), math.inf)
        self.best_epoch = torch.zeros(P, dtype=torch.long)
        self.best_step = torch.zeros(P, dtype=torch.long)
        self.eval_every = eval_every
        self.active = torch.ones(P, dtype=torch.bool)
        self.bad = torch.zeros(P, dtype=torch.long)
        self.epochs = torch.zeros(P, dtype=torch.long)
        self.curves: list[list[float]] = [[] for _ in range(P)]
        self.patience = patience

    def update(self, params: Params, vloss_live: torch.Tensor, ev: int, step: int, epoch: int,
               last_unfreeze_live: torch.Tensor, live: torch.Tensor) -> bool:
        """Record validation ``ev`` (after ``step`` steps, in nominal ``epoch``) of the members
        ``live`` (``params``, ``vloss_live`` and ``last_unfreeze_live`` hold only those); return
        whether any member is still training. A member waiting for a group to unfreeze keeps going."""
        P = len(self.best_val)
        vloss = torch.full((P,), math.inf)
        vloss[live] = vloss_live
        last_unfreeze = torch.zeros(P)
        last_unfreeze[live] = last_unfreeze_live.to(last_unfreeze.dtype)
        improved = self.active & (vloss < self.best_val)
        imp_live = improved[live]
        if bool(imp_live.any()):
            for k in params:
                dev = params[k].device
                rows = live[imp_live].to(dev)
                self.best[k][rows] = params[k][imp_live.to(dev)]
        self.best_val = torch.where(improved, vloss, self.best_val)
        self.best_epoch = torch.where(improved, torch.tensor(ev), self.best_epoch)
        self.best_step = torch.where(improved, torch.tensor(step), self.best_step)
        self.bad = torch.where(improved, torch.zeros_like(self.bad), self.bad + self.active.long())
        for i in range(len(self.curves)):
            if self.active[i]:
                self.curves[i].append(float(vloss[i]))
        self.epochs += self.active.long()
        self.active = self.active & ((self.bad < self.patience) | (epoch < last_unfreeze))
        return bool(self.active.any())

    def results(self, members: Sequence[Member], metric: torch.Tensor | None) -> list[MemberResult]:
        out = []
        for i, m in enumerate(members):
            bp = {k[len("backbone."):]: v[i].detach().clone() for k, v in self.best.items() if k.startswith("backbone.")}
            out.append(MemberResult(
                member=m, params=bp, best_val=float(self.best_val[i]), best_epoch=int(self.best_epoch[i]),
                epochs=int(self.epochs[i]), val_curve=self.curves[i], best_step=int(self.best_step[i]),
                eval_every=self.eval_every,
                aux_metric=float(metric[i]) if metric is not None and m.aux_weight > 0 else None))
        return out


def train_rows(rows: Rows, window: int) -> torch.Tensor:
    """Rows a member may sample: a window-sized input must fit before each (ranges only)."""
    if isinstance(rows, range):
        pool = torch.arange(max(rows.start, window - 1), rows.stop)
    else:
        pool = torch.as_tensor(rows, dtype=torch.long)
    if len(pool) < 1:
        raise ValueError("A member has no training rows")
    return pool


def even_rows(r: Rows, limit: int) -> torch.Tensor:
    """At most ``limit`` rows of ``r``, evenly spaced (validation subsampling)."""
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


__all__ = ["Data", "Member", "MemberResult", "Params", "Population", "TrainConfig", "predict_many", "train_rows"]
