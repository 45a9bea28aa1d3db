"""Read W&B offline runs back without the network and without wandb's private APIs.

Why: wandb 0.31 offline runs hold no ``wandb-summary.json`` / ``wandb-history.jsonl``
(wandb/wandb#9646) and wandb ships no reader, so checking what a study logged (tests, a
``study show`` command, a sync dry-run) would otherwise need an upload. The ``.wandb`` file is
wandb-core's transaction log; only its protobuf schema (``wandb.proto.wandb_internal_pb2``) is
borrowed from wandb, the framing is parsed here:

* a 7-byte header: ``b":W&B"``, magic ``0xBEE1`` (uint16 little-endian), version byte ``0``;
* then 32 KiB blocks (counted from the start of the file, header included) of LevelDB-style
  records: ``crc32 uint32 LE | length uint16 LE | type uint8`` then ``length`` payload bytes,
  type 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST; the CRC is plain IEEE CRC-32 of the type byte plus
  the payload (not LevelDB's masked CRC-32C); a block tail shorter than a header is zero padding;
* each reassembled payload is one ``wandb_internal.Record``.

Tables (``wandb.Table``) show up in the summary as ``{"_type": "table-file", "path":
"media/table/<key>_<step>_<hash>.table.json", ...}``; the JSON lives in the run's ``files/``.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xfer.errors import XferInputError

if TYPE_CHECKING:
    import pandas as pd

MAGIC = b":W&B"
MAGIC_NUMBER = 0xBEE1
VERSION = 0
FILE_HEADER = struct.Struct("<4sHB")
RECORD_HEADER = struct.Struct("<IHB")
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

TABLE_TYPES = ("table-file",)
"""Summary ``_type`` values :func:`read_table` can load (partitioned/joined tables are not)."""

_EXIT_SEARCH = 64
"""How many trailing records :func:`is_complete` inspects for the exit record."""

_INTERNAL_KEY = "_wandb"
"""wandb's own bookkeeping key in config and summary; kept out of what xfer code compares."""


@dataclass
class OfflineRun:
    """What a W&B run recorded, as read from its local ``.wandb`` transaction log."""

    path: Path
    """The run directory (``…/wandb/offline-run-<time>-<id>``)."""
    run_id: str
    project: str
    group: str
    name: str
    job_type: str
    config: dict[str, Any]
    """``wandb.init(config=…)`` plus later ``run.config`` updates, wandb's ``_wandb`` key removed."""
    history: list[dict[str, Any]]
    """One dict per ``run.log`` row, in order; includes wandb's ``_step``/``_runtime``/``_timestamp``."""
    summary: dict[str, Any]
    """The final summary (``run.summary`` updates and last logged values), ``_wandb`` removed."""
    entity: str = ""
    tags: list[str] = field(default_factory=list)
    charts: dict[str, Any] = field(default_factory=dict)
    """Custom charts (``wandb.plot.*``) by key: their Vega panel configs."""
    finished: bool = False
    """Whether the log ends with an exit record (False: still running, or the process died)."""
    exit_code: int | None = None

    @property
    def files_dir(self) -> Path:
        """Where the run's files (media, tables) are: what ``wandb sync`` uploads as run files."""
        return self.path / "files"

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        """Summary entries that are logged tables, by key (load one with :func:`read_table`)."""
        return {
            k: v
            for k, v in self.summary.items()
            if isinstance(v, dict) and v.get("_type") in TABLE_TYPES
        }


def _bad(path: Path, expected: str, found: str) -> XferInputError:
    return XferInputError(
        file=path,
        expected=expected,
        found=found,
        hint="pass an offline-run-* directory or its run-<id>.wandb file",
    )


def _wandb_file(path: Path) -> Path:
    """The ``run-<id>.wandb`` log of a run directory (or ``path`` itself when it is a file)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        logs = sorted(path.glob("*.wandb"))
        if len(logs) == 1:
            return logs[0]
        found = "no .wandb file" if not logs else f"{len(logs)} .wandb files"
        raise _bad(path, "a W&B run directory holding one run-<id>.wandb file", found)
    raise _bad(path, "a W&B run directory or .wandb file", "no such file or directory")


def iter_records(data: bytes, path: Path) -> Iterator[bytes]:
    """Yield each record payload of a ``.wandb`` log; stop quietly at a truncated tail.

    A run that is still being written (or whose process was killed) ends mid-record; that is
    not corruption, so the complete records before it are returned. A CRC mismatch is.
    """
    if len(data) < FILE_HEADER.size:
        raise _bad(path, "a W&B transaction log (.wandb)", f"a {len(data)}-byte file")
    ident, magic, version = FILE_HEADER.unpack_from(data, 0)
    if ident != MAGIC or magic != MAGIC_NUMBER:
        raise _bad(
            path,
            "a W&B transaction log (.wandb) starting with ':W&B' and magic 0xBEE1",
            f"a file starting with {data[:7]!r}",
        )
    if version != VERSION:
        raise _bad(path, f"W&B transaction log version {VERSION}", f"version {version}")
    pos = FILE_HEADER.size
    end = len(data)
    pending: bytearray | None = None
    while pos < end:
        left = BLOCK_SIZE - pos % BLOCK_SIZE
        if left < RECORD_HEADER.size:
            pos += left  # zero padding at the end of a block
            continue
        if pos + RECORD_HEADER.size > end:
            return
        crc, length, rtype = RECORD_HEADER.unpack_from(data, pos)
        if rtype == 0 and length == 0:
            pos += left  # zero-filled (preallocated) rest of a block
            continue
        start = pos + RECORD_HEADER.size
        stop = start + length
        if length > left - RECORD_HEADER.size:
            raise _bad(
                path, "records that fit their 32 KiB block", f"a broken record at byte {pos}"
            )
        if stop > end:
            return
        payload = data[start:stop]
        if zlib.crc32(bytes((rtype,)) + payload) != crc:
            raise _bad(
                path, "records with valid CRC-32 checksums", f"a corrupt record at byte {pos}"
            )
        pos = stop
        if rtype == FULL:
            pending = None
            yield payload
        elif rtype == FIRST:
            pending = bytearray(payload)
        elif rtype == MIDDLE and pending is not None:
            pending += payload
        elif rtype == LAST and pending is not None:
            pending += payload
            yield bytes(pending)
            pending = None
        elif rtype not in (MIDDLE, LAST):
            raise _bad(path, "record types 1-4", f"type {rtype} at byte {pos}")


def _item_path(item: Any) -> list[str]:
    """A config/summary/history item's key path: ``nested_key`` when set, else ``[key]``."""
    return list(item.nested_key) or [item.key]


def _decode(item: Any, path: Path) -> Any:
    try:
        return json.loads(item.value_json) if item.value_json else None
    except ValueError as exc:
        raise _bad(
            path, "JSON values in the run's records", f"{item.value_json!r} ({exc})"
        ) from exc


def _set(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[keys[-1]] = value


def _remove(target: dict[str, Any], keys: list[str]) -> None:
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            return
        target = child
    target.pop(keys[-1], None)


def read_run(run_dir_or_wandb_file: Path) -> OfflineRun:
    """Parse a run's ``.wandb`` log: identity, merged config, history rows, final summary.

    Raises:
        XferInputError: the path is not a W&B run, or its log is corrupt.
    """
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    wandb_file = _wandb_file(Path(run_dir_or_wandb_file))
    data = wandb_file.read_bytes()
    run = OfflineRun(
        path=wandb_file.parent,
        run_id=wandb_file.stem.removeprefix("run-"),
        project="",
        group="",
        name="",
        job_type="",
        config={},
        history=[],
        summary={},
    )
    for payload in iter_records(data, wandb_file):
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except DecodeError as exc:
            raise _bad(
                wandb_file, "wandb_internal.Record messages", f"undecodable bytes ({exc})"
            ) from exc
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id = r.run_id or run.run_id
            run.project = r.project or run.project
            run.entity = r.entity or run.entity
            run.group = r.run_group or run.group
            run.job_type = r.job_type or run.job_type
            run.name = r.display_name or run.name
            run.tags = list(r.tags) or run.tags
            for item in r.config.update:
                _set(run.config, _item_path(item), _decode(item, wandb_file))
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, _item_path(item), _decode(item, wandb_file))
            for item in record.config.remove:
                _remove(run.config, _item_path(item))
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, _item_path(item), _decode(item, wandb_file))
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, _item_path(item), _decode(item, wandb_file))
            for item in record.summary.remove:
                _remove(run.summary, _item_path(item))
        elif kind == "exit":
            run.finished = True
            run.exit_code = record.exit.exit_code
    internal = run.config.pop(_INTERNAL_KEY, None)
    if isinstance(internal, dict) and isinstance(internal.get("visualize"), dict):
        run.charts = internal["visualize"]
    run.summary.pop(_INTERNAL_KEY, None)
    return run


def is_complete(run_dir_or_wandb_file: Path) -> bool:
    """Whether the run's log already holds its exit record (and so everything logged before it).

    wandb 0.31's ``run.finish()`` returns before wandb-core has flushed an offline run's
    ``.wandb`` file (often it still holds only the 7-byte header), so code that reads a run
    right after finishing it waits on this (see :func:`wait_until_complete`). The exit record
    is not always last: system metadata (an ``environment`` record) can land after it.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    try:
        wandb_file = _wandb_file(Path(run_dir_or_wandb_file))
        payloads = list(iter_records(wandb_file.read_bytes(), wandb_file))
    except (XferInputError, OSError):
        return False
    for payload in reversed(payloads[-_EXIT_SEARCH:]):
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def wait_until_complete(run_dir_or_wandb_file: Path, timeout: float = 30.0) -> bool:
    """Poll :func:`is_complete` (1 ms, backing off to 100 ms) for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not is_complete(run_dir_or_wandb_file):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def read_table(run: OfflineRun, key: str) -> pd.DataFrame:
    """Load the table logged under ``key`` (the latest one) from the run's files.

    For a ``wandb.plot.*`` chart key the chart's data table (``<key>_table``) is returned.

    Raises:
        XferInputError: no table under ``key``, or its file is missing.
    """
    import pandas as pd

    entry = run.summary.get(key)
    if not (isinstance(entry, dict) and entry.get("_type") in TABLE_TYPES):
        entry = run.summary.get(f"{key}_table", entry)
    if not (isinstance(entry, dict) and entry.get("_type") in TABLE_TYPES):
        raise XferInputError(
            file=run.path,
            field=key,
            expected="a table logged with wandb.Table",
            found="no such key" if entry is None else f"a {type(entry).__name__} value",
            hint=f"tables in this run: {', '.join(sorted(run.tables)) or 'none'}",
        )
    table_path = run.files_dir / str(entry.get("path", ""))
    if not table_path.is_file():
        raise XferInputError(
            file=table_path,
            field=key,
            expected="the table's JSON file in the run's files/ folder",
            found="no such file",
        )
    content = json.loads(table_path.read_text())
    return pd.DataFrame(content.get("data", []), columns=content.get("columns", []))


def find_runs(root: Path, *, include_online: bool = False) -> list[Path]:
    """Every W&B run directory under ``root`` (recursively), oldest first.

    Offline runs (``offline-run-*``) by default; ``include_online`` adds wandb's local copies of
    online runs (``run-*``), which have the same layout. wandb's ``latest-run`` symlink is skipped.
    """
    root = Path(root)
    if not root.exists():
        return []
    patterns = ["offline-run-*"] + (["run-*"] if include_online else [])
    found: dict[Path, Path] = {}
    candidates = [root] + [p for pattern in patterns for p in root.rglob(pattern)]
    for path in candidates:
        if not path.is_dir() or path.is_symlink():
            continue
        if not any(path.name.startswith(p.rstrip("*")) for p in patterns):
            continue
        if any(path.glob("run-*.wandb")):
            found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=_run_sort_key)


def _run_sort_key(path: Path) -> tuple[str, str]:
    """Order by the start time wandb puts in the folder name (``…-run-YYYYmmdd_HHMMSS-<id>``)."""
    stamp = re.search(r"\d{8}_\d{6}", path.name)
    return (stamp.group(0) if stamp else "", str(path))
