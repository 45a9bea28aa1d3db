"""Atomic file writes: a reader (or a crash) never sees half a file.

Every file xfer writes for others to read (results, market files, reports, the resolved spec,
cached weights) goes through :func:`atomic_write`: a temporary sibling, then a rename (or, for
a file that must not exist yet, a hard link that fails if it does). A failure of the
environment while writing (a full disk, a quota, a read-only or unwritable folder, an I/O
error) is an :class:`~xfer.errors.XferInputError` naming the path and what to do; the
temporary file is removed, so nothing half-written is left.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xfer.errors import XferInputError

ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("no space left on device", "free some space there, or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free some space within your quota, or write somewhere else"),
    errno.EACCES: ("permission denied", "check the folder's permissions, or write somewhere else"),
    errno.EPERM: ("operation not permitted", "check the folder's permissions, or write somewhere else"),
    errno.EROFS: ("read-only file system", "write somewhere else"),
    errno.EIO: ("input/output error", "check the disk (dmesg), or write somewhere else"),
}
"""errno of a write that fails because of where it writes, not of what it writes: what it
means and what to do."""
_MESSAGES = {os.strerror(e).lower(): e for e in ENVIRONMENT_ERRNOS}


def environment_errno(exc: BaseException) -> int | None:
    """The :data:`ENVIRONMENT_ERRNOS` errno of ``exc`` (an OSError, or pyarrow's error that
    carries only the message, e.g. "... error: No space left on device"), else None."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in ENVIRONMENT_ERRNOS:
        return exc.errno
    text = str(exc).lower()
    return next((e for m, e in _MESSAGES.items() if m in text), None)


class WriteError(XferInputError):
    """A write failed because of where it writes (:data:`ENVIRONMENT_ERRNOS`): retrying it the
    same way fails the same way, so a study's trials stop instead of being retried."""


def environment_error(path: Path | str, exc: BaseException, field: str | None = None) -> WriteError | None:
    """A :class:`WriteError` naming ``path`` for an environment failure ``exc``, else None."""
    code = environment_errno(exc)
    if code is None:
        return None
    what, todo = ENVIRONMENT_ERRNOS[code]
    return WriteError(file=path, field=field, expected="a location xfer can write to",
                          found=f"{what} while writing it ({type(exc).__name__}: {exc})", hint=todo)


def current_umask() -> int:
    """The process umask (read from /proc on Linux, so no other thread sees it change)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None], *, replace: bool = True) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place.

    ``replace=False``: ``path`` must not exist, checked and created in one step (a hard link of
    the temporary file, which fails if the name is taken): of two writers racing for one name,
    one wins and the other gets :class:`FileExistsError`, never a silent overwrite. The file's
    mode is ``0666 & ~umask``, as for any file the user creates. Environment failures (see
    :data:`ENVIRONMENT_ERRNOS`) raise :class:`XferInputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        above = next((p for p in (path.parent, *path.parent.parents) if os.path.lexists(p)), None)
        why = (f"{above} is a file, not a folder" if above is not None and not above.is_dir()
               else exc.strerror or str(exc))
        raise environment_error(path, exc) or XferInputError(
            file=path, expected="a path under a directory xfer can create",
            found=f"cannot create {path.parent} ({why})") from None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs are ordinary files
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        env = environment_error(path, exc)
        if env is not None:
            raise env from None
        raise
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _link_new(tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist (FileExistsError otherwise)."""
    try:
        os.link(tmp, path)  # atomic: fails with EEXIST if the name is taken (even by a broken link)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: claim the name (O_EXCL), then fill it by a rename
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            os.replace(tmp, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    else:
        Path(tmp).unlink()


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
        code = environment_errno(exc)
        raise XferInputError(file=path, field=field, expected="a writable location",
                             found=f"cannot write in {probe} ({exc.strerror or exc})",
                             hint=ENVIRONMENT_ERRNOS[code][1] if code else None) from None
    try:
        fs = os.statvfs(probe)
    except OSError:
        fs = None
    if fs is not None and fs.f_blocks and fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
        raise XferInputError(file=path, field=field, expected="a writable location",
                             found=f"no space left on device in {probe} ({fs.f_bavail * fs.f_frsize:,} bytes free)",
                             hint=ENVIRONMENT_ERRNOS[errno.ENOSPC][1])
    return path


MIN_FREE_BYTES = 1 << 20
"""Free space below which :func:`check_output_dir` refuses a location (a study's files take more)."""


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
