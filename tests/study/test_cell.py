"""Cell-level guarantees: DANN fits reproduce alone (resume: tests/study/test_resume.py)."""

from __future__ import annotations

import torch

from xfer.models.backbones import BackboneSpec, build_backbone
from xfer.train.population import Data, Member, Population, TrainConfig
from xfer.transfer.dann import dann_task
from xfer.transfer.strategies import plan_for


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
