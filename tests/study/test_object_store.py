"""A study whose directory is an object store (a real moto S3 server on loopback), on a multi-node
Ray cluster whose nodes share no path with the driver: the trials get the spec and the markets
through Tune, return their rows through Tune checkpoints, and the driver writes them to S3.
Plus the storage module on its own (no Ray): local and s3 round trips, whole-object writes, errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from pyarrow import fs

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.errors import XferInputError
from xfer.study.spec import StudySpec, cells
from xfer.study.storage import filesystem, is_uri, open_storage

BUCKET = "xfer-test"


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with an empty bucket; the AWS_* environment points at it."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket=BUCKET)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _keys(prefix: str) -> dict[str, bytes]:
    f, base = filesystem(f"s3://{BUCKET}/{prefix}")
    sel = fs.FileSelector(base, recursive=True, allow_not_found=True)
    out = {}
    for i in f.get_file_info(sel):
        if i.type == fs.FileType.File:
            with f.open_input_stream(i.path) as src:
                out[i.path[len(base) + 1:]] = src.read()
    return out


# ----------------------------------------------------------------------- storage module, no Ray


def test_a_local_path_is_used_as_it_is(tmp_path: Path) -> None:
    loc = open_storage(tmp_path / "a" / ".." / "study")
    assert not loc.remote and loc.local == (tmp_path / "study").resolve()
    assert loc.tune_storage() == (str(loc.local / "ray"), None)
    (loc.local / "cells").mkdir(parents=True)
    (loc.local / "cells" / "c1.parquet").write_bytes(b"x")
    assert loc.push_changed() == 0 and loc.pull() == 0  # nothing to sync for a local study
    assert loc.cell_ids() == {"c1"}
    assert not is_uri(Path("s3://bucket/x")) and is_uri("s3://bucket/x") and not is_uri("file:///tmp/x")


@pytest.mark.slow
def test_s3_round_trip_whole_objects_and_finished_cells(s3: str, tmp_path: Path) -> None:
    a = open_storage(f"s3://{BUCKET}/studies/one/", staging=tmp_path / "a")
    a.check()
    assert a.remote and a.base == f"{BUCKET}/studies/one" and a.tune_storage() == (f"{BUCKET}/studies/one/ray", a.fs)
    files = {"spec.json": b"{}", "cells/c1.parquet": b"one", "cells/c2.parquet": b"two", "days/c1.parquet": b"d1",
             "ray/exp/state.json": b"tune's", "wandb/run/x.wandb": b"w"}
    for rel, blob in files.items():
        (a.local / rel).parent.mkdir(parents=True, exist_ok=True)
        (a.local / rel).write_bytes(blob)
    (a.local / "cells" / ".c3.parquet.abc.tmp").write_bytes(b"half")  # an atomic write in flight
    a.push(a.local / "ray" / "exp" / "state.json")
    assert a.push_changed() == 5  # everything but ray/ (pushed already) and the temporary file
    assert _keys("studies/one") == files
    assert a.push_changed() == 0  # unchanged files are not sent again
    assert a.cell_ids() == {"c1", "c2"}

    b = open_storage(f"s3://{BUCKET}/studies/one", staging=tmp_path / "b")
    assert b.pull() == 4  # not ray/ nor wandb/
    assert {p.relative_to(b.local).as_posix(): p.read_bytes() for p in b.local.rglob("*") if p.is_file()} == {
        k: v for k, v in files.items() if not k.startswith(("ray/", "wandb/"))}
    c = open_storage(f"s3://{BUCKET}/studies/one", staging=tmp_path / "c")
    assert c.pull(only=("cells",)) == 2 and sorted(p.name for p in c.local.rglob("*.parquet")) == ["c1.parquet",
                                                                                                   "c2.parquet"]
    # a push that fails before its one PUT leaves the object as it was
    (b.local / "cells" / "c1.parquet").write_bytes(b"new")
    b.push(b.local / "cells" / "c1.parquet")
    (b.local / "cells" / "c1.parquet").unlink()
    with pytest.raises(FileNotFoundError):
        b.push(b.local / "cells" / "c1.parquet")
    assert _keys("studies/one")["cells/c1.parquet"] == b"new"
    assert open_storage(f"s3://{BUCKET}/studies/other", staging=tmp_path / "d").cell_ids() == set()


def test_bad_locations_are_input_errors(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(XferInputError) as exc:
        open_storage("ftp://host/study")
    assert exc.value.field == "--out" and "ftp" in exc.value.found
    with pytest.raises(XferInputError, match="BUCKET/PREFIX"):
        open_storage("s3://")
    with pytest.raises(XferInputError, match="no bucket 'missing'"):
        open_storage("s3://missing/study", staging=tmp_path / "m").check()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(XferInputError) as exc:
        open_storage(f"s3://{BUCKET}/study", field="STUDY_DIR", staging=tmp_path / "u").check("STUDY_DIR")
    assert exc.value.field == "STUDY_DIR" and exc.value.expected == "a reachable object store"
    assert f"127.0.0.1:{port}" in str(exc.value)


def test_cli_keeps_a_uri_whole(s3: str, cli: Any) -> None:
    """STUDY_DIR / --out as a URI reach the study layer whole (a Path would fold ``s3://`` to ``s3:/``)."""
    r = cli("study", "status", f"s3://{BUCKET}/nothing/here")
    assert r.code == 2 and f"s3://{BUCKET}/nothing/here" in r.err and "no spec.json" in r.err, r.err
    r = cli("study", "resume", "s3://missing-bucket/study")
    assert r.code == 2 and "no bucket 'missing-bucket'" in r.err and "Traceback" not in r.err, r.err
    r = cli("report", f"s3://{BUCKET}/nothing")
    assert r.code == 2 and f"s3://{BUCKET}/nothing" in r.err and "no results.parquet" in r.err, r.err


# ----------------------------------------------------------------------- a study on S3, on a cluster

TINY = {"batch_size": 64, "steps_per_epoch": 4, "max_epochs": 2, "patience": 1, "eval_rows": 256}
SPEC = {
    "name": "objstore", "pairs": [{"source": "syn_shared_src", "target": "syn_shared_tgt"}],
    "grid": {"strategies": ["scratch", "head_only", "full"], "fractions": [0.5, 1.0], "seeds": 2,
             "backbone": {"hidden": 8}},
    "search": {"trials_per_cell": 2, "batch_size": 2, "sampler": "random"},
    "evaluation": {"folds": 1, "importance_repeats": 0}, "train": TINY, "source": {"train": TINY},
    "tracking": {"mode": "disabled"}}


@pytest.fixture()
def cluster(s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A head that schedules nothing and two 1-CPU workers, each with its own scratch directory and
    an XFER_HOME (a decoy) that is not the driver's store."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("XFER_HOME", str(tmp_path / "decoy-home"))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    c.scratch = [tmp_path / f"node{i}" for i in range(2)]
    c.workers = [c.add_node(num_cpus=1, env_vars={"XFER_SCRATCH": str(d)}) for d in c.scratch]
    c.wait_for_nodes()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_a_study_on_s3_over_nodes_that_share_no_path(cluster: Any, s3: str, tmp_path: Path, cli: Any) -> None:
    from xfer.study.runner import run_study
    from xfer.study.status import study_status

    home = tmp_path / "driver-home"
    syn.write_set(Store(home), "shared", n_source=2000, n_target=1500, seed=0)
    markets = {p: p.stat().st_mtime_ns for p in (home / "markets").iterdir()}
    spec_file = tmp_path / "objstore.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    uri = f"s3://{BUCKET}/studies/objstore"
    run = run_study(spec_file, study_dir=uri, store=Store(home), address=cluster.address, report=False)
    assert run.location == uri and run.cells_run == 6

    spec = StudySpec.model_validate(SPEC)
    expected = {(c.pair.pair_id, c.strategy, c.fraction, s, 0) for c in cells(spec) for s in range(2)}
    objects = _keys("studies/objstore")
    f, base = filesystem(uri)
    res = pq.read_table(f"{base}/results.parquet", filesystem=f).to_pandas()
    fits = list(zip(res["pair"], res["strategy"], res["fraction"], res["seed"], res["fold"], strict=True))
    assert len(fits) == len(set(fits)) and set(fits) == expected
    ids = {c.cell_id for c in cells(spec)}
    assert {k for k in objects if k.startswith(("cells/", "days/"))} == {
        f"{d}/{i}.parquet" for d in ("cells", "days") for i in ids}
    assert set(res["node_id"]) == {w.node_id for w in cluster.workers}  # both nodes trained cells
    assert {"spec.json", "study.yaml", "verdicts.parquet", "profile.json", "optuna.journal"} <= set(objects)

    # the search record: one search per cell in the study's journal, every trial told
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    (tmp_path / "journal").write_bytes(objects["optuna.journal"])
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal")))
    searches = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert searches == {i: 2 for i in ids}

    # the nodes never saw a path of the driver's: not in a trial's config, not its XFER_HOME
    params = [json.loads(v) for k, v in objects.items() if k.endswith("/params.json")]
    assert len(params) == 6 + 1  # six cell trials, one source group
    for p in params:
        text = json.dumps(p)
        assert str(home) not in text and str(run.study_dir) not in text and set(p) == {"cell_ids", "cpus",
                                                                                    "wandb_mode"}
    assert not (tmp_path / "decoy-home").exists()
    assert {p: p.stat().st_mtime_ns for p in (home / "markets").iterdir()} == markets
    # each node read the markets from its own materialised store; the driver's cache came back from one
    for d in cluster.scratch:
        (store,) = (d / "stores").iterdir()
        assert sorted(p.name for p in (store / "markets").iterdir()) == sorted(p.name for p in markets)
    node_cache = {p.name: p.read_bytes() for d in cluster.scratch for p in d.glob("stores/*/cache/source/*.pt")}
    driver_cache = {p.name: p.read_bytes() for p in (home / "cache" / "source").glob("*.pt")}
    assert driver_cache and all(node_cache[n] == b for n, b in driver_cache.items())

    # the numbers are those of the cell run in this process, on the driver's store (same bytes, same seeds)
    import torch

    from tests.study.test_resume import VOLATILE
    from xfer.study.cell import run_cell

    for c in [c for c in cells(spec) if c.fraction == 0.5 and c.strategy != "full"]:
        torch.manual_seed(0)
        here = pd.read_parquet(run_cell(spec, tmp_path / "here", c.cell_id, Store(home)))
        there = pq.read_table(f"{base}/cells/{c.cell_id}.parquet", filesystem=f).to_pandas()
        pd.testing.assert_frame_equal(here.drop(columns=VOLATILE), there.drop(columns=VOLATILE))

    # status reads S3; a resume finds nothing to run
    st = study_status(uri)
    assert st.finished and st.count("done") == 6 and st.study_dir == uri
    r = cli("study", "status", uri, "--json")
    assert r.code == 0 and json.loads(r.out)["done"] == 6, r.err
    again = run_study(None, study_dir=uri, store=Store(home), address=cluster.address, report=False)
    assert again.cells_run == 0
    pd.testing.assert_frame_equal(pq.read_table(f"{base}/results.parquet", filesystem=f).to_pandas(), res)
