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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning

import hpsearch
from hpsearch.errors import ConfigError
from hpsearch.search import keys
from hpsearch.search.options import SearchOptions
from hpsearch.search.spec import StudySpec, builtin_studies, load_study_spec, parse_study
from hpsearch.search.storage import make_storage, mask_url, study_exists
from hpsearch.search.strategies import build_sampler, study_pruner
from hpsearch.training.config import RunConfig, resolve_run_config
from hpsearch.training.scale import FULL

SYNTH_N = 48
# How long a worker waits for the spec of a study that another worker created a moment ago.
SPEC_WAIT_S = 30.0
_MISSING = object()
_NO_DATA = (
    "no dataset given: pass --data DIR or set HPSEARCH_DATA to a folder with images/ and masks/; "
    "get Kvasir-SEG with `hpsearch data download --out data/` or make a synthetic set with "
    "`hpsearch data synth --out data/synth`"
)


# ------------------------------------------------------------------------------------------ the inputs
def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def validated_base(
    spec: StudySpec,
    *,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    max_epochs: int | None = None,
    scale: str | None = None,
) -> RunConfig:
    """The config every trial starts from (study ``fixed`` + ``--set`` + ``--device``, capped), checked now.

    Trials resolve their config with ``resolve_run_config``, which refuses a ``--set`` on a sampled path and
    ``--max-epochs`` on a study that samples ``train.epochs``. The same call runs here, before any storage is
    opened, with stand-ins for the sampled values (what the config already holds at those paths), so only
    those refusals can fail it and they fail before a study exists, not in every trial.
    """
    from hpsearch.training.validate import check_registry_names

    plain = resolve_run_config(
        spec.fixed, overrides=overrides, device=device, scale=scale, source="--set/--device/--scale"
    )
    check_registry_names(plain, source="--set/--device")
    tree = plain.model_dump(mode="json")
    # A sampled path missing from the config cannot be in ``overrides`` either (they are applied above).
    params = {path: value for path in spec.space if (value := _lookup(tree, path)) is not _MISSING}
    return resolve_run_config(
        plain,
        params=params,
        overrides=overrides,
        device=device,
        max_epochs=max_epochs,
        source=f"study '{spec.name}'",
    )


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
    for value in (data, base.data.path):
        if value:
            return Path(value).expanduser().resolve()
    if spec.synthetic:
        return synthetic_data_dir(size=max(64, base.data.image_size))
    raise ConfigError(_NO_DATA)


@dataclass(frozen=True)
class StudyInputs:
    """What a spec plus the options resolve to, checked: the base config, the data folder, its split."""

    base: RunConfig
    data_dir: Path
    split_hash: str


def check_inputs(spec: StudySpec, opts: SearchOptions) -> StudyInputs:
    """Validate overrides, caps and the dataset for ``spec`` (data errors abort here, before any trial)."""
    from hpsearch.data.splits import split_for

    base = validated_base(
        spec, overrides=opts.overrides, device=opts.device, max_epochs=opts.max_epochs, scale=opts.scale
    )
    data_dir = resolve_study_data(spec, opts.data, base)
    _, split = split_for(base.data, data_dir)
    return StudyInputs(base, data_dir, split.hash)


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


def stored_scale(attrs: dict[str, Any]) -> str:
    """The scale a study's trials train at (studies made before scales existed are full scale)."""
    return str(attrs.get(keys.SCALE, FULL))


def _resume_problems(
    study: optuna.Study,
    *,
    fingerprint: str | None,
    split_hash: str,
    data_dir: Path | None = None,
    scale: str | None = None,
) -> list[str]:
    """What differs between the stored study and the caller's spec, data and scale (None: not checked)."""
    attrs = study.user_attrs
    problems = []
    if scale is not None and stored_scale(attrs) != scale:
        problems.append(
            f"it trains at scale '{stored_scale(attrs)}', not '{scale}' (pass --scale {stored_scale(attrs)})"
        )
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


def create_or_load_study(
    spec: StudySpec,
    storage: Any,
    *,
    study_name: str | None = None,
    split_hash: str,
    n_trials: int | None = None,
    force: bool = False,
    create_only: bool = False,
    scale: str = FULL,
) -> tuple[optuna.Study, bool]:
    """Create the study (storing its spec) or resume it, checking space and data are unchanged.

    Returns ``(study, created)``. ``n_trials`` (or the spec's budget) sets the study's total number of trials;
    a resume with a larger number tops the budget up. With ``create_only`` an existing study raises
    ``DuplicatedStudyError`` instead (a worker joins it; only its creator issues the tickets).
    """
    name = study_name or spec.name
    pruner = study_pruner(spec)  # this handle prunes nothing: workers build theirs with the stored plan
    sampler = build_sampler(spec.sampler.name, spec.sampler.seed, spec.sampler.kwargs)
    created = not study_exists(storage, name)
    if create_only and not created:
        raise optuna.exceptions.DuplicatedStudyError(f"study '{name}' already exists")
    if created:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=spec.direction, sampler=sampler, pruner=pruner
        )
        _stamp(study, spec, split_hash, scale)
        study.set_user_attr(keys.VERSION, hpsearch.__version__)
        name_metric(study, spec.metric)  # optuna-dashboard then shows val_dice, not "Objective 0"
    else:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if stored_scale(study.user_attrs) != scale:
            # Not even with --force: trials at two scales in one study would not be comparable at all.
            raise ConfigError(
                f"cannot resume study '{name}' at scale '{scale}': its trials train at scale "
                f"'{stored_scale(study.user_attrs)}'; pass --scale {stored_scale(study.user_attrs)}, or "
                "--study-name NEW to start a study at this scale"
            )
        problems = _resume_problems(study, fingerprint=spec.fingerprint(), split_hash=split_hash)
        if problems and not force:
            raise ConfigError(
                f"cannot resume study '{name}': {'; '.join(problems)}; use --study-name NEW to start a new "
                "study, or --force to resume anyway"
            )
        if problems:
            study.set_user_attr(keys.SPEC, spec.model_dump_json())
            _stamp(study, spec, split_hash, scale)
            name_metric(study, spec.metric)
    budget = n_trials if n_trials is not None else spec.budget.n_trials
    if budget is not None:
        stored = int(study.user_attrs.get(keys.BUDGET_N_TRIALS, 0))
        study.set_user_attr(keys.BUDGET_N_TRIALS, max(budget, stored))
        _issue_tickets(study, spec, budget)
    if created:
        # Stored last: a worker joining a study created a moment ago waits for the spec (open_study), and then
        # finds the data hash, the budget and the tickets already in place.
        study.set_user_attr(keys.SPEC, spec.model_dump_json())
    return study, created


# ------------------------------------------------------------------------------------- the one way in
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
    base: RunConfig | None = None  # the checked config every trial starts from
    scale: str = FULL  # the named scale every trial trains at
    need_bytes: int | None = None  # free space a trial needs (a checkpoint and its plots), once weighed
    budget_note: str | None = None  # how reopening the study changed its budget (run/create), in words

    def study_attrs(self) -> dict[str, Any]:
        """The study's user attributes, read now."""
        return self.storage.get_study_user_attrs(self.storage.get_study_id_from_name(self.study_name))


def _file_spec(study: str, *, required: bool) -> StudySpec | None:
    """The spec ``study`` names as a file or shipped study; None when it can only name a stored study."""
    path = Path(study)
    if required or path.suffix in {".yaml", ".yml"} or path.exists() or study in builtin_studies():
        return load_study_spec(study)
    return None


def _study_name(storage: Any, opts: SearchOptions, file_spec: StudySpec | None, *, joining: bool) -> str:
    if opts.study_name:
        return opts.study_name
    if file_spec is None or (joining and study_exists(storage, opts.study)):
        return opts.study  # a worker may name a stored study directly
    return file_spec.name


def _await_stored_spec(storage: Any, name: str, *, wait_s: float) -> tuple[optuna.Study, StudySpec]:
    study = optuna.load_study(study_name=name, storage=storage)
    deadline = time.monotonic() + wait_s
    while keys.SPEC not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)  # just created by another process, which stores the spec last
    return study, stored_spec(study)


def _join(
    storage: Any, name: str, opts: SearchOptions, file_spec: StudySpec | None, inputs: StudyInputs | None
) -> tuple[StudySpec, StudyInputs, str]:
    """A worker follows the spec and scale stored with the study; its data must give the stored split."""
    study, spec = _await_stored_spec(storage, name, wait_s=SPEC_WAIT_S)
    scale = stored_scale(study.user_attrs)
    asked = opts.scale
    if inputs is None or spec != file_spec or (asked or FULL) != scale:
        inputs = check_inputs(spec, dataclasses.replace(opts, scale=scale))
    problems = _resume_problems(
        study, fingerprint=None, split_hash=inputs.split_hash, data_dir=inputs.data_dir, scale=asked
    )
    if problems and not opts.force:
        raise ConfigError(
            f"cannot join study '{name}': {'; '.join(problems)}; point --data at the dataset the study was "
            "created with (and leave --scale out: workers follow the study's), or use --force"
        )
    return spec, inputs, scale


def _create(
    storage: Any,
    name: str,
    opts: SearchOptions,
    spec: StudySpec | None,
    inputs: StudyInputs | None,
    scale: str,
) -> bool:
    """Create the study from its file; False when another process created it at the same moment."""
    if spec is None or inputs is None:
        raise ConfigError(
            f"study '{opts.study}' is not in storage '{mask_url(opts.storage)}' and is not a study file; "
            f"expected one of: {', '.join(builtin_studies())}, a path to a YAML file, or a stored study"
        )
    try:
        create_or_load_study(
            spec,
            storage,
            study_name=name,
            split_hash=inputs.split_hash,
            n_trials=opts.n_trials,
            create_only=True,
            scale=scale,
        )
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def open_study(opts: SearchOptions, *, joining: bool = False) -> PreparedStudy:
    """Open the study ``opts`` names, creating it from its study file when the storage does not have it yet.

    ``run`` and ``create`` own the study file: an existing study must have the same spec, data split and
    scale (else ``--force``), and its budget is topped up to ``n_trials``. A worker (``joining``) may name a
    stored study directly, follows the spec and scale stored with it, never issues budget tickets, and checks
    the data split.
    """
    if opts.n_trials is not None and opts.n_trials < 0:
        raise ConfigError(f"--n-trials must be >= 0 (got {opts.n_trials})")
    if opts.timeout is not None and not opts.timeout > 0:
        raise ConfigError(f"--timeout must be > 0 seconds (got {opts.timeout:g}); leave it out for no limit")
    spec = _file_spec(opts.study, required=not joining)
    inputs = check_inputs(spec, opts) if spec is not None else None  # before any storage is opened
    storage = make_storage(opts.storage, opts.storage_options)
    name = _study_name(storage, opts, spec, joining=joining)
    existed = study_exists(storage, name)
    scale = opts.scale or FULL
    created = not existed and _create(storage, name, opts, spec, inputs, scale)
    budget_note = None
    if joining and not created:
        spec, inputs, scale = _join(storage, name, opts, spec, inputs)
    elif not created:
        assert spec is not None and inputs is not None  # run/create always have a study file
        if not existed:  # another process won the race to create it, and stores the spec last
            _await_stored_spec(storage, name, wait_s=SPEC_WAIT_S)
        before = count_tickets(optuna.load_study(study_name=name, storage=storage))
        study, _ = create_or_load_study(
            spec,
            storage,
            study_name=name,
            split_hash=inputs.split_hash,
            n_trials=opts.n_trials,
            force=opts.force,
            scale=scale,
        )
        budget_note = _budget_note(before, count_tickets(study), opts.n_trials)
    assert spec is not None and inputs is not None
    out_root = opts.out_root / name
    prepared = PreparedStudy(
        spec,
        name,
        opts.storage,
        storage,
        inputs.data_dir,
        inputs.split_hash,
        created,
        out_root,
        inputs.base,
        scale,
    )
    prepared.budget_note = budget_note
    return prepared


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
