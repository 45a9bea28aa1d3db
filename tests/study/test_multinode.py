"""A study on a real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head
that schedules nothing and two 1-CPU worker nodes): trials land on both workers, a worker node
removed mid-study costs only a retry, and a driver SIGKILLed mid-study is finished by `xfer study
resume` without recomputing a finished cell: every expected fit is in the results exactly once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
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


def _expected(raw: dict[str, Any] = SPEC) -> set[tuple[str, int]]:
    spec = StudySpec.model_validate(raw)
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


KILL_SPEC = {**SPEC, "name": "killed",
             "grid": {**SPEC["grid"], "strategies": ["scratch", "head_only"], "fractions": [0.3, 1.0], "seeds": 1}}
"""4 cells on 2 workers: the driver dies with one written and one mid-search."""
AGENTS_AND_IDLE = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _busy_workers(cluster: Any) -> list[str]:
    """Titles of the worker processes on the cluster's nodes that run something (the node's agents
    and idle workers do not): a killed driver's trials are gone once this is empty."""
    busy = []
    for node in [cluster.head_node, *cluster.worker_nodes]:
        for info in node.all_processes.get("raylet", []):
            with contextlib.suppress(psutil.Error):
                for p in psutil.Process(info.process.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        title = " ".join(p.cmdline())
                        if title.startswith("ray::") and not title.startswith(AGENTS_AND_IDLE):
                            busy.append(title)
    return busy


def _done_cells(sd: Path) -> dict[str, tuple[int, str]]:
    """Each finished cell's results file: (mtime in ns, content hash)."""
    return {p.stem: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted((sd / "cells").glob("*.parquet"))}


def test_a_driver_killed_mid_study_is_resumed_without_recomputing_finished_cells(
        cluster: Any, tmp_path: Path) -> None:
    """`xfer study run --address HEAD` SIGKILLed once a cell (not all) is written; `xfer study resume
    DIR --address HEAD` runs exactly the others, leaves the finished cells' files as they were, and
    the results hold every expected fit exactly once."""
    home = tmp_path / "home"
    syn.write_set(Store(home), "shared", n_source=2000, n_target=1500, seed=0)
    spec_file = tmp_path / "multinode.yaml"
    spec_file.write_text(yaml.safe_dump(KILL_SPEC))
    env = {**os.environ, "XFER_HOME": str(home), "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    xfer = [sys.executable, "-m", "xfer.cli", "study"]
    sd = tmp_path / "study"
    total = len(cells(StudySpec.model_validate(KILL_SPEC)))
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen([*xfer, "run", str(spec_file), "--out", str(sd), "--address", cluster.address],
                                env=env, start_new_session=True, stdout=log, stderr=log)
    family: set[int] = set()
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                family |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if list((sd / "cells").glob("*.parquet")):
                break
            time.sleep(0.05)
    finally:
        for pid in [proc.pid, *family]:  # the driver and whatever it started (the cluster's are not its)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # the dead driver's trials are killed by the cluster; wait for them before taking stock
    deadline = time.time() + 60
    while _busy_workers(cluster) and time.time() < deadline:
        time.sleep(0.2)
    assert not _busy_workers(cluster), _busy_workers(cluster)
    before = _done_cells(sd)
    assert 1 <= len(before) < total, (len(before), (tmp_path / "killed.log").read_text()[-3000:])
    assert not (sd / "results.parquet").exists()

    res = subprocess.run([*xfer, "resume", str(sd), "--address", cluster.address], env=env, capture_output=True,
                         text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    after = _done_cells(sd)
    assert {k: after[k] for k in before} == before  # finished cells untouched: same files, same times
    ran = json.loads((sd / "profile.json").read_text())["cell_ids"]
    assert sorted(ran) == sorted(set(after) - set(before)) and len(after) == total
    fits = _fits(pd.read_parquet(sd / "results.parquet"))
    assert len(fits) == len(set(fits)) and set(fits) == _expected(KILL_SPEC)
