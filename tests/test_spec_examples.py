"""PQL-SPEC §16: every valid example validates with its task type; every invalid one raises its code
at the offending text."""

from __future__ import annotations

import pytest

import pql.validator
from pql.ast import QueryKind
from pql.errors import PQLError, PQLSyntaxError, PQLValidationError
from tests.schemas import reference_graph
from tests.spec_queries import SPEC_VALID

GRAPH = reference_graph()

VALID = SPEC_VALID

STATIC = {"V8", "V9", "V10", "V15", "V16"}


@pytest.mark.parametrize("name,text,task", VALID, ids=[v[0] for v in VALID])
def test_valid_example(name: str, text: str, task: str) -> None:
    vq = pql.validator.validate(text, GRAPH)
    assert vq.task_type.value == task
    assert vq.kind is (QueryKind.STATIC if name in STATIC else QueryKind.TEMPORAL)
    assert (vq.window is None) == (name in STATIC)
    assert vq.source == text


E = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id"

# (row, query, code, needle): the error must point at the first occurrence of `needle`
# (at the end of the input when needle is "").
INVALID = [
    ("I1", "Predict COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id", "E004", "Predict"),
    ("I2", "PREDICT SUM(transactions.price, 0, 30, day) FOR EACH users.user_id", "E008", "day"),
    ("I3", "PREDICT COUNT(transactions.*, -7, 30) FOR EACH users.user_id", "E303", "-7"),
    ("I3b", "PREDICT COUNT(transactions.*, 30, 0) FOR EACH users.user_id", "E012", "30, 0"),
    ("I4", "PREDICT COUNT(transactions.*, 0, 7.5) FOR EACH users.user_id", "E010", "7.5"),
    ("I5", E + " WHERE COUNT(transactions.*, -30, 10) > 0", "E304", "-30"),
    ("I6", E + " WHERE users.country IN ('US')", "E009", "('US')"),
    ("I6b", E + " WHERE users.age < NULL", "E206", "NULL"),
    ("I7", E + " WHERE users.country LIKE 'US'", "E014", "'US'"),
    ("I7b", E + " WHERE users.country NOT LIKE 'U%'", "E015", "'U%'"),
    ("I8", E + " WHERE users.country = US", "E001", "US"),
    ("I9", E + " WHERE users.age = '30'", "E205", "'30'"),
    ("I9b", E + " WHERE users.birth_date > '1990-01-01'", "E205", "'1990-01-01'"),
    ("I10", "PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.age", "E104", "users.age"),
    ("I11", "PREDICT SUM(transactions.status, 0, 30) FOR EACH users.user_id", "E201", "transactions.status"),
    ("I12", "PREDICT SUM(notifications.*, 0, 7) FOR EACH users.user_id", "E103", "notifications.*"),
    ("I13", "PREDICT SUM(transactions.price) FOR EACH users.user_id", "E302", "SUM"),
    ("I14", "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) FOR EACH users.user_id", "E401", "LIST_DISTINCT"),
    ("I14b", "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 0 FOR EACH users.user_id", "E404", "TOP 0"),
    ("I15", "PREDICT SUM(transactions.price, 0, 30) RANK TOP 5 FOR EACH users.user_id", "E402", "RANK"),
    ("I15b", "PREDICT SUM(transactions.price, 0, 30) TOP 5 FOR EACH users.user_id", "E405", "TOP"),
    ("I16", "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id ASSUMING users.country = 'US'", "E306", "users.country"),
    ("I17", "PREDICT users.age FOR EACH users.user_id ASSUMING COUNT(transactions.*, 0, 7) > 0", "E307", "ASSUMING"),
    ("I18", "PREDICT COUNT(transactions.*, 0, 30) > 0 OR users.age > 30 FOR EACH users.user_id", "E309", "users.age"),
    ("I19", "PREDICT transactions.price FOR EACH users.user_id", "E107", "transactions.price"),
    ("I20", "PREDICT LIST_DISTINCT(transactions.user_id, 0, 30) RANK TOP 5 FOR EACH users.user_id", "E411", "transactions.user_id"),
    ("I21", "PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id, items.item_id", "E016", ", items"),
    ("I22", "PREDICT SUM(transactions.price, 0, 30) FOR EACH user.user_id", "E101", "user.user_id"),
    ("I22b", "PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id", "E102", "transactions.prce"),
    ("I23", "PREDICT AVG(transactions.price, 0, 7) FORECAST 4 TIMEFRAMES FOR EACH items.item_id", "E409", "AVG"),
    ("I24", "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id WHERE transactions.status = 'paid'", "E108", "transactions.status"),
    ("I25", "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id > 5", "E502", "> 5"),
    ("I25b", E + " = 5", "E503", "FOR EACH"),
    ("I26", "PREDICT COUNT_DISTINCT(transactions.item_id, 0, 30) FOR EACH users.user_id", "E202", "transactions.item_id"),
    ("I26b", "PREDICT LAST(transactions.item_id, 0, 30) FOR EACH users.user_id", "E203", "transactions.item_id"),
    ("I27", "PREDICT users.name FOR EACH users.user_id", "E413", "users.name"),
    ("I27b", "PREDICT users.user_id FOR EACH users.user_id", "E414", "users.user_id"),
    ("I28", "PREDICT users.age FOR EACH users.user_id WHERE COUNT(transactions.*, -30, 0) > 0", "E308", "COUNT"),
    ("I29", "PREDICT LIST_DISTINCT(transactions.item_id WHERE users.country = 'US', 0, 30) RANK TOP 5 FOR EACH users.user_id", "E412", "users.country"),
    ("I30", "PREDICT COUNT(transactions.*, 0, 30) > 0", "E003", ""),
    ("I31", "PREDICT regions.population FOR EACH items.item_id", "E109", "regions.population"),
    ("I32", "PREDICT LIST_DISTINCT(transactions.item_id) RANK TOP 5 FOR EACH users.user_id", "E310", "LIST_DISTINCT"),
    ("I33", "PREDICT COUNT(transactions.*, 0, 30) <> 0 FOR EACH users.user_id", "E001", "<>"),
    ("I33b", E + " /* all */", "E005", "/*"),
]


_PARSE_STAGE = {"E208", "E209", "E403", "E404", "E405", "E406", "E501", "E502", "E503"}  # spec §9.4, §9.6


@pytest.mark.parametrize("name,text,code,needle", INVALID, ids=[r[0] for r in INVALID])
def test_invalid_example(name: str, text: str, code: str, needle: str) -> None:
    with pytest.raises(PQLError) as info:
        pql.validator.validate(text, GRAPH)
    err = info.value
    syntax = code.startswith("E0") or code in _PARSE_STAGE
    assert isinstance(err, PQLSyntaxError if syntax else PQLValidationError)
    assert [e.code for e in err.errors] == [code]
    column = text.index(needle) + 1 if needle else len(text) + 1
    assert (err.line, err.column) == (1, column)


def test_invalid_example_hints() -> None:
    """The hints and did-you-mean that §16.2 names."""
    def first(text: str) -> PQLError:
        with pytest.raises(PQLError) as info:
            pql.validator.validate(text, GRAPH)
        return info.value.errors[0]

    assert "'PREDICT'" in first(INVALID[0][1]).message
    assert "did you mean 'users'?" in first("PREDICT SUM(transactions.price, 0, 30) FOR EACH user.user_id").message
    assert "did you mean 'price'?" in first("PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id").message
    assert any("quote" in h for h in first(E + " WHERE users.country = US").hints)
    assert any("!=" in h for h in first("PREDICT COUNT(transactions.*, 0, 30) <> 0 FOR EACH users.user_id").hints)
