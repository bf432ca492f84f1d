"""``report.md`` from the report's numbers (a ``build_report`` dict plus its ``plots`` entry).

Pure text: nothing here reads the storage, so the Markdown can be regenerated from ``report.json``.
Each section is one helper returning its lines.
"""

from __future__ import annotations

import math
from typing import Any

# The seed-style table the report leads with; tests and readers look for this exact header.
PARAMETER_TABLE_HEADER = "| Hyperparameter | Range tested | Optimal value |"


def format_seconds(s: float | None) -> str:
    """'45.2 s', '12m 05s', '3h 07m'."""
    if s is None or not math.isfinite(s):
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"


def _num(v: Any, spec: str = ".4f", unit: str = "") -> str:
    """A number with an optional unit, or a dash when the trial did not record it."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "—"
    return format(v, spec) + (f" {unit}" if unit else "")


def _cell(text: Any) -> str:
    """Markdown table cells must not contain a bare pipe."""
    return str(text).replace("|", "\\|")


def _or_dash(v: Any) -> str:
    return "—" if v is None else str(v)


def _hardware_text(hw: dict[str, Any] | None) -> str:
    if not hw:
        return "not recorded (no trial has started)"
    parts = [str(hw.get("device") or "")]
    if hw.get("cpu"):
        parts.append(f"CPU {hw['cpu']} ({hw.get('cores')} cores)")
    if hw.get("gpu"):
        parts.append(str(hw["gpu"]))
    return "; ".join(p for p in parts if p)


def _header(data: dict[str, Any]) -> list[str]:
    return [
        f"# hpsearch report: {data['study']}",
        "",
        f"- **Objective:** {data['direction']} `{data['metric']}` (best validation value of each trial)",
        f"- **Scale:** {data.get('scale', 'full')}; **hardware:** {_hardware_text(data.get('hardware'))}",
        f"- **Storage:** `{data['storage']}`",
        f"- **Generated:** {data['generated']} (UTC)",
        f"- **hpsearch version:** {data['hpsearch_version'] or '—'}; "
        f"**data split:** `{str(data['data_split_hash'] or '—')[:12]}`; "
        f"**budget:** {_num(data['budget_n_trials'], 'd', 'trials')}",
        "",
    ]


def _parameters(data: dict[str, Any]) -> list[str]:
    out = ["## Hyperparameters", "", PARAMETER_TABLE_HEADER, "|---|---|---|"]
    out += [
        f"| `{_cell(r['name'])}` | {_cell(r['range'])} | {_cell(r['optimal'])} |" for r in data["parameters"]
    ]
    if not data["parameters"]:
        out.append("| — | — | — |")
    out.append("")
    best = data["best"]
    if best is None:
        return [*out, "No trial has completed yet, so there is no optimal value.", ""]
    return [
        *out,
        f"Optimal values are those of trial {best['number']} ({data['metric']} = {best['value']:.4f}); "
        "`hpsearch export` writes its full config.",
        "",
    ]


def _best_trial(best: dict[str, Any] | None) -> list[str]:
    if best is None:
        return []
    return [
        "## Best trial",
        "",
        "| Metric | Value |",
        "|---|---|",
        f"| Trial | {best['number']} |",
        f"| Val Dice | {_num(best['best_val_dice'])} |",
        f"| Val IoU | {_num(best['best_val_iou'])} |",
        f"| Best epoch | {_or_dash(best['best_epoch'])} |",
        f"| Epochs run | {_or_dash(best['epochs_run'])} |",
        f"| Fit time | {format_seconds(best['wall_time_s'])} |",
        f"| Trial time (incl. overhead) | {format_seconds(best['trial_wall_s'])} |",
        f"| Throughput | {_num(best['train_img_per_s'], '.1f', 'train img/s')} |",
        f"| Device | {_cell(best['device'] or '—')} |",
        f"| Peak memory | {_num(best['peak_memory_mb'], ',.0f', 'MB')} |",
        "",
    ]


def _counts(counts: dict[str, int]) -> list[str]:
    out = ["## Trials", "", "| State | Trials |", "|---|---|"]
    out += [f"| {s} | {n} |" for s, n in counts.items() if s != "total"]
    return [*out, f"| **total** | **{counts['total']}** |", ""]


def _compute_time(time: dict[str, Any]) -> list[str]:
    out = ["## Compute time", "", "| State | Trials | Compute time | Share |", "|---|---|---|---|"]
    for state, row in time["by_state"].items():
        share = f"{row['share']:.1%}" if row["share"] is not None else "—"
        out.append(f"| {state} | {row['trials']} | {format_seconds(row['seconds'])} | {share} |")
    out += [f"| **total** | | **{format_seconds(time['total_s'])}** | |", ""]
    if time["pruned_share"] is not None:
        out += [
            f"Pruned trials used {time['pruned_share']:.1%} of the compute. Times are each trial's own wall "
            "time (`trial_wall_s`), summed over workers.",
            "",
        ]
    return out


def _threshold_row(row: dict[str, Any]) -> str:
    if not row["reached"]:
        return f"| {row['threshold']:.2f} | not reached | — |"
    secs = row["compute_s"]
    raw = f" ({secs:,.0f} s)" if secs >= 60 else ""
    where = f"trial {row['trial']}, epoch {row['epoch']}"
    return f"| {row['threshold']:.2f} | {format_seconds(secs)}{raw} | {where} |"


def _cost_to_target(ctt: dict[str, Any], metric: str) -> list[str]:
    out = ["## Cost to target", ""]
    if ctt["note"]:
        return [*out, ctt["note"], ""]
    devices = ", ".join(f"`{d}`" for d in ctt["devices"]) or "unknown"
    out += [
        f"Compute spent until the best-so-far `{metric}` first reached each target: the whole time of "
        "every trial that finished before, plus the crossing trial's epochs up to the crossing. Trials "
        f"are taken in order of completion and parallel workers add up. Device: {devices}.",
        "",
        f"| Target `{metric}` ≥ | Compute | Reached in |",
        "|---|---|---|",
    ]
    return [*out, *(_threshold_row(row) for row in ctt["thresholds"]), ""]


def _plots(plots: dict[str, Any], metric: str) -> list[str]:
    out = [
        "## Plots",
        "",
        "### Optimisation history",
        "",
        f"![Optimisation history]({plots.get('history')})",
        "",
    ]
    out += ["### Parameter importances", ""]
    if plots.get("importance"):
        out += [f"![Parameter importances]({plots['importance']})", ""]
    else:
        out += [f"Parameter importances {plots.get('importance_note') or 'not computed'}.", ""]
    return [*out, "### Intermediate values", "", f"![{metric} per epoch]({plots.get('intermediate')})", ""]


def render_markdown(data: dict[str, Any]) -> str:
    """The report.md text for a ``build_report`` dict (plus its ``plots`` entry)."""
    metric = data["metric"]
    sections = [
        _header(data),
        _parameters(data),
        _best_trial(data["best"]),
        _counts(data["counts"]),
        _compute_time(data["time"]),
        _cost_to_target(data["cost_to_target"], metric),
        _plots(data.get("plots", {}), metric),
    ]
    return "\n".join(line for section in sections for line in section)
