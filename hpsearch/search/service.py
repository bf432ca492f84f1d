"""The search service: validate everything, open the storage, create or resume the study, run workers.

Every check that can fail on bad input (study file, names, overrides, data folder, storage URL) runs before
anything is written to storage, so a typo never leaves a half-made study behind.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from hpsearch.errors import ConfigError
from hpsearch.search.objective import Event, Objective, TrialContext
from hpsearch.search.spec import StudySpec, load_study_spec, resolve_config
from hpsearch.search.studies import (
    DEFAULT_STORAGE,
    SPEC_ATTR,
    StorageOptions,
    WorkerSummary,
    artifact_store,
    create_or_load_study,
    make_storage,
    mask_url,
    run_trials,
    stored_spec,
    study_exists,
    worker_study,
)
from hpsearch.training.config import RunConfig
from hpsearch.training.validate import check_registry_names

optuna.logging.set_verbosity(optuna.logging.WARNING)

SYNTH_N = 48


@dataclass
class SearchOptions:
    """Options shared by ``run``, ``create`` and ``worker`` (CLI > study file > defaults)."""

    study: str
    storage: str = DEFAULT_STORAGE
    data: str | None = None
    n_trials: int | None = None
    timeout: float | None = None
    device: str | None = None
    study_name: str | None = None
    out: str | None = None
    artifacts: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    max_epochs: int | None = None
    force: bool = False
    storage_options: StorageOptions = field(default_factory=StorageOptions)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=2", "data.augmentation=none"]`` -> {path: YAML-parsed value}."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' is not KEY=VALUE; e.g. --set train.epochs=2")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set '{item}': the value is not valid YAML") from None
    return out


def _validated_base(spec: StudySpec, opts: SearchOptions) -> RunConfig:
    values = dict(opts.overrides)
    if opts.device:
        values["train.device"] = opts.device
    cfg = resolve_config(spec.fixed, values, source="--set/--device")
    check_registry_names(cfg, source="--set/--device")
    return cfg


def synthetic_data_dir(n: int = SYNTH_N, size: int = 64) -> Path:
    """A cached synthetic dataset for studies marked ``synthetic`` when no --data is given."""
    from hpsearch.data.io import default_cache_root
    from hpsearch.data.synth import make_synthetic

    path = default_cache_root() / "synthetic" / f"n{n}-s{size}"
    if not (path / "images").is_dir() or len(list((path / "images").iterdir())) != n:
        make_synthetic(path, n=n, size=size, seed=0)
    return path


def resolve_study_data(spec: StudySpec, cli_data: str | None, base: RunConfig) -> Path:
    """--data > HPSEARCH_DATA > study's data.path > synthetic data for synthetic studies."""
    from hpsearch.training.runner import resolve_data_dir

    if not (cli_data or os.environ.get("HPSEARCH_DATA") or base.data.path) and spec.synthetic:
        return synthetic_data_dir(size=max(64, base.data.image_size))
    return resolve_data_dir(cli_data, base.data)


@dataclass
class PreparedStudy:
    """A validated spec plus an open study, ready for workers."""

    spec: StudySpec
    study_name: str
    storage_url: str
    storage: Any
    data_dir: Path
    split_hash: str
    created: bool
    out_root: Path


def _split_hash(base: RunConfig, data_dir: Path) -> str:
    from hpsearch.data.check import verify_dataset
    from hpsearch.data.splits import make_split, resolve_split_file

    pairs = verify_dataset(data_dir)  # data errors abort here, before storage and before any trial
    split = make_split(
        pairs,
        split_file=resolve_split_file(base.data.split_file, data_dir),
        val_fraction=base.data.val_fraction,
        test_fraction=base.data.test_fraction,
        seed=base.data.split_seed,
    )
    return split.hash


def prepare_study(opts: SearchOptions, *, create_only: bool = False) -> PreparedStudy:
    """Validate the spec, overrides, data and storage; then create or resume the study."""
    if opts.n_trials is not None and opts.n_trials < 0:
        raise ConfigError(f"--n-trials must be >= 0 (got {opts.n_trials})")
    spec = load_study_spec(opts.study)
    base = _validated_base(spec, opts)
    data_dir = resolve_study_data(spec, opts.data, base)
    split_hash = _split_hash(base, data_dir)
    storage = make_storage(opts.storage, opts.storage_options)
    study_name = opts.study_name or spec.name
    _, created = create_or_load_study(
        spec,
        storage,
        study_name=study_name,
        split_hash=split_hash,
        n_trials=opts.n_trials,
        force=opts.force,
        create_only=create_only,
    )
    out_root = Path(opts.out or os.environ.get("HPSEARCH_OUT") or "runs") / study_name
    return PreparedStudy(spec, study_name, opts.storage, storage, data_dir, split_hash, created, out_root)


def default_worker_index() -> int:
    """Slurm array task or task rank, Kubernetes Indexed Job index, or a value from host and pid."""
    # SLURM_PROCID last: it is 0 in every single-task array element, where the array index is the one that
    # tells workers apart.
    for var in ("HPSEARCH_WORKER_INDEX", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return (hash(socket.gethostname()) ^ os.getpid()) % 100_000


def run_worker(
    opts: SearchOptions,
    *,
    worker_index: int | None = None,
    max_trials: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    prepared: PreparedStudy | None = None,
) -> tuple[WorkerSummary, PreparedStudy]:
    """Join the study and run trials until its budget, ``max_trials`` or ``opts.timeout`` is spent."""
    if prepared is None:
        prepared = join_study(opts)
    idx = default_worker_index() if worker_index is None else worker_index
    spec = prepared.spec
    budgeted = "budget_n_trials" in _study_attrs(prepared)
    study = worker_study(prepared.study_name, prepared.storage, spec, seed_offset=idx, budgeted=budgeted)
    ctx = TrialContext(
        spec=spec,
        data_dir=prepared.data_dir,
        out_root=prepared.out_root,
        overrides={**opts.overrides, **({"train.device": opts.device} if opts.device else {})},
        max_epochs=opts.max_epochs,
        artifact_store=artifact_store(prepared.storage_url, opts.artifacts),
        worker=str(idx),
        on_event=on_event,
    )
    summary = run_trials(study, Objective(ctx), max_trials=max_trials, timeout=opts.timeout)
    return summary, prepared


def _study_attrs(prepared: PreparedStudy) -> dict[str, Any]:
    sid = prepared.storage.get_study_id_from_name(prepared.study_name)
    return prepared.storage.get_study_user_attrs(sid)


def join_study(opts: SearchOptions) -> PreparedStudy:
    """Open an existing study for a worker: spec from storage (or from the study file when it is new)."""
    storage = make_storage(opts.storage, opts.storage_options)
    name = opts.study_name or opts.study
    if not study_exists(storage, name):
        # --study may be a study file or a shipped study: its stored name is the spec's name.
        name = opts.study_name or load_study_spec(opts.study).name
    if not study_exists(storage, name):
        # Not in storage yet: create it like `run` would.
        storage.engine.dispose()  # prepare_study opens its own storage: hold no connection for this one
        try:
            return prepare_study(opts, create_only=True)
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another worker created it at the same moment: join it like any existing study
    study = optuna.load_study(study_name=name, storage=storage)
    deadline = time.monotonic() + 30
    while SPEC_ATTR not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)  # just created by another worker, which stores the spec last
    spec = stored_spec(study)
    base = _validated_base(spec, opts)
    data_dir = resolve_study_data(spec, opts.data, base)
    split_hash = _split_hash(base, data_dir)
    stored_hash = study.user_attrs.get("data_split_hash")
    if stored_hash != split_hash and not opts.force:
        raise ConfigError(
            f"data at '{data_dir}' gives split {split_hash[:12]} but study '{name}' was created with "
            f"{str(stored_hash)[:12]}; point --data at the same dataset, or use --force"
        )
    if opts.n_trials is not None:
        create_or_load_study(
            spec,
            storage,
            study_name=name,
            split_hash=stored_hash or split_hash,
            n_trials=opts.n_trials,
            force=True,
        )
    out_root = Path(opts.out or os.environ.get("HPSEARCH_OUT") or "runs") / name
    return PreparedStudy(spec, name, opts.storage, storage, data_dir, split_hash, False, out_root)


def _set_args(overrides: dict[str, Any]) -> list[str]:
    """``--set KEY=VALUE`` arguments that parse back (parse_overrides) to the same values."""
    out: list[str] = []
    for k, v in overrides.items():
        dumped = yaml.safe_dump(v, default_flow_style=True, width=float("inf"))
        out += ["--set", f"{k}={dumped.strip().removesuffix('...').strip()}"]
    return out


def spawn_workers(opts: SearchOptions, prepared: PreparedStudy, n: int) -> list[subprocess.Popen]:
    """Start ``n`` worker processes on this machine; with several GPUs, pin them round-robin."""
    n_gpu = 0
    try:
        import torch

        n_gpu = torch.cuda.device_count()
    except Exception:  # no usable CUDA: CPU workers
        n_gpu = 0
    procs = []
    for i in range(n):
        cmd = [
            sys.executable,
            "-m",
            "hpsearch",
            "worker",
            "--study",
            prepared.study_name,
            "--storage",
            opts.storage,
            "--data",
            str(prepared.data_dir),
            "--worker-index",
            str(i),
            "--out",
            str(prepared.out_root.parent),
            "--quiet",
            "--heartbeat",
            str(opts.storage_options.heartbeat_interval),
            "--grace",
            str(opts.storage_options.grace_period),
        ]
        if opts.artifacts:
            cmd += ["--artifacts", opts.artifacts]
        if opts.device:
            cmd += ["--device", opts.device]
        if opts.max_epochs:
            cmd += ["--max-epochs", str(opts.max_epochs)]
        if opts.timeout:
            cmd += ["--timeout", str(opts.timeout)]
        cmd += _set_args(opts.overrides)
        env = dict(os.environ)
        if n_gpu > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(i % n_gpu)
        if n_gpu == 0 and "OMP_NUM_THREADS" not in env:
            # CPU workers share the cores: N processes with a thread per core each oversubscribe the CPU
            # (measured: 4 workers on 2 cores ran the same study ~5x slower).
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
        procs.append(subprocess.Popen(cmd, env=env))
    return procs


def wait_workers(
    procs: list[subprocess.Popen], poll: Callable[[], None] | None = None, every: float = 1.0
) -> list[int]:
    """Wait for all workers, calling ``poll`` (e.g. a live display refresh) every ``every`` seconds."""
    while any(p.poll() is None for p in procs):
        if poll is not None:
            poll()
        time.sleep(every)
    if poll is not None:
        poll()
    return [p.returncode for p in procs]


def resume_hint(opts: SearchOptions, prepared: PreparedStudy) -> str:
    """The command that resumes this study: the same budget, outputs and overrides."""
    parts = ["hpsearch", "run", "--study", opts.study]
    if opts.storage != os.environ.get("HPSEARCH_STORAGE"):  # from the environment: it is still there
        parts += ["--storage", mask_url(opts.storage)]
    if opts.data:
        parts += ["--data", str(opts.data)]
    if opts.study_name:
        parts += ["--study-name", opts.study_name]
    if opts.n_trials is not None:
        parts += ["--n-trials", str(opts.n_trials)]
    for flag, value in (("--out", opts.out), ("--artifacts", opts.artifacts), ("--device", opts.device)):
        if value:
            parts += [flag, str(value)]
    if opts.max_epochs:
        parts += ["--max-epochs", str(opts.max_epochs)]
    parts += _set_args(opts.overrides)
    return shlex.join(parts)


DEFAULT_STORAGE_URL = DEFAULT_STORAGE
