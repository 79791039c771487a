"""One definition of percentile everywhere, exact for few values.

The definition is linear interpolation between the closest ranks (numpy's
default, ``statistics.quantiles(method="inclusive")``): the ground truth here
is Python's ``statistics``. Sketches keep their values up to ``EXACT_LIMIT``
and then answer within their 1 % bound; merging keeps exactness only while the
merged sketch is small.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jobmeter import store
from jobmeter._rundata.aggregates import Stats, merged_stats
from jobmeter._rundata.sketch import EXACT_LIMIT, Sketch, merged, quantile_of
from jobmeter.cli import app

PERCENTS = (1, 5, 25, 50, 75, 90, 95, 99)


def _truth(values: list[float], percent: int) -> float:
    """Python's own inclusive quantiles: the cut point of ``percent``."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


@pytest.mark.parametrize(
    ("values", "p95"),
    [([0.010, 0.200], 0.1905), ([0.010, 0.020, 0.200], 0.182), ([0.5], 0.5), ([3.0, 3.0], 3.0)],
)
def test_few_values_have_the_exact_interpolated_percentile(values: list[float], p95: float) -> None:
    sketch = Sketch()
    sketch.add_sorted(sorted(values))
    assert sketch.quantile(0.95) == pytest.approx(p95, rel=1e-12)
    assert sketch.quantile(0.95) == pytest.approx(_truth(values, 95), rel=1e-12)
    assert (sketch.quantile(0.0), sketch.quantile(1.0)) == (min(values), max(values))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_subnormal=False),
        min_size=1, max_size=EXACT_LIMIT,
    ),
    st.sampled_from(PERCENTS),
    st.integers(min_value=1, max_value=4),
)  # fmt: skip
def test_up_to_the_limit_a_merged_sketch_is_exact(
    values: list[float], percent: int, parts: int
) -> None:
    """Split into intervals, written, read and merged as a run does: still exact."""
    texts = []
    for i in range(parts):
        part = Sketch()
        part.add_sorted(sorted(values[i::parts]))
        texts.append(part.to_json())
    sketch = merged(texts)
    assert sketch.count == len(values)
    truth = _truth(values, percent)
    assert math.isclose(sketch.quantile(percent / 100), truth, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(store.percentile(values, percent), truth, rel_tol=1e-9, abs_tol=1e-12)


def test_one_value_past_the_limit_falls_back_to_the_buckets() -> None:
    values = [float(i + 1) for i in range(EXACT_LIMIT + 1)]
    left, right = Sketch(), Sketch()
    left.add_sorted(values[:EXACT_LIMIT])
    right.add_sorted(values[EXACT_LIMIT:])
    assert len(left.values or ()) == EXACT_LIMIT
    left.merge(right)
    assert left.values is None
    assert "v" not in json.loads(left.to_json())
    exact = quantile_of(values, 0.95)
    assert left.quantile(0.95) != exact
    assert left.quantile(0.95) == pytest.approx(exact, rel=0.01)


def test_an_old_sketch_without_values_still_reads_and_merges_approximately() -> None:
    """Sketches written before values were kept have buckets only: approximate, not wrong."""
    new = Sketch()
    new.add_sorted([0.010, 0.200])
    old = json.loads(new.to_json())
    del old["v"]
    sketch = Sketch.from_json(json.dumps(old))
    assert sketch.values is None
    assert sketch.count == 2
    assert sketch.quantile(0.95, 0.010, 0.200) == pytest.approx(0.1905, rel=0.01)
    # A damaged values list (wrong length, not numbers) is dropped rather than trusted.
    for bad in ([1.0], ["x", 2.0], [float("inf"), 1.0]):
        text = json.dumps({**old, "v": bad}) if bad[0] != float("inf") else (
            json.dumps(old)[:-1] + ',"v":[Infinity,1.0]}')  # fmt: skip
        assert Sketch.from_json(text).values is None


def test_stats_fields_and_merged_stats_agree_with_statistics() -> None:
    values = [0.004, 0.010, 0.011, 0.250, 0.031]
    stats = Stats()
    stats.add_sorted(sorted(values))
    fields = stats.fields("duration")
    assert fields["duration_p95"] == pytest.approx(_truth(values, 95), rel=1e-12)
    assert fields["duration_p50"] == pytest.approx(statistics.median(values), rel=1e-12)
    merged_row = merged_stats([fields, fields], "duration")
    assert merged_row["p95"] == pytest.approx(_truth(values * 2, 95), rel=1e-12)


def test_report_compare_and_advise_share_the_definition(tmp_path: Path) -> None:
    """Two calls of 10 ms and 200 ms: p95 190.5 ms in report and compare (it was 10.1 ms)."""
    root = tmp_path / "runs"
    code = """
        import time, jobmeter
        from opentelemetry.sdk.metrics import MeterProvider
        ops = jobmeter.MetricsCollector("etl", meter_provider=MeterProvider())
        with jobmeter.Run("few"):
            for seconds in (0.010, 0.200):
                with ops.measure("call") as m:
                    time.sleep(seconds)
    """
    env = {"JOBMETER_RUN_DIR": str(root), "OTEL_METRICS_EXPORTER": "none", "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    result = CliRunner().invoke(app, ["report", "latest", "--json", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    [op] = json.loads(result.stdout)["operations"]
    low, high = op["duration_min_seconds"], op["duration_max_seconds"]
    assert op["count"] == 2
    assert op["duration_p95_seconds"] == pytest.approx(low + 0.95 * (high - low), rel=1e-9)
    assert op["duration_p50_seconds"] == pytest.approx((low + high) / 2, rel=1e-9)
    assert op["duration_p95_seconds"] > 0.18
    runs = store.list_runs(root)
    reports = [store.report(run) for run in runs]
    p95s = [r.records.operations[0]["duration_p95_seconds"] for r in reports]
    assert p95s[-1] == pytest.approx(op["duration_p95_seconds"], rel=1e-12)
    assert store.percentile(p95s, 100) == max(p95s)
