"""Market data: store, import, embedded samples, synthetic markets, features, splits."""

from xfer.data.features import FAMILIES, FeatureMatrix, build_features, compute_features
from xfer.data.normalize import Standardizer
from xfer.data.splits import Fold, SplitSpec, make_folds
from xfer.data.store import Market, MarketInfo, Store

__all__ = [
    "FAMILIES",
    "FeatureMatrix",
    "Fold",
    "Market",
    "MarketInfo",
    "SplitSpec",
    "Standardizer",
    "Store",
    "build_features",
    "compute_features",
    "make_folds",
]
