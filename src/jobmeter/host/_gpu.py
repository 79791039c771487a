"""``GPUCollector``: NVIDIA and AMD GPU metrics, quiet where there is no GPU.

For every physical GPU, each collection reads through NVML (nvidia-ml-py) for
NVIDIA GPUs and AMD SMI (amdsmi) for AMD GPUs, both behind ``_core.gpus``:
utilization, memory used and total, power draw, the energy counter, the GPU
temperature, and how much GPU memory the measured processes hold. Training
and inference jobs spend most of their cost on the GPU, so these are the
figures that say whether a job used what it asked for (memory, utilization)
and what it cost (energy, power).

The figures are read when a reader collects, never in the job's own thread,
and the callbacks of one collection share one reading per GPU. Names follow
the OpenTelemetry hardware semantic conventions (``hw.*``); the memory of the
measured processes, which no convention covers, is
``jobmeter.process.gpu.memory.usage``. Where a library, its driver or its GPUs
are missing, that vendor's GPUs are simply absent, and its backend logs one
INFO line; nothing is raised.

The device figures cover every GPU of the machine (the host view), each point
labelled ``jobmeter.gpu.visible``: whether this process's
``CUDA_VISIBLE_DEVICES`` (NVIDIA) or ``ROCR_VISIBLE_DEVICES`` and
``HIP_VISIBLE_DEVICES`` (AMD) let it use that GPU. The measured processes'
memory is reported for those GPUs only. ``metrics=`` (or
``JOBMETER_GPU_METRICS``) chooses which metrics exist at all.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import gpus
from jobmeter._core.config import gpu_metrics
from jobmeter._core.gpu import GpuDevice, GpuSample
from jobmeter._core.instruments import HW_ENERGY as ENERGY
from jobmeter._core.instruments import Instrument, PerMeter, observe
from jobmeter.collector import MetricsCollector

_log = logging.getLogger("jobmeter")

Callback = Callable[[CallbackOptions], Iterable[Observation]]

# Per GPU: (instrument, the GpuSample field it reads, the metric choice it belongs
# to in JOBMETER_GPU_METRICS); docs/metrics.md lists them.
DEVICE_METRICS: Final = (
    (Instrument("hw.gpu.utilization", "gauge", "1",
                "Share of time the GPU was busy running kernels (0 to 1)."), "utilization",
     "utilization"),
    (Instrument("hw.gpu.memory.usage", "up_down_counter", "By", "GPU memory in use."),
     "memory_used", "memory"),
    (Instrument("hw.gpu.memory.limit", "up_down_counter", "By", "GPU memory installed."),
     "memory_total", "memory"),
    (Instrument("hw.gpu.memory.utilization", "gauge", "1",
                "GPU memory in use over GPU memory installed (0 to 1)."), "memory_utilization",
     "memory"),
    (Instrument("hw.power", "gauge", "W", "Power the GPU draws."), "power", "power"),
    (ENERGY, "energy", "energy"),
    (Instrument("hw.temperature", "gauge", "Cel", "GPU temperature."), "temperature",
     "temperature"),
)  # fmt: skip
PROCESS_MEMORY: Final = Instrument(
    "jobmeter.process.gpu.memory.usage", "up_down_counter", "By",
    "GPU memory held by the measured processes, per GPU they may use.",
)  # fmt: skip
# True on the GPUs that CUDA_VISIBLE_DEVICES (ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES on
# AMD) lets the job use: two values per GPU at most.
VISIBLE: Final = "jobmeter.gpu.visible"


def _own_pid() -> Collection[int]:
    return (os.getpid(),)


class GPUCollector(MetricsCollector):
    """GPU utilization, memory, power, energy and temperature, per physical GPU.

    NVIDIA GPUs are read through NVML (the ``gpu`` extra), AMD GPUs through
    AMD SMI (the ``amd`` extra); both report the same metrics. Every point
    carries ``hw.id`` (the GPU's UUID), ``hw.name`` (its model),
    ``hw.vendor`` (``NVIDIA`` or ``AMD``), ``hw.type`` (``gpu``) and
    ``jobmeter.gpu.visible`` (whether this process may use the GPU:
    ``CUDA_VISIBLE_DEVICES`` for NVIDIA, ``ROCR_VISIBLE_DEVICES`` and
    ``HIP_VISIBLE_DEVICES`` for AMD, read at each collection), plus the
    collector's ``attributes``. The device figures cover every GPU of the
    machine; the process memory only the GPUs the process may use. The GPU
    libraries are started on the first collection (or the first use of
    :attr:`available`), not when the collector is created. Without a GPU
    nothing is reported and nothing is raised. ``measure()`` works as on
    every collector.

    Args:
        name: the collector's name (its instrumentation scope).
        attributes: attributes added to every point.
        meter_provider: where the instruments live; defaults to the global
            MeterProvider (the one ``jobmeter.configure()`` installs).
        pids: returns the process ids whose GPU memory
            ``jobmeter.process.gpu.memory.usage`` counts, called at each
            collection; defaults to the current process (``os.getpid()``).
            Their GPUs are taken to be those this process may use.
        metrics: the metrics to report, any of ``memory`` (``hw.gpu.memory.*``
            and ``jobmeter.process.gpu.memory.usage``), ``utilization``,
            ``power``, ``energy``, ``temperature``; wins over
            ``JOBMETER_GPU_METRICS``. None (default): what the variable says,
            else all five. Instruments of the others are not created.

    Raises:
        ConfigurationError: ``metrics`` names an unknown metric (a ValueError),
            or, in strict mode, ``JOBMETER_GPU_METRICS`` does.

    Attributes:
        metrics: the names of the metrics this collector reports.

    Example:
        Create one per process, after ``jobmeter.configure()``, and keep it::

            gpu = jobmeter.GPUCollector()
            if not gpu.available:
                print("no NVIDIA or AMD GPU here; GPU metrics are off")
    """

    def __init__(
        self,
        name: str = "jobmeter.gpu",
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        meter_provider: MeterProvider | None = None,
        pids: Callable[[], Collection[int]] | None = None,
        metrics: Iterable[str] | None = None,
    ) -> None:
        chosen = gpu_metrics(metrics)  # before anything is registered: it may raise
        super().__init__(name, attributes=attributes, meter_provider=meter_provider)
        self.metrics: frozenset[str] = chosen
        self._pids = pids if pids is not None else _own_pid
        self._pids_failed = False
        self._device_attributes: dict[tuple[str, bool], dict[str, AttributeValue]] = {}
        _instruments.get(name, self.meter).add(self)

    def shutdown(self) -> None:
        """Stop reporting: this collector's GPU points are left out of later collections."""
        _instruments.get(self.name, self.meter).remove(self)

    @property
    def available(self) -> bool:
        """Whether NVML or AMD SMI is up with at least one GPU (starts them on first use)."""
        return gpus.available()

    def _attributes_of(self, device: GpuDevice, visible: bool) -> dict[str, AttributeValue]:
        """The attributes of ``device``'s points: the ``hw.*`` set, visibility, the collector's."""
        found = self._device_attributes.get((device.uuid, visible))
        if found is None:
            found = self._device_attributes[(device.uuid, visible)] = {
                **self.attributes,
                "hw.id": device.uuid,
                "hw.name": device.name,
                "hw.vendor": device.vendor,
                "hw.type": "gpu",
                VISIBLE: visible,
            }
        return found

    def _observe(self, samples: list[GpuSample], field: str) -> list[Observation]:
        visible = {device.uuid for device in gpus.visible_devices()}
        return [
            Observation(value, self._attributes_of(sample.device, sample.device.uuid in visible))
            for sample in samples
            if (value := getattr(sample, field)) is not None
        ]

    def _observe_process_memory(self) -> list[Observation]:
        try:
            pids = set(self._pids())
        except Exception:
            if not self._pids_failed:
                self._pids_failed = True
                _log.warning("jobmeter: the pids of %r failed; its process GPU memory is "
                             "left out", self, exc_info=True)  # fmt: skip
            return []
        found = []
        for device in gpus.visible_devices():
            used = gpus.device_process_memory(device, pids)
            if used is not None:
                found.append(Observation(used, self._attributes_of(device, True)))
        return found


class _Instruments:
    """The GPU instruments of one meter, shared by every GPUCollector on it.

    The SDK keeps the first instrument of a name and drops a second one's
    callbacks with a warning, so a second collector of the same name (say
    ``GPUCollector()`` next to ``start_host_metrics()``) joins the first's.
    An instrument is created when the first collector that chose its metric
    joins, and reports the collectors that chose it.
    """

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._lock = threading.Lock()
        self._collectors: list[GPUCollector] = []
        self._created: set[str] = set()

    def add(self, collector: GPUCollector) -> None:
        with self._lock:
            self._collectors.append(collector)
            for instrument, field, metric in DEVICE_METRICS:
                if metric in collector.metrics and instrument.name not in self._created:
                    observe(self._meter, instrument, self._device(field, metric))
                    self._created.add(instrument.name)
            if "memory" in collector.metrics and PROCESS_MEMORY.name not in self._created:
                observe(self._meter, PROCESS_MEMORY, self._process_memory)
                self._created.add(PROCESS_MEMORY.name)

    def remove(self, collector: GPUCollector) -> None:
        with self._lock:
            self._collectors = [c for c in self._collectors if c is not collector]

    def forget(self) -> None:
        """At reset: a proxy's set binds to the next provider, without the old collectors."""
        with self._lock:
            self._collectors = []

    def _device(self, field: str, metric: str) -> Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self._each(metric, lambda c: c._observe(gpus.samples(), field))

        return observe

    def _process_memory(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._each("memory", GPUCollector._observe_process_memory)

    def _each(
        self, metric: str, observe: Callable[[GPUCollector], list[Observation]]
    ) -> list[Observation]:
        # A failure here would reach the SDK, which logs it as an ERROR with a
        # traceback at every collection: log once instead and report nothing.
        try:
            chosen = [c for c in list(self._collectors) if metric in c.metrics]
            return [point for collector in chosen for point in observe(collector)]
        except Exception:
            gpus.note_once(("gpu-callback",), "jobmeter: GPU metrics failed; they are skipped",
                           level=logging.WARNING, exc_info=True)  # fmt: skip
            return []


_instruments: PerMeter[_Instruments] = PerMeter(
    lambda name, meter: _Instruments(meter), forget=_Instruments.forget
)
