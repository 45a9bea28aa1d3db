"""Atomic file writes: a reader (or a crash) never sees half a file.

Every file xfer writes for others to read (results, market files, reports, the resolved spec,
cached weights) goes through :func:`atomic_write`: a temporary sibling, then a rename.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xfer.errors import XferInputError


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary shared files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp))


def check_output_dir(path: Path, field: str = "--out") -> Path:
    """Refuse, before any compute, an output directory that cannot be created or written.

    Nothing is left behind: the nearest existing ancestor must be a directory where a file can
    be written (probed with a temporary file), and ``path``, if it exists, must be a directory.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise XferInputError(file=path, field=field, expected="a directory (or a path to create one at)",
                             found="an existing file")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise XferInputError(file=path, field=field, expected="a path under a directory",
                             found=f"{probe} is a file")
    try:  # a real write (root passes os.access checks on read-only mounts)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise XferInputError(file=path, field=field, expected="a writable location",
                             found=f"cannot write in {probe} ({exc.strerror or exc})") from None
    return path


def move_aside(path: Path) -> Path:
    """Move a file that no longer reads back to ``<its folder>/corrupt/<name>.<timestamp>[.n]``;
    return where it went (the caller says why)."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.parent / "corrupt" / f"{path.name}.{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = path.parent / "corrupt" / f"{path.name}.{stamp}.{n}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    return dest
