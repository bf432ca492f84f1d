"""Studies as data: the validated form of ``studies/*.yaml``.

A study file names a search space in Optuna's vocabulary (dotted paths into the run config), fixed settings,
the sampler and pruner, the metric and direction, the budget, and optional trials to enqueue first.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hpsearch.errors import ConfigError
from hpsearch.search.plan import LengthPlan, ResourceSpec, default_plan
from hpsearch.search.strategies import build_pruner, build_sampler
from hpsearch.training.config import (
    format_validation_error,
    parse_run_config,
    read_yaml,
    resolve_run_config,
)
from hpsearch.training.metric_table import DEFAULT_METRIC, METRICS, Direction, MetricName

# The top-level studies/ folder, reached through the hpsearch/builtin_studies link so that it also ships in
# the wheel (setuptools copies the files the link points to).
STUDIES_DIR = Path(__file__).resolve().parents[1] / "builtin_studies"

_Scalar = bool | int | float | str | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ParamBase(_Strict):
    when: dict[str, _Scalar] | None = Field(
        default=None,
        description="sample this parameter only when earlier parameters have these values",
    )


class FloatParam(_ParamBase):
    """A float in [low, high], optionally log-scaled or stepped."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("a parameter cannot have both log and step")
        return self


class IntParam(_ParamBase):
    """An integer in [low, high], optionally log-scaled, with a step."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("log scale needs low > 0 and step 1")
        return self


class CategoricalParam(_ParamBase):
    """One of a list of choices (scalars only, as Optuna stores them)."""

    type: Literal["categorical"]
    choices: list[_Scalar]

    @field_validator("choices")
    @classmethod
    def _non_empty(cls, v: list[_Scalar]) -> list[_Scalar]:
        if not v:
            raise ValueError("choices must not be empty")
        if len(set(map(repr, v))) != len(v):
            raise ValueError(f"choices must be unique (got {v})")
        return v


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class SamplerSpec(_Strict):
    name: str = "tpe"
    seed: int = 0
    kwargs: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Strict):
    name: str = "median"
    kwargs: dict[str, Any] = Field(default_factory=dict)


# Pruner options a ``resource`` section sets from the study's plan (they depend on the budget).
PLANNED_PRUNER_KWARGS = ("min_resource", "max_resource", "reduction_factor")
RESOURCE_PRUNERS = ("successive_halving", "hyperband")


class BudgetSpec(_Strict):
    n_trials: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)


class StudySpec(_Strict):
    """A validated study file."""

    name: str
    description: str = ""
    metric: MetricName = DEFAULT_METRIC
    direction: Direction = "maximize"  # must agree with the metric's (METRICS)
    space: dict[str, Param] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    resource: ResourceSpec | None = Field(
        default=None, description="the training length is the pruner's resource (see ResourceSpec)"
    )
    seed: int = 0
    enqueue: list[dict[str, _Scalar]] = Field(default_factory=list)
    synthetic: bool = Field(default=False, description="runs on `hpsearch data synth` data when no --data")

    def run_base(self) -> dict[str, Any]:
        """The study's fixed part, monitoring the study's metric (the kept epoch is the one the study ranks):
        the base layer of every trial's config and of the config checked before a study opens."""
        base = copy.deepcopy(self.fixed)
        base.setdefault("train", {})["monitor"] = self.metric
        return base

    def fingerprint(self) -> str:
        """Hash of what defines the objective: space, fixed settings, metric, sampler and pruner."""
        fields = {"space", "fixed", "metric", "direction", "sampler", "pruner"}
        # ``resource`` joins the hash only where set, so a study stored before it existed still resumes.
        # ``resource.final_schedule`` only shapes the export, not a trial, so it stays out: setting it
        # later does not make a stored study refuse to resume.
        core = self.model_dump(
            mode="json",
            include=fields | ({"resource"} if self.resource else set()),
            exclude={"resource": {"final_schedule"}},
        )
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def _check_direction(spec: StudySpec, source: str) -> None:
    goal = METRICS[spec.metric].direction
    if spec.direction != goal:
        raise ConfigError(
            f"{source}: field 'direction': '{spec.direction}' contradicts metric '{spec.metric}' (higher is "
            f"better); use direction: {goal}"
        )


def _check_space_values(spec: StudySpec, source: str) -> None:
    """Every sampled path must land in the run config with both ends of its range (or every choice)."""
    from hpsearch.training.validate import check_registry_names

    base = parse_run_config(spec.fixed, source=f"{source}: fixed")
    for path, param in spec.space.items():
        samples = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
        for value in samples:
            try:
                params = {**(param.when or {}), path: value}
                cfg = resolve_run_config(base, params=params, source=f"{source}: space.{path}")
            except ConfigError as exc:
                raise ConfigError(f"{exc} (search-space parameter '{path}' = {value!r})") from None
            check_registry_names(cfg, source=f"{source}: space.{path}")


def _check_resource(spec: StudySpec, source: str) -> None:
    """A ``resource`` section owns the training length and the pruner's rungs; nothing else may set them."""
    if spec.resource is None:
        return
    where = f"{source}: field 'resource'"
    if "train.epochs" in spec.space or "train.warmup_epochs" in spec.space:
        raise ConfigError(
            f"{where}: the training length is the pruner's resource here, so it cannot also be searched; "
            "remove train.epochs / train.warmup_epochs from `space`"
        )
    if spec.pruner.name not in RESOURCE_PRUNERS:
        raise ConfigError(
            f"{where}: needs a pruner that stops trials at rungs ({', '.join(RESOURCE_PRUNERS)}), got "
            f"'{spec.pruner.name}'"
        )
    final = spec.resource.final_schedule
    if final is not None:
        from hpsearch.training.optim import SCHEDULERS

        if final == "none" or final not in SCHEDULERS:
            choices = ", ".join(n for n in SCHEDULERS.names() if n != "none")
            raise ConfigError(
                f"{where}: final_schedule '{final}' is not a schedule that anneals; expected one of "
                f"{choices}, or leave final_schedule out to retrain the export at the search's constant rate"
            )
    planned = sorted(set(spec.pruner.kwargs) & set(PLANNED_PRUNER_KWARGS))
    if planned:
        raise ConfigError(
            f"{source}: field 'pruner.kwargs': {planned} are set from the study's plan (resource section and "
            "budget); remove them, or set resource.min_epochs / resource.reduction_factor"
        )


def _validate_semantics(spec: StudySpec, source: str) -> None:
    """The direction fits the metric, every path lands in the run config, and names are registered."""
    from hpsearch.training.validate import check_registry_names

    _check_direction(spec, source)
    _check_resource(spec, source)
    _check_space_values(spec, source)
    names = list(spec.space)
    for i, (path, param) in enumerate(spec.space.items()):
        for dep, val in (param.when or {}).items():
            if dep not in names[:i]:
                raise ConfigError(
                    f"{source}: field 'space.{path}.when': '{dep}' must be a parameter listed before '{path}'"
                )
            dep_param = spec.space[dep]
            if isinstance(dep_param, CategoricalParam) and val not in dep_param.choices:
                raise ConfigError(
                    f"{source}: field 'space.{path}.when': {val!r} is not a choice of '{dep}' "
                    f"({dep_param.choices})"
                )
    for i, row in enumerate(spec.enqueue):
        unknown = sorted(set(row) - set(spec.space))
        if unknown:
            raise ConfigError(f"{source}: field 'enqueue.{i}': {unknown} are not in the search space")
    check_registry_names(parse_run_config(spec.fixed, source=source), source=f"{source}: fixed")
    for field, build in (
        ("sampler", lambda: build_sampler(spec.sampler.name, spec.sampler.seed, spec.sampler.kwargs)),
        ("pruner", lambda: study_pruner(spec)),
    ):
        try:
            build()
        except ConfigError as exc:
            raise ConfigError(f"{source}: field '{field}': {exc}") from None


def study_epochs(spec: StudySpec, overrides: dict[str, Any] | None = None) -> int:
    """The study's own training length (``fixed`` and ``--set``, before any cap): its top without a budget."""
    return resolve_run_config(spec.fixed, overrides=overrides, source="--set").train.epochs


def study_pruner(spec: StudySpec, plan: LengthPlan | None = None) -> optuna.pruners.BasePruner:
    """The pruner of a study: its own kwargs, plus the rungs of its length plan for a resource study
    (``plan=None``: the plan without a budget, from the study's own length)."""
    kwargs = dict(spec.pruner.kwargs)
    if spec.resource is not None:
        if plan is None:
            plan = default_plan(spec.resource, parse_run_config(spec.fixed).train.epochs)
        kwargs.update(plan.pruner_kwargs(spec.pruner.name))
    return build_pruner(spec.pruner.name, kwargs)


def parse_study(data: dict[str, Any], source: str) -> StudySpec:
    """Validate a study mapping; errors name ``source`` and the field."""
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    _validate_semantics(spec, source)
    return spec


def builtin_studies() -> dict[str, Path]:
    """Shipped study files by name."""
    return {p.stem: p for p in sorted(STUDIES_DIR.glob("*.yaml"))}


def load_study_spec(name_or_path: str) -> StudySpec:
    """Load a shipped study by name, or a user's YAML by path."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or p.exists():
        return parse_study(read_yaml(p), source=str(p))
    known = builtin_studies()
    if name_or_path not in known:
        raise ConfigError(
            f"unknown study '{name_or_path}'; expected one of: {', '.join(known)} or a path to a YAML file"
        )
    return parse_study(read_yaml(known[name_or_path]), source=str(known[name_or_path]))
