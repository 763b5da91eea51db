"""Real exchanges through ccxt: the ``Exchange`` protocol over ``ccxt.async_support`` / ``ccxt.pro``.

Three promises hold for every public method:

- only our ``ExchangeError`` kinds escape (ccxt's classes, aiohttp's and parsing surprises are
  translated by ``map_ccxt_error``), raised outside the ``except`` block so the original ccxt
  exception, whose text carries the signed URL, is not even chained;
- results are our frozen dataclasses (``ccxt_parse``), never ccxt dicts;
- no secret reaches a log record or an exception text: credentials are registered with the
  Redactor, ccxt's own logger (which writes headers and signed URLs at DEBUG) is held at INFO,
  and our records carry only symbols, sides, sizes and ids.

ccxt is imported lazily in the constructor (0.5–4.5 s), never at module import, so the first
window opens before it loads. When ``ccxt.pro`` provides the exchange and websockets are
wanted, one ccxt.pro instance serves both REST and streams (its classes extend the REST ones),
so there is one session and one rate limiter per connection.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from cts_desktop.domain.market import (
    ApiType,
    Balance,
    Candle,
    Fill,
    MarginMode,
    MarketInfo,
    MarketType,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    PositionSide,
    PositionSnapshot,
    Ticker,
    TimeInForce,
    VenueOrderStatus,
)
from cts_desktop.exchanges import ccxt_parse
from cts_desktop.exchanges.catalog import (
    ExchangeSpec,
    TestnetMethod,
    UnknownExchangeIdError,
    UnsupportedApiTypeError,
    get_spec,
)
from cts_desktop.exchanges.ccxt_errors import (
    MALFORMED_RESPONSE_MESSAGE,
    UNEXPECTED_RESPONSE_MESSAGE,
    clean_detail,
    map_ccxt_error,
)
from cts_desktop.exchanges.errors import (
    BadSymbolError,
    ErrorKind,
    ExchangeError,
    InvalidOrderError,
    NetworkError,
    NotSupportedError,
    OrderNotFoundError,
    UnknownExchangeError,
)
from cts_desktop.redaction import Redactor
from cts_desktop.storage.secrets import Credentials

log = logging.getLogger(__name__)

CCXT_LOGGER = "ccxt.base.exchange"

T = TypeVar("T")

# Venue answers to "set X" when X already has that value: success for us.
_NO_CHANGE_MARKERS = (
    "no need to change",  # Binance -4046 margin type, -4059 position side
    "not modified",  # Bybit 110043 leverage, 110026 margin mode, 110025 position mode
    "110043",
    "110026",
    "110025",
    "-4046",
    "-4059",
)
# ccxt ids whose contract stop/take-profit orders live in a separate "algo" order book, so a
# lookup by id or client id must be repeated with ``trigger=True`` when the plain one misses.
_TRIGGER_BOOK_IDS = frozenset({"binanceusdm", "okx"})
_CLOSED_ORDERS_LOOKBACK = 100

# Bodies of 2xx answers that were not JSON, collected per ``_call``. ccxt does not fail on those:
# its parsers read a string as "no data" and fetch_balance() returns an empty balance, which
# would look like an empty account. A list object travels into tasks ccxt spawns (load_markets).
_MALFORMED_BODIES: ContextVar[list[str] | None] = ContextVar("cts_ccxt_malformed_bodies", default=None)


def _quiet_ccxt_logger() -> None:
    """ccxt writes request headers (API keys) and signed URLs at DEBUG even without ``verbose``."""
    logger = logging.getLogger(CCXT_LOGGER)
    if logger.getEffectiveLevel() < logging.INFO:
        logger.setLevel(logging.INFO)


def _load_ccxt_class(ccxt_id: str, use_websocket: bool) -> tuple[Any, bool]:
    """The ccxt class for ``ccxt_id`` and whether it can stream (ccxt.pro)."""
    if use_websocket:
        try:
            import ccxt.pro as pro
        except ImportError:  # pragma: no cover - ccxt.pro ships inside ccxt since 1.95
            pro = None
        cls = getattr(pro, ccxt_id, None) if pro is not None else None
        if cls is not None:
            return cls, True
    import ccxt.async_support as rest

    return getattr(rest, ccxt_id), False


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _is_no_change(exc: BaseException) -> bool:
    import ccxt

    if isinstance(exc, ccxt.NoChange):
        return True
    if not isinstance(exc, ccxt.ExchangeError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _NO_CHANGE_MARKERS)


def _install_response_check(client: Any) -> None:
    """Wrap ccxt's ``on_rest_response`` hook to note 2xx bodies that are not JSON.

    ``on_rest_response`` is ccxt's documented per-response hook; the wrapper only records and
    returns ccxt's own result, so ccxt's parsing and error mapping run unchanged.
    """
    original = client.on_rest_response

    def on_rest_response(
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        response_headers: Any,
        response_body: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        body = original(
            code, reason, url, method, response_headers, response_body, request_headers, request_body
        )
        sink = _MALFORMED_BODIES.get()
        successful = isinstance(code, int) and 200 <= code < 300
        if sink is not None and successful and not (isinstance(body, str) and body and _is_json(body)):
            sink.append(body if isinstance(body, str) else "")
        return body

    client.on_rest_response = on_rest_response


def _now_ms() -> int:
    return int(time.time() * 1000)


def _leverage_value(leverage: float) -> int | float:
    """Whole leverages go out as ints: Binance and OKX reject ``10.0``."""
    return int(leverage) if float(leverage).is_integer() else float(leverage)


class CcxtExchange:
    """One connection to one exchange account through ccxt.

    ``exchange_id`` is our catalog id ('binance', 'bybit', 'okx', 'bingx'); the catalog picks the
    ccxt class for ``api_type`` (Binance perpetuals are ``binanceusdm``) and the testnet switch.
    ``session`` is handed to ccxt (tests pass a fake aiohttp-like session); ``markets`` and
    ``currencies`` given up front are installed with ccxt's ``set_markets`` so nothing is
    downloaded. Raises NotSupportedError for unknown or unsupported exchanges, API types or
    testnets, with the catalog's reason.
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        api_type: ApiType = ApiType.PERPETUAL_FUTURES,
        credentials: Credentials | None = None,
        testnet: bool = False,
        redactor: Redactor,
        session: Any | None = None,
        timeout_ms: int = 10_000,
        enable_rate_limit: bool = True,
        markets: dict[str, Any] | None = None,
        currencies: dict[str, Any] | None = None,
        use_websocket: bool = True,
    ) -> None:
        try:
            spec = get_spec(exchange_id)
            variant = spec.variant(api_type)
        except (UnknownExchangeIdError, UnsupportedApiTypeError) as exc:
            raise NotSupportedError(exchange_id, str(exc)) from None
        if testnet and not variant.testnet.available:
            raise NotSupportedError(
                spec.id,
                f"{spec.display_name} has no testnet for the API type '{api_type.value}'. "
                f"{variant.testnet.note}",
            )
        self._spec: ExchangeSpec = spec
        self._api_type = api_type
        self._testnet = testnet
        self._redactor = redactor
        self._has_credentials = credentials is not None
        if credentials is not None:
            redactor.register(credentials.api_key, credentials.api_secret, credentials.passphrase)
        _quiet_ccxt_logger()

        config: dict[str, Any] = {
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "options": dict(variant.options),
        }
        if credentials is not None:
            config["apiKey"] = credentials.api_key
            config["secret"] = credentials.api_secret
            if credentials.passphrase:
                config["password"] = credentials.passphrase
        if session is not None:
            config["session"] = session
        cls, self._streaming = _load_ccxt_class(variant.ccxt_id, use_websocket)
        error: ExchangeError | None = None
        try:
            client = cls(config)
            _install_response_check(client)
            if session is not None:
                # ccxt waits 250 ms on close for its own aiohttp connector; an injected session is
                # closed by its owner, so that grace period only slows shutdown (and tests) down.
                client.timeout_on_exit = 0
            if testnet and variant.testnet.method is TestnetMethod.SANDBOX:
                client.set_sandbox_mode(True)
            elif testnet and variant.testnet.method is TestnetMethod.DEMO_TRADING:
                client.enable_demo_trading(True)
            if markets is not None:
                client.set_markets(markets, currencies)
        except Exception as exc:
            error = map_ccxt_error(exc, spec.id, redactor)
        if error is not None:
            raise error
        self._client: Any = client
        self._markets: dict[str, MarketInfo] | None = None
        if markets is not None:
            self._markets = self._parsed(self._filter_markets, client.markets)
        self._hedged: bool | None = None
        self._margin_modes: dict[str, MarginMode] = {}
        self._leverages: dict[str, int | float] = {}

    # ---------------------------------------------------------------- identity

    @property
    def name(self) -> str:
        return self._spec.id

    @property
    def spec(self) -> ExchangeSpec:
        return self._spec

    @property
    def api_type(self) -> ApiType:
        return self._api_type

    @property
    def testnet(self) -> bool:
        return self._testnet

    @property
    def ccxt_id(self) -> str:
        return str(self._client.id)

    @property
    def ccxt_client(self) -> Any:
        """The underlying ccxt instance, for diagnostics and tests only.

        Calling it directly bypasses the error translation and the redaction promises above.
        """
        return self._client

    @property
    def supports_streaming(self) -> bool:
        return self._streaming

    @property
    def supports_attached_tp_sl(self) -> bool:
        """Whether an order can carry take-profit / stop-loss prices (ccxt's unified params).

        Binance cannot: place separate reduce-only STOP_LOSS / TAKE_PROFIT orders there.
        """
        return bool(self._client.has.get("createOrderWithTakeProfitAndStopLoss"))

    # ---------------------------------------------------------------- plumbing

    async def _call(self, method: str, *args: Any, tolerate_no_change: bool = False) -> Any:
        """Run one ccxt coroutine; anything it raises comes out as one of our ExchangeErrors.

        A 2xx answer that is not JSON fails the call with NetworkError even when ccxt returned
        something, because ccxt then returns empty structures rather than raising.
        """
        malformed: list[str] = []
        token = _MALFORMED_BODIES.set(malformed)
        try:
            result = await getattr(self._client, method)(*args)
        except Exception as exc:
            if tolerate_no_change and _is_no_change(exc):
                log.debug("%s %s: already set on the exchange", self.name, method)
                return None
            error = self._malformed_error(malformed) or self._translate(exc)
        else:
            maybe_error = self._malformed_error(malformed)
            if maybe_error is None:
                return result
            error = maybe_error
        finally:
            _MALFORMED_BODIES.reset(token)
        log.debug("%s %s failed: %s", self.name, method, error)
        raise error

    def _malformed_error(self, bodies: list[str]) -> ExchangeError | None:
        if not bodies:
            return None
        sample = bodies[0][:120] if bodies[0] else "an empty body"
        return NetworkError(
            self.name,
            MALFORMED_RESPONSE_MESSAGE,
            detail=clean_detail(f"the answer began: {sample}", self._redactor),
        )

    def _translate(self, exc: Exception) -> ExchangeError:
        error = map_ccxt_error(exc, self.name, self._redactor)
        if error.kind is ErrorKind.UNKNOWN:
            log.warning("%s: unexpected %s", self.name, error.detail or type(exc).__name__)
        return error

    def _parsed(self, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Apply a ccxt_parse function; a malformed ccxt result becomes UnknownExchangeError."""
        try:
            return parse(*args, **kwargs)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            error = UnknownExchangeError(
                self.name,
                UNEXPECTED_RESPONSE_MESSAGE,
                detail=clean_detail(f"{type(exc).__name__}: {exc}", self._redactor),
            )
        raise error

    def _filter_markets(self, markets: Mapping[str, Mapping[str, Any]]) -> dict[str, MarketInfo]:
        """Only the markets this connection's API type trades: spot, linear perpetuals, or both."""
        parsed = ccxt_parse.parse_markets(markets or {}, int(self._client.precisionMode))
        wanted: set[MarketType] = set()
        if self._api_type in (ApiType.SPOT, ApiType.UNIFIED):
            wanted.add(MarketType.SPOT)
        if self._api_type in (ApiType.PERPETUAL_FUTURES, ApiType.UNIFIED):
            wanted.add(MarketType.SWAP)
        return {
            symbol: info
            for symbol, info in parsed.items()
            if info.type in wanted and (info.type is MarketType.SPOT or info.linear)
        }

    def _raw_market(self, symbol: str) -> Mapping[str, Any] | None:
        markets = self._client.markets or {}
        market = markets.get(symbol)
        return market if isinstance(market, Mapping) else None

    def _is_contract(self, symbol: str) -> bool:
        market = self._raw_market(symbol)
        if market is None:
            return self._api_type is not ApiType.SPOT
        return bool(market.get("contract")) or market.get("type") in ("swap", "future")

    def _require_streaming(self, what: str) -> None:
        if not self._streaming:
            raise NotSupportedError(
                self.name,
                f"Streaming ({what}) is not available for this connection; market data is polled over REST.",
            )

    def _require_contracts(self, what: str) -> None:
        if self._api_type is ApiType.SPOT:
            raise NotSupportedError(self.name, f"A spot connection has no {what}.")

    # ---------------------------------------------------------------- markets

    async def load_markets(self, *, reload: bool = False) -> dict[str, MarketInfo]:
        raw = await self._call("load_markets", reload)
        self._markets = self._parsed(self._filter_markets, raw)
        return dict(self._markets)

    def market(self, symbol: str) -> MarketInfo:
        if self._markets is None:
            raise BadSymbolError(self.name, f"Markets are not loaded yet; cannot look up {symbol}.")
        try:
            return self._markets[symbol]
        except KeyError:
            raise BadSymbolError(
                self.name,
                f"{symbol} is not listed for this connection's account type ({self._api_type.value}).",
            ) from None

    async def fetch_server_time(self) -> int:
        value = await self._call("fetch_time")
        result = ccxt_parse.to_int(value)
        if result is None:
            raise UnknownExchangeError(self.name, UNEXPECTED_RESPONSE_MESSAGE, detail="no server time")
        return result

    async def clock_skew_ms(self) -> int:
        """Server time minus local time, taking the local time at the request's midpoint.

        Signed requests carry a timestamp the venue checks against a receive window (5 s on
        Bybit); the connection test warns when this is large.
        """
        before = time.time()
        server = await self.fetch_server_time()
        after = time.time()
        return round(server - (before + after) * 500)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        raw = await self._call("fetch_ticker", symbol)
        return self._parsed(ccxt_parse.parse_ticker, raw, _now_ms())

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, Ticker]:
        raw = await self._call("fetch_tickers", symbols)
        now = _now_ms()
        result: dict[str, Ticker] = {}
        for symbol, item in (raw or {}).items():
            try:
                result[symbol] = ccxt_parse.parse_ticker(item, now)
            except (ValueError, TypeError, AttributeError):
                continue  # one priceless ticker must not hide the others
        return result

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since_ms: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        raw = await self._call("fetch_ohlcv", symbol, timeframe, since_ms, limit)
        return self._parsed(ccxt_parse.parse_ohlcv, raw or [])

    # ---------------------------------------------------------------- streams

    async def watch_ticker(self, symbol: str) -> Ticker:
        self._require_streaming("tickers")
        raw = await self._call("watch_ticker", symbol)
        return self._parsed(ccxt_parse.parse_ticker, raw, _now_ms())

    async def watch_ohlcv(self, symbol: str, timeframe: str = "1m") -> list[Candle]:
        self._require_streaming("candles")
        raw = await self._call("watch_ohlcv", symbol, timeframe)
        return self._parsed(ccxt_parse.parse_ohlcv, raw or [])

    async def watch_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        self._require_streaming("orders")
        raw = await self._call("watch_orders", symbol)
        return [self._parsed(ccxt_parse.parse_order, item) for item in raw or []]

    # ---------------------------------------------------------------- account

    async def fetch_balance(self) -> dict[str, Balance]:
        raw = await self._call("fetch_balance")
        return self._parsed(ccxt_parse.parse_balance, raw or {})

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[PositionSnapshot]:
        """Open positions (empty ones are left out); a spot connection has none."""
        if self._api_type is ApiType.SPOT:
            return []
        if symbols is not None and len(symbols) > 1 and self._client.id == "bybit":
            # Bybit's position list takes one symbol or none (all USDT-settled ones): ask for
            # all and keep the requested ones, rather than one request per symbol.
            raw = await self._call("fetch_positions", None)
            wanted = set(symbols)
            raw = [p for p in raw or [] if isinstance(p, Mapping) and p.get("symbol") in wanted]
        else:
            raw = await self._call("fetch_positions", symbols)
        return self._parsed(ccxt_parse.parse_positions, raw or [])

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        """Open orders of one symbol, or of every symbol of this connection's account.

        Without a symbol ccxt asks the account's default market type only, so a unified account
        (spot and perpetuals) is asked twice.
        """
        raw = list(await self._call("fetch_open_orders", symbol) or [])
        if symbol is None and self._api_type is ApiType.UNIFIED:
            raw += list(await self._call("fetch_open_orders", None, None, None, {"type": "spot"}) or [])
        return [self._parsed(ccxt_parse.parse_order, item) for item in raw]

    async def fetch_my_trades(
        self, symbol: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[Fill]:
        raw = await self._call("fetch_my_trades", symbol, since_ms, limit)
        return [self._parsed(ccxt_parse.parse_trade, item) for item in raw or []]

    # ---------------------------------------------------------------- orders

    def _order_arguments(self, request: OrderRequest) -> tuple[str, float | None, dict[str, Any]]:
        """ccxt's (type, price, params) for our request; refuses inconsistent requests before sending."""
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        price = request.price
        if request.type is OrderType.MARKET:
            ccxt_type, price = "market", None
        elif request.type is OrderType.LIMIT:
            if price is None:
                raise InvalidOrderError(self.name, "A limit order needs a price.")
            ccxt_type = "limit"
        else:
            if request.stop_price is None:
                raise InvalidOrderError(self.name, f"A {request.type.value} order needs a trigger price.")
            key = "stopLossPrice" if request.type is OrderType.STOP_LOSS else "takeProfitPrice"
            params[key] = request.stop_price
            ccxt_type = "limit" if price is not None else "market"
        if ccxt_type == "limit" and request.time_in_force is not TimeInForce.GTC:
            params["timeInForce"] = request.time_in_force.value

        reduce_only = request.reduce_only
        if request.position_side is not None:
            # Hedge mode: ccxt's unified ``hedged`` flag derives the venue's position side
            # (Binance/BingX positionSide, Bybit positionIdx, OKX posSide) from side + reduceOnly.
            closing = (request.position_side is PositionSide.LONG) == (request.side is OrderSide.SELL)
            if request.reduce_only and not closing:
                raise InvalidOrderError(
                    self.name,
                    f"A reduce-only {request.side.value} order cannot open a {request.position_side.value} "
                    "position.",
                )
            params["hedged"] = True
            reduce_only = closing
        if reduce_only:
            params["reduceOnly"] = True
        if self._client.id == "okx" and self._is_contract(request.symbol):
            mode = self._margin_modes.get(request.symbol)
            if mode is not None:
                params["marginMode"] = mode.value  # OKX wants the trade mode on every order
        if request.take_profit is not None or request.stop_loss is not None:
            if not self.supports_attached_tp_sl:
                raise NotSupportedError(
                    self.name,
                    f"{self._spec.display_name} cannot attach take-profit/stop-loss to an order; place "
                    "separate reduce-only stop orders instead. Nothing was sent.",
                )
            if request.take_profit is not None:
                params["takeProfit"] = {"triggerPrice": request.take_profit}
            if request.stop_loss is not None:
                params["stopLoss"] = {"triggerPrice": request.stop_loss}
        return ccxt_type, price, params

    async def create_order(self, request: OrderRequest) -> OrderSnapshot:
        """Send an order carrying our client order id (stored by the engine before this call).

        Venues that acknowledge with little more than an id (Bybit, OKX) get the missing fields
        from the request, with status open; the engine's reconciliation fetches the real state.
        """
        ccxt_type, price, params = self._order_arguments(request)
        log.debug(
            "%s create %s %s %s %s (client id %s)",
            self.name,
            request.symbol,
            request.side.value,
            request.type.value,
            request.amount,
            request.client_order_id,
        )
        raw = await self._call(
            "create_order", request.symbol, ccxt_type, request.side.value, request.amount, price, params
        )
        return self._parsed(ccxt_parse.parse_order, raw or {}, fallback=request)

    async def _order_lookup(
        self, method: str, order_id: str | None, symbol: str, params: dict[str, Any]
    ) -> Any:
        """fetch_order / cancel_order, retried in the trigger-order book where the venue has one."""
        try:
            return await self._call(method, order_id, symbol, params)
        except OrderNotFoundError:
            if self._client.id not in _TRIGGER_BOOK_IDS or not self._is_contract(symbol):
                raise
        return await self._call(method, order_id, symbol, {**params, "trigger": True})

    async def fetch_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        params: dict[str, Any] = {}
        if self._client.id == "bybit":
            # Bybit's unified account reads orders from its recent-orders book; ccxt asks us to
            # acknowledge that it covers the last 500 orders only.
            params["acknowledged"] = True
        raw = await self._order_lookup("fetch_order", order_id, symbol, params)
        return self._parsed(ccxt_parse.parse_order, raw or {})

    async def cancel_order(self, order_id: str, symbol: str) -> OrderSnapshot:
        """Cancel and return the order's final state.

        Bybit and OKX confirm a cancel with ids only; then the order is fetched once to report
        side, size and fills. If that follow-up fails, its error is raised although the cancel was
        accepted: a repeated cancel then answers OrderNotFoundError, which callers treat as done.
        """
        raw = await self._order_lookup("cancel_order", order_id, symbol, {})
        if (
            isinstance(raw, Mapping)
            and ccxt_parse.to_float(raw.get("amount")) is not None
            and raw.get("side")
        ):
            return self._parsed(ccxt_parse.parse_order, raw, default_status=VenueOrderStatus.CANCELLED)
        return await self.fetch_order(order_id, symbol)

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> OrderSnapshot:
        """Look an order up by our client order id, so a timed-out create is never sent twice.

        Uses the venue's own lookup (Binance ``origClientOrderId``, Bybit ``orderLinkId``, OKX
        ``clOrdId``, BingX ``clientOrderID``); without one, scans open and recent closed orders.
        """
        found: list[Any] = []
        param = self._spec.client_order_id_param
        scan = param is None
        if param is not None:
            try:
                found = await self._direct_client_lookup(param, client_order_id, symbol)
            except OrderNotFoundError:
                found = []
            except ExchangeError as exc:
                if exc.kind not in (ErrorKind.NOT_SUPPORTED, ErrorKind.UNKNOWN):
                    raise
                scan = True
        if scan and not found:
            found = await self._scan_for_client_id(client_order_id, symbol)
        for item in found:
            if isinstance(item, Mapping) and item.get("clientOrderId") == client_order_id:
                return self._parsed(ccxt_parse.parse_order, item)
        raise OrderNotFoundError(
            self.name, f"The exchange has no order with client order id {client_order_id} on {symbol}."
        )

    async def _direct_client_lookup(self, param: str, client_order_id: str, symbol: str) -> list[Any]:
        ccxt_id = self._client.id
        if ccxt_id == "bybit":
            # Bybit's order book endpoints filter by orderLinkId: open (and recent) first, then history.
            filt = {param: client_order_id}
            found = await self._call("fetch_open_orders", symbol, None, None, filt)
            if not found:
                found = await self._call("fetch_closed_orders", symbol, None, None, filt)
            return list(found or [])
        if ccxt_id == "bingx":
            return await self._bingx_client_lookup(param, client_order_id, symbol)
        # Binance and OKX: ccxt's fetch_order sends the client id instead of the order id.
        return [await self._order_lookup("fetch_order", "", symbol, {param: client_order_id})]

    async def _bingx_client_lookup(self, param: str, client_order_id: str, symbol: str) -> list[Any]:
        """BingX's order query accepts ``clientOrderID``, but ccxt's fetch_order always adds an
        ``orderId`` (``orderId=None`` without one), so the same endpoint is called through ccxt's
        implicit API, as ccxt's own cancel_order does with the client id."""
        market = self._raw_market(symbol)
        if market is None:
            raise BadSymbolError(self.name, f"{symbol} is not a market of this exchange.")
        request = {"symbol": market["id"], param: client_order_id}
        endpoint = "spotV1PrivateGetTradeQuery" if market.get("spot") else "swapV2PrivateGetTradeOrder"
        response = await self._call(endpoint, request)
        data = response.get("data") if isinstance(response, Mapping) else None
        order = data.get("order", data) if isinstance(data, Mapping) else None
        if not isinstance(order, Mapping) or not order:
            return []
        return [self._parsed(self._client.parse_order, dict(order), market)]

    async def _scan_for_client_id(self, client_order_id: str, symbol: str) -> list[Any]:
        found = list(await self._call("fetch_open_orders", symbol) or [])
        if any(isinstance(o, Mapping) and o.get("clientOrderId") == client_order_id for o in found):
            return found
        has = self._client.has
        if has.get("fetchClosedOrders"):
            found += list(
                await self._call("fetch_closed_orders", symbol, None, _CLOSED_ORDERS_LOOKBACK) or []
            )
        elif has.get("fetchOrders"):
            found += list(await self._call("fetch_orders", symbol, None, _CLOSED_ORDERS_LOOKBACK) or [])
        return found

    # ---------------------------------------------------------------- account settings

    async def _is_hedged(self) -> bool:
        if self._hedged is None:
            raw = await self._call("fetch_position_mode")
            self._hedged = bool(raw.get("hedged")) if isinstance(raw, Mapping) else False
        return self._hedged

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        self._require_contracts("leverage")
        value = _leverage_value(leverage)
        ccxt_id = self._client.id
        if ccxt_id == "bingx":
            sides = ["LONG", "SHORT"] if await self._is_hedged() else ["BOTH"]
            for side in sides:
                await self._call("set_leverage", value, symbol, {"side": side}, tolerate_no_change=True)
        elif ccxt_id == "okx":
            mode = self._margin_modes.get(symbol, MarginMode.CROSS)
            params: dict[str, Any] = {"marginMode": mode.value}
            if mode is MarginMode.ISOLATED and await self._is_hedged():
                for pos_side in ("long", "short"):
                    await self._call(
                        "set_leverage",
                        value,
                        symbol,
                        {**params, "posSide": pos_side},
                        tolerate_no_change=True,
                    )
            else:
                await self._call("set_leverage", value, symbol, params, tolerate_no_change=True)
        else:
            await self._call("set_leverage", value, symbol, {}, tolerate_no_change=True)
        self._leverages[symbol] = value

    async def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        self._require_contracts("margin mode")
        params: dict[str, Any] = {}
        if self._client.id == "okx":
            # OKX sets margin mode and leverage in one call, so it needs the current leverage.
            lever = self._leverages.get(symbol)
            if lever is None:
                raw = await self._call("fetch_leverage", symbol, {"marginMode": mode.value})
                lever = self._parsed(_leverage_from, raw)
            params["lever"] = lever
        await self._call("set_margin_mode", mode.value, symbol, params, tolerate_no_change=True)
        self._margin_modes[symbol] = mode

    async def set_position_mode(self, hedged: bool) -> None:
        self._require_contracts("position mode")
        await self._call("set_position_mode", hedged, None, {}, tolerate_no_change=True)
        self._hedged = hedged

    # ---------------------------------------------------------------- connection test extras

    async def key_can_withdraw(self) -> bool | None:
        """Whether the API key may withdraw funds; None when the venue offers no way to ask.

        Only Binance says so (``sapi`` account API restrictions); its demo environment has no
        ``sapi``, and a key without credentials has nothing to ask about.
        """
        if self._client.id not in ("binance", "binanceusdm") or self._testnet or not self._has_credentials:
            return None
        raw = await self._call("sapi_get_account_apirestrictions")
        if not isinstance(raw, Mapping) or "enableWithdrawals" not in raw:
            return None
        value = raw["enableWithdrawals"]
        return value if isinstance(value, bool) else str(value).lower() == "true"

    def capabilities(self) -> list[str]:
        """What this connection can do, in DOMAIN §5's words (shown on the connection card)."""
        has: Mapping[str, Any] = self._client.has
        contracts = self._api_type is not ApiType.SPOT
        caps: list[str] = []
        if self._api_type is ApiType.UNIFIED:
            caps.append("unified")
        if self._api_type in (ApiType.SPOT, ApiType.UNIFIED):
            caps.append("spot")
        if contracts:
            caps.append("perpetual_futures")
            if has.get("setLeverage"):
                caps.append("leverage")
            if has.get("setPositionMode"):
                caps.append("hedge_mode")
            if has.get("setMarginMode"):
                caps += ["cross_margin", "isolated_margin"]
        if has.get("createTrailingPercentOrder") or has.get("createTrailingAmountOrder"):
            caps.append("trailing")
        if has.get("createOrderWithTakeProfitAndStopLoss"):
            caps.append("attached_tp_sl")
        if self._streaming:
            caps.append("websocket")
        if self._spec.testnet(self._api_type).available:
            caps.append("testnet")
        return caps

    # ---------------------------------------------------------------- lifecycle

    async def close(self) -> None:
        """Release ccxt's sessions and websockets; never raises (shutdown must go on)."""
        try:
            await self._client.close()
        except Exception as exc:
            log.debug("%s: error while closing: %s", self.name, self._redactor.redact(type(exc).__name__))

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _leverage_from(raw: Any) -> int | float:
    """ccxt's leverage structure (long/short leverage) → one number for OKX's ``lever``."""
    if not isinstance(raw, Mapping):
        raise ValueError("no leverage structure")
    for key in ("longLeverage", "shortLeverage", "leverage"):
        value = ccxt_parse.to_float(raw.get(key))
        if value:
            return _leverage_value(value)
    raise ValueError("leverage structure without a value")
