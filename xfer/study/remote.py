"""Trials that need no shared filesystem: what travels to a worker, what comes back to the driver.

Used when a study runs on a cluster (``--address``) or its directory is an object-store URI
(``shipped`` mode); a local study on a local Ray keeps writing its directory directly.

- **Out**: a :class:`Shipment` (the spec, the user market files the cells read, and the cached
  source weights they start from, as bytes) is handed to ``tune.with_parameters``, which puts it
  in Ray's object store once. A worker materialises it into a node-local store
  (``$XFER_SCRATCH``, default ``<tmp>/xfer-scratch``), keyed by the markets' content, so a node
  writes each file once and reads the same bytes the driver has (same fingerprints, same cache keys).
- **Back**: a trial works in a node-local scratch directory and reports each finished cell with a
  Tune checkpoint holding its ``cells/``, ``days/`` files, its Optuna journal and W&B run files
  (a phase-1 trial: the source cache files it trained). Tune persists it to ``storage_path`` (the
  study's ``ray/``: an object store, or a path every node shares); :class:`Collector`, a Tune
  callback in the driver, writes the files into the study directory. The driver writes a cell's
  results file last and at most once, so the results table holds each fit exactly once however
  often Tune retries a trial; a cell is done only when the driver has written it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from xfer.data.store import Store
from xfer.io import atomic_write, write_text
from xfer.study.spec import Cell
from xfer.study.storage import StudyStorage

MANIFEST = "manifest.json"
CACHE = ("cache", "source")
"""The source cache under a store root (:func:`xfer.experiment.prepare.prepare`'s default)."""


def scratch_root() -> Path:
    """This node's scratch directory (``$XFER_SCRATCH``, default ``<tmp>/xfer-scratch``)."""
    env = os.environ.get("XFER_SCRATCH")
    return Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "xfer-scratch"


@dataclass
class Shipment:
    """What every trial of a phase needs besides its config: the spec and store files as bytes."""

    spec_json: str
    markets: dict[str, bytes] = field(default_factory=dict)
    """User market files by name (embedded samples ship with the package)."""
    cache: dict[str, bytes] = field(default_factory=dict)
    """Source cache files by name."""

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.markets):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.markets[name]).digest())
        return h.hexdigest()[:20]

    def materialise(self) -> Path:
        """A node-local store root holding the shipped markets and cache files (written once per node)."""
        root = scratch_root() / "stores" / self.digest()
        for sub, files in (("markets", self.markets), ("/".join(CACHE), self.cache)):
            for name, blob in files.items():
                path = root / sub / name
                if not (path.is_file() and path.stat().st_size == len(blob)):
                    atomic_write(path, lambda tmp, b=blob: Path(tmp).write_bytes(b))
        return root


def needed_markets(store: Store, pending: list[Cell]) -> dict[str, bytes]:
    """The user market files (not embedded samples) the pending cells read."""
    names: set[str] = set()
    for c in pending:
        cfg = c.setup
        names.update(store.resolve([*cfg.source, *cfg.chain, cfg.target]))
    out = {}
    for m in sorted(names):
        path = store.path(m)
        if path.parent == store.markets_dir:
            out[path.name] = path.read_bytes()
    return out


def needed_cache(store: Store, pending: list[Cell]) -> dict[str, bytes]:
    """The cached source weights the pending cells start from: the files each group's ready
    marker lists (every cache file when a marker predates the list)."""
    from xfer.experiment.prepare import ready_marker

    cache = store.root.joinpath(*CACHE)
    names: set[str] = set()
    for c in pending:
        if c.strategy == "scratch":
            continue
        marker = ready_marker(c.setup, store)
        try:
            listed = json.loads(marker.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            listed = [p.name for p in cache.glob("*.pt")]
        names.update(listed)
    return {n: (cache / n).read_bytes() for n in sorted(names) if (cache / n).is_file()}


# ----------------------------------------------------------------------- worker side


def pack_cell(work: Path, cell_id: str, done: list[str]) -> Path:
    """A checkpoint directory with the cell's files from ``work`` (moved out of it)."""
    ckpt = Path(tempfile.mkdtemp(prefix=f"ckpt-{cell_id[:40]}-", dir=work.parent))
    for rel in (f"cells/{cell_id}.parquet", f"days/{cell_id}.parquet", "optuna.journal"):
        if (work / rel).is_file():
            (ckpt / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(work / rel), str(ckpt / rel))
    if (work / "wandb").is_dir():  # W&B's symbolic links (latest-run, debug.log) stay behind
        shutil.copytree(work / "wandb", ckpt / "wandb",
                        ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
        shutil.rmtree(work / "wandb")
    write_text(ckpt / MANIFEST, json.dumps({"kind": "cell", "cell_id": cell_id, "done": done}))
    return ckpt


def pack_sources(work: Path, store_root: Path, files: list[str], cell_id: str) -> Path:
    """A checkpoint directory with the source cache files a phase-1 trial trained or loaded."""
    ckpt = Path(tempfile.mkdtemp(prefix="ckpt-sources-", dir=work))
    cache = store_root.joinpath(*CACHE)
    for n in files:
        (ckpt / "cache").mkdir(exist_ok=True)
        shutil.copyfile(cache / n, ckpt / "cache" / n)
    write_text(ckpt / MANIFEST, json.dumps({"kind": "sources", "cell_id": cell_id, "files": files}))
    return ckpt


def done_in_trial() -> list[str]:
    """Cells this trial already handed to the driver before Tune restarted it (from its last checkpoint)."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return []
    with ckpt.as_directory() as d:
        return list(json.loads((Path(d) / MANIFEST).read_text()).get("done", []))


def _work_dir(spec_json: str) -> Path:
    """A fresh node-local working directory for one trial, holding the spec (W&B names its group from it)."""
    parent = scratch_root() / "work"
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="trial-", dir=parent))
    write_text(work / "spec.json", spec_json)
    return work


def shipped_sources(config: dict[str, Any], shipment: Shipment) -> None:
    """Phase 1 trial, shipped: pre-train one group's sources in a node-local store; hand the cache
    files to the driver as the trial's checkpoint."""
    import time

    import torch

    from xfer.experiment.prepare import prepare, ready_marker
    from xfer.study.spec import StudySpec, cells
    from xfer.study.tune_api import report as _report

    torch.set_num_threads(max(1, int(config["cpus"])))
    t = time.perf_counter()
    spec = StudySpec.model_validate_json(shipment.spec_json)
    (cell,) = [c for c in cells(spec) if c.cell_id in config["cell_ids"]]
    st = Store(shipment.materialise())
    prepare(cell.setup, st)
    files = json.loads(ready_marker(cell.setup, st).read_text())["files"]
    work = _work_dir(shipment.spec_json)
    try:
        ckpt = pack_sources(work, st.root, files, cell.cell_id)
        _report({"seconds": time.perf_counter() - t, "sources_ready": True}, checkpoint=ckpt)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shipped_cells(config: dict[str, Any], cell_tracker: Any = None, shipment: Shipment | None = None) -> None:
    """Phase 2 trial, shipped: each cell runs in a node-local working directory and is reported with
    a checkpoint of its files (:func:`pack_cell`); cells a restarted trial already handed over are skipped.
    Each cell starts from the same torch seed, as in :func:`xfer.study.runner.cell_trainable`."""
    import time

    import ray
    import torch

    from xfer.study.cell import run_cell
    from xfer.study.spec import StudySpec, cells
    from xfer.study.tune_api import report as _report

    assert shipment is not None
    torch.set_num_threads(max(1, int(config["cpus"])))
    spec = StudySpec.model_validate_json(shipment.spec_json)
    by_id = {c.cell_id: c for c in cells(spec)}
    st = Store(shipment.materialise())
    node_id = ray.get_runtime_context().get_node_id()
    done = done_in_trial()
    work = _work_dir(shipment.spec_json)
    os.environ["WANDB_DATA_DIR"] = str(work.parent / "wandb-data")  # not the driver's paths
    os.environ["WANDB_CACHE_DIR"] = str(work.parent / "wandb-cache")
    try:
        for cid in config["cell_ids"]:
            if cid in done:
                _report({"cell_id": cid, "cell_finished": True, "skipped": True})
                continue
            cell = by_id[cid]
            torch.manual_seed(0)
            t = time.perf_counter()
            tracker = None
            if cell_tracker is not None and config["wandb_mode"] != "disabled":
                tracker = cell_tracker(work, spec, cell, config["wandb_mode"])
            final: dict[str, Any] = {}

            def report(m: dict[str, Any], c: str = cid, final: dict[str, Any] = final) -> None:
                if m.get("cell_finished"):
                    final.update(m)  # sent with the checkpoint once the cell's files are complete
                else:
                    _report({**m, "cell_id": c})

            run_cell(spec, work, cid, st, report=report, tracker=tracker,
                     timings={"tracking": time.perf_counter() - t}, node_id=node_id)
            done.append(cid)
            ckpt = pack_cell(work, cid, list(done))
            try:
                _report({**final, "cell_id": cid}, checkpoint=ckpt)
            finally:
                shutil.rmtree(ckpt, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------- driver side


class Collector(Callback):
    """Driver-side Tune callback: a trial's checkpoint lands in the study directory (cells) or the
    store's source cache (phase 1). ``markers``: phase 1's ready marker path per group cell id."""

    def __init__(self, storage: StudyStorage, store_root: Path, markers: dict[str, str] | None = None) -> None:
        self.storage = storage
        self.store_root = Path(store_root)
        self.markers = markers or {}

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        with checkpoint.as_directory() as d:
            ckpt = Path(d)
            man = json.loads((ckpt / MANIFEST).read_text())
            if man["kind"] == "sources":
                self._sources(ckpt, man)
            else:
                self._cell(ckpt, man["cell_id"])

    def _sources(self, ckpt: Path, man: dict[str, Any]) -> None:
        cache = self.store_root.joinpath(*CACHE)
        for n in man["files"]:
            if not (cache / n).is_file():
                blob = (ckpt / "cache" / n).read_bytes()
                atomic_write(cache / n, lambda tmp, b=blob: Path(tmp).write_bytes(b))
        marker = self.markers.get(man["cell_id"])
        if marker:
            write_text(Path(marker), json.dumps({"files": man["files"]}))

    def _cell(self, ckpt: Path, cell_id: str) -> None:
        sd = self.storage.local
        out = sd / "cells" / f"{cell_id}.parquet"
        if out.exists():  # a retried trial's second copy: the first one stands
            return
        if (ckpt / "optuna.journal").is_file():
            merge_search(ckpt / "optuna.journal", sd / "optuna.journal", cell_id)
            self.storage.push(sd / "optuna.journal", every_s=30.0)
        if (ckpt / "wandb").is_dir():
            shutil.copytree(ckpt / "wandb", sd / "wandb", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("latest-run"))
        for rel in (f"days/{cell_id}.parquet", f"cells/{cell_id}.parquet"):  # the results file last
            src = ckpt / rel
            if src.is_file():
                atomic_write(sd / rel, lambda tmp, s=src: shutil.copyfile(s, tmp))
                self.storage.push(sd / rel)


def merge_search(src: Path, dest: Path, name: str) -> None:
    """Copy the search ``name`` from a trial's journal into the study's; an earlier search of that
    name there (an attempt that never wrote results) is set aside first, as a rerun on one machine does."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from xfer.study.cell import _set_aside

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = JournalStorage(JournalFileBackend(str(src)))
    if name not in {s.study_name for s in optuna.get_all_study_summaries(source, include_best_trial=False)}:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = JournalStorage(JournalFileBackend(str(dest)))
    names = {s.study_name for s in optuna.get_all_study_summaries(target, include_best_trial=False)}
    if name in names:
        _set_aside(target, name, names)
    optuna.copy_study(from_study_name=name, from_storage=source, to_storage=target, to_study_name=name)
