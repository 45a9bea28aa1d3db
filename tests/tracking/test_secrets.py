"""Secrets and network: the W&B key stays in process environments (never in Ray's runtime_env,
its logs, the study directory or the console), a local Ray listens on loopback only, and an
unreachable W&B host costs one short probe per study instead of an init timeout per cell."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.tracking import wandb_log as W

KEY = "xfertestkey" + secrets.token_hex(16)
"""A fake W&B API key, unique per test session: found anywhere, it leaked."""

SECRETS = {"WANDB_API_KEY": KEY, **{name: f"xfertest{name.lower()}" + secrets.token_hex(16) for name in (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "FOO_TOKEN", "BAR_SECRET")}}
"""Fake credentials the keyed study runs with, each unique per test session (Ray Tune copies
``AWS_*`` into its actors' runtime_env, which Ray logs; the generic names stand for any other)."""

GCP_TOKEN = "xfertestgcp" + secrets.token_hex(16)
"""In the name of the fake GOOGLE_APPLICATION_CREDENTIALS file: found anywhere, its path leaked."""

GCP_CONTENT = "xfertestgcpkey" + secrets.token_hex(16)
"""In the contents of that file: found anywhere, the credential itself leaked."""

UNREACHABLE = "http://127.0.0.1:9"
"""A W&B host that refuses connections at once (the discard port, closed)."""

STUDY = """
name: secrets
pairs:
  - {source: syn_shared_src, target: syn_shared_tgt}
grid:
  strategies: [scratch]
  fractions: [1.0]
  seeds: 1
  backbone: {name: mlp, hidden: 8}
search: {trials_per_cell: 1, batch_size: 1}
evaluation: {folds: 1, importance_repeats: 0}
tracking: {mode: online, project: xfer-test}
"""


# --------------------------------------------------------------------------- unit: mode and probe


@pytest.fixture()
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_MODE",
                "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def test_online_without_a_key_says_it_goes_offline(no_credentials: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert W.resolve_study_mode("online") == "offline"
    err = capsys.readouterr().err
    assert "online" in err and "no W&B API key" in err and "offline" in err, err
    # offline asked for, or auto without a key: nothing to say
    assert W.resolve_study_mode("offline") == "offline"
    assert W.resolve_study_mode(None) == "offline"
    assert W.resolve_study_mode("disabled") == "disabled"
    assert capsys.readouterr().err == ""


def test_unreachable_host_is_probed_once_and_goes_offline(
    no_credentials: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_BASE_URL", UNREACHABLE)
    probes: list[tuple[str, int]] = []
    real = W._probe

    def counted(host: str, port: int, timeout: float) -> bool:
        probes.append((host, port))
        return real(host, port, timeout)

    monkeypatch.setattr(W, "_probe", counted)
    t = time.perf_counter()
    assert W.resolve_study_mode(None) == "offline"
    assert time.perf_counter() - t < W.PROBE_TIMEOUT_S + 1
    assert probes == [("127.0.0.1", 9)]
    err = capsys.readouterr().err
    assert "127.0.0.1:9" in err and "not reachable" in err and "offline" in err, err
    assert KEY not in err


def test_reachable_host_stays_online(no_credentials: None, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert W.resolve_study_mode("online") == "online"
    assert capsys.readouterr().err == ""


def test_probe_target_follows_base_url_and_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert W.probe_target() == ("api.wandb.ai", 443)
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.local:8080/")
    assert W.probe_target() == ("wandb.local", 8080)
    monkeypatch.setenv("WANDB_BASE_URL", "https://[::1]")
    assert W.probe_target() == ("::1", 443)
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert W.probe_target() == ("proxy.corp", 3128)


# --------------------------------------------------------------------------- unit: what Ray is handed


def test_secrets_never_enter_the_runtime_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xfer.study import runner

    for var in ("WANDB_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "XFER_DB_PASSWORD"):
        monkeypatch.setenv(var, KEY)
    for var in ("WANDB_MODE", "WANDB_SILENT", "XFER_HOME", "WANDB_DATA_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)  # _environment sets them; monkeypatch restores them
    env = runner._environment(tmp_path / "study", Store(tmp_path / "home"), "offline")
    assert KEY not in repr(env)
    assert env["WANDB_MODE"] == "offline" and env["XFER_HOME"] == str(tmp_path / "home")
    assert os.environ["WANDB_API_KEY"] == KEY  # workers of a local Ray inherit it from here
    assert all(runner._is_secret(k) for k in ("WANDB_API_KEY", "GITHUB_TOKEN", "MY_SECRET", "DB_PASSWORD", *SECRETS,
                                              "AWS_SECURITY_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"))
    assert not any(runner._is_secret(k) for k in ("WANDB_MODE", "XFER_HOME", "TOKENIZERS_PARALLELISM", "RAY_AUTH_MODE",
                                                  "AWS_REGION", "AWS_ENDPOINT_URL", "PL_DISABLE_FORK"))


def test_a_local_ray_is_asked_for_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from xfer.study import runner

    calls: list[dict[str, Any]] = []
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    env = {"WANDB_MODE": "offline", "WANDB_API_KEY": KEY}
    assert runner._start_ray(env, None) is True
    assert runner._start_ray(env, "10.0.0.5:6379") is True
    local, remote = calls
    assert local["_node_ip_address"] == runner.LOOPBACK == "127.0.0.1"
    assert local["include_dashboard"] is False and local["address"] == "local"  # never a cluster found by ray.init()
    assert remote["address"] == "10.0.0.5:6379" and "_node_ip_address" not in remote
    for kw in calls:
        assert kw["runtime_env"] == {"env_vars": {"WANDB_MODE": "offline"}}
    # a local Ray's temp root lies in a directory only this user may enter; a cluster's is its own
    assert "_temp_dir" not in remote
    private = Path(local["_temp_dir"]).parent
    assert private.parent == tmp_path and private.stat().st_uid == os.getuid()
    assert private.stat().st_mode & 0o777 == 0o700


def test_a_foreign_private_dir_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xfer.study import runner

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    (tmp_path / f"xfer-{os.getuid()}").symlink_to(elsewhere)  # planted by someone else, say
    temp = Path(runner._private_temp_dir() or "")
    assert temp.name == "ray" and temp.parent.parent == tmp_path and not temp.parent.is_symlink()
    assert temp.parent.stat().st_mode & 0o777 == 0o700 and elsewhere.stat().st_mode & 0o777 == 0o777


def test_tune_propagates_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Tune copies ``AWS_*`` from the driver's environment into each trial actor's runtime_env,
    which Ray logs; once xfer starts (or joins) Ray it copies no credential."""
    import ray
    from ray.tune.execution import class_cache

    from xfer.study import runner

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(class_cache, "ENV_VARS_TO_PROPAGATE", set(class_cache.ENV_VARS_TO_PROPAGATE))
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # the caller's Ray: left alone, Tune still filtered
    assert runner._start_ray({}, None) is False
    assert not any(runner._is_secret(k) for k in class_cache.ENV_VARS_TO_PROPAGATE)
    assert "PL_DISABLE_FORK" in class_cache.DEFAULT_ENV_VARS  # what is not a credential still goes

    class Trainable:
        pass

    actor = class_cache._ActorClassCache().get(Trainable)
    options = repr(getattr(actor, "_default_options", None))
    assert "runtime_env" in options and not any(v in options for v in SECRETS.values()), options


# --------------------------------------------------------------------------- Ray, for real


def _ray_tmp() -> Path:
    """A short Ray temp root (Ray's unix sockets must fit in 107 bytes)."""
    base = "/tmp" if Path("/tmp").is_dir() else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="xr", dir=base))


def _listening(pids: set[int]) -> set[str]:
    import psutil

    out = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        out |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def _loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


@pytest.mark.slow
@pytest.mark.ray
def test_local_ray_listens_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil
    import ray

    from xfer.study import runner

    tmp = _ray_tmp()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert not ray.is_initialized()
    try:
        assert runner._start_ray({}, None)

        @ray.remote
        def pid() -> int:
            return os.getpid()

        worker = ray.get(pid.remote())
        family = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
        assert worker in family
        addresses = _listening(family)
        assert addresses and all(_loopback(ip) for ip in addresses), addresses
        assert ray.util.get_node_ip_address() == runner.LOOPBACK
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("secrets_home")
    syn.write_set(Store(root), "shared", n_source=3000, n_target=2500, seed=0)
    return root


def _study(spec: Path, out: Path, env: dict[str, str]) -> tuple[float, str, str, Path]:
    """``xfer study run --smoke`` in a fresh process with its own Ray temp root, which is also
    its ``TMPDIR`` (so whatever else it writes to a temp file lands where the tests search)."""
    ray_tmp = _ray_tmp()
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "xfer.cli", "study", "run", str(spec), "--smoke", "--out", str(out)],
                         env={**env, "RAY_TMPDIR": str(ray_tmp), "TMPDIR": str(ray_tmp)}, capture_output=True,
                         timeout=600)
    seconds = time.perf_counter() - t
    out_s, err_s = res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
    assert res.returncode == 0, err_s[-3000:]
    return seconds, out_s, err_s, ray_tmp


def _files(root: Path) -> Iterator[Path]:
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            yield p


@pytest.fixture(scope="module")
def studies(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The tiniest study (one scratch cell: one cell run and one summary run in W&B), twice:
    ``mode: online`` without a key (so offline: the baseline), then with a fake key and an
    unreachable W&B host, and fake AWS, Google and other credentials (:data:`SECRETS`)."""
    root = tmp_path_factory.mktemp("secrets_study")
    gcp = tmp_path_factory.mktemp("secrets_gcp") / f"{GCP_TOKEN}.json"  # outside every tree searched
    gcp.write_text(f'{{"type": "service_account", "private_key": "{GCP_CONTENT}"}}')
    spec = root / "secrets.yaml"
    spec.write_text(STUDY)
    user_home = root / "user"
    user_home.mkdir()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("WANDB_", "RAY_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    base.update({"XFER_HOME": str(home), "HOME": str(user_home), "NETRC": str(user_home / "no-netrc"),
                 "RAY_AUTH_MODE": "disabled", "WANDB_SILENT": "true"})
    offline = _study(spec, root / "offline", base)
    keyed = _study(spec, root / "keyed", {**base, **SECRETS, "GOOGLE_APPLICATION_CREDENTIALS": str(gcp),
                                          "WANDB_BASE_URL": UNREACHABLE})
    print(f"smoke study: offline {offline[0]:.1f} s, key + unreachable W&B host {keyed[0]:.1f} s")
    yield {"root": root, "user_home": user_home, "offline": offline, "keyed": keyed}
    for run in (offline, keyed):
        shutil.rmtree(run[3], ignore_errors=True)


@pytest.mark.ray
@pytest.mark.slow
def test_the_key_appears_nowhere(studies: dict[str, Any]) -> None:
    from xfer.tracking.offline import find_runs, read_run

    _, out, err, ray_tmp = studies["keyed"]
    sd = studies["root"] / "keyed"
    # the run really went through W&B (offline) and Ray: there is something to search
    runs = [read_run(p) for p in find_runs(sd / "wandb")]
    assert {r.job_type for r in runs} == {"cell", "summary"}
    for r in runs:
        assert KEY not in repr(r.config) and KEY not in repr(r.summary)
    session = _session(ray_tmp)
    assert (session / "logs" / "runtime_env_agent.log").is_file()
    needles = {**SECRETS, "GOOGLE_APPLICATION_CREDENTIALS (its path)": GCP_TOKEN,
               "GOOGLE_APPLICATION_CREDENTIALS (its file)": GCP_CONTENT}
    leaks = [f"{name} in {p}" for tree in (sd, ray_tmp, studies["user_home"]) for p in _files(tree)
             for name, value in needles.items() if value.encode() in p.read_bytes()]
    leaks += [f"{name} on the console" for name, value in needles.items() if value in out or value in err]
    assert leaks == [], "\n".join(leaks)
    assert "not reachable" in err and "offline" in err, err[-2000:]


def _session(ray_tmp: Path) -> Path:
    """The one Ray session directory under a study's Ray temp root."""
    sessions = [s for s in ray_tmp.rglob("session_*") if s.is_dir() and not s.is_symlink()]
    assert len(sessions) == 1, sessions
    return sessions[0]


@pytest.mark.ray
@pytest.mark.slow
def test_the_ray_session_is_private(studies: dict[str, Any]) -> None:
    """Ray makes its temp root and sessions world-readable (0777); a directory above them is not."""
    ray_tmp = studies["keyed"][3]
    session = _session(ray_tmp)
    between = [d for d in session.relative_to(ray_tmp).parents if d != Path(".")]
    private = [ray_tmp / d for d in between
               if (ray_tmp / d).stat().st_mode & 0o077 == 0 and (ray_tmp / d).stat().st_uid == os.getuid()]
    assert private, [(str(ray_tmp / d), oct((ray_tmp / d).stat().st_mode)) for d in between]


@pytest.mark.slow
@pytest.mark.ray
def test_workers_still_see_the_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local Ray's workers inherit the driver's environment: a Tune trial actor, whose
    runtime_env no longer carries ``AWS_*``, still reads them (an ``s3://`` study needs them)."""
    import ray
    from ray.tune.execution import class_cache

    from xfer.study import runner

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAY_TMPDIR", str(_ray_tmp()))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert not ray.is_initialized()
    try:
        assert runner._start_ray({}, None)

        class Trial:
            def env(self) -> dict[str, str | None]:
                return {name: os.environ.get(name) for name in SECRETS}

        actor = class_cache._ActorClassCache().get(Trial).remote()
        assert ray.get(actor.env.remote()) == SECRETS
    finally:
        ray.shutdown()
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)


@pytest.mark.ray
@pytest.mark.slow
def test_unreachable_wandb_costs_no_more_than_offline(studies: dict[str, Any]) -> None:
    offline_s, _, _, _ = studies["offline"]
    keyed_s, _, _, _ = studies["keyed"]
    assert keyed_s <= 2 * offline_s, f"unreachable W&B host: {keyed_s:.1f} s, offline: {offline_s:.1f} s"


@pytest.mark.ray
@pytest.mark.slow
def test_online_without_a_key_is_announced_on_the_console(studies: dict[str, Any]) -> None:
    _, _, err, _ = studies["offline"]
    assert "no W&B API key" in err and "offline" in err, err[-2000:]
