"""The totals behind ``measure()``: one histogram per block, cumulative figures for the rest.

Duration is the only synchronous instrument recorded per block, through a
binding to its aggregations (``_series.Bound``). CPU time, disk I/O, memory and
in-flight counts are kept per attribset set (``_series.Series``) without a
lock, folded under this module's lock, and published through asynchronous
instruments when a reader collects. Collectors that share a meter (same name,
same provider) share the totals, so their series add up instead of fighting
over one instrument.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import waits
from jobmeter._core.bound_histogram import BoundHistogram
from jobmeter._core.instruments import (
    Attributes,
    Callback,
    Instrument,
    Key,
    PerMeter,
    histogram,
    make_key,
    observe,
    typed_key,
)
from jobmeter._rundata import sources
from jobmeter.collector import _peak
from jobmeter.collector._series import Bound, Series, new_pending

_log = logging.getLogger("jobmeter")

# The OTel specification's default cardinality limit is 2000 points per
# instrument, and the SDK applies it. CPU time and disk I/O give two points per
# attribute set, so 999 sets plus the overflow set fill exactly 2000 points.
SDK_CARDINALITY_LIMIT: Final = 2000
CARDINALITY_LIMIT: Final = SDK_CARDINALITY_LIMIT // 2 - 1
OVERFLOW: Final[dict[str, AttributeValue]] = {"otel.metric.overflow": True}
_OVERFLOW_KEY: Final[Key] = frozenset(OVERFLOW.items())
#: Bindings of attribute sets past SDK_CARDINALITY_LIMIT kept at most (the latest ones).
SPARE_BOUND: Final = 256


Points = Callable[[Series], Iterable[tuple[float, Attributes]]]

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
    (Instrument("jobmeter.operation.energy", "counter", "J",
                "Energy the machine used while measured operations ran, by hw.type (cpu and "
                "dram from RAPL, gpu from the GPUs' counters), where the machine meters it."),
     lambda t: [(j, t.modes[4 + d]) for d, j in enumerate(t.energy) if j is not None]),
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
        self._totals: dict[Key, Series] = {}
        self._bound: dict[Key, Bound] = {}
        self._spare: dict[Key, Bound] = {}
        #: Replaced whenever the figures are forgotten: a Bound of another epoch is stale.
        self.epoch = object()
        self._overflow_warned = False
        #: Whether a run records these totals' blocks (their peaks are taken then).
        self.recording = False
        self.duration = histogram(meter, DURATION)
        for instrument, points in TOTALS_METRICS:
            observe(meter, instrument, self._callback(points))
        sources.register(self)  # a run being recorded gets its blocks from now on

    def bind(self, attributes: dict[str, AttributeValue]) -> Bound:
        """The ``Bound`` of an attribute set (validated, never changed afterwards)."""
        typed = typed_key(attributes)
        with self._lock:
            found = self._bound.get(typed) or self._spare.get(typed)
            if found is None:
                key = make_key(attributes)
                series = self._series(key, attributes)
                found = Bound(
                    self, attributes, key, series, BoundHistogram(self.duration, attributes)
                )
                # As many as the SDK keeps series; past them unbounded values (ids) would
                # grow memory for ever: a few recent ones are kept, for hot loops.
                if len(self._bound) < SDK_CARDINALITY_LIMIT:
                    self._bound[typed] = found
                    found.kept = True
                else:
                    if len(self._spare) >= SPARE_BOUND:
                        self._spare = {}
                    self._spare[typed] = found
            return found

    def rebind(self, bound: Bound) -> Bound:
        """The current ``Bound`` of a stale one's attributes (the figures were forgotten)."""
        return self.bind(bound.attributes)

    def _series(self, key: Key, attributes: Attributes) -> Series:
        """Find or create a series; the caller holds the lock."""
        series = self._totals.get(key)
        if series is None:
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
                series = self._totals.get(key)
                if series is not None:
                    return series
            series = self._totals[key] = Series(attributes, self.recording)
        return series

    def fold(self, series: Series) -> None:
        """Add a series' appended blocks to its totals (a block calls it every FOLD_AT)."""
        with self._lock:
            series.fold()

    def recording_started(self) -> None:
        """Keep what each block measured for the run being recorded."""
        with self._lock:
            if not self.recording:
                for series in self._totals.values():
                    series.fold()  # blocks before the run are not the run's
                    series.durations, series.pending = [], new_pending()
                self.recording = True

    def recording_stopped(self) -> None:
        """Stop keeping records; drop what was not drained."""
        with self._lock:
            self.recording = False
            for series in self._totals.values():
                series.durations = series.pending = None

    def drain_into(self, recorder: Any) -> None:
        """Hand the blocks measured since the last drain to the run's recorder."""
        drained = []
        with self._lock:
            for series in self._totals.values():
                taken = series.take()
                if taken is not None:
                    drained.append((series.attributes, *taken))
        for attributes, durations, (timed, cpus, memory, peaks, energies, io) in drained:
            durations.extend(timed)  # the blocks with resources, as Python floats now
            recorder.add_operations(
                self.name, attributes, durations, list(cpus), list(memory), list(peaks),
                sum(energies) if energies else None, (io[0], io[1]) if timed else None,
            )  # fmt: skip
        _peak.publish(recorder.directory)  # the lifetime peak that resets hid from the kernel

    def _snapshot(self) -> list[Series]:
        # A SIGTERM handler's final export may run inside this lock's block.
        with waits.held_or_not(self._lock) as locked:
            found = list(self._totals.values())
            if locked:  # else a fold in progress underneath would count its blocks twice
                for series in found:
                    series.fold()
            return found

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
            self._totals, self._bound, self._spare, self.epoch = {}, {}, {}, object()
            self._overflow_warned = False
        if self.recording:
            self.recording = False
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
