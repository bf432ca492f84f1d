"""A bounded soak: N workers on one study for a set time, a random one SIGKILLed every minute and restarted.

At the end every worker gets Ctrl-C (SIGINT), the trials of the last killed workers are failed as stale (as
the next worker would), and the study is audited:

- budget exact: the tickets issued equal the budget (no kill, retry or restart issued a new one);
- nothing counted twice: no ticket (a trial plus its retries) finished (COMPLETE or PRUNED) more than once;
- every FAIL retried: each failed trial has a later retry of the same ticket (else its ticket is lost);
- nothing lost: every ticket is finished or waiting to run, and no trial is left RUNNING.

    python benchmarks/soak.py --out soak-out       # both storages, 8 workers, 20 min each
    python benchmarks/soak.py --out soak-out --storage sqlite --minutes 2 --workers 4   # a short check

PostgreSQL: a fresh database ``hpsearch_soak_<hex>`` is made through ``--pg-admin`` (default: the local
server's ``test`` database, user postgres) and dropped afterwards. Trials are tiny (synthetic 64x64 data, a
width-8 U-Net, 2 epochs of 2 steps): the soak measures the distributed machinery, not training.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from common import hardware

STUDY = {
    "name": "soak",
    "description": "tiny study for the soak benchmark",
    "synthetic": True,
    "metric": "val_dice",
    "direction": "maximize",
    "space": {
        "train.lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-1, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [4, 8]},
    },
    "fixed": {
        "model": {"name": "unet", "kwargs": {"base_width": 8, "depth": 2}},
        "train": {
            "epochs": 2,
            "optimizer": "adam",
            "loss": "bce_dice",
            "gallery_k": 0,
            "max_steps_per_epoch": 2,
        },
        "data": {
            "image_size": 64,
            "augmentation": "none",
            "num_workers": 0,
            "val_fraction": 0.2,
            "test_fraction": 0.15,
        },
    },
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
}
FINISHED = ("COMPLETE", "PRUNED")


class Fleet:
    """The worker processes, each in its own session so a signal reaches it (and only it)."""

    def __init__(self, cmd: list[str], n: int, logs: Path) -> None:
        self.cmd, self.logs = cmd, logs
        self.procs: dict[int, subprocess.Popen] = {}
        self.starts = Counter()
        self.exits: list[
            tuple[int, int]
        ] = []  # (worker index, exit code) of workers that ended by themselves
        for i in range(n):
            self.start(i)

    def start(self, i: int) -> None:
        self.starts[i] += 1
        log = open(self.logs / f"w{i}-{self.starts[i]}.log", "w")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.procs[i] = subprocess.Popen(
            [*self.cmd, "--worker-index", str(i)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        log.close()

    def reap(self) -> None:
        """Note workers that ended on their own (an error, or the budget spent before a top-up) and start
        them again, so the fleet stays at N; their exit codes are reported."""
        for i, p in list(self.procs.items()):
            if p.poll() is not None:
                self.exits.append((i, p.returncode))
                self.start(i)

    def kill_one(self, rng: random.Random) -> int | None:
        if not self.procs:
            return None
        i = rng.choice(sorted(self.procs))
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait()
        self.start(i)
        return i

    def interrupt_all(self, timeout: float = 120.0) -> list[int]:
        for p in self.procs.values():
            os.killpg(p.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        codes = []
        for p in self.procs.values():
            try:
                codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                codes.append(p.wait())
        return codes


def audit(url: str, budget: int, grace: int) -> dict[str, Any]:
    """Fail what the last kills left RUNNING (as the next worker would), then check the study's books."""
    import optuna

    from hpsearch.search import keys
    from hpsearch.search.lifecycle import count_tickets
    from hpsearch.search.storage import StorageOptions, make_storage

    storage = make_storage(url, StorageOptions(heartbeat_interval=1, grace_period=grace))
    study = optuna.load_study(study_name="soak", storage=storage)
    time.sleep(grace + 2)
    with warnings.catch_warnings():  # experimental since optuna 2.9; the version is pinned
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    by_ticket: dict[int, list[Any]] = {}
    for t in trials:
        by_ticket.setdefault(t.system_attrs.get(keys.FAILED_TRIAL, t.number), []).append(t)
    double = [root for root, ts in by_ticket.items() if sum(t.state.name in FINISHED for t in ts) > 1]
    numbers = {root: {t.number for t in ts} for root, ts in by_ticket.items()}
    unretried = [
        t.number
        for t in trials
        if t.state.name == "FAIL"
        and not any(n > t.number for n in numbers[t.system_attrs.get(keys.FAILED_TRIAL, t.number)])
    ]
    finished = sum(any(t.state.name in FINISHED for t in ts) for ts in by_ticket.values())
    waiting = sum(
        not any(t.state.name in FINISHED for t in ts) and any(t.state.name == "WAITING" for t in ts)
        for ts in by_ticket.values()
    )
    reasons = Counter(
        (t.user_attrs.get(keys.FAIL_REASON) or "heartbeat stale (killed)")[:40]
        for t in trials
        if t.state.name == "FAIL"
    )
    tickets = count_tickets(study)
    storage.engine.dispose()
    return {
        "budget": budget,
        "tickets": tickets,
        "trials": len(trials),
        "states": dict(states),
        "tickets_finished": finished,
        "tickets_waiting": waiting,
        "retries": sum(keys.FAILED_TRIAL in t.system_attrs for t in trials),
        "fail_reasons": dict(reasons),
        "double_counted": double,
        "fail_not_retried": unretried,
        "tickets_lost": budget - finished - waiting,
        "running_left": states.get("RUNNING", 0),
        "ok": tickets == budget
        and not double
        and not unretried
        and finished + waiting == budget
        and states.get("RUNNING", 0) == 0,
    }


def _create(url: str, study_file: Path, data: Path, budget: int) -> None:
    """``hpsearch create`` (or a top-up of the budget): the operator's own command, run as they would."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpsearch",
            "create",
            "--study",
            str(study_file),
            "--storage",
            url,
            "--data",
            str(data),
            "--n-trials",
            str(budget),
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(f"create --n-trials {budget} failed: {res.stdout}{res.stderr}")


def _waiting(url: str) -> int:
    import optuna
    from sqlalchemy.pool import NullPool

    storage = optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": NullPool})
    try:
        study_id = storage.get_study_id_from_name("soak")
        return storage.get_n_trials(study_id, state=optuna.trial.TrialState.WAITING)
    finally:
        storage.engine.dispose()


def soak(url: str, args: argparse.Namespace, out: Path, data: Path) -> dict[str, Any]:
    """Create the study, run the fleet with kills for ``args.minutes``, stop it, audit.

    The budget starts at ``args.budget`` tickets and is topped up by as many (``hpsearch create --n-trials``,
    as an operator would) whenever fewer than four per worker wait, so the workers never run dry and no
    storage holds thousands of idle tickets. The audit checks the tickets against the final budget.
    """
    study_file = out / "soak.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    hp = [sys.executable, "-m", "hpsearch"]
    budget, top_ups = args.budget, 0
    _create(url, study_file, data, budget)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    cmd = [
        *hp,
        "worker",
        "--study",
        "soak",
        "--storage",
        url,
        "--data",
        str(data),
        "--out",
        str(out / "runs"),
        "--quiet",
        "--heartbeat",
        "1",
        "--grace",
        str(args.grace),
        "--set",
        "train.gallery_k=0",
    ]
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    fleet = Fleet(cmd, args.workers, logs)
    kills: list[int] = []
    next_kill = t0 + args.kill_every
    next_look = t0
    while time.monotonic() - t0 < args.minutes * 60 and fleet.procs:
        time.sleep(1.0)
        fleet.reap()
        if time.monotonic() >= next_look:
            next_look += 3.0
            if _waiting(url) < 4 * args.workers:
                budget += args.budget
                top_ups += 1
                _create(url, study_file, data, budget)
        if time.monotonic() >= next_kill:
            victim = fleet.kill_one(rng)
            if victim is not None:
                kills.append(victim)
            next_kill += args.kill_every
    wall = time.monotonic() - t0
    interrupt_codes = fleet.interrupt_all()
    result = audit(url, budget, args.grace)
    result.update(
        minutes=round(wall / 60, 2),
        workers=args.workers,
        kills=len(kills),
        top_ups=top_ups,
        worker_starts=sum(fleet.starts.values()),
        self_exits=fleet.exits,
        exit_codes_after_ctrl_c=dict(Counter(interrupt_codes)),
    )
    return result


def _pg_database(admin: str) -> tuple[str, Any]:
    """A fresh database on the server behind ``admin``; returns its URL and a function that drops it."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"hpsearch_soak_{secrets.token_hex(4)}"
    u = make_url(admin)
    dsn = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return u.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=20.0, help="per storage")
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between SIGKILLs")
    ap.add_argument("--budget", type=int, default=100, help="tickets at the start, and each top-up")
    ap.add_argument(
        "--grace", type=int, default=30, help="seconds without a heartbeat before a trial is stale"
    )
    ap.add_argument("--seed", type=int, default=0, help="which workers get killed")
    ap.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    from hpsearch.data.synth import make_synthetic

    args.out.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(args.out / "data", n=24, size=64, seed=0)
    results: dict[str, Any] = {"hardware": hardware(), "args": {k: str(v) for k, v in vars(args).items()}}
    for kind in ["sqlite", "postgres"] if args.storage == "both" else [args.storage]:
        out = args.out / kind
        out.mkdir(exist_ok=True)
        if kind == "sqlite":
            results[kind] = soak(f"sqlite:///{out / 'soak.db'}", args, out, data)
        else:
            url, drop = _pg_database(args.pg_admin)
            try:
                results[kind] = soak(url, args, out, data)
            finally:
                drop()
        r = results[kind]
        print(
            f"{kind}: {r['minutes']} min, {r['workers']} workers, {r['kills']} kills, {r['trials']} trials "
            f"{r['states']}, {r['retries']} retries, tickets {r['tickets']}/{r['budget']} "
            f"(finished {r['tickets_finished']}, waiting {r['tickets_waiting']}, lost {r['tickets_lost']}), "
            f"double counted {len(r['double_counted'])}, FAIL not retried {len(r['fail_not_retried'])}, "
            f"RUNNING left {r['running_left']}: {'OK' if r['ok'] else 'PROBLEM'}",
            flush=True,
        )
    (args.out / "soak.json").write_text(json.dumps(results, indent=2))
    sys.exit(0 if all(results[k]["ok"] for k in ("sqlite", "postgres") if k in results) else 1)


if __name__ == "__main__":
    main()
