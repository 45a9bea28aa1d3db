"""One run at a time per study directory.

``xfer study run`` and ``xfer study resume`` hold an exclusive :func:`fcntl.flock` on
``<study_dir>/.xfer-study.lock`` for the whole run; the holder's pid, host and start time are
written inside, so a second run on the same directory is refused at once, naming the holder,
instead of running every cell a second time beside the first. The kernel releases the lock
when the holder exits, however it exits: a lock file left by a run that died (killed, power
loss) blocks nothing, and nobody ever has to delete it by hand.

The file stays in the directory after the run (removing it would let two later runs lock
two different files); it is a dot-file, so an object-store study never uploads it
(:meth:`xfer.study.storage.StudyStorage.push_changed` skips dot-files). For a study in an
object store (``s3://...``) the lock lives in the run's local staging directory: it guards
nothing across machines, only what a local directory is guarded against.

``flock`` is per open file description: two ``open`` calls conflict even in one process. On a
network file system without ``flock`` support the lock is skipped with no error (NFSv4 and
Lustre support it; old NFSv3 mounts emulate it with POSIX locks).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from xfer.errors import XferInputError

LOCK_FILE = ".xfer-study.lock"


def holder(study_dir: Path) -> dict[str, object] | None:
    """What the lock file of ``study_dir`` says about its last holder (None: no readable file)."""
    try:
        return json.loads((Path(study_dir) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class StudyLock:
    """The lock of one study directory; a context manager (``with StudyLock(d, "--out"):``)."""

    def __init__(self, study_dir: Path, field: str = "--out") -> None:
        self.study_dir = Path(study_dir)
        self.field = field
        self.path = self.study_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StudyLock:
        """Take the lock, or raise :class:`XferInputError` naming the run that holds it."""
        import fcntl

        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise XferInputError(file=self.path, field=self.field, expected="a study directory xfer can write in",
                                 found=f"cannot create its lock file ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                self._fd = fd  # no locking on this file system: run unguarded, as before
                return self
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise self._busy() from None
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass  # the lock holds even if the note about its holder could not be written
        self._fd = fd
        return self

    def _busy(self) -> XferInputError:
        h = holder(self.study_dir) or {}
        who = (f"pid {h.get('pid', '?')} on host {h.get('host', '?')}, running since {h.get('since', '?')}"
               if h else "another process")
        return XferInputError(file=self.study_dir, field=self.field,
                              expected="a study directory no other run is writing",
                              found=f"locked by a running xfer study run: {who} ({self.path})",
                              hint="wait for it to finish (`xfer study status DIR` shows its progress) or stop it; "
                                   "a run that died leaves no lock behind")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
