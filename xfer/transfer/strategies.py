"""Freeze strategies: a registry of entries, each a small function plus the knobs it owns.

A strategy maps a backbone's number of layer groups (head last) and its knob values to a
:class:`~xfer.train.types.GroupPlan`: per group, the learning-rate multiplier and the epoch
it becomes trainable (``inf`` = frozen), whether the fit starts from the source weights or
a random init, and the L2-SP pull toward the source weights.

Each entry declares its knobs (type, default, search range): the study spec's
``search.space``, the cell's candidate builder, the ``xfer transfer --knob`` option and the
W&B config are all derived from :data:`STRATEGIES`. Adding a strategy (with knobs) is one
function plus one :func:`register` call; ``tests/models/test_contract.py`` checks every
entry without a hand-kept list.

From the article: ``head_only`` (freeze all but the final layer), ``partial`` (fine-tune the
last k groups), ``full`` (fine-tune everything from the source weights), and the baseline
``scratch`` (same architecture, random init). Beyond it: ``gradual`` (unfreeze one group at a
time, late to early), ``discriminative`` (layer-wise learning-rate decay) and ``l2sp``
(full fine-tuning with a penalty pulling weights toward the source weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from xfer.train.plan import GroupPlan

INF = math.inf
KnobValue = float | int | bool
Knobs = Mapping[str, KnobValue]


@dataclass(frozen=True)
class Knob:
    """One hyperparameter a strategy owns: its type, default and default search range."""

    name: str
    kind: Literal["float", "int", "bool"]
    default: KnobValue
    low: float | None = None
    high: float | None = None
    log: bool = False
    help: str = ""

    def check(self, value: object, where: str) -> KnobValue:
        """The value converted to the knob's type; a ValueError names the knob and the range."""
        ok_type = isinstance(value, bool) if self.kind == "bool" else (
            isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok_type or (self.kind == "int" and float(value) != int(value)):  # type: ignore[arg-type]
            raise ValueError(f"The '{self.name}' knob of {where} must be {self.kind}. Got {value!r} instead.")
        v: KnobValue = bool(value) if self.kind == "bool" else (
            int(value) if self.kind == "int" else float(value))  # type: ignore[arg-type]
        if self.kind != "bool" and not (self.low is None or self.low <= v <= (self.high or INF)):
            raise ValueError(f"The '{self.name}' knob of {where} must be in [{self.low}, {self.high}]. "
                             f"Got {value!r} instead.")
        return v


@dataclass(frozen=True)
class Strategy:
    """A registry entry: the plan function, the knobs it reads, and whether it needs a source."""

    name: str
    plan: Callable[[int, Mapping[str, KnobValue]], GroupPlan]
    knobs: tuple[Knob, ...] = ()
    uses_source: bool = True
    help: str = ""

    def defaults(self) -> dict[str, KnobValue]:
        return {k.name: k.default for k in self.knobs}


REINIT_HEAD = Knob("reinit_head", "bool", False, help="start the head from random weights")

STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy to the registry (a name already taken is an error)."""
    if strategy.name in STRATEGIES:
        raise ValueError(f"A strategy named {strategy.name!r} is already registered")
    STRATEGIES[strategy.name] = strategy
    return strategy


def all_knobs() -> dict[str, Knob]:
    """Every knob any registered strategy owns (one definition per name)."""
    out: dict[str, Knob] = {}
    for s in STRATEGIES.values():
        for k in s.knobs:
            out.setdefault(k.name, k)
    return out


def get(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"The 'strategy' parameter must be one of {sorted(STRATEGIES)}. Got {name!r} instead.")
    return STRATEGIES[name]


def resolve_knobs(name: str, knobs: Knobs | None = None) -> dict[str, KnobValue]:
    """The strategy's own knobs: its defaults, overridden by the given values (others ignored)."""
    s = get(name)
    given = knobs or {}
    return {k.name: k.check(given[k.name], f"strategy {name!r}") if k.name in given else k.default
            for k in s.knobs}


def plan_for(name: str, n_groups: int, knobs: Knobs | None = None) -> GroupPlan:
    """The group plan of a strategy for a backbone with ``n_groups`` groups (head included)."""
    s = get(name)
    if n_groups < 2:
        raise ValueError(f"A backbone needs >= 2 layer groups (features + head). Got {n_groups}.")
    return s.plan(n_groups, resolve_knobs(name, knobs))


# ----------------------------------------------------------------------------- entries


def _scratch(n: int, k: Knobs) -> GroupPlan:
    return GroupPlan("random", (1.0,) * n, (0.0,) * n)


def _full(n: int, k: Knobs) -> GroupPlan:
    return GroupPlan("source", (1.0,) * n, (0.0,) * n, reinit_head=bool(k["reinit_head"]))


def _head_only(n: int, k: Knobs) -> GroupPlan:
    return GroupPlan("source", (1.0,) * n, (INF,) * (n - 1) + (0.0,), reinit_head=bool(k["reinit_head"]))


def _partial(n: int, k: Knobs) -> GroupPlan:
    depth = min(int(k["unfreeze_depth"]), n - 1)  # feature groups trained, counted from the top
    frozen = n - 1 - depth
    return GroupPlan("source", (1.0,) * n, (INF,) * frozen + (0.0,) * (depth + 1), reinit_head=bool(k["reinit_head"]))


def _gradual(n: int, k: Knobs) -> GroupPlan:
    # head at epoch 0, the group below it after `gradual_every` epochs, and so on downward
    epochs = tuple(float((n - 1 - g) * int(k["gradual_every"])) for g in range(n))
    return GroupPlan("source", (1.0,) * n, epochs, reinit_head=bool(k["reinit_head"]))


def _discriminative(n: int, k: Knobs) -> GroupPlan:
    mult = tuple(float(k["lr_decay"]) ** (n - 1 - g) for g in range(n))
    return GroupPlan("source", mult, (0.0,) * n, reinit_head=bool(k["reinit_head"]))


def _l2sp(n: int, k: Knobs) -> GroupPlan:
    return GroupPlan("source", (1.0,) * n, (0.0,) * n, l2sp_alpha=float(k["l2sp_alpha"]),
                     reinit_head=bool(k["reinit_head"]))


register(Strategy("scratch", _scratch, uses_source=False, help="same architecture, random init (the baseline)"))
register(Strategy("head_only", _head_only, (REINIT_HEAD,), help="freeze all but the final layer"))
register(Strategy("partial", _partial, (
    Knob("unfreeze_depth", "int", 1, 1, 8, help="feature groups fine-tuned, from the top"), REINIT_HEAD),
    help="fine-tune the last k feature groups and the head"))
register(Strategy("full", _full, (REINIT_HEAD,), help="fine-tune everything from the source weights"))
register(Strategy("gradual", _gradual, (
    Knob("gradual_every", "int", 2, 1, 20, help="epochs between unfreezing two groups"), REINIT_HEAD),
    help="unfreeze one group at a time, late to early"))
register(Strategy("discriminative", _discriminative, (
    Knob("lr_decay", "float", 0.5, 0.05, 1.0, help="LR factor per group down"), REINIT_HEAD),
    help="layer-wise learning-rate decay"))
register(Strategy("l2sp", _l2sp, (
    Knob("l2sp_alpha", "float", 1e-2, 1e-5, 10.0, log=True, help="weight of ||w - w_source||^2"), REINIT_HEAD),
    help="full fine-tuning pulled toward the source weights"))
