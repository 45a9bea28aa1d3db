"""Transferability pre-screen: rank candidate sources for a target before any fine-tuning.

Every statistic is computed on rows a transfer experiment may train on, never on its test
periods: the source's rows before the target's first test block (as :func:`prepare` cuts them)
and the target's training and validation rows of the first walk-forward fold. Both sides are
standardised on their own training rows, as the models see them.

Per candidate source (one market or a pooled ``@group``):

- ``energy``: the energy distance between the standardised feature distributions (0 when they
  are the same; Szekely & Rizzo), on evenly spaced subsamples of the training rows;
- ``coef_cos``: the cosine between the ridge coefficients of feature -> label fitted on each
  market alone (1: the same linear relationship, -1: the opposite one);
- ``zero_shot_r2``: the out-of-sample R^2 on the target's training rows of the ridge fitted on
  the source (what the source's relationship is worth on the target with no fitting at all);
- ``probe_acc``: the accuracy of a fresh classifier telling the two markets' feature rows apart,
  fitted on training rows and scored on validation rows (0.5: indistinguishable);
- ``source_skill``: the source ridge's R^2 on the source's own validation rows (a source with
  nothing to learn has nothing to transfer).

``score`` is the mean of the five ranks (1 = most promising on that statistic), and ``rank``
orders the candidates by it. Whether the screen predicts the measured transfer gain is an
empirical question: RESULTS.md reports its rank correlation with the gains of a pair study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from xfer.data.features import FeatureMatrix, build_features
from xfer.data.splits import make_folds, source_cut
from xfer.data.store import Store
from xfer.evaluate.domain import probe_accuracy

from .config import TransferConfig
from .prepare import make_domain

STATISTICS: dict[str, bool] = {
    "energy": False, "coef_cos": True, "zero_shot_r2": True, "probe_acc": False, "source_skill": True}
"""Each statistic and whether higher is more promising (``probe_acc`` is ranked by ``|acc - 0.5|``)."""

MAX_ROWS = 1500
"""Rows per side (evenly spaced in time) for the energy distance (pairwise distances: O(rows^2))
and the domain probe."""
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class Sides:
    """Standardised training and validation rows of the source and of the target."""

    src_fit: tuple[np.ndarray, np.ndarray]
    src_val: tuple[np.ndarray, np.ndarray]
    tgt_fit: tuple[np.ndarray, np.ndarray]
    tgt_val: tuple[np.ndarray, np.ndarray]
    features: list[str]


def _sides(cfg: TransferConfig, store: Store, features: dict[str, FeatureMatrix] | None = None) -> Sides:
    """The pair's rows, cut and standardised as :func:`prepare` does; ``features`` caches each
    market's feature matrix across candidates (built here when missing)."""
    features = {} if features is None else features
    sources = store.resolve(cfg.source)
    target = store.resolve([cfg.target])[0]
    if target in sources:
        raise ValueError(f"The target {target!r} cannot also be a source")
    for m in (*sources, target):
        if m not in features:
            features[m] = build_features(store.load(m).frame, cfg.target_type, cfg.h)
    tgt = features[target]
    cols = [c for c in tgt.feature_names if all(c in features[m].feature_names for m in sources)]
    split = cfg.target_split
    fold = make_folds(len(tgt.data), split)[0]
    cutoff = pd.Timestamp(tgt.data["date"].iloc[source_cut(len(tgt.data), split)])
    src = make_domain({m: features[m] for m in sources}, cols, cutoff, split.embargo,
                      cfg.source_val_share, window=1)
    sx, sy = src.data.x.numpy(), src.data.y.numpy()
    x = tgt.data[cols].to_numpy(np.float64)
    y = tgt.data["target"].to_numpy(np.float64)
    tr, va = slice(fold.train.start, fold.train.stop), slice(fold.val.start, fold.val.stop)
    mu, sd = x[tr].mean(0), x[tr].std(0)
    sd = np.where(sd > 0, sd, 1.0)
    ymu, ysd = y[tr].mean(), y[tr].std() or 1.0
    x, y = (x - mu) / sd, (y - ymu) / ysd
    s_tr, s_va = src.train.numpy(), src.val.numpy()
    return Sides((sx[s_tr], sy[s_tr]), (sx[s_va], sy[s_va]), (x[tr], y[tr]), (x[va], y[va]), cols)


def _even(a: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows of ``a``, evenly spaced in time (deterministic)."""
    return a if len(a) <= n else a[np.linspace(0, len(a) - 1, n).round().astype(int)]


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``2 E|A - B| - E|A - A'| - E|B - B'|`` (Euclidean), the V-statistic: 0 for identical samples,
    > 0 otherwise, and 0 in the population only when the distributions are equal."""
    ta, tb = torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(b, np.float64))
    ab = torch.cdist(ta, tb).mean()
    aa = torch.cdist(ta, ta).mean()
    bb = torch.cdist(tb, tb).mean()
    return float(2 * ab - aa - bb)


def ridge(x: np.ndarray, y: np.ndarray) -> object:
    """Ridge of ``y`` on ``x`` with the penalty chosen by leave-one-out CV (rows are standardised)."""
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Out-of-sample R^2 against the zero forecast (the rows are standardised on training rows)."""
    return float(1.0 - np.sum((y - pred) ** 2) / max(np.sum(y ** 2), 1e-12))


def statistics(sides: Sides) -> dict[str, float]:
    """The five statistics of one (source, target) pair."""
    (sx, sy), (vx, vy) = sides.src_fit, sides.src_val
    (tx, ty), (ux, _) = sides.tgt_fit, sides.tgt_val
    rs, rt = ridge(sx, sy), ridge(tx, ty)
    cs, ct = np.asarray(rs.coef_), np.asarray(rt.coef_)  # type: ignore[attr-defined]
    norm = float(np.linalg.norm(cs) * np.linalg.norm(ct))
    probe = probe_accuracy(*(torch.from_numpy(_even(a, MAX_ROWS)) for a in (sx, tx, vx, ux)))
    return {
        "energy": energy_distance(_even(sx, MAX_ROWS), _even(tx, MAX_ROWS)),
        "coef_cos": float(cs @ ct) / norm if norm > 0 else 0.0,
        "zero_shot_r2": r2(ty, rs.predict(tx)),  # type: ignore[attr-defined]
        "probe_acc": probe,
        "source_skill": r2(vy, rs.predict(vx)),  # type: ignore[attr-defined]
    }


def rank(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``rank_<statistic>`` (1 = most promising), ``score`` (their mean) and ``rank``; sorted."""
    out = table.copy()
    for name, higher in STATISTICS.items():
        value = (out[name] - 0.5).abs() if name == "probe_acc" else out[name]
        out[f"rank_{name}"] = value.rank(ascending=not higher, method="average")
    out["score"] = out[[f"rank_{n}" for n in STATISTICS]].mean(axis=1)
    out["rank"] = out["score"].rank(method="min").astype(int)
    return out.sort_values(["rank", "source"]).reset_index(drop=True)


def screen(sources: list[str], base: TransferConfig, store: Store) -> pd.DataFrame:
    """Rank ``sources`` (market ids or ``@groups``, each a candidate on its own) for ``base.target``.

    ``base`` supplies the target, task (target type, horizon) and split; its ``source`` is replaced
    by each candidate in turn. Raises ``ValueError`` for a candidate that cannot pair with the
    target (it is the target, or has too few rows before the target's test periods).
    """
    rows = []
    features: dict[str, FeatureMatrix] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is fastest, and far faster on a busy machine
    try:
        for s in sources:
            cfg = base.model_copy(update={"source": tuple(s.split(","))})  # "a,b": one multi-market candidate
            sides = _sides(cfg, store, features)
            rows.append({"source": s, "target": base.target, "n_source_rows": len(sides.src_fit[0]),
                         "n_target_rows": len(sides.tgt_fit[0]), "n_features": len(sides.features),
                         **statistics(sides)})
    finally:
        torch.set_num_threads(threads)
    return rank(pd.DataFrame(rows))
