"""``UsageMeter``: what one block used, measured as ``measure()`` measures it, handed back.

``measure()`` publishes its figures as metrics of low-cardinality attribute
sets. Some callers need one block's own figures instead, for ids that would
break a cardinality limit (the pytest plugin measures every test by its node
id): they take them from here, with the same probes (getrusage, the block peak
of ``_peak``, the energy counters) and the same meanings.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from time import perf_counter
from types import TracebackType

from jobmeter import _energy
from jobmeter._core import probes
from jobmeter._rundata import routing
from jobmeter.collector import _peak
from jobmeter.collector._measure import _Energy

_KIB = 1024


@dataclass(frozen=True, slots=True)
class BlockUsage:
    """The figures of one measured block.

    Attributes:
        wall_seconds: the block's wall time.
        cpu_seconds: user + system CPU time of this process during the block.
        children_cpu_seconds: user + system CPU time of the child processes the
            block started and waited for (``RUSAGE_CHILDREN``).
        peak_rss_bytes: this process's peak RSS while the block ran (the block
            peak of ``measure(peak_memory=True)``).
        rss_bytes: this process's RSS at the block's end.
        read_bytes: bytes this process read from block devices during the block.
        written_bytes: bytes this process wrote to block devices during the block.
        energy_joules: the machine's energy during the block, all domains
            (docs/energy.md); None where it has no readable counter.
    """

    wall_seconds: float
    cpu_seconds: float
    children_cpu_seconds: float
    peak_rss_bytes: int
    rss_bytes: int
    read_bytes: int
    written_bytes: int
    energy_joules: float | None


class UsageMeter:
    """Measure one block and keep its figures in ``usage``, publishing nothing.

    One meter measures one block at a time; make one per block to nest them.

    Args:
        energy: read the machine's energy counters at the block's ends.
        gpu: count the GPUs' energy counters too.

    Example:
        >>> meter = UsageMeter()
        >>> with meter:
        ...     work()
        >>> meter.usage.peak_rss_bytes
        104857600
    """

    __slots__ = ("_children", "_energy", "_gpu", "_start", "_window", "usage")

    def __init__(self, *, energy: bool = True, gpu: bool = False) -> None:
        self._energy = energy
        self._gpu = gpu
        self._window: _peak.Window | None = None
        self._children: resource.struct_rusage | None = None
        self._start: tuple[_energy.Reading | None, float] | None = None
        self.usage: BlockUsage | None = None

    def __enter__(self) -> UsageMeter:
        if self._window is not None:
            raise RuntimeError("this UsageMeter measures a block already; make one per block")
        began = perf_counter()  # first: the wall time covers the CPU time read next
        self._window = _peak.open_window()
        self._children = probes.getrusage(resource.RUSAGE_CHILDREN)
        reading = _Energy.read(self._gpu, False) if self._energy else None
        self._start = (reading, began)
        return self

    @staticmethod
    def publish_peak() -> None:
        """Leave this process's peak memory in the run it records into, now.

        Meters publish it at most once a second while a run records (each time
        is a file written); call this before the run ends so that the run's
        peak memory counts the last blocks too. Without a run it does nothing.
        """
        recorder = routing.active
        if recorder is not None:
            _peak.publish(recorder.directory)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = perf_counter()
        window, children, start = self._window, self._children, self._start
        assert window is not None
        assert children is not None
        assert start is not None
        self._window = self._children = self._start = None
        ru = probes.getrusage(probes.RUSAGE_SELF)
        ru_children = probes.getrusage(resource.RUSAGE_CHILDREN)
        rss = probes.rss_bytes()
        peak = _peak.close_window(window, rss, ru.ru_maxrss * _KIB)
        began = window.usage
        recorder = routing.active
        if recorder is not None:  # a run records: its summary's peak must see this one
            _peak.publish_block_peak(peak, recorder.directory, end)
        energy: float | None = None
        if start[0] is not None:
            end_energy = _Energy.read(self._gpu, True)
            if end_energy is not None:
                joules = [j for j in _energy.difference(start[0], end_energy) if j is not None]
                energy = sum(joules) if joules else None
        # Differences first: nothing used is 0.0 exactly, not a rounding residue.
        cpu_children = ((ru_children.ru_utime - children.ru_utime)
                        + (ru_children.ru_stime - children.ru_stime))  # fmt: skip
        self.usage = BlockUsage(
            wall_seconds=end - start[1],
            cpu_seconds=max((ru.ru_utime - began.ru_utime) + (ru.ru_stime - began.ru_stime), 0.0),
            children_cpu_seconds=max(cpu_children, 0.0),
            peak_rss_bytes=max(peak, rss),
            rss_bytes=rss,
            read_bytes=max(ru.ru_inblock - began.ru_inblock, 0) * probes.BLOCK_SIZE,
            written_bytes=max(ru.ru_oublock - began.ru_oublock, 0) * probes.BLOCK_SIZE,
            energy_joules=energy,
        )
