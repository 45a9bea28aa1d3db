"""Population training: P small fits at once with stacked parameters and ``torch.func``.

Models here are small, so per-step Python and dispatch overhead, not FLOPs, decides
throughput. A population stacks the parameters of P members along a leading axis, in one
flat buffer (:class:`_Layout`), and runs one batched forward/backward per step: the
backbone's own (``Backbone.stacked_grads``: an MLP without dropout, batched matrix products,
no autograd) or else a vmapped ``torch.func`` one. Members differ in initial weights (given or
random, per seed), per-group learning rates and unfreeze epochs (a :class:`GroupPlan`),
weight decay, L2-SP weight, training rows, batch order (seed) and auxiliary-loss weight.

Built-in optimizers cannot take one learning rate per member (pytorch/functorch#782), so
AdamW is written for the flat buffer: a dozen elementwise operations per step for all
parameters of all members. It matches ``torch.optim.AdamW`` step for step:
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


class _Layout:
    """Where the weights of P stacked members live in one flat buffer, so that an optimizer step
    is a dozen elementwise operations on one tensor, not a dozen per parameter.

    Parameter-major blocks, each contiguous, ``[name0 (P, *shape0) | name1 ... | padding (P, pad)]``:
    a parameter is a view and a gradient can be written into its block in place. Each member's
    share is padded to a multiple of ``ALIGN`` values, so elementwise kernels run every value through
    their vectorised loop (never the scalar tail, whose rounding may differ) whatever P is: the
    arithmetic on a member does not depend on its population.
    """

    ALIGN = 64

    def __init__(self, params: Params, P: int) -> None:
        self.P = P
        self.shapes = {k: v.shape[1:] for k, v in params.items()}
        self.sizes = [math.prod(s) for s in self.shapes.values()]
        self.sizes.append(-sum(self.sizes) % self.ALIGN)

    def views(self, flat: torch.Tensor) -> Params:
        blocks = flat.split([self.P * n for n in self.sizes])
        return {k: b.view(self.P, *s) for (k, s), b in zip(self.shapes.items(), blocks[:-1], strict=True)}

    def pack(self, values: dict[str, torch.Tensor], pad: float = 0.0) -> torch.Tensor:
        """One flat tensor from per-parameter values: (P, *shape), or (P,) = one value per member."""
        parts = [values[k].reshape(self.P, -1).expand(self.P, n).reshape(-1) for k, n in zip(self.shapes, self.sizes[:-1], strict=True)]
        like = parts[0]
        return torch.cat([*parts, torch.full((self.P * self.sizes[-1],), pad, dtype=like.dtype, device=like.device)])

    def take(self, flat: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The members where ``keep`` (P booleans on the device) of a flat tensor of this layout."""
        blocks = flat.split([self.P * n for n in self.sizes])
        return torch.cat([b.view(self.P, n)[keep].reshape(-1) for b, n in zip(blocks, self.sizes, strict=True)])

    def subset(self, P: int) -> _Layout:
        out = copy.copy(self)
        out.P = P
        return out


@dataclass
class _Hyper:
    """Per-member settings as tensors on the device: (P,), or flat over a :class:`_Layout`."""

    l2sp: torch.Tensor
    aux_w: torch.Tensor
    aux_coeff: torch.Tensor
    lr: torch.Tensor
    """Flat: each member's learning rate of each weight (base x group multiplier, or the aux LR)."""
    decay: torch.Tensor
    """Flat: AdamW's decoupled weight-decay factor ``1 - lr * weight_decay``."""
    unfreeze: torch.Tensor
    """Flat: the nominal epoch from which each weight trains."""
    pull: torch.Tensor | None
    """Flat: ``2 x`` L2-SP weight on feature weights (the penalty's gradient factor); None = no member uses L2-SP."""
    last_unfreeze: torch.Tensor

    def subset(self, lay: _Layout, keep: torch.Tensor, keep_cpu: torch.Tensor) -> _Hyper:
        """The settings of the members where ``keep`` (on the device; ``keep_cpu`` on the CPU)."""
        return _Hyper(self.l2sp[keep], self.aux_w[keep], self.aux_coeff[keep], lay.take(self.lr, keep),
                      lay.take(self.decay, keep), lay.take(self.unfreeze, keep),
                      None if self.pull is None else lay.take(self.pull, keep), self.last_unfreeze[keep_cpu])


class _State:
    """The working tensors of the members still training: flat weights, start weights, AdamW moments,
    gradient buffer and settings (all over one :class:`_Layout`)."""

    def __init__(self, lay: _Layout, flat: torch.Tensor, anchor: torch.Tensor, hp: _Hyper,
                 moments: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.lay, self.flat, self.anchor, self.hp = lay, flat, anchor, hp
        self.exp_avg, self.exp_sq = moments or (torch.zeros_like(flat), torch.zeros_like(flat))
        self.grad = torch.zeros_like(flat)  # the padding stays zero
        self.mask: torch.Tensor | None = None
        self.mask_epoch = -1
        self.all_train = False
        self.decays = bool((hp.decay != 1).any())
        self.params = lay.views(flat)  # views: the optimizer updates ``flat`` in place
        self.grads = lay.views(self.grad)
        cut = len("backbone.")
        self.backbone_params = {k[cut:]: v for k, v in self.params.items() if k.startswith("backbone.")}
        self.backbone_grads = {k[cut:]: v for k, v in self.grads.items() if k.startswith("backbone.")}

    def adam(self, grad: torch.Tensor, step: int, epoch: int, active: torch.Tensor) -> None:
        """One stacked AdamW step (as ``torch.optim.AdamW``), applied only where a group trains
        (``torch.where``: frozen weights stay bit-identical, while their moments track the gradient)."""
        if self.mask is None or epoch != self.mask_epoch:  # trainable weights change with the nominal epoch
            # the padding "trains" (mask True) with zero gradient, zero learning rate: it stays 0
            self.mask = (self.hp.unfreeze <= epoch) & self.lay.pack({k: active for k in self.lay.shapes}, True)
            self.mask_epoch, self.all_train = epoch, bool(self.mask.all())
        bc1, bc2 = 1 - BETA1**step, 1 - BETA2**step
        self.exp_avg.mul_(BETA1).add_(grad, alpha=1 - BETA1)
        self.exp_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
        denom = self.exp_sq.sqrt().div_(math.sqrt(bc2)).add_(EPS)
        move = (self.hp.lr / bc1).mul_(self.exp_avg).div_(denom)
        if self.all_train:  # every weight trains: the same values in place, without the select
            (self.flat.mul_(self.hp.decay) if self.decays else self.flat).sub_(move)
        else:
            new = (self.flat * self.hp.decay if self.decays else self.flat).sub(move)
            torch.where(self.mask, new, self.flat, out=self.flat)

    def subset(self, keep: torch.Tensor, keep_cpu: torch.Tensor) -> _State:
        lay, take = self.lay.subset(int(keep_cpu.sum())), self.lay.take
        return _State(lay, take(self.flat, keep), take(self.anchor, keep), self.hp.subset(self.lay, keep, keep_cpu),
                      (take(self.exp_avg, keep), take(self.exp_sq, keep)))


class Population:
    """Trains members that share one backbone architecture, one dataset and one validation set."""

    compact: bool = True
    """Drop members from the working tensors once they stop (False: keep computing them, masked)."""

    cpu_chunk: int = 12
    """On a CPU, a direct-path population (an MLP without dropout) trains in chunks of at most this
    many members, one after another: a member-step costs least when a chunk's activations stay in
    cache (this development box, 1 MB of L2 a core, default MLP, batch 256, the fastest of 7
    interleaved rounds: 0.173 ms per member-step at 12 members, 0.215 at 24, 0.233 at 48, 0.385 at
    96; `python scripts/bench_kernels.py population`). A member's fit does not depend on its chunk (any
    population of two or more), so chunks change the time, not the results."""

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
        if self._penalty:
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
    def _hyper(self, members: Sequence[Member], lay: _Layout, dev: torch.device) -> _Hyper:
        def t(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, device=dev)

        base_lr, wd = t([m.lr for m in members]), t([m.weight_decay for m in members])
        l2sp = t([m.plan.l2sp_alpha if m.plan.init == "source" else 0.0 for m in members])
        lr, unfreeze = {}, {}
        for k in lay.shapes:
            # the auxiliary head follows the head's unfreeze schedule at its own learning rate
            g = self.group_of.get(k, self.n_groups - 1)
            is_aux = k.startswith("aux.")
            lr[k] = t([m.aux_lr for m in members]) if is_aux else base_lr * t([m.plan.lr_mult[g] for m in members])
            unfreeze[k] = t([m.plan.unfreeze_epoch[g] for m in members])
        # the L2-SP penalty pulls feature weights (not the head's, nor the auxiliary head's)
        pulled = {k: 2 * l2sp if k.startswith("backbone.") and not k.startswith("backbone.head.") else 0 * l2sp
                  for k in lay.shapes}
        return _Hyper(
            l2sp=l2sp, aux_w=t([m.aux_weight for m in members]), aux_coeff=t([m.aux_coeff for m in members]),
            lr=lay.pack(lr), decay=lay.pack({k: 1 - v * wd for k, v in lr.items()}, 1.0),
            unfreeze=lay.pack(unfreeze, -math.inf), pull=lay.pack(pulled) if bool((l2sp != 0).any()) else None,
            # a member is not stopped early while some of its groups are still waiting to unfreeze
            last_unfreeze=torch.tensor([max((e for e in m.plan.unfreeze_epoch if math.isfinite(e)), default=0.0)
                                        for m in members]),
        )

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
        chunk = self.cpu_chunk if data.x.device.type == "cpu" and self.template.stacked else len(members)
        parts = [part for idx in groups.values() for part in _chunks(idx, chunk)]
        if len(parts) == 1:
            return self._fit_group(members, data, val, aux)
        out: list[MemberResult | None] = [None] * len(members)
        for idx in parts:
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
        lay = _Layout(params, P)
        flat = lay.pack({k: v.to(dev) for k, v in params.items()})
        st = _State(lay, flat, flat.clone(), self._hyper(members, lay, dev))
        # an MLP without dropout or auxiliary loss: its own batched forward and backward, no vmap
        self._direct = self.net.backbone.stacked and not use_aux
        self._penalty = st.hp.pull is not None  # no member uses L2-SP: skip the term (its weight is 0)
        self._step_fn = vmap(grad_and_value(self._loss), in_dims=(0, 0, 0, 0, 0 if use_aux else None, 0, 0, 0),
                             randomness="different")
        batches = _Batches(members, self.window, cfg, self.aux if use_aux else None)
        vrows = even_rows(val, cfg.eval_rows)
        xv, yv = data.gather(vrows, self.window), data.y[vrows]
        sched = schedule(cfg, batches.max_rows)
        track = _Tracker(st.params, P, sched.patience, sched.eval_every)
        step = 0
        live = torch.arange(P)  # members still training; the working tensors hold only these
        for ev in range(sched.max_evals):
            active_dev = track.active[live].to(dev)
            st.mask = None
            rows, drows = batches.draw(sched.eval_every)
            for s in range(sched.eval_every):
                epoch = step // cfg.steps_per_epoch  # nominal epoch: the unit of unfreeze schedules
                grad = self._grads(st, data, rows[s], None if drows is None else drows[s], step)
                step += 1
                st.adam(grad, step, epoch, active_dev)
            vloss = self._val_loss(st, xv, yv)
            if not track.update(st.params, vloss, ev, step, (step - 1) // cfg.steps_per_epoch, st.hp.last_unfreeze,
                                live):
                break
            keep = track.active[live].clone()
            if len(live) >= 2 and int(keep.sum()) < 2:
                # a batch of one member takes other kernels (different rounding): keep a stopped
                # member along, masked, so the last members' fits do not change by a bit
                keep[torch.nonzero(~keep)[: 2 - int(keep.sum())].flatten()] = True
            if self.compact and not bool(keep.all()):
                # drop stopped members: a step costs what the members still training need. A member's
                # arithmetic does not depend on the others (its own batch generator, per-member math;
                # batched kernels give the same bits for any batch of 2 or more, elementwise ones for
                # any P: see _Layout), so the fits are the same as without compaction (tests/train).
                live = live[keep]
                st = st.subset(keep.to(dev), keep)
                batches.subset(keep)
        self.net.eval()
        metric = self._aux_metric(track.best, data, vrows) if use_aux else None
        return track.results(members, metric)

    def _grads(self, st: _State, data: Data, rows: torch.Tensor, drows: torch.Tensor | None, step: int) -> torch.Tensor:
        """Every member's gradient on its batch ``rows`` (and auxiliary rows ``drows``), flat."""
        x, y = data.gather(rows, self.window), data.y.index_select(0, rows.reshape(-1).to(data.y.device)).view(rows.shape)
        if self._direct:
            self.net.backbone.stacked_grads(st.backbone_params, x, y, st.backbone_grads)
            if st.hp.pull is not None:  # L2-SP: the gradient of l2sp x |w - w0|^2
                st.grad.addcmul_(st.hp.pull, st.flat - st.anchor)
            return st.grad
        xd = torch.empty(0)
        coeff = st.hp.aux_coeff * 0.0
        if self.aux is not None and drows is not None:
            xd = self.aux.data.gather(drows, self.window)
            warm_steps = max(1, self.cfg.aux_warmup_epochs * self.cfg.steps_per_epoch)
            coeff = st.hp.aux_coeff * self.aux.loss.coeff(min(1.0, step / warm_steps))
        anchor = {k: v for k, v in st.lay.views(st.anchor).items() if k.startswith("backbone.")}
        grads, _ = self._step_fn(st.params, anchor, x, y, xd, st.hp.l2sp, st.hp.aux_w, coeff)
        return st.lay.pack(grads)

    @torch.no_grad()
    def _val_loss(self, st: _State, xv: torch.Tensor, yv: torch.Tensor) -> torch.Tensor:
        """Every member's mean squared error on the validation rows (on the CPU)."""
        self.net.eval()
        if self._direct:
            pred = self.net.backbone.stacked_forward(st.backbone_params, xv.expand(st.lay.P, *xv.shape))[0]
        else:
            pred = vmap(self._predict, in_dims=(0, None), randomness="different")(st.params, xv)[0]
        self.net.train()
        return torch.mean((pred - yv) ** 2, dim=1).cpu()

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


def _chunks(idx: list[int], most: int) -> list[list[int]]:
    """``idx`` in the fewest consecutive chunks of at most ``most`` (>= 4) members, their sizes
    within one of each other, so no chunk of a population of two or more has a single member."""
    k = -(-len(idx) // max(4, most))
    size, extra = divmod(len(idx), k)
    out, start = [], 0
    for j in range(k):
        end = start + size + (j < extra)
        out.append(idx[start:end])
        start = end
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
