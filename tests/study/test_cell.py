"""Cell-level guarantees: a resumed search does not replay configs; DANN fits reproduce alone."""

from __future__ import annotations

from pathlib import Path

import torch

from xfer.models.backbones import BackboneSpec, build_backbone
from xfer.study.cell import open_search
from xfer.study.spec import StudySpec, cells
from xfer.train.population import Data, Member, Population, TrainConfig
from xfer.transfer.dann import dann_task
from xfer.transfer.strategies import plan_for


def test_resumed_search_does_not_replay_configs(tmp_path: Path) -> None:
    spec = StudySpec.model_validate({
        "name": "s", "pairs": [{"source": "aapl", "target": "wti"}],
        "search": {"sampler": "random", "trials_per_cell": 4,
                   "space": {"scratch_lr": {"low": 1e-4, "high": 1e-2, "log": True}}}})
    cell = cells(spec)[0]
    first = open_search(spec, tmp_path, cell)
    for _ in range(2):
        t = first.ask()
        first.tell(t, t.suggest_float("scratch_lr", 1e-4, 1e-2, log=True))
    again = open_search(spec, tmp_path, cell)  # a new process resuming the cell
    for _ in range(2):
        t = again.ask()
        again.tell(t, t.suggest_float("scratch_lr", 1e-4, 1e-2, log=True))
    lrs = [t.params["scratch_lr"] for t in again.trials]
    assert len(again.trials) == 4 and len(set(lrs)) == 4


def test_dann_member_reproduces_in_a_smaller_population() -> None:
    torch.manual_seed(0)
    x = torch.randn(600, 5)
    data = Data(x, x[:, 0] + 0.1 * torch.randn(600))
    other = Data(torch.randn(600, 5) * 2, torch.zeros(600))
    bb = build_backbone(5, BackboneSpec(hidden=8))
    src = {k: v.detach().clone() for k, v in bb.named_parameters()}
    cfg = TrainConfig(batch_size=16, steps_per_epoch=5, max_epochs=3, patience=5)
    plan = plan_for("full", 3)
    ms = [Member(plan, 1e-3 * (i + 1), seed=1, train=range(0, 500), init=src, aux_weight=1.0) for i in range(3)]
    kw = {"aux": dann_task(other, range(0, 500), range(500, 600), main_is_target=True)}
    many = Population(bb, cfg).fit(ms, data, range(520, 600), **kw)
    alone = Population(bb, cfg).fit([ms[1]], data, range(520, 600), **kw)
    for k in alone[0].params:
        torch.testing.assert_close(many[1].params[k], alone[0].params[k])
