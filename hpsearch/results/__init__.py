"""Reading finished studies: query a storage, export the best trial's run config, write the report, serve
the dashboard. Only reads a study's trials and attributes (the dashboard also names the objective)."""

from __future__ import annotations

from hpsearch._lazy import lazy_exports

# Imported on first use: the report pulls in matplotlib and the dashboard optuna-dashboard, which a CLI
# command that only exports should not pay for.
_LAZY = {
    "STATES": "hpsearch.results.query",
    "best_complete_trial": "hpsearch.results.query",
    "best_trial_summary": "hpsearch.results.query",
    "check_storage_exists": "hpsearch.results.query",
    "load_study": "hpsearch.results.query",
    "spec_dict": "hpsearch.results.query",
    "state_counts": "hpsearch.results.query",
    "study_metric": "hpsearch.results.query",
    "best_run_config": "hpsearch.results.export",
    "export_best": "hpsearch.results.export",
    "build_report": "hpsearch.results.report_data",
    "cost_to_target": "hpsearch.results.report_data",
    "param_importances": "hpsearch.results.report_data",
    "render_markdown": "hpsearch.results.report_md",
    "write_report": "hpsearch.results.report",
    "dashboard_url": "hpsearch.results.dashboard",
    "name_metric": "hpsearch.results.dashboard",
    "name_stored_metrics": "hpsearch.results.dashboard",
    "serve_dashboard": "hpsearch.results.dashboard",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
