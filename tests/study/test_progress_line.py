"""The live progress line shows validation only: the test score belongs in the final tables."""

from __future__ import annotations

import pytest

from xfer.study.progress import StudyProgress


def test_the_progress_line_shows_validation_and_never_the_test_score(capsys: pytest.CaptureFixture[str]) -> None:
    p = StudyProgress(total=3, already=0)
    for cell, val, test in (("a", 0.9, 0.5), ("b", 0.7, 0.1), ("c", 0.8, 0.9)):
        p.on_trial_result(0, [], None, {"cell_finished": True, "cell_id": cell, "val_score": val, "test_score": test})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert all("test" not in line for line in lines), lines
    assert "[cells 3/3] c: val 0.8000 | lowest val so far 0.7000 (b)" in lines[2]
