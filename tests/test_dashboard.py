"""Tests for the dashboard: a real optuna-dashboard process serving a tiny study and its artifact."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.artifacts import upload_artifact
from pg import free_port, get_json
from pg import http_get as get
from PIL import Image

from hpsearch.cli.flags import ARTIFACTS_ENV
from hpsearch.errors import ConfigError, StorageError
from hpsearch.results.dashboard import (
    dashboard_url,
    exposure_warning,
    is_loopback,
    name_metric,
    name_stored_metrics,
    serve_dashboard,
)
from hpsearch.search import keys
from hpsearch.search.storage import artifact_store, make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

STARTUP_TIMEOUT_S = 30.0


@dataclass
class Served:
    base: str
    port: int
    study_name: str
    trial_number: int
    artifact_id: str
    png: bytes


def dashboard_process(url: str, port: int, log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """``serve_dashboard`` in a child process, as the CLI would run it; output goes to a file so a full pipe
    can never block the server."""
    args = ", ".join(f"{k}={v!r}" for k, v in {"port": port, **kwargs}.items())
    code = f"from hpsearch.results.dashboard import serve_dashboard; serve_dashboard({url!r}, {args})"
    env = {k: v for k, v in os.environ.items() if k != ARTIFACTS_ENV}
    with log.open("wb") as fh:
        return subprocess.Popen([sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One dashboard process for the module, on a study with a trial that has a PNG artifact."""
    tmp_path = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    study = optuna.create_study(storage=url, study_name="dash-study", direction="maximize")
    # An hpsearch study whose objective has no name yet: serving it must name it by the spec's metric.
    study.set_user_attr(keys.SPEC, json.dumps({"name": "dash-study", "metric": "val_iou"}))
    png_path = tmp_path / "gallery.png"
    Image.new("RGB", (8, 6), (200, 30, 30)).save(png_path)
    # As in objective.py: the artifact is uploaded while the trial runs (a finished trial can't take it).
    trial = study.ask()
    trial.suggest_float("train.lr", 1e-5, 1e-2, log=True)
    trial.report(0.5, 1)
    trial.report(0.8, 2)
    trial.set_user_attr("best_val_dice", 0.8)
    artifact_id = upload_artifact(
        # The workers' default store, beside the SQLite file; the server is given no --artifacts and
        # must find the same folder.
        artifact_store=artifact_store(url, tmp_path / "dash-artifacts"),
        file_path=str(png_path),
        study_or_trial=trial,
        mimetype="image/png",
    )
    study.tell(trial, 0.8)
    for _ in range(3):  # budget tickets, as `hpsearch create` makes them: not trials a person should see
        study.enqueue_trial({"train.lr": 1e-3}, skip_if_exists=False)
    port = free_port()
    log = tmp_path / "dashboard.log"
    proc = dashboard_process(url, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited with {proc.returncode}:\n{log.read_text()}")
            try:
                get(f"{base}/api/meta", timeout=1.0)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"dashboard did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")
                time.sleep(0.2)
        yield Served(base, port, "dash-study", trial.number, artifact_id, png_path.read_bytes())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_serves_study_trials_and_artifacts(served: Served) -> None:
    meta = get_json(f"{served.base}/api/meta")
    assert meta["artifact_is_available"] is True  # the artifact store was passed through

    studies = get_json(f"{served.base}/api/studies")["study_summaries"]
    [summary] = [s for s in studies if s["study_name"] == served.study_name]
    study_id = summary["study_id"]

    detail = get_json(f"{served.base}/api/studies/{study_id}?after=0")
    assert detail["objective_names"] == ["val_iou"]  # the stored metric, not "Objective 0"
    [trial] = detail["trials"]  # the one that ran; the WAITING tickets stay out of sight
    assert trial["number"] == served.trial_number and trial["state"] == "Complete"
    assert [p["name"] for p in trial["params"]] == ["train.lr"]
    assert [v["value"] for v in trial["intermediate_values"]] == [0.5, 0.8]
    [artifact] = trial["artifacts"]
    assert artifact["artifact_id"] == served.artifact_id
    assert artifact["filename"] == "gallery.png" and artifact["mimetype"] == "image/png"

    status, headers, body = get(
        f"{served.base}/artifacts/{study_id}/{trial['trial_id']}/{served.artifact_id}"
    )
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == served.png and body[:8] == b"\x89PNG\r\n\x1a\n"

    status, _, page = get(f"{served.base}/dashboard")
    assert status == 200 and b"<html" in page.lower()


def test_dashboard_binds_loopback_only(served: Served) -> None:
    # The fixture passes no host: the default must answer on loopback and nowhere else.
    socket.create_connection(("127.0.0.1", served.port), timeout=2).close()
    others = ["127.0.0.2"]  # Linux routes all of 127/8 to lo, but a socket bound to 127.0.0.1 is not on it
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only picks the outgoing address
            others.append(s.getsockname()[0])
    except OSError:
        pass  # no network interface besides loopback
    for addr in others:
        if addr == "127.0.0.1":
            continue
        with pytest.raises(OSError):
            socket.create_connection((addr, served.port), timeout=2).close()


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    optuna.create_study(storage=url, study_name="busy")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        log = tmp_path / "busy.log"
        proc = dashboard_process(url, port, log)
        try:
            rc = proc.wait(timeout=STARTUP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the dashboard started on a port that was in use")
    assert rc != 0
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in log.read_text()


def test_missing_sqlite_file_is_an_error_not_a_new_database(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    with pytest.raises(StorageError, match="does not exist"):
        serve_dashboard(f"sqlite:///{db}", port=free_port())
    assert not db.exists()


def test_urls_and_exposure_warning() -> None:
    assert dashboard_url("127.0.0.1", 8080) == "http://127.0.0.1:8080/dashboard"
    assert dashboard_url("0.0.0.0", 9000) == "http://127.0.0.1:9000/dashboard"
    assert dashboard_url("::", 8080) == "http://[::1]:8080/dashboard"
    assert dashboard_url("::1", 8080) == "http://[::1]:8080/dashboard"
    assert dashboard_url("myhost", 1) == "http://myhost:1/dashboard"
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert is_loopback(host) and exposure_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.10", "myhost.example"):
        assert not is_loopback(host)
        assert "no login" in (exposure_warning(host) or "")


def test_name_metric_is_read_back_and_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'names.db'}"
    study = optuna.create_study(storage=url, study_name="named", direction="maximize")
    assert study.metric_names is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # optuna's experimental warning must not reach the user
        assert name_metric(study, "val_dice") is True
        assert name_metric(study, "val_dice") is False  # already named: nothing written
    assert optuna.load_study(study_name="named", storage=url).metric_names == ["val_dice"]
    assert name_metric(study, "val_iou") is True  # a changed metric is renamed
    assert study.metric_names == ["val_iou"]


def test_name_metric_refuses_a_multi_objective_study() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ConfigError, match="2 objectives"):
        name_metric(study, "val_dice")
    assert study.metric_names is None


def test_name_stored_metrics_names_hpsearch_studies_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    ours = optuna.create_study(storage=url, study_name="ours", direction="minimize")
    ours.set_user_attr(keys.SPEC, json.dumps({"name": "ours", "metric": "val_loss"}))
    no_metric = optuna.create_study(storage=url, study_name="old", direction="maximize")
    no_metric.set_user_attr(keys.SPEC, json.dumps({"name": "old"}))  # a spec from before `metric` existed
    optuna.create_study(storage=url, study_name="foreign")  # made by someone else: left alone
    storage = make_storage(url)
    assert sorted(name_stored_metrics(storage)) == ["old", "ours"]
    assert name_stored_metrics(storage) == []  # second pass: nothing left to write
    names = {s.study_name: s.system_attrs.get("study:metric_names") for s in storage.get_all_studies()}
    assert names == {"ours": ["val_loss"], "old": ["val_dice"], "foreign": None}
