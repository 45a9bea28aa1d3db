"""The one place that talks to Ray Tune's reporting API, for the runner and the remote trials.

Ray's reporting API has moved between versions (``ray.tune.report`` with a checkpoint in Ray >=
2.40); :mod:`xfer.study.runner` and :mod:`xfer.study.remote` both report through here, so neither
imports the other for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def report(metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
    """The one place that talks to Ray's reporting API (``ray.tune.report`` in Ray >= 2.40).

    Never send Tune's reserved keys (``done`` ends the trial on the spot, before the cell
    has finished its W&B run). ``checkpoint``: a directory Tune persists to its storage and
    hands the driver (:class:`xfer.study.remote.Collector`).
    """
    from ray import tune

    assert not {"done", "training_iteration", "trial_id"} & set(metrics), metrics

    tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, bool, str))},
                checkpoint=tune.Checkpoint.from_directory(str(checkpoint)) if checkpoint is not None else None)
