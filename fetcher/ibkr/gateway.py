"""One readonly connection to TWS / IB Gateway (through ib_insync or ib_async), speaking the
project's own types."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import numpy as np

from fetcher.domain.bars import BarBatch
from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.time import DAY, EPOCH_DATE
from fetcher.exceptions import (
    ClientIdInUse,
    ConnectionRefused,
    FalseUnknownContract,
    GatewayError,
    GatewayUnavailable,
    RequestTimeout,
    UnknownContract,
)
from fetcher.timings import RESET_GRACE_S

from .clients import client_library
from .errors import gateway_error
from .holds import Hold, RequestHolds
from .types import (
    CLIENT_LIBRARIES,
    BarRequest,
    GatewayInfo,
    QualifiedInstrument,
    SymbolMatch,
    market_data_type_code,
)

log = logging.getLogger("ibdata.ibkr")

# Connectivity between IB and the gateway lost; restored, but the data of requests in flight
# lost; restored with data kept.
CONNECTIVITY_LOST, DATA_LOST, DATA_KEPT = 1100, 1101, 1102
# A historical data farm broken, and OK again ("...:ushmds"): requests wait in between.
HMDS_BROKEN, HMDS_OK = 2105, 2106
# Data-farm notices a gateway sends at connect time ("... connection is OK:<farm>").
FARM_OK_CODES = frozenset({2104, 2106, 2158})
# The ibdata simulator's farms end in this: its bars are synthetic (ibsim/texts.py).
SIMULATOR_FARM_SUFFIX = ".ibsim"
# The incoming HISTORICAL_DATA message: its bars, decoded here into columns (see _on_bars).
HISTORICAL_DATA = 17
HISTORICAL_BAR_FIELDS = 8  # date, open, high, low, close, volume, WAP, bar count
MATCHES_SHOWN = 4  # closest symbols named when a contract is not defined
# "Error validating request" (a duration not written in years, ...): ib_insync fails the request,
# ib_async takes it for a warning and would leave the request waiting for an answer that never
# comes; the Gateway fails it itself, whichever the client.
VALIDATION = 321


class Gateway:
    """A readonly connection: qualify contracts, head timestamps and historical bars.

    Every failure is a project exception (fetcher.exceptions); an empty BarBatch always
    means the gateway had no bars for the window. Use it from one event loop only.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        connect_timeout: float = 10.0,
        request_timeout: float = 120.0,
        market_data_type: str = "DELAYED_FROZEN",
        client: str = CLIENT_LIBRARIES[0],
    ):
        self.host, self.port, self.client_id = host, port, client_id
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.market_data_type = market_data_type_code(market_data_type)
        # ib_insync or ib_async (IBKR_CLIENT): the same API, each imported only when chosen
        self.lib = client_library(client)
        self.ib = self.lib.IB()
        self.ib.RaiseRequestErrors = True
        # The project's pacer admits historical requests at 45/s and records when it does;
        # the client's own 45/s throttle, counting every message, would hold some of them back
        # and make those records wrong. It stays on as the guard of IBKR's hard 50/s.
        self.ib.client.MaxRequests = 50
        # The client decodes each bar into an object, then re-parses its date: most of the CPU a
        # fetch spends. Bars are decoded here instead, straight into numpy columns.
        self.ib.client.decoder.handlers[HISTORICAL_DATA] = self._on_bars
        self._decoded: dict[int, BarBatch] = {}
        self._in_flight: set[int] = set()  # historical requests awaiting their answer
        self.info: GatewayInfo | None = None
        self._connection_errors: list[tuple[int, str]] = []
        self._connecting: asyncio.Task | None = None
        # what holds requests: the gateway's link to IBKR or its farms down, passing troubles
        self.holds = RequestHolds()
        self._broken_farms: set[str] = set()
        self._reset_at = float("-inf")  # when the link (1101/1102) or the connection came back
        self.ib.errorEvent += self._on_error

    # --- connection -------------------------------------------------------------------

    def _on_error(self, req_id: int, code: int, message: str, contract) -> None:
        if code == VALIDATION and req_id != -1:  # ended already by ib_insync: then a no-op
            self.ib.wrapper._endReq(
                req_id, self.lib.RequestError(req_id, code, message), success=False
            )
        if req_id == -1:
            self._connection_errors.append((code, message))
            if code == 326 and self._connecting is not None and not self._connecting.done():
                self._connecting.cancel()  # the gateway closes the socket: don't wait for the timeout
            if code in (CONNECTIVITY_LOST, DATA_LOST, DATA_KEPT, 2103, HMDS_BROKEN):
                log.warning("gateway: %s (%s)", message, code)
            if code == DATA_LOST:
                self._requests_lost(DATA_LOST, f"{message.rstrip('.*')}: request sent again")
            self._hold_or_release(code, message)

    def _hold_or_release(self, code: int, message: str) -> None:
        """Requests wait while the gateway's link to IBKR (1100) or one of its historical farms
        (2105) is down, until it says it is back (IBKR.md: "pause the queue")."""
        if code == CONNECTIVITY_LOST:
            self.holds.hold(Hold.CONNECTIVITY, code, message)
        elif code in (DATA_LOST, DATA_KEPT):
            self._reset_at = time.monotonic()
            self.holds.release(Hold.CONNECTIVITY)
        elif code == HMDS_BROKEN:
            self._broken_farms.add(message.rpartition(":")[2])
            self.holds.hold(Hold.FARM, code, message)
        elif code == HMDS_OK and self._broken_farms:
            self._broken_farms.discard(message.rpartition(":")[2])
            if not self._broken_farms:
                log.warning("gateway: %s (%s)", message, code)
                self.holds.release(Hold.FARM)
                # what was asked of the broken farm may never be answered: ask again
                self._requests_lost(
                    HMDS_BROKEN, "HMDS data farm was broken: request sent again", cancel=True
                )

    def recently_reset(self) -> bool:
        """Whether the gateway is in (or just out of) a reset: its link to IBKR down or back
        less than RESET_GRACE_S ago, or the connection back after a drop that recently, or a
        false 200 for a contract it defined before open now."""
        return (
            self.holds.holding(Hold.CONNECTIVITY)
            or self.holds.troubled_by(FalseUnknownContract)
            or time.monotonic() - self._reset_at < RESET_GRACE_S
        )

    def _requests_lost(self, code: int, message: str, cancel: bool = False) -> None:
        """The gateway will never answer the requests in flight (1101, a broken farm); fail them
        (retryably), so that they are sent again; with `cancel`, cancel them on the gateway
        first, where they would stay open (and count towards its 50)."""
        for req_id in list(self._in_flight):
            if cancel and self.ib.isConnected():
                self.ib.client.cancelHistoricalData(req_id)
            error = gateway_error(code, message, req_id)
            self.ib.wrapper._endReq(req_id, error, success=False)

    async def connect(self) -> GatewayInfo:
        self._connection_errors.clear()
        # the gateway tells a new connection what is down: what the last one heard is void
        self.holds.reset()
        self._broken_farms.clear()
        if self.info is not None:  # connected before: a restart, or a dropped connection
            self._reset_at = time.monotonic()
        self._connecting = asyncio.ensure_future(
            self.ib.connectAsync(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.connect_timeout,
                readonly=True,
            )
        )
        try:
            await self._connecting
        except asyncio.CancelledError:
            if not any(code == 326 for code, _ in self._connection_errors):
                raise
            self.ib.disconnect()
            raise ClientIdInUse(
                326,
                f"Client ID {self.client_id} is already in use: change IBKR_CLIENT_ID "
                "(1-999) or close the other API client",
            ) from None
        except ConnectionRefusedError:
            raise ConnectionRefused(
                502,
                f"Couldn't connect to TWS on {self.host}:{self.port}: connection refused. "
                "Make sure TWS or IB Gateway is running, the API is enabled "
                '("Enable ActiveX and Socket Clients") and the port matches (7497 for paper); '
                "or set IBKR_HOST=sim for the built-in simulator",
            ) from None
        except (TimeoutError, ConnectionError, OSError) as exc:
            codes = [code for code, _ in self._connection_errors]
            if 326 in codes:
                raise ClientIdInUse(
                    326,
                    f"Client ID {self.client_id} is already in use: change IBKR_CLIENT_ID "
                    "(1-999) or close the other API client",
                ) from None
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                raise GatewayUnavailable(
                    504,
                    f"Timed out after {self.connect_timeout:g}s connecting to {self.host}:"
                    f"{self.port}: is this a TWS/IB Gateway API port, and is the API enabled?",
                ) from None
            raise GatewayUnavailable(
                502, f"Couldn't connect to TWS on {self.host}:{self.port}: {exc}"
            ) from None
        self.ib.reqMarketDataType(self.market_data_type)
        accounts = tuple(self.ib.managedAccounts())
        farms = [m.rpartition(":")[2] for c, m in self._connection_errors if c in FARM_OK_CODES]
        self.info = GatewayInfo(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            server_version=self.ib.client.serverVersion(),
            account=accounts[0] if accounts else "",
            accounts=accounts,
            connected_at=dt.datetime.now(dt.UTC),
            simulated=any(farm.endswith(SIMULATOR_FARM_SUFFIX) for farm in farms),
        )
        return self.info

    @property
    def key(self) -> str:
        """What names this gateway for pacing: every connection to it shares its budget."""
        return f"{self.host}:{self.port}"

    def disconnect(self) -> None:
        if self.ib.isConnected():
            self.ib.disconnect()

    def is_connected(self) -> bool:
        return self.ib.isConnected()

    async def current_time(self) -> float:
        """The gateway's present, in epoch seconds (reqCurrentTime: its own clock, which a
        simulator may set in the past)."""
        moment = await self._call(self.ib.reqCurrentTimeAsync(), None)
        return moment.timestamp()

    # --- contracts --------------------------------------------------------------------

    async def qualify(self, spec: InstrumentSpec) -> QualifiedInstrument:
        contract = self._contract(spec)
        try:
            details = await self._call(self.ib.reqContractDetailsAsync(contract), contract)
        except UnknownContract:
            details = []
        if not details:
            raise UnknownContract(200, await self._not_defined(spec))
        if len(details) > 1:
            choices = ", ".join(
                f"{d.contract.localSymbol}@{d.contract.primaryExchange or d.contract.exchange}"
                for d in details[:5]
            )
            raise UnknownContract(
                200, f"Ambiguous contract {spec.label}: matches {choices}; name the exchange"
            )
        d = details[0]
        c = d.contract
        return QualifiedInstrument(
            con_id=c.conId,
            symbol=c.symbol,
            sec_type=c.secType,
            exchange=c.exchange or spec.exchange,
            primary_exchange=c.primaryExchange,
            currency=c.currency,
            local_symbol=c.localSymbol,
            long_name=d.longName,
            time_zone=d.timeZoneId,
            min_tick=d.minTick,
            last_trade_date=c.lastTradeDateOrContractMonth,
            trading_class=c.tradingClass,
            multiplier=c.multiplier,
        )

    async def _not_defined(self, spec: InstrumentSpec) -> str:
        """What to say of a contract the gateway does not define: the closest symbols it
        knows (its symbol search), and how to name the contract exactly. In or just out of a
        nightly reset its 200 may be false: IBKR's words only (the run asks again)."""
        text = "No security definition has been found for the request"
        if self.recently_reset():
            return text
        matches = await self.matching_symbols(spec.symbol)
        closest = ", ".join(m.label for m in matches[:MATCHES_SHOWN])
        hint = f"closest matches {closest}" if closest else "the gateway knows no symbol like it"
        return f"No security definition for {spec.label}: {hint}; or give --sec-type/--exchange"

    async def matching_symbols(self, pattern: str) -> list[SymbolMatch]:
        """The gateway's symbol search, closest first; [] when it has none or does not answer
        (a hint is not worth failing for)."""
        try:
            found = await asyncio.wait_for(
                self.ib.reqMatchingSymbolsAsync(pattern), self.request_timeout
            )
        except (TimeoutError, self.lib.RequestError, ConnectionError) as exc:
            log.info("symbol search for %r not answered: %s", pattern, exc)
            return []
        return [
            SymbolMatch(
                symbol=d.contract.symbol,
                sec_type=d.contract.secType,
                exchange=d.contract.primaryExchange,
                currency=d.contract.currency,
            )
            for d in found or []
        ]

    async def head_timestamp(
        self, instrument: QualifiedInstrument, what_to_show: str, use_rth: bool
    ) -> dt.datetime:
        contract = self._contract(instrument)
        try:
            result = await self._call(
                self.ib.reqHeadTimeStampAsync(contract, what_to_show, use_rth, formatDate=2),
                contract,
            )
        except UnknownContract as exc:
            raise _false_200(exc.message, instrument) from None
        if isinstance(result, dt.datetime):
            return result if result.tzinfo else result.replace(tzinfo=dt.UTC)
        raise GatewayError(0, f"unexpected head timestamp {result!r}")

    # --- bars -------------------------------------------------------------------------

    async def bars(self, instrument: QualifiedInstrument, request: BarRequest) -> BarBatch:
        """Bars for one request. Raises NoData when the gateway has none in the window."""
        ib = self.ib
        if not ib.isConnected():
            raise GatewayUnavailable(504, "Not connected to the gateway")
        contract = self._contract(instrument)
        req_id = ib.client.getReqId()
        container = self.lib.BarDataList()
        future = ib.wrapper.startReq(req_id, contract, container=container)
        self._in_flight.add(req_id)
        ib.client.reqHistoricalData(
            req_id,
            contract,
            request.end,
            request.duration,
            request.bar_size,
            request.what_to_show,
            request.use_rth,
            2,
            False,
            [],
        )
        try:
            await asyncio.wait_for(asyncio.shield(future), self.request_timeout)
        except TimeoutError:
            if ib.isConnected():
                ib.client.cancelHistoricalData(req_id)
            ib.wrapper._endReq(req_id)
            raise RequestTimeout(
                0, f"no answer within {self.request_timeout:g}s; request cancelled", req_id
            ) from None
        except asyncio.CancelledError:
            if ib.isConnected():
                ib.client.cancelHistoricalData(req_id)
            ib.wrapper._endReq(req_id)
            raise
        except self.lib.RequestError as exc:
            if exc.code == 200:
                raise _false_200(exc.message, instrument) from None
            raise gateway_error(exc.code, exc.message, req_id) from None
        except ConnectionError as exc:
            raise GatewayUnavailable(504, f"connection to the gateway lost: {exc}") from None
        finally:
            self._in_flight.discard(req_id)
            batch = self._decoded.pop(req_id, None)
        return batch if batch is not None else _to_batch(container)

    def _on_bars(self, fields: list[str]) -> None:
        """HISTORICAL_DATA (formatDate=2): [msg id, req id, start, end, n, then n bars of
        HISTORICAL_BAR_FIELDS fields]. Intraday dates are epoch seconds; day and longer bars
        carry a YYYYMMDD session date (a week's is its last trading day), stored at 00:00 UTC
        of that date (as _to_batch does). -1 volumes and WAPs are missing (NaN)."""
        req_id, n = int(fields[1]), int(fields[4])
        if n:
            # every field is a number (dates too: epoch seconds or YYYYMMDD), and float64 holds
            # each exactly: numpy parses them all in one C loop
            cells = np.array(fields[5 : 5 + n * HISTORICAL_BAR_FIELDS], dtype=np.float64)
            cells = cells.reshape(n, HISTORICAL_BAR_FIELDS)
            dates = cells[:, 0].astype(np.int64)
            if len(fields[5]) == len("YYYYMMDD"):
                days = np.array(
                    [f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in dates],
                    dtype="datetime64[D]",
                ).astype(np.int64)
                ts = days * DAY
            else:
                ts = dates
            self._decoded[req_id] = BarBatch.from_columns(
                ts=ts,
                open=cells[:, 1],
                high=cells[:, 2],
                low=cells[:, 3],
                close=cells[:, 4],
                volume=_missing(cells[:, 5]),
                wap=_missing(cells[:, 6]),
                bar_count=np.maximum(cells[:, 7].astype(np.int64), 0),
            )
        self.ib.wrapper.historicalDataEnd(req_id, fields[2], fields[3])

    async def _call(self, awaitable, contract):
        try:
            return await asyncio.wait_for(awaitable, self.request_timeout)
        except self.lib.RequestError as exc:
            raise gateway_error(exc.code, exc.message, exc.reqId) from None
        except TimeoutError:
            raise RequestTimeout(0, f"no answer within {self.request_timeout:g}s") from None
        except ConnectionError as exc:
            raise GatewayUnavailable(504, f"connection to the gateway lost: {exc}") from None

    def _contract(self, instrument: InstrumentSpec | QualifiedInstrument):
        """The client's Contract of what the user asked for (a spec: no local symbol, perhaps
        no contract id yet) or of a qualified instrument."""
        return self.lib.Contract(
            conId=instrument.con_id or 0,
            symbol=instrument.symbol,
            secType=instrument.sec_type,
            exchange=instrument.exchange,
            primaryExchange=instrument.primary_exchange,
            currency=instrument.currency,
            localSymbol=getattr(instrument, "local_symbol", ""),
            lastTradeDateOrContractMonth=instrument.last_trade_date,
            # an expired future is found, and its bars served, only when asked for as expired
            includeExpired=instrument.sec_type == "FUT",
        )


def _false_200(message: str, instrument: QualifiedInstrument) -> FalseUnknownContract:
    """200 for a contract the gateway qualified in this run: its nightly reset's false 200."""
    return FalseUnknownContract(
        200, f"{message}, for {instrument.symbol} which it defined before (a false 200)"
    )


def _to_batch(bars) -> BarBatch:
    """The client's BarData (dates as datetime or date) -> BarBatch (epoch seconds, UTC).

    Daily and larger bars carry a session date; they are stored at 00:00 UTC of that date.
    """
    if not bars:
        return BarBatch.empty()
    first = bars[0].date
    if isinstance(first, dt.datetime):
        ts = [int(b.date.timestamp()) for b in bars]
    else:
        days = np.array([b.date.toordinal() for b in bars], dtype=np.int64)
        ts = (days - EPOCH_DATE.toordinal()) * DAY
    return BarBatch.from_columns(
        ts=ts,
        open=[b.open for b in bars],
        high=[b.high for b in bars],
        low=[b.low for b in bars],
        close=[b.close for b in bars],
        volume=_missing(np.array([b.volume for b in bars], dtype=np.float64)),
        wap=_missing(np.array([b.average for b in bars], dtype=np.float64)),
        bar_count=[max(b.barCount, 0) for b in bars],
    )


def _missing(values: np.ndarray) -> np.ndarray:
    """IBKR's -1 (quote bars have no volume, WAP or trade count: ib_insync issue 521) as NaN, so
    that it is never stored as a number."""
    return np.where(values == -1, np.nan, values)
