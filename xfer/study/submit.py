"""`xfer study submit`: a study as a Ray Job, sent through a cluster's Jobs API (the dashboard).

The job runs ``xfer study run FILE --address auto --out DIR`` on the head node, where ``auto``
joins the cluster the job runs in. Before anything is sent, on this machine:

1. the address must be a Jobs API address, ``http(s)://HOST:PORT`` (the dashboard, 8265 by
   default), that accepts a connection and answers as a Ray dashboard;
2. the study file must pass the check ``xfer study validate`` runs (structure, and the markets
   against this machine's store unless ``check_markets`` is off);
3. the study directory, when given, must be an absolute path (on the head, where the job's
   driver runs and writes the study) or an object-store URI: the job's working directory is a
   temporary copy that Ray deletes.

What travels with the job: a working directory holding the study file alone (or a directory the
caller names, e.g. the project), and the environment variables the caller names. A variable
whose name marks it as a credential (:func:`xfer.study.runner._is_secret`) is refused: Ray
writes a runtime_env in plain text to its logs and keeps it in the GCS. Nodes read credentials
from their own environment (cluster/README.md).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.study.runner import _is_secret, unreachable
from xfer.study.spec import StudySpec, load, parse

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
"""Ray Job states after which nothing changes."""


@dataclass
class Submitted:
    """A submitted study: where it went, and how to follow it."""

    job_id: str
    address: str
    study: str
    study_dir: str
    entrypoint: str
    runtime_env: dict[str, Any] = field(default_factory=dict)

    def follow_commands(self) -> list[str]:
        a = shlex.quote(self.address)
        return [f"ray job logs --follow --address {a} {self.job_id}",
                f"ray job status --address {a} {self.job_id}",
                f"ray job stop --address {a} {self.job_id}",
                f"xfer study status {self.study_dir}"]


# ----------------------------------------------------------------------- checks


def check_jobs_address(address: str, timeout_s: float = 5.0) -> str:
    """``address`` without a trailing slash, once it is ``http(s)://HOST:PORT`` and accepts a
    TCP connection within ``timeout_s`` (the Jobs API client itself waits forever)."""
    field_ = "--address"
    expected = "a Ray Jobs API address http(s)://HOST:PORT (the head's dashboard, e.g. http://127.0.0.1:8265)"
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("http", "https"):
        hint = ("HOST:6379 and ray:// are for `xfer study run --address` from a node of the cluster"
                if not sep or scheme == "ray" else None)
        raise XferInputError(field=field_, expected=expected, found=repr(address), hint=hint)
    hostport = rest.rstrip("/")
    host, colon, port = hostport.rpartition(":")
    if not colon or not host or "/" in hostport or not port.isdigit() or not 0 < int(port) < 65536:
        raise XferInputError(field=field_, expected=expected, found=repr(address))
    why = unreachable(host, int(port), timeout_s)
    if why is not None:
        raise XferInputError(field=field_, expected="a running Ray dashboard (Jobs API) that accepts connections",
                             found=f"{address!r}: {why}",
                             hint="start the head with its dashboard (`ray start --head --dashboard-host=127.0.0.1`) "
                                  "and reach it through `ray dashboard CLUSTER.yaml` or "
                                  "`kubectl port-forward` (cluster/README.md)")
    return f"{scheme}://{hostport}"


def job_env(items: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The job's environment variables from ``NAME=VALUE`` or ``NAME`` (this machine's value);
    a credential's name is refused, whatever its value."""
    env: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise XferInputError(field="--env", expected="NAME=VALUE or NAME (a variable set here)", found=repr(item))
        if _is_secret(name):
            raise XferInputError(field="--env", expected="a variable that holds no credential",
                                 found=f"{name} (a credential's name)",
                                 hint="Ray writes a job's runtime_env to its logs in plain text: give each node "
                                      "the credential in its own environment (cluster/README.md)")
        if not eq:
            if name not in environ:
                raise XferInputError(field="--env", expected=f"{name} set in this environment, or {name}=VALUE",
                                     found=f"{name} not set")
            value = environ[name]
        env[name] = value
    return {k: v for k, v in env.items() if not _is_secret(k)}


def check_study(file: Path, store: Store | None, smoke: bool, check_markets: bool = True) -> StudySpec:
    """The study the job will run, checked as ``xfer study validate`` checks it."""
    spec = load(file, store) if check_markets else parse(file)
    return spec.smoke() if smoke else spec


def _cluster_path(value: str, field_: str, file: Path | None = None) -> str:
    if not value.startswith("/") and "://" not in value:  # a URI: an object store every node reaches
        raise XferInputError(file=file, field=field_,
                             expected="an absolute path on the head node (where the job's driver writes the "
                                      "study) or an object-store URI (s3://bucket/prefix)",
                             found=repr(value),
                             hint="the job runs in a temporary copy of its working directory, which Ray deletes")
    return value


def study_dir_on_cluster(spec: StudySpec, out: str | None, env: Mapping[str, str], file: Path) -> str:
    """Where the job will write the study (as ``xfer study run`` picks it on the head)."""
    if out is not None:
        return _cluster_path(out, "--out")
    if spec.storage is not None:
        return _cluster_path(spec.storage, "storage", file)
    home = env.get("XFER_HOME", "$XFER_HOME")
    return f"{home.rstrip('/')}/studies/{spec.name}"


# ----------------------------------------------------------------------- the job


def entrypoint(study_file: str, out: str | None, smoke: bool) -> str:
    argv = ["xfer", "study", "run", study_file, "--address", "auto"]
    if out is not None:
        argv += ["--out", out]
    if smoke:
        argv.append("--smoke")
    return shlex.join(argv)


OVERRIDE = {"RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}
"""``xfer study run`` hands ``ray.init`` a runtime_env whose env_vars (XFER_HOME, WANDB_MODE...)
may repeat the job's; Ray refuses such a driver unless this is set (the driver's values win,
and the job's working_dir stays)."""


def runtime_env(working_dir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The job's runtime_env: never a credential, whatever ``env`` holds."""
    return {"working_dir": str(working_dir),
            "env_vars": {**{k: v for k, v in env.items() if not _is_secret(k)}, **OVERRIDE}}


def _client(address: str) -> Any:
    """A Jobs API client of ``address`` (checked to answer as a Ray dashboard)."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise XferInputError(field="--address", expected="the Jobs API client (ray[default])",
                             found=f"not installed ({exc})", hint="pip install 'xfer[cluster]'") from None
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise XferInputError(field="--address", expected="a Ray dashboard with the Jobs API",
                             found=f"{address!r}: {exc}") from None


def _job_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "study"
    return f"xfer-{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def submit_study(file: Path, address: str, *, out: str | None = None, smoke: bool = False,
                 env: Mapping[str, str] | None = None, working_dir: Path | None = None,
                 store: Store | None = None, check_markets: bool = True) -> tuple[Any, Submitted]:
    """Check everything here, then submit; returns the client and what was submitted."""
    address = check_jobs_address(address)
    file = Path(file)
    spec = check_study(file, store, smoke, check_markets)
    env = dict(env or {})
    study_dir = study_dir_on_cluster(spec, out, env, file)
    if working_dir is not None:
        wd = Path(working_dir).expanduser().resolve()
        try:
            rel = file.expanduser().resolve().relative_to(wd)
        except ValueError:
            raise XferInputError(file=file, field="--working-dir", expected=f"a study file inside {wd}",
                                 found="a file outside it") from None
        return _submit(address, spec, wd, rel.as_posix(), out, smoke, env, study_dir)
    with tempfile.TemporaryDirectory(prefix="xfer-submit-") as tmp:
        (Path(tmp) / file.name).write_bytes(file.read_bytes())  # the study file alone travels
        return _submit(address, spec, Path(tmp), file.name, out, smoke, env, study_dir)


def _submit(address: str, spec: StudySpec, wd: Path, rel: str, out: str | None, smoke: bool,
            env: dict[str, str], study_dir: str) -> tuple[Any, Submitted]:
    client = _client(address)
    cmd = entrypoint(rel, out, smoke)
    renv = runtime_env(wd, env)
    job_id = client.submit_job(entrypoint=cmd, runtime_env=renv, submission_id=_job_id(spec.name),
                               metadata={"xfer_study": spec.name, "xfer_study_dir": study_dir})
    return client, Submitted(job_id, address, spec.name, study_dir, cmd, renv)


def follow(client: Any, job_id: str, write: Callable[[str], Any], poll_s: float = 1.0) -> str:
    """Stream the job's logs until it ends; its final state (SUCCEEDED, FAILED or STOPPED)."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    try:
        with warnings.catch_warnings():  # Ray's own log-stream call (aiohttp: ssl=None is deprecated)
            warnings.filterwarnings("ignore", "ssl=None", DeprecationWarning)
            asyncio.run(tail())
    except (RuntimeError, OSError) as exc:  # the log stream broke: the state still says how it ended
        write(f"[log stream closed: {exc}]\n")
    while True:
        status = client.get_job_status(job_id)
        state = str(getattr(status, "value", status))
        if state in TERMINAL:
            return state
        time.sleep(poll_s)
