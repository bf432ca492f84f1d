"""``hpsearch studies | run | create | worker | dashboard | export | report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpsearch.cli._app import app, console, err_console, handle_errors
from hpsearch.search.studies import DEFAULT_STORAGE

StorageOpt = Annotated[
    str,
    typer.Option("--storage", envvar="HPSEARCH_STORAGE", help="Optuna storage URL (SQLite or PostgreSQL)"),
]
DataOpt = Annotated[
    str | None, typer.Option("--data", envvar="HPSEARCH_DATA", help="dataset folder with images/ and masks/")
]
StudyOpt = Annotated[
    str, typer.Option("--study", help="a shipped study name (see `hpsearch studies`) or a YAML path")
]
NTrialsOpt = Annotated[int | None, typer.Option("--n-trials", help="total trials for the study (budget)")]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="stop starting trials after this many seconds")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cuda, mps or cpu")]
NameOpt = Annotated[
    str | None, typer.Option("--study-name", help="name in storage (default: the study's name)")
]
OutOpt = Annotated[
    str | None, typer.Option("--out", envvar="HPSEARCH_OUT", help="trial output root (default runs/)")
]
ArtOpt = Annotated[
    str | None, typer.Option("--artifacts", envvar="HPSEARCH_ARTIFACTS", help="artifact folder")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a config value: KEY=VALUE (repeatable)")
]
MaxEpochsOpt = Annotated[int | None, typer.Option("--max-epochs", min=1, help="cap every trial's epochs")]
ForceOpt = Annotated[bool, typer.Option("--force", help="resume even if the space or data changed")]
HeartbeatOpt = Annotated[int, typer.Option("--heartbeat", min=1, help="heartbeat interval in seconds")]
GraceOpt = Annotated[
    int, typer.Option("--grace", min=2, help="seconds without heartbeat before a trial is failed")
]


def _options(
    study: str,
    storage: str,
    data: str | None,
    n_trials: int | None,
    timeout: float | None,
    device: str | None,
    study_name: str | None,
    out: str | None,
    artifacts: str | None,
    sets: list[str] | None,
    max_epochs: int | None,
    force: bool,
    heartbeat: int,
    grace: int,
):
    from hpsearch.search.service import SearchOptions, parse_overrides
    from hpsearch.search.studies import StorageOptions

    return SearchOptions(
        study=study,
        storage=storage,
        data=data,
        n_trials=n_trials,
        timeout=timeout,
        device=device,
        study_name=study_name,
        out=out,
        artifacts=artifacts,
        overrides=parse_overrides(sets),
        max_epochs=max_epochs,
        force=force,
        storage_options=StorageOptions(heartbeat_interval=heartbeat, grace_period=max(grace, heartbeat + 1)),
    )


@app.command()
@handle_errors
def studies() -> None:
    """List the shipped studies with one-line descriptions."""
    from hpsearch.search.spec import builtin_studies, load_study_spec

    for name in builtin_studies():
        spec = load_study_spec(name)
        console.print(f"[bold]{name:<14}[/] {spec.description}", highlight=False)


@app.command()
@handle_errors
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
    artifacts: ArtOpt = None,
    sets: SetOpt = None,
    max_epochs: MaxEpochsOpt = None,
    force: ForceOpt = False,
    heartbeat: HeartbeatOpt = 30,
    grace: GraceOpt = 90,
) -> None:
    """Create or resume a study and run its trials (in-process, or in N local worker processes)."""
    import optuna

    from hpsearch.search.live import live_board
    from hpsearch.search.service import prepare_study, resume_hint, run_worker, spawn_workers, wait_workers
    from hpsearch.search.studies import mask_url

    opts = _options(
        study,
        storage,
        data,
        n_trials,
        timeout,
        device,
        study_name,
        out,
        artifacts,
        sets,
        max_epochs,
        force,
        heartbeat,
        grace,
    )
    prepared = prepare_study(opts)
    verb = "created" if prepared.created else "resuming"
    console.print(f"{verb} study '{prepared.study_name}' in {mask_url(storage)} (data: {prepared.data_dir})")
    if n_trials == 0:
        return
    interrupted = False
    with live_board(f"study {prepared.study_name}") as board:
        if workers == 1:
            summary, _ = run_worker(opts, worker_index=0, on_event=board.on_event, prepared=prepared)
            interrupted = summary.interrupted
        else:
            procs = spawn_workers(opts, prepared, workers)
            handle = optuna.load_study(study_name=prepared.study_name, storage=prepared.storage)
            try:
                codes = wait_workers(procs, poll=lambda: board.poll(handle))
            except KeyboardInterrupt:
                interrupted = True
                codes = wait_workers(procs)
            if any(c not in (0, 130) for c in codes):
                err_console.print(f"[yellow]warning:[/] worker exit codes {codes}")
    _print_summary(prepared)
    if interrupted:
        # One unwrapped line, no markup: it is a command to copy.
        err_console.print("interrupted; resume with:")
        err_console.print(f"  {resume_hint(opts, prepared)}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130)


def _print_summary(prepared) -> None:
    import optuna

    study = optuna.load_study(study_name=prepared.study_name, storage=prepared.storage)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    console.print("trials: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())))
    try:
        best = study.best_trial
        console.print(f"best: trial {best.number}, val Dice {best.value:.4f}, params {best.params}")
    except ValueError:
        console.print("no completed trial yet")


@app.command()
@handle_errors
def create(
    study: StudyOpt,
    storage: StorageOpt = DEFAULT_STORAGE,
    data: DataOpt = None,
    n_trials: NTrialsOpt = None,
    study_name: NameOpt = None,
    force: ForceOpt = False,
) -> None:
    """Create (or check) a study and its budget without running any trial."""
    from hpsearch.search.service import prepare_study
    from hpsearch.search.studies import mask_url

    opts = _options(
        study, storage, data, n_trials, None, None, study_name, None, None, None, None, force, 30, 90
    )
    prepared = prepare_study(opts)
    state = "created" if prepared.created else "already exists (unchanged)"
    console.print(f"study '{prepared.study_name}' {state} in {mask_url(storage)}")


@app.command()
@handle_errors
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
    artifacts: ArtOpt = None,
    sets: SetOpt = None,
    max_epochs: MaxEpochsOpt = None,
    worker_index: Annotated[
        int | None, typer.Option("--worker-index", help="seed stream of this worker")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no live display")] = False,
    force: ForceOpt = False,
    heartbeat: HeartbeatOpt = 30,
    grace: GraceOpt = 90,
) -> None:
    """Join an existing study (from any machine) and run trials until its budget is spent."""
    from hpsearch.search.live import live_board
    from hpsearch.search.service import default_worker_index, run_worker

    if worker_index is None:  # Slurm array task, Kubernetes job index, HPSEARCH_WORKER_INDEX, or host+pid
        worker_index = default_worker_index()
    opts = _options(
        study,
        storage,
        data,
        None,
        timeout,
        device,
        None,
        out,
        artifacts,
        sets,
        max_epochs,
        force,
        heartbeat,
        grace,
    )
    with live_board(f"study {study}", enabled=False if quiet else None) as board:
        summary, prepared = run_worker(
            opts, worker_index=worker_index, max_trials=n_trials, on_event=board.on_event
        )
    states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.states.items())) or "no trials"
    console.print(
        f"worker {worker_index} done: {states} "
        f"in {summary.wall_time_s:.1f}s",
        highlight=False,
    )
    if summary.interrupted:
        raise typer.Exit(130)


@app.command()
@handle_errors
def dashboard(
    storage: StorageOpt = DEFAULT_STORAGE,
    host: Annotated[str, typer.Option(help="bind address (localhost only by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
    artifacts: ArtOpt = None,
) -> None:
    """Open optuna-dashboard on the storage, with trial galleries from the artifact store."""
    from hpsearch.results.dashboard import dashboard_url, serve_dashboard

    console.print(f"optuna-dashboard on {dashboard_url(host, port)} (Ctrl-C to stop)")
    serve_dashboard(storage, host=host, port=port, artifacts=Path(artifacts) if artifacts else None)


@app.command()
@handle_errors
def export(
    study: Annotated[
        str | None, typer.Option("--study", help="study name in storage (default: its only study)")
    ] = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[Path, typer.Option("--out", help="file to write")] = Path("best.yaml"),
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Write the best trial's full config (plus provenance) for `hpsearch train --config`."""
    from hpsearch.errors import ConfigError
    from hpsearch.results.export import export_best

    if fmt not in ("yaml", "json"):
        raise ConfigError(f"--format '{fmt}' is not one of: yaml, json")
    path = export_best(storage, study, out, fmt)  # type: ignore[arg-type]
    console.print(f"wrote {path}; retrain with: hpsearch train --config {path}")


@app.command()
@handle_errors
def report(
    study: Annotated[
        str | None, typer.Option("--study", help="study name in storage (default: its only study)")
    ] = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("report"),
) -> None:
    """Write report.md (+ PNGs): parameter table, best trial, states, time spent, cost-to-target."""
    from hpsearch.results.report import write_report

    path = write_report(storage, study, out)
    console.print(f"wrote {path}")
