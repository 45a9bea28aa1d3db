"""Train candidates on the target: every candidate x seed on each fold, one population per fold."""

from __future__ import annotations

from xfer.data.splits import Fold
from xfer.train.population import Population
from xfer.train.types import Member, MemberResult
from xfer.transfer.dann import dann_task
from xfer.transfer.strategies import plan_for

from .config import Candidate
from .prepare import Context


def members_for(ctx: Context, fold: Fold, fraction: float, candidates: list[Candidate]) -> list[Member]:
    """One member per (candidate, seed); tags carry ``candidate`` (index), ``strategy`` and ``seed``."""
    cfg = ctx.cfg
    _, _, ff = ctx.fold_data(fold, fraction)
    members = []
    for ci, c in enumerate(candidates):
        plan = plan_for(c.strategy, ctx.n_groups, c.knobs)
        for s in range(cfg.seeds):
            members.append(Member(
                plan, lr=c.lr, seed=s + 1, train=ff.train,
                init=ctx.weights[s] if plan.init == "source" else None, weight_decay=c.weight_decay,
                aux_weight=c.dann_weight if c.strategy != "scratch" else 0.0,
                aux_coeff=1.0 if cfg.dann_reverse else 0.0,
                tag={"strategy": c.strategy, "seed": s, "candidate": ci, **dict(c.tag)}))
    return members


def fit_candidates(ctx: Context, fraction: float, candidates: list[Candidate],
                   folds: list[Fold] | None = None) -> dict[int, list[MemberResult]]:
    """Train every candidate x seed on each fold (DANN against the source rows when asked)."""
    out: dict[int, list[MemberResult]] = {}
    dann_on = any(c.dann_weight > 0 for c in candidates)
    aux = dann_task(ctx.src.data, ctx.src.train, ctx.src.val, main_is_target=True) if dann_on else None
    for fold in folds or ctx.folds:
        data, _, ff = ctx.fold_data(fold, fraction)
        out[fold.index] = Population(ctx.backbone, ctx.cfg.train).fit(
            members_for(ctx, fold, fraction, candidates), data, ff.val, aux=aux)
    return out


def select(results: list[MemberResult]) -> list[MemberResult]:
    """Per (strategy, seed), the candidate with the best validation loss."""
    best: dict[tuple[str, int], MemberResult] = {}
    for r in results:
        k = (r.member.tag["strategy"], r.member.tag["seed"])
        if k not in best or r.best_val < best[k].best_val:
            best[k] = r
    return list(best.values())
