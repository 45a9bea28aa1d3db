"""Shared fixtures: an isolated store per test, and an in-process CLI runner."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from xfer.cli import main
from xfer.data.store import Store


@pytest.fixture()
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty user store; XFER_HOME points at it so the CLI uses it too."""
    root = tmp_path / "xfer_home"
    monkeypatch.setenv("XFER_HOME", str(root))
    return root


@pytest.fixture()
def store(store_dir: Path) -> Store:
    return Store(store_dir)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``xfer ARGS`` in-process and return exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
        cap = capsys.readouterr()
        return CliResult(code, cap.out, " ".join(cap.err.split()))

    return run


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash: 'unchanged' means equal digests."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
