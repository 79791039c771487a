"""A histogram bound to one attribute set's aggregations: ``measure()``'s duration record.

``Histogram.record`` costs about 7 us, most of it finding the attribute set's
aggregation again: the SDK copies, cleans and hashes the attributes at every
call. A binding finds the aggregations once, after the SDK's own first record
made them, then hands each value to them (``_Aggregation.aggregate``: its lock,
the bucket, the exemplar offer), about 1.4 us. Every call checks that what it
found still stands (same readers, same provider state, meter enabled, proxy
bound to the same instrument) and records the public way where it cannot bind:
delta temporality (new aggregations after each collection), a disabled meter, a
proxy not bound yet, another SDK, or internals that moved. Views (renames,
attribute filters, other aggregations) and exemplars work as with ``record``.

Like ``otel_private``, this module touches the SDK's private attributes: if they
move, bindings fail and records take the public path;
tests/core/test_bound_histogram.py fails to say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry.context import get_current
from opentelemetry.metrics import Histogram
from opentelemetry.util.types import AttributeValue

from jobmeter._core import otel_private


class _Point:
    """What an aggregation and an exemplar reservoir read of the SDK's Measurement."""

    __slots__ = ("attributes", "context", "instrument", "time_unix_nano", "value")

    def __init__(self, value: float, time: int, instrument: Any, context: Any, attributes: Any):
        self.value, self.time_unix_nano, self.instrument = value, time, instrument
        self.context, self.attributes = context, attributes


class BoundHistogram:
    """``histogram.record(value, attributes)`` for one attribute set, without the look-up.

    Args:
        histogram: an SDK histogram, or the API's proxy of one.
        attributes: the set; the caller never changes it afterwards.
    """

    __slots__ = ("_aggregations", "_attributes", "_filter", "_generation", "_histogram",
                 "_instrument", "_refused", "_storages")  # fmt: skip

    def __init__(self, histogram: Histogram, attributes: Mapping[str, AttributeValue]) -> None:
        self._histogram: Any = histogram
        self._attributes = attributes
        self._instrument: Any = None  # the SDK instrument while bound
        self._storages: Any = None
        self._aggregations: tuple[Any, ...] = ()
        self._filter: Any = None
        self._generation = -1
        self._refused: Any = None  # the state in which binding failed: not tried again

    def bound(self) -> bool:
        """Whether records skip the SDK's look-up (a record binds where it can)."""
        return self._instrument is not None and self._valid(self._instrument)

    def record(self, value: float) -> None:
        """Record ``value`` (seconds from perf_counter: finite, not negative)."""
        instrument = self._instrument
        if instrument is not None and value >= 0.0 and self._valid(instrument):
            now, context, attributes = time_ns(), get_current(), self._attributes
            point = _Point(value, now, instrument, context, attributes)
            sample = self._filter.should_sample(value, now, attributes, context)
            for aggregation in self._aggregations:
                aggregation.aggregate(point, sample)
            return
        self._histogram.record(value, self._attributes)
        self._bind()

    def _valid(self, instrument: Any) -> bool:
        return bool(
            self._generation == otel_private.sdk_generation
            and instrument._measurement_consumer._reader_storages is self._storages
            and instrument._meter_config.is_enabled
            and (instrument is self._histogram or self._histogram._real_instrument is instrument)
        )

    def _bind(self) -> None:
        """Find the aggregations the record just reached; where none can be, stay unbound."""
        self._instrument = None
        try:
            instrument = getattr(self._histogram, "_real_instrument", self._histogram)
            state = (instrument, instrument._measurement_consumer._reader_storages,
                     otel_private.sdk_generation, instrument._meter_config.is_enabled)  # fmt: skip
            if self._refused == state:
                return
            self._refused = state
            found = _aggregations(instrument, self._attributes)
        except (AttributeError, KeyError, TypeError, ImportError):
            return
        if found is not None:
            self._aggregations, self._filter = found
            self._storages, self._generation = state[1], state[2]
            self._instrument, self._refused = instrument, None


def _aggregations(
    instrument: Any, attributes: Mapping[str, AttributeValue]
) -> tuple[tuple[Any, ...], Any] | None:
    """(the aggregations of ``attributes`` in every reader and view, exemplar filter)."""
    from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram

    if type(instrument) is not _Histogram:
        return None
    sdk: Any = instrument
    if not sdk._meter_config.is_enabled:
        return None
    consumer = sdk._measurement_consumer
    found = []
    for storage in consumer._reader_storages.values():
        for match in storage._instrument_view_instrument_matches[sdk]:
            if match._reset_on_collect:  # delta: new aggregations after every collection
                return None
            keys = match._view._attribute_keys
            kept = {k: v for k, v in attributes.items() if keys is None or k in keys}
            table = match._attributes_aggregation
            aggregation = table.get(vim._hash_attributes(kept))
            if aggregation is None and len(table) > match._cardinality_limit:
                aggregation = table.get(vim._OVERFLOW_KEY)  # the SDK folded the set there
            if aggregation is None:
                return None
            found.append(aggregation)
    return tuple(found), consumer._sdk_config.exemplar_filter
