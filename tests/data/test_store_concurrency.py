"""Store writes under concurrency and a hostile environment (issue 24).

* Two ``xfer data import`` (or ``data synth``) of one new id at once, in real processes started
  together behind a barrier: exactly one wins; the other exits 2 ("already exists ...
  --replace"); the stored file is byte-identical to one of the two imports, never a mix or a
  silent overwrite (the existence check and the rename were separate steps).
* Market files respect the umask (they were forced to 0644).
* A full disk: the import exits 2 naming the path and "no space", the store unchanged and no
  temporary file left. The small file system is a real 64 KiB tmpfs where this process may
  mount one (root in the sandbox); elsewhere the low-level write is monkeypatched to raise
  ``OSError(ENOSPC)``, which exercises the same handling.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import tree_digest

pytestmark = pytest.mark.slow  # tiers: `pytest -m "not slow"` is the quick one (README)

TRIES = 20


def _csv(path: Path, seed: int, n: int = 400) -> Path:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    pd.DataFrame({"Date": pd.bdate_range("2001-01-02", periods=n), "Close": close.round(4)}).to_csv(path, index=False)
    return path


def _child(argv: list[str], err_path: str, barrier: object) -> None:
    """A process of its own: wait for the other, run the CLI, exit with its status."""
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    from xfer.cli import main

    barrier.wait()  # type: ignore[attr-defined]
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)


def _race(argvs: list[list[str]], where: Path) -> list[tuple[int, str]]:
    """Run the commands at once in forked processes; (exit status, stderr) of each."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(argvs))
    procs = []
    for i, argv in enumerate(argvs):
        p = ctx.Process(target=_child, args=(argv, str(where / f"err{i}.txt"), barrier))
        p.start()
        procs.append(p)
    for p in procs:
        p.join(120)
        assert p.exitcode is not None, "a racing import hung"
    return [(p.exitcode, " ".join((where / f"err{i}.txt").read_text().split())) for i, p in enumerate(procs)]


def _main(argv: list[str]) -> None:
    """The CLI in this process; it must succeed."""
    from xfer.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code, exc.code


def _import(file: Path, home: Path) -> list[str]:
    return ["data", "import", str(file), "--market", "m", "--asset-class", "equity", "--store", str(home)]


def _check_one_winner(results: list[tuple[int, str]], markets: Path, expected: list[bytes], name: str) -> int:
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser and "--replace" in loser and "Traceback" not in loser, loser
    assert sorted(p.name for p in markets.iterdir()) == [name]  # no temp file left
    stored = (markets / name).read_bytes()
    assert stored in expected, "the stored market is neither import"
    return expected.index(stored)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_two_imports_of_one_new_id_at_once_one_wins(tmp_path: Path) -> None:
    a, b = _csv(tmp_path / "a.csv", 0), _csv(tmp_path / "b.csv", 1)
    expected = []
    for f in (a, b):  # what each import alone stores
        _main(_import(f, tmp_path / f"ref_{f.stem}"))
        expected.append((tmp_path / f"ref_{f.stem}" / "markets" / "m.parquet").read_bytes())
    assert expected[0] != expected[1]
    winners = []
    for i in range(TRIES):
        home = tmp_path / f"try{i}"
        results = _race([_import(a, home), _import(b, home)], tmp_path)
        winners.append(_check_one_winner(results, home / "markets", expected, "m.parquet"))
    assert len(winners) == TRIES


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_two_synths_of_one_new_id_at_once_one_wins(tmp_path: Path) -> None:
    def synth(home: Path, seed: int) -> list[str]:
        return ["data", "synth", "--market", "s", "--n-target", "400", "--seed", str(seed), "--store", str(home)]

    expected = []
    for seed in (0, 1):
        _main(synth(tmp_path / f"ref{seed}", seed))
        expected.append((tmp_path / f"ref{seed}" / "markets" / "s.parquet").read_bytes())
    for i in range(5):
        home = tmp_path / f"try{i}"
        _check_one_winner(_race([synth(home, 0), synth(home, 1)], tmp_path), home / "markets", expected,
                          "s.parquet")


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_market_files_respect_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    f = _csv(tmp_path / "f.csv", 0)
    home = tmp_path / "home"
    r = subprocess.run([sys.executable, "-m", "xfer.cli", *_import(f, home)], capture_output=True, text=True,
                       umask=umask, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (home / "markets" / "m.parquet").stat().st_mode & 0o777 == mode


@pytest.fixture()
def small_fs(tmp_path: Path) -> Iterator[Path | None]:
    """A 64 KiB tmpfs (None where mounting is not allowed)."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(d: Path, leave: int) -> None:
    """Fill the file system of ``d`` up to ``leave`` free bytes."""
    free = os.statvfs(d).f_bavail * os.statvfs(d).f_frsize
    (d / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_import_into_a_full_disk_is_a_clean_refusal(tmp_path: Path, small_fs: Path | None, cli,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    f = _csv(tmp_path / "f.csv", 0)
    home = (small_fs or tmp_path) / "home"
    (home / "markets").mkdir(parents=True)
    if small_fs is not None:
        _fill(small_fs, 4096)  # a 400-bar market file takes about 10 KB
    else:
        def full(*a: object, **k: object) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(pq, "write_table", full)
    before = tree_digest(home)
    r = cli(*_import(f, home))
    assert r.code == 2, r.err[-2000:]
    assert "Traceback" not in r.err
    assert "no space left on device" in r.err.lower() and str(home / "markets" / "m.parquet") in r.err, r.err
    assert tree_digest(home) == before
    assert list((home / "markets").iterdir()) == []  # the temporary file is gone


def test_study_out_on_a_full_disk_is_refused_before_anything_runs(tmp_path: Path, small_fs: Path | None, cli,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.bad_inputs.spec import SMALL

    (tmp_path / "s.yaml").write_text(SMALL)
    if small_fs is None:
        class Full:
            f_blocks, f_bavail, f_frsize = 1000, 0, 4096

        monkeypatch.setattr(os, "statvfs", lambda p: Full())
    out = (small_fs or tmp_path) / "study"
    r = cli("study", "run", str(tmp_path / "s.yaml"), "--out", str(out))
    assert r.code == 2, r.err[-2000:]
    assert "no space left on device" in r.err.lower() and "--out" in r.err
    assert not out.exists()
