"""Where a study directory lives: a local path, or an object-store URI (``s3://bucket/prefix``, ``gs://...``).

A local path is used as it is (nothing here runs for it). For a URI the driver works on a local
*staging* copy (a temporary directory): :meth:`StudyStorage.pull` downloads the study (to resume
or read it), :meth:`StudyStorage.push` uploads one file as it lands (an object PUT is atomic: a
reader sees the whole object or none), and :meth:`StudyStorage.push_changed` uploads whatever
changed since (tables, report, journal). Ray Tune's ``storage_path`` is the URI's ``ray/`` prefix.

S3 endpoint and credentials come from the standard environment: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``/``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` (e.g. ``http://minio:9000``; pyarrow's ``S3FileSystem`` does not read the
latter itself, so it is passed as ``endpoint_override``). Keys are never passed explicitly, so a
pickled filesystem (Tune's experiment state, a trial's storage context) never holds them: every
node reads them from its own environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xfer.errors import XferInputError

SCHEMES = ("s3", "gs", "gcs")
"""Object stores a study directory may live on (pyarrow filesystems)."""
SKIP_PULL = ("ray", "wandb", "wandb-interrupted")
"""Top-level folders of a remote study that :meth:`StudyStorage.pull` leaves there (Tune's own state,
W&B run files): a run needs neither to resume."""
SKIP_PUSH = ("ray/", "wandb/data/", "wandb/cache/")
"""What :meth:`StudyStorage.push_changed` never uploads: Tune's state (Tune writes it there itself)
and W&B's staging areas."""


def is_uri(where: str | Path) -> bool:
    """Whether ``where`` names an object store (``scheme://...``) rather than a local path."""
    return isinstance(where, str) and "://" in where and not where.startswith("file://")


def _endpoint() -> tuple[str, str] | None:
    """(host:port, scheme) of a custom S3 endpoint from the environment, None for AWS itself."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    return (rest.rstrip("/"), scheme) if sep else (url.rstrip("/"), "https")


def filesystem(uri: str, field: str = "--out", timeouts: bool = False) -> tuple[Any, str]:
    """The pyarrow filesystem of ``uri`` and the path on it (``bucket/prefix``)."""
    from pyarrow import fs

    scheme, _, rest = uri.partition("://")
    path = rest.strip("/")
    if scheme not in SCHEMES:
        raise XferInputError(field=field, expected=f"a local path or a URI with scheme {', '.join(SCHEMES)}",
                             found=f"{uri!r} (scheme {scheme!r})")
    if not path or path.startswith("/"):
        raise XferInputError(field=field, expected=f"{scheme}://BUCKET/PREFIX", found=repr(uri))
    if scheme == "s3":
        kw: dict[str, Any] = {}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kw["region"] = region
        ep = _endpoint()
        if ep is not None:
            kw["endpoint_override"], kw["scheme"] = ep
        if timeouts:  # a probe: fail within seconds, not after the SDK's retries
            kw.update(connect_timeout=5, request_timeout=10,
                      retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1))
        return fs.S3FileSystem(**kw), path
    try:
        f, p = fs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for an unusable URI
        raise XferInputError(field=field, expected="a URI pyarrow can open", found=f"{uri!r}: {exc}") from None
    return f, p.strip("/")


@dataclass
class StudyStorage:
    """A study directory: ``local`` is where xfer reads and writes; ``uri`` (None for a local path)
    is the object-store location ``local`` stages."""

    local: Path
    uri: str | None = None
    fs: Any = None
    base: str = ""
    _synced: dict[str, tuple[int, int]] = field(default_factory=dict)
    _last_push: dict[str, float] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.uri is not None

    def __str__(self) -> str:
        return self.uri or str(self.local)

    def tune_storage(self) -> tuple[str, Any]:
        """(storage_path, storage_filesystem) for Ray Tune's ``RunConfig``."""
        if self.uri is None:
            return str(self.local / "ray"), None
        return f"{self.base}/ray", self.fs

    def check(self, field: str = "--out") -> None:
        """Refuse, before anything runs, an object store nobody answers at (a HEAD on the study's prefix)."""
        if self.uri is None:
            return
        probe, _ = filesystem(self.uri, field, timeouts=True)
        bucket = self.base.split("/", 1)[0]
        try:
            info = probe.get_file_info(bucket)
        except OSError as exc:
            ep = _endpoint()
            raise XferInputError(field=field, expected="a reachable object store",
                                 found=f"{self.uri!r}: {str(exc).splitlines()[0]}",
                                 hint=f"endpoint {ep[1] + '://' + ep[0] if ep else 'AWS (no AWS_ENDPOINT_URL)'}; "
                                      "set AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from None
        from pyarrow import fs

        if info.type == fs.FileType.NotFound:
            raise XferInputError(field=field, expected="an existing bucket", found=f"no bucket {bucket!r} ({self.uri})")

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.local).as_posix()

    def pull(self, only: tuple[str, ...] | None = None) -> int:
        """Download the remote study into ``local`` (``only``: these top-level names); return the file count."""
        if self.uri is None:
            return 0
        from pyarrow import fs

        n = 0
        sel = fs.FileSelector(self.base, recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(sel):
            if info.type != fs.FileType.File:
                continue
            rel = info.path[len(self.base):].lstrip("/")
            top = rel.split("/", 1)[0]
            if top in SKIP_PULL or (only is not None and top not in only):
                continue
            dest = self.local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(info.path) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            self._synced[rel] = self._stamp(dest)
            n += 1
        return n

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        s = path.stat()
        return s.st_size, s.st_mtime_ns

    def push(self, path: Path, every_s: float = 0.0) -> None:
        """Upload one file of ``local`` (one PUT: atomic). ``every_s``: skip if this file was pushed
        less than that many seconds ago (a growing file such as the journal; :meth:`push_changed`
        sends its last state)."""
        if self.uri is None:
            return
        rel = self._rel(Path(path))
        now = time.monotonic()
        if every_s and now - self._last_push.get(rel, -1e18) < every_s:
            return
        stamp = self._stamp(path)
        blob = Path(path).read_bytes()  # whole before the stream opens: a failed read uploads nothing
        with self.fs.open_output_stream(f"{self.base}/{rel}") as out:
            out.write(blob)
        self._synced[rel], self._last_push[rel] = stamp, now

    def push_changed(self) -> int:
        """Upload every file of ``local`` new or changed since it was pulled or pushed; return the count."""
        if self.uri is None:
            return 0
        n = 0
        for p in sorted(self.local.rglob("*")):
            if not p.is_file() or p.name.startswith(".") or p.suffix == ".tmp":
                continue
            rel = self._rel(p)
            if rel.startswith(SKIP_PUSH) or self._synced.get(rel) == self._stamp(p) or self._linked(p):
                continue
            self.push(p)
            n += 1
        return n

    def _linked(self, path: Path) -> bool:
        """Whether ``path`` is, or lies under, a symbolic link (W&B's ``latest-run``): not uploaded."""
        while path != self.local and path != path.parent:
            if path.is_symlink():
                return True
            path = path.parent
        return False

    def cell_ids(self) -> set[str]:
        """The cells with a results file (``cells/<id>.parquet``), listed where the study lives."""
        if self.uri is None:
            d = self.local / "cells"
            return {p.stem for p in d.glob("*.parquet")} if d.is_dir() else set()
        from pyarrow import fs

        sel = fs.FileSelector(f"{self.base}/cells", recursive=False, allow_not_found=True)
        return {Path(i.path).stem for i in self.fs.get_file_info(sel)
                if i.type == fs.FileType.File and i.path.endswith(".parquet")}


def open_storage(where: str | Path, field: str = "--out", staging: Path | None = None) -> StudyStorage:
    """A local path as it is, or a URI with a fresh local staging directory (nothing downloaded yet)."""
    if not is_uri(where):
        text = str(where)
        return StudyStorage(Path(text.removeprefix("file://")).expanduser().resolve())
    scheme, _, rest = str(where).partition("://")
    uri = f"{scheme}://{rest.rstrip('/')}"
    f, base = filesystem(uri, field)
    local = staging or Path(tempfile.mkdtemp(prefix="xfer-study-"))
    return StudyStorage(local, uri, f, base)
