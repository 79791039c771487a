"""``pytest --jobmeter``: every test measured, the session recorded as a run.

The plugin is registered through the ``pytest11`` entry point and stays off
unless asked (``--jobmeter``, ``--jobmeter-compare=RUN``, or ``jobmeter = true``
in the ini file): until then it adds its options and imports nothing else of
jobmeter. Turned on, it records the session as a run in the run store (each
test an operation of the collector ``pytest``, with its wall and CPU time, peak
memory, I/O and energy), prints the slowest and heaviest tests at the end, and
compares the tests with a baseline run. xdist workers record into the
controller's run. See docs/pytest.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobmeter.pytest._options import Options, pytest_addoption, wanted

if TYPE_CHECKING:
    import pytest

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Start measuring when asked: the session's run, or a worker's part of it."""
    if not wanted(config):
        return
    from jobmeter.pytest._session import start

    start(config, Options.of(config))
