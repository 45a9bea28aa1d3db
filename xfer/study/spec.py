"""Study specs: YAML in, validated typed objects out, loaded once.

Every problem is reported with the file, the field path, what was expected and what was
found, and all problems of a file are reported together (`xfer study validate`). Nothing
downstream re-checks or re-parses a spec.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xfer.data.splits import SplitSpec
from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.experiment.check import Fields, problems
from xfer.experiment.config import TransferConfig, check_fractions, check_strategies, searchable
from xfer.models.backbones import BACKBONES, BackboneSpec
from xfer.train.types import TrainConfig
from xfer.transfer.strategies import STRATEGIES

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,80}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(_Strict):
    """What is predicted."""

    target_type: Literal["volatility", "return"] = Field(default="volatility", description="Label.")
    horizon: int | None = Field(default=None, ge=1, le=250, description="Label horizon in days.")


class Pair(_Strict):
    """A source (one market, several pooled, or @groups) and a target, with optional chains."""

    source: list[str] = Field(description="Source market ids or @groups (pooled).")
    target: str = Field(description="Target market id.")
    chains: list[list[str]] = Field(
        default_factory=list,
        description="Full paths source -> intermediate... -> target; direct transfer is always run.",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _chains_connect(self) -> Pair:
        for i, path in enumerate(self.chains):
            if len(path) < 3:
                raise ValueError(
                    f"chains[{i}] must be a path [source, intermediate..., target] with at least one "
                    f"intermediate. Got {path} instead.")
            if path[-1] != self.target:
                raise ValueError(f"chains[{i}] must end at the pair's target {self.target!r}. Got {path[-1]!r} instead.")
            if path[0] not in self.source and [path[0]] != self.source:
                raise ValueError(f"chains[{i}] must start at the pair's source {self.source}. Got {path[0]!r} instead.")
        return self

    @property
    def pair_id(self) -> str:
        return f"{','.join(self.source)}->{self.target}"


class Grid(_Strict):
    """The cells of the study: every combination is run; scratch is always included."""

    strategies: list[str] = Field(default_factory=lambda: ["scratch", "head_only", "partial", "full"])
    fractions: list[float] = Field(default_factory=lambda: [1.0])
    seeds: int = Field(default=3, ge=1, le=64)
    dann: list[bool] = Field(default_factory=lambda: [False], description="Run with and/or without DANN.")
    backbone: BackboneSpec = BackboneSpec()

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("strategies must list at least one strategy. Got [] instead.")
        return list(check_strategies(tuple(v)))

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("fractions must list at least one fraction. Got [] instead.")
        return list(check_fractions(tuple(v)))

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, v: BackboneSpec) -> BackboneSpec:
        if v.name not in BACKBONES:
            raise ValueError(f"backbone.name must be one of {sorted(BACKBONES)}. Got {v.name!r} instead.")
        return v


class Dist(_Strict):
    """An Optuna distribution: a range (float or int) or a list of choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    int_: bool = Field(default=False, alias="int")
    choices: list[Any] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _shape(self) -> Dist:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("a distribution is either non-empty 'choices' or 'low'/'high', not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a distribution needs 'low' and 'high' (or 'choices')")
        if self.low >= self.high:
            raise ValueError(f"'low' must be < 'high'. Got low={self.low}, high={self.high} instead.")
        if self.log and self.low <= 0:
            raise ValueError(f"a log distribution needs low > 0. Got low={self.low} instead.")
        return self


class Search(_Strict):
    """Optuna search inside each cell; the same budget for every cell, scratch included."""

    sampler: Literal["tpe", "random", "grid"] = Field(default="tpe", description=(
        "tpe or random over the space; grid: every combination of the cell's searched knobs' "
        "choices (trials_per_cell of them, in a seeded order), e.g. a learning-rate-ratio sweep."))
    trials_per_cell: int = Field(default=4, ge=1, le=1000)
    batch_size: int = Field(default=4, ge=1, le=256, description="Configs per ask/tell round (one population).")
    space: dict[str, Dist] = Field(default_factory=lambda: {
        "lr_ratio": Dist(low=0.03, high=0.3, log=True),
        "scratch_lr": Dist(low=3e-4, high=3e-3, log=True),
    })

    @field_validator("space")
    @classmethod
    def _known(cls, v: dict[str, Dist]) -> dict[str, Dist]:
        known = searchable()
        bad = [k for k in v if k not in known]
        if bad:
            hint = " (dropout is an architecture knob: set grid.backbone.dropout)" if "dropout" in bad else ""
            raise ValueError(f"search.space keys must be among {sorted(known)}. Got unknown {bad} instead.{hint}")
        for k, d in v.items():
            for x in (d.choices or [d.low, d.high]):
                known[k].check(x, "search.space")
        return v

    @model_validator(mode="after")
    def _grid(self) -> Search:
        ranges = sorted(k for k, d in self.space.items() if d.choices is None)
        if self.sampler == "grid" and ranges:
            raise ValueError(f"a grid search needs 'choices' for every knob in search.space. Got a range for {ranges} instead.")
        return self


def searched(strategy: str, dann: bool) -> list[str]:
    """The knobs that change a cell's fits, in a fixed order (the trial budget is the same for all):
    scratch searches its own LR; a transfer strategy its LR ratio, its registry knobs, and the
    DANN weight when DANN is on; everyone searches weight decay."""
    if strategy == "scratch":
        return ["scratch_lr", "weight_decay"]
    own = [k.name for k in STRATEGIES[strategy].knobs]
    return ["lr_ratio", "weight_decay", *own, *(["dann_weight"] if dann else [])]


def grid_of(search: Search, strategy: str, dann: bool) -> dict[str, list[Any]]:
    """A grid search's points for a cell: the choices of each of its searched knobs in the space."""
    return {k: list(search.space[k].choices or []) for k in searched(strategy, dann) if k in search.space}


def grid_size(search: Search, strategy: str, dann: bool) -> int:
    return math.prod(len(v) for v in grid_of(search, strategy, dann).values())


class Evaluation(_Strict):
    folds: int = Field(default=3, ge=1, le=20)
    test_share: float = Field(default=0.2, gt=0.0, lt=0.8)
    val_share: float = Field(default=0.1, gt=0.0, lt=0.5)
    cost_bps: float = Field(default=2.0, ge=0.0)
    importance_repeats: int = Field(default=2, ge=0, le=20)
    domain_probe: bool = False

    @model_validator(mode="after")
    def _leaves_training(self) -> Evaluation:
        if self.test_share + self.val_share >= 0.9:
            raise ValueError(
                "test_share + val_share must leave at least 10% of the rows for training. "
                f"Got {self.test_share} + {self.val_share} instead.")
        return self


class SourceSettings(_Strict):
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    train: TrainConfig = TrainConfig(steps_per_epoch=50, max_epochs=30, patience=4)


class Resources(_Strict):
    cpus_per_trial: float = Field(default=1.0, gt=0.0)
    gpus_per_trial: float = Field(default=0.0, ge=0.0, description="Fractional GPUs allowed.")
    max_concurrent: int | None = Field(default=None, ge=1)


class Tracking(_Strict):
    project: str = "xfer"
    entity: str | None = None
    mode: Literal["auto", "offline", "online", "disabled"] = "auto"


class StudySpec(_Strict):
    """A whole study."""

    name: str
    description: str = ""
    task: Task = Task()
    pairs: list[Pair]
    grid: Grid = Grid()
    search: Search = Search()
    evaluation: Evaluation = Evaluation()
    train: TrainConfig = TrainConfig()
    source: SourceSettings = SourceSettings()
    resources: Resources = Resources()
    tracking: Tracking = Tracking()
    storage: str | None = Field(default=None, description="Study directory (default under the store).")
    screen: bool = Field(default=False, description=(
        "Before any training, rank each target's sources with the transferability pre-screen "
        "(xfer pairs screen: statistics on the training windows only) into screen.parquet."))

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"name must be letters, digits, '_', '.', '-' (max 81). Got {v!r} instead.")
        return v

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: list[Pair]) -> list[Pair]:
        if not v:
            raise ValueError("pairs must list at least one source/target pair. Got [] instead.")
        return v

    @model_validator(mode="after")
    def _grid_fits(self) -> StudySpec:
        if self.search.sampler != "grid":
            return self
        for strat in self.grid.strategies:
            for dann in sorted(set(self.grid.dann)) if strat != "scratch" else [False]:
                n = grid_size(self.search, strat, dann)
                if self.search.trials_per_cell > n:
                    raise ValueError(
                        f"search.trials_per_cell must not exceed the grid's size, or configs repeat: the {strat} "
                        f"cells{' with DANN' if dann else ''} have {n} combination(s). Got {self.search.trials_per_cell} instead.")
        return self

    def smoke(self) -> StudySpec:
        """The same study on a tiny budget: every cell kind still runs, fast."""
        tiny = TrainConfig(batch_size=64, steps_per_epoch=3, max_epochs=2, patience=1, eval_rows=512)
        fr = self.grid.fractions
        return self.model_copy(update={
            "name": f"{self.name}-smoke",
            "grid": self.grid.model_copy(update={"seeds": 1, "fractions": sorted({fr[0], fr[-1]})}),
            "search": self.search.model_copy(update={"trials_per_cell": 1, "batch_size": 1}),
            "evaluation": self.evaluation.model_copy(update={"folds": 1, "importance_repeats": 1}),
            "train": tiny,
            "source": self.source.model_copy(update={"train": tiny}),
        })


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One grid cell: a pair, a chain (or direct), DANN on/off, a strategy and a fraction.

    ``setup`` is the cell's experiment, resolved and validated once when the grid is built:
    its strategy, fraction, chain and DANN weight are the cell's own (no placeholders); the
    searched hyperparameters arrive as explicit candidates (:mod:`xfer.study.cell`).
    """

    pair: Pair
    chain: tuple[str, ...]  # intermediates only; () = direct
    dann: bool
    strategy: str
    fraction: float
    setup: TransferConfig = field(compare=False, repr=False)

    @property
    def chain_id(self) -> str:
        return ">".join(self.chain) if self.chain else "direct"

    @property
    def cell_id(self) -> str:
        raw = json.dumps([self.pair.pair_id, self.chain_id, self.dann, self.strategy, self.fraction])
        slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{self.pair.target}_{self.strategy}_{self.fraction:g}")
        return f"{slug}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"


def cells(spec: StudySpec) -> list[Cell]:
    """Every cell of the grid. Scratch does not depend on the source, so it has one cell per
    (pair, fraction) and serves as the baseline of every chain and DANN variant."""
    out = []

    def cell(pair: Pair, chain: tuple[str, ...], dann: bool, strat: str, frac: float) -> Cell:
        return Cell(pair, chain, dann, strat, frac, cell_setup(spec, pair, chain, dann, strat, frac))

    for pair in spec.pairs:
        for frac in spec.grid.fractions:
            out.append(cell(pair, (), False, "scratch", frac))
        for path in [None, *pair.chains]:
            chain = tuple(path[1:-1]) if path else ()
            for dann in spec.grid.dann:
                for strat in spec.grid.strategies:
                    if strat == "scratch":
                        continue
                    for frac in spec.grid.fractions:
                        out.append(cell(pair, chain, dann, strat, frac))
    return out


def cell_setup(spec: StudySpec, pair: Pair, chain: tuple[str, ...], dann: bool, strategy: str,
               fraction: float) -> TransferConfig:
    """The experiment of one cell; the searched knobs come per candidate, not from here."""
    return TransferConfig(
        source=tuple(pair.source), target=pair.target, strategies=(strategy,),
        fractions=(fraction,), seeds=spec.grid.seeds, target_type=spec.task.target_type,
        horizon=spec.task.horizon, chain=chain, source_lr=spec.source.lr,
        weight_decay=spec.source.weight_decay, backbone=spec.grid.backbone, dann_weight=1.0 if dann else 0.0,
        split=SplitSpec(n_folds=spec.evaluation.folds, test_share=spec.evaluation.test_share,
                        val_share=spec.evaluation.val_share),
        train=spec.train, source_train=spec.source.train, cost_bps=spec.evaluation.cost_bps,
        importance_repeats=spec.evaluation.importance_repeats, domain_probe=spec.evaluation.domain_probe,
    )


# --------------------------------------------------------------------------- loading


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _errors(exc: ValidationError) -> list[tuple[str, str, str]]:
    found = []
    for e in exc.errors():
        loc = _loc(tuple(p for p in e["loc"] if p not in ("function-after",)))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            found.append((loc, "no such field (check the spelling)", repr(e.get("input"))))
        elif e["type"] == "missing":
            found.append((loc, "a value (required field)", "nothing"))
        else:
            found.append((loc, msg, repr(e.get("input"))[:120]))
    return found


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge")}


def _refuse_tags(path: Path, node: yaml.Node | None) -> None:
    """Refuse explicit tags (``!!python/object...``, ``!custom``) at the line of the tag itself."""
    bad: list[tuple[str, str, str]] = []
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if n.tag not in _PLAIN_TAGS:
            m = n.start_mark
            bad.append((f"line {m.line + 1}, column {m.column + 1}", "plain YAML values (no tags)",
                        f"the tag {n.tag.replace('tag:yaml.org,2002:', '!!')!r}"))
        if isinstance(n, yaml.MappingNode):
            stack.extend(x for kv in n.value for x in kv)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    if bad:
        raise StudyError(path, sorted(bad, key=lambda b: [int(x) for x in re.findall(r"\d+", b[0])]))


def parse(path: str | Path) -> StudySpec:
    """Parse and validate a study file's structure; raises :class:`StudyError` with every problem."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(path, [("(file)", "an existing YAML file", "no such file")])
    try:
        text = path.read_text()
        _refuse_tags(path, yaml.compose(text, Loader=yaml.SafeLoader))
        raw = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise StudyError(path, [("(file)", "UTF-8 text", f"undecodable bytes at offset {exc.start}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise StudyError(path, [(where, "valid YAML", str(getattr(exc, "problem", exc)))]) from None
    if not isinstance(raw, dict):
        raise StudyError(path, [("(top level)", "a mapping of study fields", type(raw).__name__)])
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise StudyError(path, _errors(exc)) from None


def check_markets(spec: StudySpec, store: Store, path: str | Path) -> None:
    """Everything each pair needs from the store, before any compute: markets and @groups exist,
    the target is one market that is neither a source (a group member included) nor an
    intermediate of a chain, the backbone exists, and the target is long enough for the
    horizon and folds (:func:`xfer.experiment.check.problems`)."""
    found: list[tuple[str, str, str]] = []
    for i, pair in enumerate(spec.pairs):
        fields = Fields(source=f"pairs[{i}].source", target=f"pairs[{i}].target", chain=f"pairs[{i}].chains",
                        backbone="grid.backbone.name", horizon="task.horizon")
        direct = cell_setup(spec, pair, (), False, "scratch", spec.grid.fractions[0])
        for p in problems(direct, store, fields):
            if p not in found:
                found.append(p)
        for j, path_ in enumerate(pair.chains):
            cfg = direct.model_copy(update={"chain": tuple(path_[1:-1])})
            chain_fields = Fields(source=fields.source, target=fields.target, chain=f"pairs[{i}].chains[{j}]",
                                  backbone=fields.backbone, horizon=fields.horizon)
            for p in problems(cfg, store, chain_fields):
                if p not in found:
                    found.append(p)
    if found:
        raise StudyError(path, found)


@dataclass(frozen=True)
class StudySize:
    """How big a study is: what ``xfer study validate`` prints before anyone spends compute."""

    cells: int
    fits: int  # target fits: cells x trials x seeds x folds
    source_fits: int  # pre-training fits: distinct cached source/chain stages x seeds
    rounds: int  # Optuna ask/tell rounds per cell
    cell_members: int  # members of one round's population (batch x seeds)
    cell_steps: int  # most steps of one population (the step budget)
    source_steps: int
    folds: int
    source_populations: int  # one population (of seeds) per source group and chain stage

    def seconds(self, cell_step_s: float, source_step_s: float, workers: int) -> float:
        """Upper bound of the training time: every population runs its whole step budget."""
        cell = self.cells * self.rounds * self.folds * self.cell_steps * cell_step_s
        source = self.source_populations * self.source_steps * source_step_s
        return (cell + source) / max(1, workers)


def size(spec: StudySpec) -> StudySize:
    """Cells, fits and step budgets of a study (no store access, no compute)."""
    cs = cells(spec)
    trials, batch = spec.search.trials_per_cell, spec.search.batch_size
    stage_keys: set[tuple[str, bool, float, tuple[str, ...]]] = set()  # cached once: chains share prefixes
    for c in cs:
        if c.strategy != "scratch":
            dfrac = c.fraction if c.dann else 0.0
            stage_keys.update((c.pair.pair_id, c.dann, dfrac, c.chain[:k]) for k in range(len(c.chain) + 1))
    stages = len(stage_keys)
    seeds, folds = spec.grid.seeds, spec.evaluation.folds
    return StudySize(
        cells=len(cs), fits=len(cs) * trials * seeds * folds,
        source_fits=stages * seeds, rounds=-(-trials // batch), cell_members=min(batch, trials) * seeds,
        cell_steps=spec.train.max_epochs * spec.train.steps_per_epoch,
        source_steps=spec.source.train.max_epochs * spec.source.train.steps_per_epoch,
        folds=folds, source_populations=stages)


def load(path: str | Path, store: Store | None = None) -> StudySpec:
    """Parse, validate and check a study file against the market catalog."""
    spec = parse(path)
    check_markets(spec, store or Store(), path)
    return spec


class StudyError(XferInputError):
    """All problems of one study file."""

    def __init__(self, path: str | Path, problems: list[tuple[str, str, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        first = problems[0]
        super().__init__(file=path, field=first[0], expected=first[1], found=first[2])

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.path, self.problems)

    def __str__(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        for f, e, x in self.problems:
            # validators already phrase "must be X. Got Y instead."; others get expected/found
            lines.append(f"  {self.path}: {f}: {e}" if " Got " in e else f"  {self.path}: {f}: expected {e}; found {x}")
        return "\n".join(lines)
