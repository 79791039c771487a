"""``Backfill.request()``: ``http.client.request.duration`` as the semantic conventions define it.

Attributes: ``http.request.method`` (a known method, else ``_OTHER``),
``server.address`` and ``server.port`` (from the URL; never the full URL, which
is unbounded), ``http.response.status_code`` when a response came, and
``error.type``: the exception's class when the request raised, else the status
code as a string for 4xx and 5xx answers. Hooks for ``httpx`` (transports) and
``requests`` (adapters) time every request of a client; both libraries are
imported only when a hook is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from time import perf_counter
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from jobmeter.backfill._args import label
from jobmeter.collector import error_type

KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Record = Callable[[float, Mapping[str, AttributeValue]], None]


def request_attributes(
    base: Mapping[str, AttributeValue],
    method: str,
    url: str | None,
    server_address: str | None,
    server_port: int | None,
) -> dict[str, AttributeValue]:
    """The attributes every point of one request carries; raises ValueError on bad input."""
    if not isinstance(method, str) or not method:
        raise ValueError(f"method must be an HTTP method such as 'GET', got {method!r}")
    upper = method.upper()
    attributes: dict[str, AttributeValue] = {
        **base,
        "http.request.method": upper if upper in KNOWN_METHODS else "_OTHER",
    }
    if url is not None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__}")
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"url must be absolute, such as 'https://host/path', got {url!r}")
        server_address = server_address or parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"url has an invalid port: {url!r}") from None
        server_port = server_port or port or _DEFAULT_PORTS.get(parts.scheme)
    if server_address is None:
        raise ValueError("request() needs url= or server_address= (the host it talks to)")
    attributes["server.address"] = str(server_address)
    if server_port is not None:
        if type(server_port) is not int or not 0 < server_port < 65536:
            raise ValueError(f"server_port must be a port from 1 to 65535, got {server_port!r}")
        attributes["server.port"] = server_port
    return attributes


def _status(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 100 <= value <= 999:
        raise ValueError(f"status_code must be an HTTP status from 100 to 999, got {value!r}")
    return value


class Request:
    """A timed HTTP request: a ``with`` block; set ``status_code`` inside it.

    Returned by ``Backfill.request()``. When the block raises, ``error.type``
    is the exception's class; otherwise a status of 400 or more makes it the
    status code. The exception propagates unchanged.
    """

    __slots__ = ("_attributes", "_record", "_recorded", "_start", "error_type", "status_code")

    def __init__(self, record: Record, attributes: dict[str, AttributeValue]) -> None:
        self._record = record
        self._attributes = attributes
        self._start = 0.0
        self._recorded = False
        self.status_code: int | None = None
        self.error_type: str | None = None

    def __enter__(self) -> Request:
        if self._recorded:
            raise RuntimeError("this request was recorded already; call request() again")
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure = error_type(exc_type) if exc_type is not None else None
        self.finish(perf_counter() - self._start, failure)

    def finish(self, duration: float, failure: str | None = None) -> None:
        """Record the request once, ``duration`` seconds long."""
        if self._recorded:
            return
        self._recorded = True
        attributes = dict(self._attributes)
        status = _status(self.status_code)
        if status is not None:
            attributes["http.response.status_code"] = status
        failure = failure or self.error_type
        if failure is None and status is not None and status >= 400:
            failure = str(status)
        if failure is not None:
            attributes["error.type"] = failure
        self._record(duration, attributes)


def check_duration(duration: Any) -> float:
    if type(duration) not in (int, float) or not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a number of seconds >= 0, got {duration!r}")
    return float(duration)


class RequestMethods:
    """``Backfill.request()`` and the client hooks (a mixin of ``Backfill``)."""

    _base: dict[str, AttributeValue]
    _instruments: Any

    def request(self, method: str = "GET", url: str | None = None, *,
                server_address: str | None = None, server_port: int | None = None,
                status_code: int | None = None, duration: float | None = None,
                error_type: str | None = None) -> Request:  # fmt: skip
        """Time an HTTP request: a ``with`` block, or recorded at once when ``duration`` is given.

        Records ``http.client.request.duration`` with ``http.request.method``,
        ``server.address``, ``server.port``, ``http.response.status_code`` and
        ``error.type``. Give ``url`` (only its host and port are kept) or
        ``server_address``. Inside the block, set ``.status_code``.
        """
        attributes = request_attributes(self._base, method, url, server_address, server_port)
        timed = Request(self._instruments.http_duration.record, attributes)
        timed.status_code = status_code
        timed.error_type = None if error_type is None else label("error_type", error_type)
        if duration is not None:
            timed.finish(check_duration(duration))
        return timed

    def httpx_transport(self, transport: Any = None) -> Any:
        """An httpx transport that times every request: ``httpx.Client(transport=...)``."""
        return httpx_transport(self.request, transport)

    def httpx_async_transport(self, transport: Any = None) -> Any:
        """The same for ``httpx.AsyncClient(transport=...)``."""
        return httpx_async_transport(self.request, transport)

    def instrument_requests(self, session: Any) -> Any:
        """Time every request of a ``requests.Session``; returns the session."""
        return instrument_requests(self.request, session)


def httpx_transport(start: Callable[..., Request], inner: Any = None) -> Any:
    """An ``httpx.BaseTransport`` that times each request of a sync ``httpx.Client``."""
    import httpx

    wrapped = inner if inner is not None else httpx.HTTPTransport()

    class TimedTransport(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            url = request.url
            timed = start(request.method, server_address=url.host,
                          server_port=url.port or _DEFAULT_PORTS.get(url.scheme))  # fmt: skip
            with timed:
                response: httpx.Response = wrapped.handle_request(request)
                timed.status_code = response.status_code
            return response

        def close(self) -> None:
            wrapped.close()

    return TimedTransport()


def httpx_async_transport(start: Callable[..., Request], inner: Any = None) -> Any:
    """An ``httpx.AsyncBaseTransport`` that times each request of an ``httpx.AsyncClient``."""
    import httpx

    wrapped = inner if inner is not None else httpx.AsyncHTTPTransport()

    class TimedAsyncTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            url = request.url
            timed = start(request.method, server_address=url.host,
                          server_port=url.port or _DEFAULT_PORTS.get(url.scheme))  # fmt: skip
            with timed:
                response: httpx.Response = await wrapped.handle_async_request(request)
                timed.status_code = response.status_code
            return response

        async def aclose(self) -> None:
            await wrapped.aclose()

    return TimedAsyncTransport()


def instrument_requests(start: Callable[..., Request], session: Any) -> Any:
    """Wrap each adapter mounted on a ``requests.Session`` so that every request is timed."""
    import requests
    import requests.adapters

    if not isinstance(session, requests.Session):
        raise TypeError(f"expected a requests.Session, got {type(session).__name__}")

    class TimedAdapter(requests.adapters.BaseAdapter):
        def __init__(self, inner: requests.adapters.BaseAdapter) -> None:
            super().__init__()
            self.inner = inner

        def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
            timed = start(request.method or "GET", url=request.url)
            with timed:
                response: requests.Response = self.inner.send(request, *args, **kwargs)
                timed.status_code = response.status_code
            return response

        def close(self) -> None:
            self.inner.close()

    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, TimedAdapter) and type(adapter).__name__ != "TimedAdapter":
            session.mount(prefix, TimedAdapter(adapter))
    return session
