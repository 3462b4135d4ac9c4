"""The gateway simulator's TCP server: handshake, request dispatch, pacing and fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from . import messages as msg
from . import rules, texts
from .barformat import bar_rows
from .market import Market, MarketError
from .messages import In
from .pacing import HistoricalPacing, MessageRate, ScaledClock, SoftThrottle
from .timewindow import (
    BadEndDate,
    calendar_start,
    connection_time,
    format_bar_time,
    format_utc,
    parse_end,
)
from .wire import API_PREFIX, ProtocolError, parse_version_range, read_frame

log = logging.getLogger("ibdata.sim")


@dataclass
class Faults:
    """Switchable misbehaviour, for reliability tests. Each one-shot fault disarms itself."""

    drop_after_requests: int | None = None  # close the socket when request N+1 arrives
    stall_requests: int = 0  # the next N historical requests are never answered (until cancelled)
    outage_after_requests: int | None = None  # send 1100 when request N+1 arrives ...
    outage_s: float = 1.0  # ... and 1102 this many real seconds later


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 7497  # 0 picks a free port
    accounts: tuple[str, ...] = ("DU1234567",)
    min_version: int = msg.MIN_VERSION
    max_version: int = msg.MAX_VERSION
    time_zone: str = "US/Eastern"  # the gateway's own zone (handshake, zone-less end times)
    time_scale: float = 1.0  # >1 runs the pacing windows faster (600 = 10 minutes in 1 s)
    latency_s: float = 0.0  # base latency of every historical answer, in real seconds
    throttle_free: int = 0  # soft throttle for bars >= 1 min: free requests per window ...
    throttle_step_s: float = 0.0  # ... and the extra delay per request beyond them
    seed: int = 0
    message_rate: int = rules.MESSAGES_PER_SECOND  # incoming messages/s before error 100; 0: off
    faults: Faults = field(default_factory=Faults)


@dataclass
class SimStats:
    """What the simulator saw and did; read by tests and benchmarks."""

    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # code -> times sent
    requests: deque = field(default_factory=lambda: deque(maxlen=100_000))  # historical served

    @property
    def pacing_violations(self) -> int:
        return self.counts["pacing_violations"]

    def snapshot(self) -> dict:
        return {
            **dict(self.counts),
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
        }


class GatewaySimulator:
    """An IB Gateway look-alike the unmodified ib_insync client can connect to.

    Run it in the current event loop (`await start()`), in a background thread
    (`start_in_thread()`, for tests and the demo) or as `manage.py ibsim`.
    """

    def __init__(self, config: SimConfig | None = None, market: Market | None = None):
        self.config = config or SimConfig()
        self.faults = self.config.faults
        self.market = market or Market(seed=self.config.seed)
        self.stats = SimStats()
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_Session] = set()
        self._client_ids: set[int] = set()
        self._farm_ok: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._hist_received = 0
        self.port = self.config.port

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.market.warm_up()  # a real gateway answers its first request without a pause
        self._farm_ok = asyncio.Event()
        self._farm_ok.set()
        self._server = await asyncio.start_server(
            self._on_connect, self.config.host, self.config.port, limit=2**20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway simulator listening on %s:%s", self.config.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in list(self._sessions):
                session.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    def start_in_thread(self) -> GatewaySimulator:
        """Start on a daemon thread with its own event loop; return once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="ibsim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GatewaySimulator:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    def call(self, fn, *args) -> None:
        """Run `fn(*args)` on the simulator's loop (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    # --- faults the tests trigger -----------------------------------------------------

    def connectivity_lost(self) -> None:
        """Send 1100 to every client and hold historical answers until restored."""
        assert self._farm_ok is not None
        self._farm_ok.clear()
        for session in list(self._sessions):
            session.send_error(-1, *texts.CONNECTIVITY_LOST)

    def connectivity_restored(self) -> None:
        assert self._farm_ok is not None
        self._farm_ok.set()
        for session in list(self._sessions):
            session.send_error(-1, *texts.CONNECTIVITY_RESTORED)

    def drop_all(self) -> None:
        for session in list(self._sessions):
            session.abort()

    # --- connections ------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        self.stats.counts["connections"] += 1
        try:
            await session.run()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            log.debug("client gone: %r", exc)
        finally:
            self._sessions.discard(session)
            session.close()

    def _count_historical(self) -> str | None:
        """Count an arriving historical request; name the armed fault it triggers."""
        self._hist_received += 1
        f = self.faults
        if f.drop_after_requests is not None and self._hist_received > f.drop_after_requests:
            f.drop_after_requests = None
            self._hist_received = 0
            return "drop"
        if f.outage_after_requests is not None and self._hist_received > f.outage_after_requests:
            f.outage_after_requests = None
            self._hist_received = 0
            return "outage"
        if f.stall_requests > 0:
            f.stall_requests -= 1
            return "stall"
        return None

    async def _outage(self, seconds: float) -> None:
        self.connectivity_lost()
        await asyncio.sleep(seconds)
        self.connectivity_restored()


class _Session:
    """One client connection."""

    def __init__(self, sim: GatewaySimulator, reader, writer):
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.version = 0
        self.client_id: int | None = None
        cfg = sim.config
        clock = ScaledClock(cfg.time_scale)
        self.pacing = HistoricalPacing(clock)
        self.rate = MessageRate(cfg.message_rate) if cfg.message_rate > 0 else None
        self.throttle = SoftThrottle(clock, cfg.throttle_free, cfg.throttle_step_s)
        self.open_historical: dict[int, asyncio.Task] = {}
        self.handlers = {
            In.REQ_HISTORICAL_DATA: self.on_historical_data,
            In.CANCEL_HISTORICAL_DATA: self.on_cancel_historical_data,
            In.REQ_CONTRACT_DATA: self.on_contract_data,
            In.REQ_HEAD_TIMESTAMP: self.on_head_timestamp,
            In.CANCEL_HEAD_TIMESTAMP: lambda fields: None,
            In.REQ_CURRENT_TIME: self.on_current_time,
            In.REQ_MKT_DATA_TYPE: lambda fields: None,
            In.REQ_POSITIONS: lambda fields: self.send(msg.position_end()),
            In.REQ_OPEN_ORDERS: lambda fields: self.send(msg.open_order_end()),
            In.REQ_COMPLETED_ORDERS: lambda fields: self.send(msg.completed_orders_end()),
            In.REQ_AUTO_OPEN_ORDERS: lambda fields: None,
            In.REQ_ACCT_DATA: self.on_account_updates,
            In.REQ_ACCOUNT_UPDATES_MULTI: self.on_account_updates_multi,
            In.REQ_EXECUTIONS: self.on_executions,
            In.REQ_ACCOUNT_SUMMARY: self.on_account_summary,
            In.START_API: lambda fields: None,
        }

    # --- plumbing ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def send_error(self, req_id: int, code: int, text: str) -> None:
        self.sim.stats.errors[code] += 1
        self.send(msg.error(self.version or msg.MIN_VERSION, req_id, code, text))

    def abort(self) -> None:
        self.writer.transport.abort()

    def close(self) -> None:
        for task in self.open_historical.values():
            task.cancel()
        self.open_historical.clear()
        if self.client_id is not None:
            self.sim._client_ids.discard(self.client_id)
            self.client_id = None
        if not self.writer.is_closing():
            self.writer.close()

    # --- handshake --------------------------------------------------------------------

    async def run(self) -> None:
        prefix = await self.reader.readexactly(len(API_PREFIX))
        if prefix != API_PREFIX:
            raise ProtocolError("client did not open with API\\0")
        offer = parse_version_range(" ".join(await read_frame(self.reader)))
        cfg = self.sim.config
        if offer is None or offer[1] < cfg.min_version or offer[0] > cfg.max_version:
            self.sim.stats.counts["refused_versions"] += 1
            text = (
                f"Unsupported API version range {offer[0]}..{offer[1]}: this gateway serves "
                f"{cfg.min_version}..{cfg.max_version}"
                if offer
                else "Malformed API version range"
            )
            self.send_error(-1, texts.UNSUPPORTED_VERSION, text)
            await self.writer.drain()
            return
        self.version = min(offer[1], cfg.max_version)
        self.send(msg.handshake(self.version, connection_time(time.time(), cfg.time_zone)))
        await self.writer.drain()

        # Nothing else goes out until startApi: some clients drop bytes read with the handshake.
        while True:
            fields = await read_frame(self.reader)
            if fields and fields[0] == str(int(In.START_API)):
                break
        client_id = int(fields[2]) if len(fields) > 2 and fields[2] else 0
        if client_id in self.sim._client_ids:
            self.send_error(-1, *texts.CLIENT_ID_IN_USE)
            await self.writer.drain()
            return
        self.client_id = client_id
        self.sim._client_ids.add(client_id)
        self.send(msg.next_valid_id(1))
        self.send(msg.managed_accounts(list(cfg.accounts)))
        for code, text in texts.FARM_OK:
            self.send_error(-1, code, text)
        await self.writer.drain()
        await self.serve()

    async def serve(self) -> None:
        while True:
            fields = await read_frame(self.reader)
            if not fields:
                continue
            self.sim.stats.counts["messages"] += 1
            received = self.rate.admit() if self.rate is not None else None
            if received is not None:
                self.send_error(_request_id(fields), *texts.message_rate(received))
                continue
            try:
                msg_id = int(fields[0])
            except ValueError:
                self.send_error(-1, texts.NOT_SUPPORTED, f"Malformed message id {fields[0]!r}")
                continue
            handler = self.handlers.get(msg_id)
            if handler is None:
                self.on_unsupported(msg_id, fields)
            else:
                try:
                    handler(fields)
                except (ValueError, IndexError) as exc:
                    self.send_error(_request_id(fields), *texts.validation(f"malformed: {exc}"))
            # No drain here: a gateway keeps reading requests while its answers queue up, so
            # their arrival times (which the pacing rules count) do not depend on the client
            # reading fast. The answers drain themselves.

    # --- start-up requests --------------------------------------------------------------

    def on_account_updates(self, fields: list[str]) -> None:
        subscribe, account = fields[2] == "1", fields[3] if len(fields) > 3 else ""
        if not subscribe:
            return
        account = account or self.sim.config.accounts[0]
        for key, value, cur in (
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", "1000000.00", "USD"),
            ("TotalCashValue", "1000000.00", "USD"),
            ("BuyingPower", "4000000.00", "USD"),
        ):
            self.send(msg.account_value(key, value, cur, account))
        self.send(msg.account_update_time(time.strftime("%H:%M")))
        self.send(msg.account_download_end(account))

    def on_account_updates_multi(self, fields: list[str]) -> None:
        self.send(msg.account_update_multi_end(int(fields[2])))

    def on_account_summary(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        for account in self.sim.config.accounts:
            self.send(msg.account_summary(req_id, account, "AccountType", "INDIVIDUAL", ""))
            self.send(msg.account_summary(req_id, account, "NetLiquidation", "1000000.00", "USD"))
        self.send(msg.account_summary_end(req_id))

    def on_executions(self, fields: list[str]) -> None:
        self.send(msg.execution_data_end(int(fields[2])))

    def on_current_time(self, fields: list[str]) -> None:
        self.send(msg.current_time(int(time.time())))

    def on_unsupported(self, msg_id: int, fields: list[str]) -> None:
        self.sim.stats.counts["unsupported"] += 1
        if msg_id in (In.PLACE_ORDER, In.CANCEL_ORDER):
            cause = "The simulated gateway is read-only: orders are not accepted"
        else:
            cause = f"message id {msg_id} is not served by the ibdata gateway simulator"
        self.send_error(_request_id(fields), *texts.validation(cause))

    # --- contract details and head timestamps -----------------------------------------

    def _find(self, c: msg.ContractFields):
        return self.sim.market.find(
            c.symbol,
            c.sec_type,
            c.exchange,
            c.currency,
            con_id=c.con_id,
            local_symbol=c.local_symbol,
            primary_exchange=c.primary_exchange,
        )

    def on_contract_data(self, fields: list[str]) -> None:
        req_id, contract = msg.parse_contract_details_request(fields)
        self.sim.stats.counts["contract_details"] += 1
        specs = self._find(contract)
        if not specs:
            self.send_error(req_id, *texts.NO_SECURITY)
            return
        for spec in specs:
            trading, liquid = self.sim.market.trading_hours(spec, int(time.time()))
            details = _details(spec, contract.exchange or spec.exchange, trading, liquid)
            self.send(msg.contract_data(self.version, req_id, details))
        self.send(msg.contract_data_end(req_id))

    def on_head_timestamp(self, fields: list[str]) -> None:
        req = msg.parse_head_timestamp_request(fields)
        self.sim.stats.counts["head_timestamps"] += 1
        specs = self._find(req.contract)
        if len(specs) != 1:
            self.send_error(req.req_id, *texts.NO_SECURITY)
            return
        try:
            head = self.sim.market.head_timestamp(specs[0], req.what_to_show, req.use_rth)
        except MarketError as exc:
            self.send_error(req.req_id, exc.code, exc.message)
            return
        text = str(head) if req.format_date == 2 else format_utc(head)
        self.send(msg.head_timestamp(req.req_id, text))

    # --- historical data --------------------------------------------------------------

    def on_cancel_historical_data(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        task = self.open_historical.pop(req_id, None)
        if task is not None:
            task.cancel()
            self.sim.stats.counts["cancelled"] += 1
            self.send_error(req_id, *texts.cancelled(req_id))

    def on_historical_data(self, fields: list[str]) -> None:
        req = msg.parse_historical_request(fields)
        sim = self.sim
        sim.stats.counts["historical_requests"] += 1
        fault = sim._count_historical()
        if fault == "drop":
            sim.stats.counts["dropped_connections"] += 1
            self.abort()
            return
        if fault == "outage":
            asyncio.get_running_loop().create_task(sim._outage(sim.faults.outage_s))
        if len(self.open_historical) >= rules.MAX_OPEN_HISTORICAL:
            self.send_error(req.req_id, *texts.TOO_MANY_OPEN)
            return
        try:
            window = self._plan(req)
        except _Reject as rej:
            if rej.code == texts.PACING_VIOLATION[0] and rej.pacing:
                sim.stats.counts["pacing_violations"] += 1
            self.send_error(req.req_id, rej.code, rej.text)
            return
        task = asyncio.get_running_loop().create_task(self._answer(req, window, fault == "stall"))
        self.open_historical[req.req_id] = task

    def _plan(self, req: msg.HistoricalRequest) -> _Window:
        """Validate a request the way the gateway does and work out its time window."""
        market = self.sim.market
        specs = self._find(req.contract)
        if len(specs) != 1:
            raise _Reject(*texts.NO_SECURITY)
        spec = specs[0]
        bar_size = rules.BAR_SIZES.get(req.bar_size)
        if bar_size is None:
            raise _Reject(
                *texts.validation(f"Historical data bar size setting is invalid: {req.bar_size!r}")
            )
        duration = rules.parse_duration(req.duration)
        if duration is None:
            raise _Reject(
                *texts.validation(f"Historical data duration is invalid: {req.duration!r}")
            )
        if not rules.duration_allowed(bar_size, duration):
            limit = rules.MAX_DURATION[bar_size.setting]
            raise _Reject(*texts.invalid_step(bar_size.setting, str(duration), str(limit)))
        if req.what_to_show not in rules.WHAT_TO_SHOW:
            raise _Reject(*texts.validation(f"Invalid whatToShow {req.what_to_show!r}"))
        if req.what_to_show == "ADJUSTED_LAST" and req.end.strip():
            raise _Reject(*texts.validation("End date not supported with adjusted last"))
        if req.keep_up_to_date and req.end.strip():
            raise _Reject(*texts.validation("End date not supported with live updates"))
        now = time.time()
        try:
            end = parse_end(req.end, now=now, local_zone=self.sim.config.time_zone)
        except BadEndDate:
            raise _Reject(*texts.BAD_END_DATE) from None
        if end.implied_zone:
            self.send_error(req.req_id, *texts.NO_TZ_WARNING)
        end_epoch = min(end.epoch, int(math.ceil(now)))
        if duration.unit == "D":
            start = market.sessions_back(spec, end_epoch, duration.count, req.use_rth)
        else:
            start = calendar_start(end_epoch, duration, spec.time_zone_id)
        if bar_size.small:
            weight = 2 if req.what_to_show == "BID_ASK" else 1
            key = (spec.con_id, req.contract.exchange, req.what_to_show)
            broken = self.pacing.admit(req.identity, key, weight)
            if broken is not None:
                self.sim.stats.counts[f"pacing: {broken}"] += 1
                raise _Reject(*texts.PACING_VIOLATION, pacing=True)
        return _Window(spec, bar_size, start, end_epoch)

    async def _answer(self, req: msg.HistoricalRequest, w: _Window, stall: bool) -> None:
        sim = self.sim
        try:
            if stall:
                sim.stats.counts["stalled"] += 1
                await asyncio.Event().wait()  # until the client cancels or goes away
            delay = sim.config.latency_s
            if not w.bar_size.small:
                delay += self.throttle.delay()
            if delay > 0:
                await asyncio.sleep(delay)
            assert sim._farm_ok is not None
            await sim._farm_ok.wait()
            try:
                bars = sim.market.bars(
                    w.spec, w.bar_size, req.what_to_show, req.use_rth, w.start, w.end
                )
            except MarketError as exc:
                self.send_error(req.req_id, exc.code, exc.message)
                return
            if len(bars) == 0:
                self.send_error(
                    req.req_id,
                    *texts.no_data(
                        w.spec.symbol, req.contract.exchange or w.spec.exchange, req.what_to_show
                    ),
                )
                return
            zone = w.spec.time_zone_id
            rows = bar_rows(bars, zone, req.format_date, _decimals(w.spec.min_tick))
            span = bar_rows_span(w.start, w.end, zone, req.format_date)
            self.send(msg.historical_data(req.req_id, span[0], span[1], rows))
            sim.stats.counts["bars_served"] += len(rows)
            sim.stats.requests.append(
                (
                    w.spec.symbol,
                    req.what_to_show,
                    w.bar_size.setting,
                    req.duration,
                    w.start,
                    w.end,
                    len(rows),
                )
            )
            await self.writer.drain()
        finally:
            self.open_historical.pop(req.req_id, None)


@dataclass(frozen=True)
class _Window:
    spec: object
    bar_size: rules.BarSize
    start: int
    end: int


class _Reject(Exception):
    def __init__(self, code: int, text: str, pacing: bool = False):
        super().__init__(text)
        self.code, self.text, self.pacing = code, text, pacing


def bar_rows_span(start: int, end: int, zone: str, format_date: int) -> tuple[str, str]:
    """The start and end strings HISTORICAL_DATA carries before its bars."""
    if format_date == 2:
        return str(start), str(end)
    return format_bar_time(start, zone), format_bar_time(end, zone)


def _request_id(fields: list[str]) -> int:
    """Best guess at the request id in a message, so an error reply ends that request."""
    try:
        msg_id = int(fields[0])
        if msg_id in (In.REQ_HISTORICAL_DATA, In.REQ_HEAD_TIMESTAMP):
            return int(fields[1])
        if msg_id in (In.CANCEL_HISTORICAL_DATA, In.REQ_CONTRACT_DATA, In.REQ_EXECUTIONS):
            return int(fields[2])
        pos = msg.REQ_ID_POSITION.get(msg_id)
        return int(fields[pos]) if pos is not None else -1
    except (ValueError, IndexError):
        return -1


def _decimals(min_tick: float) -> int:
    text = f"{min_tick:.10f}".rstrip("0")
    return max(2, len(text.split(".")[1]) if "." in text else 0)


def _details(
    spec, exchange: str, trading_hours: str, liquid_hours: str
) -> msg.ContractDetailsFields:
    sec_type = spec.sec_type
    return msg.ContractDetailsFields(
        symbol=spec.symbol,
        sec_type=sec_type,
        last_trade_date=getattr(spec, "last_trade_date", "") or "",
        exchange=exchange,
        currency=spec.currency,
        local_symbol=spec.local_symbol,
        market_name=spec.trading_class,
        trading_class=spec.trading_class,
        con_id=spec.con_id,
        min_tick=spec.min_tick,
        multiplier=getattr(spec, "multiplier", "") or "",
        order_types="ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,DAY,GTC,LMT,MKT,STP,TRAIL",
        valid_exchanges=_valid_exchanges(spec),
        long_name=spec.long_name,
        primary_exchange=spec.primary_exchange,
        contract_month=(getattr(spec, "last_trade_date", "") or "")[:6],
        industry=getattr(spec, "industry", "") or "",
        category=getattr(spec, "category", "") or "",
        subcategory="",
        time_zone_id=spec.time_zone_id,
        trading_hours=trading_hours,
        liquid_hours=liquid_hours,
        market_rule_ids="26",
        stock_type=getattr(spec, "stock_type", "") or ("COMMON" if sec_type == "STK" else ""),
    )


def _valid_exchanges(spec) -> str:
    if spec.sec_type == "STK":
        return f"SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,NASDAQ,IEX,{spec.primary_exchange}"
    return spec.exchange
