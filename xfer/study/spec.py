"""Study specs: YAML in, validated typed objects out, loaded once.

Every problem is reported with the file, the field path, what was expected and what was
found, and all problems of a file are reported together (`xfer study validate`). Nothing
downstream re-checks or re-parses a spec.
"""

from __future__ import annotations

import difflib
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
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _once(field: str, values: list[Any]) -> None:
    """Refuse a value listed twice: it would count (and run) as extra cells, or repeat configs."""
    seen: list[Any] = []
    for x in values:
        if x in seen:
            raise ValueError(f"{field} must list each value once. Got {x!r} twice instead.")
        seen.append(x)


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
        _once("source", self.source)
        _once("chains", self.chains)
        for i, path in enumerate(self.chains):
            # the target again is left to check_markets, which names the intermediate at fault
            again = next((m for k, m in enumerate(path[:-1]) if m in path[:k]), None)
            if again is not None:
                raise ValueError(f"chains[{i}] must pass through each market once (no loop). "
                                 f"Got {again!r} twice in {path} instead.")
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
        _once("strategies", v)
        return list(check_strategies(tuple(v)))

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("fractions must list at least one fraction. Got [] instead.")
        _once("fractions", v)  # was deduplicated silently: [0.1, 0.1] is likely a typo for another one
        return list(check_fractions(tuple(v)))

    @field_validator("dann")
    @classmethod
    def _dann(cls, v: list[bool]) -> list[bool]:
        if not v:
            raise ValueError("dann must list at least one of false, true. Got [] instead.")
        _once("dann", v)
        return v

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

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _shape(self) -> Dist:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("a distribution is either non-empty 'choices' or 'low'/'high', not both")
            _once("choices", self.choices)  # a grid search would ask the same config twice
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
            shown = repr(v) if len(v) <= 100 else f"{v[:40]!r}... ({len(v):,} characters)"
            raise ValueError(f"name must be letters, digits, '_', '.', '-' (max 81). Got {shown} instead.")
        return v

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: list[Pair]) -> list[Pair]:
        if not v:
            raise ValueError("pairs must list at least one source/target pair. Got [] instead.")
        seen: dict[tuple[frozenset[str], str], int] = {}
        for i, p in enumerate(v):  # the same cells twice, under the same cell ids
            j = seen.setdefault((frozenset(p.source), p.target), i)
            if j != i:
                raise ValueError(f"pairs must list each source/target pair once. Got pairs[{i}] "
                                 f"({p.pair_id}) again after pairs[{j}] instead.")
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
        p = p if isinstance(p, int) or str(p).isprintable() else repr(p)  # no control characters on a terminal
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


_STRICT_TYPES = {
    "int_type": "an integer (not true/false, a quoted string or a decimal)",
    "float_type": "a number (not true/false or a quoted string)",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "finite_number": "a finite number (not .inf or .nan)",
}


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model at ``loc`` (the location of an unknown field), for did-you-mean."""
    import typing

    def model(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, BaseModel)

    cls: Any = StudySpec
    keys = 0  # loc parts that are list indices or dict keys, not fields
    for part in loc[:-1]:
        if keys:
            keys -= 1
            continue
        info = cls.model_fields.get(part) if model(cls) else None
        if info is None:
            return []
        ann: Any = info.annotation
        while typing.get_args(ann) and not model(ann):
            keys += typing.get_origin(ann) in (list, dict)
            ann = next((a for a in reversed(typing.get_args(ann)) if a is not type(None)), None)
        cls = ann
    return [f.alias or name for name, f in cls.model_fields.items()] if model(cls) else []


def _errors(exc: ValidationError) -> list[tuple[str, str, str]]:
    found = []
    for e in exc.errors():
        loc = _loc(tuple(p for p in e["loc"] if p not in ("function-after",)))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            key = e["loc"][-1]
            close = difflib.get_close_matches(str(key), _fields_at(tuple(e["loc"])), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            found.append((loc, f"no such field (check the spelling{hint})", repr(e.get("input"))[:120]))
        elif e["type"] == "missing":
            found.append((loc, "a value (required field)", "nothing"))
        elif e["type"] in _STRICT_TYPES:
            found.append((loc, _STRICT_TYPES[e["type"]], repr(e.get("input"))[:120]))
        else:
            found.append((loc, msg, repr(e.get("input"))[:120]))
    return found


MAX_SPEC_BYTES = 1 << 20
"""A study file is a few kB; a larger one is refused before it is read."""
MAX_DEPTH = 64
"""Nesting depth of a study file (a spec nests 5 deep); 5,000 deep overflowed the YAML composer."""
MAX_NODES = 100_000
"""Values of a study file once aliases are expanded (a spec holds a few hundred): 9 levels of
aliases to 9 aliases each (the "billion laughs") expand to 387 million."""

_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge")}


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"


def _check_events(path: Path, text: str) -> None:
    """Nesting depth and the size after alias expansion, from the event stream: iterative (no
    recursion however deep), and no alias is expanded (an anchor's size is counted once, and an
    alias adds it)."""
    open_: list[list[Any]] = []  # per open collection: [values in it so far, its anchor]
    sizes: dict[str, int] = {}
    total = 0

    def refuse(ev: Any, expected: str, found: str) -> None:
        raise StudyError(path, [(_at(ev.start_mark), expected, found)])

    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                refuse(ev, f"at most {MAX_DEPTH} levels of nesting", f"more than {MAX_DEPTH} levels")
            open_.append([1, ev.anchor])
            total += 1
            continue
        if isinstance(ev, yaml.CollectionEndEvent):
            n, anchor = open_.pop()
        elif isinstance(ev, yaml.ScalarEvent):
            n, anchor = 1, ev.anchor
            total += 1
        elif isinstance(ev, yaml.AliasEvent):
            if any(a == ev.anchor for _, a in open_):
                refuse(ev, "no alias to a value that contains it", f"*{ev.anchor} inside &{ev.anchor} (a cycle)")
            n, anchor = sizes.get(ev.anchor, 1), None
            total += n
        else:
            continue
        if anchor is not None:
            sizes[anchor] = n
        if open_:
            open_[-1][0] += n
        if total > MAX_NODES:
            what = f" (the alias *{ev.anchor} adds {n:,})" if isinstance(ev, yaml.AliasEvent) else ""
            refuse(ev, f"at most {MAX_NODES:,} values with aliases expanded",
                   f"more than {MAX_NODES:,} values{what}")


def _check_nodes(path: Path, node: yaml.Node | None) -> None:
    """Refuse explicit tags (``!!python/object...``, ``!custom``) at the line of the tag itself, and a
    key given twice in a mapping (YAML keeps the last one silently). Each node is visited once: an
    alias is not walked again."""
    bad: list[tuple[str, str, str]] = []
    stack = [node] if node is not None else []
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.tag not in _PLAIN_TAGS:
            bad.append((_at(n.start_mark), "plain YAML values (no tags)",
                        f"the tag {n.tag.replace('tag:yaml.org,2002:', '!!')!r}"))
        if isinstance(n, yaml.MappingNode):
            keys: dict[tuple[str, str], yaml.Node] = {}
            for k, _ in n.value:
                if isinstance(k, yaml.ScalarNode):
                    first = keys.setdefault((k.tag, k.value), k)
                    if first is not k:
                        bad.append((_at(k.start_mark), "each key once in a mapping",
                                    f"the key {k.value!r} twice (lines {first.start_mark.line + 1} and "
                                    f"{k.start_mark.line + 1}; YAML would keep the last silently)"))
            stack.extend(x for kv in n.value for x in kv)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    if bad:
        raise StudyError(path, sorted(bad, key=lambda b: [int(x) for x in re.findall(r"\d+", b[0])]))


def _not_finite(raw: Any) -> list[tuple[str, str, str]]:
    """Every .inf / .nan in the document, with its field path (pydantic's lax floats accept them)."""
    found = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), raw)]
    seen: set[int] = set()
    while stack:
        loc, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            found.append((_loc(loc), "a finite number (not .inf or .nan)", repr(v)))
        elif isinstance(v, dict | list) and id(v) not in seen:
            seen.add(id(v))
            items = v.items() if isinstance(v, dict) else enumerate(v)
            stack.extend(((*loc, k), x) for k, x in items)
    return sorted(found)


def parse(path: str | Path) -> StudySpec:
    """Parse and validate a study file's structure; raises :class:`StudyError` with every problem.

    Before anything is expanded: the file's size, its nesting depth and its size with aliases
    expanded are capped (:data:`MAX_SPEC_BYTES`, :data:`MAX_DEPTH`, :data:`MAX_NODES`); tags and
    repeated keys are refused. Values are then validated strictly: ``true`` is not a number,
    ``"3"`` not an integer, ``.inf`` and ``.nan`` not a value."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(path, [("(file)", "an existing YAML file", "no such file")])
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise StudyError(path, [("(file)", "a readable file", f"{type(exc).__name__}: {exc.strerror or exc}")]) from None
    if len(data) > MAX_SPEC_BYTES:
        size_ = max(len(data), path.stat().st_size)
        raise StudyError(path, [("(file)", f"a study file of at most {MAX_SPEC_BYTES:,} bytes",
                                 f"{size_:,} bytes")])
    try:
        text = data.decode("utf-8")
        if "\x00" in text:
            raise StudyError(path, [("(file)", "YAML text", f"a NUL byte at offset {text.index(chr(0))}")])
        _check_events(path, text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_nodes(path, node)
        loader = yaml.SafeLoader("")
        try:
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise StudyError(path, [("(file)", "UTF-8 text", f"undecodable bytes at offset {exc.start}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise StudyError(path, [(_at(mark), "valid YAML", str(getattr(exc, "problem", exc)))]) from None
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else f"a {type(raw).__name__} ({repr(raw)[:60]})"
        raise StudyError(path, [("(top level)", "a mapping of study fields", found)])
    found = _not_finite(raw)
    try:
        spec = StudySpec.model_validate(raw, strict=True)
    except ValidationError as exc:
        found += [e for e in _errors(exc) if e[0] not in {f[0] for f in found}]
    if found:
        raise StudyError(path, found)
    return spec


def check_markets(spec: StudySpec, store: Store, path: str | Path) -> None:
    """Everything each pair needs from the store, before any compute: markets and @groups exist,
    the target is one market that is neither a source (a group member included) nor an
    intermediate of a chain, the backbone exists, the target is long enough for the horizon and
    folds, and every source and intermediate has enough history before the target's first test
    period (:func:`xfer.experiment.check.problems`)."""
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


MAX_CELLS = 10_000
"""Default cap on a study's cells (``--max-cells``): the largest shipped study has 56; a grid of a
million cells took a minute and gigabytes to validate before saying it would run for ~95 minutes."""
MAX_FITS = 100_000_000
"""Default cap on a study's target fits, cells x trials x seeds x folds (``--max-fits``)."""


def count_cells(spec: StudySpec) -> int:
    """The number of :func:`cells`, by arithmetic (no cell is built): per pair, one scratch cell per
    fraction, and one cell per path (direct + chains) x DANN setting x transfer strategy x fraction."""
    fractions, dann = len(spec.grid.fractions), len(spec.grid.dann)
    transfer = sum(1 for s in spec.grid.strategies if s != "scratch")
    return sum(fractions + (1 + len(p.chains)) * dann * transfer * fractions for p in spec.pairs)


def check_size(spec: StudySpec, path: str | Path, max_cells: int = MAX_CELLS, max_fits: int = MAX_FITS) -> None:
    """Refuse a study over the caps, from the spec's counts alone, before any cell is built."""
    n = count_cells(spec)
    fits = n * spec.search.trials_per_cell * spec.grid.seeds * spec.evaluation.folds
    found = []
    if n > max_cells:
        found.append(("grid", f"at most {max_cells:,} cells (raise the cap with --max-cells N)",
                      f"{n:,} cells ({len(spec.pairs)} pair(s), {sum(len(p.chains) for p in spec.pairs)} chain(s), "
                      f"{len(spec.grid.strategies)} strategy(ies), {len(spec.grid.fractions)} fraction(s), "
                      f"{len(spec.grid.dann)} DANN setting(s))"))
    if fits > max_fits:
        found.append(("grid", f"at most {max_fits:,} target fits (raise the cap with --max-fits N)",
                      f"{fits:,} fits ({n:,} cells x {spec.search.trials_per_cell} trial(s) x "
                      f"{spec.grid.seeds} seed(s) x {spec.evaluation.folds} fold(s))"))
    if found:
        raise StudyError(path, found)


def load(path: str | Path, store: Store | None = None, *, max_cells: int | None = None,
         max_fits: int | None = None) -> StudySpec:
    """Parse, validate and check a study file against the market catalog; with ``max_cells`` or
    ``max_fits``, first check its size against those caps (:func:`check_size`)."""
    spec = parse(path)
    if max_cells is not None or max_fits is not None:
        check_size(spec, path, MAX_CELLS if max_cells is None else max_cells,
                   MAX_FITS if max_fits is None else max_fits)
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
