"""optuna-dashboard on a study storage, with the workers' artifact store (galleries, curves).

The dashboard has no authentication and can delete studies, so it binds the loopback address by default;
reach it from elsewhere through an SSH tunnel (``ssh -L 8080:127.0.0.1:8080 host``) rather than binding
0.0.0.0.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Container
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import ConfigError
from hpsearch.results.query import check_storage_exists, study_metric
from hpsearch.search import keys
from hpsearch.search.lifecycle import name_metric
from hpsearch.search.storage import artifact_store, make_storage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


def exposure_warning(host: str) -> str | None:
    """A warning to show when the dashboard would be reachable from other machines, else None."""
    if is_loopback(host):
        return None
    return (
        f"the dashboard binds {host}: anyone who can reach this machine can view and delete studies "
        "(it has no login); prefer the default 127.0.0.1 with an SSH tunnel"
    )


def dashboard_url(host: str, port: int) -> str:
    """The URL to open in a browser; a wildcard bind address is shown as the loopback address."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # IPv6 literals need brackets in a URL
    return f"http://{shown}:{port}/dashboard"


def name_stored_metrics(storage: optuna.storages.BaseStorage) -> list[str]:
    """``name_metric`` every hpsearch study in the storage (one with a stored spec) by its spec's metric.

    Studies created before their search layer named the metric get it here, on first view. Returns the
    names of the studies it wrote to.
    """
    named = []
    for summary in storage.get_all_studies():
        if keys.SPEC not in summary.user_attrs or len(summary.directions) != 1:
            continue  # not an hpsearch study: leave its names to whoever made it
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        if name_metric(study, study_metric(study)):
            named.append(summary.study_name)
    return named


def hide_waiting_trials(storage: optuna.storages.BaseStorage) -> None:
    """Leave the WAITING trials out of what ``storage`` lists unless asked for by state.

    Those are a study's budget tickets (``hpsearch create`` makes them up front so that any number of
    workers share one exact budget); in the dashboard they would read as trials beside the ones that ran.
    The budget itself is unchanged: only this storage object, the dashboard's own, lists them no more.
    """
    listed = storage.get_all_trials

    def get_all_trials(
        study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = listed(study_id, deepcopy=deepcopy, states=states)
        return trials if states is not None else [t for t in trials if t.state != TrialState.WAITING]

    storage.get_all_trials = get_all_trials  # type: ignore[method-assign]


def serve_dashboard(
    storage_url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, artifacts: Path | None = None
) -> None:
    """Serve optuna-dashboard on the storage until interrupted (Ctrl-C returns normally).

    Caveat from the stdlib server underneath: a Ctrl-C that lands while a request is being answered is
    swallowed by wsgiref's error handler, so the server keeps running; a second Ctrl-C stops it.

    The storage is opened with ``make_storage`` (same URL rules, masked errors) and artifacts come from the
    same ``FileSystemArtifactStore`` the workers upload to, so trial galleries and curves show in the UI.
    hpsearch studies get their objective named by their metric first (``name_stored_metrics``), and their
    budget tickets (WAITING trials) are kept out of sight (``hide_waiting_trials``).
    """
    from optuna_dashboard import run_server

    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range; pass --port between 1 and 65535")
    check_storage_exists(storage_url)
    storage = make_storage(storage_url)
    try:
        name_stored_metrics(storage)
    except optuna.exceptions.StorageInternalError as exc:  # e.g. a read-only database role: still serve
        log.warning("could not name the studies' objectives by their metric: %s", exc)
    hide_waiting_trials(storage)
    store = artifact_store(storage_url, artifacts)
    warning = exposure_warning(host)
    if warning:
        log.warning(warning)
    try:
        run_server(storage, host=host, port=port, artifact_store=store)
    except OSError as exc:  # address in use, or a host that is not an address of this machine
        raise ConfigError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}; "
            "pass another --port or --host"
        ) from None
