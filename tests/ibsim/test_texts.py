"""The error codes and texts the gateway simulator sends (ibsim.texts), as IBKR words them."""

from __future__ import annotations

from ibsim import texts


def test_farm_notices_name_the_simulator_only_when_asked():
    named = texts.farm_ok(identify=True)
    plain = texts.farm_ok(identify=False)
    assert [code for code, _ in named] == [code for code, _ in plain] == [2104, 2106, 2158]
    assert all(text.endswith(texts.FARM_SUFFIX) for _, text in named)
    assert not any("ibsim" in text for _, text in plain)
    assert [text + texts.FARM_SUFFIX for _, text in plain] == [text for _, text in named]
    assert texts.FARM_SUFFIX in texts.CONNECTIVITY_RESTORED[1]


def test_texts_built_from_a_request():
    assert texts.validation("Invalid whatToShow 'X'") == (
        321,
        "Error validating request.-'bX' : cause - Invalid whatToShow 'X'",
    )
    assert texts.no_data("AAPL", "SMART", "BID_ASK") == (
        162,
        texts.HMDS + "HMDS query returned no data: AAPL@SMART Bid_Ask",
    )
    assert texts.cancelled(17) == (162, texts.HMDS + "API historical data query cancelled: 17")
    assert texts.message_rate(53) == (
        100,
        "Max rate of messages per second has been exceeded:max=50 rec=53 (1)",
    )


def test_the_codes_clients_act_on():
    assert texts.PACING_VIOLATION == (162, texts.HMDS + "Historical data request pacing violation")
    assert texts.NO_SECURITY[0] == 200 and texts.CLIENT_ID_IN_USE[0] == 326
    assert texts.TOO_MANY_OPEN[0] == 322 and texts.BAD_END_DATE[0] == 10314
    assert [texts.CONNECTIVITY_LOST[0], texts.CONNECTIVITY_RESTORED_DATA_LOST[0]] == [1100, 1101]
    assert texts.CONNECTIVITY_RESTORED[0] == 1102 and texts.NO_TZ_WARNING[0] == 2174
    assert texts.TIME_LENGTH_EXCEEDED == (162, texts.HMDS + "Time length exceed max.")
    assert texts.CONTINUOUS_END_DATE == (
        10339,
        "Setting end date/time for continuous future security type is not allowed.",
    )


def test_the_texts_of_a_gateway_in_trouble():
    """Worded as IBKR words them (docs/tws-protocol.md, "Gateway life and transient faults")."""
    assert texts.hmds_farm(identify=False, ok=False) == (
        2105,
        "HMDS data farm connection is broken:ushmds",
    )
    assert texts.hmds_farm(identify=True, ok=True) == (
        2106,
        "HMDS data farm connection is OK:ushmds.ibsim",
    )
    assert [c for c, _ in texts.farm_ok(identify=True, hmds_ok=False)] == [2104, 2105, 2158]
    assert texts.COMPETING_SESSION == (10197, "No market data during competing live session")
    assert texts.NOT_SUBSCRIBED == (354, "Requested market data is not subscribed.")
    assert texts.no_permissions("NASDAQ", "STK") == (
        162,
        "Historical Market Data Service error message:No market data permissions for ISLAND STK",
    )
    assert texts.no_permissions("NYSE", "STK")[1].endswith("for NYSE STK")
    assert texts.no_permissions("CME", "FUT")[1].endswith("for CME FUT")
