"""Every shipped study runs end to end with --smoke (the CI guarantee that studies/ works), and
stops its Ray in the main thread before the tables (a shutdown in another thread while the main
thread frees Tune's object refs ends the process with exit 1: :func:`xfer.study.runner._stop_ray`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from xfer.data.store import Store
from xfer.hooks import default_hooks
from xfer.study.runner import run_study
from xfer.study.spec import cells, load

pytestmark = [pytest.mark.ray, pytest.mark.slow]
STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_smoke(path: Path, store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    import ray

    from xfer.study import results

    events: list[tuple[str, bool]] = []
    real_shutdown, real_tables = ray.shutdown, results.write_tables

    def shutdown(*a, **k):
        real_shutdown(*a, **k)
        events.append(("ray stopped", threading.current_thread() is threading.main_thread()))

    def write_tables(*a, **k):
        events.append(("tables", threading.current_thread() is threading.main_thread()))
        return real_tables(*a, **k)

    monkeypatch.setattr(ray, "shutdown", shutdown)
    monkeypatch.setattr(results, "write_tables", write_tables)
    run = run_study(path, study_dir=tmp_path / "out", smoke=True, store=Store(store_dir),
                    hooks=default_hooks())
    assert events == [("ray stopped", True), ("tables", True)], events
    spec = load(path).smoke()
    n_cells = len(cells(spec))
    res = pd.read_parquet(run.study_dir / "results.parquet")
    assert res["cell_id"].nunique() == n_cells
    assert len(res) == n_cells * spec.grid.seeds * spec.evaluation.folds
    v = pd.read_parquet(run.study_dir / "verdicts.parquet")
    assert set(v["verdict"]) <= {"baseline", "positive", "negative", "inconclusive"}
    assert len(v[v["strategy"] != "scratch"]) == n_cells - len(spec.pairs) * len(spec.grid.fractions)
    assert (run.study_dir / "report.html").is_file()
    if any(p.chains for p in spec.pairs) or True in spec.grid.dann:
        comp = pd.read_parquet(run.study_dir / "comparisons.parquet")
        assert len(comp) > 0
