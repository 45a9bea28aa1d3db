"""Population training equals one-at-a-time training with torch.optim.AdamW."""

from __future__ import annotations

import pytest
import torch

from xfer.models.backbones import BACKBONES, BackboneSpec, build_backbone
from xfer.train.population import Data, Member, Population, TrainConfig
from xfer.train.sequential import train_one
from xfer.transfer.strategies import STRATEGIES, plan_for

STRATS = sorted(STRATEGIES)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_population_equals_sequential(backbone: str) -> None:
    torch.manual_seed(0)
    n, f = 1500, 8
    x = torch.randn(n, f)
    y = 0.5 * x[:, 0] - 0.3 * x[:, 1] ** 2 + 0.3 * torch.randn(n)
    data = Data(x, y)
    bb = build_backbone(f, BackboneSpec(name=backbone, hidden=16, depth=2, window=6))
    src = {k: v.detach().clone() + 0.05 for k, v in bb.named_parameters()}
    cfg = TrainConfig(batch_size=32, steps_per_epoch=8, max_epochs=12, patience=3)
    members = [
        Member(plan_for(s, 3, {"gradual_every": 1}), lr=3e-3 * (1 + i % 3), seed=i,
               train=range(50 + 100 * i, 1100), init=src, weight_decay=1e-3 * (i % 2))
        for i, s in enumerate(STRATS)
    ]
    pop = Population(bb, cfg).fit(members, data, range(1150, 1400))
    for m, p in zip(members, pop, strict=True):
        s = train_one(bb, m, data, range(1150, 1400), cfg)
        assert p.epochs == s.epochs and p.best_epoch == s.best_epoch
        assert p.best_val == pytest.approx(s.best_val, rel=1e-4)
        for k in s.params:
            torch.testing.assert_close(p.params[k], s.params[k], atol=2e-5, rtol=1e-4)


def test_members_differ_by_fraction_and_seed() -> None:
    """Per-member data subsets really are per member: a member on fewer rows fits differently."""
    torch.manual_seed(1)
    x = torch.randn(800, 4)
    data = Data(x, x[:, 0] + 0.1 * torch.randn(800))
    bb = build_backbone(4, BackboneSpec(hidden=8))
    plan = plan_for("scratch", 3)
    cfg = TrainConfig(batch_size=16, steps_per_epoch=5, max_epochs=4, patience=5)
    a, b, c = Population(bb, cfg).fit(
        [Member(plan, 1e-2, 0, range(0, 600)), Member(plan, 1e-2, 0, range(580, 600)),
         Member(plan, 1e-2, 1, range(0, 600))], data, range(650, 800))
    assert not torch.equal(a.params["head.weight"], b.params["head.weight"])
    assert not torch.equal(a.params["head.weight"], c.params["head.weight"])


@pytest.mark.slow
def test_a_fit_does_not_depend_on_its_population() -> None:
    """Members stop at different steps; the stopped ones leave the population (compaction).
    Compaction changes no bit of any fit (the same population without it), and each member's fit
    equals the same member trained alone (float rounding of differently shaped batched kernels:
    ~1e-8 relative) with the same stopping step."""
    torch.manual_seed(2)
    n, f = 1200, 6
    x = torch.randn(n, f)
    data = Data(x, 0.4 * x[:, 0] - 0.2 * x[:, 2] + 0.3 * torch.randn(n))
    bb = build_backbone(f, BackboneSpec(hidden=16, depth=2))
    cfg = TrainConfig(batch_size=32, steps_per_epoch=5, max_epochs=400, patience=2, min_patience_steps=5)
    members = [Member(plan_for("scratch", 3), lr=lr, seed=i, train=range(0, 900), weight_decay=1e-3)
               for i, lr in enumerate((3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-5))]
    together = Population(bb, cfg).fit(members, data, range(950, 1150))
    assert sorted(r.epochs for r in together)[-1] > sorted(r.epochs for r in together)[-2]  # one trains alone
    assert len({r.epochs for r in together}) >= 3, [r.epochs for r in together]  # they stop apart
    masked = Population(bb, cfg)
    masked.compact = False
    for r, u in zip(together, masked.fit(members, data, range(950, 1150)), strict=True):
        assert (r.best_val, r.best_step, r.epochs, r.val_curve) == (u.best_val, u.best_step, u.epochs, u.val_curve)
        for k in u.params:
            assert torch.equal(r.params[k], u.params[k]), k
    for m, r in zip(members, together, strict=True):
        (alone,) = Population(bb, cfg).fit([m], data, range(950, 1150))
        assert (r.best_step, r.epochs) == (alone.best_step, alone.epochs)
        assert r.best_val == pytest.approx(alone.best_val, rel=1e-6)
        for k in alone.params:
            torch.testing.assert_close(r.params[k], alone.params[k], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "gelu", "silu"])
def test_direct_mlp_step_equals_vmap(activation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An MLP without dropout trains with its own batched forward/backward (``stacked_grads``, L2-SP
    as its gradient); the same fits through the generic vmap + autograd path agree to rounding."""
    torch.manual_seed(3)
    n, f = 900, 5
    x = torch.randn(n, f)
    data = Data(x, 0.5 * x[:, 0] - 0.3 * x[:, 1] ** 2 + 0.3 * torch.randn(n))
    bb = build_backbone(f, BackboneSpec(hidden=16, depth=2, activation=activation))
    assert bb.stacked
    src = {k: v.detach().clone() + 0.05 for k, v in bb.named_parameters()}
    cfg = TrainConfig(batch_size=32, steps_per_epoch=6, max_epochs=6, patience=3)
    members = [Member(plan_for(s, 3, {"gradual_every": 1}), lr=3e-3, seed=i, train=range(0, 700), init=src,
                      weight_decay=1e-3) for i, s in enumerate(("scratch", "l2sp", "gradual", "head_only"))]
    direct = Population(bb, cfg).fit(members, data, range(750, 900))
    monkeypatch.setattr(type(bb), "stacked", False)
    for d, v in zip(direct, Population(bb, cfg).fit(members, data, range(750, 900)), strict=True):
        assert (d.epochs, d.best_step) == (v.epochs, v.best_step)
        assert d.best_val == pytest.approx(v.best_val, rel=1e-5)
        for k in v.params:
            torch.testing.assert_close(d.params[k], v.params[k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shapes", [{"a": (8, 8), "b": (64,)}, {"a": (5,), "b": (3, 7)}])
def test_flat_layout_round_trip(shapes: dict[str, tuple[int, ...]]) -> None:
    """The flat buffer's views are the stacked parameters; dropping members keeps the others'
    values; each member's share is padded to the alignment (or not at all when it fits)."""
    from xfer.train.population import _Layout

    P = 3
    params = {k: torch.randn(P, *s) for k, s in shapes.items()}
    lay = _Layout(params, P)
    assert sum(lay.sizes) % _Layout.ALIGN == 0
    flat = lay.pack(params)
    assert all(torch.equal(v, params[k]) for k, v in lay.views(flat).items())
    keep = torch.tensor([True, False, True])
    sub = lay.subset(2).views(lay.take(flat, keep))
    assert all(torch.equal(v, params[k][keep]) for k, v in sub.items())


def test_chunks_change_no_bit_of_any_fit() -> None:
    """On a CPU a large population trains in chunks (``Population.cpu_chunk``): 13 members in
    chunks of at most 4 (4 chunks: 4, 3, 3, 3) give exactly the fits of one population of 13."""
    from xfer.train.population import _chunks

    assert [len(c) for c in _chunks(list(range(13)), 4)] == [4, 3, 3, 3]
    assert [len(c) for c in _chunks(list(range(5)), 4)] == [3, 2]  # never a chunk of one
    assert [len(c) for c in _chunks(list(range(48)), 12)] == [12] * 4
    torch.manual_seed(3)
    x = torch.randn(700, 5)
    data = Data(x, 0.5 * x[:, 1] + 0.3 * torch.randn(700))
    bb = build_backbone(5, BackboneSpec(hidden=8))
    cfg = TrainConfig(batch_size=16, steps_per_epoch=4, max_epochs=6, patience=2)
    members = [Member(plan_for("scratch", 3), lr=10 ** -(1 + i % 3), seed=i, train=range(0, 500)) for i in range(13)]
    whole, chunked = Population(bb, cfg), Population(bb, cfg)
    whole.cpu_chunk, chunked.cpu_chunk = 100, 4
    for a, b in zip(whole.fit(members, data, range(550, 700)), chunked.fit(members, data, range(550, 700)), strict=True):
        assert (a.best_val, a.best_step, a.epochs, a.val_curve) == (b.best_val, b.best_step, b.epochs, b.val_curve)
        for k in a.params:
            assert torch.equal(a.params[k], b.params[k]), k
