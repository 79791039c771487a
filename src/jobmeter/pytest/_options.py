"""The plugin's options, and the hook that turns it on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Percent a test's wall time or peak memory may grow over its baseline's.
DEFAULT_THRESHOLD_PERCENT = 20.0
#: Tests shown in each of the end's tables.
DEFAULT_TOP = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--jobmeter*`` options and the ``jobmeter`` ini value."""
    group = parser.getgroup("jobmeter", "measure every test and record the session (jobmeter)")
    group.addoption(
        "--jobmeter",
        action="store_true",
        default=False,
        help="measure every test and record the session as a run",
    )
    group.addoption(
        "--jobmeter-name",
        metavar="NAME",
        default=None,
        help="the run's name (default: pytest-<rootdir name>)",
    )
    group.addoption(
        "--jobmeter-dir",
        metavar="DIR",
        default=None,
        help="the runs directory (default: JOBMETER_RUN_DIR, else ./.jobmeter/runs)",
    )
    group.addoption(
        "--jobmeter-interval",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="seconds between samples of the process tree (default 1)",
    )
    group.addoption(
        "--jobmeter-top",
        metavar="N",
        type=int,
        default=DEFAULT_TOP,
        help=f"tests in each table at the end (default {DEFAULT_TOP}; 0: none)",
    )
    group.addoption(
        "--jobmeter-compare",
        metavar="RUN",
        default=None,
        help="flag tests slower or heavier than in RUN (an id, a prefix, a name, "
        "or 'latest'); implies --jobmeter",
    )
    group.addoption(
        "--jobmeter-threshold",
        metavar="PERCENT",
        type=float,
        default=DEFAULT_THRESHOLD_PERCENT,
        help="growth that counts as a regression, in percent (default "
        f"{DEFAULT_THRESHOLD_PERCENT:g})",
    )
    group.addoption(
        "--jobmeter-fail-on-regression",
        action="store_true",
        default=False,
        help="exit with status 1 when a test regressed (default: unchanged)",
    )
    parser.addini(
        "jobmeter", type="bool", default=False, help="measure every test, as --jobmeter does"
    )


@dataclass(frozen=True)
class Options:
    """What the command line asked of the plugin."""

    name: str
    directory: Path | None
    interval: float
    top: int
    baseline: str | None
    threshold: float  # a fraction: 0.2 for 20 %
    fail_on_regression: bool

    @classmethod
    def of(cls, config: pytest.Config) -> Options:
        """The options of ``config``; a wrong value is a usage error, as pytest's own are."""
        interval = float(config.getoption("jobmeter_interval"))
        top = int(config.getoption("jobmeter_top"))
        threshold = float(config.getoption("jobmeter_threshold"))
        if not interval >= 0.05:
            raise pytest.UsageError(f"--jobmeter-interval must be 0.05 or more, got {interval}")
        if top < 0:
            raise pytest.UsageError(f"--jobmeter-top must be 0 or more, got {top}")
        if not threshold >= 0:
            raise pytest.UsageError(f"--jobmeter-threshold must be 0 or more, got {threshold}")
        directory = config.getoption("jobmeter_dir")
        return cls(
            name=config.getoption("jobmeter_name") or f"pytest-{config.rootpath.name}",
            directory=None if directory is None else Path(os.path.abspath(directory)),
            interval=interval,
            top=top,
            baseline=config.getoption("jobmeter_compare"),
            threshold=threshold / 100.0,
            fail_on_regression=bool(config.getoption("jobmeter_fail_on_regression")),
        )


def wanted(config: pytest.Config) -> bool:
    """Whether the plugin was asked for."""
    return bool(
        config.getoption("jobmeter")
        or config.getoption("jobmeter_compare")
        or config.getini("jobmeter")
    )
