"""A request's problems: each names its field; the way in names the fields its own way."""

from __future__ import annotations

import pytest

from backtests.domain.problems import FieldProblem, InvalidRequest
from fetcher.domain.requests import RequestInvalid
from fetcher.exceptions import InvalidInput


def test_a_problem_names_fields_as_the_caller_does():
    problem = FieldProblem("end", "empty range: {end} 2024-01-01 is before {start} 2024-02-01")
    assert problem.phrase() == "empty range: end 2024-01-01 is before start 2024-02-01"
    assert problem.phrase(lambda f: "--" + f) == (
        "empty range: --end 2024-01-01 is before --start 2024-02-01"
    )


def test_an_invalid_request_is_invalid_input_on_one_line():
    exc = InvalidRequest(
        [
            FieldProblem("cash", "{cash} -5 must be a positive amount"),
            FieldProblem("top", "{top} 0"),
        ]
    )
    assert isinstance(exc, InvalidInput)
    assert str(exc) == "cash -5 must be a positive amount; top 0"
    # A request error as fetch requests raise them: the first field at fault, the problems.
    assert isinstance(exc, RequestInvalid) and exc.field == "cash" and exc.problem == str(exc)
    assert exc.phrase(str.upper) == "CASH -5 must be a positive amount; TOP 0"
    assert [p.field for p in exc.problems] == ["cash", "top"]
    with pytest.raises(InvalidInput, match="^top 1$"):
        raise InvalidRequest.about("top", "{top} 1")
