"""After the search: a Markdown + JSON report of a study, with three PNG plots.

``write_report`` is the one entry. The numbers come from ``report_data`` (also what ``report.json`` holds),
the pictures from ``plots`` and the text from ``report_md``; everything is read from the storage, so a report
can be written from any machine that can reach the database, while workers still run.
"""

from __future__ import annotations

import json
from pathlib import Path

from hpsearch.errors import ConfigError
from hpsearch.results.plots import plot_history, plot_importance, plot_intermediate
from hpsearch.results.query import load_study
from hpsearch.results.report_data import build_report, json_safe, param_importances
from hpsearch.results.report_md import render_markdown

HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importance.png"
INTERMEDIATE_PNG = "intermediate.png"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def write_report(storage_url: str, study_name: str | None, out_dir: Path) -> Path:
    """Write ``report.md``, ``report.json`` and the PNG plots into ``out_dir``; returns the report.md path."""
    study = load_study(storage_url, study_name)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"report folder '{out_dir}' is a file; pass a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = build_report(study, storage_url, base=out_dir)
    plot_history(study, out_dir / HISTORY_PNG)
    plot_intermediate(study, out_dir / INTERMEDIATE_PNG)
    importances, note = param_importances(study)
    stale = out_dir / IMPORTANCE_PNG
    if importances is not None:
        plot_importance(study, importances, stale)
    elif stale.exists():
        stale.unlink()  # an importance plot from an earlier report would contradict the note
    data["importances"] = importances
    data["plots"] = {
        "history": HISTORY_PNG,
        "importance": IMPORTANCE_PNG if importances is not None else None,
        "importance_note": note,
        "intermediate": INTERMEDIATE_PNG,
    }
    (out_dir / REPORT_JSON).write_text(json.dumps(json_safe(data), indent=2) + "\n")
    md = out_dir / REPORT_MD
    md.write_text(render_markdown(data))
    return md
