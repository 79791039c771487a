"""Where a backfill's figures go besides OTel: the checkpoint, the Pushgateway, the terminal.

Periodic work runs in the backfill's one background thread; the end (close,
interpreter exit, SIGTERM) writes the last checkpoint, takes the bar down and
makes the last push, in that order, the push bounded by its timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobmeter.backfill._checkpoint import CheckpointFile
from jobmeter.backfill._metrics import Attrs
from jobmeter.backfill._progress import LogLines, RichBar, open_output
from jobmeter.backfill._push import Pusher
from jobmeter.backfill._runtime import Ticker
from jobmeter.backfill._snapshot import Snapshot


@dataclass(frozen=True)
class OutputSettings:
    """The checked output arguments of ``Backfill``."""

    checkpoint: Path | None
    checkpoint_interval: float
    pushgateway: str | None
    push_interval: float
    push_timeout: float
    push_grouping_key: Mapping[str, str]
    progress: bool
    log_interval: float


class Outputs:
    """The checkpoint file, the pusher and the terminal output of one backfill."""

    def __init__(
        self,
        name: str,
        unit: str,
        base: Attrs,
        read: Callable[[], Snapshot],
        settings: OutputSettings,
    ) -> None:
        self._base = base
        self._read = read
        self.checkpoint = (
            None if settings.checkpoint is None else CheckpointFile(settings.checkpoint, name)
        )
        self.pusher = None
        if settings.pushgateway is not None:
            self.pusher = Pusher(settings.pushgateway, name, settings.push_grouping_key,
                                 settings.push_timeout)  # fmt: skip
        self.terminal: RichBar | LogLines | None = open_output(
            name, unit, read, enabled=settings.progress, interval=settings.log_interval
        )
        tasks: list[tuple[float, Callable[[], object]]] = []
        if self.checkpoint is not None:
            self.checkpoint.write(read(), "running")
            tasks.append((settings.checkpoint_interval, self._write_checkpoint))
        if self.pusher is not None:
            tasks.append((settings.push_interval, self._push))
        if isinstance(self.terminal, LogLines):
            tasks.append((settings.log_interval, self.terminal.tick))
        self._ticker = Ticker(name, tasks) if tasks else None
        if self._ticker is not None:
            self._ticker.start()

    @property
    def active(self) -> bool:
        """Whether anything needs a last word at exit or on SIGTERM."""
        return self._ticker is not None or self.terminal is not None

    def _write_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.write(self._read(), "running")

    def _push(self) -> None:
        if self.pusher is not None:
            self.pusher.push(self._base, self._read())

    def finish(self, status: str, success_time: float | None) -> None:
        """The last checkpoint, the bar taken down (or a last line), the last push."""
        if self._ticker is not None:
            self._ticker.stop()
        if self.terminal is not None:
            self.terminal.close(status)
        snapshot = self._read()
        if self.checkpoint is not None:
            self.checkpoint.write(snapshot, status, final=True)
        if self.pusher is not None:
            self.pusher.push_final(self._base, snapshot, success_time)

    def drop(self) -> None:
        """In a forked child: the parent's file, gateway group and terminal are the parent's."""
        self.checkpoint = None
        self.pusher = None
        self.terminal = None
        self._ticker = None
