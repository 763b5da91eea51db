"""A fake aiohttp-like session for offline tests that run ccxt's real code paths.

ccxt accepts an HTTP session through its ``session`` option. Handing it this fake keeps
everything real on ccxt's side (URL building, signing, JSON parsing and ``handle_errors``,
which maps exchange error codes to ccxt exceptions) and only replaces the network. Patching
``exchange.fetch`` instead would skip the error mapping, and pointing ``urls['api']`` at a local
server loses Binance's per-URL error maps (PITFALLS.md).

Usage::

    session = FakeHttpSession([FakeResponse(200, {"serverTime": 1700000000000})])
    exchange = CcxtExchange("binance", redactor=Redactor(), session=session, enable_rate_limit=False)
    await exchange.fetch_server_time()
    assert session.requests[0].url.startswith("https://fapi.binance.com/")

Each item a session answers with is one of

- a :class:`FakeResponse` (status, JSON or text body, headers);
- an exception instance (``asyncio.TimeoutError()``, ``aiohttp.ClientConnectionError("reset")``),
  raised when ccxt opens the request, as aiohttp would;
- a callable taking the :class:`RecordedRequest` and returning either of the above (to answer
  by URL, or to assert on the request before answering).

Other tests import :class:`FakeHttpSession` and :class:`FakeResponse` from here: keep the names.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class FakeResponse:
    """One HTTP answer. A dict or list body is sent as JSON; a str body is sent as it is."""

    status: int = 200
    body: Any = ""
    headers: Mapping[str, str] | None = None
    reason: str | None = None

    @property
    def text_body(self) -> str:
        if isinstance(self.body, str):
            return self.body
        return json.dumps(self.body)

    @property
    def response_headers(self) -> dict[str, str]:
        return dict(self.headers) if self.headers is not None else dict(JSON_HEADERS)

    @property
    def response_reason(self) -> str:
        if self.reason is not None:
            return self.reason
        return _REASONS.get(self.status, "Unknown")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class RecordedRequest:
    """What ccxt sent: method, full URL (with the query string), headers and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout: Any = None
    proxy: Any = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as a url-encoded form (Binance signs POST bodies this way)."""
        return dict(parse_qsl(self.body or "", keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def all_params(self) -> dict[str, Any]:
        """Query string, form body and JSON body merged: where a parameter went depends on the venue."""
        params: dict[str, Any] = dict(self.query)
        if self.body:
            try:
                decoded = json.loads(self.body)
            except ValueError:
                params.update(self.form)
            else:
                if isinstance(decoded, list) and decoded and isinstance(decoded[0], dict):
                    decoded = decoded[0]  # batch endpoints (OKX) send a list of orders
                if isinstance(decoded, dict):
                    params.update(decoded)
        return params


Answer = FakeResponse | BaseException | Callable[[RecordedRequest], "FakeResponse | BaseException"]


class UnexpectedRequestError(AssertionError):
    """The session was asked for more answers than the test queued."""


class _ResponseContext:
    """What ``session.get(...)`` returns: an async context manager yielding the response."""

    def __init__(self, response: FakeResponse) -> None:
        self.status = response.status
        self.reason = response.response_reason
        self.headers = response.response_headers
        self._text = response.text_body

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        return self._text

    async def read(self) -> bytes:
        return self._text.encode()

    @property
    def content(self) -> bytes:
        return self._text.encode()

    async def __aenter__(self) -> _ResponseContext:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class _PendingRequest:
    """Resolves the answer when entered, so an injected exception surfaces where aiohttp raises."""

    def __init__(self, session: FakeHttpSession, request: RecordedRequest) -> None:
        self._session = session
        self._request = request
        self._context: _ResponseContext | None = None

    async def __aenter__(self) -> _ResponseContext:
        answer = self._session._answer(self._request)
        if isinstance(answer, BaseException):
            raise answer
        self._context = _ResponseContext(answer)
        return self._context

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class _NoWebsocket:
    def __init__(self, url: str) -> None:
        self._url = url

    async def __aenter__(self) -> Any:
        import aiohttp

        raise aiohttp.ClientConnectionError(f"offline test session: no websocket to {self._url}")

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class FakeHttpSession:
    """An aiohttp ``ClientSession`` stand-in that records requests and answers from a script.

    ``FakeHttpSession(answers=None, *, default=None)``:

    - ``answers``: an iterable of answers consumed in order (one per request), or a single
      callable used for every request;
    - ``default``: the answer once the queue is empty; without one, an unexpected request raises
      :class:`UnexpectedRequestError` (also kept in ``unexpected``, because the code under test
      turns every exception into an ``ExchangeError``).

    ``requests`` lists every :class:`RecordedRequest`; ``add(...)`` queues more answers.
    """

    def __init__(
        self,
        answers: Iterable[Answer] | Callable[[RecordedRequest], FakeResponse | BaseException] | None = None,
        *,
        default: Answer | None = None,
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self.websocket_urls: list[str] = []
        self.headers: dict[str, str] = {}
        self.closed = False
        self._handler: Callable[[RecordedRequest], FakeResponse | BaseException] | None = None
        self._queue: deque[Answer] = deque()
        if callable(answers) and not isinstance(answers, FakeResponse | BaseException):
            self._handler = answers
        elif answers is not None:
            self._queue.extend(answers)
        self._default = default

    def add(self, *answers: Answer) -> None:
        self._queue.extend(answers)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def _answer(self, request: RecordedRequest) -> FakeResponse | BaseException:
        if self._handler is not None:
            return self._handler(request)
        if self._queue:
            answer = self._queue.popleft()
        elif self._default is not None:
            answer = self._default
        else:
            self.unexpected.append(request)
            return UnexpectedRequestError(f"no answer queued for {request.method} {request.url}")
        if isinstance(answer, FakeResponse | BaseException):
            return answer
        return answer(request)

    def _request(
        self,
        method: str,
        url: Any,
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        proxy: Any = None,
        **_: Any,
    ) -> _PendingRequest:
        if isinstance(data, bytes):
            body: str | None = data.decode()
        else:
            body = None if data is None else str(data)
        recorded = RecordedRequest(method, str(url), dict(headers or {}), body, timeout, proxy)
        self.requests.append(recorded)
        return _PendingRequest(self, recorded)

    def get(self, url: Any, **kwargs: Any) -> _PendingRequest:
        return self._request("GET", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _PendingRequest:
        return self._request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> _PendingRequest:
        return self._request("PUT", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _PendingRequest:
        return self._request("DELETE", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> _PendingRequest:
        return self._request("PATCH", url, **kwargs)

    def ws_connect(self, url: Any, **kwargs: Any) -> _NoWebsocket:
        """ccxt.pro opens websockets through the session; offline every attempt fails to connect.

        Recorded in ``websocket_urls``. Like aiohttp's, the result is entered with ``__aenter__``.
        """
        self.websocket_urls.append(str(url))
        return _NoWebsocket(str(url))

    async def close(self) -> None:
        self.closed = True
