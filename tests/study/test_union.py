"""collect's union of the cells' files: Arrow concatenation, the same frame as pandas' concat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xfer.study.results import _union


def _write(tmp_path: Path, frames: list[pd.DataFrame]) -> list[Path]:
    files = []
    for i, f in enumerate(frames):
        files.append(tmp_path / f"{i}.parquet")
        f.to_parquet(files[-1])
    return files


def test_same_schemas_give_pandas_concat(tmp_path: Path) -> None:
    frames = [pd.DataFrame({"pair": [f"p{i}"] * 3, "seed": np.arange(3), "score": [0.5, np.nan, -1.0],
                            "date": pd.date_range("2020-01-01", periods=3)}) for i in range(4)]
    files = _write(tmp_path, frames)
    expected = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(_union(files, ()), expected, check_exact=True)


def test_differing_schemas_fall_back_to_pandas_concat(tmp_path: Path) -> None:
    """A column only some cells have (or of another type) keeps pandas' union: missing -> NaN."""
    files = _write(tmp_path, [pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
                              pd.DataFrame({"a": [3.5], "c": [True]})])
    expected = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(_union(files, ()), expected, check_exact=True)


def test_no_files_is_the_empty_contract_frame() -> None:
    assert list(_union([], ("a", "b")).columns) == ["a", "b"]


def test_a_file_read_ahead_and_replaced_since_is_read_again(tmp_path: Path) -> None:
    """The driver reads each cell's files as the cell finishes (``read_ahead``); the tables take
    those only while the file is the one that was read."""
    import pandas as pd

    from xfer.study import results as R

    (tmp_path / "cells").mkdir()
    (tmp_path / "days").mkdir()
    for sub in ("cells", "days"):
        pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(tmp_path / sub / "c1.parquet")
    R.read_ahead(tmp_path, "c1")
    assert R._read(tmp_path / "cells" / "c1.parquet").column("a").to_pylist() == [1.0, 2.0]  # the copy read ahead
    R.read_ahead(tmp_path, "c1")
    pd.DataFrame({"a": [3.0]}).to_parquet(tmp_path / "days" / "tmp.parquet")
    (tmp_path / "days" / "tmp.parquet").replace(tmp_path / "days" / "c1.parquet")  # replaced since
    assert R._read(tmp_path / "days" / "c1.parquet").column("a").to_pylist() == [3.0]
    R.read_ahead(tmp_path, "missing")  # nothing to read yet: left for the tables
    assert not any("missing" in str(p) for p in R._READ)
