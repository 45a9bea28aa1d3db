"""The GPU path on a CPU machine: device selection, and the spec's (fractional) GPUs per trial
reaching Ray Tune's resource request (several cells' populations then share one device)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from xfer.experiment.config import TransferConfig
from xfer.study import runner
from xfer.study.spec import StudySpec, cells

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


def test_cells_are_bundled_into_enough_trials_to_keep_every_worker_busy() -> None:
    spec = StudySpec.model_validate({
        "name": "b", "pairs": [{"source": "sp500", "target": "mtum"}, {"source": "@us_large_cap", "target": "wti"}],
        "grid": {"fractions": [0.05, 0.1, 0.2, 0.5, 1.0]}})
    pending = cells(spec)  # 2 pairs x 4 strategies x 5 fractions = 40 cells
    for workers in (1, 2, 5, 10, 64):
        bundles = runner.bundle_cells(pending, workers)
        assert sorted(i for b in bundles for i in b) == sorted(c.cell_id for c in pending)  # each cell once
        # enough trials for every worker, and none empty
        n_groups = len(runner.cell_units(sorted(pending, key=lambda c: -c.fraction)))  # 10: pair x fraction
        assert len(bundles) >= min(n_groups, runner.TRIALS_PER_WORKER * workers) and all(bundles)
        by_id = {c.cell_id: c for c in pending}
        for b in bundles:  # a bundle shares one preparation: same pair, chain and DANN setting
            assert len({(by_id[i].pair.pair_id, by_id[i].chain_id, by_id[i].dann) for i in b}) == 1
        units = runner.cell_units(sorted(pending, key=lambda c: -c.fraction))
        whole = {tuple(c.cell_id for c in u) for u in units}
        for b in bundles:  # a bundle is whole cell groups (one pair, chain, fraction: 4 strategies here)
            cut = [tuple(b[i:i + 4]) for i in range(0, len(b), 4)]
            assert all(u in whole for u in cut), b
        sizes = [len(b) for b in bundles]
        assert sizes[-workers:] == [4] * min(workers, len(sizes))  # the tail: one group per trial
        # guided: each bundle is at most its share of the cells left when it was cut (or one group)
        left = len(pending)
        for size in sizes:
            assert size <= max(4, -(-left // (runner.TRIALS_PER_WORKER * workers)))
            left -= size
    sizes = [len(b) for b in runner.bundle_cells(pending, 2)]  # 40 cells, 2 workers: 4 first, one group each
    assert sizes == [4] * 10
    assert runner._workers(spec.model_copy(update={"resources": spec.resources.model_copy(
        update={"cpus_per_trial": 1, "gpus_per_trial": 0.5, "max_concurrent": 3})}), {"CPU": 16, "GPU": 1}) == 2


def test_a_job_driver_combines_its_env_vars_with_the_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a Ray Job (a KubeRay RayJob sets XFER_HOME in its runtime_env), ray.init's env vars
    repeat the job's; Ray refuses that unless RAY_OVERRIDE_JOB_RUNTIME_ENV=1 (ray/_private/worker.py)."""
    import ray

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw, override=os.environ.get("RAY_OVERRIDE_JOB_RUNTIME_ENV")))
    monkeypatch.delenv("RAY_OVERRIDE_JOB_RUNTIME_ENV", raising=False)
    runner._start_ray({"XFER_HOME": "/shared/xfer"}, "10.0.0.5:6379")
    assert seen["override"] is None  # a plain driver: nothing changed
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"env_vars": {"XFER_HOME": "/shared/xfer"}}}')
    runner._start_ray({"XFER_HOME": "/shared/xfer"}, "10.0.0.5:6379")
    assert seen["override"] == "1" and seen["runtime_env"] == {"env_vars": {"XFER_HOME": "/shared/xfer"}}
