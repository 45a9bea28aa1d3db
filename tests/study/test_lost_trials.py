"""Trials the cluster loses run again in a new Tuner (``runner._tune``), trials whose own code
raised do not. On Ray 2.60 one lost node can end a trial for good whatever ``max_failures`` says
(its two pending calls fail together: the first requeues the trial, the second marks it errored);
CI saw `test_multinode`'s lost worker leave a cell unfinished that way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from xfer.study import runner
from xfer.study.spec import StudySpec

SPEC = StudySpec.model_validate({"name": "lost", "pairs": [{"source": "sp500", "target": "mtum"}],
                                 "resources": {"cpus_per_trial": 1}})


def _attempt(config: dict[str, Any]) -> int:
    """Count this bundle's attempts in a file of the study directory; return this one's number."""
    f = Path(config["study_dir"]) / ("attempts_" + "_".join(config["cell_ids"]))
    n = int(f.read_text()) + 1 if f.exists() else 1
    f.write_text(str(n))
    return n


def _trainable(config: dict[str, Any]) -> None:
    from xfer.study.tune_api import report

    n = _attempt(config)
    kind = config["cell_ids"][0]
    if kind == "dies_3_times" and n <= 3:
        os._exit(1)  # the worker process dies: Tune sees an actor error, as when a node is lost
    if kind == "raises":
        raise ValueError("a bug in the trial's own code")
    report({"finished": 1})


@pytest.mark.slow
@pytest.mark.ray
def test_a_trial_lost_beyond_tunes_retries_runs_again_and_one_that_raises_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=runner._private_temp_dir())
    try:
        results = runner._tune(_trainable, [["dies_3_times"], ["raises"], ["ok"]], tmp_path, tmp_path, SPEC,
                               "cells", "disabled", [])
    finally:
        ray.shutdown()
    attempts = {p.name.removeprefix("attempts_"): int(p.read_text()) for p in tmp_path.glob("attempts_*")}
    # Tune's own 1 + max_failures (2) attempts all died; a second Tuner ran it once more and it finished
    assert attempts == {"dies_3_times": 4, "raises": 3, "ok": 1}, attempts
    last = {r.config["cell_ids"][0]: r for r in results}
    assert set(last) == {"dies_3_times"} and last["dies_3_times"].error is None, last


class _Result:
    def __init__(self, bundle: list[str], error: BaseException | None) -> None:
        self.config, self.error, self.metrics = {"cell_ids": bundle}, error, {}


def test_rounds_are_bounded_and_cut_to_what_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake Tuner whose every trial is lost: the driver runs LOST_ROUNDS more Tuners, each with
    the lost bundles cut by ``unfinished`` (a bundle with nothing left is not run again)."""
    from ray import exceptions as rx
    from ray import tune

    runs: list[list[list[str]]] = []

    class Tuner:
        def __init__(self, trainable: Any, **kw: Any) -> None:
            self.bundles = kw["param_space"]["cell_ids"]["grid_search"]
            runs.append(self.bundles)

        def fit(self) -> list[_Result]:
            return [_Result(b, rx.ActorDiedError()) for b in self.bundles]

    monkeypatch.setattr(tune, "Tuner", Tuner)
    finished = {"a2", "b1", "b2"}
    runner._tune(lambda c: None, [["a1", "a2"], ["b1", "b2"]], tmp_path, tmp_path, SPEC, "cells", "disabled", [],
                 unfinished=lambda b: [c for c in b if c not in finished])
    assert runs == [[["a1", "a2"], ["b1", "b2"]]] + [[["a1"]]] * runner.LOST_ROUNDS


@pytest.mark.parametrize(("make", "lost"), [
    (lambda rx: rx.ActorDiedError(), True),
    (lambda rx: rx.ActorUnavailableError("gone", b"\0" * 16), True),
    (lambda rx: rx.NodeDiedError("node"), True),
    (lambda rx: rx.WorkerCrashedError(), True),
    (lambda rx: rx.RayTaskError("f", "tb", ValueError("bug")), False),
    (lambda rx: ValueError("bug"), False),
    (lambda rx: None, False),
])
def test_what_counts_as_lost_to_the_cluster(make: Any, lost: bool) -> None:
    from ray import exceptions as rx

    assert runner._lost_to_the_cluster(make(rx)) is lost
