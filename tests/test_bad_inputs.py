"""The bad-input suite: every way a user can get an input wrong, one row each.

For every row of :mod:`tests.bad_inputs` (data import and store reads, study specs, CLI
options and run-time faults) the command must exit with the row's code, say the row's phrase
on stderr (file / field / expected / found), print no traceback, and leave the store and
every output path byte-for-byte unchanged: nothing half-written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import Case, import_checks, spec_limits, store_faults
from tests.bad_inputs import data as data_cases
from tests.bad_inputs import spec as spec_cases
from tests.conftest import tree_digest

CASES: list[Case] = [*data_cases.CASES, *spec_cases.CASES, *import_checks.CASES, *spec_limits.CASES,
                     *store_faults.CASES]


def test_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) >= 50, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, store_dir: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store_dir == tmp_path / "xfer_home"
    if case.setup is not None:
        case.setup(tmp_path)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    before = tree_digest(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    r = cli(*argv)
    assert r.code == case.code, f"exit {r.code}, stderr: {r.err[-2000:]}"
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err[-2000:]
    for phrase in case.phrases:
        assert " ".join(phrase.lower().split()) in r.err.lower(), f"{phrase!r} not in: {r.err[-2000:]}"
    assert tree_digest(tmp_path) == before, "the store or an output path changed"


def test_input_errors_survive_pickling_from_a_worker_process() -> None:
    """An error raised in a Ray or process-pool worker reaches the driver pickled: it must come
    back as the same error with the same message, not as an unpickling TypeError."""
    import pickle

    from xfer.errors import XferInputError
    from xfer.evaluate.tables import StaleTableError
    from xfer.study.spec import StudyError

    errors = [XferInputError(file="a.yaml", field="pairs", expected="a list", found="3", hint="see docs"),
              XferInputError(expected="x", found="y"),
              StaleTableError(file="r.parquet", field="days", expected="columns", found="none"),
              StudyError("s.yaml", [("grid.seeds", "an int", "'x'"), ("name", "a name", "''")])]
    for e in errors:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
        assert (back.file, back.field, back.expected, back.found, back.hint) == (
            e.file, e.field, e.expected, e.found, e.hint)
