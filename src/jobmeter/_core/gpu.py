"""What a GPU library tells of a GPU: the device, and what it reported at one collection.

Plain frozen data, apart from ``nvml`` and ``amdsmi`` (the modules that import
``pynvml`` and ``amdsmi``) which fill them in; the GPU collector reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

NVIDIA: Final = "NVIDIA"
AMD: Final = "AMD"


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU: its index and handle in its library, UUID, model name and vendor."""

    index: int  # in its own library's order (NVML's, AMD SMI's)
    handle: Any = field(compare=False, repr=False)
    uuid: str
    name: str
    mig: bool = False  # MIG mode is on: reported as the physical GPU only
    vendor: str = NVIDIA  # hw.vendor; also which library reads it


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
