"""Every command in RESULTS.md can be run as written: its study files exist and validate against
the embedded markets, its scripts exist and parse their arguments."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from xfer.data.store import Store
from xfer.study.spec import load

ROOT = Path(__file__).parents[1]
TEXT = (ROOT / "RESULTS.md").read_text()
COMMANDS = [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", TEXT, re.S)
            for line in block.splitlines() if line.strip()]
COMMANDS += re.findall(r"`(xfer study run [^`]+)`", TEXT)
STUDIES = sorted({w for c in COMMANDS for w in shlex.split(c) if w.endswith(".yaml")})


def test_results_has_commands() -> None:
    assert any(c.startswith("xfer study run") for c in COMMANDS)
    assert any(c.startswith("python scripts/") for c in COMMANDS)


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_file_exists_and_validates(study: str, tmp_path: Path) -> None:
    spec = load(ROOT / study, Store(tmp_path / "home"))  # the embedded samples only
    assert spec.name


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("python scripts/")])
def test_every_script_exists_and_takes_its_options(command: str) -> None:
    words = shlex.split(command)
    script = ROOT / words[1]
    assert script.is_file(), script
    run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for opt in (w for w in words[2:] if w.startswith("--")):
        assert opt in run.stdout, (opt, command)
