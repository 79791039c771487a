"""What every GPU library boundary shares: start once, stay quiet, never raise.

``GpuBackend`` is the base of ``nvml.Nvml`` and ``amdsmi.AmdSmi``, each the one
module that imports its library (pynvml, amdsmi). The base holds the life of a
process-wide library session: started on the first ``available()``, off for
good (one INFO line) without the package, the driver or a GPU, shut down at
exit, forgotten in a forked child, which starts its own. It also tells a
failing call apart (not supported: for good; anything else: while it lasts),
logs each kind once, and shares one sample per GPU between the callbacks of a
collection. A subclass opens and closes its library and reads its figures.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, Final

from jobmeter._core import fork, waits
from jobmeter._core.gpu import GpuDevice, GpuSample

_log = logging.getLogger("jobmeter")

# The callbacks of one collection run within a few milliseconds of each other;
# a sample younger than this is shared instead of asking the driver again.
SAMPLE_MAX_AGE_S: Final = 0.2


class GpuCalls:
    """The library module, whether it is on, and the failures seen so far."""

    LIBRARY: ClassVar[str] = "the GPU library"  # named in the log lines

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
                    "jobmeter: reading %s from %s failed (%s); the value is skipped while "
                    "it fails", what, self.LIBRARY, self._describe(exc),
                )  # fmt: skip
            return None

    def _describe(self, exc: BaseException) -> str:
        return describe(exc)

    def _is_unsupported(self, exc: Exception) -> bool:
        """Whether ``exc`` says the GPU will never answer this call (asked once, then not)."""
        return isinstance(exc, AttributeError)  # a binding too old to have the call

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
            _log.debug("jobmeter: ignored %s error", self.LIBRARY, exc_info=True)


class GpuBackend(GpuCalls):
    """Process-wide state of one GPU library: started once, quiet when there is no GPU."""

    OFF_MESSAGE: ClassVar[str] = "jobmeter: no GPU (%s); GPU metrics are off"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._devices: list[GpuDevice] = []
        self._samples: list[GpuSample] = []
        self._sampled_at = float("-inf")
        self._hooked = False
        self._atexit_registered = False

    # -- what a library does ---------------------------------------------------

    def _open(self) -> list[GpuDevice] | str:
        """Import and start the library: its GPUs, or why it is off (closed again)."""
        raise NotImplementedError

    def _close(self) -> None:
        """Shut the library session down (errors are the caller's to ignore)."""
        raise NotImplementedError

    def _sample(self, device: GpuDevice) -> GpuSample:
        raise NotImplementedError

    def visible_devices(self, environ: Mapping[str, str] | None = None) -> list[GpuDevice]:
        """The GPUs a program started with ``environ`` may use (default: this process)."""
        raise NotImplementedError

    def device_process_memory(self, device: GpuDevice, pids: Collection[int]) -> int | None:
        """Bytes of ``device`` memory used by ``pids``; None if the library could not tell."""
        raise NotImplementedError

    def energy_joules(self, device: GpuDevice) -> float | None:
        """A fresh read of ``device``'s total-energy counter, in joules; None without one."""
        raise NotImplementedError

    def power_watts(self, device: GpuDevice) -> float | None:
        """A fresh read of the power ``device`` draws, in watts; None where it cannot tell."""
        raise NotImplementedError

    # -- start, stop, fork -------------------------------------------------------

    def available(self) -> bool:
        """Whether the library is up with at least one GPU; starts it on the first call."""
        on = self._on
        if on is not None:
            return on
        with self._lock:
            if self._on is None:
                self._on = self._start()
            return self._on

    def _start(self) -> bool:
        if not self._hooked:  # on first use, never at import
            fork.on_fork_in_child(self._after_fork_in_child)
            self._hooked = True
        opened = self._open()
        if isinstance(opened, str):
            _log.info(self.OFF_MESSAGE, opened)
            return False
        self._devices = opened
        if not self._atexit_registered:  # survives fork: the child reuses it
            atexit.register(self._shutdown)
            self._atexit_registered = True
        _log.debug("jobmeter: %s started with %d GPU(s)", self.LIBRARY, len(opened))
        return True

    def _shutdown(self) -> None:
        """At exit: shut the library down; later collections report no GPU."""
        if not self._lock.acquire(timeout=1.0):
            return
        try:
            if self._on:
                self._on = False
                self._forget_devices()
                self._quietly(self._close)
        finally:
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The parent's handles belong to its session; the child starts its own.
        # A parent that found no GPU leaves the child without one as well.
        self._lock = threading.Lock()
        self._notes_lock = threading.Lock()
        if self._on:
            self._on = None
        self._forget_devices()

    def _reset_for_tests(self) -> None:
        with self._lock:
            if self._on:
                self._quietly(self._close)
            self._module, self._on = None, None
            self._unsupported, self._noted = set(), set()
            self._forget_devices()

    def _forget_devices(self) -> None:
        self._devices, self._samples, self._sampled_at = [], [], float("-inf")

    # -- what the collectors read ------------------------------------------------

    def devices(self) -> list[GpuDevice]:
        """The GPUs, in the library's index order; empty without a GPU."""
        return list(self._devices) if self.available() else []

    def inventory(self) -> tuple[str | None, int]:
        """(model name of the first GPU, number of GPUs); (None, 0) without a GPU."""
        devices = self.devices()
        return (devices[0].name if devices else None), len(devices)

    def samples(self) -> list[GpuSample]:
        """One sample per GPU, shared by callers within ``SAMPLE_MAX_AGE_S``."""
        if not self.available():
            return []
        # A signal handler's final export may run while this thread holds the
        # lock: after a short wait, answer with the last samples.
        with waits.held_or_not(self._lock) as locked:
            if locked and time.monotonic() - self._sampled_at >= SAMPLE_MAX_AGE_S:
                self._samples = [self._sample(d) for d in self._devices]
                self._sampled_at = time.monotonic()
            return self._samples

    def process_memory(
        self, pids: Collection[int], *, environ: Mapping[str, str] | None = None
    ) -> int | None:
        """Bytes of memory used by ``pids`` on the GPUs they may use; None without one.

        ``environ`` is the environment of the processes (default: this one's),
        whose visibility variable says which GPUs count.
        """
        figures = [self.device_process_memory(d, pids) for d in self.visible_devices(environ)]
        known = [f for f in figures if f is not None]
        return sum(known) if known else None


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, or its type alone when it has no message."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
