"""A study's length plan: how long its trials may train and where the pruner looks (successive halving).

For a study with a ``resource`` section (``StudySpec.resource``) the training length is the pruner's
resource: every trial is set to train to the *top length*, and successive halving stops most of them at the
rungs ``min_rung * reduction_factor**k`` below it. The top length follows the budget:

- ``--max-epochs N``: the top is N (capped at the study's ``train.epochs``);
- ``--timeout S``: the top is the longest rung ladder that still lets ``min_top_trials`` trials reach it,
  and ``min_configs`` configurations be evaluated, in S seconds at the measured epoch cost, found by
  replaying the search on synthetic curves with the study's own pruner (``hpsearch.search.simulate``);
- neither: the study's ``train.epochs`` (100 for ``lr_batch``, the report's longest).

The plan is decided once, when the study first runs, and stored with the study (``keys.LENGTH_PLAN``), so
every worker, every resume and the report use the same rungs: trials on different rungs would not compare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hpsearch.search import keys
from hpsearch.search.simulate import predict
from hpsearch.search.strategies import build_pruner

SOURCE_STUDY = "study"
SOURCE_MAX_EPOCHS = "--max-epochs"
SOURCE_TIMEOUT = "--timeout"


class ResourceSpec(BaseModel):
    """The training length as the pruner's resource (successive halving over epochs).

    Only for a study whose schedule does not depend on the length (a constant learning rate), where a short
    run is the start of a long one. Every trial is set to train to the *top length*; the pruner stops most of
    them at geometric rungs ``min_rung * reduction_factor**k`` below it. The top length is the study's
    ``train.epochs`` unless a time budget (``--timeout``) or ``--max-epochs`` makes it shorter
    (``budget_plan``, ``default_plan``).
    """

    model_config = ConfigDict(extra="forbid")

    min_epochs: int = Field(default=2, ge=1, description="the first rung is never shorter than this")
    reduction_factor: int = Field(default=3, ge=2, description="rungs grow, and survivors shrink, by this")
    min_top_trials: int = Field(
        default=4, ge=1, description="a budget-sized top length lets at least this many trials reach it"
    )
    min_configs: int = Field(
        default=20, ge=1, description="a budget-sized top length lets at least this many configurations run"
    )
    final_epochs: int | None = Field(
        default=None,
        ge=1,
        description="the length worth training the export for (default: the study's train.epochs); an "
        "export of a search that ran shorter carries this length",
    )
    final_schedule: str | None = Field(
        default=None,
        description="the learning-rate schedule (a name in SCHEDULERS, not 'none') an export lengthened to "
        "final_epochs trains with, in place of the search's constant one; None keeps the constant one",
    )


@dataclass(frozen=True)
class LengthPlan:
    """The top length, the first rung and the growth factor of a study's successive halving."""

    top: int  # epochs every trial is set to train (the last one is never pruned)
    min_rung: int  # the first epoch at which the pruner compares trials
    reduction_factor: int
    final: int  # the length worth training the export for (>= top)
    source: str  # what decided the top: the study, --max-epochs or --timeout
    # The schedule of the export's retrain at the final length, where the search's was constant (None: keep
    # it constant). Last and with a default, so a plan stored before it existed still loads.
    final_schedule: str | None = None

    def rungs(self) -> list[int]:
        """The epochs below the top at which the pruner compares trials."""
        out, r = [], self.min_rung
        while r < self.top:
            out.append(r)
            r *= self.reduction_factor
        return out

    def pruner_kwargs(self, pruner: str) -> dict[str, Any]:
        """The options of ``pruner`` that the plan decides."""
        kwargs: dict[str, Any] = {"min_resource": self.min_rung, "reduction_factor": self.reduction_factor}
        if pruner == "hyperband":
            kwargs["max_resource"] = self.top
        return kwargs

    def describe(self) -> str:
        """'top 27 epochs (sized to --timeout), rungs at 3, 9'."""
        rungs = ", ".join(map(str, self.rungs())) or "none (the top is the first rung)"
        return f"top {self.top} epochs (from {self.source}), pruner rungs at epochs {rungs}"

    def final_scheduler(self, searched: str, searched_epochs: int) -> str:
        """The schedule an export trains with: ``final_schedule`` where the search trained a constant
        learning rate (``searched`` 'none') for fewer epochs than the final length, else the searched one."""
        if self.final_schedule and searched == "none" and self.final > searched_epochs:
            return self.final_schedule
        return searched

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def ladder(top: int, resource: ResourceSpec) -> LengthPlan:
    """The plan for a given top length: as many rungs as fit below it with the first >= ``min_epochs``.

    The first rung is ``ceil(top / eta**K)`` for the largest such K, so ``min_rung * eta**K >= top``: the
    rungs are the K epochs ``min_rung * eta**k`` (k < K) below the top, none of them just short of it.
    """
    eta, rung = resource.reduction_factor, top
    for k in range(1, 16):
        r = math.ceil(top / eta**k)
        if r < resource.min_epochs or r >= top:
            break
        rung = r
    return LengthPlan(
        top=top,
        min_rung=rung,
        reduction_factor=eta,
        final=max(top, resource.final_epochs or top),
        source=SOURCE_STUDY,
        final_schedule=resource.final_schedule,
    )


def _with(plan: LengthPlan, *, source: str, final: int) -> LengthPlan:
    return replace(plan, final=max(plan.top, final), source=source)


def stored_plan(attrs: dict[str, Any]) -> LengthPlan | None:
    """The plan stored with a study (None: not decided yet, or not a resource study)."""
    raw = attrs.get(keys.LENGTH_PLAN)
    if not raw:
        return None
    return LengthPlan(**json.loads(raw))


def default_plan(resource: ResourceSpec, study_epochs: int, max_epochs: int | None = None) -> LengthPlan:
    """The plan without a time budget: the study's length, or ``--max-epochs`` when shorter."""
    final = resource.final_epochs or study_epochs
    if max_epochs is not None and max_epochs < study_epochs:
        return _with(ladder(max_epochs, resource), source=SOURCE_MAX_EPOCHS, final=final)
    return _with(ladder(study_epochs, resource), source=SOURCE_STUDY, final=final)


def candidate_tops(resource: ResourceSpec, cap: int) -> list[int]:
    """Top lengths that are a whole rung ladder (``r * eta**k`` with min_epochs <= r < eta * min_epochs),
    ascending, up to ``cap`` (which is always a candidate)."""
    eta, m, tops = resource.reduction_factor, resource.min_epochs, {cap}
    for k in range(1, 16):
        tops.update(r * eta**k for r in range(m, eta * m) if r * eta**k <= cap)
    return sorted(tops)


def budget_plan(
    resource: ResourceSpec,
    *,
    pruner_name: str,
    pruner_kwargs: dict[str, Any],
    study_epochs: int,
    budget_s: float,
    s_per_epoch: Sequence[float],
    trial_overhead_s: float = 0.0,
) -> LengthPlan:
    """The longest top length (up to the study's) at which ``min_top_trials`` trials reach the top and
    ``min_configs`` configurations are evaluated within ``budget_s``, in nearly every replay of the search
    with the study's pruner on synthetic curves (the shortest candidate when none passes)."""
    final = resource.final_epochs or study_epochs
    tops = candidate_tops(resource, study_epochs)
    chosen = ladder(tops[0], resource)
    for top in tops:
        plan = ladder(top, resource)
        pred = predict(
            pruner_factory=lambda p=plan: build_pruner(
                pruner_name, {**pruner_kwargs, **p.pruner_kwargs(pruner_name)}
            ),
            s_per_epoch=s_per_epoch,
            epochs=top,
            budget_s=budget_s,
            trial_overhead_s=trial_overhead_s,
            repeats=7,
            max_trials=400,
            enough=(resource.min_top_trials, resource.min_configs),
        )
        # Robustly: in (nearly) every replay, not just the median one. Not monotone in the top (a longer
        # top can gain a rung and prune more), so every candidate is tried and the longest passing one wins.
        if pred.top_range[0] >= resource.min_top_trials and pred.configs_range[0] >= resource.min_configs:
            chosen = plan
    return _with(chosen, source=SOURCE_TIMEOUT, final=final)
