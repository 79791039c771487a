"""Checking what callers give ``Backfill``: every bad value is a clear error naming it."""

from __future__ import annotations

import logging
import math
import numbers
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from jobmeter.backfill._snapshot import LABEL_MAX_CHARS, UNSPECIFIED
from jobmeter.collector import error_type

_log = logging.getLogger("jobmeter")


def count(setting: str, value: Any) -> int:
    """A count: a whole number >= 0 (counts only grow)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{setting} must be a whole number (int) >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{setting} must be >= 0 (counts only grow), got {value!r}")
    return int(value)


def optional_count(setting: str, value: Any) -> int | None:
    return None if value is None else count(setting, value)


def seconds(setting: str, value: Any) -> float:
    """An interval: a finite number of seconds above 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{setting} must be a number of seconds > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{setting} must be a number of seconds > 0, got {value!r}")
    return float(value)


def text(setting: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{setting} must be a non-empty string, got {value!r}")
    return value


def label(setting: str, value: Any) -> str:
    """A reason or error type: a short non-empty string, an exception or its class."""
    if value is None:
        return UNSPECIFIED
    if isinstance(value, type) and issubclass(value, BaseException):
        return error_type(value)
    if isinstance(value, BaseException):
        return error_type(type(value))
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"{setting} must be a non-empty str, an exception or an exception class, got {value!r}"
        )
    return value[:LABEL_MAX_CHARS]


# Unix seconds past this (the year 5138) are taken for milliseconds, a common slip.
_DEADLINE_MAX = 1e11
_DEADLINE_ACCEPTED = "a Unix timestamp in seconds (int or float) or a timezone-aware datetime"


def deadline(value: Any) -> float | None:
    """When the backfill should be finished, as Unix seconds; None when not given."""
    if value is None:
        return None
    if isinstance(value, datetime):
        # A naive datetime would be read in the local zone of whichever host runs the job.
        if value.utcoffset() is None:
            raise ValueError(f"deadline must be {_DEADLINE_ACCEPTED}; got a naive datetime "
                             f"{value!r} (add tzinfo=, such as datetime.UTC)")  # fmt: skip
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"deadline must be {_DEADLINE_ACCEPTED}, got {value!r}")
    when = float(value)
    if not math.isfinite(when) or when <= 0:
        raise ValueError(f"deadline must be {_DEADLINE_ACCEPTED} > 0, got {value!r}")
    if when > _DEADLINE_MAX:
        raise ValueError(f"deadline must be {_DEADLINE_ACCEPTED}; {value!r} looks like "
                         "milliseconds (divide by 1000)")  # fmt: skip
    return when


def grouping_key(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        raise TypeError(f"push_grouping_key must be a dict of str to str, got {value!r}")
    taken = {"job", "instance"} & set(value)
    if taken:
        raise ValueError(
            f"push_grouping_key cannot set {sorted(taken)[0]!r}: the backfill's name is the job "
            "and the host is the instance"
        )
    return dict(value)


def retry_after(value: Any) -> float | None:
    """Seconds to wait from a number or a Retry-After header (seconds or an HTTP date).

    What a server sends is not the caller's fault: an unreadable header gives
    None, a negative wait or a date in the past gives 0.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"retry_after must be seconds or a Retry-After header, got {value!r}")
    if isinstance(value, numbers.Real):
        wait = float(value)
        return max(wait, 0.0) if math.isfinite(wait) else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        raise TypeError(f"retry_after must be seconds or a Retry-After header, got {value!r}")
    raw = value.strip()
    try:
        return max(float(raw), 0.0) if math.isfinite(float(raw)) else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        _log.debug("jobmeter: unreadable Retry-After %r", value)
        return None
    return max(when.timestamp() - time.time(), 0.0)
