"""Starting Comet experiments and logging runs and label distributions to them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comet_ml import CometExperiment

    from jobmeter.cometml._payload import Payload
    from jobmeter.store import StoredRun

_log = logging.getLogger("jobmeter")
OFFLINE_ENV = "COMET_OFFLINE_DIRECTORY"
# Comet's automatic logging is off: it would capture stdout, the environment,
# code and git patches of the process that logs, not of the run.
_QUIET: dict[str, Any] = {
    "log_code": False, "log_graph": False, "auto_param_logging": False,
    "auto_metric_logging": False, "auto_output_logging": False, "log_env_details": False,
    "log_git_metadata": False, "log_git_patch": False, "log_env_gpu": False,
    "log_env_host": False, "log_env_cpu": False, "display_summary_level": 0,
}  # fmt: skip


def _offline_directory(offline: bool | str | os.PathLike[str] | None) -> str | None:
    """Where offline archives go, or None for online mode."""
    if offline is None:
        return os.environ.get(OFFLINE_ENV) or None
    if offline is False:
        return None
    if offline is True:
        return os.environ.get(OFFLINE_ENV) or ".cometml-runs"
    if isinstance(offline, str | os.PathLike):
        return os.fspath(offline)
    raise TypeError(f"offline must be True, False, None or a directory, got {offline!r}")


def start_experiment(
    *,
    offline: bool | str | os.PathLike[str] | None = None,
    project_name: str | None = None,
    workspace: str | None = None,
) -> CometExperiment | None:
    """A new Comet experiment from the COMET_* settings, or None with one warning.

    Args:
        offline: None: offline when ``COMET_OFFLINE_DIRECTORY`` is set, else
            online; True: offline (into ``COMET_OFFLINE_DIRECTORY``, else
            ``./.cometml-runs``); a directory: offline into it; False: online.
        project_name: the Comet project (default ``COMET_PROJECT_NAME``).
        workspace: the Comet workspace (default ``COMET_WORKSPACE``).

    Returns:
        The experiment, with Comet's automatic logging off; None when there is
        neither an API key nor offline mode, or Comet cannot be reached.

    Raises:
        TypeError: offline is not a bool, None or a directory.
        ImportError: comet_ml is not installed (the ``comet`` extra).
    """
    directory = _offline_directory(offline)
    # comet_ml reports its own errors to Comet's Sentry unless told not to: only
    # what the user asked for leaves the machine. Their explicit setting wins.
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    try:
        import comet_ml
    except ImportError as error:
        raise ImportError(
            "jobmeter.cometml needs comet_ml: pip install 'jobmeter[comet]'"
        ) from error
    from comet_ml.config.config_api import get_config

    names: dict[str, Any] = {"project_name": project_name, "workspace": workspace}
    try:
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
            return comet_ml.OfflineExperiment(offline_directory=directory, **names, **_QUIET)
        if not get_config()["comet.api_key"]:
            _log.warning("jobmeter: not logging to Comet: no COMET_API_KEY (or Comet config "
                         "file) and no offline mode (set %s, or offline=True)",
                         OFFLINE_ENV)  # fmt: skip
            return None
        experiment = comet_ml.Experiment(**names, **_QUIET)
    except Exception as error:  # a bad key, a server error: the job goes on
        _log.warning("jobmeter: could not start a Comet experiment: %s", error)
        return None
    if not experiment.alive:  # Comet's own retries are done: it is unreachable
        _log.warning("jobmeter: Comet is unreachable, nothing logged; set %s to log offline "
                     "and upload later with `comet upload`", OFFLINE_ENV)  # fmt: skip
        return None
    return experiment


def _stored(run: StoredRun | str | os.PathLike[str]) -> StoredRun:
    from jobmeter import store

    if isinstance(run, store.StoredRun):
        return run
    if isinstance(run, os.PathLike) or (isinstance(run, str) and os.sep in run):
        directory = Path(run).resolve()
        if not (directory / "run.json").is_file() and not (directory / "usage.jsonl").is_file():
            raise store.StoreError(f"{directory} is not a run directory (no run.json)")
        return store.resolve(directory.name, root=directory.parent)
    if isinstance(run, str):
        return store.resolve(run)
    raise TypeError(f"run must be a StoredRun, a run directory, or a run id, prefix, name or "
                    f"'latest'; got {type(run).__name__}")  # fmt: skip


def log_run(
    run: StoredRun | str | os.PathLike[str] = "latest",
    experiment: CometExperiment | None = None,
    *,
    offline: bool | str | os.PathLike[str] | None = None,
    project_name: str | None = None,
    workspace: str | None = None,
) -> CometExperiment | None:
    """Log one run of the local store to a Comet experiment.

    What lands (names in docs/cometml.md): the summary figures as metrics
    (``jobmeter/wall_seconds``, ``jobmeter/peak_memory_bytes``, ...), the
    samples of usage.jsonl as metrics over time (``jobmeter/usage/pss``, step =
    sample index), each operation's durations as a 3D histogram
    (``jobmeter/operation/<collector>/<operation>``), run identity, git commit
    and machine as parameters, and the operations, DuckDB query shapes and
    failures as CSV tables.

    Args:
        run: a ``StoredRun``, a run directory (a path), or a run id, unique id
            prefix, name or ``"latest"`` in the default store.
        experiment: log into this experiment (left open); None: start one
            with ``start_experiment`` (named after the run), and end it, which
            writes the offline archive.
        offline: see ``start_experiment``; ignored with ``experiment``.
        project_name: see ``start_experiment``; ignored with ``experiment``.
        workspace: see ``start_experiment``; ignored with ``experiment``.

    Returns:
        The experiment; None when nothing could be logged (one warning says why).

    Raises:
        jobmeter.store.StoreError: no such run.
        TypeError: run or offline is of a kind not accepted.
    """
    from jobmeter.cometml._payload import collect

    payload = collect(_stored(run))
    experiment, own = _given_or_started(experiment, offline, project_name, workspace)
    if experiment is None:
        return None
    try:
        if own:
            experiment.set_name(payload.name)
            experiment.add_tag("jobmeter")
        _send(experiment, payload)
    except Exception as error:
        _log.warning("jobmeter: logging run %s to Comet failed: %s",
                     payload.parameters.get("jobmeter/run_id"), error)  # fmt: skip
        return None
    finally:
        if own:
            _end(experiment)
    return experiment


def _given_or_started(
    experiment: CometExperiment | None,
    offline: bool | str | os.PathLike[str] | None,
    project_name: str | None,
    workspace: str | None,
) -> tuple[CometExperiment | None, bool]:
    """The caller's experiment, else a new one (None when it cannot start); whether it is ours."""
    if experiment is not None:
        return experiment, False
    started = start_experiment(offline=offline, project_name=project_name, workspace=workspace)
    return started, True


def _send(experiment: CometExperiment, payload: Payload) -> None:
    experiment.log_parameters(payload.parameters)
    experiment.log_others(payload.others)
    experiment.log_metrics(payload.metrics)
    for name, points in payload.series.items():
        for step, value in points:
            experiment.log_metric(name, value, step=step)
    for name, (values, counts) in payload.histograms.items():
        experiment.log_histogram_3d(_histogram(values, counts), name=name, step=0)
    for file_name, table in payload.tables.items():
        experiment.log_table(file_name, tabular_data=table.rows, headers=table.headers)


def _histogram(values: list[float], counts: list[int]) -> Any:
    """A Comet histogram of values with counts (values in ascending order, as Comet needs)."""
    from comet_ml import Histogram

    histogram = Histogram()  # type: ignore[no-untyped-call]
    histogram.add(values, counts)  # type: ignore[no-untyped-call]
    return histogram


def _end(experiment: CometExperiment) -> None:
    try:
        experiment.end()
    except Exception as error:
        _log.warning("jobmeter: ending the Comet experiment failed: %s", error)


def log_label_distribution(
    values: Any,
    name: str,
    experiment: CometExperiment | None = None,
    *,
    step: int | None = None,
    offline: bool | str | os.PathLike[str] | None = None,
    project_name: str | None = None,
    workspace: str | None = None,
) -> CometExperiment | None:
    """Log how often each label occurs: a histogram, a table of counts, and two metrics.

    For class-balance checks. The histogram ``name`` has the label values when
    every label is a number, else each label's row index in the table. The
    table ``<name>.csv`` has ``index``, ``label``, ``count``, ``fraction``, most
    frequent first. Metrics: ``<name>/classes`` and ``<name>/majority_fraction``.
    The SQL of a query is run, never logged.

    Args:
        values: a list or other iterable of labels, a pandas Series, a mapping
            of label to count, a DuckDB relation of one column, or a
            ``(connection, sql)`` pair (counted by DuckDB with GROUP BY).
        name: the distribution's name in Comet (non-empty).
        experiment: log into this experiment (left open); None: start one as
            ``start_experiment`` does and end it.
        step: the histogram's step (default 0), e.g. the epoch.
        offline: see ``start_experiment``; ignored with ``experiment``.
        project_name: see ``start_experiment``; ignored with ``experiment``.
        workspace: see ``start_experiment``; ignored with ``experiment``.

    Returns:
        The experiment; None when nothing could be logged (one warning says why).

    Raises:
        TypeError: values is of a kind not accepted, or a label is unhashable.
        ValueError: name is empty, or no labels are given.
    """
    from jobmeter.cometml import _labels as labels

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    counts = labels.count(values)
    total = sum(n for _, n in counts)
    if total == 0:
        raise ValueError(f"no labels to count for {name!r}")
    keys = [label for label, _ in counts]
    positions = keys if labels.numeric(keys) else list(range(len(keys)))
    rows = [[i, "null" if label is None else label, n, n / total]
            for i, (label, n) in enumerate(counts)]  # fmt: skip
    experiment, own = _given_or_started(experiment, offline, project_name, workspace)
    if experiment is None:
        return None
    try:
        pairs = sorted(zip(positions, (n for _, n in counts), strict=True))
        histogram = _histogram([float(p) for p, _ in pairs], [n for _, n in pairs])
        experiment.log_histogram_3d(histogram, name=name, step=step or 0)
        experiment.log_table(labels.file_name(name) + ".csv", tabular_data=rows,
                             headers=["index", "label", "count", "fraction"])  # fmt: skip
        experiment.log_metric(f"{name}/classes", len(counts), step=step)
        experiment.log_metric(f"{name}/majority_fraction", counts[0][1] / total, step=step)
    except Exception as error:
        _log.warning("jobmeter: logging label distribution %r to Comet failed: %s", name, error)
        return None
    finally:
        if own:
            _end(experiment)
    return experiment
