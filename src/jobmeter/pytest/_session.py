"""The session's run: started at configure, ended at session finish, summed up at the end.

Without xdist one process records the run and runs the tests. With xdist the
controller records the run (and samples the whole process tree, workers
included) and the workers, started after it with ``JOBMETER_RUN`` set, join it:
each writes its tests into the run directory, and the controller reads them all
back from the store once the run has ended.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from jobmeter import store
from jobmeter._core.environment import strict_mode
from jobmeter._core.format import format_bytes
from jobmeter._rundata import routing
from jobmeter.collector import UsageMeter
from jobmeter.pytest import _figures
from jobmeter.pytest._options import Options
from jobmeter.pytest._tests import TestMeter
from jobmeter.run import Run

_log = logging.getLogger("jobmeter")

# The worst phase outcome wins: a failed call with a passing teardown failed.
_RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 1, "failed": 2, "error": 3}


def start(config: pytest.Config, options: Options) -> None:
    """Register the plugin's parts for this process (controller, worker, or both)."""
    if hasattr(config, "workerinput"):  # an xdist worker: join the controller's run
        if os.environ.get(routing.RUN_ENV):
            config.pluginmanager.register(_Worker(Run(options.name).start()), "jobmeter-worker")
            config.pluginmanager.register(TestMeter(), "jobmeter-tests")
        return
    config.pluginmanager.register(SessionRun(options), "jobmeter-session")
    config.pluginmanager.register(TestMeter(), "jobmeter-tests")


class _Worker:
    """Writes the worker's tests into the run before xdist reports the worker finished."""

    def __init__(self, run: Run) -> None:
        self._run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        UsageMeter.publish_peak()
        self._run.stop()


class SessionRun:
    """The session recorded as a run, and what the terminal says of it at the end."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.lines: list[str] = []
        self.regressions: list[_figures.Regression] = []
        self._outcomes: dict[str, str] = {}
        self._baseline: store.StoredRun | None = None
        if options.baseline is not None:
            self._load_baseline(options.baseline)  # before this run is the latest
        self.run = Run(options.name, interval=options.interval, directory=options.directory)
        self.run.start()

    def _load_baseline(self, ref: str) -> None:
        # Only found now (so that "latest" is not this run); read at the end, since
        # reading records loads DuckDB, whose memory every test's peak would carry.
        try:
            self._baseline = store.resolve(ref, self.options.directory)
        except store.StoreError as error:
            self._problem(f"no baseline to compare with: {error}")

    def _problem(self, message: str) -> None:
        """Telemetry never stops the tests: one line at the end (an error if strict)."""
        if strict_mode():
            raise pytest.UsageError(f"jobmeter: {message}")
        _log.warning("jobmeter: %s", message)
        self.lines.append(f"jobmeter: {message}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome: str = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.failed and report.when != "call":
            outcome = "error"
        known = self._outcomes.get(report.nodeid, "passed")
        if _RANK.get(outcome, 0) >= _RANK.get(known, 0):
            self._outcomes[report.nodeid] = outcome

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        code = int(exitstatus)
        status = "succeeded" if code == 0 else "interrupted" if code == 2 else "failed"
        UsageMeter.publish_peak()
        self.run.stop(status, code)
        try:
            self._summarize()
        except Exception as error:  # never the tests' outcome over their measurement
            _log.debug("jobmeter: the session's summary failed", exc_info=True)
            self.lines.append(f"jobmeter: no summary of the run: {error}")
        if self.regressions and self.options.fail_on_regression and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _summarize(self) -> None:
        directory = self.run.directory
        if directory is None or not (directory / "run.json").exists():
            self.lines.append("jobmeter: the session was not recorded (see the warning above)")
            return
        stored = store.resolve(self.run.id, directory.parent)
        report = store.report(stored)
        tests = _figures.tests_of(report.records.operations)
        figures = report.figures
        cpu = [figures.get(k) for k in ("cpu_user_seconds", "cpu_system_seconds")]
        joined = " (joined the enclosing run)" if self.run.joined else ""
        self.lines.append(
            f"jobmeter: {len(tests)} tests recorded as run {self.run.id}{joined}: wall "
            f"{_seconds(figures.get('wall_seconds'))}, CPU "
            f"{_seconds(sum(c for c in cpu if c is not None))}, peak memory "
            f"{format_bytes(figures.get('peak_memory_bytes'))}"
        )
        self.lines.append(f"  jobmeter report {self.run.id} --dir {directory.parent}")
        top = self.options.top
        if top and tests:
            self.lines.append(f"slowest {min(top, len(tests))} tests:")
            self.lines.extend(_figures.table(_figures.slowest(tests.values(), top),
                                             self._outcomes))  # fmt: skip
            heavy = _figures.heaviest(tests.values(), top)
            if heavy:
                self.lines.append(f"heaviest {len(heavy)} tests (peak memory):")
                self.lines.extend(_figures.table(heavy, self._outcomes))
        if self._baseline is not None:
            self._compare(tests, self._baseline)

    def _compare(self, tests: dict[str, _figures.TestFigures], run: store.StoredRun) -> None:
        baseline = _figures.tests_of(store.report(run).records.operations)
        threshold = self.options.threshold
        self.regressions = _figures.regressions(tests, baseline, threshold)
        common = len(tests.keys() & baseline.keys())
        head = (f"compared with run {run.id} ({common} tests in both, threshold "
                f"{threshold * 100:g} %):")  # fmt: skip
        if not self.regressions:
            self.lines.append(f"{head} no test became slower or heavier")
            return
        self.lines.append(f"{head} {len(self.regressions)} regressions")
        self.lines.extend("  " + regression.text() for regression in self.regressions)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.write_sep("=", "jobmeter")
            for line in self.lines:
                terminalreporter.write_line(line)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"
