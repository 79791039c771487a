"""``GPUCollector``: NVIDIA GPU metrics from NVML, quiet where there is no GPU.

For every physical GPU, each collection reads through NVML (nvidia-ml-py):
utilization, memory used and total, power draw, the energy counter, the GPU
temperature, and how much GPU memory the measured processes hold. Training
and inference jobs spend most of their cost on the GPU, so these are the
figures that say whether a job used what it asked for (memory, utilization)
and what it cost (energy, power).

The figures are read when a reader collects, never in the job's own thread,
and the callbacks of one collection share one reading per GPU. Names follow
the OpenTelemetry hardware semantic conventions (``hw.*``); the memory of the
measured processes, which no convention covers, is
``jobmeter.process.gpu.memory.usage``. On a machine without the nvidia-ml-py
package, the driver or a GPU, the collector reports nothing and NVML logs one
INFO line.

The device figures cover every GPU of the machine (the host view), each point
labelled ``jobmeter.gpu.visible``: whether this process's
``CUDA_VISIBLE_DEVICES`` lets it use that GPU. The measured processes' memory
is reported for those GPUs only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core.gpu import GpuDevice, GpuSample
from jobmeter._core.instruments import Instrument, PerMeter, observe
from jobmeter._core.nvml import nvml
from jobmeter.collector import MetricsCollector

_log = logging.getLogger("jobmeter")

Callback = Callable[[CallbackOptions], Iterable[Observation]]

# Per GPU: (instrument, the GpuSample field it reads); docs/metrics.md lists them.
DEVICE_METRICS: Final = (
    (Instrument("hw.gpu.utilization", "gauge", "1",
                "Share of time the GPU was busy running kernels (0 to 1)."), "utilization"),
    (Instrument("hw.gpu.memory.usage", "up_down_counter", "By", "GPU memory in use."),
     "memory_used"),
    (Instrument("hw.gpu.memory.limit", "up_down_counter", "By", "GPU memory installed."),
     "memory_total"),
    (Instrument("hw.gpu.memory.utilization", "gauge", "1",
                "GPU memory in use over GPU memory installed (0 to 1)."), "memory_utilization"),
    (Instrument("hw.power", "gauge", "W", "Power the GPU draws."), "power"),
    (Instrument("hw.energy", "counter", "J",
                "Energy the GPU used since the driver was loaded (on GPUs that report it)."),
     "energy"),
    (Instrument("hw.temperature", "gauge", "Cel", "GPU temperature."), "temperature"),
)  # fmt: skip
PROCESS_MEMORY: Final = Instrument(
    "jobmeter.process.gpu.memory.usage", "up_down_counter", "By",
    "GPU memory held by the measured processes, per GPU they may use.",
)  # fmt: skip
# True on the GPUs that CUDA_VISIBLE_DEVICES lets the job use: two values per GPU at most.
VISIBLE: Final = "jobmeter.gpu.visible"


def _own_pid() -> Collection[int]:
    return (os.getpid(),)


class GPUCollector(MetricsCollector):
    """NVIDIA GPU utilization, memory, power, energy and temperature, per physical GPU.

    Every point carries ``hw.id`` (the GPU's UUID), ``hw.name`` (its model),
    ``hw.vendor`` (``NVIDIA``), ``hw.type`` (``gpu``) and
    ``jobmeter.gpu.visible`` (whether ``CUDA_VISIBLE_DEVICES`` of this process
    lets it use the GPU, read at each collection), plus the collector's
    ``attributes``. The device figures cover every GPU of the machine; the
    process memory only the GPUs the process may use. NVML is started on the
    first collection (or the first use of :attr:`available`), not when the
    collector is created. Without a GPU nothing is reported and nothing is
    raised. ``measure()`` works as on every collector.

    Args:
        name: the collector's name (its instrumentation scope).
        attributes: attributes added to every point.
        meter_provider: where the instruments live; defaults to the global
            MeterProvider (the one ``jobmeter.configure()`` installs).
        pids: returns the process ids whose GPU memory
            ``jobmeter.process.gpu.memory.usage`` counts, called at each
            collection; defaults to the current process (``os.getpid()``).
            Their GPUs are taken to be those of this process's
            ``CUDA_VISIBLE_DEVICES``.

    Example:
        Create one per process, after ``jobmeter.configure()``, and keep it::

            gpu = jobmeter.GPUCollector()
            if not gpu.available:
                print("no NVIDIA GPU here; GPU metrics are off")
    """

    def __init__(
        self,
        name: str = "jobmeter.gpu",
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        meter_provider: MeterProvider | None = None,
        pids: Callable[[], Collection[int]] | None = None,
    ) -> None:
        super().__init__(name, attributes=attributes, meter_provider=meter_provider)
        self._pids = pids if pids is not None else _own_pid
        self._pids_failed = False
        self._device_attributes: dict[tuple[str, bool], dict[str, AttributeValue]] = {}
        _instruments.get(name, self.meter).add(self)

    def shutdown(self) -> None:
        """Stop reporting: this collector's GPU points are left out of later collections."""
        _instruments.get(self.name, self.meter).remove(self)

    @property
    def available(self) -> bool:
        """Whether NVML is up with at least one GPU (starts NVML on first use)."""
        return nvml().available()

    def _attributes_of(self, device: GpuDevice, visible: bool) -> dict[str, AttributeValue]:
        """The attributes of ``device``'s points: the ``hw.*`` set, visibility, the collector's."""
        found = self._device_attributes.get((device.uuid, visible))
        if found is None:
            found = self._device_attributes[(device.uuid, visible)] = {
                **self.attributes,
                "hw.id": device.uuid,
                "hw.name": device.name,
                "hw.vendor": "NVIDIA",
                "hw.type": "gpu",
                VISIBLE: visible,
            }
        return found

    def _observe(self, samples: list[GpuSample], field: str) -> list[Observation]:
        visible = {device.uuid for device in nvml().visible_devices()}
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
        nv = nvml()
        for device in nv.visible_devices():
            used = nv.device_process_memory(device, pids)
            if used is not None:
                found.append(Observation(used, self._attributes_of(device, True)))
        return found


class _Instruments:
    """The GPU instruments of one meter, shared by every GPUCollector on it.

    The SDK keeps the first instrument of a name and drops a second one's
    callbacks with a warning, so a second collector of the same name (say
    ``GPUCollector()`` next to ``start_host_metrics()``) joins the first's.
    """

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._collectors: list[GPUCollector] = []
        for instrument, field in DEVICE_METRICS:
            observe(meter, instrument, self._device(field))
        observe(meter, PROCESS_MEMORY, self._process_memory)

    def add(self, collector: GPUCollector) -> None:
        with self._lock:
            self._collectors.append(collector)

    def remove(self, collector: GPUCollector) -> None:
        with self._lock:
            self._collectors = [c for c in self._collectors if c is not collector]

    def _device(self, field: str) -> Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return self._each(lambda c: c._observe(nvml().samples(), field))

        return observe

    def _process_memory(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._each(GPUCollector._observe_process_memory)

    def _each(self, observe: Callable[[GPUCollector], list[Observation]]) -> list[Observation]:
        # A failure here would reach the SDK, which logs it as an ERROR with a
        # traceback at every collection: log once instead and report nothing.
        try:
            return [point for collector in list(self._collectors) for point in observe(collector)]
        except Exception:
            nvml().note_once(("gpu-callback",), "jobmeter: GPU metrics failed; they are skipped",
                             level=logging.WARNING, exc_info=True)  # fmt: skip
            return []


_instruments: PerMeter[_Instruments] = PerMeter(lambda name, meter: _Instruments(meter))
