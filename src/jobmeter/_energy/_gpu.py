"""GPU energy: each GPU's total-energy counter, or its power integrated where it has none.

NVML's ``nvmlDeviceGetTotalEnergyConsumption`` (and amdsmi's energy count)
give the energy a GPU used since the driver loaded; the meter counts from its
first reading of each GPU. A GPU without the counter (older than Volta, some
virtual GPUs) has its power draw integrated between readings (trapezoids):
an estimate, said once at INFO, and only as good as the readings are frequent
(``jobmeter run`` reads every sample; a block at its start and end).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from time import monotonic

from jobmeter._core import gpus
from jobmeter._core.gpu import GpuDevice

_log = logging.getLogger("jobmeter")


class _Device:
    """What the meter knows of one GPU between readings."""

    __slots__ = ("first", "integrated", "last_power", "last_t")

    def __init__(self) -> None:
        self.first: float | None = None  # the counter at first sight (J)
        self.integrated = 0.0  # J integrated from power, where there is no counter
        self.last_power: float | None = None
        self.last_t = 0.0


class GpuEnergy:
    """The energy of the GPUs a job may use since first seen, summed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}
        self._estimated: set[str] = set()

    def read(self, environ: Mapping[str, str] | None = None) -> float | None:
        """Joules of the visible GPUs since each was first read; None without a GPU."""
        if not gpus.available():
            return None
        devices = gpus.visible_devices(environ)
        if not devices:
            return None
        with self._lock:
            return sum(self._energy(device) for device in devices)

    def _energy(self, device: GpuDevice) -> float:
        state = self._devices.get(device.uuid)
        if state is None:
            state = self._devices[device.uuid] = _Device()
        counter = gpus.energy_joules(device)
        if counter is not None:
            if state.first is None:
                state.first = counter
            return max(counter - state.first, 0.0) + state.integrated
        power = gpus.power_watts(device)
        now = monotonic()
        if power is not None:
            if device.uuid not in self._estimated:
                self._estimated.add(device.uuid)
                _log.info("jobmeter: GPU %s (%s) has no energy counter; its energy is "
                          "integrated from power readings, an estimate",
                          device.index, device.name)  # fmt: skip
            if state.last_power is not None:
                state.integrated += (state.last_power + power) / 2 * (now - state.last_t)
            state.last_power, state.last_t = power, now
        return state.integrated
