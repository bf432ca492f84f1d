"""Reading finished studies: query a storage, export the best trial's run config, write the report, serve
the dashboard. Only reads a study's trials and attributes (the dashboard also names the objective).

The package re-exports nothing (importing it loads no module: the report pulls in matplotlib and the
dashboard optuna-dashboard, which a command that only exports should not pay for): import each name from
its module.

- ``query.py``: ``load_study``, ``study_metric``, ``best_complete_trial``, ``best_trial_summary``
- ``export.py``: ``export_best``, ``best_run_config``
- ``report.py``: ``write_report``
- ``report_data.py``: ``build_report``, ``param_importances``, ``cost_to_target``
- ``report_md.py``: ``render_markdown``
- ``plots.py``: history, intermediate values, importances
- ``dashboard.py``: ``serve_dashboard``, ``dashboard_url``, ``name_stored_metrics``
"""
