"""`xfer study submit`: a study sent as a Ray Job through the Jobs API.

Fast tests (no Ray): every check runs before anything is sent (bad address, nobody answering,
invalid study, relative study directory, a credential in --env), and the runtime_env carries the
study file alone and no credential. One Ray test: a `ray start` head with its dashboard on this
host runs a submitted smoke study to the end, and its results hold every expected fit once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import yaml

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.study import submit as S
from xfer.study.spec import StudySpec, cells

BIN = Path(sys.executable).parent
TINY = {"batch_size": 64, "steps_per_epoch": 3, "max_epochs": 2, "patience": 1, "eval_rows": 256}
SPEC = {
    "name": "submitted", "pairs": [{"source": "syn_shared_src", "target": "syn_shared_tgt"}],
    "grid": {"strategies": ["scratch", "head_only"], "fractions": [0.3, 1.0], "seeds": 2,
             "backbone": {"hidden": 8}},
    "search": {"trials_per_cell": 2, "batch_size": 2, "sampler": "random"},
    "evaluation": {"folds": 2, "importance_repeats": 0}, "train": TINY, "source": {"train": TINY},
    "tracking": {"mode": "disabled"}}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("submit") / "home"
    syn.write_set(Store(h), "shared", n_source=2000, n_target=1500, seed=0)
    return h


@pytest.fixture()
def study_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XFER_HOME", str(home))
    f = tmp_path / "submitted.yaml"
    f.write_text(yaml.safe_dump(SPEC))
    return f


class FakeClient:
    """Records what would be submitted; the study file's working directory is listed at submit."""

    def __init__(self, states: list[str] | None = None) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.states = states or ["SUCCEEDED"]

    def submit_job(self, **kw: Any) -> str:
        wd = Path(kw["runtime_env"]["working_dir"])
        self.submitted.append({**kw, "files": {p.name: p.read_text() for p in wd.iterdir()}})
        return kw["submission_id"]

    async def tail_job_logs(self, job_id: str) -> Any:
        for line in ("phase 1\n", "phase 2\n"):
            yield line

    def get_job_status(self, job_id: str) -> str:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest.fixture()
def listening() -> Iterator[str]:
    """An address that accepts TCP connections (the fake client answers for the dashboard)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(S, "_client", lambda address: client)
    return client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:8265", "ray://127.0.0.1:10001", "ftp://127.0.0.1:8265",
                                     "http://127.0.0.1", "http://127.0.0.1:99999", "http://127.0.0.1:8265/api"])
def test_a_non_jobs_api_address_is_refused_before_anything(cli, study_file: Path, fake: FakeClient,
                                                            address: str) -> None:
    r = cli("study", "submit", str(study_file), "--address", address)
    assert r.code == 2 and "--address: expected a Ray Jobs API address http(s)://HOST:PORT" in r.err, r.err
    assert repr(address) in r.err and fake.submitted == []


def test_an_address_nobody_answers_at_is_refused(cli, study_file: Path, fake: FakeClient) -> None:
    address = f"http://127.0.0.1:{_free_port()}"
    r = cli("study", "submit", str(study_file), "--address", address)
    assert r.code == 2 and "--address: expected a running Ray dashboard (Jobs API) that accepts connections" in r.err
    assert repr(address) in r.err and fake.submitted == []


def test_an_invalid_study_is_refused_with_file_and_field(cli, tmp_path: Path, listening: str,
                                                         fake: FakeClient, home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFER_HOME", str(home))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPEC, "search": {**SPEC["search"], "trials_per_cell": 0}}))
    r = cli("study", "submit", str(bad), "--address", listening)
    assert r.code == 2 and f"{bad}: search.trials_per_cell" in r.err, r.err
    missing = {**SPEC, "pairs": [{"source": "syn_shared_src", "target": "nowhere"}]}
    bad.write_text(yaml.safe_dump(missing))
    r = cli("study", "submit", str(bad), "--address", listening)
    assert r.code == 2 and str(bad) in r.err and "nowhere" in r.err, r.err
    assert fake.submitted == []


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "relative/dir"], "--out: expected an absolute path on the head node"),
    (["--env", "WANDB_API_KEY"], "--env: expected a variable that holds no credential; found WANDB_API_KEY"),
    (["--env", "HF_TOKEN=abc"], "--env: expected a variable that holds no credential; found HF_TOKEN"),
    (["--env", "NOT_SET_ANYWHERE"], "--env: expected NOT_SET_ANYWHERE set in this environment"),
    (["--working-dir", "/usr"], "--working-dir: expected a study file inside /usr"),
])
def test_bad_options_are_refused_before_anything(cli, study_file: Path, listening: str, fake: FakeClient,
                                                 monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                 message: str) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    r = cli("study", "submit", str(study_file), "--address", listening, *args)
    assert r.code == 2 and message in r.err, r.err
    assert fake.submitted == []


def test_the_job_carries_the_study_file_and_named_variables_never_a_secret(
        cli, study_file: Path, listening: str, fake: FakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + "x" * 33
    for name in ("WANDB_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv("WANDB_MODE", "offline")
    r = cli("study", "submit", str(study_file), "--address", listening + "/", "--out", "/shared/studies/s",
            "--smoke", "--env", "XFER_HOME=/shared/xfer", "--env", "WANDB_MODE")
    assert r.code == 0, r.err
    (job,) = fake.submitted
    assert job["entrypoint"] == "xfer study run submitted.yaml --address auto --out /shared/studies/s --smoke"
    assert job["runtime_env"]["env_vars"] == {"XFER_HOME": "/shared/xfer", "WANDB_MODE": "offline", **S.OVERRIDE}
    assert set(job["runtime_env"]) == {"working_dir", "env_vars"}
    assert job["files"] == {"submitted.yaml": study_file.read_text()}  # the study file alone travels
    assert secret not in json.dumps({k: v for k, v in job.items() if k != "files"})
    assert not os.path.exists(job["runtime_env"]["working_dir"])  # the temporary copy is gone
    assert job["metadata"] == {"xfer_study": "submitted-smoke", "xfer_study_dir": "/shared/studies/s"}
    jid = job["submission_id"]
    for line in (f"submitted study submitted-smoke as Ray job {jid} to {listening}",
                 f"ray job logs --follow --address {listening} {jid}", f"ray job status --address {listening} {jid}",
                 "xfer study status /shared/studies/s"):
        assert line in r.out, r.out


def test_an_object_store_study_directory_goes_through(cli, study_file: Path, listening: str,
                                                      fake: FakeClient) -> None:
    r = cli("study", "submit", str(study_file), "--address", listening, "--out", "s3://bucket/studies/s")
    assert r.code == 0, r.err
    assert [j["entrypoint"] for j in fake.submitted] == [
        "xfer study run submitted.yaml --address auto --out s3://bucket/studies/s"]
    assert "xfer study status s3://bucket/studies/s" in r.out


def test_a_runtime_env_drops_secrets_whatever_it_is_handed(tmp_path: Path) -> None:
    env = S.runtime_env(tmp_path, {"WANDB_API_KEY": "k", "MY_TOKEN": "t", "DB_PASSWORD": "p", "XFER_HOME": "/h"})
    assert env == {"working_dir": str(tmp_path), "env_vars": {"XFER_HOME": "/h", **S.OVERRIDE}}


def test_the_project_as_working_dir(cli, study_file: Path, listening: str, fake: FakeClient) -> None:
    (study_file.parent / "notes.txt").write_text("x")
    r = cli("study", "submit", str(study_file), "--address", listening, "--working-dir", str(study_file.parent))
    assert r.code == 0, r.err
    (job,) = fake.submitted
    assert job["runtime_env"]["working_dir"] == str(study_file.parent.resolve())
    assert set(job["files"]) == {"submitted.yaml", "notes.txt"}
    assert job["entrypoint"] == "xfer study run submitted.yaml --address auto"
    assert "xfer study status $XFER_HOME/studies/submitted" in r.out


@pytest.mark.parametrize(("states", "code"), [(["PENDING", "RUNNING", "SUCCEEDED"], 0), (["RUNNING", "FAILED"], 1),
                                              (["STOPPED"], 1)])
def test_wait_follows_the_job_and_exits_with_its_outcome(cli, study_file: Path, listening: str, fake: FakeClient,
                                                         monkeypatch: pytest.MonkeyPatch, states: list[str],
                                                         code: int) -> None:
    monkeypatch.setattr(S.time, "sleep", lambda s: None)
    fake.states = list(states)
    r = cli("study", "submit", str(study_file), "--address", listening, "--wait")
    assert r.code == code, r.err
    assert "phase 1 phase 2" in r.err
    assert (f"job {fake.submitted[0]['submission_id']} {states[-1]}" in (r.out if code == 0 else r.err))


# ----------------------------------------------------------------------- a real head


def _ray_processes(temp_dir: Path) -> list[psutil.Process]:
    """Every process of the head started with ``temp_dir`` (its command line names it) and all
    their descendants (workers, the job's driver): those, and only those, are ours to stop."""
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(temp_dir) in a for a in p.info["cmdline"] or ()):
                roots.append(p)
    found = {p.pid: p for p in roots}
    for p in roots:
        with contextlib.suppress(psutil.Error):
            found.update({c.pid: c for c in p.children(recursive=True)})
    return list(found.values())


def stop_head(temp_dir: Path) -> None:
    procs = _ray_processes(temp_dir)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=3)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture()
def head() -> Iterator[str]:
    """A `ray start` head with its dashboard on loopback, in a temp dir of its own (short: Ray's
    unix sockets live under it); the Jobs API address."""
    temp = Path(tempfile.mkdtemp(prefix="xr", dir="/tmp"))
    dash = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2", f"--temp-dir={temp}",
           f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
           "--disable-usage-stats"]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        yield f"http://127.0.0.1:{dash}"
    finally:
        stop_head(temp)
        assert not _ray_processes(temp)
        for _ in range(10):  # a process that was dying may still have written a socket there
            shutil.rmtree(temp, ignore_errors=True)
            if not temp.exists():
                break
            time.sleep(0.5)


def _expected(spec: StudySpec) -> list[tuple[str, str, float, int, int]]:
    return sorted((c.pair.pair_id, c.strategy, c.fraction, s, f) for c in cells(spec)
                  for s in range(spec.grid.seeds) for f in range(spec.evaluation.folds))


@pytest.mark.ray
@pytest.mark.slow
def test_a_submitted_study_runs_on_the_cluster_to_readable_results(cli, head: str, home: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's commands: `xfer study submit` (no wait), `ray job logs --follow` until the job
    ends, `ray job status`, `xfer study status`; then every expected fit is in results.parquet once.
    The xfer commands run in this process (as the `xfer` script would: same entry point), Ray's as
    the `ray` script."""
    spec_file = tmp_path / "submitted.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    sd = tmp_path / "study"
    env = {**os.environ, "XFER_HOME": str(home), "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true"}
    monkeypatch.setenv("XFER_HOME", str(home))
    t0 = time.time()
    r = cli("study", "submit", str(spec_file), "--address", head, "--smoke", "--out", str(sd), "--env", "XFER_HOME")
    assert r.code == 0, r.err
    job_id = next(w for w in r.out.split() if w.startswith("xfer-submitted-smoke-"))
    logs = subprocess.run([str(BIN / "ray"), "job", "logs", "--follow", "--address", head, job_id], env=env,
                          capture_output=True, text=True, timeout=240)
    status = subprocess.run([str(BIN / "ray"), "job", "status", "--address", head, job_id], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "succeeded" in status.stdout, (status.stdout[-3000:], logs.stdout[-3000:])
    chunks: list[str] = []  # what `--wait` follows: the job's log stream, then its final state
    assert S.follow(S._client(head), job_id, chunks.append) == "SUCCEEDED"
    assert f"[cells {len(cells(StudySpec.model_validate(SPEC).smoke()))}/" in "".join(chunks)
    st = cli("study", "status", str(sd), "--json")
    spec = StudySpec.model_validate(SPEC).smoke()
    d = json.loads(st.out)
    assert (d["finished"], d["done"], d["cells"]) == (True, len(cells(spec)), len(cells(spec))), d
    res = pd.read_parquet(sd / "results.parquet")
    fits = sorted(zip(res["pair"], res["strategy"], res["fraction"], res["seed"], res["fold"], strict=True))
    assert fits == _expected(spec)  # each exactly once
    print(f"submitted study done in {time.time() - t0:.0f} s")
