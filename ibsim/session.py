"""One client connection to the simulated gateway: handshake, dispatch and the answers."""

from __future__ import annotations

import asyncio
import time

from . import messages as msg
from . import rules, texts
from .barformat import bar_rows, bar_rows_span
from .contracts import contract_details, listings_for
from .gateway import Event, Fault, Gateway, Lookup
from .historical import Reject, Window, request_window
from .market import MarketError
from .messages import In
from .pacing import MessageRate
from .timewindow import connection_time, format_utc
from .wire import API_PREFIX, ProtocolError, parse_version_range, read_frame


class Session:
    """One client connection. It asks and tells its Gateway, whose state every connection
    shares; the gateway reaches it back only as a `gateway.Connection`."""

    def __init__(self, gateway: Gateway, reader, writer):
        self.gateway = gateway
        self.reader = reader
        self.writer = writer
        self.version = 0
        self.client_id: int | None = None
        cfg = gateway.config
        # the message rate is per client; pacing and open requests count for the whole gateway
        self.rate = MessageRate(cfg.message_rate) if cfg.message_rate > 0 else None
        self.open_historical: dict[int, asyncio.Task] = {}
        self.handlers = {
            In.REQ_HISTORICAL_DATA: self.on_historical_data,
            In.CANCEL_HISTORICAL_DATA: self.on_cancel_historical_data,
            In.REQ_CONTRACT_DATA: self.on_contract_data,
            In.REQ_HEAD_TIMESTAMP: self.on_head_timestamp,
            In.REQ_MATCHING_SYMBOLS: self.on_matching_symbols,
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
        self.gateway.error_sent(code)
        self.send(msg.error(self.version or msg.MIN_VERSION, req_id, code, text))

    def abort(self) -> None:
        self.writer.transport.abort()

    def historical_in_flight(self) -> int:
        return len(self.open_historical)

    def drop_historical(self) -> int:
        """Forget the historical requests in flight, unanswered; returns how many."""
        for task in self.open_historical.values():
            task.cancel()
        dropped = len(self.open_historical)
        self.open_historical.clear()
        return dropped

    def close(self) -> None:
        self.drop_historical()
        if self.client_id is not None:
            self.gateway.release_client_id(self.client_id)
            self.client_id = None
        if not self.writer.is_closing():
            self.writer.close()

    # --- handshake --------------------------------------------------------------------

    async def run(self) -> None:
        prefix = await self.reader.readexactly(len(API_PREFIX))
        if prefix != API_PREFIX:
            raise ProtocolError("client did not open with API\\0")
        offer = parse_version_range(" ".join(await read_frame(self.reader)))
        cfg = self.gateway.config
        if offer is None or offer[1] < cfg.min_version or offer[0] > cfg.max_version:
            self.gateway.count(Event.REFUSED_VERSIONS)
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
        self.send(msg.handshake(self.version, connection_time(self.gateway.now(), cfg.time_zone)))
        await self.writer.drain()

        # Nothing else goes out until startApi: some clients drop bytes read with the handshake.
        while True:
            fields = await read_frame(self.reader)
            if fields and fields[0] == str(int(In.START_API)):
                break
        client_id = int(fields[2]) if len(fields) > 2 and fields[2] else 0
        if not self.gateway.claim_client_id(client_id):
            self.send_error(-1, *texts.CLIENT_ID_IN_USE)
            await self.writer.drain()
            return
        self.client_id = client_id
        self.send(msg.next_valid_id(1))
        self.send(msg.managed_accounts(list(cfg.accounts)))
        for code, text in texts.farm_ok(cfg.identify, hmds_ok=self.gateway.farm_ok):
            self.send_error(-1, code, text)
        await self.writer.drain()
        await self.serve()

    async def serve(self) -> None:
        while True:
            fields = await read_frame(self.reader)
            if not fields:
                continue
            self.gateway.count(Event.MESSAGES)
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
        account = account or self.gateway.config.accounts[0]
        for key, value, cur in (
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", "1000000.00", "USD"),
            ("TotalCashValue", "1000000.00", "USD"),
            ("BuyingPower", "4000000.00", "USD"),
        ):
            self.send(msg.account_value(key, value, cur, account))
        self.send(
            msg.account_update_time(time.strftime("%H:%M", time.localtime(self.gateway.now())))
        )
        self.send(msg.account_download_end(account))

    def on_account_updates_multi(self, fields: list[str]) -> None:
        self.send(msg.account_update_multi_end(int(fields[2])))

    def on_account_summary(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        for account in self.gateway.config.accounts:
            self.send(msg.account_summary(req_id, account, "AccountType", "INDIVIDUAL", ""))
            self.send(msg.account_summary(req_id, account, "NetLiquidation", "1000000.00", "USD"))
        self.send(msg.account_summary_end(req_id))

    def on_executions(self, fields: list[str]) -> None:
        self.send(msg.execution_data_end(int(fields[2])))

    def on_current_time(self, fields: list[str]) -> None:
        self.send(msg.current_time(int(self.gateway.now())))

    def on_unsupported(self, msg_id: int, fields: list[str]) -> None:
        self.gateway.count(Event.UNSUPPORTED)
        if msg_id in (In.PLACE_ORDER, In.CANCEL_ORDER):
            cause = "The simulated gateway is read-only: orders are not accepted"
        else:
            cause = f"message id {msg_id} is not served by the ibdata gateway simulator"
        self.send_error(_request_id(fields), *texts.validation(cause))

    # --- contract details and head timestamps -----------------------------------------

    def _find(self, c: msg.ContractFields):
        return listings_for(self.gateway.market, c, self.gateway.now())

    def on_contract_data(self, fields: list[str]) -> None:
        req_id, contract = msg.parse_contract_details_request(fields)
        self.gateway.count(Event.CONTRACT_DETAILS)
        specs = self._find(contract)
        refused = self.gateway.refusal(Lookup.CONTRACT_DETAILS, None)
        if not specs or refused:
            self.send_error(req_id, *(refused or texts.NO_SECURITY))
            return
        for spec in specs:
            trading, liquid = self.gateway.market.trading_hours(spec, int(self.gateway.now()))
            details = contract_details(
                spec, contract.exchange or spec.exchange, trading, liquid, contract.sec_type
            )
            self.send(msg.contract_data(self.version, req_id, details))
        self.send(msg.contract_data_end(req_id))

    def on_matching_symbols(self, fields: list[str]) -> None:
        """The instruments closest to a pattern, as IBKR's symbol search answers."""
        req_id, pattern = msg.parse_matching_symbols_request(fields)
        self.gateway.count(Event.MATCHING_SYMBOLS)
        self.send(msg.symbol_samples(self.version, req_id, self.gateway.market.matching(pattern)))

    def on_head_timestamp(self, fields: list[str]) -> None:
        req = msg.parse_head_timestamp_request(fields)
        self.gateway.count(Event.HEAD_TIMESTAMPS)
        specs = self._find(req.contract)
        if len(specs) != 1:
            self.send_error(req.req_id, *texts.NO_SECURITY)
            return
        refused = self.gateway.refusal(Lookup.HEAD_TIMESTAMP, specs[0])
        if refused:
            self.send_error(req.req_id, *refused)
            return
        try:
            head = self.gateway.market.head_timestamp(
                specs[0], req.what_to_show, req.use_rth, now=self.gateway.now()
            )
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
            self.gateway.count(Event.CANCELLED)
            self.send_error(req_id, *texts.cancelled(req_id))

    def on_historical_data(self, fields: list[str]) -> None:
        req = msg.parse_historical_request(fields)
        gateway = self.gateway
        fault = gateway.historical_arrived()
        if fault is Fault.DROP:
            gateway.count(Event.DROPPED_CONNECTIONS)
            self.abort()
            return
        if gateway.historical_in_flight() >= rules.MAX_OPEN_HISTORICAL:
            self.send_error(req.req_id, *texts.TOO_MANY_OPEN)
            return
        listings = self._find(req.contract)
        refused = gateway.refusal(Lookup.HISTORICAL, listings[0] if len(listings) == 1 else None)
        if refused:
            self.send_error(req.req_id, *refused)
            return
        try:
            window, implied_zone = request_window(
                req,
                listings=listings,
                market=gateway.market,
                pacing=gateway.pacing,
                now=gateway.now(),
                time_zone=gateway.config.time_zone,
            )
        except Reject as rej:
            if rej.pacing:
                gateway.pacing_violated(rej.pacing)
            self.send_error(req.req_id, rej.code, rej.text)
            return
        if implied_zone:
            self.send_error(req.req_id, *texts.NO_TZ_WARNING)
        task = asyncio.get_running_loop().create_task(
            self._answer(req, window, fault is Fault.STALL, gateway.farm_epoch)
        )
        self.open_historical[req.req_id] = task

    async def _answer(
        self, req: msg.HistoricalRequest, w: Window, stall: bool, farm_epoch: int
    ) -> None:
        gateway = self.gateway
        try:
            if stall:
                gateway.count(Event.STALLED)
                await asyncio.Event().wait()  # until the client cancels or goes away
            delay = gateway.answer_delay(w.bar_size)
            if delay > 0:
                await asyncio.sleep(delay)
            await gateway.connected()
            if not gateway.farm_serves(farm_epoch):  # the farm broke since it arrived: lost
                gateway.count(Event.LOST_IN_FARM_OUTAGE)
                await asyncio.Event().wait()
            try:
                bars = gateway.market.bars(
                    w.spec, w.bar_size, req.what_to_show, req.use_rth, w.start, w.end, gateway.now()
                )
            except MarketError as exc:
                self.send_error(req.req_id, exc.code, exc.message)
                return
            if len(bars) == 0 or gateway.no_data_glitch():
                self.send_error(
                    req.req_id,
                    *texts.no_data(
                        w.spec.data_name, req.contract.exchange or w.spec.exchange, req.what_to_show
                    ),
                )
                return
            zone = w.spec.time_zone_id
            decimals = gateway.market.price_decimals(w.spec, req.what_to_show)
            rows = bar_rows(bars, zone, req.format_date, decimals)
            span = bar_rows_span(w.start, w.end, zone, req.format_date)
            gateway.count(Event.BARS_SERVED, len(rows))  # before the client can read them
            self.send(msg.historical_data(req.req_id, span[0], span[1], rows))
            await self.writer.drain()
        finally:
            self.open_historical.pop(req.req_id, None)


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
