"""Rows of the bad-input suite (:mod:`tests.test_bad_inputs`), one module per area.

A row is a :class:`Case`: the command, the files it needs, the exit code, a phrase the
message must contain. The suite checks, for every row, that there is no traceback and that
nothing under the test's directory (the store and any output path) changed. A new bad input
is one new row in the area's module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One bad input.

    ``argv`` is the ``xfer`` command; ``{tmp}`` in an argument is replaced by the test's
    directory. ``setup(tmp)`` writes the input files (and may add markets to the store at
    ``tmp / "xfer_home"``) before the store snapshot is taken. ``phrases`` must all appear in
    stderr (case-insensitive, whitespace collapsed). ``env`` is set for the command only.
    """

    id: str
    argv: tuple[str, ...]
    phrases: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
