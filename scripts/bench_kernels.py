"""Where the training step's time goes, kernel by kernel (issue 23's measurements, one thread).

    python scripts/bench_kernels.py activations          # forward + backward of each activation
    python scripts/bench_kernels.py population 12 24 48  # marginal step time against population size

``activations``: per (12 members x 256 rows x 64 units) layer, the fastest of 5 loops of 300 calls
of each activation's forward and of the backward the population trainer calls
(``xfer.models.backbones._ACT_BACKWARD``). ``population``: the default MLP (17 features, 2 x 64)
trained as one population of P members (chunking off), fits of 100 and 300 steps timed ``--rounds``
times interleaved across P, the fastest kept (noise on a shared host only adds time); the share
is of a 2048 x 2048 float32 product on the same thread. Output goes to stdout; quote ratios from
one run, the absolute figures move with the host's load.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from bench import (  # scripts/bench.py: the FLOP count and GEMM reference it quotes
    gemm_rate,
    step_flops,
)

from xfer.models.backbones import MLP, BackboneSpec
from xfer.train.population import Population
from xfer.train.types import Data, Member, TrainConfig
from xfer.transfer.strategies import plan_for


def _best_us(f, n: int = 300) -> float:  # type: ignore[no-untyped-def]
    f()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def activations() -> None:
    a = torch.ops.aten
    z, g = torch.randn(12, 256, 64), torch.randn(12, 256, 64)
    h = F.relu(z)
    cases = {
        "gelu (exact)": (lambda: F.gelu(z), lambda: a.gelu_backward(g, z)),
        "gelu (tanh)": (lambda: F.gelu(z, approximate="tanh"), lambda: a.gelu_backward(g, z, approximate="tanh")),
        "leaky_relu": (lambda: F.leaky_relu(z, 0.01), lambda: a.leaky_relu_backward(g, z, 0.01, False)),
        "relu": (lambda: F.relu(z), lambda: a.threshold_backward(g, h, 0)),
        "silu": (lambda: F.silu(z), lambda: a.silu_backward(g, z)),
        "hardswish": (lambda: F.hardswish(z), lambda: a.hardswish_backward(g, z)),
    }
    for name, (fwd, bwd) in cases.items():
        print(f"{name:14s} forward {_best_us(fwd):7.1f} us  backward {_best_us(bwd):7.1f} us")


def population(sizes: list[int], rounds: int) -> None:
    torch.manual_seed(0)
    n_features = 17
    data = Data(torch.randn(4000, n_features), torch.randn(4000))
    bb = MLP(n_features, BackboneSpec())

    def fit(p: int, epochs: int) -> float:
        pop = [Member(plan_for("scratch", 3), lr=1e-3, seed=i + 1, train=range(0, 3000)) for i in range(p)]
        cfg = TrainConfig(batch_size=256, steps_per_epoch=50, max_epochs=epochs, patience=10**6, pass_epochs=False,
                          eval_rows=16)
        trainer = Population(bb, cfg)
        trainer.cpu_chunk = 10**6  # one population of p: the size is what is measured
        t = time.perf_counter()
        trainer.fit(pop, data, range(3000, 3500))
        return time.perf_counter() - t

    best = {(p, e): float("inf") for p in sizes for e in (2, 6)}
    for p in sizes:
        fit(p, 1)
    for _ in range(rounds):
        for p in sizes:
            for e in (2, 6):
                best[(p, e)] = min(best[(p, e)], fit(p, e))
    gemm = gemm_rate(1, reps=10)
    for p in sizes:
        ms = (best[(p, 6)] - best[(p, 2)]) / 200 * 1e3
        rate = step_flops(bb, p, 256) / ms / 1e6
        print(f"{p:4d} members: {ms:7.2f} ms/step, {ms / p:.3f} ms per member-step, {rate:5.1f} GFLOP/s = "
              f"{100 * rate / gemm:3.0f}% of GEMM ({gemm:.1f} GFLOP/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["activations", "population"])
    ap.add_argument("sizes", nargs="*", type=int, default=[12, 24, 48, 96])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.what == "activations":
        activations()
    else:
        population(args.sizes, args.rounds)


if __name__ == "__main__":
    main()
