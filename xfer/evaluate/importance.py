"""Permutation importance per feature family, and metrics per volatility regime.

Importance answers "what does the model rest on": shuffle all columns of one family
together across the test rows (breaking their link to the label while keeping their
joint distribution) and measure how much the primary metric drops. Comparing the
transferred and the scratch model shows whether transfer rests on universal families
(volatility, mean reversion) or on memorised target idiosyncrasies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch


def permutation_importance(
    predict: Callable[[torch.Tensor], np.ndarray],
    x: torch.Tensor,
    rows: torch.Tensor,
    score: Callable[[np.ndarray], float],
    families: Mapping[str, Sequence[int]],
    *,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Mean drop in ``score`` when a family's columns are permuted over ``rows``.

    ``predict(x)`` returns predictions for ``rows`` from a full feature tensor ``x`` (so
    sequence models see permuted windows too); ``score(pred)`` is higher-is-better.
    """
    base = score(predict(x))
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for fam, cols in families.items():
        drops = []
        for _ in range(repeats):
            xp = x.clone()
            perm = rows[torch.randperm(len(rows), generator=gen)]
            idx = torch.as_tensor(list(cols))
            xp[rows.unsqueeze(1), idx] = x[perm.unsqueeze(1), idx]
            drops.append(base - score(predict(xp)))
        out[fam] = float(np.mean(drops))
    return out


def regime_masks(trailing_vol: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """High / low volatility regime of each test row, split at a training-window threshold."""
    high = np.asarray(trailing_vol) > threshold
    return {"high_vol": high, "low_vol": ~high}
