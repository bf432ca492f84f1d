"""The study lifecycle: check the inputs, then create a study (spec, data hash, budget) or open one.

The study's spec (space, sampler, pruner, data split hash, package version) is stored as study user
attributes, so that any worker can rebuild the sampler and pruner, and a resume can check that nothing
changed underneath it.

The budget is counted in *tickets*: creating a study with ``n_trials=N`` enqueues N WAITING trials, and a
worker only ever runs a trial it could claim from that queue (claiming is atomic in the RDB storage). So N
workers together run exactly N trials, never N plus a few that started in a race.

``open_study`` is the one way in, for ``run``, ``create`` and ``worker`` alike. Every check that can fail on
bad input (study file, names, overrides, caps, data folder, storage URL) runs before anything is written to
storage, so a typo never leaves a half-made study behind.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import ExperimentalWarning

from hpsearch._version import __version__
from hpsearch.data.folder import resolve_data_dir
from hpsearch.errors import ConfigError
from hpsearch.search import keys
from hpsearch.search.options import SearchOptions
from hpsearch.search.space import representative_params
from hpsearch.search.spec import StudySpec, builtin_studies, load_study_spec, parse_study
from hpsearch.search.storage import make_storage, mask_url, study_exists
from hpsearch.training.config import RunConfig, resolve_run_config
from hpsearch.training.scale import FULL

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from hpsearch.data.discover import Pair
    from hpsearch.data.splits import Split, SplitSettings

SYNTH_N = 48
# How long a worker waits for the spec of a study that another worker created a moment ago.
SPEC_WAIT_S = 30.0


# ------------------------------------------------------------------------------------------ the inputs
def validated_base(
    spec: StudySpec,
    *,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    max_epochs: int | None = None,
    scale: str | None = None,
) -> RunConfig:
    """The config of the study's representative trial (``fixed`` + the middle of every range + ``--set`` +
    ``--device`` + scale, capped), resolved once, now, the way every trial resolves its own.

    ``resolve_run_config`` refuses a ``--set`` on a sampled path and ``--max-epochs`` on a study that samples
    ``train.epochs``; running it here, before any storage is opened, makes those refusals (and a bad
    ``--set`` value or name) fail before a study exists, not in every trial.
    """
    from hpsearch.training.validate import check_registry_names

    source = f"study '{spec.name}'"
    base = resolve_run_config(
        spec.run_base(),
        params=representative_params(spec.space),
        overrides=overrides,
        device=device,
        max_epochs=max_epochs,
        scale=scale,
        source=source,
    )
    check_registry_names(base, source=source)
    return base


def synthetic_data_dir(n: int = SYNTH_N, size: int = 64) -> Path:
    """A cached synthetic dataset for studies marked ``synthetic`` when no data folder is given."""
    from hpsearch.data.io import default_cache_root
    from hpsearch.data.synth import make_synthetic

    path = default_cache_root() / "synthetic" / f"n{n}-s{size}"
    if not (path / "images").is_dir() or len(list((path / "images").iterdir())) != n:
        make_synthetic(path, n=n, size=size, seed=0)
    return path


def resolve_study_data(spec: StudySpec, data: str | Path | None, base: RunConfig) -> Path:
    """``data`` (--data) > the study's ``data.path`` > synthetic data for synthetic studies."""
    synthetic = (lambda: synthetic_data_dir(size=max(64, base.data.image_size))) if spec.synthetic else None
    return resolve_data_dir(data, base.data.path, otherwise=synthetic)


def _split_key(settings: SplitSettings) -> tuple[Any, ...]:
    return (settings.split_file, settings.val_fraction, settings.test_fraction, settings.split_seed,
            bool(getattr(settings, "allow_empty_masks", False)))  # fmt: skip


@dataclass(frozen=True)
class StudySplit:
    """The verified pairs and the split a study was opened with: computed once per process, then reused by
    the cost estimate and every trial whose data settings split the same way."""

    key: tuple[Any, ...]
    pairs: list[Pair]
    split: Split

    def reusable_for(self, settings: SplitSettings) -> tuple[list[Pair], Split] | None:
        """``(pairs, split)`` when ``settings`` split the folder the same way, else None (split anew)."""
        return (self.pairs, self.split) if _split_key(settings) == self.key else None


@dataclass(frozen=True)
class StudyInputs:
    """What a spec plus the options resolve to, checked: the base config, the data folder, its split."""

    base: RunConfig
    data_dir: Path
    split: StudySplit

    @property
    def split_hash(self) -> str:
        return self.split.split.hash


def check_inputs(spec: StudySpec, opts: SearchOptions) -> StudyInputs:
    """Validate overrides, caps and the dataset for ``spec`` (data errors abort here, before any trial)."""
    from hpsearch.data.splits import split_for

    base = validated_base(
        spec, overrides=opts.overrides, device=opts.device, max_epochs=opts.max_epochs, scale=opts.scale
    )
    data_dir = resolve_study_data(spec, opts.data, base)
    pairs, split = split_for(base.data, data_dir)
    return StudyInputs(base, data_dir, StudySplit(_split_key(base.data), pairs, split))


# ----------------------------------------------------------------------------------- stored studies
def stored_spec(study: optuna.Study) -> StudySpec:
    """Rebuild the StudySpec saved with a study."""
    raw = study.user_attrs.get(keys.SPEC)
    if raw is None:
        raise ConfigError(
            f"study '{study.study_name}' was not created by hpsearch (no stored spec); "
            "pass --study-name with a new name"
        )
    return parse_study(json.loads(raw), source=f"stored spec of study '{study.study_name}'")


def count_tickets(study: optuna.Study) -> int:
    """Budget tickets ever issued for this study (retries of crashed trials are not tickets).

    A retry (heartbeat retry of a crashed trial, or the replacement of an interrupted one) copies the ticket
    attribute but carries the system attribute ``failed_trial``: it re-runs a ticket, it is not a new one.
    """
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(keys.TICKET) and keys.FAILED_TRIAL not in t.system_attrs
    )


def _issue_tickets(study: optuna.Study, spec: StudySpec, n_total: int) -> int:
    have = count_tickets(study)
    for i in range(have, n_total):
        params = spec.enqueue[i] if i < len(spec.enqueue) else {}
        study.enqueue_trial(params, user_attrs={keys.TICKET: True}, skip_if_exists=False)
    return max(0, n_total - have)


def _stamp(study: optuna.Study, spec: StudySpec, split_hash: str, scale: str) -> None:
    study.set_user_attr(keys.SPEC_FINGERPRINT, spec.fingerprint())
    study.set_user_attr(keys.DATA_SPLIT_HASH, split_hash)
    study.set_user_attr(keys.SCALE, scale)
    name_metric(study, spec.metric)  # optuna-dashboard then shows val_dice, not "Objective 0"


def stored_scale(attrs: dict[str, Any]) -> str:
    """The scale a study's trials train at (studies made before scales existed are full scale)."""
    return str(attrs.get(keys.SCALE, FULL))


def _check_scale(study: optuna.Study, scale: str, *, verb: str) -> None:
    """One study trains at one scale: another is refused, even with --force (its trials would not compare)."""
    stored = stored_scale(study.user_attrs)
    if stored != scale:
        raise ConfigError(
            f"cannot {verb} study '{study.study_name}' at scale '{scale}': its trials train at scale "
            f"'{stored}'; pass --scale {stored}, or --study-name NEW to start a study at this scale"
        )


def _resume_problems(
    study: optuna.Study, *, fingerprint: str | None, split_hash: str, data_dir: Path | None = None
) -> list[str]:
    """What differs between the stored study and the caller's spec and data (None: not checked)."""
    attrs = study.user_attrs
    problems = []
    if fingerprint is not None and attrs.get(keys.SPEC_FINGERPRINT) != fingerprint:
        problems.append("the search space, fixed settings, sampler or pruner changed")
    stored = attrs.get(keys.DATA_SPLIT_HASH)
    if stored != split_hash:
        where = f"data at '{data_dir}' gives" if data_dir is not None else "now"
        problems.append(f"the data split changed (stored {str(stored)[:12]}, {where} {split_hash[:12]})")
    return problems


def name_metric(study: optuna.Study, metric: str) -> bool:
    """Name the study's objective ``metric`` so the dashboard shows e.g. ``val_dice``, not "Objective 0".

    Idempotent: writes only when the stored name differs, so any number of workers or dashboards may call
    it. Returns whether it wrote. hpsearch studies have one objective; a multi-objective study is refused.
    """
    if len(study.directions) != 1:
        raise ConfigError(
            f"study '{study.study_name}' has {len(study.directions)} objectives; name_metric names the one "
            "objective of a single-objective study, so pass such a study"
        )
    if study.metric_names == [metric]:
        return False
    with warnings.catch_warnings():
        # Experimental since optuna 3.2 and unchanged since; the warning would repeat on every start.
        warnings.simplefilter("ignore", ExperimentalWarning)
        study.set_metric_names([metric])
    return True


def _top_up(study: optuna.Study, spec: StudySpec, n_trials: int | None) -> None:
    """Raise the budget to ``n_trials`` (or the spec's) and issue the missing tickets; never lower it."""
    budget = n_trials if n_trials is not None else spec.budget.n_trials
    if budget is not None:
        stored = int(study.user_attrs.get(keys.BUDGET_N_TRIALS, 0))
        study.set_user_attr(keys.BUDGET_N_TRIALS, max(budget, stored))
        _issue_tickets(study, spec, budget)


def create_study(
    spec: StudySpec,
    storage: BaseStorage,
    *,
    study_name: str | None = None,
    split_hash: str,
    n_trials: int | None = None,
    scale: str = FULL,
) -> optuna.Study:
    """Create the study: its fingerprint, data split hash, scale, version, budget tickets, then its spec.

    ``n_trials`` (or the spec's budget) is the study's total number of trials. Raises optuna's
    ``DuplicatedStudyError`` when the study exists (a worker then joins it; only its creator issues tickets).
    """
    study = optuna.create_study(storage=storage, study_name=study_name or spec.name, direction=spec.direction)
    _stamp(study, spec, split_hash, scale)
    study.set_user_attr(keys.VERSION, __version__)
    _top_up(study, spec, n_trials)
    # Stored last: a worker joining a study created a moment ago waits for the spec (_await_stored_spec), and
    # then finds the data hash, the budget and the tickets already in place.
    study.set_user_attr(keys.SPEC, spec.model_dump_json())
    return study


# ------------------------------------------------------------------------------------- the trials' share
# What a trial tells a listener (the live table): a dict with a ``kind`` (start, step, epoch, end).
Event = dict[str, Any]


@dataclass
class TrialContext:
    """What every trial of one worker shares (``PreparedStudy.trial_context`` builds it; the objective reads
    it)."""

    spec: StudySpec
    data_dir: Path
    out_root: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    max_epochs: int | None = None
    artifact_store: Any | None = None
    worker: str = "0"
    on_event: Callable[[Event], None] | None = None
    scale: str = FULL
    deadline: float | None = None  # time.monotonic() after which a running trial stops at its next epoch
    split: StudySplit | None = None  # the study's split, computed when it was opened: not split again


# ------------------------------------------------------------------------------------- the one way in
@dataclass(kw_only=True)
class PreparedStudy:
    """A validated spec plus an open study, ready for workers."""

    spec: StudySpec
    study_name: str
    storage_url: str
    storage: BaseStorage
    data_dir: Path
    split_hash: str
    created: bool
    out_root: Path
    base: RunConfig | None = None  # the checked config of a representative trial
    scale: str = FULL  # the named scale every trial trains at
    overrides: dict[str, Any] = field(default_factory=dict)  # --set, parsed: every trial applies them
    device: str | None = None  # --device
    split: StudySplit | None = None  # the pairs and split computed at open time, reused by the trials
    need_bytes: int | None = None  # free space a trial needs (a checkpoint and its plots), once weighed
    budget_note: str | None = None  # how reopening the study changed its budget (run/create), in words

    def study_attrs(self) -> dict[str, Any]:
        """The study's user attributes, read now."""
        return self.storage.get_study_user_attrs(self.storage.get_study_id_from_name(self.study_name))

    def trial_context(self, **worker: Any) -> TrialContext:
        """What the trials of this study share (``worker``: the ``TrialContext`` fields of one worker, such as
        ``worker``, ``max_epochs``, ``artifact_store``, ``deadline``): the worker and the cost estimate build
        their trial configs from the same one."""
        return TrialContext(
            spec=self.spec,
            data_dir=self.data_dir,
            out_root=self.out_root,
            overrides=dict(self.overrides),
            device=self.device,
            scale=self.scale,
            split=self.split,
            **worker,
        )


def _file_spec(study: str, *, required: bool) -> StudySpec | None:
    """The spec ``study`` names as a file or shipped study; None when it can only name a stored study."""
    path = Path(study)
    if required or path.suffix in {".yaml", ".yml"} or path.exists() or study in builtin_studies():
        return load_study_spec(study)
    return None


def _study_name(
    storage: BaseStorage, opts: SearchOptions, file_spec: StudySpec | None, *, joining: bool
) -> str:
    if opts.study_name:
        return opts.study_name
    if file_spec is None or (joining and study_exists(storage, opts.study)):
        return opts.study  # a worker may name a stored study directly
    return file_spec.name


def _await_stored_spec(storage: BaseStorage, name: str, *, wait_s: float) -> tuple[optuna.Study, StudySpec]:
    study = optuna.load_study(study_name=name, storage=storage)
    deadline = time.monotonic() + wait_s
    while keys.SPEC not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)  # just created by another process, which stores the spec last
    return study, stored_spec(study)


def _create(
    storage: BaseStorage, name: str, opts: SearchOptions, spec: StudySpec | None, inputs: StudyInputs | None
) -> bool:
    """Create the study from its file; False when another process created it at the same moment."""
    if spec is None or inputs is None:
        raise ConfigError(
            f"study '{opts.study}' is not in storage '{mask_url(opts.storage)}' and is not a study file; "
            f"expected one of: {', '.join(builtin_studies())}, a path to a YAML file, or a stored study"
        )
    try:
        create_study(
            spec,
            storage,
            study_name=name,
            split_hash=inputs.split_hash,
            n_trials=opts.n_trials,
            scale=opts.scale or FULL,
        )
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def _resume(
    storage: BaseStorage, name: str, opts: SearchOptions, spec: StudySpec, inputs: StudyInputs, *, raced: bool
) -> str | None:
    """``run``/``create`` reopen their study: same scale, spec and split (else ``--force``), budget topped
    up; returns the budget note. ``raced``: another process created it just now (and stores the spec last)."""
    if raced:
        study, _ = _await_stored_spec(storage, name, wait_s=SPEC_WAIT_S)
    else:
        study = optuna.load_study(study_name=name, storage=storage)
    _check_scale(study, opts.scale or FULL, verb="resume")
    problems = _resume_problems(study, fingerprint=spec.fingerprint(), split_hash=inputs.split_hash)
    if problems and not opts.force:
        raise ConfigError(
            f"cannot resume study '{name}': {'; '.join(problems)}; use --study-name NEW to start a new "
            "study, or --force to resume anyway"
        )
    if problems:
        study.set_user_attr(keys.SPEC, spec.model_dump_json())
        _stamp(study, spec, inputs.split_hash, opts.scale or FULL)
    before = count_tickets(study)
    _top_up(study, spec, opts.n_trials)
    return _budget_note(before, count_tickets(study), opts.n_trials)


def _join(
    storage: BaseStorage,
    name: str,
    opts: SearchOptions,
    file_spec: StudySpec | None,
    inputs: StudyInputs | None,
) -> tuple[StudySpec, StudyInputs, str]:
    """A worker follows the spec and scale stored with the study; its data must give the stored split."""
    study, spec = _await_stored_spec(storage, name, wait_s=SPEC_WAIT_S)
    scale = stored_scale(study.user_attrs)
    if opts.scale is not None:
        _check_scale(study, opts.scale, verb="join")
    if inputs is None or spec != file_spec or (opts.scale or FULL) != scale:
        # The inputs were checked against the study file (or not at all): check them against the stored study.
        inputs = check_inputs(spec, dataclasses.replace(opts, scale=scale))
    problems = _resume_problems(
        study, fingerprint=None, split_hash=inputs.split_hash, data_dir=inputs.data_dir
    )
    if problems and not opts.force:
        raise ConfigError(
            f"cannot join study '{name}': {'; '.join(problems)}; point --data at the dataset the study was "
            "created with, or use --force"
        )
    return spec, inputs, scale


def _check_budget_options(opts: SearchOptions) -> None:
    if opts.n_trials is not None and opts.n_trials < 0:
        raise ConfigError(f"--n-trials must be >= 0 (got {opts.n_trials})")
    if opts.timeout is not None and not opts.timeout > 0:
        raise ConfigError(f"--timeout must be > 0 seconds (got {opts.timeout:g}); leave it out for no limit")


def open_study(opts: SearchOptions, *, joining: bool = False) -> PreparedStudy:
    """Open the study ``opts`` names: create it from its study file, resume it, or join it.

    The inputs are checked first, before any storage is opened. ``run`` and ``create`` own the study file:
    a new study is created from it (spec, split hash, scale, budget tickets); an existing one is resumed if
    it has the same scale, spec and data split (else ``--force``), and its budget is topped up to
    ``n_trials``. A worker (``joining``) may name a stored study directly, follows the spec and scale stored
    with it, never issues budget tickets, and checks the data split.
    """
    _check_budget_options(opts)
    spec = _file_spec(opts.study, required=not joining)
    inputs = check_inputs(spec, opts) if spec is not None else None  # before any storage is opened
    storage = make_storage(opts.storage, opts.storage_options)
    name = _study_name(storage, opts, spec, joining=joining)
    existed = study_exists(storage, name)
    created = not existed and _create(storage, name, opts, spec, inputs)
    scale, budget_note = opts.scale or FULL, None
    if joining and not created:
        spec, inputs, scale = _join(storage, name, opts, spec, inputs)
    elif not created:
        assert spec is not None and inputs is not None  # run/create always have a study file
        budget_note = _resume(storage, name, opts, spec, inputs, raced=not existed)
    assert spec is not None and inputs is not None
    return PreparedStudy(
        spec=spec,
        study_name=name,
        storage_url=opts.storage,
        storage=storage,
        data_dir=inputs.data_dir,
        split_hash=inputs.split_hash,
        created=created,
        out_root=opts.out_root / name,
        base=inputs.base,
        scale=scale,
        overrides=dict(opts.overrides),
        device=opts.device,
        split=inputs.split,
        budget_note=budget_note,
    )


def _budget_note(before: int, after: int, asked: int | None) -> str | None:
    """What reopening a study did to its budget, in words (None: nothing changed and nothing was asked)."""
    if after > before:
        return f"budget raised from {before} to {after} trials ({after - before} ticket(s) added)"
    if asked is not None and asked < before:
        return (
            f"--n-trials {asked} is below the {before} trials already budgeted; the budget stays {before} "
            "(a budget is never lowered)"
        )
    return None
