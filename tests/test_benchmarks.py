"""The benchmark scripts run end to end (smoke sizes) and write every figure the docs cite: they must not rot.

No speed is asserted; each figure must be present and a real measurement (finite, positive), shares must be
fractions, and the few facts that do not depend on speed (one gallery per trial, the fused CBAM's smaller
backward traffic) must hold.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CPU_FIGURES = [
    *(f"data.{k}" for k in ("cache_build_s", "pil_img_per_s", "cache_none_img_per_s", "cache_basic_img_per_s",
                            "cache_none_vs_pil", "cache_basic_vs_pil", "cache_basic_workers_wall_vs_pil",
                            "cache_read_vs_pil")),
    *(f"train.{k}" for k in ("fit_epoch_img_per_s", "naive_epoch_img_per_s", "fit_vs_naive", "fit_val_share",
                             "naive_val_share")),
    *(f"cbam.{k}" for k in ("unet_img_per_s", "fused_vs_unet", "plain_vs_unet",
                            "fused_module_backward_passes", "plain_module_backward_passes")),
    *(f"overhead.{k}" for k in ("median_share", "max_share", "median_trial_wall_s", "median_record_s",
                                "gallery_s_per_trial", "curves_s_per_trial", "val_prediction_s_per_trial",
                                "checkpoint_s_per_trial", "artifact_upload_s_per_trial")),
]
GPU_FIGURES = [  # --smoke: batches 2 and 4, no compile
    *(f"steps.{m}.b{b}.eager.{k}" for m in ("unet", "cbam_unet") for b in (2, 4)
      for k in ("img_per_s", "first_step_s")),
    "steps.cbam_unet_plain.b2.eager.img_per_s",
    "steps.cbam_unet.b2.eager.vs_unet",
    "steps.cbam_unet_plain.b2.eager.vs_unet",
    *(f"pipeline.eager.{s}.{k}" for s in ("preloaded", "device_batches", "dataloader")
      for k in ("img_per_s", "vs_preloaded")),
    "report.report_style_img_per_s",
    "report.cpu_cache_none_vs_pil",
    "report.cpu_cache_basic_vs_pil",
    *(f"trial.{k}" for k in ("trial_wall_s", "fit_wall_s", "overhead_share", "val_share_of_epoch",
                             "train_img_per_s")),
]


def _run(args: list[str], tmp_path: Path, result: str) -> dict:
    env = {**os.environ, "HPSEARCH_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, *args, "--out", str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads((tmp_path / result).read_text())


def _check_figures(figures: dict, expected: list[str]) -> None:
    missing = [k for k in expected if k not in figures]
    assert not missing, f"figures missing: {missing}"
    bad = {k: figures[k] for k in expected if not (isinstance(figures[k], (int, float))
                                                   and math.isfinite(figures[k]) and figures[k] > 0)}
    # A first step's one-time cost is a difference of two epoch times: at smoke sizes on a busy CPU it is
    # near zero and may come out slightly negative. Finite is all that can be asked of it here.
    bad = {k: v for k, v in bad.items() if not (k.endswith("first_step_s") and isinstance(v, float)
                                                and math.isfinite(v))}
    assert not bad, f"figures that are not finite positive numbers: {bad}"
    shares = {k: v for k, v in figures.items() if "share" in k}
    assert shares and all(0 < v < 1 for v in shares.values()), shares


def test_cpu_benchmark_quick_pass_measures_every_figure(tmp_path: Path) -> None:
    out = _run(["benchmarks/run.py", "--quick"], tmp_path, "cpu.json")
    fig = out["figures"]
    _check_figures(fig, CPU_FIGURES)
    assert fig["overhead.gallery_calls_per_trial"] == 1  # rendered once per trial, not per epoch
    assert fig["cbam.fused_module_backward_passes"] < fig["cbam.plain_module_backward_passes"]
    assert out["details"]["overhead"]["parts_missing"] == []
    md = (tmp_path / "cpu.md").read_text()
    assert all(f"## {s}" in md for s in ("data", "train", "cbam", "overhead")), md


def test_gpu_script_smoke_on_cpu_measures_every_figure(tmp_path: Path) -> None:
    out = _run(["benchmarks/gpu.py", "--smoke", "--device", "cpu", "--no-compile"], tmp_path, "gpu.json")
    assert out["errors"] == {}
    _check_figures(out["figures"], GPU_FIGURES)
    assert out["figures"]["pipeline.eager.preloaded.vs_preloaded"] == 1.0
    assert out["details"]["trial"]["trials"][0]["state"] == "COMPLETE"
    assert (tmp_path / "trial_curves.png").stat().st_size > 0
    md = (tmp_path / "gpu.md").read_text()
    assert all(f"## {s}" in md for s in ("steps", "pipeline", "report", "trial")), md


def test_laptop_benchmark_quick_pass_compares_fit_with_a_bare_loop(tmp_path: Path) -> None:
    out = _run(["benchmarks/laptop.py", "--quick"], tmp_path, "laptop.json")
    fig = out["figures"]
    _check_figures(fig, [f"laptop.{k}" for k in ("fit_img_per_s", "bare_img_per_s", "fit_vs_bare",
                                                 "epoch_s", "trial_25_epochs_min", "val_share")])
    from hpsearch.training.scale import SCALES

    laptop = SCALES.get("laptop")
    assert (fig["laptop.image_size"], fig["laptop.base_width"]) == (laptop.max_image_size, 64 // 4)
    assert fig["laptop.fit_vs_bare"] == fig["laptop.fit_img_per_s"] / fig["laptop.bare_img_per_s"]
    assert fig["laptop.trial_25_epochs_min"] == fig["laptop.epoch_s"] * 25 / 60


def test_gpu_script_orders_compiles_by_need_and_skips_them_past_the_budget(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu import step_cases

    cases = step_cases([16, 32, 8], compile_too=True)
    eager = [c for c in cases if not c[4]]
    compiled = [(c[0], c[3]) for c in cases if c[4]]
    assert cases[: len(eager)] == eager  # every eager case before the first compile
    # The targets' cases first: both models at the first two batch sizes; batch 8 and plain attention last.
    assert compiled[:4] == [("unet", 16), ("cbam_unet", 16), ("unet", 32), ("cbam_unet", 32)]
    assert set(compiled[4:]) == {("unet", 8), ("cbam_unet", 8), ("cbam_unet_plain", 16)}
    assert all(not c[4] for c in step_cases([16, 32, 8], compile_too=False))

    # A budget already spent: the eager cases are measured, every compile is recorded as skipped.
    out = _run(["benchmarks/gpu.py", "--smoke", "--device", "cpu", "--only", "steps", "--budget-s", "0"],
               tmp_path, "gpu.json")
    fig = out["figures"]
    assert fig["steps.unet.b2.eager.img_per_s"] > 0
    assert fig["steps.unet.b2.compiled.skipped"] == "budget"
    assert not any(k.endswith("compiled.img_per_s") for k in fig)


def test_gpu_script_records_a_failing_step_case_and_measures_the_rest(monkeypatch) -> None:
    # On a GPU, the compiled CBAM U-Net once ended in a non-finite loss; the cases after it must still run.
    import argparse
    from types import SimpleNamespace

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu

    def fake_rate(model, train, val, *, batch, steps, compiled, device):
        if model == "cbam_unet" and compiled:
            raise RuntimeError("non-finite training loss")
        return {"img_per_s": 100.0 + batch, "first_step_s": 1.0, "peak_mib": None}

    monkeypatch.setattr(gpu, "fit_rate", fake_rate)
    args = argparse.Namespace(smoke=False, batches=[16, 32], steps=2, no_compile=False, budget_s=1e9)
    res: dict = {"figures": {}, "errors": {}}
    bench = SimpleNamespace(args=args, res=res, fig=res["figures"], device="cpu", save=lambda: None,
                            batch=lambda n: [(n, n)], model=lambda name, fused=True: name)
    gpu.bench_steps(bench)
    assert set(res["errors"]) == {"steps.cbam_unet.b16.compiled", "steps.cbam_unet.b32.compiled",
                                  "steps.cbam_unet_plain.b16.compiled"}
    assert res["figures"]["steps.unet.b32.compiled.img_per_s"] == 132.0  # measured after the failure
    assert "steps.cbam_unet.b32.compiled.img_per_s" not in res["figures"]
