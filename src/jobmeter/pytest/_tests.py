"""Each test of this process measured and handed to the run's recorder."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final

import pytest

from jobmeter._rundata import routing
from jobmeter.collector import BlockUsage, UsageMeter, error_type

#: The collector name of the tests' operations in the run store.
COLLECTOR: Final = "pytest"


class TestMeter:
    """Measures setup, call and teardown of every test this process runs, as one block.

    Tests are recorded straight into the run (one operation per node id), not
    as ``measure()`` metrics: node ids would pass any cardinality limit.
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(self) -> None:
        self._errors: dict[str, str] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, Any, None]:
        meter = UsageMeter()
        with meter:
            yield
        if meter.usage is not None:
            self._record(item.nodeid, meter.usage, self._errors.pop(item.nodeid, None))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        if report.failed and call.excinfo is not None and item.nodeid not in self._errors:
            self._errors[item.nodeid] = error_type(call.excinfo.type)

    @staticmethod
    def _record(nodeid: str, usage: BlockUsage, error: str | None) -> None:
        recorder = routing.active
        if recorder is None:  # the run could not be recorded: its warning was given
            return
        attributes = {"operation.name": nodeid}
        if error is not None:
            attributes["error.type"] = error
        try:
            recorder.add_operations(
                COLLECTOR, attributes, [usage.wall_seconds],
                [usage.cpu_seconds + usage.children_cpu_seconds], [usage.rss_bytes],
                [usage.peak_rss_bytes], usage.energy_joules,
                (usage.read_bytes, usage.written_bytes),
            )  # fmt: skip
        except Exception:  # never fail a test over its measurement
            import logging

            logging.getLogger("jobmeter").debug("jobmeter: a test was not recorded", exc_info=True)
