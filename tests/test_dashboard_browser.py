"""The dashboard as a person sees it: a real study run by the CLI, served by optuna-dashboard, rendered by a
headless Chromium. The trial page must show the gallery image and the trial's note; the study page must name
the objective by the study's metric. Skipped where no Chromium is installed (Debian: `apt-get install
chromium`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
from pathlib import Path

import optuna
import pytest
import yaml
from pg import free_port, http_get
from test_dashboard import dashboard_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)"),
]

STUDY = {
    "name": "shown",
    "description": "one tiny trial for the browser",
    "metric": "val_dice",
    "direction": "maximize",
    "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    "fixed": {
        "model": {"name": "unet", "kwargs": {"base_width": 4, "depth": 2}},
        "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "max_steps_per_epoch": 2, "gallery_k": 2},
        "data": {"image_size": 64, "augmentation": "none", "val_fraction": 0.2, "test_fraction": 0.1},
    },
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "budget": {"n_trials": 1},
}


def render(url: str) -> str:
    """The DOM after the page's scripts ran (the dashboard is a single-page app)."""
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope="module")
def served_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path, invoke):
    root = tmp_path_factory.mktemp("browser")
    study_file = root / "shown.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    url = f"sqlite:///{root / 'b.db'}"
    res = invoke("run", "--study", study_file, "--data", synth_data, "--storage", url, "--out", root / "runs",
                 "--no-estimate")
    assert res.exit_code == 0, res.output
    port = free_port()
    proc = dashboard_process(url, port, root / "dashboard.log")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http_get(f"{base}/api/meta", timeout=1.0)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                log = (root / "dashboard.log").read_text()
                assert proc.poll() is None and time.monotonic() < deadline, log
                time.sleep(0.2)
        study = optuna.load_study(study_name="shown", storage=url)
        # The dashboard's URLs name a study by its storage id.
        yield base, study, optuna.storages.get_storage(url).get_study_id_from_name("shown")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_trial_page_shows_the_gallery_and_the_note(served_run) -> None:
    base, study, study_id = served_run
    trial = study.trials[0]
    dom = render(f"{base}/dashboard/studies/{study_id}/trials?numbers={trial.number}")
    assert 'alt="val_worst.png"' in dom and "/artifacts/" in dom, "no gallery image on the trial page"
    assert "COMPLETE" in dom and "best val_dice" in dom and f"ran {2}/2 epochs" in dom, "no trial note"
    assert "train.lr=" in dom  # the note names what set this trial apart


def test_the_study_page_names_the_objective_by_the_metric(served_run) -> None:
    base, _, study_id = served_run
    dom = render(f"{base}/dashboard/studies/{study_id}")
    assert "val_dice" in dom and "Objective 0" not in dom
