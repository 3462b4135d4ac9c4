"""Commission models: IBKR's fixed schedule, fractions, and what commission_parse reads."""

from __future__ import annotations

import pytest

from backtests.domain.commissions import (
    FractionCommission,
    IbkrFixedCommission,
    commission_parse,
)
from backtests.domain.problems import FieldProblem, InvalidRequest
from fetcher.exceptions import InvalidInput


def test_ibkr_fixed_commission_schedule():
    ibkr = IbkrFixedCommission()
    assert ibkr(1000, 100.0) == pytest.approx(5.0)  # USD 0.005 a share
    assert ibkr(10, 20.0) == pytest.approx(1.0)  # USD 1 minimum
    assert ibkr(100, 0.5) == pytest.approx(0.5)  # at most 1% of the trade's value
    assert ibkr(-1000, 100.0) == pytest.approx(5.0)  # sells pay the same


def test_a_fraction_of_each_fill():
    assert FractionCommission(0.002)(-100, 50.0) == pytest.approx(10.0)
    assert FractionCommission(0.0)(100, 50.0) == 0.0
    assert FractionCommission(0.0).label == "none"


def test_commission_parse():
    assert commission_parse("0.002") == FractionCommission(0.002)
    assert commission_parse("IBKR") == IbkrFixedCommission()
    with pytest.raises(InvalidInput, match="neither a fraction"):
        commission_parse("cheap")
    with pytest.raises(InvalidInput, match="from 0 to below 0.1"):
        commission_parse("0.5")


def test_a_refused_commission_is_a_problem_of_its_field():
    with pytest.raises(InvalidRequest) as raised:
        commission_parse("nan", "fee")
    assert raised.value.problems[0].field == "fee"
    assert raised.value.phrase(lambda f: f"--{f}").startswith("--fee 'nan' must be a fraction")
    assert raised.value.problems == (FieldProblem("fee", raised.value.problems[0].problem),)


@pytest.mark.parametrize("text", ["0", "0.002", "1e-05", "0.0123456789012345", "ibkr"])
def test_text_reads_back_as_the_same_commission(text):
    commission = commission_parse(text)
    assert commission_parse(commission.text) == commission
    assert commission.text == text
