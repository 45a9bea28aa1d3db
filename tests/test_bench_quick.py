"""scripts/bench.py --quick: the three ways (naive per-fit Tune, tuned per-fit Tune, xfer study
run) train the same fits and agree on the test metric; its last three lines keep their format."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # tiers: `pytest -m "not slow"` is the quick one (README)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_bench_quick_agrees(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "RAY_AUTH_MODE": "disabled",
           "XFER_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.fullmatch(r"xfer vs tuned per-fit: \d+\.\dx \(vs naive: \d+\.\dx\)", out[-3]), out[-3]
    assert re.fullmatch(r"metrics agree: yes \(max gap \S+\)", out[-2]), out[-2]
    assert re.fullmatch(r"training step: \d+\.\d GFLOP/s = \d+% of the measured GEMM rate \(\d+\.\d GFLOP/s\)",
                        out[-1]), out[-1]
    assert "= 8 fits" in proc.stdout
