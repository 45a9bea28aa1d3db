"""Bad-input rows, second round (issue 24): the store and study directories.

What a user (or someone with write access to a shared store) puts where xfer keeps its files:
foreign or hand-placed files in the store's markets folder (a file that is not a market, a
symbolic link out of the store, a market copied under another name, a folder named like a
market), a store root that is a file or cannot be written, a study ``--out`` inside the
store's markets folder or the package's samples, and a study directory another run holds
(its lock held by this process through a second open file description: ``flock`` conflicts
between two ``open`` calls even in one process). A foreign file in the store is skipped
with a warning (rows with ``code=0``: the rest of the store still serves) and refused, naming
the file, only where it is read. See :mod:`tests.bad_inputs` for the row format; the
concurrency and full-disk faults are tests of their own (tests/data/test_store_concurrency.py,
tests/study/test_study_lock.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from tests.bad_inputs import Case
from tests.bad_inputs.data import _csv, _import, _market, _outside_market
from tests.bad_inputs.spec import SMALL, _yaml
from xfer.data.store import _samples_dir

Setup = Callable[[Path], None]
PID = str(os.getpid())
"""This test process: the holder of the study locks the rows below take."""
_HELD: list[int] = []
"""Descriptors holding the rows' study locks (kept open for the rest of the test process)."""


def _markets(tmp: Path) -> Path:
    d = tmp / "xfer_home" / "markets"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _junk(name: str = "x.parquet", content: bytes = b"not a parquet file at all") -> Setup:
    def setup(tmp: Path) -> None:
        (_markets(tmp) / name).write_bytes(content)
    return setup


def _plain_parquet(tmp: Path) -> None:
    """A valid Parquet file without xfer's catalog entry (dropped in by hand, e.g. from pandas)."""
    import pandas as pd

    pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=5), "close": 1.0}).to_parquet(
        _markets(tmp) / "plain.parquet")


def _symlink_out(tmp: Path) -> None:
    """markets/lnk.parquet -> a valid market outside the store."""
    _outside_market(tmp)
    (_markets(tmp) / "lnk.parquet").symlink_to(tmp / "elsewhere" / "markets" / "x.parquet")


def _copied(name: str) -> Setup:
    """Market 'keep', and a copy of its file under ``name`` (its entry still says 'keep')."""
    def setup(tmp: Path) -> None:
        _market("keep")(tmp)
        shutil.copyfile(_markets(tmp) / "keep.parquet", _markets(tmp) / name)
    return setup


def _both(*setups: Setup) -> Setup:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


def _file(rel: str, text: str = "not a folder") -> Setup:
    def setup(tmp: Path) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return setup


def _hold_lock(study: Path) -> None:
    """Take ``study``'s lock as a live run does (this process's pid inside), and keep it."""
    from xfer.study.lock import LOCK_FILE

    fd = os.open(study / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": "2024-01-02T03:04:05+0000"}).encode())
    _HELD.append(fd)


def _locked_study(tmp: Path) -> None:
    """A study directory of SMALL (spec.json as `study run` writes it) held by a running run."""
    from xfer.data.store import Store
    from xfer.study.spec import load

    (tmp / "s.yaml").write_text(SMALL)
    study = tmp / "study"
    study.mkdir()
    (study / "study.yaml").write_text(SMALL)
    (study / "spec.json").write_text(load(tmp / "s.yaml", Store(tmp / "xfer_home")).model_dump_json(indent=2))
    _hold_lock(study)


def _storage_in_markets(tmp: Path) -> None:
    (tmp / "s.yaml").write_text(SMALL + f"storage: {tmp}/xfer_home/markets/small\n")
    _markets(tmp)


def _list(*extra: str) -> tuple[str, ...]:
    return ("data", "list", *extra)


def _features(market: str) -> tuple[str, ...]:
    return ("data", "features", market, "--out", "{tmp}/f.parquet")


def _validate(yaml: str = "s.yaml") -> tuple[str, ...]:
    return ("study", "validate", "--no-estimate", f"{{tmp}}/{yaml}")


def _run(out: str) -> tuple[str, ...]:
    return ("study", "run", "{tmp}/s.yaml", "--out", out)


USES_X = SMALL.replace("source: aapl", "source: x")
SAMPLES_OUT = str(_samples_dir() / "my-study")

CASES: list[Case] = [
    # --- a foreign file in markets/: listed with a warning, the rest of the store serves (was:
    # an ArrowInvalid traceback from every `data list` and `study validate`)
    Case("list-foreign-file", _list(), ("warning", "skipping", "x.parquet", "unreadable"), setup=_junk(), code=0),
    Case("list-json-foreign-file", _list("--json"), ("x.parquet", "unreadable"), setup=_junk(), code=0),
    Case("list-parquet-without-xfer-entry", _list(), ("plain.parquet", "no xfer.market key"), setup=_plain_parquet,
         code=0),
    Case("list-zero-byte-parquet", _list(), ("zero.parquet", "0 bytes"), setup=_junk("zero.parquet", b""), code=0),
    Case("validate-study-beside-foreign-file", _validate(), ("x.parquet",),
         setup=_both(_junk(), _yaml(SMALL)), code=0),
    Case("validate-study-using-foreign-file", _validate(),
         ("s.yaml", "pairs[0].source", "'x', whose file", "x.parquet does not read as a market"),
         setup=_both(_junk(), _yaml(USES_X))),
    Case("features-of-foreign-file", _features("x"), ("x.parquet", "an xfer market file", "unreadable"),
         setup=_junk()),
    Case("pair-with-foreign-file", ("data", "pair", "x", "wti"), ("x.parquet", "an xfer market file"),
         setup=_junk()),
    Case("features-of-parquet-without-xfer-entry", _features("plain"), ("plain.parquet", "no xfer.market key"),
         setup=_plain_parquet),
    # --- hand-placed entries: links are never followed, the file name is the id
    Case("list-symlink-out-of-store", _list(), ("lnk.parquet", "symbolic link"), setup=_symlink_out, code=0),
    Case("features-via-symlink", _features("lnk"), ("lnk.parquet", "symbolic link"), setup=_symlink_out),
    Case("import-replace-over-symlink", _import("f.csv", "--replace", market="lnk"),
         ("lnk.parquet", "symbolic link", "remove it by hand"), setup=_both(_symlink_out, _csv())),
    Case("list-market-copied-under-another-name", _list(), ("copy.parquet", "'keep'", "'copy'"),
         setup=_copied("copy.parquet"), code=0),
    Case("features-of-copied-market", _features("copy"), ("copy.parquet", "'keep'", "the file name is the id"),
         setup=_copied("copy.parquet")),
    Case("list-id-differing-by-case", _list(), ("Keep.parquet", "not a market id"), setup=_copied("Keep.parquet"),
         code=0),
    Case("list-folder-named-parquet", _list(), ("d.parquet", "not a regular file"),
         setup=lambda tmp: (_markets(tmp) / "d.parquet").mkdir(), code=0),
    Case("features-of-folder-named-parquet", _features("d"), ("d.parquet", "not a regular file"),
         setup=lambda tmp: (_markets(tmp) / "d.parquet").mkdir()),
    Case("import-replace-over-folder", _import("f.csv", "--replace", market="d"),
         ("d.parquet", "not a regular file", "remove it by hand"),
         setup=_both(lambda tmp: (_markets(tmp) / "d.parquet").mkdir(), _csv())),
    # --- the store's root
    Case("store-root-is-a-file", _import("f.csv", "--store", "{tmp}/homefile"),
         ("homefile", "cannot create", "homefile is a file, not a folder"), setup=_both(_csv(), _file("homefile"))),
    Case("markets-folder-is-a-file", _import("f.csv"), ("cannot create", "xfer_home/markets is a file, not a folder"),
         setup=_both(_csv(), _file("xfer_home/markets"))),
    Case("list-markets-folder-is-a-file", _list(), (), setup=_file("xfer_home/markets"), code=0),
    Case("store-root-unwritable", _import("f.csv", "--store", "/proc/xfer-home"),
         ("/proc/xfer-home", "cannot create"), setup=_csv()),
    Case("synth-into-unwritable-store", ("data", "synth", "--market", "s", "--n-target", "400", "--store",
                                         "/proc/xfer-home"), ("/proc/xfer-home", "cannot create")),
    # --- study directories: not in the store's markets folder (every `data list` then failed on the
    # study's Parquet files), not in the package; one run at a time
    Case("run-out-in-markets-folder", _run("{tmp}/xfer_home/markets/small"),
         ("--out", "outside the store's markets folder"), setup=_both(_yaml(SMALL), _market("keep"))),
    Case("run-out-is-markets-folder", _run("{tmp}/xfer_home/markets"),
         ("--out", "outside the store's markets folder"), setup=_both(_yaml(SMALL), _market("keep"))),
    Case("run-out-via-dotdot-into-markets", _run("{tmp}/s/../xfer_home/markets/small"),
         ("--out", "outside the store's markets folder"), setup=_both(_yaml(SMALL), _file("s/keep"))),
    Case("run-storage-in-markets-folder", ("study", "run", "{tmp}/s.yaml"),
         ("storage", "outside the store's markets folder"), setup=_storage_in_markets),
    Case("run-out-in-embedded-samples", _run(SAMPLES_OUT), ("--out", "outside xfer's embedded samples"),
         setup=_yaml(SMALL)),
    Case("run-on-locked-study", _run("{tmp}/study"), ("--out", "locked", f"pid {PID}", "2024-01-02T03:04:05"),
         setup=_locked_study),
    Case("resume-locked-study", ("study", "resume", "{tmp}/study"), ("STUDY_DIR", "locked", f"pid {PID}",
                                                                       socket.gethostname()), setup=_locked_study),
]
