"""NVML calls that never raise: a failed call is skipped and logged once per kind.

The base of ``nvml.Nvml`` (which alone imports pynvml and holds the module):
how a failing call is told apart (NotSupported for good, anything else while
it lasts) and the once-per-process notes on the ``jobmeter`` logger.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from jobmeter._core.gpu import GpuDevice

_log = logging.getLogger("jobmeter")


class NvmlCalls:
    """The pynvml module, whether NVML is on, and the failures seen so far."""

    def __init__(self) -> None:
        self._notes_lock = threading.Lock()
        self._module: Any = None
        self._on: bool | None = None  # None: not tried yet
        self._unsupported: set[tuple[str, str]] = set()  # (uuid, what)
        self._noted: set[tuple[str, ...]] = set()

    def _read(self, device: GpuDevice, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """``call(handle, *args)``, or None (logged once) when it fails."""
        if (device.uuid, what) in self._unsupported or not self._on:
            return None
        try:
            return call(device.handle, *args)
        except Exception as exc:
            if self._is_unsupported(exc):
                self._unsupported.add((device.uuid, what))
                self.note_once(
                    ("unsupported", device.uuid, what),
                    "jobmeter: GPU %d (%s) does not report %s; that metric is left out for it",
                    device.index, device.name, what,
                )  # fmt: skip
            else:
                self.note_once(
                    ("failed", what, type(exc).__name__),
                    "jobmeter: reading %s from NVML failed (%s); the value is skipped while "
                    "it fails", what, describe(exc),
                )  # fmt: skip
            return None

    @staticmethod
    def _is_unsupported(exc: Exception) -> bool:
        # AttributeError: a pynvml too old to have the call.
        names = {"NVMLError_NotSupported", "NVMLError_FunctionNotFound", "AttributeError"}
        return any(kind.__name__ in names for kind in type(exc).__mro__)

    def note_once(
        self,
        key: tuple[str, ...],
        message: str,
        *args: object,
        level: int = logging.INFO,
        exc_info: bool = False,
    ) -> None:
        """Log ``message`` the first time ``key`` is seen in this process."""
        with self._notes_lock:
            if key in self._noted:
                return
            self._noted.add(key)
        _log.log(level, message, *args, exc_info=exc_info)

    def _quietly(self, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception:
            _log.debug("jobmeter: ignored NVML error", exc_info=True)


def text(value: str | bytes) -> str:
    """pynvml returns str; releases before 11.x returned bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, or its type alone when it has no message."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
