"""Weights & Biases logging for studies: one run per cell, one summary run per study.

Why this shape:

* W&B must never be a reason a study cannot run, or a slow one. :func:`resolve_mode` turns
  "online" into "offline" whenever no API key is configured, so nothing here needs the network;
  :func:`resolve_study_mode` (the study's hook) also says so on the console, and probes the W&B
  host once per study (3 s) so an unreachable host sends every cell offline at once instead of
  each waiting out wandb's ~90 s init timeout. Offline runs land in
  ``<study_dir>/wandb/offline-run-*`` and ``wandb sync`` uploads them later.
* The API key stays in process environments (or netrc): it is never part of a run's config or
  summary, and the study runner keeps it out of Ray's runtime_env, which Ray logs.
* ``wandb`` is imported inside functions only: importing it costs about half a second and
  starts nothing until :func:`wandb.init`, so ``import xfer.tracking`` stays cheap for commands
  that never track anything.
* Every run of a study shares one W&B *group* (:func:`study_group`), which is what the report
  (:mod:`xfer.tracking.wandb_report`) filters on; cell runs have job type ``cell`` and the one
  summary run has job type ``summary``.

Where files land (wandb 0.31, offline):

* ``<study_dir>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>/run-<id>.wandb``: the whole run
  (config, history, summary) as wandb-core's transaction log, read back by
  :mod:`xfer.tracking.offline`; wandb also keeps a ``latest-run`` symlink beside it;
* ``…/files/media/table/<key>_<step>_<hash>.table.json``: each logged ``wandb.Table``;
* ``$WANDB_DATA_DIR/artifacts/staging`` (default ``~/.local/share/wandb``): staged copies of
  those tables as ``run_table`` artifacts, which ``wandb sync`` uploads; and
  ``$WANDB_CACHE_DIR/wandb/logs`` (default ``~/.cache/wandb``): wandb-core's debug log.
"""

from __future__ import annotations

import contextlib
import json
import math
import netrc
import os
import re
import warnings
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from xfer.errors import XferInputError
from xfer.evaluate.contract import (
    BASELINES,
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    POOLED_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    STRATEGY_ORDER,
    VERDICT_COLUMNS,
)

if TYPE_CHECKING:
    import pandas as pd
    from wandb.sdk.wandb_run import Run

MODES = ("online", "offline", "disabled")
"""The modes xfer passes to :func:`wandb.init` (after :func:`resolve_mode`)."""

_MODE_ALIASES = {"dryrun": "offline", "run": "online", "auto": None, "": None}
"""Spellings wandb itself accepts for ``WANDB_MODE``, mapped onto :data:`MODES`."""

DEFAULT_BASE_URL = "https://api.wandb.ai"

SUMMARY_TABLES = ("verdicts", "verdict_matrix", "sizing", "curves", "comparisons", "pooled")
"""Summary-run keys holding a ``wandb.Table`` (the report's table panels use these names).

``predictions.parquet`` (one row per test day of every fit and baseline) is never uploaded as
a table: it is large, and the summary carries its row count (``n_prediction_rows``)."""

STUDY_TABLES: dict[str, tuple[str, ...]] = {
    "results": (),
    "verdicts": VERDICT_COLUMNS,
    "curves": CURVE_COLUMNS,
    "sizing": SIZING_COLUMNS,
    "comparisons": COMPARISON_COLUMNS,
    "pooled": POOLED_COLUMNS,
}
"""The contract files the W&B layer reads, and the columns it needs of each."""

BASELINE_STRATEGIES = frozenset(b for names in BASELINES.values() for b in names)
"""Practitioner baselines' names in curves.parquet: reference lines, not transfer strategies."""

CURVE_KEY_PREFIX = "curve"
"""Summary-run charts are logged as ``curve/<pair>/<chain>`` (see :func:`curve_key`)."""


# --------------------------------------------------------------------------- mode / credentials


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def has_api_key() -> bool:
    """Whether W&B credentials are configured, without importing wandb or touching the network.

    Looks where wandb looks: ``WANDB_API_KEY``, an identity-token file, or a netrc entry (``$NETRC``
    or ``~/.netrc``) for the host of ``WANDB_BASE_URL``. A key is not validated: a wrong key fails
    at ``wandb.init``, where :class:`CellRun` falls back to offline.
    """
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    token_file = os.environ.get("WANDB_IDENTITY_TOKEN_FILE", "").strip()
    if token_file and Path(token_file).expanduser().is_file():
        return True
    candidates = (
        [Path(os.environ["NETRC"]).expanduser()]
        if os.environ.get("NETRC")
        else [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]
    )
    host = re.sub(r"^[a-z]+://", "", _base_url()).split("/")[0]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            auth = netrc.netrc(str(path)).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            continue
        if auth and auth[2]:
            return True
    return False


def resolve_mode(requested: str | None) -> str:
    """The W&B mode to run in: ``online`` only when it can work without asking anyone.

    ``disabled`` stays disabled; ``online`` becomes ``offline`` when no API key is configured
    (so a study never prompts for a login or waits on the network); ``None`` means "whatever
    ``WANDB_MODE`` says, else online if a key is configured, else offline".

    Raises:
        XferInputError: for a mode wandb would not understand either.
    """
    raw = requested
    if raw is None:
        raw = os.environ.get("WANDB_MODE")
    mode = (raw or "").strip().lower()
    mode = _MODE_ALIASES.get(mode, mode) or ""
    if mode and mode not in MODES:
        raise XferInputError(
            field="wandb.mode",
            expected="one of online, offline, disabled (or unset)",
            found=repr(requested if requested is not None else raw),
        )
    if mode == "disabled":
        return "disabled"
    if mode == "offline":
        return "offline"
    return "online" if has_api_key() else "offline"


PROBE_TIMEOUT_S = 3.0
"""How long :func:`resolve_study_mode` waits for a TCP connection to the W&B host (or proxy)."""


def probe_target() -> tuple[str, int]:
    """The (host, port) a W&B client connects to first: the ``https``/``http`` proxy when one is
    configured for the base URL's scheme (and the host is not in ``NO_PROXY``), else the host
    of ``WANDB_BASE_URL`` (default ``https://api.wandb.ai``)."""
    import urllib.request
    from urllib.parse import urlsplit

    url = urlsplit(_base_url())
    scheme = url.scheme or "https"
    host = url.hostname or "api.wandb.ai"
    port = url.port or (443 if scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            return p.hostname, p.port or (443 if p.scheme == "https" else 80)
    return host, port


def _probe(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _say(message: str) -> None:
    """One line on the console (stderr, beside the study's own progress lines)."""
    import sys

    print(message, file=sys.stderr, flush=True)


def resolve_study_mode(requested: str | None) -> str:
    """:func:`resolve_mode` for a whole study, said out loud, with one reachability probe.

    Called once by the study driver before any cell starts (the ``resolve_mode`` hook), so
    every cell gets the mode decided here:

    * ``online`` asked for (in the spec or ``WANDB_MODE``) without an API key: offline, and one
      console line says so;
    * online with a key: one TCP connection to the W&B host (:func:`probe_target`) within
      :data:`PROBE_TIMEOUT_S`; if none opens, one console line says so and every cell logs
      offline. Without the probe each cell would wait out wandb's init timeout (~90 s)
      before falling back on its own.
    """
    mode = resolve_mode(requested)
    raw = requested if requested is not None else os.environ.get("WANDB_MODE")
    asked = _MODE_ALIASES.get((raw or "").strip().lower(), (raw or "").strip().lower())
    if asked == "online" and mode == "offline":
        _say("W&B: mode online but no W&B API key is configured (WANDB_API_KEY, `wandb login`); "
             "logging offline under the study directory instead (upload later with `wandb sync`)")
    if mode != "online":
        return mode
    host, port = probe_target()
    if not _probe(host, port, PROBE_TIMEOUT_S):
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        _say(f"W&B: {where} not reachable within {PROBE_TIMEOUT_S:g} s; every cell of this study logs "
             "offline under the study directory (upload later with `wandb sync`)")
        return "offline"
    return mode


def study_group(study_dir: Path) -> str:
    """The W&B group of a study's runs: the spec's ``name`` if it has one, else the folder name.

    One function so the cell runs, the summary run and the report agree on it.
    """
    spec_path = Path(study_dir) / "spec.json"
    if spec_path.is_file():
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError):
            spec = None
        if isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]:
            return spec["name"]
    return Path(study_dir).resolve().name


# --------------------------------------------------------------------------- runs


def _settings(*, system_metrics: bool) -> Any:
    """Quiet, fast settings: a cell run is tiny, the defaults would cost more than its data.

    No console capture (Ray already collects trial output), no system-metrics sampler and no
    ``pip freeze`` per run; the git/host metadata stays on because it says what code ran.
    """
    import wandb

    return wandb.Settings(
        silent=True,
        console="off",
        x_disable_stats=not system_metrics,
        x_save_requirements=False,
        disable_code=True,
    )


LOCK_NAME = ".xfer-wandb.lock"
"""Lock file in ``<study_dir>/wandb`` held around ``wandb.init`` and ``run.finish``."""


@contextlib.contextmanager
def _runs_lock(wandb_dir: Path) -> Any:
    """Serialise W&B run starts and finishes of processes that share one ``wandb`` directory.

    wandb (0.2x-0.31) checks for ``<dir>/wandb/wandb-resume.json`` and then removes it, both at
    init and at finish; two runs of one study finishing at the same moment (concurrent cells on
    one node) can both see the file and the second ``os.remove`` raises ``FileNotFoundError``,
    aborting that run's finish. An advisory ``flock`` on a file in the same directory makes each
    check-and-remove atomic among xfer's processes (a no-op where ``fcntl`` does not exist)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    wandb_dir.mkdir(parents=True, exist_ok=True)
    with open(wandb_dir / LOCK_NAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _init_run(
    study_dir: Path,
    *,
    project: str,
    entity: str | None,
    mode: str,
    group: str,
    name: str,
    job_type: str,
    config: Mapping[str, Any],
    tags: list[str] | None,
    system_metrics: bool = False,
) -> Run:
    """``wandb.init`` for xfer: files under ``study_dir/wandb``; online falls back to offline."""
    import wandb

    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "dir": str(study_dir),
        "project": project,
        "entity": entity or None,
        "group": group,
        "name": name,
        "job_type": job_type,
        "config": _jsonable(dict(config)),
        "tags": list(tags) if tags else None,
        "reinit": "create_new",
        "settings": _settings(system_metrics=system_metrics),
    }
    try:
        with _runs_lock(study_dir / "wandb"):
            return wandb.init(mode=mode, **kwargs)
    except Exception as exc:
        if mode != "online":
            raise
        warnings.warn(
            f"W&B online init failed ({exc}); logging offline to {study_dir / 'wandb'} instead "
            "(upload later with `wandb sync`)",
            RuntimeWarning,
            stacklevel=3,
        )
        with _runs_lock(study_dir / "wandb"):
            return wandb.init(mode="offline", **kwargs)


FLUSH_TIMEOUT_S = 30.0
"""How long :func:`_finish` waits for wandb-core to write an offline run's log to disk."""


def _finish(run: Run, exit_code: int | None = None) -> None:
    """``run.finish()``, then wait until an offline run's ``.wandb`` file is on disk.

    wandb 0.31 returns from ``finish()`` before wandb-core has written the offline log (it is
    often still just its 7-byte header); without the wait, ``wandb sync``, the offline reader
    or a process exit right after could see an empty run. The wait is ~1 ms in practice.
    """
    from xfer.tracking.offline import wait_until_complete

    offline = bool(run.offline)
    run_dir = Path(run.dir).parent
    with _runs_lock(run_dir.parent):  # <study_dir>/wandb
        run.finish(exit_code=exit_code)
    if offline and not wait_until_complete(run_dir, timeout=FLUSH_TIMEOUT_S):
        warnings.warn(
            f"W&B run log {run_dir} not complete {FLUSH_TIMEOUT_S:g} s after finish",
            RuntimeWarning,
            stacklevel=3,
        )


class CellRun:
    """One W&B run for one study cell (a Ray Tune trial): config, per-step metrics, a summary.

    A no-op object when the mode resolves to ``disabled`` so callers never branch on tracking.
    Use as a context manager: a cell that raises is finished with exit code 1 (``failed`` in
    the W&B UI) instead of being left ``running`` until the process dies.
    """

    def __init__(
        self,
        study_dir: Path,
        *,
        project: str,
        entity: str | None,
        mode: str,
        group: str,
        name: str,
        config: dict[str, Any],
        job_type: str = "cell",
        tags: list[str] | None = None,
        system_metrics: bool = False,
    ) -> None:
        self.mode = resolve_mode(mode)
        self.name = name
        self._run: Run | None = None
        self._finished = False
        if self.mode == "disabled":
            return
        self._run = _init_run(
            Path(study_dir),
            project=project,
            entity=entity,
            mode=self.mode,
            group=group,
            name=name,
            job_type=job_type,
            config=config,
            tags=tags,
            system_metrics=system_metrics,
        )
        # The run may have fallen back from online to offline.
        self.mode = "offline" if self._run.offline else self.mode

    @property
    def enabled(self) -> bool:
        """Whether a real W&B run backs this object (False when disabled)."""
        return self._run is not None

    @property
    def run_id(self) -> str | None:
        return self._run.id if self._run is not None else None

    @property
    def run_dir(self) -> Path | None:
        """The local run directory (``<study_dir>/wandb/offline-run-…``), None when disabled."""
        return Path(self._run.dir).parent if self._run is not None else None

    @property
    def finished(self) -> bool:
        return self._finished

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log one history row. ``step`` must not decrease (W&B drops rows that go back).

        Raises:
            RuntimeError: after :meth:`finish`, rather than dropping the metrics silently.
        """
        if self._run is None:
            return
        if self._finished:
            raise RuntimeError(
                f"W&B run {self.name!r} is already finished; cannot log {list(metrics)}"
            )
        self._run.log(_jsonable(dict(metrics), strict=False), step=step)

    def finish(
        self, summary: Mapping[str, Any] | None = None, exit_code: int | None = None
    ) -> None:
        """Write ``summary`` values and close the run; later calls do nothing."""
        if self._run is None or self._finished:
            self._finished = True
            return
        self._finished = True
        if summary:
            self._run.summary.update(_jsonable(dict(summary), strict=False))
        _finish(self._run, exit_code=exit_code)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exit_code=1 if exc_type is not None else None)


def shutdown() -> None:
    """Stop this process's wandb-core service, if wandb was ever started here.

    wandb stops it at interpreter exit, but exit hooks are unreliable in worker processes
    (Ray, multiprocessing); call this when a worker is done with W&B.
    """
    import sys

    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


# --------------------------------------------------------------------------- study tables


def _jsonable(value: Any, *, strict: bool = True) -> Any:
    """Plain JSON-able Python values: numpy scalars/arrays, NaN (→ None), dates, paths, tuples.

    W&B's own JSON encoder chokes on pandas 3 string scalars and turns NaN into strings in
    tables, so values are normalised here. With ``strict=False`` unknown objects (``wandb.Image``,
    ``wandb.Table``…) pass through untouched for :meth:`CellRun.log`; otherwise they become text.
    """
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, strict=strict) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, strict=strict) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        return _jsonable(tolist(), strict=strict)
    try:
        import pandas as pd

        if pd.api.types.is_scalar(value) and pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value) if strict else value


def read_study_frames(study_dir: Path) -> dict[str, pd.DataFrame]:
    """The study's contract parquet files that exist, keyed by stem (``verdicts``, ``sizing``…).

    A study logged before it finished has only some of them; missing ones are simply absent.
    ``predictions.parquet`` is not read (see :func:`prediction_rows`).

    Raises:
        XferInputError: ``study_dir`` is not a directory.
        xfer.evaluate.tables.StaleTableError: a file lacks contract columns (written before
            day-level verdicts); the message names the file and the missing columns.
    """
    import pandas as pd

    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise XferInputError(
            file=study_dir, expected="a study directory", found="no such directory"
        )
    frames: dict[str, pd.DataFrame] = {}
    for stem, columns in STUDY_TABLES.items():
        path = study_dir / f"{stem}.parquet"
        if path.is_file():
            frames[stem] = pd.read_parquet(path)
            if any(c not in frames[stem].columns for c in columns):
                # imported here: xfer.evaluate.tables loads arch/statsmodels
                from xfer.evaluate.tables import require_columns

                require_columns(frames[stem], columns, str(path))
    return frames


def prediction_rows(study_dir: Path) -> int | None:
    """Rows of ``predictions.parquet`` from its footer (the file itself is not read), or None."""
    path = Path(study_dir) / "predictions.parquet"
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def strategy_label(strategy: str, dann_weight: float | None) -> str:
    """``full`` or ``full+dann0.1``: DANN variants are separate columns, not hidden averages."""
    if dann_weight is None or (isinstance(dann_weight, float) and math.isnan(dann_weight)):
        return str(strategy)
    return str(strategy) if float(dann_weight) == 0.0 else f"{strategy}+dann{float(dann_weight):g}"


def strategy_sort_key(label: str) -> tuple[int, str]:
    """Sort strategies (or their DANN labels) scratch, head_only, partial, full, then others."""
    base = label.split("+", 1)[0]
    rank = STRATEGY_ORDER.index(base) if base in STRATEGY_ORDER else len(STRATEGY_ORDER)
    return (rank, label)


def _chain_sort_key(chain: str) -> tuple[int, str]:
    return (0 if chain == "direct" else 1, chain)


def below_baseline(verdict: Any, best_baseline: Any, beats_baseline: Any) -> bool:
    """Positive against scratch, yet not above the best practitioner baseline.

    Only when a baseline was fitted (``best_baseline`` names one) and ``beats_baseline`` is
    explicitly false, so a study without baselines raises no false alarm.
    """
    beats = _jsonable(beats_baseline)
    return (str(verdict) == "positive" and isinstance(best_baseline, str) and bool(best_baseline)
            and beats is False)


def format_verdict(verdict: Any, delta: Any, below: str | None = None) -> str:
    """``positive (+0.034)``: the verdict with the effect size that produced it;
    ``positive (+0.034; below har_rv)`` when it does not beat its best baseline ``below``."""
    verdict, delta = _jsonable(verdict), _jsonable(delta)
    text = "" if verdict is None else str(verdict)
    note = f"; below {below}" if below else ""
    if not isinstance(delta, int | float) or isinstance(delta, bool):
        return f"{text} (below {below})" if below else text
    return f"{text} ({float(delta):+.3f}{note})"


def _below_names(v: pd.DataFrame) -> list[str | None]:
    """Per row, the best baseline's name where the row is positive but below it, else None."""
    if not {"best_baseline", "beats_baseline"} <= set(v.columns):
        return [None] * len(v)
    return [str(b) if below_baseline(w, b, k) else None
            for w, b, k in zip(v["verdict"], v["best_baseline"], v["beats_baseline"], strict=True)]


def verdict_matrix(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Rows pair | chain | fraction, one column per strategy, cells ``verdict (delta)``.

    The one table a reviewer reads first. The verdict is the table's (Holm-adjusted) one; a
    positive cell that does not beat its best practitioner baseline reads
    ``positive (+0.034; below har_rv)``. Scratch is the reference every delta is measured
    against, so it gets no column; an empty string marks a cell the study did not run.
    """
    import pandas as pd

    v = verdicts
    if "strategy" in v.columns:
        v = v[v["strategy"] != "scratch"]
    if "verdict" in v.columns:
        v = v[v["verdict"] != "baseline"]
    if v.empty:
        return pd.DataFrame(columns=["pair", "chain", "fraction"])
    dann = v["dann_weight"] if "dann_weight" in v.columns else pd.Series(0.0, index=v.index)
    labels = [strategy_label(s, w) for s, w in zip(v["strategy"], dann, strict=True)]
    cells = [format_verdict(a, b, n)
             for a, b, n in zip(v["verdict"], v["delta"], _below_names(v), strict=True)]
    long = pd.DataFrame(
        {
            "pair": v["pair"].astype(str).to_numpy(),
            "chain": v["chain"].astype(str).to_numpy(),
            "fraction": v["fraction"].astype(float).to_numpy(),
            "label": labels,
            "cell": cells,
        }
    )
    wide = long.pivot_table(
        index=["pair", "chain", "fraction"], columns="label", values="cell", aggfunc="first"
    )
    columns = sorted(wide.columns, key=strategy_sort_key)
    wide = wide[columns].fillna("").reset_index()
    wide.columns.name = None
    order = sorted(
        range(len(wide)),
        key=lambda i: (wide["pair"][i], _chain_sort_key(wide["chain"][i]), wide["fraction"][i]),
    )
    return wide.iloc[order].reset_index(drop=True)


def sizing_table(sizing: pd.DataFrame) -> pd.DataFrame:
    """The sizing table with ``rule_of_thumb`` right beside ``required_fraction``.

    Missing rules of thumb are filled from :data:`~xfer.evaluate.contract.RULE_OF_THUMB` so the
    measured fraction is always read against the article's claim.
    """
    s = sizing.copy()
    rule = s["rule_of_thumb"] if "rule_of_thumb" in s.columns else None
    filled = [
        r if isinstance(r, str) and r else RULE_OF_THUMB.get(str(st), "")
        for st, r in zip(s["strategy"], rule if rule is not None else [None] * len(s), strict=True)
    ]
    s["rule_of_thumb"] = filled
    first = [
        c
        for c in (
            "pair",
            "chain",
            "strategy",
            "dann_weight",
            "metric",
            "required_fraction",
            "rule_of_thumb",
            "ci_low",
            "ci_high",
            "reached_share",
        )
        if c in s.columns
    ]
    return s[first + [c for c in s.columns if c not in first]]


def _table(df: pd.DataFrame) -> Any:
    """A ``wandb.Table`` from a frame, values made plain (pandas 3 strings, NaN → null)."""
    import wandb

    if len(df) > wandb.Table.MAX_ROWS:
        warnings.warn(
            f"W&B tables keep {wandb.Table.MAX_ROWS} rows; {len(df)} rows truncated",
            RuntimeWarning,
            stacklevel=3,
        )
    columns = [str(c) for c in df.columns]
    data = [[_jsonable(v) for v in row] for row in df.itertuples(index=False, name=None)]
    return wandb.Table(columns=columns, data=data, allow_mixed_types=True)


def _slug(text: str) -> str:
    """A W&B-key-safe rendering of a pair or chain: ``us,uk->jp`` → ``us+uk_to_jp``."""
    text = text.replace("->", "_to_").replace(",", "+").replace(">", "_then_")
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "_"


def curve_key(pair: str, chain: str) -> str:
    """Summary-run key of the data-sizing chart of one (pair, chain)."""
    return f"{CURVE_KEY_PREFIX}/{_slug(pair)}/{_slug(chain)}"


def _curve_charts(curves: pd.DataFrame) -> dict[str, Any]:
    """One ``line_series`` chart per (pair, chain): x = fraction, one line per strategy, plus
    one per practitioner baseline of the pair (``har_rv (baseline)``…)."""
    import pandas as pd
    import wandb

    charts: dict[str, Any] = {}
    c = curves.dropna(subset=["mean", "fraction"])
    if c.empty:
        return charts
    dann = c["dann_weight"] if "dann_weight" in c.columns else [0.0] * len(c)
    c = c.assign(_label=[f"{s} (baseline)" if s in BASELINE_STRATEGIES else strategy_label(s, w)
                         for s, w in zip(c["strategy"], dann, strict=True)])
    is_base = c["strategy"].astype(str).isin(BASELINE_STRATEGIES)
    models, bases = c[~is_base], c[is_base]
    for (pair, chain), g in models.groupby(["pair", "chain"], sort=True):
        # baselines are fitted once per target (filed under the direct chain): every chart of
        # the pair gets them as reference lines
        base = bases[bases["pair"] == pair].drop_duplicates(["_label", "fraction"])
        g = pd.concat([g, base], ignore_index=True)
        xs: list[list[float]] = []
        ys: list[list[float]] = []
        keys: list[str] = []
        for label in sorted(g["_label"].unique(), key=strategy_sort_key):
            line = g[g["_label"] == label].sort_values("fraction")
            xs.append([float(x) for x in line["fraction"]])
            ys.append([float(y) for y in line["mean"]])
            keys.append(str(label))
        metric = str(g["metric"].iloc[0]) if "metric" in g.columns else "score"
        charts[curve_key(str(pair), str(chain))] = wandb.plot.line_series(
            xs=xs,
            ys=ys,
            keys=keys,
            title=f"{pair} ({chain}): test {metric} vs target-data fraction",
            xname="fraction",
        )
    return charts


def _study_config(study_dir: Path, frames: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """What the summary run is about: the resolved spec plus the grid actually present."""
    config: dict[str, Any] = {"study": study_group(study_dir), "study_dir": str(study_dir)}
    spec_path = study_dir / "spec.json"
    if spec_path.is_file():
        with contextlib.suppress(ValueError):
            config["spec"] = json.loads(spec_path.read_text())
    source = next((frames[k] for k in ("verdicts", "results", "curves") if k in frames), None)
    if source is not None:
        for col, key in (
            ("pair", "pairs"),
            ("strategy", "strategies"),
            ("chain", "chains"),
            ("fraction", "fractions"),
            ("dann_weight", "dann_weights"),
        ):
            if col in source.columns:
                config[key] = sorted({_jsonable(v) for v in source[col].dropna()}, key=str)
    return config


def study_counts(study_dir: Path, frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Headline counts: cells, fits, and verdicts by outcome (scratch rows excluded).

    The outcomes are the table's ``verdict`` column, read from the Holm-adjusted p-value;
    ``n_comparisons`` is the size of that family, ``n_positive_below_baseline`` the positive
    verdicts that do not beat their best practitioner baseline, ``n_beats_baseline`` the
    judged cells that do, ``n_market_pairs`` the pairs with verdicts, and
    ``n_prediction_rows`` the size of predictions.parquet (never uploaded as a table).
    """
    counts: dict[str, int] = {}
    cells = list((Path(study_dir) / "cells").glob("*.parquet"))
    results = frames.get("results")
    if cells:
        counts["n_cells"] = len(cells)
    elif results is not None and "cell_id" in results.columns:
        counts["n_cells"] = int(results["cell_id"].nunique())
    else:
        counts["n_cells"] = 0
    counts["n_fits"] = len(results) if results is not None else 0
    verdicts = frames.get("verdicts")
    if verdicts is not None:
        judged = verdicts[(verdicts["verdict"] != "baseline") & (verdicts["strategy"] != "scratch")]
        counts["n_verdicts"] = len(judged)
        for outcome in ("positive", "negative", "inconclusive"):
            counts[f"n_{outcome}"] = int((judged["verdict"] == outcome).sum())
        counts["n_positive_below_baseline"] = sum(n is not None for n in _below_names(judged))
        if "beats_baseline" in judged.columns:
            counts["n_beats_baseline"] = sum(_jsonable(b) is True for b in judged["beats_baseline"])
        if "n_comparisons" in verdicts.columns and verdicts["n_comparisons"].notna().any():
            counts["n_comparisons"] = int(verdicts["n_comparisons"].max())
        counts["n_market_pairs"] = int(verdicts["pair"].nunique())
    rows = prediction_rows(study_dir)
    if rows is not None:
        counts["n_prediction_rows"] = rows
    return counts


def log_study_summary(
    study_dir: Path,
    *,
    project: str,
    entity: str | None,
    mode: str,
    group: str,
    name: str | None = None,
) -> Path | None:
    """Log the study's results as one ``summary`` run in the study's group.

    Tables (``verdicts``, ``verdict_matrix``, ``sizing``, ``curves``, ``comparisons``: small,
    one row per cell or comparison), one data-sizing chart per (pair, chain) under
    ``curve/<pair>/<chain>`` with the baselines as reference lines, and headline counts in the
    summary (:func:`study_counts`: ``n_positive``, ``n_positive_below_baseline``…, plus the
    verdicts' ``adjustment``). ``predictions.parquet`` is summarised, not uploaded. Safe to
    call again after a resume: each call makes a new run, the report's runset shows the
    latest first.

    Returns:
        The local run directory (offline: what ``wandb sync`` uploads; online: wandb's local
        copy), or None when the mode resolves to ``disabled``.
    """
    mode = resolve_mode(mode)
    if mode == "disabled":
        return None
    study_dir = Path(study_dir)
    frames = read_study_frames(study_dir)
    run = _init_run(
        study_dir,
        project=project,
        entity=entity,
        mode=mode,
        group=group,
        name=name or f"{group}-summary",
        job_type="summary",
        config=_study_config(study_dir, frames),
        tags=["summary"],
    )
    try:
        payload: dict[str, Any] = {}
        if "verdicts" in frames:
            payload["verdicts"] = _table(frames["verdicts"])
            payload["verdict_matrix"] = _table(verdict_matrix(frames["verdicts"]))
        if "sizing" in frames:
            payload["sizing"] = _table(sizing_table(frames["sizing"]))
        if "curves" in frames:
            payload["curves"] = _table(frames["curves"])
            payload.update(_curve_charts(frames["curves"]))
        if "comparisons" in frames:
            payload["comparisons"] = _table(frames["comparisons"])
        if "pooled" in frames and len(frames["pooled"]):
            payload["pooled"] = _table(frames["pooled"])
        if payload:
            run.log(payload, step=0)
        run.summary.update(study_counts(study_dir, frames))
        if "verdicts" in frames and "adjustment" in frames["verdicts"].columns:
            methods = sorted({str(a) for a in frames["verdicts"]["adjustment"].dropna()})
            if methods:
                run.summary["adjustment"] = ", ".join(methods)
    except BaseException:
        _finish(run, exit_code=1)
        raise
    _finish(run)
    return Path(run.dir).parent


# ----------------------------------------------------------------------- study hooks


CELL_RUNS_DIR = "xfer-cells"
"""Under ``<study_dir>/wandb``: one file per cell naming the run directory of its latest attempt."""

INTERRUPTED_RUNS_DIR = "wandb-interrupted"
"""Under ``<study_dir>``: the run directories of cell attempts that a later attempt replaced."""


def _set_aside_earlier_run(study_dir: Path, cell_id: str) -> None:
    """Move the run of this cell's previous attempt out of ``wandb/`` (see :func:`cell_tracker`)."""
    marker = Path(study_dir) / "wandb" / CELL_RUNS_DIR / cell_id
    if not marker.is_file():
        return
    old = Path(study_dir) / "wandb" / Path(marker.read_text().strip()).name
    if old.name.startswith(("offline-run-", "run-")) and old.is_dir() and not old.is_symlink():
        dest = Path(study_dir) / INTERRUPTED_RUNS_DIR / old.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, dest)
    marker.unlink()


def cell_tracker(study_dir: Path, spec: Any, cell: Any, mode: str) -> CellRun:
    """The study runner's per-cell hook (runs in a Ray worker): one W&B run per cell, whose
    config is the cell's resolved experiment and the study's search space.

    The runner asks for a tracker only for a cell without results, so a run left by an earlier
    attempt of the cell (a killed driver's: offline, often just wandb's 7-byte header) is an
    orphan: it is moved to ``<study_dir>/wandb-interrupted/``, and ``wandb/`` keeps one run per
    cell. Each cell's latest run directory is recorded in ``wandb/xfer-cells/<cell_id>``.
    """
    from xfer.io import write_text

    _set_aside_earlier_run(Path(study_dir), cell.cell_id)
    run = CellRun(
        study_dir, project=spec.tracking.project, entity=spec.tracking.entity, mode=mode,
        group=spec.name, name=cell.cell_id, job_type="cell",
        config={"cell_id": cell.cell_id, "pair": cell.pair.pair_id, "chain": cell.chain_id,
                "dann": cell.dann, "strategy": cell.strategy, "fraction": cell.fraction,
                "transfer": json.loads(cell.setup.model_dump_json()),
                "search": json.loads(spec.search.model_dump_json())},
    )
    if run.run_dir is not None:
        write_text(Path(study_dir) / "wandb" / CELL_RUNS_DIR / cell.cell_id, run.run_dir.name)
    return run


def study_summary(study_dir: Path, spec: Any, mode: str) -> Path | None:
    """The study runner's summary hook: one ``summary`` run in the study's group."""
    return log_study_summary(study_dir, project=spec.tracking.project, entity=spec.tracking.entity, mode=mode,
                             group=spec.name, name=f"{spec.name}-summary")
