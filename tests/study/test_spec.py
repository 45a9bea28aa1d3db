"""`xfer study validate`: every shipped study is valid; broken specs give clear, distinct errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from xfer.study.spec import MAX_CELLS, StudySpec, cells, count_cells, load

STUDIES = [*sorted((Path(__file__).parents[2] / "studies").glob("*.yaml")),
           *sorted((Path(__file__).parents[2] / "studies" / "findings").glob("*.yaml"))]

GOOD = """
name: ok
pairs:
  - source: "@us_large_cap"
    target: wti
    chains:
      - ["@us_large_cap", sp500, "@energy", wti]
grid:
  strategies: [head_only, full]
  fractions: [0.1, 1.0]
  seeds: 2
"""

# (case, yaml, field path that must be named, words of the expectation, the offending value)
BROKEN = [
    ("unknown market", GOOD.replace("target: wti\n", "target: brent\n").replace(", wti]", ", brent]"),
     "pairs[0].target", "a market in the catalog", "'brent'"),
    ("unknown group", GOOD.replace('"@energy"', '"@oil"'), "pairs[0].chains[0]", "a market group", "'@oil'"),
    ("fraction out of range", GOOD.replace("[0.1, 1.0]", "[0.1, 1.5]"), "grid.fractions", "(0, 1]", "1.5"),
    ("chain not ending at target", GOOD.replace('"@energy", wti]', '"@energy", xom]'),
     "pairs[0]", "must end at the pair's target", "'xom'"),
    ("unknown strategy", GOOD.replace("[head_only, full]", "[head_only, freeze_most]"),
     "grid.strategies", "discriminative", "freeze_most"),
    ("unknown backbone", GOOD + "  backbone: {name: lstm}\n", "grid.backbone", "['mlp', 'tcn']", "lstm"),
    ("empty grid", GOOD.replace("[head_only, full]", "[]"), "grid.strategies", "at least one strategy", "[]"),
    ("no pairs", "name: ok\npairs: []\n", "pairs", "at least one source/target pair", "[]"),
    ("misspelt field", GOOD.replace("seeds: 2", "seed: 2"), "grid.seed", "no such field", "2"),
    ("bad search range", GOOD + "search:\n  space:\n    lr_ratio: {low: 0.5, high: 0.1}\n",
     "search.space.lr_ratio", "'low' must be < 'high'", "0.5"),
    ("unknown search knob", GOOD + "search:\n  space:\n    dropout: {low: 0.0, high: 0.5}\n",
     "search.space", "grid.backbone.dropout", "dropout"),
    ("bad target type", GOOD + "task:\n  target_type: sharpe\n", "task.target_type", "'volatility'", "sharpe"),
    ("target is its own source", GOOD.replace('source: "@us_large_cap"', "source: [aapl, wti]")
     .replace('["@us_large_cap", sp500', "[aapl, sp500"), "pairs[0].target", "a target that is not one of its sources",
     "'wti'"),
    ("negative gpus", GOOD + "resources:\n  gpus_per_trial: -1\n", "resources.gpus_per_trial",
     "greater than or equal to 0", "-1"),
    ("bad tracking mode", GOOD + "tracking:\n  mode: cloud\n", "tracking.mode", "'offline'", "cloud"),
    ("yaml syntax", "name: ok\npairs: [\n", "line", "valid YAML", ""),
    ("missing name", GOOD.replace("name: ok\n", ""), "name", "required field", "nothing"),
    ("grid over a range", GOOD + "search:\n  sampler: grid\n  space:\n    lr_ratio: {low: 0.01, high: 1.0}\n",
     "search", "needs 'choices' for every knob", "['lr_ratio']"),
    ("grid smaller than the budget", GOOD + "search:\n  sampler: grid\n  trials_per_cell: 3\n  space:\n"
     "    lr_ratio: {choices: [0.1, 1.0]}\n", "(top level)", "must not exceed the grid's size", "Got 3"),
    ("no rows left to train", GOOD + "evaluation:\n  test_share: 0.6\n  val_share: 0.4\n", "evaluation",
     "at least 10% of the rows for training", "0.6 + 0.4"),
]


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_studies_are_valid(path: Path, cli) -> None:
    r = cli("study", "validate", str(path))
    assert r.code == 0, r.err
    spec = load(path)
    assert spec.name == path.stem and len(cells(spec)) > 0
    assert count_cells(spec) == len(cells(spec))  # the cap's arithmetic counts what is built


def test_good_spec_and_cells(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(GOOD)
    spec = load(f)
    cs = cells(spec)
    # scratch once per fraction; head_only/full x (direct + 1 chain) x 2 fractions
    assert len(cs) == 2 + 2 * 2 * 2
    assert {c.chain_id for c in cs} == {"direct", "sp500>@energy"}
    assert len({c.cell_id for c in cs}) == len(cs)


def test_broken_specs_give_distinct_clear_errors(tmp_path: Path, cli) -> None:
    assert len(BROKEN) >= 12
    messages = []
    for i, (case, text, field, expected, found) in enumerate(BROKEN):
        f = tmp_path / f"broken_{i}.yaml"
        f.write_text(text)
        r = cli("study", "validate", str(f))
        assert r.code == 2, case
        assert str(f) in r.err, (case, r.err)
        assert field in r.err, (case, field, r.err)
        assert expected in r.err, (case, expected, r.err)
        assert found in r.err, (case, found, r.err)
        messages.append(r.err.replace(str(f), "FILE"))
    assert len(set(messages)) == len(BROKEN)


def test_all_problems_reported_together(tmp_path: Path, cli) -> None:
    f = tmp_path / "many.yaml"
    f.write_text(GOOD.replace("[0.1, 1.0]", "[0.1, 2.0]").replace("seeds: 2", "seeds: 0"))
    r = cli("study", "validate", str(f))
    assert r.code == 2 and "2 problem(s)" in r.err
    assert "grid.fractions" in r.err and "grid.seeds" in r.err


def test_missing_file(tmp_path: Path, cli) -> None:
    r = cli("study", "validate", str(tmp_path / "nope.yaml"))
    assert r.code == 2 and "no such file" in r.err


def test_validate_says_how_big_a_study_is(tmp_path: Path, cli) -> None:
    """cells x trials x seeds x folds, by hand: 1 pair, scratch + 2 strategies x (direct + 1 chain),
    2 fractions -> 2 + 2 x 2 x 2 = 10 cells; 5 trials, 2 seeds, 3 folds -> 300 target fits;
    pre-training: the source once (cached, shared by the chain) + 2 intermediates -> 3 stages x 2 seeds = 6."""
    f = tmp_path / "ok.yaml"
    f.write_text(GOOD + "search:\n  trials_per_cell: 5\n  batch_size: 2\n")
    r = cli("study", "validate", "--no-estimate", str(f))
    assert r.code == 0, r.err
    assert "10 cells x 5 trial(s) x 2 seed(s) x 3 fold(s) = 300 target fits, plus 6 source/chain" in " ".join(r.out.split())
    big = tmp_path / "big.yaml"
    big.write_text(GOOD.replace("seeds: 2", "seeds: 50").replace("[0.1, 1.0]", "[" + ", ".join(
        f"{(i + 1) / 100:g}" for i in range(100)) + "]") + "search:\n  trials_per_cell: 500\n  batch_size: 50\n")
    r = cli("study", "validate", str(big))
    text = " ".join(r.out.split())
    assert r.code == 0 and "500 cells x 500 trial(s) x 50 seed(s) x 3 fold(s) = 37,500,000 target fits" in text, text
    assert "training time on this machine: at most" in text and "a large study" in text, text


def test_grid_search_asks_every_point_once(tmp_path: Path) -> None:
    """A grid cell's trials are its grid's points, each exactly once, in a seeded order."""
    from xfer.study.cell import candidate, open_search, suggest

    spec = load_text(tmp_path, GOOD + "search:\n  sampler: grid\n  trials_per_cell: 4\n  batch_size: 4\n  space:\n"
                     "    lr_ratio: {choices: [0.01, 0.1, 0.3, 1.0]}\n    scratch_lr: {choices: [1.0e-4, 1.0e-3, 3.0e-3, 1.0e-2]}\n")
    for cell in cells(spec)[:3]:
        study = open_search(spec, tmp_path / cell.cell_id, cell)
        trials = [study.ask() for _ in range(spec.search.trials_per_cell)]
        lrs = sorted(candidate(spec, cell, suggest(spec, cell, t)).lr for t in trials)
        for i, t in enumerate(trials):
            study.tell(t, float(i))  # as a cell does: ask and tell outside optimize()
        expected = ([1e-4, 1e-3, 3e-3, 1e-2] if cell.strategy == "scratch"
                    else [spec.source.lr * r for r in (0.01, 0.1, 0.3, 1.0)])
        assert lrs == pytest.approx(expected, rel=1e-12), cell.cell_id


def load_text(tmp_path: Path, text: str) -> StudySpec:
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    return load(f)


def test_the_caps_count_without_building_and_the_flags_raise_them(tmp_path: Path, cli) -> None:
    """GOOD has 10 cells and 10 x 4 trials x 2 seeds x 3 folds = 240 target fits: a cap below either
    is refused naming the count and the flag; a cap at it passes. The default admits every shipped study."""
    f = tmp_path / "ok.yaml"
    f.write_text(GOOD)
    assert count_cells(load(f)) == len(cells(load(f))) == 10
    r = cli("study", "validate", "--no-estimate", "--max-cells", "9", str(f))
    assert r.code == 2 and "at most 9 cells (raise the cap with --max-cells N); found 10 cells" in r.err, r.err
    r = cli("study", "validate", "--no-estimate", "--max-fits", "239", str(f))
    assert r.code == 2 and "at most 239 target fits (raise the cap with --max-fits N); found 240 fits" in r.err, r.err
    r = cli("study", "validate", "--no-estimate", "--max-cells", "10", "--max-fits", "240", str(f))
    assert r.code == 0 and "10 cells" in r.out, r.err
    assert max(count_cells(load(p)) for p in STUDIES) < MAX_CELLS
    chains = GOOD.replace('      - ["@us_large_cap", sp500, "@energy", wti]\n',
                          '      - ["@us_large_cap", sp500, "@energy", wti]\n      - ["@us_large_cap", xom, wti]\n')
    f.write_text(chains.replace("seeds: 2", "seeds: 2\n  dann: [false, true]"))
    assert count_cells(load(f)) == len(cells(load(f))) == 2 + 3 * 2 * 2 * 2


def test_anchors_merge_keys_and_a_bom_still_load(tmp_path: Path) -> None:
    """The limits refuse abuse, not ordinary YAML: anchors, aliases and merge keys below the caps."""
    f = tmp_path / "anchors.yaml"
    f.write_bytes(b"\xef\xbb\xbf" + (GOOD + "train: &t {steps_per_epoch: 5, max_epochs: 3}\n"
                                         "source:\n  train: {<<: *t, patience: 2}\n").encode())
    spec = load(f)
    assert spec.train.steps_per_epoch == spec.source.train.steps_per_epoch == 5 and spec.source.train.patience == 2
