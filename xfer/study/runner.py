"""Run a study on Ray Tune: a local Ray instance by default, or a cluster with ``address``.

Two phases, each one Tuner over a grid of trials:

1. *sources*: one trial per distinct (pair, chain, DANN) that a pending cell needs; it
   pre-trains the source (and chain stages) per seed into the on-disk cache, so every
   cell after it loads the same weights instead of training its own;
2. *cells*: one trial per pending cell; inside it Optuna asks for a batch of configs and
   the batch x seeds x folds trains as populations (:mod:`xfer.study.cell`).

The study directory is the state: a cell is done when ``cells/<id>.parquet`` exists, so
``resume`` runs exactly the missing cells, and Optuna's journal continues a cell's search.
Ray's reporting API has moved between versions; everything goes through :func:`_report`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from xfer.data.store import Store
from xfer.study import results as R
from xfer.study.spec import Cell, StudySpec, cells, load, transfer_config

SPEC_FILE = "spec.json"


# ----------------------------------------------------------------------- Ray adapter


def _report(metrics: dict[str, Any]) -> None:
    """The one place that talks to Ray's reporting API (``ray.tune.report`` in Ray >= 2.40).

    Never send Tune's reserved keys (``done`` ends the trial on the spot, before the cell
    has finished its W&B run).
    """
    from ray import tune

    assert not {"done", "training_iteration", "trial_id"} & set(metrics), metrics

    tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, bool, str))})


def _load_spec(study_dir: Path) -> StudySpec:
    return StudySpec.model_validate_json((study_dir / SPEC_FILE).read_text())


def sources_trainable(config: dict[str, Any]) -> None:
    """Phase 1 trial: pre-train (or load) the source and chain stages of one cell group."""
    import torch

    from xfer.transfer.run import prepare

    torch.set_num_threads(max(1, int(config["cpus"])))
    spec = _load_spec(Path(config["study_dir"]))
    cell = {c.cell_id: c for c in cells(spec)}[config["cell_id"]]
    t = time.perf_counter()
    prepare(transfer_config(spec, cell), Store(config["store_root"]))
    _report({"seconds": time.perf_counter() - t, "sources_ready": True})


def cell_trainable(config: dict[str, Any]) -> None:
    """Phase 2 trial: one cell, tracked as one W&B run."""
    import torch

    from xfer.study.cell import run_cell
    from xfer.tracking.wandb_log import CellRun

    torch.manual_seed(0)  # reused actors keep module state: every trial starts from the same seed
    torch.set_num_threads(max(1, int(config["cpus"])))
    study_dir = Path(config["study_dir"])
    spec = _load_spec(study_dir)
    cell = {c.cell_id: c for c in cells(spec)}[config["cell_id"]]
    tracker = None
    if config["wandb_mode"] != "disabled" and not (study_dir / "cells" / f"{cell.cell_id}.parquet").exists():
        tracker = CellRun(
            study_dir, project=spec.tracking.project, entity=spec.tracking.entity, mode=config["wandb_mode"],
            group=spec.name, name=cell.cell_id, job_type="cell",
            config={"cell_id": cell.cell_id, "pair": cell.pair.pair_id, "chain": cell.chain_id,
                    "dann": cell.dann, "strategy": cell.strategy, "fraction": cell.fraction,
                    "transfer": json.loads(transfer_config(spec, cell).model_dump_json()),
                    "search": json.loads(spec.search.model_dump_json())},
        )
    run_cell(spec, study_dir, cell.cell_id, Store(config["store_root"]), report=_report, tracker=tracker)


# ----------------------------------------------------------------------- driver


@dataclass
class StudyRun:
    study_dir: Path
    cells_total: int
    cells_run: int
    seconds: float
    tables: dict[str, Any]


def default_dir(spec: StudySpec, store: Store) -> Path:
    return store.root / "studies" / spec.name


def _tune(trainable: Any, cell_ids: list[str], study_dir: Path, store_root: Path, spec: StudySpec,
          name: str, wandb_mode: str, callbacks: list[Any]) -> Any:
    from ray import tune

    res = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(trainable, res),
        param_space={"cell_id": tune.grid_search(cell_ids), "study_dir": str(study_dir),
                     "store_root": str(store_root), "cpus": spec.resources.cpus_per_trial,
                     "wandb_mode": wandb_mode},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=spec.resources.max_concurrent),
        run_config=tune.RunConfig(
            name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(study_dir / "ray"),
            failure_config=tune.FailureConfig(max_failures=2), verbose=0, callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    return tuner.fit()


def run_study(spec_path: str | Path | None = None, *, study_dir: Path | None = None, store: Store | None = None,
              address: str | None = None, smoke: bool = False, console: Console | None = None,
              report: bool = True) -> StudyRun:
    """Run (or resume, with ``study_dir`` of an existing study and no ``spec_path``) a study."""
    # Quiet Ray: the legacy reporter honours verbose=0 (the new one still prints a banner).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import logging

    import ray

    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)

    from xfer.study.progress import StudyProgress
    from xfer.tracking.wandb_log import log_study_summary, resolve_mode
    from xfer.tracking.wandb_log import shutdown as shutdown_wandb

    console = console or Console(stderr=True)
    st = store or Store()
    t0 = time.perf_counter()
    if spec_path is not None:
        spec = load(spec_path, st)
        if smoke:
            spec = spec.smoke()
        sd = Path(study_dir or spec.storage or default_dir(spec, st)).expanduser().resolve()
        if (sd / SPEC_FILE).exists():
            old = _load_spec(sd)
            if old != spec:
                raise FileExistsError(
                    f"{sd} holds a different study ({old.name}); use `xfer study resume {sd}` or another --out")
        sd.mkdir(parents=True, exist_ok=True)
        if not (sd / "study.yaml").exists():
            shutil.copyfile(spec_path, sd / "study.yaml")
        tmp = sd / f".{SPEC_FILE}.tmp"
        tmp.write_text(spec.model_dump_json(indent=2))
        tmp.replace(sd / SPEC_FILE)
    else:
        if study_dir is None or not (Path(study_dir) / SPEC_FILE).is_file():
            raise FileNotFoundError(f"{study_dir}: not a study directory (no {SPEC_FILE})")
        sd = Path(study_dir).expanduser().resolve()
        spec = _load_spec(sd)
    all_cells = cells(spec)
    pending = [c for c in all_cells if not (sd / "cells" / f"{c.cell_id}.parquet").exists()]
    console.print(f"study {spec.name}: {len(all_cells)} cells, {len(all_cells) - len(pending)} done, "
                  f"{len(pending)} to run -> {sd}", highlight=False)
    mode = resolve_mode(None if spec.tracking.mode == "auto" else spec.tracking.mode)
    os.environ["WANDB_MODE"] = mode if mode != "disabled" else "disabled"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["XFER_HOME"] = str(st.root)
    # wandb stages table artifacts and its debug log outside the run dir; keep them in the study
    os.environ["WANDB_DATA_DIR"] = str(sd / "wandb" / "data")
    os.environ["WANDB_CACHE_DIR"] = str(sd / "wandb" / "cache")
    started_ray = False
    if pending:
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in ("WANDB_MODE", "WANDB_SILENT", "XFER_HOME", "WANDB_API_KEY",
                                              "WANDB_DATA_DIR", "WANDB_CACHE_DIR") if k in os.environ}
            kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **kw)
            started_ray = True
        try:
            groups = _source_groups(pending)
            if groups:
                console.print(f"phase 1: pre-training {len(groups)} source/chain group(s)", highlight=False)
                _tune(sources_trainable, groups, sd, st.root, spec, "sources", mode, [])
            console.print(f"phase 2: {len(pending)} cell(s), {spec.search.trials_per_cell} trial(s) each", highlight=False)
            _tune(cell_trainable, [c.cell_id for c in pending], sd, st.root, spec, "cells", mode,
                  [StudyProgress(len(all_cells), len(all_cells) - len(pending))])
        finally:
            if started_ray:
                ray.shutdown()
    missing = [c.cell_id for c in all_cells if not (sd / "cells" / f"{c.cell_id}.parquet").exists()]
    tables = R.write_tables(sd)
    if mode != "disabled":
        log_study_summary(sd, project=spec.tracking.project, entity=spec.tracking.entity, mode=mode,
                          group=spec.name, name=f"{spec.name}-summary")
        shutdown_wandb()
    if report:
        from xfer.report.html import write_report

        write_report(sd)
    if missing:
        raise RuntimeError(f"{len(missing)} cell(s) did not finish (e.g. {missing[0]}); "
                           f"run `xfer study resume {sd}` to finish them")
    return StudyRun(sd, len(all_cells), len(pending), time.perf_counter() - t0, tables)


def _source_groups(pending: list[Cell]) -> list[str]:
    """One representative cell id per distinct source/chain/DANN preparation."""
    seen: dict[tuple[str, str, bool, float], str] = {}
    for c in pending:
        if c.strategy != "scratch":
            # a DANN source sees the target rows of its fraction, so it is one per fraction
            seen.setdefault((c.pair.pair_id, c.chain_id, c.dann, c.fraction if c.dann else 0.0), c.cell_id)
    return list(seen.values())
