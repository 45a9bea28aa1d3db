"""One run at a time per study directory (issue 24), and no retries of a full disk.

Two ``xfer study run`` on one ``--out`` both ran every cell. Now the first holds a ``flock`` on
``<out>/.xfer-study.lock`` (its pid, host and start time inside) and a second ``run`` or
``resume`` exits 2 at once naming it; a holder that died leaves nothing that blocks.

The concurrent test runs real processes: the holder is the real ``xfer study run`` entry point
(``xfer.cli.main``) on a tiny study of embedded markets, with only Ray's start replaced by a long
sleep, so it holds the lock without the cost of training; it is killed once the second run
has been refused, and the next try's holder takes the same directory over (a stale lock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bad_inputs.spec import SMALL
from xfer.errors import XferInputError
from xfer.io import WriteError
from xfer.study import runner
from xfer.study.lock import LOCK_FILE, StudyLock, holder

HOLDER = """
import sys, time
import xfer.study.runner as r
r._start_ray = lambda env, address: time.sleep(600)  # hold the lock, train nothing
from xfer.cli import main
main(sys.argv[1:])
"""


def _wait_for(cond, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def test_a_second_lock_on_one_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = StudyLock(tmp_path, "--out").acquire()
    info = holder(tmp_path)
    assert info is not None and info["pid"] == os.getpid() and info["host"] and info["since"]
    with pytest.raises(XferInputError, match=f"locked .* pid {os.getpid()} on host"):
        StudyLock(tmp_path, "--out").acquire()  # another open file description: it conflicts
    first.release()
    with StudyLock(tmp_path) as again:
        assert again.held
    assert not again.held


def test_a_lock_left_by_a_dead_run_blocks_nothing(tmp_path: Path) -> None:
    code = ("import sys, time; from xfer.study.lock import StudyLock; StudyLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(600)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        with pytest.raises(XferInputError, match=f"pid {p.pid}"):
            StudyLock(tmp_path).acquire()
    finally:
        p.kill()
        p.wait()
    assert (tmp_path / LOCK_FILE).exists() and holder(tmp_path)["pid"] == p.pid  # type: ignore[index]
    with StudyLock(tmp_path):  # the kernel released it with the process
        assert holder(tmp_path)["pid"] == os.getpid()  # type: ignore[index]


@pytest.mark.slow
def test_two_study_runs_on_one_out_the_second_refused_naming_the_holder(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "s.yaml").write_text(SMALL)
    out = tmp_path / "study"
    env = {**os.environ, "XFER_HOME": str(tmp_path / "home")}
    argv = ["study", "run", str(tmp_path / "s.yaml"), "--out", str(out)]
    refused = 0
    for i in range(5):
        log = open(tmp_path / f"holder{i}.txt", "w")  # noqa: SIM115
        first = subprocess.Popen([sys.executable, "-c", HOLDER, *argv], env=env, stdout=log, stderr=log)
        try:
            def ready(p: subprocess.Popen = first, log_path: Path = tmp_path / f"holder{i}.txt") -> bool:
                assert p.poll() is None, log_path.read_text()[-3000:]  # the holder must still run
                return (holder(out) or {}).get("pid") == p.pid and (out / "spec.json").exists()

            _wait_for(ready)
            second_argv = argv if i < 4 else ["study", "resume", str(out)]
            second = subprocess.run([sys.executable, "-m", "xfer.cli", *second_argv], env=env, capture_output=True,
                                    text=True, timeout=300)
            err = " ".join(second.stderr.split())
            assert second.returncode == 2, err[-2000:]
            assert "Traceback" not in err and "locked" in err and f"pid {first.pid}" in err, err[-2000:]
            assert first.poll() is None  # the holder was not disturbed
            refused += 1
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
            log.close()
    assert refused == 5
    assert not any(p.name.startswith(".") and p.name != LOCK_FILE for p in out.iterdir())
    r = cli("study", "status", str(out))  # the lock file does not confuse a reader
    assert r.code == 0 and "study small" in r.out, r.err


def test_a_trial_that_hits_a_full_disk_stops_instead_of_being_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune retries a failed trial (max_failures); a full disk fails the same way each time, so the
    trial ends with a result naming it and the driver raises it (the CLI: exit 2)."""
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(runner, "_report", lambda metrics, checkpoint=None: sent.append(metrics))
    full = WriteError(file="/s/cells/c.parquet", expected="a location xfer can write to",
                      found="no space left on device while writing it", hint="free some space")
    with runner._stop_on_write_error():
        raise full
    assert list(sent[0]) == [runner.FATAL]

    class Result:
        metrics = sent[0]

    with pytest.raises(WriteError) as got:
        runner._raise_fatal([type("Ok", (), {"metrics": {"seconds": 1.0}})(), Result()])
    assert str(got.value) == str(full)
    runner._raise_fatal([type("Ok", (), {"metrics": None})()])  # nothing fatal: no error
    with pytest.raises(ValueError), runner._stop_on_write_error():
        raise ValueError("a bug is still retried by Tune")
    assert json.loads(str(sent[0][runner.FATAL]))[0] == "/s/cells/c.parquet"
