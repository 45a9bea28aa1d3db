"""A study on a real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head
that schedules nothing and two 1-CPU worker nodes): trials land on both workers, and a worker node
removed mid-study costs only a retry: every expected fit is in the results exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.study.runner import run_study
from xfer.study.spec import StudySpec, cells

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = {"batch_size": 64, "steps_per_epoch": 4, "max_epochs": 3, "patience": 1, "eval_rows": 256}
SPEC = {
    "name": "multinode", "pairs": [{"source": "syn_shared_src", "target": "syn_shared_tgt"}],
    "grid": {"strategies": ["scratch", "head_only", "full"], "fractions": [0.3, 0.6, 1.0], "seeds": 2,
             "backbone": {"hidden": 16}},
    "search": {"trials_per_cell": 2, "batch_size": 2, "sampler": "random"},
    "evaluation": {"folds": 1, "importance_repeats": 0}, "train": TINY, "source": {"train": TINY},
    "tracking": {"mode": "disabled"}}


@pytest.fixture()
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head schedules, workers train
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    c.workers = workers
    try:
        yield c
    finally:
        c.shutdown()


def _run(cluster: Any, tmp_path: Path, address: str | None = "cluster") -> pd.DataFrame:
    home = tmp_path / "home"
    syn.write_set(Store(home), "shared", n_source=2000, n_target=1500, seed=0)
    spec_file = tmp_path / "multinode.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    os.environ["XFER_HOME"] = str(home)
    run = run_study(spec_file, study_dir=tmp_path / "study", store=Store(home),
                    address=cluster.address if address == "cluster" else address, report=False)
    return pd.read_parquet(run.study_dir / "results.parquet")


def _expected() -> set[tuple[str, int]]:
    spec = StudySpec.model_validate(SPEC)
    return {(c.cell_id, s) for c in cells(spec) for s in range(spec.grid.seeds)}


def _fits(res: pd.DataFrame) -> list[tuple[str, int]]:
    return list(zip(res["cell_id"], res["seed"], strict=True))


def test_trials_land_on_both_worker_nodes(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFER_HOME", str(tmp_path / "home"))
    res = _run(cluster, tmp_path)
    assert sorted(_fits(res)) == sorted(_expected())  # every fit once (one fold)
    workers = {w.node_id for w in cluster.workers}
    assert set(res["node_id"]) == workers, (set(res["node_id"]), workers)


def test_a_worker_node_lost_mid_study_costs_a_retry_not_a_fit(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second worker node is removed once the first cell has finished (from a Tune callback:
    ``remove_node`` must run in the driver's main thread); its trial fails and Tune retries it on
    the other worker. The results hold every expected fit exactly once."""
    from xfer.study import progress

    monkeypatch.setenv("XFER_HOME", str(tmp_path / "home"))
    real = progress.StudyProgress.on_trial_result
    removed: list[str] = []

    def kill_after_first(self: Any, iteration: int, trials: list, trial: Any, result: dict[str, Any], **kw: Any) -> None:
        real(self, iteration, trials, trial, result, **kw)
        if result.get("cell_finished") and not removed:
            victim = cluster.workers[1]
            removed.append(victim.node_id)
            cluster.remove_node(victim, allow_graceful=False)

    monkeypatch.setattr(progress.StudyProgress, "on_trial_result", kill_after_first)
    res = _run(cluster, tmp_path)
    assert removed, "no cell finished before the end"
    fits = _fits(res)
    assert len(fits) == len(set(fits)) and set(fits) == _expected()


def test_without_an_address_a_study_starts_its_own_ray_even_beside_a_cluster(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``--address``: a local instance of its own, even with RAY_ADDRESS pointing at a running
    cluster on this host (``ray.init()`` without an address would join that one)."""
    monkeypatch.setenv("XFER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    res = _run(cluster, tmp_path, address=None)
    assert sorted(_fits(res)) == sorted(_expected())
    assert not set(res["node_id"]) & {w.node_id for w in cluster.workers}
