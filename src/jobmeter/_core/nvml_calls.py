"""NVML calls that never raise: what is NVML's own in the shared ``gpu_calls`` base.

The base of ``nvml.Nvml`` (which alone imports pynvml and holds the module):
how NVML says a call will never work (NotSupported, a function the driver or
pynvml lacks), the words of its log lines, and pynvml's strings.
"""

from __future__ import annotations

from typing import ClassVar

from jobmeter._core.gpu_calls import GpuBackend, describe

__all__ = ["NvmlCalls", "describe", "text"]


class NvmlCalls(GpuBackend):
    """The pynvml module, whether NVML is on, and the failures seen so far."""

    LIBRARY: ClassVar[str] = "NVML"
    OFF_MESSAGE: ClassVar[str] = "jobmeter: no NVIDIA GPU (%s); GPU metrics are off"

    def _is_unsupported(self, exc: Exception) -> bool:
        # AttributeError: a pynvml too old to have the call.
        names = {"NVMLError_NotSupported", "NVMLError_FunctionNotFound", "AttributeError"}
        return any(kind.__name__ in names for kind in type(exc).__mro__)


def text(value: str | bytes) -> str:
    """pynvml returns str; releases before 11.x returned bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
