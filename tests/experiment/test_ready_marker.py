"""The "sources ready" marker a study's driver reads to skip its pre-training pass."""

from __future__ import annotations

import os
from pathlib import Path

from xfer.data import synthetic as syn
from xfer.data.store import Store
from xfer.experiment.config import TransferConfig
from xfer.experiment.prepare import prepare, ready_marker
from xfer.train.types import TrainConfig

TINY = TrainConfig(batch_size=64, steps_per_epoch=3, max_epochs=2, patience=1)


def test_prepare_marks_its_sources_ready_and_the_mark_tracks_what_changes_them(tmp_path: Path) -> None:
    st = Store(tmp_path)
    syn.write_set(st, "shared", n_source=1500, n_target=1200, seed=0)
    cfg = TransferConfig(source=("syn_shared_src",), target="syn_shared_tgt", strategies=("full",), fractions=(0.5,),
                         seeds=1, source_train=TINY, train=TINY)
    marker = ready_marker(cfg, st)
    assert not marker.exists()
    prepare(cfg, st, with_source=False)
    assert not marker.exists()  # no source trained, nothing marked
    prepare(cfg, st)
    assert marker.is_file()
    # strategy and fraction do not change the source; its training does
    assert ready_marker(cfg.model_copy(update={"strategies": ("head_only",), "fractions": (0.1,)}), st) == marker
    assert ready_marker(cfg.model_copy(update={"source_train": TINY.model_copy(update={"max_epochs": 3})}), st) != marker
    assert ready_marker(cfg.model_copy(update={"seeds": 2}), st) != marker
    # a DANN source sees the target rows of its fraction
    dann = cfg.model_copy(update={"dann_weight": 1.0})
    assert ready_marker(dann, st) != ready_marker(dann.model_copy(update={"fractions": (0.1,)}), st)
    # a market the config does not read, added and removed (as parallel calibration jobs do with
    # their own targets), changes nothing and cannot make the marker's listing fail
    syn.write_set(st, "opposite", n_source=300, n_target=300, seed=1)
    assert ready_marker(cfg, st) == marker
    st.path("syn_opposite_tgt").unlink()
    assert ready_marker(cfg, st) == marker
    # a market file rewritten (here: touched) invalidates every marker that reads it
    path = st.path("syn_shared_src")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert ready_marker(cfg, st) != marker


def test_a_study_skips_pre_training_for_groups_already_ready(tmp_path: Path) -> None:
    from xfer.study.runner import _source_groups
    from xfer.study.spec import StudySpec, cells

    st = Store(tmp_path)
    syn.write_set(st, "shared", n_source=1500, n_target=1200, seed=0)
    spec = StudySpec.model_validate({
        "name": "ready", "pairs": [{"source": "syn_shared_src", "target": "syn_shared_tgt"}],
        "grid": {"strategies": ["scratch", "head_only", "full"], "fractions": [0.2, 1.0], "seeds": 1},
        "train": TINY.model_dump(), "source": {"train": TINY.model_dump()}})
    pending = cells(spec)
    (group,) = _source_groups(pending, st)  # one source for both strategies and fractions
    prepare(next(c for c in pending if c.cell_id == group).setup, st)
    assert _source_groups(pending, st) == []


def test_listing_skips_a_market_removed_while_it_lists(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A store shared by processes: a file listed and then removed by another process is left out
    of the catalog instead of failing the listing (it raised FileNotFoundError or, through the
    marker's lookup, an XferInputError naming the vanished market)."""
    st = Store(tmp_path)
    syn.write_set(st, "shared", n_source=300, n_target=300, seed=0)
    listed = st._user_paths()
    gone = tmp_path / "markets" / "cal_tgt_9.parquet"
    monkeypatch.setattr(Store, "_user_paths", lambda self: {**listed, "cal_tgt_9": gone})
    assert [m.id for m in st.list()] == sorted(m for m in {*st._embedded_paths(), *listed})
