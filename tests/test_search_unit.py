"""The search room's parts one at a time, on in-memory Optuna studies (no storage, no training): sampling,
the pruning callback, config precedence and refusals, study specs, samplers and pruners, and the study
lifecycle on real storages."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from hpsearch.errors import ConfigError
from hpsearch.search import keys
from hpsearch.search.objective import PruningCallback, record_partial
from hpsearch.search.space import representative_params, suggest
from hpsearch.search.spec import StudySpec, builtin_studies, parse_study
from hpsearch.search.strategies import build_pruner, build_sampler
from hpsearch.training.config import resolve_run_config

TrialState = optuna.trial.TrialState
SEARCH = Path(__file__).resolve().parents[1] / "hpsearch" / "search"
CLI = SEARCH.parent / "cli"

SPACE = {
    "name": "unit",
    "space": {
        "train.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "train.batch_size": {"type": "int", "low": 4, "high": 16, "step": 4},
        "train.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "train.momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"train.optimizer": "sgd"}},
    },
}


# ------------------------------------------------------------------------------------------- sampling
def test_suggest_asks_for_every_parameter_with_its_distribution() -> None:
    spec = parse_study(SPACE, source="unit")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, spec.space)
        assert 1e-4 <= values["train.lr"] <= 1e-1
        assert values["train.batch_size"] in (4, 8, 12, 16)
        assert values["train.optimizer"] in ("adam", "sgd")
        dists = trial.distributions
        assert isinstance(dists["train.lr"], optuna.distributions.FloatDistribution) and dists["train.lr"].log
        assert dists["train.batch_size"].step == 4
        study.tell(trial, 0.5)


def test_a_conditional_parameter_is_sampled_only_when_its_condition_holds() -> None:
    spec = parse_study(SPACE, source="unit")
    study = optuna.create_study()
    study.enqueue_trial({"train.optimizer": "sgd", "train.momentum": 0.8})
    study.enqueue_trial({"train.optimizer": "adam"})
    sgd, adam = study.ask(), study.ask()
    assert suggest(sgd, spec.space)["train.momentum"] == 0.8
    values = suggest(adam, spec.space)
    assert "train.momentum" not in values and "train.momentum" not in adam.params


# ------------------------------------------------------------------------------------ pruning callback
def _epochs(cb: PruningCallback, dice: list[float]) -> None:
    for epoch, value in enumerate(dice, 1):
        cb(epoch, {"epoch": float(epoch), "val_dice": value, "val_iou": value / 2})


def test_the_pruner_sees_the_running_best_which_is_what_the_objective_returns() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    first = study.ask()
    cb = PruningCallback(first, "val_dice")
    _epochs(cb, [0.5, 0.6, 0.55])
    assert study.trials[0].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.6}
    study.tell(first, cb.best)  # the objective's value: the best epoch's Dice
    assert study.trials[0].value == max(study.trials[0].intermediate_values.values())

    # Epoch 2 dips below the median of epoch 2 (0.6), but the best so far (0.7) does not: not pruned. Had
    # the epoch's own value been reported, this trial would have been pruned on a dip.
    dipping = study.ask()
    seen: list[int] = []
    cb = PruningCallback(dipping, "val_dice", on_epoch=lambda epoch, _: seen.append(epoch))
    _epochs(cb, [0.7, 0.4])
    assert study.trials[1].intermediate_values == {1: 0.7, 2: 0.7} and seen == [1, 2]
    study.tell(dipping, cb.best)

    worse = study.ask()
    cb = PruningCallback(worse, "val_dice")
    with pytest.raises(optuna.TrialPruned, match=r"pruned at epoch 1 with best val_dice=0\.3000"):
        _epochs(cb, [0.3, 0.9])
    study.tell(worse, state=TrialState.PRUNED)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]


def test_the_callback_reports_the_studys_metric_and_follows_its_direction() -> None:
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    cb = PruningCallback(trial, "val_iou", direction="minimize")
    _epochs(cb, [0.4, 0.2, 0.8])
    assert study.trials[0].intermediate_values == {1: 0.2, 2: 0.1, 3: 0.1}
    assert cb.best == 0.1 and len(cb.history) == 3


@pytest.mark.parametrize(("metric", "epoch"), [("val_dice", 2), ("val_iou", 3)])
def test_a_pruned_trials_record_picks_its_best_epoch_by_the_studys_metric(metric: str, epoch: int) -> None:
    history = [
        {"epoch": 1.0, "val_dice": 0.5, "val_iou": 0.30},
        {"epoch": 2.0, "val_dice": 0.7, "val_iou": 0.40},
        {"epoch": 3.0, "val_dice": 0.6, "val_iou": 0.45},
    ]
    trial = optuna.create_study().ask()
    record_partial(trial, history, metric=metric, direction="maximize", started=0.0, key=keys.PRUNE_REASON,
                   reason="pruned")
    attrs = trial.user_attrs
    row = history[epoch - 1]
    assert attrs[keys.BEST_EPOCH] == epoch
    assert (attrs[keys.BEST_VAL_DICE], attrs[keys.BEST_VAL_IOU]) == (row["val_dice"], row["val_iou"])
    assert attrs[keys.EPOCHS_RUN] == 3 and attrs[keys.HISTORY] == history and attrs[keys.PRUNE_REASON]


# ---------------------------------------------------------------------------------- config precedence
def test_each_layer_beats_the_one_below() -> None:
    base = {"train": {"lr": 0.1, "batch_size": 4, "device": "cpu", "seed": 3}, "data": {"path": "/base"}}
    assert resolve_run_config(base).train.lr == 0.1  # base beats the default (1e-3)
    assert resolve_run_config(base).train.optimizer == "adam"  # untouched: the default
    cfg = resolve_run_config(
        base,
        params={"train.lr": 0.2, "train.weight_decay": 0.01},
        overrides={"train.batch_size": 16, "train.device": "cuda"},
        device="mps",
        data_path="/cli",
        seed=7,
    )
    assert cfg.train.lr == 0.2 and cfg.train.weight_decay == 0.01  # sampled beats base and default
    assert cfg.train.batch_size == 16  # --set beats base
    assert cfg.train.device == "mps"  # --device beats --set
    assert (cfg.data.path, cfg.train.seed) == ("/cli", 7)  # explicit options beat base


def test_the_cap_lowers_epochs_and_a_warmup_that_no_longer_fits() -> None:
    base = {"train": {"epochs": 10, "warmup_epochs": 5, "scheduler": "cosine"}}
    capped = resolve_run_config(base, max_epochs=3)
    assert (capped.train.epochs, capped.train.warmup_epochs) == (3, 2)
    assert resolve_run_config(base, max_epochs=20).train.epochs == 10  # a cap never raises the count
    assert resolve_run_config(base, overrides={"train.epochs": 8}, max_epochs=6).train.epochs == 6


def test_a_set_on_a_sampled_path_and_a_cap_on_sampled_epochs_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"--set train\.lr would replace what the search samples"):
        resolve_run_config({}, params={"train.lr": 0.1}, overrides={"train.lr": 0.2})
    with pytest.raises(ConfigError, match=r"--max-epochs 2 would cap the training length"):
        resolve_run_config({}, params={"train.epochs": 5}, max_epochs=2)


def _smoke(extra_space: dict[str, Any] | None = None) -> StudySpec:
    data = yaml.safe_load(builtin_studies()["smoke"].read_text())
    data["space"].update(extra_space or {})
    return parse_study(data, source="smoke")


def test_preparation_refuses_what_every_trial_would_refuse_and_returns_the_capped_base() -> None:
    from hpsearch.search.lifecycle import TrialContext, validated_base
    from hpsearch.search.objective import build_trial_config

    smoke = _smoke()
    base = validated_base(smoke, overrides={"train.weight_decay": 1e-4}, device="cpu", max_epochs=2)
    assert (base.train.epochs, base.train.weight_decay, base.train.device) == (2, 1e-4, "cpu")
    # It is the representative trial's config, resolved as a trial resolves its own.
    overrides = {"train.weight_decay": 1e-4}
    ctx = TrialContext(
        spec=smoke, data_dir=Path("d"), out_root=Path("o"), overrides=overrides, device="cpu", max_epochs=2
    )
    trial = build_trial_config(ctx, representative_params(smoke.space), None)
    assert base.model_dump(exclude={"data": {"path"}}) == trial.model_dump(exclude={"data": {"path"}})
    assert base.train.lr == pytest.approx((1e-4 * 3e-1) ** 0.5) and base.train.monitor == "val_dice"
    with pytest.raises(ConfigError, match=r"study 'smoke': --set train\.batch_size would replace"):
        validated_base(smoke, overrides={"train.batch_size": 8})
    with pytest.raises(ConfigError, match=r"study 'smoke': field 'train.weight_decay'"):
        validated_base(smoke, overrides={"train.weight_decay": "heavy"})
    searching = _smoke({"train.epochs": {"type": "int", "low": 1, "high": 3}})
    with pytest.raises(ConfigError, match=r"--max-epochs 1 would cap the training length, which this study"):
        validated_base(searching, max_epochs=1)
    assert validated_base(searching).train.epochs == 2  # without a cap the study is fine (the middle length)


# ---------------------------------------------------------------------------- study specs, strategies
@pytest.mark.parametrize("metric", ["val_dice", "val_iou"])
def test_minimizing_a_metric_where_higher_is_better_is_refused_at_load(metric: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_study({"name": "x", "metric": metric, "direction": "minimize"}, source="studies/x.yaml")
    msg = str(err.value)
    assert "studies/x.yaml" in msg and "'direction'" in msg and metric in msg and "maximize" in msg
    assert parse_study({"name": "x", "metric": metric, "direction": "maximize"}, source="x").metric == metric


def test_samplers_and_pruners_are_built_by_name_with_checked_options() -> None:
    def first_values(sampler: optuna.samplers.BaseSampler) -> list[float]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=5)
        return [t.params["x"] for t in study.trials]

    tpe = build_sampler("tpe", 11, {"n_startup_trials": 4})
    assert isinstance(tpe, optuna.samplers.TPESampler)
    # The option and the seed reached it: 4 random start-up trials (the seed's stream), then TPE's own pick.
    tpe_values, random_values = first_values(tpe), first_values(optuna.samplers.RandomSampler(seed=11))
    assert tpe_values[:4] == random_values[:4] and tpe_values[4] != random_values[4]
    assert isinstance(build_pruner("median", {"n_warmup_steps": 1}), optuna.pruners.MedianPruner)
    with pytest.raises(ConfigError, match=r"option\(s\) n_startup_trial for sampler 'tpe'.*n_startup_trials"):
        build_sampler("tpe", 0, {"n_startup_trial": 4})
    with pytest.raises(ConfigError, match=r"unknown pruner 'meadian'; expected one of: .*median"):
        build_pruner("meadian", {})
    with pytest.raises(ConfigError, match=r"option\(s\) patience for pruner 'none'; valid options: none"):
        build_pruner("none", {"patience": 3})
    with pytest.raises(ConfigError, match="set sampler.seed instead"):
        build_sampler("random", 0, {"seed": 1})


def test_a_typo_in_a_study_files_sampler_options_names_the_field() -> None:
    data = {"name": "x", "sampler": {"name": "tpe", "kwargs": {"n_startup": 3}}}
    with pytest.raises(ConfigError, match=r"x\.yaml: field 'sampler': unknown option\(s\) n_startup"):
        parse_study(data, source="x.yaml")


# ------------------------------------------------------------------------------------- the lifecycle
def _options(url: str, study: str | Path, data: Path, **kw: Any) -> Any:
    from hpsearch.search.options import SearchOptions

    return SearchOptions(study=str(study), storage=url, data=data, **kw)


def test_open_study_creates_resumes_tops_up_and_lets_a_worker_join_by_name(
    shared_storage_url: str, tmp_path: Path, synth_data: Path
) -> None:
    from pg import write_study

    from hpsearch.search.lifecycle import count_tickets, open_study

    study_file = write_study(tmp_path)  # "dist", budget 3
    first = open_study(_options(shared_storage_url, study_file, synth_data))
    study = optuna.load_study(study_name="dist", storage=first.storage)
    attrs = study.user_attrs
    assert first.created and json.loads(attrs[keys.SPEC])["name"] == "dist"
    assert attrs[keys.SPEC_FINGERPRINT] == first.spec.fingerprint()
    assert attrs[keys.DATA_SPLIT_HASH] == first.split_hash and attrs[keys.BUDGET_N_TRIALS] == 3
    assert count_tickets(study) == 3 and first.out_root.name == "dist"

    again = open_study(_options(shared_storage_url, study_file, synth_data, n_trials=4))
    assert not again.created and count_tickets(study) == 4  # topped up by one ticket
    # A worker names the stored study (no such file or shipped study): spec from storage, no new ticket.
    joined = open_study(_options(shared_storage_url, "dist", synth_data, n_trials=9), joining=True)
    assert not joined.created and joined.spec == first.spec and count_tickets(study) == 4
    with pytest.raises(ConfigError, match="'nope' is not in storage"):
        open_study(_options(shared_storage_url, "nope", synth_data), joining=True)


def test_open_study_refuses_a_changed_spec_or_data_unless_forced(
    shared_storage_url: str, tmp_path: Path, synth_data: Path
) -> None:
    from pg import write_study

    from hpsearch.search.lifecycle import open_study

    open_study(_options(shared_storage_url, write_study(tmp_path), synth_data))
    changed = write_study(tmp_path, pruner={"name": "median"})
    with pytest.raises(ConfigError, match=r"cannot resume study 'dist': the search space.*--force"):
        open_study(_options(shared_storage_url, changed, synth_data))
    fewer = tmp_path / "fewer"
    (fewer / "images").mkdir(parents=True)
    (fewer / "masks").mkdir()
    for sub in ("images", "masks"):
        for p in sorted((synth_data / sub).iterdir())[:20]:
            (fewer / sub / p.name).write_bytes(p.read_bytes())
    with pytest.raises(ConfigError, match=r"cannot join study 'dist': the data split changed .* data at"):
        open_study(_options(shared_storage_url, "dist", fewer), joining=True)
    assert open_study(_options(shared_storage_url, "dist", fewer, force=True), joining=True).data_dir == fewer


# ---------------------------------------------------------------------------------------- house rules
def _sources(*folders: Path) -> list[Path]:
    skip = {"keys.py", "studies.py", "service.py"}  # the constants themselves, and re-export shims
    return [p for folder in folders for p in sorted(folder.glob("*.py")) if p.name not in skip]


def _bare_attr_keys(path: Path) -> list[str]:
    """String literals used as attribute keys: set_*_attr("x", ...), user_attrs["x"], user_attrs.get("x")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in {"set_user_attr", "set_system_attr"} and node.args:
                key = node.args[0]
            elif name in {"set_trial_user_attr", "set_trial_system_attr", "set_study_user_attr"}:
                key = node.args[1] if len(node.args) > 1 else None
            elif name == "get" and isinstance(node.func.value, ast.Attribute) and node.args:
                key = node.args[0] if node.func.value.attr in {"user_attrs", "system_attrs"} else None
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            key = node.slice if node.value.attr in {"user_attrs", "system_attrs"} else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append(f"{path.name}:{node.lineno} {key.value!r}")
    return found


def test_attribute_keys_are_named_constants_in_search_and_cli() -> None:
    bare = [hit for path in _sources(SEARCH, CLI) for hit in _bare_attr_keys(path)]
    assert not bare, f"use hpsearch.search.keys instead of: {bare}"


def test_only_the_cli_reads_the_environment() -> None:
    readers = []
    for path in _sources(SEARCH):
        tree = ast.parse(path.read_text())
        # Handing a copy of the environment to a child process, dict(os.environ), is not reading a setting.
        copied = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
            for arg in node.args
        }
        readers += [
            f"{path.name}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}
            if id(node) not in copied
        ]
    assert not readers, f"the library must take these settings as arguments: {readers}"
