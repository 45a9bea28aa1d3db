"""The GPU path on a CPU machine: device selection, and the spec's (fractional) GPUs per trial
reaching Ray Tune's resource request (several cells' populations then share one device)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from xfer.experiment.config import TransferConfig
from xfer.study import runner
from xfer.study.spec import StudySpec

pytestmark = pytest.mark.ray


def test_gpus_per_trial_reach_tunes_resource_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import tune

    seen: dict[str, Any] = {}

    class Tuner:
        def __init__(self, trainable: Any, **kw: Any) -> None:
            seen["resources"] = trainable._resources.bundles
            seen["concurrent"] = kw["tune_config"].max_concurrent_trials

        def fit(self) -> None:
            return None

    monkeypatch.setattr(tune, "Tuner", Tuner)
    spec = StudySpec.model_validate({"name": "gpu", "pairs": [{"source": "sp500", "target": "mtum"}],
                                     "resources": {"cpus_per_trial": 2, "gpus_per_trial": 0.25, "max_concurrent": 8}})
    runner._tune(lambda c: None, ["a"], tmp_path, tmp_path, spec, "cells", "disabled", [])
    assert seen == {"resources": [{"CPU": 2.0, "GPU": 0.25}], "concurrent": 8}


@pytest.mark.parametrize(("device", "cuda", "expected"), [
    ("auto", False, "cpu"), ("auto", True, "cuda"), ("cpu", True, "cpu"), ("cuda", False, "cuda")])
def test_device_selection(device: str, cuda: bool, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cfg = TransferConfig(source=("sp500",), target="mtum", device=device)
    assert cfg.torch_device.type == expected
