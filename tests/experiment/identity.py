"""The runs pinned by the identity snapshots (``tests/golden``), through public entry points only."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).parents[2]
VOLATILE = ("seconds", "xfer_version", "torch_version", "python_version", "node_id")
TABLES = ("results", "verdicts", "sizing")


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop run-specific columns; sort rows and columns so equal content compares equal."""
    f = frame.drop(columns=[c for c in frame.columns if c in VOLATILE or (c.startswith("time_") and c.endswith("_s"))])
    f = f[sorted(f.columns)]
    keys = [c for c in ("pair", "chain", "strategy", "fraction", "dann_weight", "seed", "fold") if c in f.columns]
    return f.sort_values(keys).reset_index(drop=True) if keys else f.reset_index(drop=True)


def run_quickstart(tmp: Path) -> dict[str, pd.DataFrame]:
    """The shipped quickstart study (W&B off: it does not change a number), run on Ray."""
    from xfer.data.store import Store
    from xfer.study.runner import run_study

    spec = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    spec["tracking"] = {"mode": "disabled"}
    path = tmp / "quickstart.yaml"
    path.write_text(yaml.safe_dump(spec))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    run = run_study(path, study_dir=tmp / "study", store=Store(tmp / "home"), report=False)
    return {name: canonical(pd.read_parquet(run.study_dir / f"{name}.parquet")) for name in TABLES}


def run_small_transfer(home: Path) -> pd.DataFrame:
    """One small ``xfer transfer`` experiment (in process): its per-fit table."""
    import torch

    from xfer.data.store import Store
    from xfer.experiment.run import TransferConfig, run_transfer

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = TransferConfig(source=("sp500",), target="wti", seeds=1, fractions=(0.2, 1.0), importance_repeats=1)
    return canonical(run_transfer(cfg, Store(home)).fits)
