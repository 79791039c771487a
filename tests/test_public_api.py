"""The public API is pinned, and importing jobmeter starts nothing."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap
from pathlib import Path

import jobmeter
import jobmeter.testing

EXPECTED = [
    "Backfill",
    "ConfigurationError",
    "GPUCollector",
    "HostCollector",
    "Measurement",
    "MetricsCollector",
    "Run",
    "Telemetry",
    "__version__",
    "configure",
    "start_host_metrics",
]


def test_all_is_sorted_and_pinned() -> None:
    assert jobmeter.__all__ == sorted(jobmeter.__all__)
    assert jobmeter.__all__ == EXPECTED
    for name in jobmeter.__all__:
        assert getattr(jobmeter, name) is not None
    assert jobmeter.testing.__all__ == ["InMemoryMetrics", "in_memory", "reset"]


def test_package_is_typed() -> None:
    assert (Path(jobmeter.__file__).parent / "py.typed").is_file()


def test_configuration_error_is_a_value_error() -> None:
    error = jobmeter.ConfigurationError("OTEL_X", "bad", "good")
    assert isinstance(error, ValueError)
    assert str(error) == "OTEL_X='bad' is invalid; accepted: good"


def test_import_starts_nothing() -> None:
    """Importing opens no port, starts no thread, installs no MeterProvider or fork hook."""
    script = textwrap.dedent(
        """
        import os, threading, psutil
        import jobmeter, jobmeter.collector, jobmeter.testing, jobmeter.demo, jobmeter.duckdb
        from opentelemetry.metrics import _internal as api
        from jobmeter._core import fork
        assert not fork._callbacks and not fork._installed, fork._callbacks
        assert threading.active_count() == 1, threading.enumerate()
        assert api._METER_PROVIDER is None
        assert psutil.Process().net_connections() == []
        print("clean")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "clean", done.stderr


def test_testing_module_example_runs() -> None:
    failures, tried = doctest.testmod(jobmeter.testing, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0


def test_import_and_the_store_commands_load_no_sdk_until_used() -> None:
    """``import jobmeter`` and ``jobmeter report`` leave the OTel SDK, psutil and DuckDB alone."""
    script = textwrap.dedent(
        """
        import sys
        import jobmeter
        heavy = ("opentelemetry.sdk", "psutil", "duckdb")
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        import jobmeter.cli
        assert "opentelemetry.sdk" not in sys.modules and "jobmeter._core.sdk" not in sys.modules
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        from jobmeter import MetricsCollector
        assert jobmeter.Run.__name__ == "Run" and "Run" in dir(jobmeter)
        print("lazy")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "lazy", done.stderr


def test_duckdb_module_is_loaded_on_first_use() -> None:
    """``import jobmeter`` does not import DuckDB; ``jobmeter.duckdb`` works without its import."""
    script = textwrap.dedent(
        """
        import sys
        import jobmeter
        assert "duckdb" not in sys.modules and "jobmeter.duckdb" not in sys.modules
        con = jobmeter.duckdb.connect()
        print(con.execute("SELECT 42").fetchall())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[(42,)]", done.stderr


def test_duckdb_module_examples_run() -> None:
    import jobmeter.duckdb

    failures, tried = doctest.testmod(jobmeter.duckdb, optionflags=doctest.ELLIPSIS)
    assert tried >= 2
    assert failures == 0
