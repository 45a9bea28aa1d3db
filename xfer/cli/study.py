"""``xfer study``: validate, submit, run, resume and follow studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xfer.cli._common import StoreOpt, _frac, _store, _study_path, err, out
from xfer.errors import XferInputError

app = typer.Typer(help="Studies: YAML grids of transfer experiments on Ray Tune.", no_args_is_help=True)

MaxCellsOpt = Annotated[int | None, typer.Option(
    "--max-cells", min=1, help="Refuse a study of more cells than this (default 10,000), counted from the spec "
    "before any cell is built.")]
MaxFitsOpt = Annotated[int | None, typer.Option(
    "--max-fits", min=1, help="Refuse a study of more target fits (cells x trials x seeds x folds) than this "
    "(default 100,000,000).")]


def _caps(max_cells: int | None, max_fits: int | None) -> dict[str, int]:
    from xfer.study.spec import MAX_CELLS, MAX_FITS

    return {"max_cells": MAX_CELLS if max_cells is None else max_cells,
            "max_fits": MAX_FITS if max_fits is None else max_fits}


@app.command("validate")
def study_validate(
    files: Annotated[list[Path], typer.Argument(help="Study YAML file(s).")],
    estimate: Annotated[bool, typer.Option(help="Estimate the training time with a short timing probe.")] = True,
    store: StoreOpt = None,
    max_cells: MaxCellsOpt = None,
    max_fits: MaxFitsOpt = None,
) -> None:
    """Check study files (every problem with file, field path, expected and found) and say how big each is."""
    from xfer.study.spec import StudyError, load, size

    bad = 0
    for f in files:
        try:
            spec = load(f, _store(store), **_caps(max_cells, max_fits))
        except StudyError as exc:
            bad += 1
            err.print(str(exc), highlight=False, markup=False)
            continue
        sz = size(spec)
        out.print(f"{f}: ok ({spec.name}: {len(spec.pairs)} pair(s), {sz.cells} cells x "
                  f"{spec.search.trials_per_cell} trial(s) x {spec.grid.seeds} seed(s) x {sz.folds} fold(s) = "
                  f"{sz.fits:,} target fits, plus {sz.source_fits:,} source/chain pre-training fits)", highlight=False)
        if estimate:
            out.print(f"  {_estimate(spec, sz)}", highlight=False)
    if bad:
        raise typer.Exit(2)


def _estimate(spec: Any, sz: Any) -> str:
    """Training time on this machine, from a short timing probe of one population step."""
    import os

    import torch

    from xfer.experiment.check import step_seconds

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))
    try:
        cell_s = step_seconds(spec.grid.backbone, spec.train, sz.cell_members)
        src_s = step_seconds(spec.grid.backbone, spec.source.train, spec.grid.seeds) if sz.source_populations else 0.0
    finally:
        torch.set_num_threads(threads)
    workers = max(1, int((os.cpu_count() or 1) // spec.resources.cpus_per_trial))
    if spec.resources.max_concurrent:
        workers = min(workers, spec.resources.max_concurrent)
    workers = min(workers, sz.cells)
    secs = sz.seconds(cell_s, src_s, workers)
    hours = secs / 3600
    when = f"{secs / 60:,.1f} min" if hours < 2 else f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} days"
    warn = " -- a large study: consider a cluster (`--address`) or a smaller grid" if hours > 24 else ""
    return (f"training time on this machine: at most ~{when} with {workers} concurrent trial(s) (every population "
            f"running its full budget of {sz.cell_steps} steps; probe: {cell_s * 1e3:.0f} ms per step for "
            f"{sz.cell_members} members; early stopping usually ends fits sooner; evaluation and "
            f"start-up not included){warn}")


@app.command("submit")
def study_submit(
    file: Annotated[Path, typer.Argument(help="Study YAML file (checked here first, as `xfer study validate` does).")],
    address: Annotated[str, typer.Option("--address", help="The cluster's Jobs API: http(s)://HEAD:8265 (the dashboard; reach it through `ray dashboard` or `kubectl port-forward`).")],
    out_dir: Annotated[str | None, typer.Option("--out", help="Study directory: an absolute path on the head node (the job's driver writes it), or an object-store URI such as s3://bucket/prefix (default: the spec's storage, else the cluster's $XFER_HOME/studies/NAME).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny budget: 1 seed, 1 trial, 1 fold, 2 fractions, 2 epochs.")] = False,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=VALUE or NAME (this machine's value) for the job's environment, e.g. XFER_HOME=/shared/xfer; repeatable. Credentials (WANDB_API_KEY, *_TOKEN, ...) are refused: Ray logs a job's runtime_env in plain text.")] = None,
    working_dir: Annotated[Path | None, typer.Option("--working-dir", help="Upload this directory (e.g. the project; .gitignore honoured) with FILE inside it, instead of the study file alone.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="--wait: follow the job's logs to its end and exit non-zero unless it succeeded. Default --no-wait: print the job id and how to follow it, and return (a study can run for hours).")] = False,
    check_markets: Annotated[bool, typer.Option("--check-markets/--no-check-markets", help="Check the study's markets against this machine's store (--store) before submitting.")] = True,
    store: Annotated[Path | None, typer.Option("--store", help="Store whose catalog the markets are checked against here (default: $XFER_HOME or ~/.xfer); the job uses the cluster's.")] = None,
) -> None:
    """Submit a study to a Ray cluster as a Ray Job (Jobs API); the job runs `xfer study run FILE --address auto`."""
    import os

    from xfer.study.submit import follow, job_env, submit_study

    client, sub = submit_study(file, address, out=out_dir, smoke=smoke, env=job_env(env or [], os.environ),
                               working_dir=working_dir, store=_store(store) if check_markets else None,
                               check_markets=check_markets)
    out.print(f"submitted study {sub.study} as Ray job {sub.job_id} to {sub.address}\n"
              f"  entrypoint: {sub.entrypoint}\n  study directory (on the cluster): {sub.study_dir}", highlight=False)
    logs, status, stop, study_status = sub.follow_commands()
    out.print(f"follow it:\n  {logs}\n  {status}\n  {study_status}    # where the study directory is (the head; anywhere for an s3:// one)\n"
              f"stop it:\n  {stop}", highlight=False, soft_wrap=True)
    if not wait:
        return
    try:
        state = follow(client, sub.job_id, lambda s: err.out(s, end="", highlight=False))
    except KeyboardInterrupt:
        err.print(f"stopped following; job {sub.job_id} keeps running (`{stop}` stops it)", highlight=False)
        raise typer.Exit(130) from None
    if state != "SUCCEEDED":
        err.print(f"[bold red]job {sub.job_id} {state}[/]: `{logs.replace(' --follow', '')}` shows why; "
                  "submitting the same study again (same --out) runs only the cells without results", highlight=False)
        raise typer.Exit(1)
    out.print(f"job {sub.job_id} SUCCEEDED: results in {sub.study_dir}", highlight=False)


@app.command("run")
def study_run(
    file: Annotated[Path, typer.Argument(help="Study YAML file.")],
    out_dir: Annotated[str | None, typer.Option("--out", help="Study directory: a path or an object-store URI such as s3://bucket/prefix (default: the spec's storage, else $XFER_HOME/studies/NAME).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray instance).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny budget: 1 seed, 1 trial, 1 fold, 2 fractions, 2 epochs.")] = False,
    profile: Annotated[bool, typer.Option("--profile", help="Print where the run's time went (stages and cell parts).")] = False,
    store: StoreOpt = None,
    max_cells: MaxCellsOpt = None,
    max_fits: MaxFitsOpt = None,
) -> None:
    """Run a study: every cell, Optuna search inside, results + report in the study directory."""
    from xfer.hooks import default_hooks
    from xfer.study.runner import run_study
    from xfer.study.spec import check_size, parse

    spec = parse(file)  # its size first, from the spec's counts: before any cell is built or written
    check_size(spec.smoke() if smoke else spec, file, **_caps(max_cells, max_fits))
    res = run_study(file, study_dir=_study_path(out_dir) if out_dir else None, store=_store(store), address=address,
                    smoke=smoke, console=err, hooks=default_hooks())
    _print_study(res)
    if profile:
        _print_profile(res.study_dir)


def _print_profile(study_dir: Path) -> None:
    from xfer.study.results import profile

    prof = profile(study_dir)
    t = Table(title=f"where the time went ({study_dir}); cell parts: summed over the cells run, "
                    "divided by the concurrent trials")
    for c in ("stage", "seconds", "share"):
        t.add_column(c, justify="left" if c == "stage" else "right")
    for r in prof.to_dict("records"):
        t.add_row(r["stage"], f"{r['seconds']:.1f}", f"{100 * r['share']:.0f}%")
    out.print(t)


def _need_study_dir(study_dir: str | Path) -> None:
    if isinstance(study_dir, str):
        return  # a URI: checked where it is opened (reachable, holding spec.json)
    if not (study_dir / "spec.json").is_file():
        raise XferInputError(file=study_dir, field="STUDY_DIR", expected="a study directory (with spec.json)",
                             found="no spec.json")


@app.command("resume")
def study_resume(
    study_dir: Annotated[str, typer.Argument(help="Directory (or object-store URI) of an interrupted study.")],
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address.")] = None,
    store: StoreOpt = None,
    max_cells: MaxCellsOpt = None,
    max_fits: MaxFitsOpt = None,
) -> None:
    """Finish an interrupted study: runs only the cells without results."""
    from xfer.hooks import default_hooks
    from xfer.study.runner import _load_spec, run_study
    from xfer.study.spec import check_size

    study_dir = _study_path(study_dir)
    _need_study_dir(study_dir)
    if isinstance(study_dir, Path):  # a URI's spec is checked where it is opened
        check_size(_load_spec(study_dir), study_dir / "spec.json", **_caps(max_cells, max_fits))
    res = run_study(None, study_dir=study_dir, store=_store(store), address=address, console=err,
                    hooks=default_hooks())
    _print_study(res)


@app.command("status")
def study_status_cmd(
    study_dir: Annotated[str, typer.Argument(help="A study directory or object-store URI (running, interrupted or finished).")],
    show_cells: Annotated[bool, typer.Option("--cells", help="One line per cell.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A study's progress from its directory alone (read-only: safe while a cluster writes it)."""
    import json

    from xfer.study.status import study_status

    study_dir = _study_path(study_dir)
    _need_study_dir(study_dir)
    st = study_status(study_dir)
    if as_json:
        out.print_json(json.dumps(st.to_dict()))
        return
    d = st.to_dict()
    secs = [c.seconds for c in st.cells if c.seconds is not None]
    mean = f"; a done cell took {sum(secs) / len(secs):.0f} s on average" if secs else ""
    out.print(f"study {st.name} ({study_dir}): {d['cells']} cells: {d['done']} done, {d['searching']} searching, "
              f"{d['pending']} pending; search trials {d['trials_done']}/{d['trials_total']}{mean}", highlight=False)
    if show_cells:
        t = Table()
        for c in ("cell", "pair", "chain", "dann", "strategy", "fraction", "state", "trials", "seconds"):
            t.add_column(c)
        for c in st.cells:
            t.add_row(c.cell_id, c.pair, c.chain, "yes" if c.dann else "no", c.strategy, f"{c.fraction:g}", c.state,
                      f"{c.trials_done}/{st.trials_per_cell}", "" if c.seconds is None else f"{c.seconds:.0f}")
        out.print(t)
    if st.finished:
        out.print(f"finished: tables and report in {study_dir}", highlight=False)
    elif d["searching"] or d["pending"]:
        out.print(f"not finished: if no run is writing it, `xfer study resume {study_dir}` runs the rest", highlight=False)


def _print_study(res: Any) -> None:
    v = res.tables["verdicts"]
    t = Table(title=f"verdicts ({res.cells_run} of {res.cells_total} cells run in {res.seconds:.0f}s) -> {res.study_dir}")
    for c in ("pair", "chain", "dann", "strategy", "fraction", "test", "scratch", "best baseline",
              "delta [95% CI]", "p (Holm)", "+/- detectable", "verdict"):
        t.add_column(c)
    for r in v[v["strategy"] != "scratch"].to_dict("records"):
        below = "" if r["beats_baseline"] else " [below baseline]"
        t.add_row(r["pair"], r["chain"], f"{r['dann_weight']:g}", r["strategy"], f"{r['fraction']:g}",
                  f"{r['test_score']:.4f}", f"{r['scratch_score']:.4f}",
                  f"{r['best_baseline']} {r['best_baseline_score']:.4f}",
                  f"{r['delta']:+.4f} [{r['delta_ci_low']:+.4f}, {r['delta_ci_high']:+.4f}]",
                  f"{r['p_adjusted']:.3f}", f"{r['detectable_effect']:.4f}", r["verdict"] + below)
    out.print(t)
    if len(v):
        out.print(f"verdicts read Holm-adjusted p-values over the study's {int(v['n_comparisons'].iloc[0])} "
                  "comparisons (day-level EWC test over test days and seeds)", highlight=False)
    sz = res.tables["sizing"]
    if len(sz) and sz["strategy"].ne("scratch").any():
        s = Table(title="required fraction to match scratch at full data vs the article's rule of thumb")
        for c in ("pair", "chain", "strategy", "required (monotone)", "90% joint band", "first passage",
                  "rule of thumb"):
            s.add_column(c)
        for r in sz[sz["strategy"] != "scratch"].to_dict("records"):
            s.add_row(r["pair"], r["chain"], r["strategy"], _frac(r.get("monotone_fraction")),
                      f"[{_frac(r.get('monotone_ci_low'))}, {_frac(r.get('monotone_ci_high'))}]",
                      _frac(r["required_fraction"]), r["rule_of_thumb"])
        out.print(s)
    out.print(f"report: {(res.location or str(res.study_dir)).rstrip('/')}/report.html", highlight=False)

