"""W&B layer: offline runs, the offline reader, the summary run, mode resolution, the report.

Everything runs offline: no API key, HOME / NETRC / WANDB_* dirs point into tmp, and each test
stops wandb-core and checks no such process is left behind.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from xfer.errors import XferInputError
from xfer.evaluate.contract import (
    BASELINES,
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    PREDICTION_COLUMNS,
    RESULTS_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)
from xfer.tracking import (
    CellRun,
    build_report,
    find_runs,
    log_study_summary,
    publish_report,
    read_run,
    read_table,
    resolve_mode,
    shutdown,
)
from xfer.tracking.offline import BLOCK_SIZE

STUDY = "fake-study"
PAIRS = ("us->jp", "us,uk->de")
STRATEGIES = ("scratch", "head_only", "full")
FRACTIONS = (0.1, 0.5, 1.0)
DELTA = {"head_only": (0.05, 0.03, 0.0), "full": (-0.04, 0.01, 0.06)}
"""delta by strategy and fraction: > 0.02 positive, < -0.02 negative, else inconclusive."""
CHAIN_BUMP = 0.005
"""Added to every delta of the chained (``uk``) transfer, so chain-vs-direct differ."""
METRIC = "r2_oos"
VOL_BASELINES = BASELINES["volatility"]
BELOW_BASELINE = ("us,uk->de", "direct", "head_only", 0.5)
"""The one cell that is positive against scratch (delta +0.03) but below its best baseline."""
N_PREDICTION_ROWS = 37
OLD_VERDICT_COLUMNS = ("pair", "source", "target", "chain", "strategy", "fraction", "dann_weight",
                       "metric", "test_score", "scratch_score", "delta", "delta_ci_low",
                       "delta_ci_high", "verdict", "n_pairs")
"""verdicts.parquet as written before day-level verdicts."""


# --------------------------------------------------------------------------- environment


def _wandb_core_children() -> list[int]:
    """wandb-core processes whose parent is this test process (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.find("(") + 1 : text.rfind(")")]
        ppid = int(text[text.rfind(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm.startswith("wandb-core"):
            pids.append(int(stat.parent.name))
    return pids


@pytest.fixture(autouse=True)
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No credentials, every wandb path under tmp; wandb-core stopped (and checked) afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    for var in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_BASE_URL",
        "WANDB_ENTITY",
        "WANDB_PROJECT",
        "WANDB_RUN_GROUP",
        "WANDB_NAME",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var, sub in (
        ("WANDB_DIR", "wandb-dir"),
        ("WANDB_DATA_DIR", "wandb-data"),
        ("WANDB_CACHE_DIR", "wandb-cache"),
        ("WANDB_CONFIG_DIR", "wandb-config"),
        ("WANDB_ARTIFACT_DIR", "wandb-artifacts"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield tmp_path
    shutdown()
    deadline = time.monotonic() + 10
    while _wandb_core_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _wandb_core_children() == [], "a wandb-core process outlived the test"


# --------------------------------------------------------------------------- a fake study


def _verdict(delta: float) -> str:
    return "positive" if delta > 0.02 else "negative" if delta < -0.02 else "inconclusive"


def _split(pair: str) -> tuple[str, str]:
    source, target = pair.split("->")
    return source, target


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    """A finished study per contract.py: two pairs (one chained), three strategies × fractions."""
    root = tmp_path / STUDY
    (root / "cells").mkdir(parents=True)
    (root / "spec.json").write_text(json.dumps({"name": STUDY, "pairs": list(PAIRS)}))
    cells = [(p, c) for p in PAIRS for c in (("direct", "uk") if p == "us->jp" else ("direct",))]
    verdicts, curves, sizing, results = [], [], [], []
    for pair, chain in cells:
        source, target = _split(pair)
        key = {"pair": pair, "source": source, "target": target, "chain": chain, "dann_weight": 0.0}
        bump = 0.0 if chain == "direct" else CHAIN_BUMP
        for strategy in STRATEGIES:
            for i, fraction in enumerate(FRACTIONS):
                delta = 0.0 if strategy == "scratch" else DELTA[strategy][i] + bump
                below = (pair, chain, strategy, fraction) == BELOW_BASELINE
                scratch = strategy == "scratch"
                verdicts.append(
                    {
                        **key,
                        "strategy": strategy,
                        "fraction": fraction,
                        "metric": METRIC,
                        "test_score": 0.2 + delta,
                        "scratch_score": 0.2,
                        "delta": delta,
                        "delta_ci_low": delta - 0.015,
                        "delta_ci_high": delta + 0.015,
                        "p_value": math.nan if scratch else 0.001,
                        "p_adjusted": math.nan if scratch else 0.01,
                        "adjustment": "holm",
                        "n_comparisons": 0,  # filled below
                        "verdict": "baseline" if scratch else _verdict(delta),
                        "detectable_effect": math.nan if scratch else 0.015,
                        "n_days": 240,
                        "n_seeds": 2,
                        "block_length": math.nan if scratch else 6.0,
                        "best_baseline": "har_rv",
                        "best_baseline_score": 0.19,
                        "delta_vs_baseline": -0.01 if below else 0.01 + delta,
                        "delta_vs_baseline_ci_low": -0.02 if below else 0.005,
                        "delta_vs_baseline_ci_high": 0.005 if below else 0.03,
                        "beats_baseline": not below,
                        "baseline_ewma_score": 0.18,
                        "baseline_har_rv_score": 0.19,
                    }
                )
                curves.append(
                    {
                        **key,
                        "strategy": strategy,
                        "fraction": fraction,
                        "metric": METRIC,
                        "mean": 0.2 + delta + 0.1 * fraction,
                        "ci_low": 0.1,
                        "ci_high": 0.4,
                        "n": 240,
                    }
                )
                if strategy == "scratch" and chain == "direct":  # baselines: once per target
                    curves += [
                        {
                            **key,
                            "strategy": name,
                            "fraction": fraction,
                            "metric": METRIC,
                            "mean": 0.15 + 0.01 * k,
                            "ci_low": 0.1,
                            "ci_high": 0.2,
                            "n": 240,
                        }
                        for k, name in enumerate(VOL_BASELINES)
                    ]
                for seed in (0, 1):
                    for fold in (0, 1):
                        cell_id = f"{pair}|{chain}|{strategy}|{fraction}"
                        results.append(
                            {
                                **key,
                                "strategy": strategy,
                                "fraction": fraction,
                                "seed": seed,
                                "fold": fold,
                                "metric": METRIC,
                                "val_score": 0.9,
                                "test_score": 0.2,
                                "cell_id": cell_id,
                                "trial_number": 0,
                                "lr": 1e-3,
                                "weight_decay": 0.0,
                                "lr_ratio": 0.1,
                                "epochs": 5,
                                "best_epoch": 3,
                                "best_step": 90,
                                "eval_every": 30,
                                "n_train": 100,
                                "n_test": 50,
                                "test_start": "2020-01-01",
                                "test_end": "2020-06-30",
                                "seconds": 1.5,
                            }
                        )
            if strategy != "scratch":
                never = pair == "us,uk->de" and strategy == "full"  # never reaches full-data score
                sizing.append(
                    {
                        **key,
                        "strategy": strategy,
                        "metric": METRIC,
                        "required_fraction": math.nan
                        if never
                        else 0.5
                        if strategy == "head_only"
                        else 0.8,
                        "ci_low": math.nan if never else 0.1,
                        "ci_high": math.nan if never else 1.0,
                        "reached_share": 0.25 if never else 0.75,
                        "rule_of_thumb": RULE_OF_THUMB[strategy],
                    }
                )
    comparisons = [
        {
            "pair": "us->jp",
            "kind": "chain_vs_direct",
            "variant": "uk",
            "baseline": "direct",
            "strategy": "full",
            "fraction": 0.5,
            "metric": METRIC,
            "delta": 0.01,
            "delta_ci_low": -0.02,
            "delta_ci_high": 0.04,
            "p_value": 0.3,
            "p_adjusted": 0.6,
            "verdict": "inconclusive",
            "detectable_effect": 0.03,
            "n_days": 240,
        }
    ]
    predictions = [
        {
            "pair": "us->jp",
            "source": "us",
            "target": "jp",
            "chain": "direct",
            "strategy": "har_rv" if row % 2 else "scratch",
            "fraction": 1.0,
            "dann_weight": 0.0,
            "seed": 0,
            "fold": 0,
            "row": row,
            "date": pd.Timestamp("2020-01-01") + pd.Timedelta(days=row),
            "horizon": 1,
            "y": 0.1,
            "pred": 0.1,
            "score": 0.0,
        }
        for row in range(N_PREDICTION_ROWS)
    ]
    judged = sum(v["strategy"] != "scratch" for v in verdicts)
    for v in verdicts:
        v["n_comparisons"] = judged
    verdict_columns = [*VERDICT_COLUMNS, "baseline_ewma_score", "baseline_har_rv_score"]
    frames: dict[str, tuple[list[dict[str, object]], Sequence[str]]] = {
        "verdicts": (verdicts, verdict_columns),
        "predictions": (predictions, PREDICTION_COLUMNS),
        "curves": (curves, CURVE_COLUMNS),
        "sizing": (sizing, SIZING_COLUMNS),
        "comparisons": (comparisons, COMPARISON_COLUMNS),
        "results": (results, RESULTS_COLUMNS),
    }
    for stem, (rows, columns) in frames.items():
        pd.DataFrame(rows, columns=list(columns)).to_parquet(root / f"{stem}.parquet")
    results_df = pd.read_parquet(root / "results.parquet")
    for i, (_, rows) in enumerate(results_df.groupby("cell_id")):
        rows.to_parquet(root / "cells" / f"cell{i:03d}.parquet")
    return root


# --------------------------------------------------------------------------- cell runs + reader


def test_cell_run_round_trips_config_history_and_summary(tmp_path: Path) -> None:
    config = {
        "pair": "us->jp",
        "strategy": "full",
        "fraction": 0.5,
        "lr": 0.001,
        "grid": {"seeds": [0, 1], "dann": None},
    }
    losses = [0.9, 0.5, 0.25, 0.125]
    with CellRun(
        tmp_path / "s",
        project="xfer-test",
        entity=None,
        mode="offline",
        group="g1",
        name="cell-7",
        config=config,
        tags=["t1"],
    ) as run:
        for step, loss in enumerate(losses):
            run.log({"train/loss": loss, "val_score": 2 * loss}, step=step)
        run.finish(summary={"test_score": 0.42, "verdict": "positive"})
        run.finish(summary={"test_score": -1.0})  # idempotent: ignored
    assert run.mode == "offline" and run.finished
    assert run.run_dir is not None
    assert run.run_dir.parent == tmp_path / "s" / "wandb"
    assert run.run_dir.name.startswith("offline-run-")

    back = read_run(run.run_dir)
    assert back.run_id == run.run_id
    assert (back.project, back.group, back.name, back.job_type) == (
        "xfer-test",
        "g1",
        "cell-7",
        "cell",
    )
    assert back.tags == ["t1"]
    assert back.config == config
    assert [row["train/loss"] for row in back.history] == losses
    assert [row["val_score"] for row in back.history] == [2 * x for x in losses]
    assert [row["_step"] for row in back.history] == [0, 1, 2, 3]
    assert back.summary["test_score"] == 0.42
    assert back.summary["verdict"] == "positive"
    assert back.summary["train/loss"] == losses[-1]
    assert back.finished and back.exit_code == 0
    # The .wandb file itself is accepted too.
    assert read_run(next(run.run_dir.glob("run-*.wandb"))).config == config


def test_runs_sharing_a_wandb_dir_start_and_finish_under_one_lock(tmp_path: Path) -> None:
    """wandb checks for and then removes <dir>/wandb/wandb-resume.json at init and at finish; two
    cells finishing at once in one study directory could both see it, and the second remove
    raised FileNotFoundError (seen once in 1,920 concurrent per-fit trials). xfer holds an flock
    on a file in that directory around both: a finish waits while another process holds it."""
    import fcntl
    import threading

    from xfer.tracking.wandb_log import LOCK_NAME

    run = CellRun(tmp_path / "s", project="xfer-test", entity=None, mode="offline", group="g",
                  name="cell-lock", config={"k": 1})
    run.__enter__()
    lock = tmp_path / "s" / "wandb" / LOCK_NAME
    assert lock.is_file()  # created by the init, which took it
    done = threading.Event()
    with open(lock, "a") as other:  # another process's hold: its own open file description
        fcntl.flock(other, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: (run.finish(summary={"x": 1}), done.set()))
        t.start()
        blocked = not done.wait(1.0)
        fcntl.flock(other, fcntl.LOCK_UN)
    t.join(timeout=60)
    assert blocked, "run.finish() did not wait for the lock"
    assert done.is_set() and run.finished
    assert read_run(run.run_dir).finished


def test_cell_run_that_raises_is_marked_failed(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="boom"),
        CellRun(
            tmp_path, project="p", entity=None, mode="offline", group="g", name="bad", config={}
        ) as run,
    ):
        run.log({"x": 1.0})
        raise ValueError("boom")
    back = read_run(run.run_dir)
    assert back.finished and back.exit_code == 1
    with pytest.raises(RuntimeError, match="already finished"):
        run.log({"x": 2.0})


def test_disabled_cell_run_is_a_no_op(tmp_path: Path) -> None:
    run = CellRun(
        tmp_path / "s",
        project="p",
        entity=None,
        mode="disabled",
        group="g",
        name="c",
        config={"a": 1},
    )
    run.log({"x": 1.0}, step=0)
    run.finish({"y": 2})
    assert not run.enabled and run.run_dir is None and run.run_id is None
    assert not (tmp_path / "s").exists()


def test_reader_reassembles_records_across_32k_blocks(tmp_path: Path) -> None:
    big = "x" * 100_000  # one record spanning FIRST / MIDDLE / LAST fragments
    with CellRun(
        tmp_path,
        project="p",
        entity=None,
        mode="offline",
        group="g",
        name="big",
        config={"blob": big},
    ) as run:
        for step in range(1500):
            run.log({"v": step}, step=step)
    log = next(run.run_dir.glob("run-*.wandb"))
    assert log.stat().st_size > 5 * BLOCK_SIZE
    back = read_run(run.run_dir)
    assert back.config == {"blob": big}
    assert [row["v"] for row in back.history] == list(range(1500))


def test_reader_rejects_files_that_are_not_wandb_logs(tmp_path: Path) -> None:
    text = tmp_path / "notes.wandb"
    text.write_text("hello, this is not a W&B log\n")
    with pytest.raises(XferInputError, match=r"notes\.wandb.*:W&B"):
        read_run(text)
    empty_dir = tmp_path / "offline-run-x"
    empty_dir.mkdir()
    with pytest.raises(XferInputError, match=r"no \.wandb file"):
        read_run(empty_dir)
    with pytest.raises(XferInputError, match="no such file"):
        read_run(tmp_path / "missing")
    # A valid header followed by a record whose checksum is wrong.
    payload = b"\x01\x02\x03"
    header = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
    crc = zlib.crc32(bytes((1,)) + payload) ^ 0xFFFF
    corrupt = tmp_path / "corrupt.wandb"
    corrupt.write_bytes(header + struct.pack("<IHB", crc, len(payload), 1) + payload)
    with pytest.raises(XferInputError, match="corrupt record"):
        read_run(corrupt)


def test_find_runs_lists_every_offline_run(tmp_path: Path) -> None:
    dirs = []
    for name in ("a", "b"):
        with CellRun(
            tmp_path / "study" / name,
            project="p",
            entity=None,
            mode="offline",
            group="g",
            name=name,
            config={},
        ) as run:
            run.log({"x": 1})
        dirs.append(run.run_dir)
    found = find_runs(tmp_path)
    assert sorted(found) == sorted(dirs)
    assert find_runs(tmp_path / "nothing-here") == []


# --------------------------------------------------------------------------- summary run


def test_log_study_summary_logs_tables_equal_to_the_parquet_files(
    study_dir: Path, tmp_path: Path
) -> None:
    run_dir = log_study_summary(
        study_dir, project="xfer-test", entity=None, mode="offline", group=STUDY
    )
    assert run_dir is not None and run_dir.parent == study_dir / "wandb"
    run = read_run(run_dir)
    assert (run.job_type, run.group, run.name) == ("summary", STUDY, f"{STUDY}-summary")
    assert run.config["study"] == STUDY and run.config["spec"]["name"] == STUDY

    verdicts = pd.read_parquet(study_dir / "verdicts.parquet")
    logged = read_table(run, "verdicts")
    assert len(logged) == len(verdicts) == 2 * 3 * 3 + 3 * 3
    assert list(logged.columns) == [*VERDICT_COLUMNS, "baseline_ewma_score", "baseline_har_rv_score"]
    assert "n_pairs" not in logged.columns
    for col in ("pair", "chain", "strategy", "verdict", "adjustment", "best_baseline", "beats_baseline"):
        assert logged[col].tolist() == verdicts[col].tolist()
    for col in ("fraction", "delta", "delta_ci_low", "p_adjusted", "detectable_effect", "n_days"):
        assert logged[col].tolist() == pytest.approx(verdicts[col].tolist(), nan_ok=True)

    sizing = pd.read_parquet(study_dir / "sizing.parquet")
    logged = read_table(run, "sizing")
    assert len(logged) == len(sizing) == 6
    cols = list(logged.columns)
    assert cols.index("rule_of_thumb") == cols.index("required_fraction") + 1
    for col in ("pair", "chain", "strategy", "rule_of_thumb"):
        assert logged[col].tolist() == sizing[col].tolist()
    assert logged["required_fraction"].tolist() == pytest.approx(
        sizing["required_fraction"].tolist(), nan_ok=True
    )

    matrix = read_table(run, "verdict_matrix")
    assert list(matrix.columns) == ["pair", "chain", "fraction", "head_only", "full"]
    assert len(matrix) == 3 * 3  # (pair, chain) combinations × fractions
    row = matrix[
        (matrix["pair"] == "us->jp") & (matrix["chain"] == "direct") & (matrix["fraction"] == 0.1)
    ].iloc[0]
    assert (row["head_only"], row["full"]) == ("positive (+0.050)", "negative (-0.040)")
    pair, chain, strategy, fraction = BELOW_BASELINE
    marked = matrix[(matrix["pair"] == pair) & (matrix["chain"] == chain) & (matrix["fraction"] == fraction)]
    assert marked[strategy].tolist() == ["positive (+0.030; below har_rv)"]
    cells = matrix[["head_only", "full"]].to_numpy().ravel().tolist()
    assert sum("below" in c for c in cells) == 1

    comparisons = read_table(run, "comparisons")
    assert comparisons["variant"].tolist() == ["uk"]
    assert list(comparisons.columns) == list(COMPARISON_COLUMNS)
    assert comparisons["p_adjusted"].tolist() == [0.6] and comparisons["n_days"].tolist() == [240]

    # predictions.parquet is summarised, never uploaded as a table
    assert "predictions" not in run.tables
    assert sorted(k for k in run.tables if not k.startswith("curve/")) == sorted(
        ["verdicts", "verdict_matrix", "sizing", "curves", "comparisons"]
    )
    assert run.summary["n_prediction_rows"] == N_PREDICTION_ROWS

    # One line-series chart per (pair, chain); its table has one line per strategy.
    assert sorted(run.charts) == [
        "curve/us+uk_to_de/direct",
        "curve/us_to_jp/direct",
        "curve/us_to_jp/uk",
    ]
    chart = read_table(run, "curve/us_to_jp/uk")
    assert list(chart.columns) == ["step", "lineKey", "lineVal"]
    # the pair's baselines (filed under the direct chain) are reference lines on every chart
    baselines = [f"{name} (baseline)" for name in VOL_BASELINES]
    assert sorted(set(chart["lineKey"])) == sorted([*STRATEGIES, *baselines])
    har = chart[chart["lineKey"] == "har_rv (baseline)"]
    assert har["step"].tolist() == list(FRACTIONS)
    assert har["lineVal"].tolist() == pytest.approx([0.15] * 3)
    head = chart[chart["lineKey"] == "head_only"]
    assert head["step"].tolist() == list(FRACTIONS)
    assert head["lineVal"].tolist() == pytest.approx(
        [0.2 + d + CHAIN_BUMP + 0.1 * f for d, f in zip(DELTA["head_only"], FRACTIONS, strict=True)]
    )

    judged = verdicts[verdicts["verdict"] != "baseline"]
    assert run.summary["n_cells"] == 9 * 3 and run.summary["n_fits"] == 9 * 3 * 4
    # Per (pair, chain): head_only P P I, full N I P.
    assert run.summary["n_positive"] == int((judged["verdict"] == "positive").sum()) == 9
    assert run.summary["n_negative"] == int((judged["verdict"] == "negative").sum()) == 3
    assert run.summary["n_inconclusive"] == 6
    assert run.summary["n_positive_below_baseline"] == 1
    assert run.summary["n_beats_baseline"] == len(judged) - 1
    assert run.summary["n_comparisons"] == len(judged) == 18
    assert run.summary["n_market_pairs"] == 2 and "n_pairs" not in run.summary
    assert run.summary["adjustment"] == "holm"
    # Table artifacts were staged under the test's WANDB_DATA_DIR, not the real home.
    assert any((tmp_path / "wandb-data").rglob("*"))


def test_log_study_summary_needs_a_study_dir(tmp_path: Path) -> None:
    with pytest.raises(XferInputError, match="a study directory"):
        log_study_summary(tmp_path / "missing", project="p", entity=None, mode="offline", group="g")
    assert not (tmp_path / "missing").exists()


def test_importing_xfer_tracking_is_cheap() -> None:
    code = "import sys, xfer.tracking; print(sorted({'wandb', 'pandas', 'wandb_workspaces'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_log_study_summary_disabled_writes_nothing(study_dir: Path) -> None:
    assert (
        log_study_summary(study_dir, project="p", entity=None, mode="disabled", group=STUDY) is None
    )
    assert not (study_dir / "wandb").exists()


# --------------------------------------------------------------------------- modes


def test_resolve_mode_never_goes_online_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_mode("disabled") == "disabled"
    assert resolve_mode("offline") == "offline"
    assert resolve_mode("online") == "offline"
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_mode(None) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode(None) == "disabled"
    with pytest.raises(XferInputError, match=r"wandb\.mode"):
        resolve_mode("sometimes")

    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_mode("online") == "online"
    assert resolve_mode("disabled") == "disabled"
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_mode("online") == "online"
    assert resolve_mode("offline") == "offline"


# --------------------------------------------------------------------------- report


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any W&B API use fail loudly, so building a report provably stays offline."""
    import wandb
    from wandb_workspaces.reports.v2 import interface

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the report tried to reach the W&B API")

    monkeypatch.setattr(interface, "_get_api", refuse)
    monkeypatch.setattr(interface, "execute_graphql", refuse)
    monkeypatch.setattr(wandb, "Api", refuse)


def _texts(blocks: list[object]) -> str:
    return "\n".join(str(getattr(b, "text", "")) for b in blocks)


QUIET_WORKSPACES = pytest.mark.filterwarnings("ignore::DeprecationWarning:wandb_workspaces.*")
"""wandb-workspaces still uses pydantic-v1 validators; their import warnings are not ours."""


@QUIET_WORKSPACES
def test_build_report_offline(study_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wandb_workspaces import expr
    from wandb_workspaces.reports.v2 import interface as wr

    for i in range(2):
        with CellRun(
            study_dir,
            project="xfer-test",
            entity=None,
            mode="offline",
            group=STUDY,
            name=f"cell-{i}",
            config={"strategy": "full"},
        ) as run:
            run.log({"val_score": 0.5})
    log_study_summary(study_dir, project="xfer-test", entity=None, mode="offline", group=STUDY)
    _no_network(monkeypatch)

    report = build_report(study_dir, project="xfer-test", entity="team")
    assert isinstance(report, wr.Report)
    assert report.title == f"xfer study: {STUDY}"
    assert (report.project, report.entity) == ("xfer-test", "team")
    assert "us->jp" in report.description
    assert "9 positive (1 of them below the best baseline)" in report.description
    assert "(adjusted by Holm over 18 comparisons)" in report.description

    text = _texts(report.blocks)
    assert "| pair | chain | target data | head_only | full |" in text
    assert "| us->jp | direct | 10% | positive (+0.050) | negative (-0.040) |" in text
    assert "| us,uk->de | direct | 100% | inconclusive (+0.000) | positive (+0.060) |" in text
    assert "| us->jp | direct | head_only | 50% [10%, 100%] | 10-20% | 75% |" in text
    assert (
        "| us->jp | uk | direct | full | 50% | +0.010 [-0.020, +0.040] | 0.600 | ±0.030 "
        "| inconclusive | 240 |" in text
    )
    assert "| test days |" in text and "| n |" not in text
    assert "| us,uk->de | direct | 50% | positive (+0.030; below har_rv) |" in text
    assert "p-value adjusted by Holm over 18 comparisons is below 5%" in text
    assert "No DANN variants in this study." in text
    assert text.count("/team/xfer-test/runs/") == 3  # two cells and the summary run

    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids) == 2
    for grid, job_type in zip(grids, ("summary", "cell"), strict=True):
        (runset,) = grid.runsets
        assert (runset.project, runset.entity) == ("xfer-test", "team")
        tree = expr.expr_to_filters(runset.filters)
        leaves = {(f.key.name, f.value) for f in tree.filters} if tree.filters else set()
        assert ("group", STUDY) in leaves and ("jobType", job_type) in leaves
    tables = {p.table_name for p in grids[0].panels if isinstance(p, wr.WeavePanelSummaryTable)}
    assert {"verdict_matrix", "sizing"} <= tables
    charts = [p for p in grids[0].panels if isinstance(p, wr.CustomChart)]
    assert {c.query["summaryTable"]["tableKey"] for c in charts} == {
        "curve/us_to_jp/direct_table",
        "curve/us_to_jp/uk_table",
        "curve/us+uk_to_de/direct_table",
    }
    assert "| us,uk->de | direct | full | not reached | 60-80% | 25% |" in text

    # What save() would upload: the spec serialises (the project-id lookup is faked).
    monkeypatch.setattr(wr, "_get_api", lambda: None)
    monkeypatch.setattr(
        wr, "execute_graphql", lambda *_: {"project": {"internalId": "UHJvamVjdDox"}}
    )
    spec = json.loads(report._to_model().spec.model_dump_json(by_alias=True, exclude_none=True))
    dumped = json.dumps(spec)
    assert "positive (+0.050)" in dumped and "wandb/lineseries/v0" in dumped
    assert '"value": "fake-study"' in dumped  # the runsets' group filter


@QUIET_WORKSPACES
def test_publish_report_needs_an_api_key(study_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    with pytest.raises(XferInputError, match="API key"):
        publish_report(study_dir, project="p", entity="team")


# --------------------------------------------------------------------------- contract changes


@pytest.mark.parametrize(
    ("verdict", "best", "beats", "marked"),
    [
        ("positive", "har_rv", False, True),
        ("positive", "har_rv", True, False),
        ("positive", "", False, False),  # no baseline fitted: no false alarm
        ("positive", None, False, False),
        ("positive", "ridge", None, False),  # unknown is not "below"
        ("inconclusive", "zero", False, False),
        ("negative", "ewma", False, False),
    ],
)
def test_below_baseline_rule(verdict: str, best: str | None, beats: bool | None, marked: bool) -> None:
    import numpy as np

    from xfer.tracking.wandb_log import below_baseline

    assert below_baseline(verdict, best, beats) is marked
    if beats is not None:
        assert below_baseline(verdict, best, np.bool_(beats)) is marked


def test_old_study_dir_names_the_missing_columns(study_dir: Path) -> None:
    from xfer.evaluate.tables import StaleTableError

    verdicts = pd.read_parquet(study_dir / "verdicts.parquet")
    verdicts.assign(metric="r2", n_pairs=6)[list(OLD_VERDICT_COLUMNS)].to_parquet(
        study_dir / "verdicts.parquet"
    )
    with pytest.raises(StaleTableError) as info:
        log_study_summary(study_dir, project="p", entity=None, mode="offline", group=STUDY)
    message = str(info.value)
    assert str(study_dir / "verdicts.parquet") in message
    for column in ("p_adjusted", "detectable_effect", "n_days", "beats_baseline"):
        assert column in message
    assert not (study_dir / "wandb").exists()  # refused before any run was started
