"""Bad-input rows: study specs (validate, run, resume, report) and `xfer transfer` options.

Every row is refused before any compute: the markets, groups, target, chains, backbone,
target length, output path and Ray address are checked up front, so a mistake never
surfaces as a traceback after minutes of training or leaves a half-made study directory.
"""

from __future__ import annotations

from pathlib import Path

from tests.bad_inputs import Case
from tests.study.test_spec import BROKEN, GOOD

SMALL = """
name: small
pairs:
  - source: aapl
    target: wti
grid:
  strategies: [head_only]
  fractions: [1.0]
  seeds: 1
"""


def _yaml(text: str, name: str = "s.yaml"):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text(text)
    return setup


def _spec_row(id: str, text: str, *phrases: str) -> Case:
    return Case(f"spec-{id}", ("study", "validate", "--no-estimate", "{tmp}/s.yaml"), ("s.yaml", *phrases),
                setup=_yaml(text))


def _run_row(id: str, text: str, *phrases: str, extra: tuple[str, ...] = ()) -> Case:
    """`study run` refuses before anything is written (the --out directory is not created)."""
    return Case(f"run-{id}", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/study", *extra), phrases,
                setup=_yaml(text))


def _other_study(tmp: Path) -> None:
    (tmp / "s.yaml").write_text(SMALL)
    (tmp / "study").mkdir()
    from xfer.study.spec import StudySpec

    other = StudySpec.model_validate({"name": "other", "pairs": [{"source": "aapl", "target": "vix"}]})
    (tmp / "study" / "spec.json").write_text(other.model_dump_json())


def _corrupt_spec_json(tmp: Path) -> None:
    (tmp / "study").mkdir()
    (tmp / "study" / "spec.json").write_text('{"name": "x", "pairs": [')


def _file(name: str, text: str = "x"):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text(text)
    return setup


def _transfer(id: str, *args: str, phrases: tuple[str, ...], setup=None) -> Case:
    return Case(f"transfer-{id}", ("transfer", "--seeds", "1", *args), phrases, setup=setup)


def _monthly_market(tmp: Path) -> None:
    """A market imported with --allow-frequency: monthly bars, kept in the catalog as such."""
    import numpy as np
    import pandas as pd

    from xfer.data.store import Store, info_for_frame

    dates = pd.date_range("1980-01-31", periods=500, freq="ME")
    frame = pd.DataFrame({"date": dates, "close": 50 * np.exp(np.linspace(0, 1, 500))})
    info = info_for_frame(frame, id="monthly", name="monthly", asset_class="commodity", frequency="monthly")
    Store(tmp / "xfer_home").add(frame, info)


ENERGY_TARGET = SMALL.replace("source: aapl", 'source: "@energy"').replace("target: wti", "target: xom")

CASES: list[Case] = [
    # the study-spec table of tests/study/test_spec.py, one row each
    *[_spec_row(case.replace(" ", "-"), text, field, expected) for case, text, field, expected, _ in BROKEN],
    # a target inside a source group validated, then 27 tracebacks after 80 s
    _spec_row("target-in-source-group", ENERGY_TARGET, "pairs[0].target", "a member of the source group @energy"),
    _run_row("target-in-source-group", ENERGY_TARGET, "a member of the source group @energy"),
    _spec_row("chain-through-target", GOOD.replace('"@energy", wti]', "wti, wti]"), "pairs[0].chains[0][2]",
              "an intermediate market other than the target"),
    _spec_row("chain-through-target-group", GOOD.replace("target: wti", "target: xom")
              .replace('"@energy", wti]', '"@energy", xom]'), "pairs[0].chains[0][2]",
              "a group that holds the target 'xom'"),
    _spec_row("group-as-target", SMALL.replace("target: wti", 'target: "@energy"'), "pairs[0].target",
              "one market id, not a group"),
    _spec_row("target-too-short-for-horizon", SMALL.replace("target: wti", "target: vix") +
              "task:\n  horizon: 250\n", "task.horizon", "bars for a 250-day label horizon", "'vix' with"),
    _spec_row("python-object-tag", SMALL.replace("seeds: 1", "seeds: !!python/object/apply:os.system [echo]"),
              "line 9, column 10", "no tags", "!!python/object/apply:os.system"),
    _spec_row("custom-tag", SMALL.replace("target: wti", "target: !secret wti"), "line 5", "no tags", "'!secret'"),
    _spec_row("not-a-mapping", "- a\n- b\n", "a mapping of study fields", "list"),
    Case("spec-not-utf8", ("study", "validate", "{tmp}/s.yaml"), ("s.yaml", "UTF-8 text"),
         setup=lambda tmp: (tmp / "s.yaml").write_bytes(b"name: caf\xe9\npairs: []\n")),
    Case("spec-missing-file", ("study", "validate", "{tmp}/none.yaml"), ("none.yaml", "no such file")),
    # study run: output path and Ray address, before anything is written
    Case("run-out-is-a-file", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/s.yaml"),
         ("--out", "an existing file"), setup=_yaml(SMALL)),
    Case("run-out-unwritable", ("study", "run", "{tmp}/s.yaml", "--out", "/proc/xfer-study"),
         ("--out", "a writable location"), setup=_yaml(SMALL)),
    Case("run-out-under-a-file", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/s.yaml/study"),
         ("--out", "is a file"), setup=_yaml(SMALL)),
    Case("run-out-holds-another-study", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/study"),
         ("--out", "holding study 'other'", "xfer study resume"), setup=_other_study),
    _run_row("ray-client-head-not-running", SMALL, "--address", "a running Ray head", "ray://127.0.0.1:1",
             extra=("--address", "ray://127.0.0.1:1")),
    _run_row("ray-head-not-running", SMALL, "--address", "a running Ray head", "127.0.0.1:1",
             extra=("--address", "127.0.0.1:1")),
    _run_row("jobs-api-address", SMALL, "--address", "scheme 'http://'", extra=("--address", "http://127.0.0.1:8265")),
    _run_row("address-without-port", SMALL, "--address", "HOST:PORT", extra=("--address", "headnode")),
    Case("resume-not-a-study", ("study", "resume", "{tmp}"), ("STUDY_DIR", "no spec.json")),
    Case("resume-corrupt-spec", ("study", "resume", "{tmp}/study"), ("spec.json",), setup=_corrupt_spec_json),
    Case("report-not-a-study", ("report", "{tmp}"), ("STUDY_DIR", "no results.parquet")),
    # xfer transfer: tracebacks before, and --target @energy silently took the first member
    _transfer("target-is-source", "--source", "wti", "--target", "wti",
              phrases=("--target", "a target that is not one of its sources", "'wti'")),
    _transfer("target-in-source-group", "--source", "@energy", "--target", "xom",
              phrases=("--target", "a member of the source group @energy")),
    _transfer("chain-through-target", "--source", "aapl", "--target", "wti", "--chain", "wti",
              phrases=("--chain", "an intermediate market other than the target")),
    _transfer("unknown-backbone", "--source", "aapl", "--target", "wti", "--backbone", "lstm",
              phrases=("--backbone", "['mlp', 'tcn']", "'lstm'")),
    _transfer("group-as-target", "--source", "aapl", "--target", "@energy",
              phrases=("--target", "one market id, not a group")),
    _transfer("unknown-source", "--source", "brent", "--target", "wti",
              phrases=("--source", "a market in the catalog", "'brent'")),
    _transfer("unknown-group", "--source", "@oil", "--target", "wti", phrases=("--source", "a market group", "'@oil'")),
    # a source that starts after the target's first test block: it used to fail inside Ray, minutes in
    _transfer("source-starts-after-cutoff", "--source", "efa", "--target", "wti",
              phrases=("--source", "model-ready rows before the target's first test period (2006-01-24", "'efa' with 0")),
    _transfer("horizon-too-long", "--source", "aapl", "--target", "vix", "--horizon", "100000",
              phrases=("--horizon", "100000-day label horizon")),
    _transfer("out-is-a-file", "--source", "aapl", "--target", "wti", "--out", "{tmp}/f.txt",
              phrases=("--out", "an existing file"), setup=_file("f.txt")),
    _transfer("bad-fraction", "--source", "aapl", "--target", "wti", "--fraction", "1.5",
              phrases=("fractions must be in (0, 1]",)),
    _transfer("unknown-strategy", "--source", "aapl", "--target", "wti", "--strategy", "freeze_most",
              phrases=("strategies must be among",)),
    _transfer("unknown-knob", "--source", "aapl", "--target", "wti", "--knob", "depth=2",
              phrases=("--knob", "NAME=VALUE with NAME among")),
    _transfer("knob-wrong-type", "--source", "aapl", "--target", "wti", "--knob", "unfreeze_depth=two",
              phrases=("--knob unfreeze_depth", "a int")),
    _transfer("bad-target-type", "--source", "aapl", "--target", "wti", "--target-type", "price",
              phrases=("--target-type", "volatility or return")),
    _transfer("monthly-target", "--source", "aapl", "--target", "monthly",
              phrases=("--target", "markets of daily bars", "'monthly', monthly bars"), setup=_monthly_market),
    Case("spec-monthly-source", ("study", "validate", "--no-estimate", "{tmp}/s.yaml"),
         ("s.yaml", "pairs[0].source", "markets of daily bars"),
         setup=lambda tmp: (_monthly_market(tmp), _yaml(SMALL.replace("source: aapl", "source: monthly"))(tmp))),
    _transfer("zero-seeds", "--source", "aapl", "--target", "wti", "--seeds", "0",
              phrases=("seeds", "greater than or equal to 1")),
]
