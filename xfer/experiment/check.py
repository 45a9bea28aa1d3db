"""Everything an experiment needs from the store, checked before any compute.

A transfer experiment (``xfer transfer`` or a study cell) can go wrong in ways the config's
types cannot see: a market or group that is not in the catalog, a target that is also a
source (``--source @energy --target xom``) or an intermediate of its chain, a group given as
the target, an unknown backbone, a target too short for its label horizon and walk-forward
folds, a source or intermediate market with too little history before the target's first test
block (every other market is cut there). :func:`problems` finds all of them from the catalog and
the markets' dates (features of the markets involved, cached per file; no model trained), so the
CLI and ``xfer study validate`` refuse before minutes of compute.

:func:`step_seconds` is the short timing probe behind a study's size estimate: one population
training step of the study's backbone and batch, measured on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from xfer.data.features import WARMUP, build_features
from xfer.data.splits import source_cut
from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.models.backbones import BACKBONES, BackboneSpec
from xfer.train.types import TrainConfig

from .config import TransferConfig
from .prepare import min_history

Problem = tuple[str, str, str]
"""(field, expected, found)."""


@dataclass(frozen=True)
class Fields:
    """How the caller names the fields (CLI options, or a study file's paths)."""

    source: str = "--source"
    target: str = "--target"
    chain: str = "--chain"
    backbone: str = "--backbone"
    horizon: str = "--horizon"


def problems(cfg: TransferConfig, store: Store, fields: Fields = Fields()) -> list[Problem]:
    """Every problem of ``cfg`` against the store's catalog (empty: the experiment can run)."""
    out: list[Problem] = []
    catalog = {m.id: m for m in store.list()}
    groups: dict[str, list[str]] = {}
    for m in catalog.values():
        for t in m.tags:
            groups.setdefault(t, []).append(m.id)

    def expand(name: str, field: str) -> list[str] | None:
        if name.startswith("@"):
            if name[1:] not in groups:
                out.append((field, f"a market group among {sorted('@' + g for g in groups)}", repr(name)))
                return None
            return groups[name[1:]]
        if name not in catalog:
            found = repr(name)
            if "/" not in name and (store.markets_dir / f"{name}.parquet").exists():
                # the id's file is there but the listing skipped it (unreadable, renamed, a link)
                found += f", whose file {store.markets_dir / (name + '.parquet')} does not read as a market"
            out.append((field, "a market in the catalog (see `xfer data list`)", found))
            return None
        return [name]

    if cfg.backbone.name not in BACKBONES:
        out.append((fields.backbone, f"one of {sorted(BACKBONES)}", repr(cfg.backbone.name)))
    sources: dict[str, str] = {}  # market -> the name that brought it in
    for s in cfg.source:
        for m in expand(s, fields.source) or []:
            sources.setdefault(m, s)
    target = cfg.target
    if target.startswith("@"):
        out.append((fields.target, "one market id, not a group", repr(target)))
        return out
    if expand(target, fields.target) is None:
        return out
    if target in sources:
        via = sources[target]
        found = repr(target) if via == target else f"{target!r}, a member of the source group {via}"
        out.append((fields.target, "a target that is not one of its sources", found))
    for i, stage in enumerate(cfg.chain):
        # a study names the whole path [source, intermediate..., target]; the CLI only the intermediates
        where = f"{fields.chain}[{i + 1}]" if fields.chain.startswith("pairs") else fields.chain
        members = expand(stage, where) or []
        if target in members:
            found = repr(stage) if stage == target else f"{stage!r}, a group that holds the target {target!r}"
            out.append((where, "an intermediate market other than the target", found))
        # an intermediate may overlap the sources: US stocks -> energy stocks -> crude narrows the domain
    used = {**{m: fields.source for m in sources}, cfg.target: fields.target}
    for stage in cfg.chain:
        for m in groups.get(stage[1:], []) if stage.startswith("@") else [stage]:
            used.setdefault(m, fields.chain)
    for m, where in used.items():
        freq = getattr(catalog.get(m), "frequency", "daily")
        if freq != "daily":  # imported with --allow-frequency: the features are daily-bar features
            out.append((where, "markets of daily bars (every feature and label is defined on daily bars)",
                        f"{m!r}, {freq} bars"))
    if not out:
        out.extend(_length(cfg, store, fields))
    if not out:
        out.extend(_history(cfg, store, {m: w for m, w in used.items() if m != cfg.target}))
    return out


_DATES: dict[tuple[str, int, int, str, int], np.ndarray] = {}


def _dates(store: Store, market: str, target_type: str, h: int) -> np.ndarray:
    """Dates of a market's model-ready rows (features and label defined), cached per file
    version: a study checks the same sources for every cell."""
    path = store.path(market)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, target_type, h)
    if key not in _DATES:
        if len(_DATES) > 512:
            _DATES.clear()
        _DATES[key] = build_features(store.load(market).frame, target_type, h).data["date"].to_numpy()
    return _DATES[key]


def _history(cfg: TransferConfig, store: Store, markets: dict[str, str]) -> list[Problem]:
    """Each source and intermediate market is cut one embargo before the target's first test
    block (no row of theirs shares a day with a test row) and must keep enough rows there."""
    split = cfg.target_split
    tgt = _dates(store, cfg.target, cfg.target_type, cfg.h)
    try:
        cutoff = tgt[source_cut(len(tgt), split)]
    except ValueError:
        return []  # the target's own length is _length's problem
    window = BACKBONES[cfg.backbone.name].input_window(cfg.backbone)
    need = min_history(cfg.source_val_share, split.embargo, window)
    out = []
    for m, where in markets.items():
        have = int((_dates(store, m, cfg.target_type, cfg.h) < cutoff).sum())
        if have < need:
            day = str(np.datetime_as_string(cutoff, unit="D"))
            out.append((where, f"source and chain markets with at least {need} model-ready rows before the target's "
                               f"first test period ({day}: one embargo before the first test block of {cfg.target!r}, "
                               f"where every other market is cut)", f"{m!r} with {have}"))
    return out


def _length(cfg: TransferConfig, store: Store, fields: Fields) -> list[Problem]:
    """The target's bars cover feature warm-up, the label horizon and every fold's windows."""
    split = cfg.target_split
    n = store.info(cfg.target).n_rows
    usable = n - WARMUP - cfg.h
    need = split.min_rows()
    if usable < need:
        return [(fields.horizon if cfg.horizon else fields.target,
                 f"a target with at least {need + WARMUP + cfg.h} bars for a {cfg.h}-day label horizon and "
                 f"{split.n_folds} fold(s) ({WARMUP} warm-up + {cfg.h} horizon + {need} rows for the splits)",
                 f"{cfg.target!r} with {n} bars")]
    return []


def check(cfg: TransferConfig, store: Store, fields: Fields = Fields()) -> None:
    """Raise :class:`XferInputError` naming the first problem (and how many there are)."""
    found = problems(cfg, store, fields)
    if found:
        f, e, x = found[0]
        more = f"{len(found) - 1} more problem(s): " + "; ".join(f"{a}: {b}" for a, b, _ in found[1:]) \
            if len(found) > 1 else None
        raise XferInputError(field=f, expected=e, found=x, hint=more)


PROBE_MEMBERS = 64


def step_seconds(backbone: BackboneSpec, train: TrainConfig, members: int, n_features: int = 24,
                 steps: int = 12) -> float:
    """Seconds per training step of a population of ``members`` on this machine (a short probe).

    Populations above :data:`PROBE_MEMBERS` are timed at that size and scaled linearly (a large
    population's step is compute-bound, so its cost grows with the member count)."""
    if members > PROBE_MEMBERS:
        return step_seconds(backbone, train, PROBE_MEMBERS, n_features, steps) * members / PROBE_MEMBERS
    import torch

    from xfer.models.backbones import build_backbone
    from xfer.train.population import Population
    from xfer.train.types import Data, Member
    from xfer.transfer.strategies import plan_for

    g = torch.Generator().manual_seed(0)
    n = max(4 * train.batch_size, 512)
    data = Data(torch.randn(n, n_features, generator=g), torch.randn(n, generator=g))
    bb = build_backbone(n_features, backbone)
    plan = plan_for("scratch", len(bb.group_names()), {})
    cfg = train.model_copy(update={"max_epochs": 1, "steps_per_epoch": steps, "pass_epochs": False,
                                   "patience": 10_000, "min_patience_steps": 1})
    ms = [Member(plan, lr=1e-3, seed=i + 1, train=range(0, n - 128)) for i in range(max(1, members))]
    pop = Population(bb, cfg)
    pop.fit(ms[:1], data, range(n - 128, n))  # warm-up (allocations, first-call overheads)
    t = time.perf_counter()
    pop.fit(ms, data, range(n - 128, n))
    return (time.perf_counter() - t) / steps
