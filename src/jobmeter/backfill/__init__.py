"""``Backfill``: progress, rate, ETA, failures, retries, rate limits and requests of a job.

A backfill counts items by outcome and publishes, as OpenTelemetry metrics
under ``jobmeter.backfill.*`` (see docs/backfill.md): items done, failed and
skipped; the planned total and the progress; a smoothed rate and the ETA;
retries and rate-limit hits by reason; batch sizes and times; item times;
the queue size; start, last-success and deadline timestamps; and
``http.client.request.duration`` for the requests it makes. It can keep a
checkpoint to resume from after a crash, push to a Pushgateway, and show a
progress bar (or log lines when stderr is not a terminal).
"""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter.backfill._backfill import Backfill
from jobmeter.backfill._checkpoint import CheckpointError
from jobmeter.backfill._track import Batch

__all__ = [
    "Backfill",
    "Batch",
    "CheckpointError",
]

publish(globals())
