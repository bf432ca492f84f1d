"""The benchmark scripts run end to end (smoke sizes) and write complete results: they must not rot.

No speed is asserted here; ratios are only checked to be real measurements (finite, positive).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPSEARCH_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_cpu_benchmark_quick_pass_writes_every_section(tmp_path: Path) -> None:
    args = ["benchmarks/run.py", "--quick", "--only", "data", "overhead", "--out", str(tmp_path)]
    res = _run(args, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads((tmp_path / "cpu.json").read_text())
    rows = {r["pipeline"]: r for r in out["data"]["rows"]}
    base = rows[out["data"]["baseline"]]
    assert base["ratio"] == 1.0 and _positive(base["img_per_s"])
    assert all(_positive(r["img_per_s"]) and _positive(r["ratio"]) for r in rows.values())
    trials = out["overhead"]["current"]["trials"]
    assert trials and all("overhead_share" in t for t in trials), trials
    assert all(0 < t["overhead_share"] < 1 for t in trials)
    assert "| measurement |" in (tmp_path / "cpu.md").read_text()


def test_gpu_script_smoke_on_cpu_measures_every_section(tmp_path: Path) -> None:
    res = _run(["benchmarks/gpu.py", "--smoke", "--device", "cpu", "--no-compile", "--out", str(tmp_path)],
               tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads((tmp_path / "gpu.json").read_text())
    assert out["errors"] == {}
    assert {r["model"] for r in out["steps"]["rows"]} >= {"unet", "cbam_unet fused", "cbam_unet plain"}
    assert all(_positive(r["img_per_s"]) for r in out["steps"]["rows"])
    sources = [r["source"] for r in out["pipeline"]["rows"]]
    assert any("DeviceBatches" in s for s in sources) and any("DataLoader" in s for s in sources)
    assert out["trial"]["state"] == "COMPLETE" and _positive(out["trial"]["trial_wall_s"])
    assert (tmp_path / "gpu.md").stat().st_size > 0
