"""Standardisation fitted on a training window only.

Statistics and clipping bounds come from the rows a model is trained on, in the domain they
are applied to (design.md, Data rules). Fitting them on the whole series would leak the
test period's level and scale into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardizer:
    """Per-column z-score with clipping, fitted on training rows."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = 5.0

    @classmethod
    def fit(cls, x: np.ndarray, clip: float = 5.0) -> Standardizer:
        """Fit on ``x`` (rows x columns, or a 1-D label vector)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] < 2:
            raise ValueError(f"Standardizer.fit needs at least 2 rows. Got {x.shape[0]} instead.")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)  # a constant column maps to 0, not inf
        return cls(mean=mean, std=std, clip=clip)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean
