"""Prepare an experiment: features, folds, the source model (cached per seed), chain stages.

The rules that keep its numbers honest:

1. The model sees the feature columns every market involved has; market-structure columns
   absent anywhere are masked, not faked.
2. The target is split walk-forward (:mod:`xfer.data.splits`). Every other market is cut
   one embargo before the target's held-out test period starts, so no source or
   intermediate model has seen bars from the target's test dates.
3. Each domain is standardised on its own training window (features and label).
4. The source model is pre-trained once per seed and cached on disk, keyed by everything
   that determines it; chain stages fine-tune it on each intermediate market in turn.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from xfer.data.features import FeatureMatrix, build_features
from xfer.data.normalize import Standardizer
from xfer.data.splits import Fold, make_folds, source_cut
from xfer.data.store import Store
from xfer.evaluate.scores import VERDICT_METRIC
from xfer.io import atomic_write, move_aside, write_text
from xfer.models.backbones import Backbone, build_backbone
from xfer.train.population import Population
from xfer.train.types import AuxTask, Data, Member, MemberResult, Params
from xfer.transfer.dann import dann_task
from xfer.transfer.strategies import plan_for

from .config import TransferConfig

Progress = Callable[[str], None]


@dataclass
class Domain:
    """Standardised rows of one or more pooled markets, cut before a date."""

    data: Data
    train: torch.Tensor
    val: torch.Tensor
    markets: list[str]
    dates: np.ndarray
    """Date of each row of ``data``."""


MIN_TRAIN_ROWS = 50
"""Training rows a pooled market keeps past its first full window (after validation and embargo)."""


def min_history(val_share: float, embargo: int, window: int) -> int:
    """Fewest model-ready rows a market needs before the cutoff to take part in a domain
    (:func:`make_domain`): :data:`MIN_TRAIN_ROWS` training rows past the window, after the
    validation share and one embargo."""
    n = 1
    while n - max(1, int(n * val_share)) - embargo < MIN_TRAIN_ROWS + window:
        n += 1
    return n


def make_domain(mats: dict[str, FeatureMatrix], cols: list[str], cutoff: pd.Timestamp, embargo: int,
                val_share: float, window: int, device: torch.device | None = None) -> Domain:
    """Pool markets: each cut before ``cutoff``, split train/val in time, standardised alone."""
    xs, ys, train, val, dates = [], [], [], [], []
    offset = 0
    for mid, fm in mats.items():
        d = fm.data[fm.data["date"] < cutoff]
        n = len(d)
        if n < min_history(val_share, embargo, window):
            raise ValueError(f"Market {mid!r} has only {n} rows before {cutoff.date()}; too few to train on")
        n_val = max(1, int(n * val_share))
        tr_stop = n - n_val - embargo
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


def fingerprint(store: Store, mid: str) -> str:
    return hashlib.sha256(store.path(mid).read_bytes()).hexdigest()[:16]


def _key(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class Cached:
    params: Params
    val_loss: float
    epochs: int | None
    """None when loaded from the cache."""


def _digest(params: dict[str, torch.Tensor], val_loss: float) -> str:
    """SHA-256 of a cache entry's tensors (names, dtypes, shapes, bytes) and its loss."""
    h = hashlib.sha256(repr(float(val_loss)).encode())
    for k in sorted(params):
        t = params[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load_cached(path: Path) -> tuple[dict[str, torch.Tensor], float]:
    """One cache entry; raises ValueError saying what is wrong when it does not read back whole."""
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as exc:  # torch/zip/pickle raise many types for a truncated or garbled file
        raise ValueError(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not (isinstance(blob, dict) and isinstance(blob.get("params"), dict) and "val_loss" in blob):
        raise ValueError("not a cache entry written by xfer")
    params, val_loss = blob["params"], float(blob["val_loss"])
    if "digest" in blob and blob["digest"] != _digest(params, val_loss):
        raise ValueError("checksum mismatch")
    return params, val_loss


def _set_aside(path: Path, why: str) -> Path:
    """Move an unreadable cache file to ``<cache>/corrupt/<name>.<timestamp>``, with a warning naming it."""
    dest = move_aside(path)
    warnings.warn(f"{path}: cached weights unreadable ({why}); moved to {dest}; retraining them",
                  RuntimeWarning, stacklevel=3)
    return dest


def entry_name(key: dict[str, Any], seed: int) -> str:
    """The cache file name of one seed's weights."""
    return f"{_key({**key, 'seed': seed})}.pt"


def cached_weights(cache: Path, key: dict[str, Any], seeds: list[int], device: torch.device,
                   train: Callable[[list[int]], list[MemberResult]]) -> dict[int, Cached]:
    """Weights per seed from ``cache`` (file = hash of ``key`` + seed); ``train`` fits the missing seeds.

    Writes are atomic (temporary file, then rename), so a killed run never leaves half a file;
    each entry carries a checksum of its tensors. An entry that does not read back whole
    (truncated, garbled, checksum mismatch) is moved to ``<cache>/corrupt/`` with a warning
    naming it, and retrained.
    """
    paths = {s: cache / entry_name(key, s) for s in seeds}
    out: dict[int, Cached] = {}
    for s, path in paths.items():
        if path.is_file():
            try:
                params, val_loss = _load_cached(path)
            except ValueError as exc:
                _set_aside(path, str(exc))
                continue
            out[s] = Cached({k: v.to(device) for k, v in params.items()}, val_loss, None)
    todo = [s for s in seeds if s not in out]
    if todo:
        cache.mkdir(parents=True, exist_ok=True)
        for s, r in zip(todo, train(todo), strict=True):
            out[s] = Cached(r.params, r.best_val, r.epochs)
            params = {k: v.detach().cpu() for k, v in r.params.items()}
            blob = {"params": params, "val_loss": r.best_val, "key": key, "digest": _digest(params, r.best_val)}
            atomic_write(paths[s], lambda tmp, b=blob: torch.save(b, tmp))
    return out


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
        return VERDICT_METRIC[self.cfg.target_type]

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


@dataclass
class _Markets:
    """Feature matrices of every market involved and the columns they share."""

    sources: list[str]
    stages: list[list[str]]
    target: str
    mats: dict[str, FeatureMatrix]
    cols: list[str]
    masked: dict[str, str]


def _markets(cfg: TransferConfig, st: Store) -> _Markets:
    sources = st.resolve(cfg.source)
    stages = [st.resolve([c]) for c in cfg.chain]  # each stage: one market or a pooled @group
    chain = [m for ids in stages for m in ids]
    target = st.resolve([cfg.target])[0]
    if target in sources or target in chain:
        raise ValueError(f"The target {target!r} cannot also be a source or an intermediate")
    mats = {m: build_features(st.load(m).frame, cfg.target_type, cfg.h) for m in dict.fromkeys([*sources, *chain, target])}
    cols = [c for c in mats[target].feature_names if all(c in mats[m].feature_names for m in mats)]
    masked = {c: why for m in mats.values() for c, why in m.masked.items()}
    masked.update({c: "absent in another market of the pair" for m in mats.values()
                   for c in m.feature_names if c not in cols})
    return _Markets(sources, stages, target, mats, cols, masked)


def ready_marker(cfg: TransferConfig, store: Store, cache: Path | None = None) -> Path:
    """The file :func:`prepare` writes once ``cfg``'s source (and chain) weights are all in the cache.

    Its name is computed cheaply, without building features: a hash of the config (strategy and
    fraction set aside, as they do not change the source unless DANN looks at the target's rows)
    and of the size and modification time of every market file it reads (sources, chain and
    target, groups resolved: a market joining a group changes it; one the config does not read,
    e.g. another process's scratch market, does not). A study's driver skips its source
    pre-training pass for a group whose marker exists; phase 2 still loads (or, if a cache file
    went missing or bad, retrains) the weights through the cache, so a stale marker costs time,
    never a wrong result.
    """
    norm = cfg.model_copy(update={"strategies": ("scratch",),
                                  "fractions": (min(cfg.fractions),) if cfg.dann_weight > 0 else (1.0,)})
    files = []
    for m in store.resolve([*cfg.source, *cfg.chain, cfg.target]):
        stat = store.path(m).stat()
        files.append([m, stat.st_size, stat.st_mtime_ns])
    cache = cache or store.root / "cache" / "source"
    return cache / "ready" / f"{_key({'cfg': norm.model_dump(mode='json'), 'files': files})}.json"


def prepare(cfg: TransferConfig, store: Store | None = None, cache_dir: Path | None = None,
            progress: Progress | None = None, with_source: bool = True) -> Context:
    """Features, folds, source pre-training (cached per seed) and chain stages.

    ``with_source=False`` skips pre-training and chains (a scratch-only cell needs neither).
    """
    say = progress or (lambda _m: None)
    st = store or Store()
    cache = Path(cache_dir) if cache_dir else st.root / "cache" / "source"
    t0 = time.perf_counter()
    mk = _markets(cfg, st)
    split = cfg.target_split
    tgt = mk.mats[mk.target]
    folds = make_folds(len(tgt.data), split)
    cutoff = pd.Timestamp(tgt.data["date"].iloc[source_cut(len(tgt.data), split)])
    bb = build_backbone(len(mk.cols), cfg.backbone)
    timings = {"features_s": time.perf_counter() - t0}
    say(f"{len(mk.cols)} shared features, {len(mk.masked)} masked; target folds {len(folds)}; "
        f"other markets cut before {cutoff.date()}")
    t1 = time.perf_counter()
    src = make_domain({m: mk.mats[m] for m in mk.sources}, mk.cols, cutoff, split.embargo, cfg.source_val_share,
                      bb.window, cfg.torch_device)
    files: list[str] = []  # the cache entries this preparation reads (its ready marker lists them)
    key_base, weights, source_val = _source(cfg, st, mk, src, folds, cutoff, split.embargo, bb, cache,
                                            say, with_source, files)
    timings["source_s"] = time.perf_counter() - t1
    stages: list[dict[str, Any]] = []
    for label, ids in zip(cfg.chain if with_source else (), mk.stages, strict=False):
        weights = _stage(cfg, st, mk, label, ids, key_base, stages, weights, cutoff, split.embargo, bb, cache, files)
        say(f"chain stage {label}: val loss {np.mean(stages[-1]['val_loss']):.4f}")
    if with_source:
        write_text(ready_marker(cfg, st, cache), json.dumps({"target": cfg.target, "sources": list(mk.sources),
                                                               "files": files}))
    return Context(cfg, mk.target, mk.sources, [m for ids in mk.stages for m in ids], mk.cols, mk.masked, folds,
                   tgt, src, bb, weights, stages,
                   {"val_loss": [source_val[s] for s in sorted(source_val)], "rows": len(src.train),
                    "cutoff": str(cutoff.date())}, timings)


def _source(cfg: TransferConfig, st: Store, mk: _Markets, src: Domain, folds: list[Fold], cutoff: pd.Timestamp,
            embargo: int, bb: Backbone, cache: Path, say: Progress, with_source: bool,
            files: list[str]) -> tuple[dict[str, Any], dict[int, Params], dict[int, float]]:
    """Pre-train (or load) the source model per seed; DANN pre-training aligns it with the target."""
    aux: AuxTask | None = None
    dann_window = None
    if cfg.dann_weight > 0:
        # DANN pre-training sees unlabelled target inputs, but only the rows the smallest
        # fraction would have (fold 0's most recent share): a "20% history" cell must not
        # align its source model on the target's whole history.
        tgt = mk.mats[mk.target]
        ff = folds[0].with_fraction(min(cfg.fractions))
        dates = tgt.data["date"]
        dann_window = (dates.iloc[ff.train.start], dates.iloc[ff.train.stop - 1])
        recent = FeatureMatrix(tgt.data[dates >= dann_window[0]], tgt.feature_names, tgt.masked, tgt.target, tgt.horizon)
        dom = make_domain({mk.target: recent}, mk.cols, dann_window[1] + pd.Timedelta(days=1), embargo,
                          cfg.source_val_share, bb.window, cfg.torch_device)
        aux = dann_task(dom.data, dom.train, dom.val, main_is_target=False)
    key_base = {
        "format": 3,
        "sources": {m: fingerprint(st, m) for m in mk.sources}, "cols": mk.cols, "target_type": cfg.target_type,
        "h": cfg.h, "cutoff": str(cutoff.date()), "backbone": cfg.backbone.model_dump(),
        "train": cfg.source_train.model_dump(), "lr": cfg.source_lr, "wd": cfg.weight_decay,
        "val_share": cfg.source_val_share, "embargo": embargo,
        "dann": {"w": cfg.dann_weight, "reverse": cfg.dann_reverse, "target": fingerprint(st, mk.target),
                 "target_rows": [str(d.date()) for d in dann_window]} if dann_window else None,
    }
    if not with_source:
        return key_base, {}, {}
    n_groups = len(bb.group_names())

    def train(todo: list[int]) -> list[MemberResult]:
        say(f"pre-training source {','.join(mk.sources)} ({len(src.train)} rows) for seeds {todo}")
        members = [Member(plan_for("scratch", n_groups), lr=cfg.source_lr, seed=10_000 + s, train=src.train,
                          weight_decay=cfg.weight_decay, aux_weight=cfg.dann_weight,
                          aux_coeff=1.0 if cfg.dann_reverse else 0.0) for s in todo]
        return Population(bb, cfg.source_train).fit(members, src.data, src.val, aux=aux)

    got = cached_weights(cache, key_base, list(range(cfg.seeds)), cfg.torch_device, train)
    files.extend(entry_name(key_base, s) for s in range(cfg.seeds))
    if all(c.epochs is None for c in got.values()):
        say(f"source models for {cfg.seeds} seed(s) loaded from cache")
    return key_base, {s: c.params for s, c in got.items()}, {s: c.val_loss for s, c in got.items()}


def _stage(cfg: TransferConfig, st: Store, mk: _Markets, label: str, ids: list[str], key_base: dict[str, Any],
           stages: list[dict[str, Any]], weights: dict[int, Params], cutoff: pd.Timestamp, embargo: int,
           bb: Backbone, cache: Path, files: list[str]) -> dict[int, Params]:
    """Fine-tune the previous stage's weights on one intermediate market (or pooled group)."""
    t = time.perf_counter()
    stage_key = {**key_base, "chain_to": label, "stage_markets": {m: fingerprint(st, m) for m in ids},
                 "after": [stg["key"] for stg in stages], "strategy": cfg.chain_strategy,
                 "knobs": cfg.knobs, "ratio": cfg.lr_ratio, "stage_train": cfg.train.model_dump()}

    def train(todo: list[int]) -> list[MemberResult]:
        dom = make_domain({m: mk.mats[m] for m in ids}, mk.cols, cutoff, embargo, cfg.source_val_share,
                          bb.window, cfg.torch_device)
        plan = plan_for(cfg.chain_strategy, len(bb.group_names()), cfg.knobs)
        members = [Member(plan, lr=cfg.source_lr * cfg.lr_ratio, seed=20_000 + s, train=dom.train,
                          init=weights[s], weight_decay=cfg.weight_decay) for s in todo]
        return Population(bb, cfg.train).fit(members, dom.data, dom.val)

    got = cached_weights(cache, stage_key, list(range(cfg.seeds)), cfg.torch_device, train)
    files.extend(entry_name(stage_key, s) for s in range(cfg.seeds))
    stages.append({"market": label, "markets": ids, "val_loss": [got[s].val_loss for s in sorted(got)],
                   "epochs": [got[s].epochs for s in sorted(got) if got[s].epochs is not None],
                   "seconds": time.perf_counter() - t, "key": _key(stage_key)[:16]})
    return {s: c.params for s, c in got.items()}
