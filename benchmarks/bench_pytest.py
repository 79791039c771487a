"""``pytest --jobmeter`` against plain pytest on one generated project, in the same run.

The project has N trivial tests (one parametrized function). Each case is a
fresh ``python -m pytest`` process, timed from start to exit; rounds
interleave the cases so that the machine's noise falls on both alike. The cost
per test is the slope between a 1-test and an N-test session, which takes the
fixed costs (the interpreter, collection, the run's start, compaction and
summary) out; those are reported apart, per session.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import Check, Progress

TESTS = 1000
ROUNDS = 5
#: Target: a test under --jobmeter costs at most this much more than without.
PER_TEST_RATIO_LIMIT = 1.5

PROJECT = """
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_trivial(i):
    assert i >= 0
"""


@dataclass
class PytestFigures:
    """Medians of the sessions, seconds; per-test figures are slopes."""

    tests: int
    plain_1: float
    plain_n: float
    jobmeter_1: float
    jobmeter_n: float

    @property
    def plain_per_test(self) -> float:
        return (self.plain_n - self.plain_1) / (self.tests - 1)

    @property
    def jobmeter_per_test(self) -> float:
        return (self.jobmeter_n - self.jobmeter_1) / (self.tests - 1)

    @property
    def per_test_ratio(self) -> float:
        return self.jobmeter_per_test / self.plain_per_test

    def checks(self) -> list[Check]:
        ratio = self.per_test_ratio
        return [(f"pytest per test --jobmeter / plain <= {PER_TEST_RATIO_LIMIT} "
                 f"({ratio:.2f})", ratio <= PER_TEST_RATIO_LIMIT)]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plain_per_test": self.plain_per_test,
                "jobmeter_per_test": self.jobmeter_per_test,
                "per_test_ratio": self.per_test_ratio}  # fmt: skip


def _session(project: Path, n: int, jobmeter: bool) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"tests_{n}.py"]  # fmt: skip
    if jobmeter:
        args += ["--jobmeter", "--jobmeter-dir", str(project / "runs"), "--jobmeter-top", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBMETER_RUN", "PYTEST_"))}
    env["OTEL_METRICS_EXPORTER"] = "none"
    start = time.perf_counter()
    subprocess.run(args, cwd=project, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def run(progress: Progress, tests: int = TESTS, rounds: int = ROUNDS) -> PytestFigures:
    """Time the four sessions ``rounds`` times, interleaved."""
    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-pytest-") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n")
        for n in (1, tests):
            (project / f"tests_{n}.py").write_text(PROJECT.format(n=n))
        times: dict[tuple[int, bool], list[float]] = {}
        for round_ in range(rounds):
            progress(f"pytest sessions, round {round_ + 1}/{rounds}")
            for n in (1, tests):
                for jobmeter in (False, True):
                    times.setdefault((n, jobmeter), []).append(_session(project, n, jobmeter))
    med = {key: statistics.median(values) for key, values in times.items()}
    return PytestFigures(tests, med[1, False], med[tests, False], med[1, True], med[tests, True])


def format_report(figures: PytestFigures) -> str:
    """The table printed by ``python -m benchmarks``."""
    us = 1e6
    return "\n".join([
        f"pytest --jobmeter ({figures.tests} trivial tests, median of {ROUNDS} sessions each)",
        f"  per test:     plain {figures.plain_per_test * us:7.1f} us   --jobmeter "
        f"{figures.jobmeter_per_test * us:7.1f} us   ratio {figures.per_test_ratio:.2f} "
        f"(target <= {PER_TEST_RATIO_LIMIT})",
        f"  per session:  plain {figures.plain_1:.2f} s   --jobmeter {figures.jobmeter_1:.2f} s "
        f"(1 test: start, the run's start and end, compaction, summary)",
    ])  # fmt: skip
