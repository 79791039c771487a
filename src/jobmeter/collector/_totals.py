"""The totals behind ``measure()``: one histogram per block, cumulative figures for the rest.

Duration is the only synchronous instrument recorded per block. CPU time, disk
I/O, memory and in-flight counts are summed here, under one lock, and published
through asynchronous instruments when a reader collects: one SDK call per block
instead of six. Collectors that share a meter (same name, same provider) share
the totals, so their series add up instead of fighting over one instrument.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import waits
from jobmeter._core.instruments import (
    Attributes,
    Callback,
    Instrument,
    Key,
    PerMeter,
    histogram,
    observe,
)
from jobmeter._rundata import sources

_log = logging.getLogger("jobmeter")

# The OTel specification's default cardinality limit is 2000 points per
# instrument, and the SDK applies it. CPU time and disk I/O give two points per
# attribute set, so 999 sets plus the overflow set fill exactly 2000 points.
SDK_CARDINALITY_LIMIT: Final = 2000
CARDINALITY_LIMIT: Final = SDK_CARDINALITY_LIMIT // 2 - 1
OVERFLOW: Final[dict[str, AttributeValue]] = {"otel.metric.overflow": True}
_OVERFLOW_KEY: Final[Key] = frozenset(OVERFLOW.items())


class _Totals:
    """Cumulative figures of one attribute set."""

    __slots__ = (
        "active", "attributes", "cpu_system", "cpu_user", "gpu_memory", "growth",
        "has_resources", "io_read", "io_write", "modes", "peak", "pending", "rss",
    )  # fmt: skip

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = dict(attributes)
        # Attribute dicts for the asynchronous points, built once.
        self.modes = (
            {**attributes, "cpu.mode": "user"},
            {**attributes, "cpu.mode": "system"},
            {**attributes, "disk.io.direction": "read"},
            {**attributes, "disk.io.direction": "write"},
        )
        self.active = 0
        self.has_resources = False
        self.cpu_user = self.cpu_system = 0.0
        self.io_read = self.io_write = self.rss = self.growth = 0
        self.gpu_memory: int | None = None
        self.peak: int | None = None  # the largest peak RSS of a block with its peak taken
        # While a run records, per block: (duration s, CPU s or None, RSS B or None,
        # peak RSS B or None).
        self.pending: list[tuple[float, float | None, int | None, int | None]] | None = None


Points = Callable[[_Totals], Iterable[tuple[float, Attributes]]]

DURATION: Final = Instrument(
    "jobmeter.operation.duration", "histogram", "s", "Wall-clock duration of measured operations."
)
# The asynchronous figures: (instrument, its points from one attribute set's totals).
TOTALS_METRICS: Final[tuple[tuple[Instrument, Points], ...]] = (
    (Instrument("jobmeter.operation.cpu.time", "counter", "s",
                "CPU time of the process while measured operations ran, by cpu.mode."),
     lambda t: ((t.cpu_user, t.modes[0]), (t.cpu_system, t.modes[1])) if t.has_resources else ()),
    (Instrument("jobmeter.operation.disk.io", "counter", "By",
                "Bytes the process read from and wrote to storage during measured operations, "
                "by disk.io.direction."),
     lambda t: ((t.io_read, t.modes[2]), (t.io_write, t.modes[3])) if t.has_resources else ()),
    (Instrument("jobmeter.operation.memory.usage", "gauge", "By",
                "Resident memory of the process when the latest measured operation ended."),
     lambda t: ((t.rss, t.attributes),) if t.has_resources else ()),
    (Instrument("jobmeter.operation.memory.growth", "gauge", "By",
                "Resident memory the latest measured operation added (negative if freed)."),
     lambda t: ((t.growth, t.attributes),) if t.has_resources else ()),
    (Instrument("jobmeter.operation.memory.peak", "gauge", "By",
                "Largest peak resident memory of the process while a measured operation ran "
                "(operations measured with their peak)."),
     lambda t: () if t.peak is None else ((t.peak, t.attributes),)),
    (Instrument("jobmeter.operation.gpu.memory.usage", "gauge", "By",
                "GPU memory of the process when the latest measured operation with gpu=True "
                "ended."),
     lambda t: () if t.gpu_memory is None else ((t.gpu_memory, t.attributes),)),
    # Totals recorded with error.type never hold in-flight counts: skip their zeros.
    (Instrument("jobmeter.operation.active", "up_down_counter", "{operation}",
                "Measured operations in progress."),
     lambda t: () if "error.type" in t.attributes else ((t.active, t.attributes),)),
)  # fmt: skip


class OperationTotals:
    """Instruments and cumulative totals of ``measure()`` for one meter."""

    def __init__(self, meter: Meter, name: str = "") -> None:
        self.meter = meter
        self.name = name
        self._lock = threading.Lock()
        self._totals: dict[Key, _Totals] = {}
        self._overflow_warned = False
        self._recording = False
        self.duration = histogram(meter, DURATION)
        for instrument, points in TOTALS_METRICS:
            observe(meter, instrument, self._callback(points))
        sources.register(self)  # a run being recorded gets its blocks from now on

    def _totals_for(self, key: Key, attributes: Attributes) -> _Totals:
        """Find or create totals; the caller holds the lock."""
        totals = self._totals.get(key)
        if totals is None:
            if len(self._totals) >= CARDINALITY_LIMIT:
                if not self._overflow_warned:
                    self._overflow_warned = True
                    _log.warning(
                        "jobmeter: more than %d attribute sets for measured operations; the rest "
                        "are folded into one series with otel.metric.overflow=true. Keep ids and "
                        "other unbounded values out of attributes.",
                        CARDINALITY_LIMIT,
                    )
                key, attributes = _OVERFLOW_KEY, OVERFLOW
                totals = self._totals.get(key)
                if totals is not None:
                    return totals
            totals = self._totals[key] = _Totals(attributes)
            if self._recording:
                totals.pending = []
        return totals

    def started(self, key: Key, attributes: Attributes) -> None:
        with self._lock:
            totals = self._totals.get(key) or self._totals_for(key, attributes)
            totals.active += 1

    def ended(
        self,
        started_key: Key,
        started_attributes: Attributes,
        key: Key,
        attributes: Attributes,
        duration: float,
    ) -> None:
        """End a block measured without resources."""
        with self._lock:
            totals = self._totals.get(started_key) or self._totals_for(
                started_key, started_attributes
            )
            totals.active -= 1
            if totals.pending is not None:  # a run records
                if key is not started_key:
                    totals = self._totals_for(key, attributes)
                if totals.pending is not None:
                    totals.pending.append((duration, None, None, None))

    def ended_with_resources(
        self,
        started_key: Key,
        started_attributes: Attributes,
        key: Key,
        attributes: Attributes,
        usage: tuple[float, float, int, int, int, int, int | None],
        duration: float,
    ) -> None:
        """End a block and add its usage: (cpu user s, cpu system s, read B, written B,
        RSS at the end B, RSS growth B, peak RSS B or None); one lock for both.
        """
        cpu_user, cpu_system, io_read, io_write, rss, growth, peak = usage
        with self._lock:
            self._totals_for(started_key, started_attributes).active -= 1
            totals = self._totals_for(key, attributes)
            pending = totals.pending
            if pending is not None:  # a run records: one append, aggregated at its interval
                pending.append((duration, cpu_user + cpu_system, rss, peak))
            totals.has_resources = True
            totals.cpu_user += cpu_user
            totals.cpu_system += cpu_system
            totals.io_read += io_read
            totals.io_write += io_write
            totals.rss = rss
            totals.growth = growth
            if peak is not None and (totals.peak is None or peak > totals.peak):
                totals.peak = peak

    def set_gpu_memory(self, key: Key, attributes: Attributes, used: int) -> None:
        """Keep the GPU memory the process used when a ``gpu=True`` block ended."""
        with self._lock:
            self._totals_for(key, attributes).gpu_memory = used

    @property
    def recording(self) -> bool:
        """Whether a run records these totals' blocks (their peaks are taken then)."""
        return self._recording

    def recording_started(self) -> None:
        """Keep what each block measured for the run being recorded."""
        with self._lock:
            if not self._recording:
                self._recording = True
                for totals in self._totals.values():
                    totals.pending = []

    def recording_stopped(self) -> None:
        """Stop keeping records; drop what was not drained."""
        with self._lock:
            self._recording = False
            for totals in self._totals.values():
                totals.pending = None

    def drain_into(self, recorder: Any) -> None:
        """Hand the blocks measured since the last drain to the run's recorder."""
        with self._lock:
            drained = []
            for totals in self._totals.values():
                if totals.pending:
                    drained.append((totals.attributes, totals.pending))
                    totals.pending = []
        for attributes, entries in drained:
            recorder.add_operations(self.name, attributes, entries)

    def _snapshot(self) -> list[_Totals]:
        # A SIGTERM handler's final export may run inside this lock's block.
        with waits.held_or_not(self._lock):
            return list(self._totals.values())

    def _callback(self, points: Points) -> Callback:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(v, a) for t in self._snapshot() for v, a in points(t)]

        return callback

    def after_fork_in_child(self) -> None:
        """The child starts from zero: its parent's totals are its parent's."""
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget every total (a fresh start after a fork or a reset in tests)."""
        with self._lock:
            self._totals = {}
            self._overflow_warned = False
        if self._recording:
            self._recording = False
            self.recording_started()  # a forked child records for its own pid


# One set per collector name and provider (see PerMeter): two MetricsCollector("etl")
# objects share it, so that their series add up instead of one hiding the other.
_per_meter: PerMeter[OperationTotals] = PerMeter(
    lambda name, meter: OperationTotals(meter, name),
    after_fork=OperationTotals.after_fork_in_child,
    forget=OperationTotals.clear,
)


def totals_for(name: str, meter: Meter) -> OperationTotals:
    """The one set of ``measure()`` totals of collector ``name`` on ``meter``."""
    return _per_meter.get(name, meter)
