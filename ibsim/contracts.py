"""Contract lookups and the CONTRACT_DATA fields the simulated gateway answers with."""

from __future__ import annotations

from . import messages as msg
from .market import Market


def listings_for(market: Market, c: msg.ContractFields, now: float | None = None) -> list:
    """The listings a contract request matches at `now`, by IBKR's matching rules."""
    return market.find(
        c.symbol,
        c.sec_type,
        c.exchange,
        c.currency,
        con_id=c.con_id,
        local_symbol=c.local_symbol,
        primary_exchange=c.primary_exchange,
        include_expired=c.include_expired,
        now=now,
    )


def contract_details(
    spec, exchange: str, trading_hours: str, liquid_hours: str, sec_type: str = ""
) -> msg.ContractDetailsFields:
    """CONTRACT_DATA for `spec`; a continuous future asked for as CONTFUT is answered as one
    (IBKR: the front contract's fields under secType CONTFUT)."""
    sec_type = "CONTFUT" if sec_type.strip().upper() == "CONTFUT" else spec.sec_type
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
