"""``DuckDBCollector``, ``connect()`` and ``instrument()``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from typing import Any, Literal, cast

import duckdb as _duckdb
from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue

from jobmeter._core import fork
from jobmeter._core.instruments import PerMeter
from jobmeter._core.otel_private import is_proxy_meter
from jobmeter.collector import MetricsCollector
from jobmeter.duckdb import _profile
from jobmeter.duckdb._metrics import QueryInstruments
from jobmeter.duckdb._operation import current_database
from jobmeter.duckdb._proxy import ProfiledConnection
from jobmeter.duckdb._sampling import ProfileSampling, SamplingPolicy
from jobmeter.duckdb._shapes import ShapeAttributes
from jobmeter.duckdb._tables import TableMetrics

_log = logging.getLogger("jobmeter")


class DuckDBCollector(MetricsCollector):
    """Records the statements of the DuckDB connections it hands out or instruments.

    Args:
        name: the collector's name (its instrumentation scope).
        attributes: attributes added to every point.
        meter_provider: where the instruments live; defaults to the global
            MeterProvider (the one ``jobmeter.configure()`` installs).
        profiling: when DuckDB's profiler runs. ``"sampled"`` (the default):
            for the first execution of each query shape, then for a share
            chosen from the shape's duration so that profiling costs about
            0.25 % of its time; the profiler's figures of the other executions
            are estimated from those (``jobmeter.duckdb.operations.profiled``
            counts them). ``"always"``: every statement. ``"off"``: never
            (duration, returned rows and errors are still recorded, as they
            are for every statement in every mode). A ``ProfileSampling``
            tunes the sampling.
        profiler: ``False`` is ``profiling="off"`` (kept for older code).
        operators: also record time per operator type
            (``jobmeter.duckdb.operator.time``); off by default because it
            multiplies the series by the operator types of each query shape.
        table_metrics: report row count, size and column count of the
            database's tables when a reader collects.
        profile_tables: tables whose columns get a data-quality profile (null
            ratio, distinct count, min/max, and the counts of each value of
            low-cardinality columns, which exports those values).
        table_ttl_s: how long table figures are reused before DuckDB is asked again.
        table_timeout_s: the longest one refresh of table figures may run.

    Example:
        >>> db = DuckDBCollector(operators=True)
        >>> con = db.connect()
        >>> con.execute("CREATE TABLE t AS SELECT 1 AS x").fetchall()
        [(1,)]
        >>> con.close()
    """

    def __init__(
        self,
        name: str = "jobmeter.duckdb",
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        meter_provider: MeterProvider | None = None,
        profiling: Literal["sampled", "always", "off"] | ProfileSampling = "sampled",
        profiler: bool = True,
        operators: bool = False,
        table_metrics: bool = True,
        profile_tables: Collection[str] = (),
        table_ttl_s: float = 60.0,
        table_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(name, attributes=attributes, meter_provider=meter_provider)
        if isinstance(profile_tables, str):
            raise TypeError(
                f"profile_tables must be a collection of table names, not the string "
                f"{profile_tables!r}; write [{profile_tables!r}]"
            )
        for setting, value in (("table_ttl_s", table_ttl_s), ("table_timeout_s", table_timeout_s)):
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{setting} must be a number of seconds >= 0, got {value!r}")
        sampling = _sampling(profiling, profiler)
        self.profiler = profiling != "off" and profiler
        self.sampling = None if sampling is None else SamplingPolicy(sampling)
        self.operators = operators and self.profiler
        self.instruments = _instruments.get(name, self.meter)
        self.shapes = ShapeAttributes(self.attributes)
        self._tables = (
            TableMetrics(
                self.meter,
                attributes=self.attributes,
                ttl_s=table_ttl_s,
                timeout_s=table_timeout_s,
                profile_tables=tuple(profile_tables),
            )
            if table_metrics
            else None
        )
        self._warned: set[str] = set()

    def connect(
        self, database: str = ":memory:", read_only: bool = False, **kwargs: Any
    ) -> _duckdb.DuckDBPyConnection:
        """Open a DuckDB database, like ``duckdb.connect``, with every statement recorded.

        Args:
            database: the database file, or ``:memory:``.
            read_only: open the file read-only.
            **kwargs: passed to ``duckdb.connect`` unchanged (``config``, ...).

        Returns:
            A connection that behaves as DuckDB's own (it passes
            ``isinstance(con, duckdb.DuckDBPyConnection)``).
        """
        return self.instrument(_duckdb.connect(database, read_only=read_only, **kwargs))

    def instrument(self, connection: _duckdb.DuckDBPyConnection) -> _duckdb.DuckDBPyConnection:
        """Record the statements of a connection the program opened itself.

        Call it between statements: switching DuckDB's profiler on runs a
        statement, which replaces a result not yet fetched. If the connection
        already has profiling enabled (say to a file), those settings are kept
        and jobmeter reads what they produce.

        Args:
            connection: a ``duckdb.DuckDBPyConnection``; an already instrumented
                connection is returned as it is.

        Returns:
            The instrumented connection; use it instead of ``connection``.
        """
        given: object = connection  # the annotation is what users pass; check what came
        if type(given) is ProfiledConnection:
            return connection
        if not isinstance(given, _duckdb.DuckDBPyConnection):
            raise TypeError(
                f"instrument() takes a duckdb.DuckDBPyConnection, got {type(given).__name__}"
            )
        return cast(_duckdb.DuckDBPyConnection, self.wrap(connection))

    def wrap(self, connection: _duckdb.DuckDBPyConnection) -> ProfiledConnection:
        """The proxy of ``connection``, with the quiet profiler switched on (internal)."""
        user_profiling = _profile.enabled(connection)
        if self.profiler and not user_profiling:
            connection.execute(_profile.install_statement(self.operators))
        namespace = current_database(connection)
        if self._tables is not None:
            self._tables.watch(connection, namespace)
        profiled = self.profiler or user_profiling
        samples = (
            self.sampling.shapes_of(namespace)
            if self.sampling is not None and not user_profiling
            else None
        )
        return ProfiledConnection(connection, self, namespace, user_profiling, profiled, samples)

    def closed(self, connection: _duckdb.DuckDBPyConnection) -> None:
        """The user closed ``connection``: stop reading its tables (internal)."""
        if self._tables is not None:
            self._tables.forget(connection)

    def warn_once(self, what: str) -> None:
        """Log ``what`` once per collector, with the traceback (internal)."""
        if what not in self._warned:
            self._warned.add(what)
            _log.warning("jobmeter: %s; the query's profile is left out", what, exc_info=True)


def _sampling(profiling: object, profiler: object) -> ProfileSampling | None:
    """The sampling of ``profiling=``; None when every statement is profiled, or none."""
    if not isinstance(profiler, bool):
        raise TypeError(f"profiler must be True or False, got {profiler!r}")
    if isinstance(profiling, ProfileSampling):
        sampling: ProfileSampling | None = profiling
    elif profiling in ("always", "off"):
        sampling = None
    elif profiling == "sampled":
        sampling = ProfileSampling()
    else:
        raise ValueError(
            f"profiling must be 'sampled', 'always', 'off' or a ProfileSampling, got {profiling!r}"
        )
    if not profiler and profiling != "off" and profiling != "sampled":
        raise ValueError(f"profiler=False contradicts profiling={profiling!r}")
    return sampling if profiler else None


# One set per meter: collectors of one name share it. A forked child and a reset
# start from zero.
_instruments: PerMeter[QueryInstruments] = PerMeter(
    lambda name, meter: QueryInstruments(meter),
    after_fork=QueryInstruments.clear,
    forget=QueryInstruments.clear,
)


_default: DuckDBCollector | None = None
_default_provider: MeterProvider | None = None
_default_lock = threading.Lock()
_hooked = False


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()  # a parent thread may have held it at fork time


def _default_collector() -> DuckDBCollector:
    """The collector of ``connect()``/``instrument()``, remade when the global SDK is replaced.

    One made before ``configure()`` holds proxy meters, which follow the
    provider installed later, so it is kept.
    """
    global _default, _default_provider, _hooked
    provider = metrics.get_meter_provider()
    if not _hooked:  # on first use, never at import
        _hooked = True
        fork.on_fork_in_child(_after_fork_in_child)
    with _default_lock:
        current = _default
        if current is None or (
            not is_proxy_meter(current.meter) and _default_provider is not provider
        ):
            current = _default = DuckDBCollector()
            _default_provider = provider
        return current


def connect(
    database: str = ":memory:", read_only: bool = False, **kwargs: Any
) -> _duckdb.DuckDBPyConnection:
    """``duckdb.connect`` with every statement recorded by the default DuckDBCollector.

    Args:
        database: the database file, or ``:memory:``.
        read_only: open the file read-only.
        **kwargs: passed to ``duckdb.connect`` unchanged (``config``, ...).

    Returns:
        A connection that behaves as DuckDB's own.
    """
    return _default_collector().connect(database, read_only, **kwargs)


def instrument(connection: _duckdb.DuckDBPyConnection) -> _duckdb.DuckDBPyConnection:
    """Record the statements of an existing connection with the default DuckDBCollector.

    Args:
        connection: a ``duckdb.DuckDBPyConnection``.

    Returns:
        The instrumented connection; use it instead of ``connection``.
    """
    return _default_collector().instrument(connection)
