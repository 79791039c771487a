"""What NVML tells of a GPU: the device, and what it reported at one collection.

Plain frozen data, apart from ``nvml`` (the one module that imports
``pynvml``) which fills them in; the GPU collector reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU: its NVML index and handle, UUID and model name."""

    index: int
    handle: Any = field(compare=False, repr=False)
    uuid: str
    name: str
    mig: bool = False  # MIG mode is on: reported as the physical GPU only


@dataclass(frozen=True)
class GpuSample:
    """What one device reported at one collection; None where the value is unknown."""

    device: GpuDevice
    utilization: float | None = None  # ratio 0..1
    memory_used: int | None = None  # bytes
    memory_total: int | None = None  # bytes
    power: float | None = None  # watts
    energy: float | None = None  # joules since the driver was loaded
    temperature: float | None = None  # degrees Celsius

    @property
    def memory_utilization(self) -> float | None:
        """Used over total memory, when both are known."""
        if self.memory_used is None or not self.memory_total:
            return None
        return self.memory_used / self.memory_total
