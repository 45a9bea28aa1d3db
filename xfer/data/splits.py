"""Walk-forward time splits with an embargo, and the target-fraction rule.

For ``n`` model-ready rows (consecutive trading days, oldest first), with three folds::

    |------ train 0 ------| g |val 0| g |test 0| g |val 1| g |test 1| g |val 2| g |test 2|
    |--------------- train 1 ------------------|
    |------------------------------- train 2 ---------------------------|

The held-out tail is interleaved: every test block is preceded by its own validation window
(``val_share * n`` rows) and an embargo, so **no validation row lies in any fold's test
block**. Fold k validates on its own window and trains on everything that ends one embargo
before it (an expanding window: a later fold trains on earlier folds' test blocks, which is
what a walk-forward does). The test blocks together hold ``test_share * n`` rows. The
embargo is at least the label horizon, so no training label overlaps a validation or test
label. Every choice (early stopping, candidate selection, a study's best config) for fold k
reads fold k's validation window only, which ends before test block k and touches no test
row of any fold; each test block is read once.

Target fraction f keeps the most recent contiguous ``ceil(f * len(train))`` training rows:
a market that started trading later, never a random subsample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIN_TRAIN_ROWS = 20
"""Smallest training window a fraction may leave (a fit on fewer rows is meaningless)."""


class SplitSpec(BaseModel):
    """How a market's rows are split in time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_folds: int = Field(default=3, ge=1, le=50, description="Walk-forward test folds.")
    test_share: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Share of rows in the test blocks (all folds)."
    )
    val_share: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Validation rows of each fold, as a share of n."
    )
    embargo: int = Field(default=5, ge=0, description="Rows dropped between train/val/test.")
    horizon: int = Field(default=5, ge=1, description="Label horizon; the embargo must cover it.")

    @model_validator(mode="after")
    def _embargo_covers_horizon(self) -> SplitSpec:
        if self.embargo < self.horizon:
            raise ValueError(
                f"The 'embargo' field must be >= the label horizon ({self.horizon}). "
                f"Got {self.embargo} instead."
            )
        if self.test_share + self.n_folds * self.val_share >= 0.9:
            raise ValueError(
                "The 'test_share' + 'n_folds' x 'val_share' fields must leave at least 10% for "
                f"fold 0's training. Got {self.test_share} + {self.n_folds} x {self.val_share} "
                "instead."
            )
        return self

    def min_rows(self) -> int:
        """Fewest rows from which on every fold has train, val and test rows.

        Rounding makes fold 0's training length wobble by a row as ``n`` grows, so this uses
        a lower bound of that length (monotone in ``n``): every ``n >= min_rows()`` works.
        """

        def train_lower_bound(n: int) -> float:
            test_len = max(self.n_folds, n * self.test_share + 0.5)
            val_len = max(1.0, n * self.val_share + 0.5)
            return n - test_len - self.n_folds * (val_len + 2 * self.embargo)

        n = MIN_TRAIN_ROWS + self.n_folds * (2 * self.embargo + 2) + 1
        while train_lower_bound(n) < MIN_TRAIN_ROWS:
            n += 1
        return n


@dataclass(frozen=True)
class Fold:
    """Row ranges of one walk-forward fold (half-open, into the model-ready rows)."""

    index: int
    train: range
    val: range
    test: range

    def with_fraction(self, fraction: float) -> Fold:
        """Keep only the most recent contiguous ``fraction`` of the training window."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"The 'fraction' parameter must be in (0, 1]. Got {fraction} instead.")
        n = len(self.train)
        keep = min(n, max(MIN_TRAIN_ROWS, math.ceil(fraction * n - 1e-9)))
        return replace(self, train=range(self.train.stop - keep, self.train.stop))


def source_cut(n_rows: int, spec: SplitSpec) -> int:
    """Row of the target (of ``n_rows`` model-ready rows) before which every other market is cut:
    one embargo before the first test block, so no source or chain row shares a day with a test row."""
    return make_folds(n_rows, spec)[0].test.start - spec.embargo


def make_folds(n_rows: int, spec: SplitSpec) -> list[Fold]:
    """Interleaved walk-forward folds over ``n_rows`` rows; ValueError if there are too few."""
    if n_rows < spec.min_rows():
        raise ValueError(
            f"Too few rows for the splits asked for: need at least {spec.min_rows()} model-ready "
            f"rows for {spec.n_folds} fold(s) with test_share={spec.test_share}, "
            f"val_share={spec.val_share}, embargo={spec.embargo}. Got {n_rows} instead."
        )
    test_len = max(spec.n_folds, round(n_rows * spec.test_share))
    val_len = max(1, round(n_rows * spec.val_share))
    # test block sizes differ by at most one row; built from the end of the series backwards
    sizes = [(test_len * (k + 1)) // spec.n_folds - (test_len * k) // spec.n_folds
             for k in range(spec.n_folds)]
    folds: list[Fold] = []
    stop = n_rows
    for k in reversed(range(spec.n_folds)):
        test = range(stop - sizes[k], stop)
        val = range(test.start - spec.embargo - val_len, test.start - spec.embargo)
        train = range(0, val.start - spec.embargo)
        if len(train) < MIN_TRAIN_ROWS:
            raise ValueError(
                f"Fold {k} would train on {len(train)} rows; need at least {MIN_TRAIN_ROWS}."
            )
        folds.append(Fold(index=k, train=train, val=val, test=test))
        stop = val.start - spec.embargo
    return folds[::-1]


def scored_rows(folds: list[Fold]) -> set[int]:
    """Every row of every fold's test block: the rows no selection step may read."""
    return {i for f in folds for i in f.test}
