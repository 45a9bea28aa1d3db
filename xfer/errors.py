"""One error type for every bad input a user can give xfer.

Every user-facing entry point (CLI, study spec, data import) raises :class:`XferInputError`
with the file, the field, what was expected and what was found, so a message always tells
the user where to look and what to change. The CLI turns it into a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path


class XferError(Exception):
    """Base class of xfer's own errors."""


class XferInputError(XferError, ValueError):
    """Bad input: names the file, the field, what was expected and what was found."""

    def __init__(
        self,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        expected: str,
        found: str,
        hint: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self._render())

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only fields: the default pickling (cls(*args)) cannot rebuild it, so an error
        # raised in a worker process (Ray, a process pool) arrived as an unpickling TypeError
        return _rebuild, (type(self), self.file, self.field, self.expected, self.found, self.hint)

    def _render(self) -> str:
        where = ": ".join(p for p in (self.file, self.field) if p)
        msg = f"expected {self.expected}; found {self.found}"
        if where:
            msg = f"{where}: {msg}"
        if self.hint:
            msg += f" (hint: {self.hint})"
        return msg


def _rebuild(cls: type[XferInputError], file: str | None, field: str | None, expected: str, found: str,
             hint: str | None) -> XferInputError:
    return cls(file=file, field=field, expected=expected, found=found, hint=hint)
