"""Regenerate the refactor-identity snapshots (run from the repo root; ~2 min on 2 cores).

    python tests/golden/make_golden.py

The snapshots pin the quickstart study's results / verdicts / sizing tables and one
``xfer transfer`` run's fits, so a behaviour-preserving refactor can be checked exactly
(``tests/experiment/test_identity.py``). Regenerate them only in a commit that changes
behaviour on purpose, and say so in the commit message.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.experiment.identity import run_quickstart, run_small_transfer  # noqa: E402


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tables = run_quickstart(Path(tmp))
        for name, frame in tables.items():
            frame.to_parquet(HERE / f"quickstart_{name}.parquet", index=False)
        run_small_transfer(Path(tmp) / "home").to_parquet(HERE / "transfer_fits.parquet", index=False)
    print("written:", sorted(p.name for p in HERE.glob("*.parquet")))


if __name__ == "__main__":
    main()
