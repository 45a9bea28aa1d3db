"""Driver-side live progress for Ray Tune: cells done / total, best validation so far, ETA.

Only validation is shown while a study runs: the test score is what the final tables report,
not something to chase while the study is still choosing.

Tune pickles callbacks into its experiment state, so this lives in an importable module and
keeps its console out of the pickled state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from rich.console import Console


class StudyProgress(Callback):
    def __init__(self, total: int, already: int, on_cell: Callable[[str], None] | None = None) -> None:
        """``on_cell``: called on the driver with each cell id as the cell finishes (the study
        directory's table reader reads its files then, while the other cells run)."""
        self.on_cell = on_cell
        self.total = total
        self.already = already
        self.done = already
        self.start = time.perf_counter()
        self.best: tuple[float, str] | None = None

    @property
    def console(self) -> Console:
        return Console(stderr=True, soft_wrap=True)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        if not result.get("cell_finished") or result.get("skipped"):
            return  # a search round, or a cell a retried trial found finished (counted when it finished)
        self.done += 1
        ran = self.done - self.already
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(ran, 1) * (self.total - self.done)
        cell = result.get("cell_id", "?")
        if self.on_cell is not None and cell != "?":
            self.on_cell(cell)
        val = float(result.get("val_score", float("nan")))
        if val == val and (self.best is None or val < self.best[0]):  # a loss: lower is better
            self.best = (val, cell)
        best = f"lowest val so far {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        self.console.print(
            f"[cells {self.done}/{self.total}] {cell}: val {val:.4f} | {best} | {elapsed:.0f}s elapsed, "
            f"ETA {eta:.0f}s", highlight=False, markup=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.console.print(f"cell(s) {', '.join(trial.config['cell_ids'])} failed; Tune retries the unfinished "
                           "ones, or `xfer study resume`", markup=False)
