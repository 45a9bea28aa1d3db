"""Bad-input rows, second round (issue 24): the limits of a study file and of a study.

A study file is capped before anything in it is expanded (its size, its nesting depth, its
size with aliases expanded), repeated keys and repeated list entries are refused, values are
strict (``true`` is not a number, ``.inf`` not a value), and a study's cells and fits are
counted from the spec, before any cell is built, against caps that ``--max-cells`` /
``--max-fits`` raise. Each row says what used to go wrong, if anything.
"""

from __future__ import annotations

from pathlib import Path

from tests.bad_inputs import Case
from tests.bad_inputs.spec import SMALL, _yaml


def _row(id: str, text: str, *phrases: str, extra: tuple[str, ...] = ()) -> Case:
    """`study validate` of ``text``: exit 2 naming the file and the phrases."""
    return Case(f"limits-{id}", ("study", "validate", "--no-estimate", *extra, "{tmp}/s.yaml"), ("s.yaml", *phrases),
                setup=_yaml(text))


def _bytes(data: bytes):
    def setup(tmp: Path) -> None:
        (tmp / "s.yaml").write_bytes(data)
    return setup


def _grid(line: str) -> str:
    """SMALL with one more line under ``grid:``."""
    return SMALL.replace("  seeds: 1\n", f"  seeds: 1\n  {line}\n")


# the billion laughs: 9 levels of 9 aliases each, 387 million values once expanded
BOMB = SMALL + "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))

# 1 pair, 169 chains, 6 transfer strategies (+ scratch), 2 DANN settings, 667 fractions:
# 667 + 170 x 2 x 6 x 667 = 1,361,347 cells
HUGE = SMALL.replace("    target: wti\n", "    target: wti\n    chains:\n" + "".join(
    f"      - [aapl, m{k}, wti]\n" for k in range(169))).replace(
    "  strategies: [head_only]\n  fractions: [1.0]\n",
    "  strategies: [scratch, head_only, partial, full, gradual, discriminative, l2sp]\n"
    f"  fractions: [{', '.join(f'{i / 667:.6g}' for i in range(1, 668))}]\n  dann: [false, true]\n")

# 1,300 cells x 1,000 trials x 64 seeds x 20 folds = 1,664,000,000 target fits
MANY_FITS = SMALL.replace(
    "  strategies: [head_only]\n  fractions: [1.0]\n  seeds: 1\n",
    "  strategies: [head_only, partial, full, gradual, discriminative, l2sp]\n"
    f"  fractions: [{', '.join(f'{i / 100:g}' for i in range(1, 101))}]\n  dann: [false, true]\n  seeds: 64\n"
) + "search: {trials_per_cell: 1000}\nevaluation: {folds: 20}\n"


def _huge_study(tmp: Path) -> None:
    """A study directory whose spec.json holds the 1.36M-cell grid (as if run with --max-cells)."""
    import yaml

    from xfer.study.spec import StudySpec

    (tmp / "study").mkdir()
    spec = StudySpec.model_validate(yaml.safe_load(HUGE))
    (tmp / "study" / "spec.json").write_text(spec.model_dump_json())


CASES: list[Case] = [
    # ---- the YAML itself, capped before anything is expanded
    # hung `study validate` (the tag check walked the 387-million-value expansion)
    _row("alias-bomb", BOMB, "at most 100,000 values with aliases expanded", "line 15", "the alias *e"),
    # a RecursionError traceback from the YAML composer
    _row("nested-5000-deep", "name: deep\npairs: " + "[" * 5000 + "]" * 5000 + "\n",
         "line 2, column 71", "at most 64 levels of nesting"),
    # a 10 MB file was read and parsed whole (minutes of pure-Python YAML) before any check
    _row("file-of-10mb", SMALL + "description: '" + "x" * 10_000_000 + "'\n",
         "(file)", "at most 1,048,576 bytes", "10,000,"),
    # hung: an alias inside its own anchor made a cycle the tag check walked forever
    _row("recursive-alias", SMALL + "task: &t {horizon: *t}\n", "line 10", "no alias to a value that contains it",
         "*t inside &t"),
    # the last `name:` won silently
    _row("duplicate-key", SMALL + "name: other\n", "line 10, column 1", "each key once",
         "the key 'name' twice (lines 2 and 10"),
    _row("duplicate-nested-key", SMALL.replace("  seeds: 1\n", "  seeds: 1\n  seeds: 3\n"), "line 10, column 3",
         "the key 'seeds' twice (lines 9 and 10"),
    # right already: a tag is refused at its line (guard)
    _row("binary-tag", SMALL.replace("target: wti", "target: !!binary d3Rp"), "line 5", "no tags", "'!!binary'"),
    # right already: a merge key of a scalar is not valid YAML (guard: no ConstructorError traceback)
    _row("merge-of-a-scalar", SMALL + "task: {<<: 3}\n", "line 10", "valid YAML", "mappings for merging"),
    # right already (guard): tabs cannot indent YAML
    _row("tab-indented", "name: x\npairs:\n\t- source: aapl\n", "line 3, column 1", "valid YAML", "'\\t'"),
    # right already (guard): two documents in one file
    _row("two-documents", SMALL + "---\nname: b\n", "valid YAML", "another document"),
    # said "found NoneType"
    _row("empty-file", "", "a mapping of study fields", "an empty file"),
    _row("only-a-scalar", "just a string\n", "a mapping of study fields", "a str ('just a string')"),
    # a raw NUL byte: now named with its offset
    Case("limits-nul-byte", ("study", "validate", "--no-estimate", "{tmp}/s.yaml"),
         ("s.yaml", "YAML text", "a NUL byte at offset 7"), setup=_bytes(b"name: x\x00\npairs: []\n")),
    # a key with control characters was echoed raw to the terminal
    _row("escape-in-key", SMALL + '"\\e[2J\\0": x\n', "'\\x1b[2j\\x00'", "no such field"),
    # a BOM is fine, and the lines it counts are the file's (guard)
    Case("limits-bom-then-duplicate-key", ("study", "validate", "--no-estimate", "{tmp}/s.yaml"),
         ("s.yaml", "the key 'name' twice (lines 2 and 10"), setup=_bytes(b"\xef\xbb\xbf" + (SMALL + "name: b\n").encode())),
    # ---- strict values
    # `seeds: true` ran 1 seed, `"3"` ran 3, `trials_per_cell: true` 1 trial, `fractions: [true]` the whole target
    _row("seeds-true", SMALL.replace("seeds: 1", "seeds: true"), "grid.seeds", "an integer (not true/false", "True"),
    _row("seeds-string", SMALL.replace("seeds: 1", 'seeds: "3"'), "grid.seeds", "an integer", "'3'"),
    _row("seeds-decimal", SMALL.replace("seeds: 1", "seeds: 2.5"), "grid.seeds", "an integer", "2.5"),
    _row("trials-true", SMALL + "search: {trials_per_cell: true}\n", "search.trials_per_cell", "an integer", "True"),
    _row("fraction-true", SMALL.replace("[1.0]", "[true]"), "grid.fractions[0]", "a number (not true/false", "True"),
    _row("domain-probe-one", SMALL + "evaluation: {domain_probe: 1}\n", "evaluation.domain_probe", "true or false"),
    # `lr: .inf` validated (and trained on inf); `.nan` in a search range passed `low < high`
    _row("lr-inf", SMALL + "source: {lr: .inf}\n", "source.lr", "a finite number", "inf"),
    _row("lr-nan", SMALL + "source: {lr: .nan}\n", "source.lr", "a finite number", "nan"),
    _row("search-low-nan", SMALL + "search:\n  space:\n    lr_ratio: {low: .nan, high: 0.3}\n",
         "search.space.lr_ratio.low", "a finite number", "nan"),
    _row("dropout-nan", _grid("backbone: {dropout: .nan}"), "grid.backbone.dropout", "a finite number"),
    _row("horizon-inf", SMALL + "task: {horizon: .inf}\n", "task.horizon", "a finite number"),
    # right already (guards): zero, negative and huge values
    _row("lr-zero", SMALL + "source: {lr: 0}\n", "source.lr", "greater than 0", "0"),
    _row("lr-negative", SMALL + "source: {lr: -1}\n", "source.lr", "greater than 0", "-1"),
    _row("folds-zero", SMALL + "evaluation: {folds: 0}\n", "evaluation.folds", "greater than or equal to 1"),
    _row("trials-zero", SMALL + "search: {trials_per_cell: 0}\n", "search.trials_per_cell", "greater than or equal to 1"),
    _row("hidden-a-billion", _grid("backbone: {hidden: 1000000000}"), "grid.backbone.hidden", "less than or equal to 4096"),
    _row("fractions-empty", SMALL.replace("[1.0]", "[]"), "grid.fractions", "at least one fraction"),
    # ---- repeated entries: extra cells, or the same cell ids twice
    # counted as 3 cells, the head_only one run twice
    _row("duplicate-strategy", SMALL.replace("[head_only]", "[head_only, head_only]"), "grid.strategies",
         "each value once", "'head_only' twice"),
    # dropped silently: [0.1, 0.1] is a typo for another fraction
    _row("duplicate-fraction", SMALL.replace("[1.0]", "[0.1, 0.1]"), "grid.fractions", "each value once", "0.1 twice"),
    _row("duplicate-dann", _grid("dann: [true, true]"), "grid.dann", "each value once", "True twice"),
    # ran no transfer cell at all
    _row("dann-empty", _grid("dann: []"), "grid.dann", "at least one of false, true"),
    # two pairs with the same cells: the same cell ids, results written over each other
    _row("duplicate-pair", SMALL.replace("pairs:\n", "pairs:\n  - {source: aapl, target: wti}\n"), "pairs",
         "each source/target pair once", "pairs[1] (aapl->wti) again after pairs[0]"),
    _row("duplicate-source", SMALL.replace("source: aapl", "source: [aapl, aapl]"), "pairs[0]",
         "source must list each value once"),
    _row("duplicate-chain", SMALL.replace("    target: wti\n", "    target: wti\n    chains: [[aapl, sp500, wti], "
                                          "[aapl, sp500, wti]]\n"), "pairs[0]", "chains must list each value once"),
    # a chain that loops back through a market it passed
    _row("chain-loops", SMALL.replace("    target: wti\n", "    target: wti\n    chains: [[aapl, sp500, aapl, wti]]\n"),
         "pairs[0]", "each market once (no loop)", "'aapl' twice"),
    # a grid search asked the same config twice
    _row("duplicate-choice", SMALL + "search: {sampler: grid, trials_per_cell: 2, space: {lr_ratio: {choices: "
         "[0.1, 0.1]}}}\n", "search.space.lr_ratio", "choices must list each value once"),
    # ---- names and keys
    # echoed all 10,000 characters back
    _row("name-10000-chars", SMALL.replace("name: small", "name: " + "a" * 10_000), "name", "(10,000 characters)"),
    _row("name-with-path", SMALL.replace("name: small", "name: ../../etc"), "name", "'../../etc'"),
    # no hint for a misspelt section
    _row("typo-did-you-mean", SMALL + "serach: {trials_per_cell: 2}\n", "serach", "did you mean 'search'?"),
    _row("nested-typo-did-you-mean", _grid("backbone: {hiden: 16}"), "grid.backbone.hiden", "did you mean 'hidden'?"),
    # a traceback (rich read the name as a closing markup tag) instead of the error
    Case("limits-run-name-is-markup", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/study"),
         ("name", "'[/]'"), setup=_yaml(SMALL.replace("name: small", 'name: "[/]"'))),
    # ---- the size of a study, from the spec's counts, before any cell is built
    # 57 s and 3.7 GB to say "ok ... ~95 min"
    _row("grid-of-1.36m-cells", HUGE, "grid", "at most 10,000 cells", "--max-cells", "1,361,347 cells"),
    Case("limits-run-grid-of-1.36m-cells", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/study"),
         ("at most 10,000 cells", "--max-cells", "1,361,347 cells"), setup=_yaml(HUGE)),
    Case("limits-resume-grid-of-1.36m-cells", ("study", "resume", "{tmp}/study"),
         ("spec.json", "at most 10,000 cells", "--max-cells", "1,361,347 cells"), setup=_huge_study),
    _row("fits-over-the-cap", MANY_FITS, "at most 100,000,000 target fits", "--max-fits", "1,664,000,000 fits"),
    _row("max-cells-flag", SMALL, "at most 1 cells", "found 2 cells", extra=("--max-cells", "1")),
    Case("limits-run-max-fits-flag", ("study", "run", "{tmp}/s.yaml", "--out", "{tmp}/study", "--max-fits", "10"),
         ("at most 10 target fits", "24 fits"), setup=_yaml(SMALL)),
]
