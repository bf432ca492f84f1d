"""docker/compose.yaml's topology without containers: its own commands, as local processes, on real Postgres.

The services' commands and environment are read from compose.yaml and .env.example (with compose's
``${VAR:-default}`` / ``${VAR:?message}`` interpolation), then only what is container-specific is mapped to
this machine: the ``postgres`` host becomes a throwaway database on the local server, the /data and /work
mounts become temporary folders, and the dashboard's port a free one on 127.0.0.1 (compose publishes it on
127.0.0.1 only). Then: init, the dashboard, 3 workers; the counts must come out right in the storage and
through the dashboard's HTTP API.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from pg import free_port, get_json, hpsearch, pg_database, start, stop, trials, wait_for
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres

DOCKER = Path(__file__).resolve().parents[1] / "docker"
TrialState = optuna.trial.TrialState
_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")  # "$$" is a literal "$"


def read_env_example() -> dict[str, str]:
    env = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation, on every string of a parsed document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        got = env.get(name)
        # With a colon, empty counts as unset (":-", ":?"); without one, only unset does ("-", "?").
        missing = not got if op and op.startswith(":") else got is None
        if op and op.endswith("-") and missing:
            return arg
        if op and op.endswith("?") and missing:
            raise KeyError(f"{name}: {arg}")
        return got or ""

    return _VAR.sub(sub, value)


def compose_services() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((DOCKER / "compose.yaml").read_text())  # safe_load resolves the << merge keys
    return interpolate(doc, read_env_example())["services"]


def local_env(service: dict[str, Any], storage: str, tmp_path: Path, data: Path) -> dict[str, str]:
    """The service's environment with the container-only parts mapped to this machine."""
    env = {k: str(v) for k, v in service["environment"].items()}
    url = make_url(env["HPSEARCH_STORAGE"])
    # The compose URL must point at the compose postgres service, with the driver hpsearch ships.
    assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "postgres", 5432), url
    env["HPSEARCH_STORAGE"] = storage
    mounts = {"/data": data, "/work/artifacts": tmp_path / "artifacts", "/work/runs": tmp_path / "runs"}
    for key, value in env.items():
        if value in mounts:
            env[key] = str(mounts[value])
    assert env["HPSEARCH_DATA"] == str(data), "the dataset is not the /data mount"
    return env


def run_service(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    saved = dict(os.environ)
    os.environ.update(env)
    try:  # start() copies os.environ into the child
        return start(hpsearch(*cmd), log)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.subprocess
def test_compose_topology_runs_as_local_processes_against_real_postgres(
    tmp_path: Path, synth_data: Path
) -> None:
    services = compose_services()
    assert services["worker"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    study = read_env_example()["HPSEARCH_STUDY"]
    budget = yaml.safe_load((DOCKER.parent / "studies" / f"{study}.yaml").read_text())["budget"]["n_trials"]
    port = free_port()
    dash_cmd = [str(c) for c in services["dashboard"]["command"]]
    assert dash_cmd[:3] == ["dashboard", "--host", "0.0.0.0"] and dash_cmd[-2:] == ["--port", "8080"]
    dash_cmd = ["dashboard", "--host", "127.0.0.1", "--port", str(port)]

    with pg_database() as url:
        env = {name: local_env(services[name], url, tmp_path, synth_data) for name in ("init", "worker")}
        env["dashboard"] = local_env(services["dashboard"], url, tmp_path, synth_data)
        procs: list[subprocess.Popen] = []
        try:
            init = run_service(services["init"]["command"], env["init"], tmp_path / "init.log")
            procs.append(init)
            assert init.wait(timeout=120) == 0, (tmp_path / "init.log").read_text()
            waiting = [t for t in trials(url, study) if t.state == TrialState.WAITING]
            assert len(waiting) == budget  # the init service issued the whole budget, ran nothing

            dash = run_service(dash_cmd, env["dashboard"], tmp_path / "dashboard.log")
            procs.append(dash)
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: get_json(f"{base}/api/meta"), 60, "the dashboard to answer")

            workers = [
                run_service(services["worker"]["command"], env["worker"], tmp_path / f"worker{i}.log")
                for i in range(3)
            ]
            procs += workers
            for w in workers:
                w.wait(timeout=300)
            logs = "\n".join((tmp_path / f"worker{i}.log").read_text() for i in range(3))
            assert [w.returncode for w in workers] == [0, 0, 0], logs

            final = trials(url, study)
            assert sorted(t.number for t in final) == list(range(budget))
            assert {t.state for t in final} <= {TrialState.COMPLETE, TrialState.PRUNED}, logs
            assert all(t.value is not None for t in final if t.state == TrialState.COMPLETE)
            assert any(t.state == TrialState.COMPLETE for t in final)

            # The dashboard serves the same study with the same trials.
            [summary] = [s for s in get_json(f"{base}/api/studies")["study_summaries"]
                         if s["study_name"] == study]
            detail = get_json(f"{base}/api/studies/{summary['study_id']}?after=0")
            assert sorted(t["number"] for t in detail["trials"]) == list(range(budget))
            assert {t["state"] for t in detail["trials"]} <= {"Complete", "Pruned"}

            # `docker compose up` again re-runs init: it must neither fail nor add trials.
            again = run_service(services["init"]["command"], env["init"], tmp_path / "init2.log")
            procs.append(again)
            assert again.wait(timeout=120) == 0, (tmp_path / "init2.log").read_text()
            assert len(trials(url, study)) == budget
        finally:
            stop(procs)
    assert (tmp_path / "artifacts").is_dir()  # workers wrote artifacts to the shared-volume path


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}/${EMPTY-d}/$${LITERAL}", env) == "x/d/d//${LITERAL}"
    with pytest.raises(KeyError, match="UNSET: set it"):
        interpolate("${UNSET:?set it}", env)
    with pytest.raises(KeyError, match="EMPTY"):
        interpolate("${EMPTY:?must not be empty}", env)
    assert interpolate(["a ${SET}", {"k": "${SET}"}, 3], env) == ["a x", {"k": "x"}, 3]
