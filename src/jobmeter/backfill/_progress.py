"""What a backfill shows in the terminal: a rich progress bar on a TTY, log lines elsewhere.

The bar and the lines read the backfill's own figures (count, smoothed rate,
ETA), so the terminal, Prometheus and the Pushgateway agree. rich is imported
only when a bar is shown (it costs ~25 ms at import).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from jobmeter._core import threads
from jobmeter.backfill._rate import format_duration, format_rate, plural
from jobmeter.backfill._snapshot import Snapshot

_log = logging.getLogger("jobmeter")

Read = Callable[[], Snapshot]


def _count(s: Snapshot, unit: str) -> str:
    if s.total is None:
        return f"{s.completed:,} {plural(unit)}"
    return f"{s.completed:,}/{s.total:,} {plural(unit)}"


def _extra(s: Snapshot) -> str:
    parts = []
    if s.failed_total:
        parts.append(f"{s.failed_total:,} failed")
    if s.skipped:
        parts.append(f"{s.skipped:,} skipped")
    if s.retried_total:
        parts.append(f"{s.retried_total:,} failed retried")
    retries = sum(s.retries.values())
    if retries:
        parts.append(f"{retries:,} retries")
    hits = sum(s.rate_limit_hits.values())
    if hits:
        parts.append(f"{hits:,} rate-limited")
    return ", ".join(parts)


def status_line(name: str, unit: str, s: Snapshot, elapsed: float, ending: str = "") -> str:
    """``backfill orders: 120/365 days (32.9%), 4.1 day/s, ETA 1m00s, 2 failed, elapsed 30s``."""
    parts = [_count(s, unit)]
    if s.progress is not None:
        parts[0] += f" ({s.progress:.1%})"
    parts.append(format_rate(s.rate, unit))
    if s.total is not None:
        parts.append(f"ETA {format_duration(s.eta)}")
    if extra := _extra(s):
        parts.append(extra)
    parts.append(f"elapsed {format_duration(elapsed)}")
    return f"jobmeter: backfill {name}{ending}: " + ", ".join(parts)


class LogLines:
    """A status line on stderr every ``interval`` seconds, and one at the end."""

    def __init__(self, name: str, unit: str, read: Read, interval: float) -> None:
        self.name = name
        self.unit = unit
        self.interval = interval
        self._read = read
        self._since = time.monotonic()

    def _write(self, line: str) -> None:
        stream: TextIO | None = sys.stderr  # looked up now: redirections apply
        if stream is None:
            return
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr is not the job's problem
            pass

    def tick(self) -> None:
        self._write(status_line(self.name, self.unit, self._read(), self.elapsed))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._since

    def close(self, status: str) -> None:
        self._write(status_line(self.name, self.unit, self._read(), self.elapsed, f" {status}"))


def _live_progress(sync: Callable[[], None], stream: TextIO) -> Any:
    """A rich Progress that reads the backfill's figures before every refresh."""
    from rich.console import Console, RenderableType
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    class LiveProgress(Progress):
        def get_renderables(self) -> Iterable[RenderableType]:
            sync()
            yield from super().get_renderables()

    return LiveProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        console=Console(file=stream),
        refresh_per_second=4,
        # stdout is shown above the bar only when it is the same terminal.
        redirect_stdout=bool(getattr(sys.stdout, "isatty", lambda: False)()),
        redirect_stderr=True,
    )


class RichBar:
    """A rich progress bar on stderr: count, bar, percentage, rate, ETA, failures, elapsed."""

    def __init__(self, name: str, unit: str, read: Read, stream: TextIO) -> None:
        self.name = name
        self.unit = unit
        self._read = read
        self._closed = False
        self._task: Any = None
        self._failed = False
        self._progress = _live_progress(self._sync, stream)
        self._task = self._progress.add_task(name, total=None, count="", rate="", eta="",
                                             extra="")  # fmt: skip
        with threads.masked():  # rich's refresh thread
            self._progress.start()

    def _sync(self) -> None:
        if self._task is None or self._failed:  # rich renders once while being built
            return
        try:
            self._update()
        except Exception:  # the bar stops moving; the job goes on
            self._failed = True
            _log.warning("jobmeter: the progress bar of backfill %r failed", self.name,
                         exc_info=True)  # fmt: skip

    def _update(self) -> None:
        s = self._read()
        self._progress.update(
            self._task,
            completed=s.completed,
            total=s.total,
            count=_count(s, self.unit) + ("" if s.progress is None else f" {s.progress:.0%}"),
            rate=format_rate(s.rate, self.unit),
            eta="" if s.total is None else f"ETA {format_duration(s.eta)}",
            extra=_extra(s),
        )

    def tick(self) -> None:
        """Nothing: rich refreshes by itself."""

    def close(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._progress.update(self._task, description=f"{self.name} {status}")
        self._progress.stop()  # one last refresh, the cursor back


def open_output(
    name: str, unit: str, read: Read, *, enabled: bool, interval: float
) -> RichBar | LogLines | None:
    """The bar when stderr is a terminal, log lines when it is not, nothing when disabled."""
    if not enabled:
        return None
    stream = sys.stderr
    if stream is not None and getattr(stream, "isatty", lambda: False)():
        return RichBar(name, unit, read, stream)
    return LogLines(name, unit, read, interval)
