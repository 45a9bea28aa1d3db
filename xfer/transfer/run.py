"""One transfer experiment, end to end: source(s) -> [intermediates ->] target, against scratch.

The flow, with the rules that keep its numbers honest:

1. Features of every market involved; the model sees the feature columns all of them have
   (market-structure columns absent anywhere are masked, not faked).
2. The target is split walk-forward (:mod:`xfer.data.splits`). Every other market is cut
   one embargo before the target's held-out test period starts, so no source or
   intermediate model has seen bars from the target's test dates.
3. Each domain is standardised on its own training window (features and label).
4. The source model is pre-trained once per seed and cached on disk, keyed by everything
   that determines it; chain stages fine-tune it on each intermediate market in turn.
5. On the target, for every fold and fraction, one population trains every strategy x
   seed x learning-rate candidate, scratch included with the same number of candidates.
   Each (strategy, seed) keeps the candidate with the best validation loss; the test
   block is read once, for that model only.
6. Paired differences (strategy - scratch) over seeds and folds give a bootstrap interval
   and a verdict; fractions give a data-sizing curve and a required fraction.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from xfer.data.features import DEFAULT_HORIZON, FeatureMatrix, build_features
from xfer.data.normalize import Standardizer
from xfer.data.splits import Fold, SplitSpec, make_folds
from xfer.data.store import Store
from xfer.evaluate.domain import embed, probe_accuracy
from xfer.evaluate.importance import permutation_importance, regime_masks
from xfer.evaluate.metrics import HIGHER_IS_BETTER, PRIMARY, compute_metrics, icir
from xfer.evaluate.verdict import delta_verdict, required_fraction
from xfer.models.backbones import Backbone, BackboneSpec, build_backbone
from xfer.train.population import (
    Data,
    Member,
    MemberResult,
    Params,
    Population,
    TrainConfig,
    predict_many,
)
from xfer.transfer.strategies import STRATEGIES, StrategySpec, plan_for

Progress = Callable[[str], None]


class TrainSettings(BaseModel):
    """Training-loop knobs (see :class:`xfer.train.population.TrainConfig`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(default=256, ge=1)
    steps_per_epoch: int = Field(default=25, ge=1)
    max_epochs: int = Field(default=40, ge=1)
    patience: int = Field(default=5, ge=1)
    eval_rows: int = Field(default=4096, ge=16)

    def to_config(self) -> TrainConfig:
        return TrainConfig(**self.model_dump())


class TransferConfig(BaseModel):
    """Everything that defines one transfer experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: tuple[str, ...] = Field(description="Source market ids or @groups (pooled).")
    target: str = Field(description="Target market id.")
    strategies: tuple[str, ...] = Field(default=("scratch", "head_only", "partial", "full"))
    fractions: tuple[float, ...] = Field(default=(1.0,), description="Target-data fractions.")
    seeds: int = Field(default=3, ge=1, le=64)
    target_type: Literal["volatility", "return"] = "volatility"
    horizon: int | None = Field(default=None, ge=1, description="Label horizon (default per target).")
    chain: tuple[str, ...] = Field(default=(), description="Intermediate markets, in order.")
    chain_strategy: str = Field(default="full", description="Strategy of each intermediate stage.")
    lr_ratio: float = Field(default=0.1, gt=0.0, description="Fine-tune base LR = ratio x source LR.")
    source_lr: float = Field(default=1e-3, gt=0.0)
    lr_candidates: tuple[float, ...] = Field(
        default=(0.5, 1.0, 2.0),
        description="Search budget: multipliers of each strategy's base LR tried on validation "
        "(scratch's base LR is the source LR). Same count for every strategy.",
    )
    weight_decay: float = Field(default=1e-4, ge=0.0)
    backbone: BackboneSpec = BackboneSpec()
    strategy_knobs: StrategySpec = Field(default=StrategySpec(), description="Knobs; name ignored.")
    dann_weight: float = Field(default=0.0, ge=0.0, description="DANN loss weight (0 = off).")
    dann_reverse: bool = Field(
        default=True, description="False: train the discriminator without gradient reversal (the control).")
    split: SplitSpec = Field(default=SplitSpec(n_folds=3, horizon=5, embargo=5))
    source_val_share: float = Field(default=0.1, gt=0.0, lt=0.5)
    train: TrainSettings = TrainSettings()
    source_train: TrainSettings = TrainSettings(steps_per_epoch=50, max_epochs=30, patience=4)
    cost_bps: float = Field(default=2.0, ge=0.0, description="Per-unit-turnover cost (return target).")
    importance_repeats: int = Field(default=2, ge=0, description="0 = no permutation importance.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where populations train: 'auto' = CUDA when available.")
    domain_probe: bool = Field(default=False, description="Probe how separable source/target embeddings are.")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [f for f in v if not 0.0 < f <= 1.0]
        if bad or not v:
            raise ValueError(f"fractions must be in (0, 1]. Got {list(v)} instead.")
        return tuple(sorted(set(v)))

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in v if s not in STRATEGIES]
        if bad:
            raise ValueError(f"unknown strategies {bad}; valid: {sorted(STRATEGIES)}")
        return v if "scratch" in v else ("scratch", *v)  # scratch is always in the grid

    @property
    def h(self) -> int:
        return self.horizon or DEFAULT_HORIZON[self.target_type]

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class Domain:
    """Standardised rows of one or more pooled markets, cut before a date."""

    data: Data
    train: torch.Tensor
    val: torch.Tensor
    markets: list[str]
    dates: np.ndarray
    """Date of each row of ``data``."""


@dataclass
class TransferResult:
    config: TransferConfig
    metric: str
    table: pd.DataFrame
    """One row per (strategy, fraction): scores, paired CI and verdict."""
    fits: pd.DataFrame
    """One row per final fit (strategy, fraction, seed, fold) with every metric."""
    sizing: pd.DataFrame
    """Required fraction per strategy (when several fractions were run)."""
    stages: list[dict[str, Any]] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    masked: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        """The JSON contract of ``xfer transfer --json``: one object per (strategy, fraction)."""
        return [{k: _jsonable(v) for k, v in r.items()} for r in self.table.to_dict("records")]


def _jsonable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


# ---------------------------------------------------------------------------- data


def _domain(mats: dict[str, FeatureMatrix], cols: list[str], cutoff: pd.Timestamp, embargo: int,
            val_share: float, window: int, device: torch.device | None = None) -> Domain:
    """Pool markets: each cut before ``cutoff``, split train/val in time, standardised alone."""
    xs, ys, train, val, dates = [], [], [], [], []
    offset = 0
    for mid, fm in mats.items():
        d = fm.data[fm.data["date"] < cutoff]
        n = len(d)
        n_val = max(1, int(n * val_share))
        tr_stop = n - n_val - embargo
        if tr_stop < 50 + window:
            raise ValueError(f"Market {mid!r} has only {n} rows before {cutoff.date()}; too few to train on")
        x = d[cols].to_numpy(np.float64)
        y = d["target"].to_numpy(np.float64)
        sx, sy = Standardizer.fit(x[:tr_stop]), Standardizer.fit(y[:tr_stop])
        dates.append(d["date"].to_numpy())
        xs.append(torch.from_numpy(sx.transform(x)))
        ys.append(torch.from_numpy(sy.transform(y)))
        first = window - 1  # a window must fit inside this market's own rows
        train.append(torch.arange(offset + first, offset + tr_stop))
        val.append(torch.arange(offset + max(first, n - n_val), offset + n))
        offset += n
    data = Data(torch.cat(xs), torch.cat(ys))
    return Domain(data.to(device) if device is not None else data, torch.cat(train), torch.cat(val),
                  list(mats), np.concatenate(dates))


def _fingerprint(store: Store, mid: str) -> str:
    return hashlib.sha256(store.path(mid).read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------- the run


@dataclass
class Context:
    """A prepared experiment: target data and folds, source (and chain) weights per seed."""

    cfg: TransferConfig
    target: str
    sources: list[str]
    chain: list[str]
    cols: list[str]
    masked: dict[str, str]
    folds: list[Fold]
    tgt: FeatureMatrix
    src: Domain
    backbone: Backbone
    weights: dict[int, Params]
    """Weights each target fit starts from, per seed (the source's, or the last chain stage's)."""
    stages: list[dict[str, Any]]
    source_info: dict[str, Any]
    timings: dict[str, float]
    _fold_data: dict[tuple[int, float], tuple[Data, Standardizer, Fold]] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return PRIMARY[self.cfg.target_type]

    @property
    def n_groups(self) -> int:
        return len(self.backbone.group_names())

    def fold_data(self, fold: Fold, fraction: float) -> tuple[Data, Standardizer, Fold]:
        """Target rows standardised on this fold's fraction of training rows (cached)."""
        key = (fold.index, fraction)
        if key not in self._fold_data:
            ff = fold.with_fraction(fraction)
            x = self.tgt.data[self.cols].to_numpy(np.float64)
            y = self.tgt.data["target"].to_numpy(np.float64)
            tr = slice(ff.train.start, ff.train.stop)
            sx, sy = Standardizer.fit(x[tr]), Standardizer.fit(y[tr])
            data = Data(torch.from_numpy(sx.transform(x)), torch.from_numpy(sy.transform(y))).to(self.cfg.torch_device)
            self._fold_data = {k: v for k, v in self._fold_data.items() if k[0] == fold.index}
            self._fold_data[key] = (data, sy, ff)
        return self._fold_data[key]


@dataclass(frozen=True)
class Candidate:
    """One hyperparameter configuration of one strategy, trained for every seed."""

    strategy: str
    lr: float
    weight_decay: float = 1e-4
    knobs: StrategySpec = field(default_factory=StrategySpec)
    dann_weight: float = 0.0
    tag: tuple[tuple[str, Any], ...] = ()


def prepare(cfg: TransferConfig, store: Store | None = None, cache_dir: Path | None = None,
            progress: Progress | None = None, with_source: bool = True) -> Context:
    """Features, folds, source pre-training (cached per seed) and chain stages.

    ``with_source=False`` skips pre-training and chains (a scratch-only cell needs neither).
    """
    say = progress or (lambda _m: None)
    st = store or Store()
    cache = Path(cache_dir) if cache_dir else st.root / "cache" / "source"
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    sources = st.resolve(cfg.source)
    # each chain stage is one market or a pooled @group (e.g. @energy)
    stages_ids = [st.resolve([c]) for c in cfg.chain]
    chain = [m for ids in stages_ids for m in ids]
    target = st.resolve([cfg.target])[0]
    if target in sources or target in chain:
        raise ValueError(f"The target {target!r} cannot also be a source or an intermediate")
    h = cfg.h
    mats = {m: build_features(st.load(m).frame, cfg.target_type, h) for m in dict.fromkeys([*sources, *chain, target])}
    cols = [c for c in mats[target].feature_names if all(c in mats[m].feature_names for m in mats)]
    masked = {c: why for m in mats.values() for c, why in m.masked.items()}
    masked.update({c: "absent in another market of the pair" for m in mats.values()
                   for c in m.feature_names if c not in cols})
    split = cfg.split.model_copy(update={"horizon": h, "embargo": max(h, cfg.split.embargo)})
    tgt = mats[target]
    folds = make_folds(len(tgt.data), split)
    cutoff = pd.Timestamp(tgt.data["date"].iloc[folds[0].test.start - split.embargo])
    window = cfg.backbone.window if cfg.backbone.name != "mlp" else 1
    bb = build_backbone(len(cols), cfg.backbone)
    n_groups = len(bb.group_names())
    timings["features_s"] = time.perf_counter() - t0
    say(f"{len(cols)} shared features, {len(masked)} masked; target folds {len(folds)}; "
        f"other markets cut before {cutoff.date()}")

    # --- source pre-training, cached per seed
    t1 = time.perf_counter()
    src = _domain({m: mats[m] for m in sources}, cols, cutoff, split.embargo, cfg.source_val_share, window, cfg.torch_device)
    tgt_unlabelled = None
    dann_window = None
    if cfg.dann_weight > 0:
        # DANN pre-training sees unlabelled target inputs, but only the rows the smallest
        # fraction would have (fold 0's most recent share): a "20% history" cell must not
        # align its source model on the target's whole history.
        ff = folds[0].with_fraction(min(cfg.fractions))
        dates = tgt.data["date"]
        dann_window = (dates.iloc[ff.train.start], dates.iloc[ff.train.stop - 1])
        recent = FeatureMatrix(tgt.data[dates >= dann_window[0]], tgt.feature_names, tgt.masked, tgt.target, tgt.horizon)
        tgt_unlabelled = _domain({target: recent}, cols, dann_window[1] + pd.Timedelta(days=1), split.embargo,
                                 cfg.source_val_share, window, cfg.torch_device)
    key_base = {
        "format": 2,
        "sources": {m: _fingerprint(st, m) for m in sources}, "cols": cols, "target_type": cfg.target_type,
        "h": h, "cutoff": str(cutoff.date()), "backbone": cfg.backbone.model_dump(),
        "train": cfg.source_train.model_dump(), "lr": cfg.source_lr, "wd": cfg.weight_decay,
        "val_share": cfg.source_val_share, "embargo": split.embargo,
        "dann": {"w": cfg.dann_weight, "reverse": cfg.dann_reverse, "target": _fingerprint(st, target),
                 "target_rows": [str(d.date()) for d in dann_window]} if dann_window else None,
    }
    source_weights: dict[int, Params] = {}
    source_val: dict[int, float] = {}
    todo = []
    for s in range(cfg.seeds if with_source else 0):
        key = hashlib.sha256(json.dumps({**key_base, "seed": s}, sort_keys=True).encode()).hexdigest()[:24]
        path = cache / f"{key}.pt"
        if path.is_file():
            blob = torch.load(path, weights_only=True)
            source_weights[s] = {k: v.to(cfg.torch_device) for k, v in blob["params"].items()}
            source_val[s] = float(blob["val_loss"])
        else:
            todo.append((s, path))
    if todo:
        say(f"pre-training source {','.join(sources)} ({len(src.train)} rows) for seeds {[s for s, _ in todo]}")
        members = [Member(plan_for("scratch", n_groups), lr=cfg.source_lr, seed=10_000 + s, train=src.train,
                          weight_decay=cfg.weight_decay, dann_weight=cfg.dann_weight,
                          dann_reverse=cfg.dann_reverse) for s, _ in todo]
        res = Population(bb, cfg.source_train.to_config()).fit(
            members, src.data, src.val,
            domain_data=tgt_unlabelled.data if tgt_unlabelled else None,
            domain_rows=tgt_unlabelled.train if tgt_unlabelled else None, main_domain=0.0,
            domain_val_rows=tgt_unlabelled.val if tgt_unlabelled else None)
        cache.mkdir(parents=True, exist_ok=True)
        for (s, path), r in zip(todo, res, strict=True):
            source_weights[s], source_val[s] = r.params, r.best_val
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"params": {k: v.cpu() for k, v in r.params.items()},
                        "val_loss": r.best_val, "key": key_base}, tmp)
            tmp.replace(path)
    elif with_source:
        say(f"source models for {cfg.seeds} seed(s) loaded from cache")
    timings["source_s"] = time.perf_counter() - t1

    # --- intermediate stages
    stages: list[dict[str, Any]] = []
    weights = source_weights
    for label, ids in zip(cfg.chain if with_source else (), stages_ids, strict=False):
        t2 = time.perf_counter()
        stage_key = {**key_base, "chain_to": label, "stage_markets": {m: _fingerprint(st, m) for m in ids},
                     "after": [stg["key"] for stg in stages], "strategy": cfg.chain_strategy,
                     "knobs": cfg.strategy_knobs.model_dump(), "ratio": cfg.lr_ratio,
                     "stage_train": cfg.train.model_dump()}
        paths = {s: cache / (hashlib.sha256(json.dumps({**stage_key, "seed": s}, sort_keys=True).encode())
                             .hexdigest()[:24] + ".pt") for s in range(cfg.seeds)}
        if all(p.is_file() for p in paths.values()):
            blobs = {s: torch.load(p, weights_only=True) for s, p in paths.items()}
            weights = {s: {k: v.to(cfg.torch_device) for k, v in b["params"].items()} for s, b in blobs.items()}
            vals = [float(blobs[s]["val_loss"]) for s in range(cfg.seeds)]
            epochs: list[int] = []
        else:
            dom = _domain({m: mats[m] for m in ids}, cols, cutoff, split.embargo, cfg.source_val_share, window, cfg.torch_device)
            plan = plan_for(cfg.strategy_knobs.model_copy(update={"name": cfg.chain_strategy}), n_groups)
            members = [Member(plan, lr=cfg.source_lr * cfg.lr_ratio, seed=20_000 + s, train=dom.train,
                              init=weights[s], weight_decay=cfg.weight_decay) for s in range(cfg.seeds)]
            res = Population(bb, cfg.train.to_config()).fit(members, dom.data, dom.val)
            weights = {s: r.params for s, r in enumerate(res)}
            vals, epochs = [r.best_val for r in res], [r.epochs for r in res]
            cache.mkdir(parents=True, exist_ok=True)
            for s, r in enumerate(res):
                tmp = paths[s].with_suffix(f".{os.getpid()}.tmp")
                torch.save({"params": {k: v.cpu() for k, v in r.params.items()}, "val_loss": r.best_val}, tmp)
                tmp.replace(paths[s])
        stages.append({"market": label, "markets": ids, "val_loss": vals, "epochs": epochs,
                       "seconds": time.perf_counter() - t2,
                       "key": hashlib.sha256(json.dumps(stage_key, sort_keys=True).encode()).hexdigest()[:16]})
        say(f"chain stage {label}: val loss {np.mean(vals):.4f}")
    return Context(cfg, target, sources, chain, cols, masked, folds, tgt, src, bb, weights, stages,
                   {"val_loss": [source_val[s] for s in sorted(source_val)], "rows": len(src.train),
                    "cutoff": str(cutoff.date())}, timings)


def fit_candidates(ctx: Context, fraction: float, candidates: list[Candidate],
                   folds: list[Fold] | None = None) -> dict[int, list[MemberResult]]:
    """Train every candidate x seed on each fold, one population per fold.

    Member tags carry ``candidate`` (index into ``candidates``), ``strategy`` and ``seed``.
    """
    cfg = ctx.cfg
    out: dict[int, list[MemberResult]] = {}
    dann_on = any(c.dann_weight > 0 for c in candidates)
    for fold in folds or ctx.folds:
        data, _, ff = ctx.fold_data(fold, fraction)
        members = []
        for ci, c in enumerate(candidates):
            plan = plan_for(c.knobs.model_copy(update={"name": c.strategy}), ctx.n_groups)
            for s in range(cfg.seeds):
                members.append(Member(
                    plan, lr=c.lr, seed=s + 1, train=ff.train,
                    init=ctx.weights[s] if plan.init == "source" else None, weight_decay=c.weight_decay,
                    dann_weight=c.dann_weight if c.strategy != "scratch" else 0.0, dann_reverse=cfg.dann_reverse,
                    tag={"strategy": c.strategy, "seed": s, "candidate": ci, **dict(c.tag)}))
        out[fold.index] = Population(ctx.backbone, cfg.train.to_config()).fit(
            members, data, ff.val, domain_data=ctx.src.data if dann_on else None,
            domain_rows=ctx.src.train if dann_on else None, main_domain=1.0,
            domain_val_rows=ctx.src.val if dann_on else None)
    return out


def evaluate_fits(ctx: Context, fold: Fold, fraction: float, chosen: list[MemberResult]) -> list[dict[str, Any]]:
    """Read the test block once for each chosen fit: metrics, regimes, importance, domain probe."""
    cfg = ctx.cfg
    metric = ctx.metric
    data, sy, ff = ctx.fold_data(fold, fraction)
    tgt = ctx.tgt
    y_raw = tgt.data["target"].to_numpy(np.float64)
    rv = tgt.data["volatility.rv_20"].to_numpy() if "volatility.rv_20" in tgt.data else None
    fam_cols: dict[str, list[int]] = {}
    for i, c in enumerate(ctx.cols):
        fam_cols.setdefault(c.split(".", 1)[0], []).append(i)
    test_rows = torch.arange(ff.test.start, ff.test.stop)
    preds = predict_many(ctx.backbone, [r.params for r in chosen], data, test_rows).cpu().numpy()
    yt = y_raw[ff.test.start:ff.test.stop]
    regimes = {}
    if rv is not None:
        regimes = regime_masks(rv[ff.test.start:ff.test.stop], float(np.median(rv[ff.train.start:ff.train.stop])))
    rows = []
    for r, p in zip(chosen, preds, strict=True):
        praw = sy.inverse(p)
        row: dict[str, Any] = {
            "strategy": r.member.tag["strategy"], "fraction": fraction, "seed": r.member.tag["seed"],
            "fold": fold.index, "lr": r.member.lr, "weight_decay": r.member.weight_decay,
            "val_loss": r.best_val, "epochs": r.epochs, "best_epoch": r.best_epoch,
            "n_train": len(ff.train), "n_test": len(ff.test), "domain_acc": r.domain_acc,
            "test_start": str(tgt.data["date"].iloc[ff.test.start].date()),
            "test_end": str(tgt.data["date"].iloc[ff.test.stop - 1].date()),
        }
        row.update({f"test_{k}": v for k, v in compute_metrics(cfg.target_type, yt, praw, cfg.cost_bps, cfg.h).items()})
        for reg, mask in regimes.items():
            ok = mask.sum() >= 10
            row[f"regime_{reg}_{metric}"] = (
                compute_metrics(cfg.target_type, yt[mask], praw[mask], cfg.cost_bps, cfg.h)[metric] if ok else float("nan"))
        if cfg.domain_probe or r.member.dann_weight > 0:
            # The domains DANN aligns: source vs target training rows; scored on both
            # domains' validation rows (later in time, never fitted on).
            def emb(d: Data, rows_: torch.Tensor, p: Params = r.params) -> torch.Tensor:
                return embed(ctx.backbone, p, d, rows_[:: max(1, len(rows_) // 2000)])

            row["domain_probe_acc"] = probe_accuracy(
                emb(ctx.src.data, ctx.src.train), emb(data, torch.arange(ff.train.start, ff.train.stop)),
                emb(ctx.src.data, ctx.src.val), emb(data, torch.arange(ff.val.start, ff.val.stop)))
        if cfg.importance_repeats:
            imp = _importance(ctx.backbone, r.params, data, test_rows, sy, yt, cfg, fam_cols, metric, cfg.h)
            row.update({f"importance_{k}": v for k, v in imp.items()})
        rows.append(row)
    return rows


def run_transfer(cfg: TransferConfig, store: Store | None = None, cache_dir: Path | None = None,
                 progress: Progress | None = None) -> TransferResult:
    """Run one transfer experiment; see the module docstring for the flow."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    ctx = prepare(cfg, store, cache_dir, progress)
    t3 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for frac in cfg.fractions:
        cands = [Candidate(strat, (cfg.source_lr if strat == "scratch" else cfg.source_lr * cfg.lr_ratio) * m,
                           cfg.weight_decay, cfg.strategy_knobs, cfg.dann_weight)
                 for strat in cfg.strategies for m in cfg.lr_candidates]
        by_fold = fit_candidates(ctx, frac, cands)
        for fold in ctx.folds:
            chosen = _select(by_fold[fold.index])
            rows.extend(evaluate_fits(ctx, fold, frac, chosen))
            say(f"fold {fold.index} fraction {frac:g}: {len(by_fold[fold.index])} fits in one population "
                f"({', '.join(_val_summary(chosen))} val)")
    timings = dict(ctx.timings)
    timings["target_s"] = time.perf_counter() - t3
    fits = pd.DataFrame(rows)
    table = _aggregate(fits, cfg, ctx.metric)
    sizing = sizing_table(fits, ctx.metric) if len(cfg.fractions) > 1 else pd.DataFrame()
    timings["total_s"] = time.perf_counter() - t0
    stages = [{"market": ",".join(ctx.sources), "role": "source", **ctx.source_info}, *ctx.stages]
    return TransferResult(cfg, ctx.metric, table, fits, sizing, stages, ctx.cols, ctx.masked, timings)


def _val_summary(chosen: list[MemberResult]) -> list[str]:
    by: dict[str, list[float]] = {}
    for c in chosen:
        by.setdefault(c.member.tag["strategy"], []).append(c.best_val)
    return [f"{k}={np.mean(v):.3f}" for k, v in by.items()]


def _select(results: list[MemberResult]) -> list[MemberResult]:
    """Per (strategy, seed), the learning-rate candidate with the best validation loss."""
    best: dict[tuple[str, int], MemberResult] = {}
    for r in results:
        k = (r.member.tag["strategy"], r.member.tag["seed"])
        if k not in best or r.best_val < best[k].best_val:
            best[k] = r
    return list(best.values())


def _importance(bb, params, data, rows, sy, yt, cfg, fam_cols, metric, h) -> dict[str, float]:
    def predict(x: torch.Tensor) -> np.ndarray:
        return sy.inverse(predict_many(bb, [params], Data(x, data.y), rows)[0].cpu().numpy())

    def score(p: np.ndarray) -> float:
        v = compute_metrics(cfg.target_type, yt, p, cfg.cost_bps, h)[metric]
        return v if HIGHER_IS_BETTER[metric] else -v

    return permutation_importance(predict, data.x, rows, score, fam_cols, repeats=cfg.importance_repeats)


def _aggregate(fits: pd.DataFrame, cfg: TransferConfig, metric: str) -> pd.DataFrame:
    col = f"test_{metric}"
    out = []
    scratch = fits[fits["strategy"] == "scratch"].set_index(["fraction", "seed", "fold"])[col]
    for (strat, frac), g in fits.groupby(["strategy", "fraction"], sort=False):
        g = g.set_index(["fraction", "seed", "fold"])
        sc = scratch.loc[frac]
        pairs = g[col].droplevel(0).align(sc.rename("s"), join="inner")
        diffs = (pairs[0] - pairs[1]).to_numpy()
        row: dict[str, Any] = {"strategy": strat, "fraction": frac, "metric": metric,
                               "test_score": float(g[col].mean()), "scratch_score": float(sc.mean())}
        if strat == "scratch":
            row.update({"delta": 0.0, "delta_ci": [0.0, 0.0], "verdict": "baseline", "n_pairs": len(diffs)})
        else:
            v = delta_verdict(diffs, higher_is_better=HIGHER_IS_BETTER[metric])
            row.update({"delta": v.mean, "delta_ci": [v.ci_low, v.ci_high],
                        "verdict": v.verdict, "n_pairs": v.n})
        if metric == "ic":
            row["icir"] = icir(list(g.groupby(level="fold")[col].mean()))
        for c in [c for c in g.columns if c.startswith(("regime_", "importance_"))] + ["domain_acc", "domain_probe_acc"]:
            if c in g and g[c].notna().any():
                row[c] = float(g[c].mean())
        out.append(row)
    order = {s: i for i, s in enumerate(cfg.strategies)}
    return pd.DataFrame(out).sort_values(["fraction", "strategy"], key=lambda s: s.map(order) if s.name == "strategy" else s).reset_index(drop=True)


def sizing_table(fits: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Required target fraction per strategy to reach scratch trained on all the data."""
    col = f"test_{metric}"
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    full = fits["fraction"].max()
    ref = sign * fits[(fits["strategy"] == "scratch") & (fits["fraction"] == full)][col].to_numpy()
    out = []
    for strat, g in fits.groupby("strategy", sort=False):
        curve = {float(f): sign * gg[col].to_numpy() for f, gg in g.groupby("fraction")}
        rf = required_fraction(curve, ref)
        out.append({"strategy": strat, "required_fraction": rf.point, "ci_low": rf.ci_low,
                    "ci_high": rf.ci_high, "reached_share": rf.reached_share,
                    "curve": {f: float(np.mean(v)) * sign for f, v in curve.items()}})
    return pd.DataFrame(out)


def compare(a: TransferResult, b: TransferResult, strategy: str, fraction: float | None = None) -> Any:
    """Paired verdict of ``b - a`` for one strategy (e.g. chain vs direct, DANN vs none).

    Fits are paired on (fraction, seed, fold): same target rows, same test block.
    """
    col = f"test_{a.metric}"
    key = ["strategy", "fraction", "seed", "fold"]
    fa, fb = a.fits.set_index(key)[col], b.fits.set_index(key)[col]
    xa, xb = fa.align(fb, join="inner")
    d = (xb - xa).xs(strategy, level="strategy")
    if fraction is not None:
        d = d.xs(fraction, level="fraction")
    return delta_verdict(d.to_numpy(), higher_is_better=HIGHER_IS_BETTER[a.metric])


__all__ = ["TrainSettings", "TransferConfig", "TransferResult", "compare", "run_transfer", "sizing_table"]
