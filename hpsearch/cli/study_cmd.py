"""``hpsearch studies | run | create | worker | dashboard | export | report``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hpsearch.cli._app import app, console, err_console, say
from hpsearch.cli.flags import (
    DEFAULT_STORAGE,
    ArtifactsOpt,
    DataOpt,
    DeviceOpt,
    ExportFormat,
    ForceOpt,
    GraceOpt,
    HeartbeatOpt,
    MaxEpochsOpt,
    NameOpt,
    NTrialsOpt,
    OutOpt,
    SetOpt,
    StorageOpt,
    StoredStudyOpt,
    StudyOpt,
    StudyScaleOpt,
    TimeoutOpt,
    search_options,
    worker_index_from_env,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpsearch.search.launch import SearchOutcome
    from hpsearch.search.lifecycle import PreparedStudy


@app.command()
def studies() -> None:
    """List the shipped studies with one-line descriptions."""
    from hpsearch.search.spec import builtin_studies, load_study_spec

    for name in builtin_studies():
        console.print(f"[bold]{name:<14}[/] {load_study_spec(name).description}", highlight=False)


@app.command()
def run(
    study: StudyOpt,
    storage: StorageOpt = DEFAULT_STORAGE,
    data: DataOpt = None,
    n_trials: NTrialsOpt = None,
    timeout: TimeoutOpt = None,
    device: DeviceOpt = None,
    study_name: NameOpt = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="local worker processes")] = 1,
    out: OutOpt = None,
    artifacts: ArtifactsOpt = None,
    sets: SetOpt = None,
    max_epochs: MaxEpochsOpt = None,
    scale: StudyScaleOpt = None,
    estimate: Annotated[
        bool, typer.Option("--estimate/--no-estimate", help="time a few real steps and print the cost first")
    ] = True,
    force: ForceOpt = False,
    heartbeat: HeartbeatOpt = 30,
    grace: GraceOpt = 90,
) -> None:
    """Create or resume a study and run its trials (in-process, or in N local worker processes)."""
    from hpsearch.search.launch import run_search

    opts = search_options(
        study=study, storage=storage, data=data, n_trials=n_trials, timeout=timeout, device=device,
        study_name=study_name, out=out, artifacts=artifacts, sets=sets, max_epochs=max_epochs, force=force,
        heartbeat=heartbeat, grace=grace, scale=scale,
    )  # fmt: skip
    outcome = run_search(
        opts, workers=workers, on_open=_announce, estimate=estimate,
        say=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True),
    )  # fmt: skip
    _print_outcome(outcome)
    if outcome.interrupted:
        raise typer.Exit(130)
    if outcome.failed_workers:
        raise typer.Exit(1)  # a worker process died: the study may be short of trials, and scripts must know


def _announce(prepared: PreparedStudy) -> None:
    from hpsearch.search.storage import mask_url

    verb = "created" if prepared.created else "resuming"
    shown = mask_url(prepared.storage_url)
    where = f"{shown} (data: {prepared.data_dir}, scale: {prepared.scale})"
    say(f"{verb} study '{prepared.study_name}' in {where}")
    if prepared.budget_note:
        say(prepared.budget_note)


def _print_outcome(outcome: SearchOutcome) -> None:
    from hpsearch.search import keys
    from hpsearch.training.metric_table import label as metric_label

    if not outcome.ran:
        return
    if outcome.failed_workers:
        err_console.print(f"[red]error:[/] worker exit codes {outcome.worker_exit_codes}")
    console.print("trials: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(outcome.states.items())))
    label = metric_label(outcome.prepared.spec.metric)
    best = outcome.best
    if best is not None:
        console.print(f"best: trial {best.number}, {label} {best.value:.4f}, params {best.params}")
    elif (stopped := _budget_stopped_best(outcome)) is not None:
        # No trial finished, but one stopped by the budget is what `export` takes: say so, not "nothing".
        value = stopped.user_attrs[keys.BEST_VALUE]
        ran = int(stopped.user_attrs.get(keys.EPOCHS_RUN) or 0)
        console.print(
            f"no completed trial yet; exportable: trial {stopped.number} (stopped by the time budget after "
            f"{ran} epoch{'' if ran == 1 else 's'}), {label} {value:.4f}, params {stopped.params}"
        )
    else:
        console.print("no completed trial yet")
    if outcome.resume_command:
        # One unwrapped line, no markup: it is a command to copy.
        err_console.print("interrupted; resume with:")
        err_console.print(f"  {outcome.resume_command}", markup=False, highlight=False, soft_wrap=True)


def _budget_stopped_best(outcome: SearchOutcome) -> FrozenTrial | None:
    """The trial ``export`` would take from a study where none completed: one stopped by the budget."""
    import optuna

    from hpsearch.errors import ConfigError
    from hpsearch.results.query import best_exportable_trial

    prepared = outcome.prepared
    try:
        return best_exportable_trial(
            optuna.load_study(study_name=prepared.study_name, storage=prepared.storage)
        )
    except ConfigError:
        return None


@app.command()
def create(
    study: StudyOpt,
    storage: StorageOpt = DEFAULT_STORAGE,
    data: DataOpt = None,
    n_trials: NTrialsOpt = None,
    study_name: NameOpt = None,
    scale: StudyScaleOpt = None,
    force: ForceOpt = False,
) -> None:
    """Create (or check) a study and its budget without running any trial."""
    from hpsearch.search.lifecycle import open_study
    from hpsearch.search.storage import mask_url

    opts = search_options(
        study=study, storage=storage, data=data, n_trials=n_trials, study_name=study_name, force=force,
        scale=scale,
    )  # fmt: skip
    prepared = open_study(opts)
    state = "created" if prepared.created else f"already exists ({prepared.budget_note or 'unchanged'})"
    where = f"{mask_url(storage)} (scale: {prepared.scale})"
    say(f"study '{prepared.study_name}' {state} in {where}")


@app.command()
def worker(
    study: StudyOpt,
    storage: StorageOpt = DEFAULT_STORAGE,
    data: DataOpt = None,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=0, help="at most this many trials here")
    ] = None,
    timeout: TimeoutOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = None,
    artifacts: ArtifactsOpt = None,
    sets: SetOpt = None,
    max_epochs: MaxEpochsOpt = None,
    worker_index: Annotated[
        int | None,
        typer.Option("--worker-index", help="seed stream of this worker (default: from Slurm/Kubernetes)"),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="no live display and no per-epoch lines (per-trial lines stay)")
    ] = False,
    scale: StudyScaleOpt = None,
    force: ForceOpt = False,
    heartbeat: HeartbeatOpt = 30,
    grace: GraceOpt = 90,
) -> None:
    """Join an existing study (from any machine) and run trials until its budget is spent."""
    from hpsearch.search.live import live_board
    from hpsearch.search.worker import run_worker

    opts = search_options(
        study=study, storage=storage, data=data, timeout=timeout, device=device, out=out, artifacts=artifacts,
        sets=sets, max_epochs=max_epochs, force=force, heartbeat=heartbeat, grace=grace, scale=scale,
    )  # fmt: skip
    index = worker_index_from_env() if worker_index is None else worker_index
    with live_board(f"study {study}", enabled=False if quiet else None) as board:
        summary, _ = run_worker(opts, worker_index=index, max_trials=n_trials, on_event=board.on_event)
    states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.states.items())) or "no trials"
    say(f"worker {index} done: {states} in {summary.wall_time_s:.1f}s")
    if summary.interrupted:
        raise typer.Exit(130)


@app.command()
def dashboard(
    storage: StorageOpt = DEFAULT_STORAGE,
    host: Annotated[str, typer.Option(help="bind address (localhost only by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Open optuna-dashboard on the storage, with trial galleries from the artifact store."""
    from hpsearch.results.dashboard import dashboard_url, serve_dashboard

    console.print(f"optuna-dashboard on {dashboard_url(host, port)} (Ctrl-C to stop)")
    serve_dashboard(storage, host=host, port=port, artifacts=artifacts)


@app.command()
def export(
    study: StoredStudyOpt = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[Path, typer.Option("--out", help="file to write")] = Path("best.yaml"),
    fmt: Annotated[ExportFormat, typer.Option("--format", help="file format")] = ExportFormat.yaml,
) -> None:
    """Write the best trial's full config (plus provenance) for `hpsearch train --config`."""
    from hpsearch.results.export import export_best

    path = export_best(storage, study, out, fmt.value)
    console.print(f"wrote {path}; retrain with: hpsearch train --config {path}")


@app.command()
def report(
    study: StoredStudyOpt = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("report"),
) -> None:
    """Write report.md (+ PNGs): parameter table, best trial, states, time spent, cost-to-target."""
    from hpsearch.results.report import write_report

    path = write_report(storage, study, out)
    console.print(f"wrote {path}")
