"""The core (data, models, transfer, train, evaluate) runs without Ray, Optuna or W&B."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_core_imports_without_ray_optuna_wandb() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"ray", "optuna", "wandb"}:
                    raise ImportError(f"blocked: {name}")
                return None
        sys.meta_path.insert(0, Block())
        import xfer.data, xfer.models.backbones, xfer.transfer.strategies, xfer.transfer.dann
        import xfer.train.population, xfer.train.sequential, xfer.experiment.run
        import xfer.evaluate.metrics, xfer.evaluate.verdict, xfer.evaluate.importance, xfer.evaluate.domain
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {"ray", "optuna", "wandb"}))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok []"
