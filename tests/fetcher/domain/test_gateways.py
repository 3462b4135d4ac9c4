"""IBKR_GATEWAYS as users write it: names, addresses, client ids and each worker's queue; a bad
entry said in one line, by `manage.py` too."""

from __future__ import annotations

import pytest

from fetcher.domain.gateways import GatewaySpec, gateway_for_queues, gateways_parse
from tests.support import manage, production_env


def test_gateways_parse_names_addresses_client_ids_and_queues():
    g1, g2 = gateways_parse("paper1=127.0.0.1:4002:11, paper2=gw2.example:4002:12")
    assert g1 == GatewaySpec("paper1", "127.0.0.1", 4002, 11) and g1.queue == "ibkr.paper1"
    assert g2.address == "gw2.example:4002" and g2.queue == "ibkr.paper2"
    assert gateways_parse("") == ()
    assert gateway_for_queues((g1, g2), {"ibkr.paper2"}) == g2
    assert gateway_for_queues((g1, g2), {"ibkr"}) is None  # which of the two?
    assert gateway_for_queues((g1, g2), {"default", "backtests"}) is None
    default = GatewaySpec("default", "127.0.0.1", 7497, 10)
    assert default.queue == "ibkr" and gateway_for_queues((default,), {"ibkr"}) == default


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("paper1=127.0.0.1:4002", "'paper1=127.0.0.1:4002' is not name=host:port:clientid"),
        ("127.0.0.1:4002:11", "is not name=host:port:clientid"),
        ("Paper=127.0.0.1:4002:11", "'Paper' is not a gateway name"),
        ("default=127.0.0.1:4002:11", "'default' is not a gateway name"),
        ("p=127.0.0.1:x:11", "the port and the client id are numbers"),
        ("p=127.0.0.1:70000:11", "port 70000 is not between 1 and 65535"),
        ("p=h:1:1,p=h:2:2", "p: one gateway per name"),
        ("p=h:1:1,q=h:1:2", "h:1: one gateway per address"),
    ],
)
def test_a_bad_entry_is_said_in_one_line(text, said):
    with pytest.raises(ValueError, match=said):
        gateways_parse(text)


def test_manage_says_a_bad_ibkr_gateways_in_one_line(tmp_path):
    done = manage(production_env(IBKR_GATEWAYS="paper1=127.0.0.1", DATA_DIR=str(tmp_path)), "check")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "❌ IBKR_GATEWAYS: 'paper1=127.0.0.1' is not name=host:port:clientid "
        "(for example paper1=127.0.0.1:4002:11,paper2=gw2.example:4002:12)"
    ]
    several = "a=127.0.0.1:4002:1,b=127.0.0.1:4003:2"
    env = production_env(
        IBKR_GATEWAYS=several, DATA_DIR=str(tmp_path), DATABASE_URL="", REDIS_URL=""
    )
    done = manage(env, "check")
    assert done.returncode != 0 and "several gateways share runs through PostgreSQL" in done.stderr
