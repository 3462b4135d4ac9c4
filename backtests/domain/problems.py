"""What is wrong with a request, field by field, for each way in to phrase with its own names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fetcher.domain.requests import RequestInvalid

_NAMED = re.compile(r"\{(\w+)\}")


def as_named(field: str) -> str:
    """A field named as it is: 'data_source'."""
    return field


@dataclass(frozen=True)
class FieldProblem:
    """One problem of one field. `problem` names fields as {field}: the command says `--fast`
    where another way in says `fast`."""

    field: str
    problem: str

    def phrase(self, name: Callable[[str], str] = as_named) -> str:
        return _NAMED.sub(lambda m: name(m.group(1)), self.problem)


class InvalidRequest(RequestInvalid):
    """A request that cannot be built: its problems, in the order they were found (`field` is
    the first one's, as a RequestInvalid's; str() all of them, fields named as they are)."""

    def __init__(self, problems: Iterable[FieldProblem]):
        self.problems = tuple(problems)
        super().__init__(self.problems[0].field, self.phrase())

    @classmethod
    def about(cls, field: str, problem: str) -> InvalidRequest:
        return cls([FieldProblem(field, problem)])

    def phrase(self, name: Callable[[str], str] = as_named) -> str:
        """Every problem on one line, fields named by `name`."""
        return "; ".join(p.phrase(name) for p in self.problems)
