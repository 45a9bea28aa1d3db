"""cluster/: the launcher config and the KubeRay RayJob parse, carry the keys the launcher and
KubeRay need, expose no Ray port publicly, and carry no secret (issue 11's config check); the
guide's Jobs API commands are the ones `xfer study submit` runs and prints."""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from xfer.study.runner import _is_secret
from xfer.study.spec import parse

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CLUSTER / name).read_text())
    assert isinstance(doc, dict), name
    return doc


def test_launcher_config_has_what_ray_up_needs() -> None:
    c = _load("ray-cluster.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "max_workers",
                "setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in c, key
    assert c["provider"]["type"] in {"aws", "gcp", "azure"} and c["provider"].get("region")
    types = c["available_node_types"]
    assert c["head_node_type"] in types
    for name, t in types.items():
        assert isinstance(t["node_config"], dict) and t["node_config"], name
        assert isinstance(t["resources"], dict), name
        if name != c["head_node_type"]:
            assert 0 <= t["min_workers"] <= t["max_workers"] <= c["max_workers"], name
    setup = " && ".join(c["setup_commands"])
    assert "pip install" in setup and "~/xfer" in setup  # the project, installed from its source tree
    head = " ".join(c["head_start_ray_commands"])
    assert "ray start --head" in head and "--dashboard-host=127.0.0.1" in head  # dashboard on loopback only
    assert any("ray start --address=$RAY_HEAD_IP:6379" in cmd for cmd in c["worker_start_ray_commands"])


def test_rayjob_has_what_kuberay_needs() -> None:
    j = _load("rayjob.yaml")
    assert j["apiVersion"] == "ray.io/v1" and j["kind"] == "RayJob" and j["metadata"]["name"]
    spec = j["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:3] == ["xfer", "study", "run"] and "--address" in argv
    parse(ROOT / argv[3])  # the study it runs exists and validates
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env and not [k for k in env if _is_secret(k)]  # no secret in Ray's runtime_env
    rc = spec["rayClusterSpec"]
    groups = [rc["headGroupSpec"], *rc["workerGroupSpecs"]]
    for g in groups:
        (container, *_) = g["template"]["spec"]["containers"]
        assert container["image"] and container["name"]
        keys = [e for e in container.get("env", []) if _is_secret(e["name"])]
        assert all("valueFrom" in e and "value" not in e for e in keys)  # secrets come from a Secret
        mounts = {m["name"] for m in container.get("volumeMounts", [])}
        vols = {v["name"] for v in g["template"]["spec"].get("volumes", [])}
        assert mounts <= vols
    for w in rc["workerGroupSpecs"]:
        assert w["groupName"] and w["minReplicas"] <= w["replicas"] <= w["maxReplicas"]
        limits = w["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1


def test_no_port_is_published_outside_the_cluster() -> None:
    for name in ("ray-cluster.yaml", "rayjob.yaml"):
        text = (CLUSTER / name).read_text()
        assert "LoadBalancer" not in text.replace("never a LoadBalancer", "")
        assert "0.0.0.0/0" not in text.replace("never open them to 0.0.0.0/0", "")
        assert "--dashboard-host=0.0.0.0" not in text


def _guide_commands(section: str) -> list[str]:
    """The shell commands of a README section's bash block (continuations joined, comments cut)."""
    text = (CLUSTER / "README.md").read_text()
    body = text[text.index(f"## {section}"):]
    block = re.search(r"```bash\n(.*?)```", body, re.S).group(1).replace("\\\n", " ")
    return [" ".join(line.split("#")[0].split()) for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_jobs_api_guide_is_what_submit_runs_and_prints(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's `xfer study submit` line, sent to a stand-in Jobs API: it passes every local
    check, runs the study the guide says with the guide's environment, and prints the guide's
    `ray job` and `xfer study status` lines (with the job's id)."""
    from xfer.study import submit as S

    cmds = _guide_commands("Ray Jobs API")
    (line,) = [c for c in cmds if c.startswith("xfer study submit ")]
    argv = shlex.split(line)
    guide_address = argv[argv.index("--address") + 1]
    jobs: list[dict[str, Any]] = []

    class Client:
        def submit_job(self, **kw: Any) -> str:
            jobs.append(kw)
            return "JOB_ID"

    monkeypatch.setattr(S, "_client", lambda address: Client())
    monkeypatch.chdir(ROOT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        here = f"http://127.0.0.1:{s.getsockname()[1]}"
        r = cli(*[here if a == guide_address else a for a in argv[1:]])
    assert r.code == 0, r.err
    (job,) = jobs
    assert job["entrypoint"] == "xfer study run sizing.yaml --address auto --out /shared/xfer/studies/sizing"
    assert job["entrypoint"] in (CLUSTER / "README.md").read_text()  # the guide says what the job runs
    assert job["runtime_env"]["env_vars"] == {"XFER_HOME": "/shared/xfer", "WANDB_MODE": "offline", **S.OVERRIDE}
    printed = {" ".join(x.split("#")[0].split()) for x in r.out.replace(here, guide_address).splitlines()}
    follow = [c for c in cmds if not c.startswith(("xfer study submit ", "ray dashboard "))]
    assert follow and set(follow) <= printed, (follow, printed)
