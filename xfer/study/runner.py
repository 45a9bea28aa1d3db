"""Run a study on Ray Tune: a local Ray instance by default, or a cluster with ``address``.

Two phases, each one Tuner over a grid of trials:

1. *sources*: one trial per distinct (pair, chain, DANN) that a pending cell needs; it
   pre-trains the source (and chain stages) per seed into the on-disk cache, so every
   cell after it loads the same weights instead of training its own;
2. *cells*: one trial per pending cell; inside it Optuna asks for a batch of configs and
   the batch x seeds x folds trains as populations (:mod:`xfer.study.cell`).

The study directory is the state: a cell is done when ``cells/<id>.parquet`` exists, so
``resume`` runs exactly the missing cells (and those whose results no longer read back); a cell
interrupted mid-search starts its search over, so a resumed study equals an uninterrupted one
(:mod:`xfer.study.cell`; the partial search stays in the journal, renamed).
Ray's reporting API has moved between versions; everything goes through
:func:`xfer.study.tune_api.report` (shared with :mod:`xfer.study.remote`).

Tracking (W&B) and the HTML report sit above this layer: the caller hands them in as
:class:`StudyHooks` (the CLI passes :func:`xfer.hooks.default_hooks`); without hooks a study
runs with tracking off and writes no report.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.io import WriteError, atomic_write, check_output_dir, write_text
from xfer.study import results as R
from xfer.study.lock import StudyLock
from xfer.study.spec import Cell, StudySpec, cells, load
from xfer.study.storage import StudyStorage, open_storage
from xfer.study.tune_api import report as _report

CellTracker = Callable[[Path, StudySpec, Cell, str], Any]
"""(study_dir, spec, cell, mode) -> a tracker with ``log(metrics, step)`` and ``finish(summary)``, or None.
Runs inside Ray workers: it must be a picklable, importable function."""


@dataclass(frozen=True)
class StudyHooks:
    """What a caller plugs into a study run; every hook is optional."""

    resolve_mode: Callable[[str | None], str] | None = None
    """Requested tracking mode (None = auto) -> the mode to use; None = tracking disabled."""
    cell_tracker: CellTracker | None = None
    summary: Callable[[Path, StudySpec, str], Any] | None = None
    """After the tables are written: log the study summary (study_dir, spec, mode)."""
    shutdown: Callable[[], None] | None = None
    report: Callable[[Path], Any] | None = None
    """Write the report of a study directory."""

SPEC_FILE = "spec.json"
PROFILE_FILE = "profile.json"
"""Wall seconds of the last run's stages (``xfer study run --profile`` reads it with the cells' parts)."""


# ----------------------------------------------------------------------- Ray adapter


def _load_spec(study_dir: Path) -> StudySpec:
    """The study's resolved spec (``spec.json``); an unreadable one is an input error naming the file."""
    from pydantic import ValidationError

    path = Path(study_dir) / SPEC_FILE
    try:
        return StudySpec.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or None
        found = f"{err.get('msg', exc)}" + (f" ({exc.error_count()} errors)" if exc.error_count() > 1 else "")
    except (OSError, UnicodeDecodeError) as exc:
        field, found = None, f"an unreadable file ({type(exc).__name__}: {exc})"
    raise XferInputError(file=path, field=field, expected="a study spec written by xfer", found=found,
                         hint=f"restore it from a copy, or delete it and run `xfer study run {path.parent / 'study.yaml'} "
                              f"--out {path.parent}` (with --smoke if it was a smoke run): finished cells are kept")


def _cells(config: dict[str, Any]) -> tuple[Path, StudySpec, list[Cell]]:
    """The study directory, spec and cells of a trial (``config["cell_ids"]``: one or a bundle)."""
    study_dir = Path(config["study_dir"])
    spec = _load_spec(study_dir)
    by_id = {c.cell_id: c for c in cells(spec)}
    return study_dir, spec, [by_id[i] for i in config["cell_ids"]]


def sources_trainable(config: dict[str, Any]) -> None:
    """Phase 1 trial: pre-train (or load) the source and chain stages of one cell group."""
    import torch

    from xfer.experiment.prepare import prepare

    torch.set_num_threads(max(1, int(config["cpus"])))
    _, _, (cell,) = _cells(config)
    t = time.perf_counter()
    with _stop_on_write_error():
        prepare(cell.setup, Store(config["store_root"]))
        _report({"seconds": time.perf_counter() - t, "sources_ready": True})


FATAL = "fatal_write_error"
"""Result key of a trial stopped by a :class:`~xfer.io.WriteError` (the error's fields, JSON)."""


@contextlib.contextmanager
def _stop_on_write_error() -> Any:
    """In a trial: a full disk, a quota or a read-only folder ends the trial with a result naming
    it instead of an exception, which Tune would retry (``max_failures``) to fail the same way;
    the driver raises it (:func:`_raise_fatal`), and the CLI exits 2 naming the path."""
    try:
        yield
    except WriteError as exc:
        _report({FATAL: json.dumps([exc.file, exc.field, exc.expected, exc.found, exc.hint])})


def _raise_fatal(results: Any) -> None:
    """Raise the first :class:`~xfer.io.WriteError` a trial of ``results`` (a ResultGrid) stopped on."""
    for r in results or ():
        fatal = (getattr(r, "metrics", None) or {}).get(FATAL)
        if fatal:
            file, field, expected, found, hint = json.loads(fatal)
            raise WriteError(file=file, field=field, expected=expected, found=found, hint=hint)


def cell_trainable(config: dict[str, Any], cell_tracker: CellTracker | None = None) -> None:
    """Phase 2 trial: a bundle of cells, one cell group after another (:func:`~xfer.study.cell.group_key`:
    a group's searches train as one population), each cell tracked by the hook's tracker (one W&B
    run per cell) when there is one. Each group starts from the same torch seed, so a cell's
    results do not depend on its bundle (or on what the reused worker ran before)."""
    import ray
    import torch

    from xfer.study.cell import run_cells

    torch.set_num_threads(max(1, int(config["cpus"])))
    study_dir, spec, bundle = _cells(config)
    node_id = ray.get_runtime_context().get_node_id()
    with _stop_on_write_error():
        for unit in cell_units(bundle):
            torch.manual_seed(0)
            trackers, timings = {}, {}
            for cell in unit:
                t = time.perf_counter()
                done = (study_dir / "cells" / f"{cell.cell_id}.parquet").exists()
                if cell_tracker is not None and config["wandb_mode"] != "disabled" and not done:
                    trackers[cell.cell_id] = cell_tracker(study_dir, spec, cell, config["wandb_mode"])
                timings[cell.cell_id] = {"tracking": time.perf_counter() - t}
            run_cells(spec, study_dir, [c.cell_id for c in unit], Store(config["store_root"]),
                      reports={c.cell_id: (lambda m, c=c.cell_id: _report({**m, "cell_id": c})) for c in unit},
                      trackers=trackers, timings=timings, node_id=node_id)


def cell_units(ordered: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells of one cell group (:func:`~xfer.study.cell.group_key`) as one unit; an
    ungrouped cell is a unit of its own."""
    from xfer.study.cell import group_key

    units: list[list[Cell]] = []
    for c in ordered:
        key = group_key(c)
        if units and key is not None and group_key(units[-1][0]) == key:
            units[-1].append(c)
        else:
            units.append([c])
    return units


# ----------------------------------------------------------------------- driver


@dataclass
class StudyRun:
    study_dir: Path
    """Where the study's files are on this machine (a local copy when it lives in an object store)."""
    cells_total: int
    cells_run: int
    seconds: float
    tables: dict[str, Any]
    location: str = ""
    """The study directory as given: a path, or an object-store URI."""


def default_dir(spec: StudySpec, store: Store) -> Path:
    return store.root / "studies" / spec.name


LOST_ROUNDS = 2
"""Further Tune runs of trials lost to the cluster (see :func:`_tune`) before the driver gives up."""


def _lost_to_the_cluster(error: BaseException | None) -> bool:
    """Whether a trial's final error says the cluster lost it (its actor, worker or node died),
    not that its own code raised (a :class:`ray.exceptions.RayTaskError` with a cause of its own)."""
    from ray import exceptions as rx

    system = (rx.RayActorError, rx.NodeDiedError, rx.WorkerCrashedError, rx.LocalRayletDiedError,
              rx.RaySystemError)
    if isinstance(error, rx.RayTaskError):
        return isinstance(error.as_instanceof_cause(), system)
    return isinstance(error, system)


def _tune(trainable: Any, bundles: list[list[str]], loc: StudyStorage | Path, store_root: Path | None,
          spec: StudySpec, name: str, wandb_mode: str, callbacks: list[Any],
          unfinished: Callable[[list[str]], list[str]] | None = None) -> Any:
    """One phase as a Tuner. ``store_root`` None: a shipped phase, whose trials get no path of the
    driver's (the spec and store travel in the trainable's parameters, :mod:`xfer.study.remote`).

    Tune retries a failed trial (``max_failures``), but on Ray 2.60 one lost node can end a trial
    for good whatever that says: the dead actor's two pending calls fail together, the first
    requeues the trial and the second, finding it pending, marks it errored. So the trials the
    cluster lost (:func:`_lost_to_the_cluster`; not those whose own code raised) run again in a
    new Tuner, up to :data:`LOST_ROUNDS` times, each bundle cut to what ``unfinished`` says is
    left of it (default: all of it)."""
    from ray import tune

    loc = loc if isinstance(loc, StudyStorage) else open_storage(loc)

    res = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    paths = {} if store_root is None else {"study_dir": str(loc.local), "store_root": str(store_root)}
    storage_path, storage_fs = loc.tune_storage()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1 + LOST_ROUNDS):
        tuner = tune.Tuner(
            tune.with_resources(trainable, res),
            param_space={"cell_ids": tune.grid_search(bundles), **paths, "cpus": spec.resources.cpus_per_trial,
                         "wandb_mode": wandb_mode},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=spec.resources.max_concurrent),
            run_config=tune.RunConfig(
                name=f"{name}-{stamp}" + (f"-again{attempt}" if attempt else ""), storage_path=storage_path,
                storage_filesystem=storage_fs,
                failure_config=tune.FailureConfig(max_failures=2), verbose=0, callbacks=callbacks,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        results = tuner.fit()
        _raise_fatal(results)
        lost = [list(r.config["cell_ids"]) for r in results or () if _lost_to_the_cluster(r.error)]
        bundles = [b for b in (unfinished(b) if unfinished else b for b in lost) if b]
        if not bundles:
            break
        if attempt < LOST_ROUNDS:
            logging.getLogger(__name__).warning(
                "%s: %d trial(s) lost to the cluster; running them again (%d of %d)",
                name, len(bundles), attempt + 1, LOST_ROUNDS)
    return results


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Refuse a Ray address this install cannot use, or nobody answers at, before anything runs.

    ``None`` starts a local instance; ``auto`` finds one on this host; ``HOST:PORT`` (the head's
    GCS port) or ``ray://HOST:PORT`` (Ray Client, needs ``ray[client]``) must accept a TCP
    connection within ``timeout_s``.
    """
    if address is None or address in ("auto", "local"):
        return
    field = "--address"
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    if scheme not in ("", "ray"):
        raise XferInputError(field=field, expected="HOST:PORT, ray://HOST:PORT, auto or local",
                             found=f"{address!r} (scheme {scheme + '://'!r})",
                             hint="submit to a Jobs API address (http://HEAD:8265) with `xfer study submit FILE --address ...`")
    if scheme == "ray":
        from ray._private.utils import get_ray_client_dependency_error

        if get_ray_client_dependency_error() is not None:
            raise XferInputError(field=field, expected="an address this install can use",
                                 found=f"{address!r}: Ray Client is not installed",
                                 hint="pip install 'ray[client]', or pass the head's HOST:6379 address from a node "
                                      "of the cluster")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise XferInputError(field=field, expected="HOST:PORT (e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001)",
                             found=repr(address))
    why = unreachable(host, int(port), timeout_s)
    if why is not None:
        raise XferInputError(field=field, expected="a running Ray head that accepts connections",
                             found=f"{address!r}: {why}",
                             hint="start the cluster first (see cluster/README.md), or omit --address for a "
                                  "local instance")


def unreachable(host: str, port: int, timeout_s: float) -> str | None:
    """None when ``host:port`` accepts a TCP connection within ``timeout_s``; else why not."""
    import socket

    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def open_study(where: str | Path, field: str) -> StudyStorage:
    """A study directory to read or write: a local path as it is, or an object-store URI checked
    (reachable, bucket exists) and its study pulled into a local staging copy."""
    loc = open_storage(where, field)
    if loc.remote:
        loc.check(field)
        loc.pull()
    return loc


def _outside_store(sd: Path, st: Store, field: str) -> None:
    """Refuse a study directory inside the store's markets folder (every ``xfer data list`` would then
    trip over the study's Parquet files) or inside xfer's embedded samples; the store itself
    (its markets folder a subfolder of the study directory) is fine."""
    from xfer.data.store import _samples_dir

    here = Path(sd).expanduser().resolve()
    for d, what in ((st.markets_dir, "the store's markets folder"), (_samples_dir(), "xfer's embedded samples")):
        d = Path(d).expanduser().resolve()
        if here == d or d in here.parents:
            raise XferInputError(file=sd, field=field, expected=f"a study directory outside {what} ({d})",
                                 found=f"{here}, inside it",
                                 hint="pass another --out, e.g. leave it out for $XFER_HOME/studies/NAME")


def _open(spec_path: str | Path | None, study_dir: str | Path | None, st: Store,
          smoke: bool) -> tuple[StudyStorage, StudySpec, StudyLock]:
    """The study directory, its spec and its lock, held (:mod:`xfer.study.lock`; the caller
    releases it): a new study writes spec.json; a resume reads it. A directory another run
    holds is refused before anything in it is written."""
    if spec_path is None:
        loc = open_study(study_dir, "STUDY_DIR") if study_dir is not None else None
        if loc is None or not (loc.local / SPEC_FILE).is_file():
            raise XferInputError(file=study_dir, field="STUDY_DIR", expected=f"a study directory (with {SPEC_FILE})",
                                 found=f"no {SPEC_FILE}")
        spec = _load_spec(loc.local)
        return loc, spec, StudyLock(loc.local, "STUDY_DIR").acquire()
    spec = load(spec_path, st)
    if smoke:
        spec = spec.smoke()
    field = "--out" if study_dir else ("storage" if spec.storage else "study directory")
    loc = open_study(study_dir or spec.storage or default_dir(spec, st), field)
    sd = loc.local
    if not loc.remote:
        _outside_store(sd, st, field)
        check_output_dir(sd, field)
    if (sd / SPEC_FILE).exists():
        old = _load_spec(sd)
        if old != spec:
            raise XferInputError(file=sd, field="--out", expected=f"a new directory or one holding study {spec.name!r}",
                                 found=f"a directory holding study {old.name!r} (different spec)",
                                 hint=f"use `xfer study resume {loc}` or another --out")
    sd.mkdir(parents=True, exist_ok=True)
    lock = StudyLock(sd, field).acquire()
    try:
        if not (sd / "study.yaml").exists():
            atomic_write(sd / "study.yaml", lambda tmp: shutil.copyfile(spec_path, tmp))
        write_text(sd / SPEC_FILE, spec.model_dump_json(indent=2))
        loc.push_changed()
    except BaseException:
        lock.release()
        raise
    return loc, spec, lock


def _is_secret(name: str) -> bool:
    """Whether an environment variable holds a credential (``WANDB_API_KEY``, ``*_TOKEN``,
    ``*SECRET*``, ``*PASSWORD*``, ``*_KEY``, ``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``...):
    such a variable never goes into Ray's runtime_env.

    ``KEY`` counts as a word anywhere in the name (``AWS_ACCESS_KEY_ID`` is half of an AWS key
    pair): a name wrongly taken for a credential only stays out of the runtime_env, a credential
    wrongly taken for a name would be written to Ray's logs."""
    n = name.upper()
    parts = set(n.split("_"))
    return (any(w in n for w in ("SECRET", "PASSWORD", "PASSWD", "APIKEY", "API_KEY", "ACCESS_KEY",
                                 "PRIVATE_KEY", "CONNECTION_STRING"))
            or bool(parts & {"TOKEN", "CREDENTIAL", "CREDENTIALS", "KEY"}))


def _environment(sd: Path, st: Store, mode: str) -> dict[str, str]:
    """Set this study's process environment; return the subset Ray's runtime_env may carry.

    Secrets (``WANDB_API_KEY`` and every :func:`_is_secret` name) are never returned: Ray writes a
    runtime_env in plain text to its logs (``session_*/logs/runtime_env_agent.log``) and keeps it
    in the GCS. Workers read them from their own environment instead: a local Ray started by
    this process inherits its ``os.environ``; a cluster's nodes get them from their own
    environment (cluster/ shows how).
    """
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["XFER_HOME"] = str(st.root)
    # wandb stages table artifacts and its debug log outside the run dir; keep them in the study
    os.environ["WANDB_DATA_DIR"] = str(sd / "wandb" / "data")
    os.environ["WANDB_CACHE_DIR"] = str(sd / "wandb" / "cache")
    return {k: os.environ[k] for k in ("WANDB_MODE", "WANDB_SILENT", "XFER_HOME", "WANDB_DATA_DIR",
                                       "WANDB_CACHE_DIR") if k in os.environ and not _is_secret(k)}


LOOPBACK = "127.0.0.1"
"""What a local Ray instance binds and advertises: nothing outside this host can reach it."""


def _keep_loopback() -> Any:
    """A context in which ``ray.init(_node_ip_address=LOOPBACK)`` keeps the loopback address.

    Ray 2.60 binds its gRPC servers (GCS, raylet, object manager, every worker) to the wildcard
    address unless the node IP is loopback, and ``ray.init`` rewrites a loopback
    ``_node_ip_address`` to the host's outward IP (``ray._private.services.resolve_ip_for_localhost``)
    with no public switch. A single-node instance needs no outward IP, so the rewrite is skipped
    for the duration of the call. tests/tracking/test_secrets.py checks the addresses the
    started processes listen on, so a Ray upgrade that moves this shows up there.
    """
    import contextlib

    try:
        from ray._private import services
    except ImportError:
        return contextlib.nullcontext()
    original = getattr(services, "resolve_ip_for_localhost", None)
    if original is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def keep() -> Any:
        services.resolve_ip_for_localhost = lambda host: host if host == LOOPBACK else original(host)
        try:
            yield
        finally:
            services.resolve_ip_for_localhost = original

    return keep()


def _hold_back_propagated_secrets() -> None:
    """Keep Ray Tune from copying credentials into its trial actors' runtime_env.

    Ray Tune (2.60: ``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE``) copies
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``... from this process's
    environment into the runtime_env of every trainable actor, which Ray writes in plain text to
    ``session_*/logs/runtime_env_agent.log`` and keeps in the GCS. The workers need no copy: those
    of a local Ray inherit this process's environment, a cluster's nodes have their own
    (cluster/README.md), as for :func:`_environment`. The set is filtered for the rest of this
    process (a study runs on Ray xfer starts, joins or finds running); a Ray upgrade that moves it
    shows up in tests/tracking/test_secrets.py, which searches every file a real study leaves.
    """
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        return
    names = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if names is not None:
        class_cache.ENV_VARS_TO_PROPAGATE = {n for n in names if not _is_secret(n)}


def _private_temp_dir() -> str | None:
    """The temp root for a local Ray: ``<tmp>/xfer-<uid>/ray``, in a directory only this user may
    enter (0700); ``<tmp>`` is Ray's own choice (``RAY_TMPDIR``, else ``TMPDIR``, else ``/tmp``).

    Ray makes its temp root and every session directory in it world-readable and writable (0777,
    logs 0644), and a session's logs and runtime_env records say what a study runs with: the
    private directory above them keeps the machine's other users out, whatever Ray does below it.
    An ``xfer-<uid>`` that is not this user's own real directory (a symlink, another user's) is
    never used: a fresh private one (``mkdtemp``) is. The name stays short because Ray's unix
    sockets (``session_*/sockets/...``) must fit in 107 bytes. None (Ray's default) where there
    are no Unix users. Only for a local Ray: a cluster's nodes keep their own temp root.
    """
    import stat
    import tempfile

    if not hasattr(os, "getuid"):
        return None
    try:
        from ray._common.utils import get_default_system_temp_dir

        base = get_default_system_temp_dir()
    except ImportError:
        base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    root = os.path.join(os.path.abspath(base), f"xfer-{os.getuid()}")
    os.makedirs(base, exist_ok=True)  # as Ray would make it
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    info = os.lstat(root)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        os.chmod(root, 0o700)  # mkdir's mode is masked by the umask; an old one may be looser
    else:
        root = tempfile.mkdtemp(prefix="xfer-", dir=base)
    return os.path.join(root, "ray")


def _start_ray(env: dict[str, str], address: str | None) -> bool:
    """Connect to the cluster at ``address``, or start a local Ray bound to 127.0.0.1 (no
    dashboard) whose temp root is private (:func:`_private_temp_dir`); False when Ray is already
    up (the caller's instance, left as it is).

    ``env`` rides along as the runtime_env, minus anything secret (see :func:`_environment`), and
    Ray Tune is kept from adding credentials of its own (:func:`_hold_back_propagated_secrets`).
    """
    import ray

    _hold_back_propagated_secrets()
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"runtime_env": {"env_vars": {k: v for k, v in env.items() if not _is_secret(k)}},
                          "log_to_driver": False}
    if address and address != "local":
        if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
            # the driver of a Ray Job (xfer study submit, ray job submit, a KubeRay RayJob): Ray refuses
            # a ray.init env var the job's runtime_env also sets (XFER_HOME...) unless told to combine
            # them; this process's environment already holds the job's values, so ours agree with them
            os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
        ray.init(address=address, **kw)
    else:
        with _keep_loopback():
            # address="local": a new instance even when RAY_ADDRESS is set or a `ray start` cluster
            # runs on this host (ray.init() with no address would join it)
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address=LOOPBACK,
                     _temp_dir=_private_temp_dir(), **kw)
    return True


PATH_VARS = ("XFER_HOME", "WANDB_DATA_DIR", "WANDB_CACHE_DIR")
"""Environment variables naming the driver's paths: a shipped run's workers do not get them."""


def _without_results(sd: Path, cell_ids: list[str]) -> list[str]:
    """The cells of ``cell_ids`` whose results file is not in the study directory ``sd`` yet."""
    return [c for c in cell_ids if not (sd / "cells" / f"{c}.parquet").exists()]


def _stop_ray(clock: dict[str, float]) -> None:
    """``ray.shutdown()`` in the calling (main) thread, before anything else runs.

    Not in a background thread behind the tables and report, though that saved ~1.4 s: while the
    core worker is being torn down, a Tune ``ObjectRef`` freed by the main thread (the cyclic
    garbage collector runs whenever the tables allocate) reaches into it and Ray ends the process
    with ``_exit(1)`` ("The core worker has already been shutdown ... The process will exit"):
    no traceback, no flushed output. It ended a CI run of the test suite that way; freeing 2,000
    ``ray.put`` refs 50 ms into a threaded shutdown exits 1 in 5 runs of 6 (BENCHMARKS.md)."""
    import gc

    import ray

    t = time.perf_counter()
    gc.collect()  # free cyclic garbage holding object refs while the core worker is whole
    ray.shutdown()
    clock["ray_stop"] = time.perf_counter() - t


def _run_phases(sd: Path, st: Store, spec: StudySpec, all_cells: list[Cell], pending: list[Cell],
                mode: str, env: dict[str, str], address: str | None, hooks: StudyHooks, console: Console,
                clock: dict[str, float], loc: StudyStorage | None = None) -> None:
    """Phase 1 (sources) and phase 2 (cells) on Ray. On a cluster or with an object-store study
    directory the phases are *shipped* (:mod:`xfer.study.remote`): trials read no path of the
    driver's and return their files through Tune; a local study on a local Ray writes directly.

    A Ray this call started is stopped (:func:`_stop_ray`) before it returns or raises; one it
    found running is left as it is."""
    import ray
    from ray import tune

    from xfer.study import remote
    from xfer.study.progress import StudyProgress

    loc = loc or open_storage(sd)
    local_ray = address in (None, "local")
    shipped = loc.remote or not local_ray
    if shipped:
        env = {k: v for k, v in env.items() if k not in PATH_VARS}
    t = time.perf_counter()
    started = _start_ray(env, address)
    clock["ray_start"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        groups = _source_groups(pending, st)
        if groups:
            console.print(f"phase 1: pre-training {len(groups)} source/chain group(s)", highlight=False)
            if shipped:
                from xfer.experiment.prepare import ready_marker

                by_id = {c.cell_id: c for c in pending}
                ship = remote.Shipment(spec.model_dump_json(), remote.needed_markets(st, pending))
                markers = {g: str(ready_marker(by_id[g].setup, st)) for g in groups}
                _tune(tune.with_parameters(remote.shipped_sources, shipment=ship), [[g] for g in groups], loc, None,
                      spec, "sources", mode, [remote.Collector(loc, st.root, markers)])
            else:
                _tune(sources_trainable, [[g] for g in groups], loc, st.root, spec, "sources", mode, [])
        clock["phase1"] = time.perf_counter() - t
        workers = _workers(spec, ray.cluster_resources())
        # on a cluster, one cell per trial: an autoscaler sizes itself from pending trials, and
        # the resources present at start (perhaps a head alone) say nothing about its size
        bundles = bundle_cells(pending, workers) if local_ray else [[c.cell_id] for c in pending]
        console.print(f"phase 2: {len(pending)} cell(s) in {len(bundles)} Tune trial(s), "
                      f"{spec.search.trials_per_cell} search trial(s) per cell", highlight=False)
        t = time.perf_counter()
        # a local study's cells land in sd as they finish: read them then, not all at the end
        ahead = None if shipped else functools.partial(R.read_ahead, sd)
        left = functools.partial(_without_results, sd)  # what a lost bundle has left to run
        progress = StudyProgress(len(all_cells), len(all_cells) - len(pending), on_cell=ahead)
        if shipped:
            ship = remote.Shipment(spec.model_dump_json(), remote.needed_markets(st, pending),
                                   remote.needed_cache(st, pending))
            trainable = tune.with_parameters(remote.shipped_cells, cell_tracker=hooks.cell_tracker, shipment=ship)
            _tune(trainable, bundles, loc, None, spec, "cells", mode, [progress, remote.Collector(loc, st.root)],
                  unfinished=left)
        else:
            trainable = tune.with_parameters(cell_trainable, cell_tracker=hooks.cell_tracker)
            _tune(trainable, bundles, loc, st.root, spec, "cells", mode, [progress], unfinished=left)
        clock["phase2"] = time.perf_counter() - t
        clock["workers"] = float(workers)
    finally:
        if started:
            _stop_ray(clock)


def run_study(spec_path: str | Path | None = None, *, study_dir: str | Path | None = None, store: Store | None = None,
              address: str | None = None, smoke: bool = False, console: Console | None = None,
              report: bool = True, hooks: StudyHooks | None = None) -> StudyRun:
    """Run (or resume, with ``study_dir`` of an existing study and no ``spec_path``) a study.

    ``study_dir``: a path, or an object-store URI (``s3://bucket/prefix``; :mod:`xfer.study.storage`)
    staged in a local copy that is uploaded as cells finish and at the end."""
    # Quiet Ray: the legacy reporter honours verbose=0 (the new one still prints a banner).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    hooks = hooks or StudyHooks()
    console = console or Console(stderr=True)
    st = store or Store()
    t0 = time.perf_counter()
    check_address(address)  # before anything is written
    loc, spec, lock = _open(spec_path, study_dir, st, smoke)
    with lock:  # held for the whole run: a second run on this directory is refused at once
        return _run_open(loc, spec, st, address, console, report, hooks, t0)


def _run_open(loc: StudyStorage, spec: StudySpec, st: Store, address: str | None, console: Console,
              report: bool, hooks: StudyHooks, t0: float) -> StudyRun:
    """The rest of :func:`run_study`, while it holds the study directory's lock."""
    sd = loc.local
    all_cells = cells(spec)
    done = R.finished_cells(sd, [c.cell_id for c in all_cells],  # unreadable results are set aside
                            lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    from xfer.study.cell import check_journal

    # a corrupt journal is set aside (its cells without results are searched again)
    check_journal(sd, lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    pending = [c for c in all_cells if c.cell_id not in done]
    console.print(f"study {spec.name}: {len(all_cells)} cells, {len(all_cells) - len(pending)} done, "
                  f"{len(pending)} to run -> {loc}", highlight=False)
    requested = None if spec.tracking.mode == "auto" else spec.tracking.mode
    mode = hooks.resolve_mode(requested) if hooks.resolve_mode else "disabled"
    env = _environment(sd, st, mode)
    clock: dict[str, float] = {"open": time.perf_counter() - t0}
    if spec.screen and not (sd / R.SCREEN_FILE).is_file():  # computed once: a resume keeps it
        t = time.perf_counter()
        table = R.write_screen(sd, spec, st)
        loc.push_changed()
        clock["screen"] = time.perf_counter() - t
        top = table.sort_values("rank").groupby("target")["source"].first()
        console.print(f"pre-screen: {R.SCREEN_FILE} ({len(table)} candidates); "
                      f"most promising: {', '.join(f'{s} for {t}' for t, s in top.items())}", highlight=False)
    if pending:
        try:
            _run_phases(sd, st, spec, all_cells, pending, mode, env, address, hooks, console, clock, loc=loc)
        finally:
            loc.push_changed()  # whatever landed, even if the run stops here
    missing = _without_results(sd, [c.cell_id for c in all_cells])
    tables = _finish_study(sd, spec, mode, hooks, report and len(missing) < len(all_cells),  # no report of nothing
                           clock)
    clock["total"] = time.perf_counter() - t0
    write_text(sd / PROFILE_FILE, json.dumps({**clock, "cell_ids": [c.cell_id for c in pending]}, indent=2))
    loc.push_changed()
    if missing:
        raise RuntimeError(f"{len(missing)} cell(s) did not finish (e.g. {missing[0]}); "
                           f"run `xfer study resume {loc}` to finish them")
    return StudyRun(sd, len(all_cells), len(pending), time.perf_counter() - t0, tables, str(loc))


def _finish_study(sd: Path, spec: StudySpec, mode: str, hooks: StudyHooks, report: bool,
                  clock: dict[str, float]) -> dict[str, Any]:
    """The tables, the W&B summary run and the report (``report``: whether to write one); return the tables."""
    t = time.perf_counter()
    tables = R.write_tables(sd)
    clock["tables"] = time.perf_counter() - t
    t = time.perf_counter()
    if mode != "disabled" and hooks.summary is not None:
        hooks.summary(sd, spec, mode)
        if hooks.shutdown is not None:
            hooks.shutdown()
    clock["summary"] = time.perf_counter() - t
    t = time.perf_counter()
    if report and hooks.report is not None:
        hooks.report(sd)
    clock["report"] = time.perf_counter() - t
    return tables


TRIALS_PER_WORKER = 4
"""Phase 2 asks Tune for at least this many trials per worker (when there are enough cells)."""


def _workers(spec: StudySpec, resources: dict[str, float]) -> int:
    """How many cell trials the cluster runs at once."""
    r = spec.resources
    n = resources.get("CPU", 1.0) // r.cpus_per_trial
    if r.gpus_per_trial > 0:
        n = min(n, resources.get("GPU", 0.0) // r.gpus_per_trial)
    if r.max_concurrent is not None:
        n = min(n, r.max_concurrent)
    return max(1, int(n))


def bundle_cells(pending: list[Cell], workers: int) -> list[list[str]]:
    """The cells as Tune trials: bundles of cell groups (:func:`cell_units`: one pair, chain and
    fraction, trained as one population) that share a preparation (pair, chain, DANN; the larger
    target fractions first, then grid order), largest bundles first. A trial costs Tune a fraction of a
    second to start and report; a small cell trains in about as long, so one trial per cell
    spends much of a study on Tune. But a large last bundle leaves the other workers idle while
    it runs, so sizes shrink as the study goes (guided self-scheduling: a bundle takes
    ``1 / (TRIALS_PER_WORKER * workers)`` of the cells still unbundled, at least one group): the
    last trials are single groups. Tune starts trials in this order. A cell's results do not depend
    on its bundle (:func:`cell_trainable`)."""
    groups: dict[tuple[str, str, bool], list[Cell]] = {}
    for c in sorted(pending, key=lambda c: -c.fraction):  # stable: the larger (slower) fits first
        groups.setdefault((c.pair.pair_id, c.chain_id, c.dann), []).append(c)
    out: list[list[str]] = []
    left = len(pending)
    for ordered in groups.values():
        units = cell_units(ordered)
        i = 0
        while i < len(units):
            size = max(1, -(-left // (TRIALS_PER_WORKER * workers)))  # ceil, in cells
            bundle = [c.cell_id for c in units[i]]
            i += 1
            while i < len(units) and len(bundle) + len(units[i]) <= size:  # never across a group or a preparation
                bundle += [c.cell_id for c in units[i]]
                i += 1
            out.append(bundle)
            left -= len(bundle)
    return out


def _source_groups(pending: list[Cell], store: Store) -> list[str]:
    """One representative cell id per distinct source/chain/DANN preparation whose weights are
    not all cached yet (:func:`~xfer.experiment.prepare.ready_marker`)."""
    from xfer.experiment.prepare import ready_marker

    seen: dict[tuple[str, str, bool, float], Cell] = {}
    for c in pending:
        if c.strategy != "scratch":
            # a DANN source sees the target rows of its fraction, so it is one per fraction
            seen.setdefault((c.pair.pair_id, c.chain_id, c.dann, c.fraction if c.dann else 0.0), c)
    return [c.cell_id for c in seen.values() if not ready_marker(c.setup, store).is_file()]
